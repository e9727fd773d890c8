"""Durable writes: what survives a crash or a power cut once these functions return.

A rename is atomic, but only durable once the folder holding it is flushed; every writer of the
corpus, the embedding cache and the index versions goes through these two functions.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a rename is durable once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, content: str, *, prefix: str = ".tmp-") -> None:
    """Replace `path` with `content` all at once: hidden temp file, fsync, rename, fsync folder.

    `prefix` names the temporary file, so its folder's owner can sweep what a crash left behind.
    """
    temporary = path.parent / f"{prefix}{uuid.uuid4().hex}{path.suffix}"
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_path(path.parent)
