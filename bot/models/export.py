"""A model's transformer exported once with torch, for the runtimes that serve without it.

The graph is traced to ONNX (for ONNX Runtime) and converted to OpenVINO IR with float16 weights
(`runtimes.write_openvino_ir`). An export is written into a hidden staging folder and renamed
into place only when complete, so a crash or a second process exporting at the same moment
never leaves half an export where a server would load it.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.models.files import sha256_file
from bot.models.runtimes import INPUT_NAMES, MODEL_FILES, compile_openvino, write_openvino_ir

ONNX_OPSET = 17


def write_graphs(
    module: Any, inputs: tuple[Any, ...], folder: Path, output: str, output_axes: dict[int, str]
) -> dict[str, str]:
    """Trace `module` (a torch module taking INPUT_NAMES) on `inputs` into `folder` as model.onnx and
    OpenVINO IR; the sha256 of each model file. The inputs' batch and token axes stay dynamic, and
    the output's `output_axes`."""
    import torch

    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python branches on shapes; the probe check is the real test.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            str(folder / "model.onnx"),
            input_names=list(INPUT_NAMES),
            output_names=[output],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in INPUT_NAMES} | {output: output_axes},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    write_openvino_ir(folder)
    return {name: sha256_file(folder / name) for files in MODEL_FILES.values() for name in files}


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A hidden folder beside `target` to export into; renamed to `target` when the block ends
    without an error (dropped when another process finished the same export first), and its
    OpenVINO IR compiled there once (`runtimes.compile_openvino`)."""
    staging = target.parent / f".{target.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
        if target.exists():  # another process exported meanwhile: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(staging / "openvino-cache", ignore_errors=True)  # keyed by the staging path
            staging.rename(target)
            compile_openvino(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
