from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ModelError
from bot.models.files import BUNDLED_SHA256, DEFAULT_MODEL, bundled_model_dir, sha256_file, verify_bundled


def test_bundled_weights_are_the_official_file() -> None:
    assert sha256_file(bundled_model_dir() / "model.safetensors") == BUNDLED_SHA256


def test_tampered_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder)
    weights = folder / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match=rf"{weights} has sha256 [0-9a-f]{{64}}, expected {BUNDLED_SHA256}"):
        verify_bundled(folder)
    weights.unlink()
    with pytest.raises(ModelError, match="is missing"):
        verify_bundled(folder)


@pytest.mark.slow
def test_unknown_model_is_a_clear_error() -> None:
    from bot.models.encoder import SentenceTransformerEmbedder

    with pytest.raises(ModelError, match="cannot load model '/nonexistent/model-folder'"):
        SentenceTransformerEmbedder("/nonexistent/model-folder")


@pytest.mark.slow
def test_real_model_gives_normalised_vectors_that_rank_by_meaning(real_embedder) -> None:
    assert real_embedder.name == DEFAULT_MODEL and real_embedder.dimension == 384
    vectors = real_embedder.encode(
        ["Who will chair Stargate?", "Masayoshi Son will be the chairman.", "A recipe for bread."]
    )
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert real_embedder.encode([]).shape == (0, 384)
