"""``--compile``: the training step under ``torch.compile``, and what happens where it cannot compile.

``torch.compile`` traces the network into graphs and generates fused kernels (Triton on CUDA, C++ on
a CPU). It pays where the step is short and the kernels many (airbench on a GPU); its first step
costs the compilation (tens of seconds). Compiling is lazy: a machine without a working compiler
fails only in the first forward or backward pass, so that first step is where the choice is checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import CnnkitError, ConfigError

if TYPE_CHECKING:
    from .loop import Trainer

# torch.compile's backend; the tests swap in one that fails, as a machine without a compiler does.
BACKEND: Any = "inductor"


def use_compile(device: torch.device, setting: str) -> bool:
    """Whether ``--compile`` (auto|on|off) compiles on ``device``.

    auto: CUDA only. On a CPU the first compile of a model takes about a minute (measured: 53 s for a
    3-layer net on one core, 3 s with a warm cache), more than cnnkit's small CPU runs train in; MPS
    support in inductor is still partial.
    """
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def compile_net(net: nn.Module) -> nn.Module:
    """``net`` under ``torch.compile`` (shares its parameters: checkpoints keep saving the plain model)."""
    return torch.compile(net, backend=BACKEND)


def first_compiled_step(
    trainer: Trainer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training step with a compiled net, where compiling happens; if it fails, the step runs
    uncompiled: ``--compile on`` then stops with one line, ``auto`` goes on with a note.

    A step that fails uncompiled too is the model's error, not the compiler's: that error is raised.
    """
    trainer.compile_pending = False
    try:
        return trainer.train_step(x, y)
    except CnnkitError:  # a diverged loss is not a compiler failure
        raise
    except Exception as e:  # noqa: BLE001 (Inductor, Triton and the C++ toolchain raise many types)
        root = e
        # Dynamo wraps the backend's error (BackendCompilerFailed.inner_exception): name the original one.
        while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
            root = inner
        lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
        why = f"{type(root).__name__}: {lines[0][:200] if lines else ''}"
    trainer.compile = False
    trainer.net = trainer.wrap_net()
    result = trainer.train_step(x, y)
    if trainer.cfg.compile == "on":
        raise ConfigError(f"--compile on: torch.compile does not work on this machine ({why})",
                          hint="train without it: --compile off (--compile auto falls back by itself)")  # fmt: skip
    trainer.reporter.print(f"note: torch.compile does not work on this machine ({why}); training without it "
                           "(--compile off skips the attempt)")  # fmt: skip
    return result
