#!/usr/bin/env bash
# Create (or update) the virtualenv and install the project with its test extras.
# The one install path: `make install`, CI and the Dockerfile all run this script.
# torch is pinned to its CPU build through constraints.txt; any looser spec lets pip pick a
# multi-GB CUDA build.
set -euo pipefail
venv="${1:-.venv}"
extras="${2:-test}"
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first and alone, so that nothing else can pull a different build in.
"$venv/bin/python" -m pip install --quiet -c "$here/constraints.txt" "torch==2.13.0"
target="$here"
[ -n "$extras" ] && target="$here[$extras]"
"$venv/bin/python" -m pip install --quiet -c "$here/constraints.txt" -e "$target"
touch "$venv/.installed"
