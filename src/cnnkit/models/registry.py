"""Model registry: ``create_model(name, ...)`` and ``list_models()``, in the spirit of timm.

A model family registers builder functions with :func:`register_model`. Each builder takes
``num_classes``, ``in_chans``, ``input_size`` and its own keyword arguments and returns an
``nn.Module`` carrying a :class:`ModelInfo` in ``model.info`` (defaults the rest of cnnkit asks
for instead of guessing: input size, channels, mean/std, classifier attribute).
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModelError, suggest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelInfo:
    """Defaults a model declares about itself (travels with its weights)."""

    name: str
    family: str
    input_size: tuple[int, int, int]  # (C, H, W) the model is designed for
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    classifier: str = "fc"  # attribute path of the final layer, e.g. "classifier.6"
    min_size: int = 1  # smallest spatial input the architecture accepts
    kwargs: dict[str, Any] = field(default_factory=dict)  # arguments create_model was called with

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


@dataclass(frozen=True)
class _Entry:
    name: str
    family: str
    fn: Callable[..., nn.Module]
    default_input: tuple[int, int, int]
    description: str
    # Training settings this model needs when the user leaves them unset (TrainConfig fields marked
    # ``auto``), like a model card's recommended recipe; recorded resolved in the run's config.yaml.
    recipe: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    family: str, default_input: tuple[int, int, int], name: str | None = None, recipe: dict[str, Any] | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder under its function name (or ``name``).

    ``recipe`` holds training settings the model needs by default (for example a warmup), applied
    by ``cnnkit train`` to the options the user did not set.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise RuntimeError(f"model {key!r} registered twice")
        doc = (inspect.getdoc(fn) or "").splitlines()
        _REGISTRY[key] = _Entry(key, family, fn, tuple(default_input), doc[0] if doc else "", dict(recipe or {}))
        return fn

    return deco


@dataclass(frozen=True)
class Variant:
    """One model of a family table: its one-line description, the builder's fixed arguments, its recipe."""

    doc: str
    args: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None


def register_variants(family: str, default_input: tuple[int, int, int], build: Callable[..., nn.Module],
                      variants: dict[str, Variant]) -> None:  # fmt: skip
    """Register one model per row of a family's table (``resnet18``, ``resnet34``, ...) built by one function.

    Model ``NAME`` is ``build(name=NAME, **row.args, **user_args)``. Its signature lists only what a user may
    set (``num_classes``, ``in_chans``, ``input_size`` and the family's options), so ``--model-args`` is
    checked against exactly those, as for a hand-written builder.
    """
    sig = inspect.signature(build)
    for key, row in variants.items():
        fn = _bound(build, key, row.args)
        fn.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[q for n, q in sig.parameters.items() if n != "name" and n not in row.args])
        fn.__doc__, fn.__name__, fn.__qualname__, fn.__module__ = row.doc, key, key, build.__module__
        register_model(family, default_input, recipe=row.recipe)(fn)


def _bound(build: Callable[..., nn.Module], name: str, args: dict[str, Any]) -> Callable[..., nn.Module]:
    def builder(**kwargs: Any) -> nn.Module:
        return build(name=name, **args, **kwargs)

    return builder


def _ensure_loaded() -> None:
    # Importing the package registers every family (each module decorates its builders).
    from . import _families  # noqa: F401


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered model names matching a glob ``pattern`` (and ``family``), sorted."""
    _ensure_loaded()
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (family is None or e.family == family)
    )


def model_entry(name: str) -> _Entry:
    """The registry entry of ``name``; :class:`ModelError` with suggestions when unknown."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ModelError(
            f"unknown model {name!r}",
            hint=suggest(name, _REGISTRY) + " (`cnnkit models` lists them; "
            "`torchvision:NAME` builds a torchvision model)",
        )
    return _REGISTRY[name]


def _parse_size(input_size: int | tuple[int, ...] | None, default: tuple[int, int, int], in_chans: int | None):
    c, h, w = default
    if in_chans is not None:
        c = int(in_chans)
    if input_size is not None:
        if isinstance(input_size, int):
            h = w = int(input_size)
        elif len(input_size) == 2:
            h, w = (int(v) for v in input_size)
        elif len(input_size) == 3:
            c2, h, w = (int(v) for v in input_size)
            if in_chans is None:
                c = c2
        else:
            raise ModelError(f"input_size {input_size!r} must be an int, (H, W) or (C, H, W)")
    return c, h, w


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int | None = None,
    input_size: int | tuple[int, ...] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model by name.

    ``input_size`` may be an int, ``(H, W)`` or ``(C, H, W)``; families use it to pick their stem
    (for example a CIFAR-style stem below 64 px). ``torchvision:NAME`` and ``timm:NAME`` build those
    libraries' models through the same call.
    """
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    if name.startswith(("torchvision:", "timm:")):
        from .external import create_external

        return create_external(name, num_classes, in_chans, input_size, kwargs)
    entry = model_entry(name)
    c, h, w = _parse_size(input_size, entry.default_input, in_chans)
    check_model_args(name, kwargs)
    try:
        model = entry.fn(num_classes=num_classes, in_chans=c, input_size=(h, w), **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelError(f"cannot build {name!r} with {kwargs}: {e}") from e
    info: ModelInfo = model.info
    info.name, info.num_classes, info.kwargs = name, num_classes, dict(kwargs)
    info.input_size = (c, h, w)
    return model


_BUILDER_ARGS = ("num_classes", "in_chans", "input_size")
# Ranges of model arguments whose absurd values would build a broken or gigantic network instead of
# failing: (low, high, high is exclusive). Probabilities stay below 1; widths and counts stay sane.
_ARG_RANGES: dict[str, tuple[float, float, bool]] = {
    "dropout": (0.0, 1.0, True), "dropout_aux": (0.0, 1.0, True), "drop_rate": (0.0, 1.0, True),
    "width_mult": (1e-3, 4.0, False), "kernel_5x5": (1, 7, False), "reduction": (1, 1024, False),
    "hidden": (1, 65536, False),
}  # fmt: skip


def _expected_type(p: inspect.Parameter) -> type | None:
    """The plain type a builder argument takes (from its default, else its annotation), or None if unknown."""
    if p.default is not inspect.Parameter.empty and p.default is not None:
        if isinstance(p.default, (tuple, list)):
            return list
        return type(p.default) if isinstance(p.default, (bool, int, float, str)) else None
    names = {t.strip() for t in str(p.annotation).split("|")} - {"None"}
    known = {"bool": bool, "int": int, "float": float, "str": str}
    return known.get(next(iter(names))) if len(names) == 1 else None


def _type_ok(value: Any, want: type) -> bool:
    if want is bool:
        return isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if want is list:
        return isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, want)


def check_model_args(name: str, kwargs: dict[str, Any]) -> None:
    """Check extra builder arguments by name, type and range before anything is built.

    A YAML ``--model-args '{classic: [1]}'`` would otherwise be truthy and silently change the network;
    ``{dropout: 5}`` or ``{hidden: [1000000000]}`` would fail (or allocate gigabytes) deep inside PyTorch.
    """
    entry = model_entry(name)
    sig = inspect.signature(entry.fn)
    accepts_var = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    allowed = [p for p in sig.parameters if p not in _BUILDER_ARGS]
    for k, v in kwargs.items():
        if k in _BUILDER_ARGS:
            raise ModelError(f"model argument {k!r} is set by cnnkit, not by the model arguments",
                             hint="the data decides the classes and channels; pass the input size on its own")  # fmt: skip
        if k not in sig.parameters:
            if accepts_var:
                continue
            raise ModelError(
                f"model {name!r} has no argument {k!r}",
                hint=(suggest(k, allowed) + "; its arguments are: " + ", ".join(allowed)) if allowed
                else "it takes no extra arguments",
            )  # fmt: skip
        want = _expected_type(sig.parameters[k])
        if want is not None and not _type_ok(v, want):
            kind = {list: "a list of whole numbers", bool: "true or false", int: "a whole number",
                    float: "a finite number", str: "text"}[want]  # fmt: skip
            raise ModelError(f"model argument {k}={v!r} of {name!r} must be {kind}"[:300])
        if k in _ARG_RANGES:
            lo, hi, open_hi = _ARG_RANGES[k]
            values = list(v) if isinstance(v, (list, tuple)) else [v]
            for x in values:
                if isinstance(x, (int, float)) and not (lo <= x and (x < hi if open_hi else x <= hi)):
                    raise ModelError(f"model argument {k}={v!r} of {name!r} is out of range",
                                     hint=f"use {lo:g} <= {k} {'<' if open_hi else '<='} {hi:g}")  # fmt: skip


def model_info(model: nn.Module) -> ModelInfo:
    """The :class:`ModelInfo` of a cnnkit model (raises for foreign modules)."""
    info = getattr(model, "info", None)
    if not isinstance(info, ModelInfo):
        raise ModelError(f"{type(model).__name__} is not a cnnkit model (no .info)")
    return info


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    """``model.get_submodule`` with a clear error listing valid layer names."""
    try:
        return model.get_submodule(path)
    except AttributeError as e:
        names = [n for n, _ in model.named_modules() if n]
        raise ModelError(f"model has no layer {path!r}", hint=suggest(path, names)) from e


@torch.no_grad()
def dummy_forward(model: nn.Module, input_size: tuple[int, int, int], batch: int = 1) -> torch.Tensor:
    """Run one zero batch through ``model`` in eval mode (used to size lazily built heads)."""
    was = model.training
    model.eval()
    out = model(torch.zeros(batch, *input_size))
    model.train(was)
    return out
