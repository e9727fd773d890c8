"""Compare two `bot eval --output` reports: `python bench/compare_reports.py BEFORE.json AFTER.json`.

Prints the figures that moved and every question whose top quote, decision, span or confidence
changed; exits 1 when anything differs (0 when the two runs answered alike).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.quality.comparison import compare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    result = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    print(result.format())
    return 0 if result.same else 1


if __name__ == "__main__":
    sys.exit(main())
