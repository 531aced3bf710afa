"""Data-parallel training across processes, started the standard way: ``torchrun ... -m cnnkit train``.

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` turns them into a process
group (NCCL between CUDA devices, ``cuda:LOCAL_RANK`` per process; gloo on CPUs), the trainer wraps
its model in :class:`~torch.nn.parallel.DistributedDataParallel`, and the helpers here sum the
numbers each process counted so every printed and recorded metric is over the whole data. Rank 0
alone writes the run folder. Nothing here is used when ``WORLD_SIZE`` is 1.

Failure semantics: a process that fails raises, exits non-zero, and torchrun's agent stops the
others; a process killed outright closes its sockets, so the survivors' next collective fails
within seconds (or, at worst, after :data:`TIMEOUT_S`) and :func:`peer_failure` turns that into one
clear message. Checkpoints are written only at epoch ends, so the last complete one stays valid and
``--resume`` continues it with any number of processes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import CnnkitError, ConfigError

# How long a collective may wait for a peer before the process group gives up (seconds). Long
# enough for rank 0 to write a checkpoint while the others wait; short enough not to hang for long.
TIMEOUT_S = float(os.environ.get("CNNKIT_DIST_TIMEOUT", "300"))


class DistributedError(CnnkitError):
    """Another process of a distributed run failed, or the process group could not be set up."""


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_world() -> World:
    """The world torchrun describes in the environment (one process when it does not)."""

    def num(name: str, default: int) -> int:
        raw = os.environ.get(name, str(default))
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name}={raw!r} is not a number",
                              hint="start distributed runs with torchrun, which sets it") from None  # fmt: skip

    size = num("WORLD_SIZE", 1)
    rank = num("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process group",
                          hint="start distributed runs with torchrun")  # fmt: skip
    return World(rank, size, num("LOCAL_RANK", 0))


def current() -> World:
    """The world of the process group already set up (or the environment's, before :func:`setup`)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), env_world().local_rank, dist.get_backend())
    return env_world()


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes; returns the world and this process's device.

    On CUDA each process takes ``cuda:LOCAL_RANK`` and the group uses NCCL; anywhere else gloo.
    Apple's MPS has no collective backend, so a distributed run there uses the CPU.
    """
    world = env_world()
    if not world.active:
        return world, device
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed", hint="run with one process")
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {world.local_rank} but this machine has {torch.cuda.device_count()} CUDA device(s)",
                hint="pass --nproc_per_node no larger than the number of GPUs",
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=TIMEOUT_S),
                                    **({"device_id": device} if backend == "nccl" else {}))  # fmt: skip
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"cannot join the process group ({backend}): {str(e).splitlines()[0]}",
                                   hint="start the run with torchrun; check MASTER_ADDR/MASTER_PORT or "
                                   "--rdzv-endpoint") from None  # fmt: skip
    return World(world.rank, world.size, world.local_rank, backend), device


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def teardown() -> None:
    """Leave the process group (at the end of a run, and after a failure)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped for data-parallel training (gradients averaged over processes), or as it is.

    Call again after the set of trainable parameters changes (fine-tuning's unfreeze): DDP registers
    its gradient hooks for the parameters that require gradients when it is built.
    """
    if not current().active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def sum_all(*values: torch.Tensor | float) -> list[float]:
    """The sums over every process of numbers each process counted (one collective for all)."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if current().active:
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def barrier() -> None:
    if current().active:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def broadcast(obj: object) -> object:
    """Rank 0's ``obj`` on every process (e.g. a run name chosen from the clock)."""
    if not current().active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class PeerStopped(DistributedError):
    """Raised in a process when torchrun's agent stops it (SIGTERM) because another process failed."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While training distributed, turn torchrun's SIGTERM into :class:`PeerStopped`.

    torchrun terminates the surviving processes when one fails; without this they would die in
    silence. With it, each unwinds like any other error: its message is printed, the run folder's
    last complete checkpoint is left as it was, and the process group is left.
    """
    if not current().active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough: the unwinding must not be cut short
        raise PeerStopped("another process of this distributed run failed or was killed (torchrun stopped the rest)")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except BaseException:
        # Training failed here or in a peer, and torchrun is about to stop this process. Its SIGTERM (the
        # default action kills without a word) must not land before the error is printed and the run
        # folder left in order: the process exits by itself, or torchrun kills it after its grace period.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    else:
        signal.signal(signal.SIGTERM, old)


def peer_failure(e: BaseException, hint: str) -> DistributedError:
    """The message for a collective that failed because another process died or timed out."""
    if isinstance(e, PeerStopped):
        return DistributedError(f"{e.message}; rank {current().rank} stopped too", hint=hint)
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return DistributedError(
        f"another process of this distributed run stopped, so rank {current().rank} stops too ({first})",
        hint=hint,
    )


def is_collective_failure(e: BaseException) -> bool:
    """Whether ``e`` is a collective that failed (peer gone, timeout), not a bug in this process."""
    if isinstance(e, PeerStopped):
        return True
    if not current().active:
        return False
    names = {c.__name__ for c in type(e).__mro__}
    if names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}:
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and any(
        w in msg
        for w in ("connection closed", "connection reset", "timed out", "gloo", "nccl", "broken pipe")
    )
