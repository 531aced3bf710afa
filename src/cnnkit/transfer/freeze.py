"""Which layers a fine-tune trains: freeze policies, frozen batch norm, unfreezing mid-run.

The lecture's two guidelines for new data (SIBGRAPI 2017 tutorial, "Guidelines for new data"):

* data similar to the pretraining data: **freeze all conv layers, train the FC layers**
  (``all-conv``: every parameter the model's ``forward_features`` uses is frozen; ``forward_head``,
  which holds the new classifier, trains);
* data not similar: **freeze the lower conv layers, train the others** (``lower:N``: the first N
  weight layers, counted in the order the forward pass runs them, are frozen);

plus ``none`` (train everything, usually with a smaller backbone learning rate).

Freezing means ``requires_grad=False``, so the optimiser never sees those parameters (no update, no
weight decay) and autograd skips their gradients. Batch norm is the one layer whose *buffers* change
in training mode, so :func:`frozen_bn_eval` keeps normalisation layers inside frozen parts in eval
mode: their running statistics stay the pretrained ones.

During training both phases are :class:`~cnnkit.engine.callbacks.Callback` objects: :class:`UnfreezeAt`
(unfreeze at an epoch and rebuild the optimiser) and :class:`FrozenBatchNorm` (frozen batch norm in
eval mode each epoch, after any unfreezing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..engine.callbacks import ORDER_TRAIN_MODE, ORDER_UNFREEZE, Callback
from ..errors import ConfigError, ModelError

if TYPE_CHECKING:
    from ..engine.loop import Trainer

_NORM = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)  # attach to the layer before them


@dataclass(frozen=True)
class FreezePolicy:
    """``all-conv``, ``lower:N`` or ``none`` (see the module docstring)."""

    kind: str
    n: int = 0

    @classmethod
    def parse(cls, spec: str | FreezePolicy) -> FreezePolicy:
        if isinstance(spec, FreezePolicy):
            return spec
        s = str(spec).strip().lower()
        if s in ("all-conv", "none"):
            return cls(s)
        if s.startswith("lower:"):
            try:
                n = int(s.split(":", 1)[1])
            except ValueError:
                n = -1
            if n < 1:
                raise ConfigError(f"--freeze {spec!r}: N must be a whole number >= 1", hint="e.g. --freeze lower:2")
            return cls("lower", n)
        raise ConfigError(f"--freeze {spec!r} is not a freeze policy", hint="use all-conv, lower:N or none")

    def __str__(self) -> str:
        return f"lower:{self.n}" if self.kind == "lower" else self.kind


def _trace_modules(model: nn.Module, fn_name: str = "forward") -> list[str]:
    """Names of the modules a forward pass (``forward`` or ``forward_features``) calls, in call order.

    Tracing a real (dummy) forward pass, rather than reading module registration order, is what makes
    "lower" mean "closer to the input" for any architecture, branches included.
    """
    info = getattr(model, "info", None)
    if info is None:
        raise ModelError(f"{type(model).__name__} is not a cnnkit model (no .info with its input size)")
    order: list[str] = []
    seen: set[str] = set()

    def recorder(name: str):
        def pre_hook(_m: nn.Module, _inputs: Any) -> None:
            if name not in seen:
                seen.add(name)
                order.append(name)

        return pre_hook

    # Pre-hooks fire when a module is entered: a parent before its children, each in call order.
    handles = [m.register_forward_pre_hook(recorder(n)) for n, m in model.named_modules()]
    was = model.training
    model.eval()  # batch norm with a batch of 2 dummy images must not touch its statistics
    try:
        with torch.no_grad():
            p = next(model.parameters())
            x = torch.zeros(2, *info.input_size, device=p.device, dtype=p.dtype)
            getattr(model, fn_name)(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return order


def feature_parameter_names(model: nn.Module) -> list[str]:
    """Parameters ``forward_features`` uses: the convolutional body that ``all-conv`` freezes."""
    if not hasattr(model, "forward_features"):
        # Without a body/head split, everything but the classifier layer counts as the body.
        cls = model.info.classifier + "."
        return [n for n, _ in model.named_parameters() if not n.startswith(cls)]
    called = set(_trace_modules(model, "forward_features")) - {""}
    names = []
    for mod_name, mod in model.named_modules():
        if mod_name in called:
            names += [f"{mod_name}.{p}" for p, _ in mod.named_parameters(recurse=False)]
    # Parameters held by the root itself (class tokens, position embeddings) belong to the body.
    names += [p for p, _ in model.named_parameters(recurse=False)]
    return names


def weight_layers(model: nn.Module) -> list[tuple[str, list[str]]]:
    """``(layer name, parameter names)`` per weight layer, input to output, as the forward pass runs them.

    A weight layer is a module holding parameters that is not a normalisation layer (conv, linear,
    LeNet's trainable subsampling, ...); a normalisation layer joins the weight layer run before it,
    so ``lower:N`` freezes a conv together with its batch norm.
    """
    modules = dict(model.named_modules())
    layers: list[tuple[str, list[str]]] = []
    for name in _trace_modules(model):
        m = modules[name]
        own = [f"{name}.{p}" if name else p for p, _ in m.named_parameters(recurse=False)]
        if not own:
            continue
        if isinstance(m, _NORM) and layers:
            layers[-1][1].extend(own)
        else:
            layers.append((name, own))
    return layers


@dataclass
class FreezeReport:
    """What :func:`apply_freeze` did."""

    policy: str
    frozen: list[str] = field(default_factory=list)  # parameter names
    trainable_params: int = 0
    frozen_params: int = 0
    frozen_layers: list[str] = field(default_factory=list)

    def line(self) -> str:
        total = self.trainable_params + self.frozen_params
        what = f" ({', '.join(self.frozen_layers[:6])}{', ...' if len(self.frozen_layers) > 6 else ''})" if self.frozen_layers else ""
        return (f"freeze {self.policy}: {self.trainable_params:,} trainable / {self.frozen_params:,} frozen "
                f"of {total:,} parameters{what}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "trainable_params": self.trainable_params, "frozen_params": self.frozen_params,
                "frozen_layers": self.frozen_layers}  # fmt: skip


def frozen_names(model: nn.Module, policy: FreezePolicy | str) -> list[str]:
    """Parameter names the policy freezes (the new classifier is never among them)."""
    policy = FreezePolicy.parse(policy)
    if policy.kind == "none":
        return []
    if policy.kind == "all-conv":
        names = feature_parameter_names(model)
    else:
        layers = weight_layers(model)
        if policy.n >= len(layers):
            raise ConfigError(
                f"--freeze lower:{policy.n} would freeze every layer: {getattr(model.info, 'name', 'the model')} "
                f"has {len(layers)} weight layers",
                hint=f"use lower:N with N < {len(layers)}, or all-conv",
            )
        names = [p for _, ps in layers[: policy.n] for p in ps]
    head = model.info.classifier + "."
    return [n for n in names if not n.startswith(head)]


def apply_freeze(model: nn.Module, policy: FreezePolicy | str) -> FreezeReport:
    """Set ``requires_grad`` as ``policy`` says (everything else trainable) and report the counts."""
    policy = FreezePolicy.parse(policy)
    names = set(frozen_names(model, policy))
    for n, p in model.named_parameters():
        p.requires_grad_(n not in names)
    params = dict(model.named_parameters())
    report = FreezeReport(str(policy), sorted(names, key=list(params).index))
    report.frozen_params = sum(params[n].numel() for n in names)
    report.trainable_params = sum(p.numel() for p in params.values()) - report.frozen_params
    layers = []
    for n in report.frozen:
        mod = n.rsplit(".", 1)[0] if "." in n else n
        if mod not in layers:
            layers.append(mod)
    report.frozen_layers = layers
    return report


def unfreeze(model: nn.Module, names: Iterable[str] | None = None) -> int:
    """Make ``names`` (default: every parameter) trainable again; returns how many parameters changed."""
    wanted = None if names is None else set(names)
    n = 0
    for name, p in model.named_parameters():
        if (wanted is None or name in wanted) and not p.requires_grad:
            p.requires_grad_(True)
            n += p.numel()
    return n


def frozen_bn_eval(model: nn.Module) -> None:
    """``model.train()``, but normalisation layers in frozen parts stay in eval.

    A norm layer is frozen when all its parameters are; one without parameters (``affine=False``)
    follows the parametrised module registered just before it.
    """
    model.train()
    prev_frozen = False
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if isinstance(m, nn.modules.batchnorm._NormBase):
            frozen = all(not p.requires_grad for p in own) if own else prev_frozen
            if frozen:
                m.eval()  # uses and keeps the running mean/var instead of batch statistics
        if own:
            prev_frozen = all(not p.requires_grad for p in own)


class FrozenBatchNorm(Callback):
    """Callback: each epoch, batch norm inside frozen parts trains in eval mode (:func:`frozen_bn_eval`)."""

    order = ORDER_TRAIN_MODE  # after UnfreezeAt: a layer unfrozen this epoch trains its statistics again

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        frozen_bn_eval(trainer.model)


class UnfreezeAt(Callback):
    """Callback: at the start of epoch ``epoch`` (0-based) unfreeze ``names`` (default: every parameter)
    and rebuild the optimiser.

    The trainer's ``lr_mults`` then apply: the unfrozen backbone trains with its lower learning rate
    (``mult``, for the message). Idempotent, so a resumed run past the switch (whose checkpoint
    already lists every parameter as trainable) does nothing.
    """

    order = ORDER_UNFREEZE

    def __init__(self, epoch: int, names: list[str] | None = None, mult: float = 1.0) -> None:
        self.epoch, self.names, self.mult = epoch, names, mult

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch < self.epoch:
            return
        n = unfreeze(trainer.model, self.names)
        if n:
            trainer.rebuild_optimizer()
            trainer.reporter.print(f"epoch {epoch + 1}: unfroze {n:,} parameters; they train at "
                                   f"{self.mult:g} x the learning rate from now on")  # fmt: skip
