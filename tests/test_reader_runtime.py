"""The shipped reader as servers run it: exported once, checked at every load, refused when changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ModelError
from bot.models import reader
from bot.models.runtimes import RUNTIMES

EXPORTED = [r for r in RUNTIMES if r != "torch"]

pytestmark = pytest.mark.slow

# Made-up pairs: the first answers its question, the second does not.
PAIRS = [
    ("Which company built the Tarn bridge?", "The Tarn bridge was built by Ostvik Engineering in 2029."),
    ("Which company built the Tarn bridge?", "Velmora's council meets on the first Monday of each month."),
]


def changed_copy(folder: Path, tmp_path: Path, name: str) -> Path:
    """A copy of `folder` whose file `name` has its last byte flipped."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    data = bytearray((copy / name).read_bytes())
    data[-1] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_changed_shipped_weights_are_refused_on_every_runtime(runtime: str, tmp_path: Path) -> None:
    shipped = changed_copy(reader.SHIPPED, tmp_path, "reader.safetensors")
    with pytest.raises(ModelError, match=r"reader's weights were changed; restore them"):
        reader.open_reader(runtime, tmp_path / "index", export="here", shipped=shipped)  # type: ignore[arg-type]
    assert not (tmp_path / "index").exists()  # refused before anything was exported


@pytest.mark.parametrize("runtime", EXPORTED)
def test_the_exported_reader_scores_as_torch_does(runtime: str, seed_index: Path) -> None:
    exported = reader.open_reader(runtime, seed_index)  # type: ignore[arg-type]
    found = exported.score_pairs(PAIRS)
    expected = reader.TorchReader().score_pairs(PAIRS)
    assert np.max(np.abs(found - expected)) <= reader.MAX_LOGIT_DRIFT
    assert found[0] > found[1]


@pytest.mark.parametrize(("runtime", "name"), [("onnx", "model.onnx"), ("openvino", "openvino.bin")])
def test_a_changed_export_is_refused_with_the_command_that_remakes_it(
    runtime: str, name: str, seed_index: Path, tmp_path: Path
) -> None:
    folder = changed_copy(reader.export_folder(seed_index), tmp_path, name)
    with pytest.raises(ModelError, match=rf"{name} has sha256 .* run `bot export-reader`"):
        reader.load_exported(folder, runtime, 1)  # type: ignore[arg-type]
