"""int8 quantization of an export: dynamic (weights only) or static (weights and activations).

* ONNX: onnxruntime's quantizer. ``dynamic`` stores weights as int8 and quantizes activations on the
  fly (``ConvInteger``/``MatMulInteger``); ``static`` inserts quantize/dequantize pairs whose
  activation ranges are calibrated on training images (never the test images it is judged on).
* TorchScript: PyTorch's own: ``dynamic`` quantizes the ``Linear`` layers (what PyTorch's dynamic
  quantization covers), ``static`` uses FX graph mode (``x86`` backend) calibrated the same way.

The accuracy change, not equality with the float model, is what a caller reports.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from ..run import LoadedRun
from ._deps import require
from .runtime import INPUT_NAME


def quantize_onnx(data: bytes, mode: str, calib: torch.Tensor | None) -> tuple[bytes, str]:
    """Quantized ONNX bytes and a note saying what was quantized."""
    require("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    with tempfile.TemporaryDirectory(prefix="cnnkit-quant-") as tmp, _quiet():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        if mode == "dynamic":
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            note = "int8 weights, activations quantized at run time (onnxruntime dynamic)"
        else:
            assert calib is not None
            batches = [{INPUT_NAME: calib[i : i + 1].numpy()} for i in range(len(calib))]

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.it = iter(batches)

                def get_next(self):  # type: ignore[override]
                    return next(self.it, None)

            quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
            note = f"int8 weights and activations, ranges calibrated on {len(calib)} training images (onnxruntime static)"
        return dst.read_bytes(), note


def quantize_torch(run: LoadedRun, mode: str, calib: torch.Tensor | None) -> tuple[nn.Module, str]:
    """A quantized copy of the run's model (inputs normalised as usual) and a note."""
    from ..data import Normalize

    model = copy.deepcopy(run.model).cpu().eval()
    with _quiet():
        if mode == "dynamic":
            q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
            n = sum(isinstance(m, nn.Linear) for m in model.modules())
            return (
                q,
                f"int8 weights of the {n} Linear layers, activations quantized at run time (PyTorch dynamic)",
            )
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        assert calib is not None
        x = Normalize(run.meta.mean, run.meta.std)(calib)
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (x[:2],))
        with torch.no_grad():
            for s in range(0, len(x), 64):
                prepared(x[s : s + 64])
        q = convert_fx(prepared)
    return (
        q,
        f"int8 weights and activations, ranges calibrated on {len(x)} training images (PyTorch FX static)",
    )


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging = __import__("logging")
        root = logging.getLogger()
        old = root.level
        root.setLevel(logging.ERROR)  # onnxruntime's quantizer logs advice at WARNING on the root logger
        try:
            yield
        finally:
            root.setLevel(old)
