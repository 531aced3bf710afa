"""``cnnkit export``: a trained run as one ONNX or TorchScript file, verified against PyTorch.

The exported graph takes uint8 images at the run's input size (normalisation folded in, see
:class:`~cnnkit.deploy.runtime.ImageModel`) and returns logits. Class names, mean/std, input size
and the cnnkit version travel inside the file. Every export is run on the run's own test split
(onnxruntime for ONNX, ``torch.jit`` for TorchScript) and compared with the PyTorch model: the max
absolute logit difference and the top-1 agreement are reported. ``quantize`` (int8) reports the
accuracy change instead of asking for equality.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..errors import ConfigError
from ..io import atomic_write, check_output_file
from ..run import LoadedRun, load_run
from ._deps import require
from .runtime import EXPORT_FORMAT, INPUT_DOC, INPUT_NAME, META_KEY, OUTPUT_NAME, ImageModel, read_metadata

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
QUANTIZE = ("dynamic", "static")
DEFAULT_OPSET = 18  # the dynamo exporter's own default; older runtimes may ask for 17 with --opset
CALIBRATION_IMAGES = 256  # training images that set static quantization's activation ranges


@dataclass
class ExportResult:
    """Where the export went and how closely it matches PyTorch on the test split."""

    path: Path
    format: str
    meta: dict[str, Any]
    n: int = 0  # test images compared
    max_abs_diff: float = float("nan")  # of the logits
    agreement: float = float("nan")  # top-1 agreement with PyTorch, 0..1
    acc_torch: float = float("nan")
    acc_export: float = float("nan")
    size_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def default_output(run_dir: str | Path, fmt: str, quantize: str | None = None) -> Path:
    """``RUN_DIR/export/model[-int8-dynamic].onnx`` (or ``.pt``)."""
    q = f"-int8-{quantize}" if quantize else ""
    return Path(run_dir) / "export" / f"model{q}{FORMATS[fmt]}"


def check_target(path: Path, overwrite: bool, option: str, run_dir: Path) -> Path:
    """The output can be written, and replacing what is there is safe (a cnnkit export) or asked for."""
    inputs = tuple(f for f in run_dir.iterdir() if f.is_file()) if run_dir.is_dir() else ()
    p = check_output_file(path, option, inputs=inputs)
    if p.exists() and not overwrite and read_metadata(p) is None:
        raise ConfigError(f"{str(p)!r} exists and is not a cnnkit export, so it is not replaced",
                          hint="choose another file with -o, or pass --overwrite to replace it")  # fmt: skip
    return p


def _metadata(
    run: LoadedRun, fmt: str, dynamic_batch: bool, opset: int | None, quantize: str | None
) -> dict[str, Any]:
    m = run.meta
    return {
        "format": EXPORT_FORMAT, "cnnkit_version": __version__, "export_format": fmt,
        "run": run.path.name, "model": m.model, "model_args": m.model_args, "dataset": m.dataset,
        "classes": list(m.classes), "input_size": list(m.input_size), "mean": list(m.mean), "std": list(m.std),
        "input": INPUT_DOC, "input_name": INPUT_NAME, "input_dtype": "uint8", "output": f"{OUTPUT_NAME}: N x {m.num_classes}",
        "dynamic_batch": bool(dynamic_batch or fmt == "torchscript"), "opset": opset if fmt == "onnx" else None,
        "quantize": quantize,
    }  # fmt: skip


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters print progress lines and deprecation notes; cnnkit reports its own summary."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _onnx_bytes(wrapper: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool, opset: int) -> bytes:
    """The ONNX model (torch.export-based exporter) with an optimised graph, as serialised bytes."""
    require("onnxscript")
    onnx = require("onnx")
    shapes = ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic_batch else None
    with _quiet_exporter():
        prog = torch.onnx.export(wrapper, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                 dynamic_shapes=shapes, opset_version=opset, verbose=False)  # fmt: skip
    if prog is None:  # pragma: no cover - the dynamo exporter always returns a program
        raise RuntimeError("the ONNX exporter returned nothing")
    model = prog.model_proto
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _set_onnx_meta(data: bytes, meta: dict[str, Any]) -> bytes:
    onnx = require("onnx")
    model = onnx.load_from_string(data)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {META_KEY: json.dumps(meta), "classes": json.dumps(meta["classes"])})
    model.doc_string = (
        f"cnnkit {meta['cnnkit_version']} export of run {meta['run']} ({meta['model']}): {INPUT_DOC}"
    )
    return model.SerializeToString()


def _torchscript_bytes(wrapper: torch.nn.Module, example: torch.Tensor, meta: dict[str, Any]) -> bytes:
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        traced = torch.jit.freeze(traced.eval()) if not meta.get("quantize") else traced
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={f"{META_KEY}.json": json.dumps(meta)})
    return buf.getvalue()


def split_images(run: LoadedRun, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and labels of the run's recorded ``split`` (decoded from disk for streamed data)."""
    from ..evaluate.runner import run_data

    part = run_data(run).split(split)
    n = len(part) if limit is None else min(limit, len(part))
    if hasattr(part, "images"):
        return part.images[:n], part.labels[:n]
    from ..data.images import decode_files

    arr, _ = decode_files(part.files[:n], part.channels, part.size)
    return torch.from_numpy(arr), part.labels[:n]


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    output: str | Path | None = None,
    dynamic_batch: bool = False,
    opset: int | None = None,
    quantize: str | None = None,
    verify: bool = True,
    overwrite: bool = False,
) -> ExportResult:
    """Export a run's best weights to ``fmt`` (``onnx`` or ``torchscript``) and verify it on the test split.

    Without ``output`` the file goes to :func:`default_output`; an existing file there (or at
    ``output``) is replaced only when it is itself a cnnkit export, or with ``overwrite``.
    Exports run on the CPU: the file is meant for another runtime, and the comparison with PyTorch
    is made on the same device as the export.
    """
    from .quantize import quantize_onnx, quantize_torch

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", hint="use --format onnx or --format torchscript")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(
            f"unknown quantization {quantize!r}", hint="use --quantize dynamic or --quantize static"
        )
    if opset is not None and fmt != "onnx":
        raise ConfigError("--opset is for ONNX exports only", hint="drop --opset or use --format onnx")
    if opset is not None and not 13 <= opset <= 23:
        raise ConfigError(
            f"--opset {opset} is out of range", hint="use an opset between 13 and 23 (default 18)"
        )
    if fmt == "onnx":
        require("onnx"), require("onnxruntime")
    run = load_run(run_dir, device="cpu")
    path = Path(output) if output is not None else default_output(run.path, fmt, quantize)
    path = check_target(
        path, overwrite, "-o/--output" if output is not None else "the default output", run.path
    )
    meta = _metadata(run, fmt, dynamic_batch, opset or DEFAULT_OPSET, quantize)
    c, h, w = run.meta.input_size
    batch = 2 if dynamic_batch or fmt == "torchscript" else 1  # a static ONNX graph takes one image
    example = torch.zeros(batch, c, h, w, dtype=torch.uint8)
    need_train = quantize == "static"
    calib = split_images(run, "train", CALIBRATION_IMAGES)[0] if need_train else None
    notes: list[str] = []
    if fmt == "onnx":
        data = _onnx_bytes(ImageModel(run.model, run.meta.mean, run.meta.std).eval(), example, dynamic_batch,
                           opset or DEFAULT_OPSET)  # fmt: skip
        if quantize:
            data, note = quantize_onnx(data, quantize, calib)
            notes.append(note)
        data = _set_onnx_meta(data, meta)
    else:
        model = run.model
        if quantize:
            model, note = quantize_torch(run, quantize, calib)
            notes.append(note)
        data = _torchscript_bytes(ImageModel(model, run.meta.mean, run.meta.std).eval(), example, meta)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    result = ExportResult(path, fmt, meta, size_bytes=len(data), notes=notes)
    if verify:
        verify_export(result, run)
    return result


def verify_export(result: ExportResult, run: LoadedRun) -> ExportResult:
    """Run the export on the run's test split and compare its logits with the PyTorch model's."""
    from ..evaluate.runner import predict_logits
    from .runtime import load_exported

    images, labels = split_images(run, "test")
    ref = predict_logits(run, images).numpy()
    got = load_exported(result.path).logits(images)
    y = labels.numpy()
    result.n = len(y)
    if len(y):
        result.max_abs_diff = float(np.abs(ref - got).max())
        result.agreement = float((ref.argmax(1) == got.argmax(1)).mean())
        result.acc_torch = float((ref.argmax(1) == y).mean())
        result.acc_export = float((got.argmax(1) == y).mean())
    return result
