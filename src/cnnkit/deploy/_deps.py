"""Optional dependencies of deployment, imported only when used, with the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

# module -> (what needs it, the cnnkit extra that installs it)
_EXTRAS = {
    "onnx": ("ONNX export", "export"),
    "onnxruntime": ("ONNX export and the onnx serving backend", "export"),
    "onnxscript": ("ONNX export", "export"),
    "fastapi": ("cnnkit serve", "serve"),
    "uvicorn": ("cnnkit serve", "serve"),
    "python_multipart": ("cnnkit serve (image uploads)", "serve"),
}


def require(module: str) -> ModuleType:
    """Import an optional dependency; a one-line :class:`ConfigError` naming the extra when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        what, extra = _EXTRAS.get(top, (module, "dev"))
        pkg = top.replace("_", "-")
        raise ConfigError(f"{what} needs {pkg}, which is not installed",
                          hint=f"pip install 'cnnkit[{extra}]'") from None  # fmt: skip
