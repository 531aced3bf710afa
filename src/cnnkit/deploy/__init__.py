"""Deployment: export a trained run (ONNX, TorchScript), and serve it over HTTP with a page to try it.

Optional dependencies (``cnnkit[export]``, ``cnnkit[serve]``) are imported only when used.
"""

from __future__ import annotations

from .export import ExportResult, default_output, export_run, verify_export
from .runtime import Exported, ImageModel, load_exported, read_metadata

__all__ = ["ExportResult", "Exported", "ImageModel", "default_output", "export_run", "load_exported",
           "read_metadata", "verify_export"]  # fmt: skip
