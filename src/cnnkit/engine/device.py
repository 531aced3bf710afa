"""Device choice and the per-device speed switches (mixed precision, channels_last)."""

from __future__ import annotations

import contextlib
import os

import torch

from ..errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an unavailable explicit choice is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available", hint="use --device auto or cpu")
    if name == "mps" and not has_mps:
        raise ConfigError("--device mps was asked for but MPS is not available", hint="use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}", hint="use auto, cpu, cuda or mps")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock reading covers it (CUDA and MPS run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def forked_rng(device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.random.fork_rng`` for the CPU's generator and ``device``'s: work inside it (lr-find's sweep,
    --time-budget's timed steps) leaves every random stream as it found it."""
    accel = {"devices": [device], "device_type": device.type} if device.type in ("cuda", "mps") else {"devices": []}
    return torch.random.fork_rng(**accel)


def amp_dtype(device: torch.device, setting: str) -> torch.dtype | None:
    """The autocast dtype, or None for full precision. ``auto`` uses it only where it pays (CUDA)."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16  # CPU autocast supports bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(device: torch.device, setting: str, model: torch.nn.Module) -> bool:
    """channels_last helps convolution kernels on CUDA (tensor cores); on CPU it rarely does."""
    if setting == "off":
        return False
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return has_conv and (setting == "on" or device.type == "cuda")


def set_determinism(enabled: bool, device: torch.device, compiled: bool = False) -> None:
    """Same seed, same numbers: deterministic kernels (warn-only where none exists).

    ``compiled``: the run uses ``torch.compile``, whose generated kernels follow the flag too.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    _deterministic_algorithms(enabled, compiled)
    torch.backends.cudnn.benchmark = not enabled and device.type == "cuda"


def _deterministic_algorithms(enabled: bool, compiled: bool) -> None:
    """``torch.use_deterministic_algorithms(enabled, warn_only=True)``, without its 1-2 s import when no
    compiler is involved.

    The public function also sets the flag in torch's compiler config, and importing that config
    (``torch._inductor``) cost 1.7 s of every ``cnnkit`` command that trains. Without ``torch.compile``
    only the kernels' flag matters, so the flag is set directly, unless the compiler is loaded already.
    """
    import sys

    direct = getattr(torch._C, "_set_deterministic_algorithms", None)
    if compiled or direct is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    else:
        direct(enabled, warn_only=True)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (``torchrun`` sets RANK/WORLD_SIZE; 0/1 otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """Only rank 0 prints and writes the run folder."""
    return rank_and_world()[0] == 0
