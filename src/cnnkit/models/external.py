"""Models from other libraries through ``create_model``: ``torchvision:NAME`` and ``timm:NAME``.

The model stays the library's own module, so its state dict keeps the library's keys (pretrained files
load unchanged). cnnkit attaches what the rest of the toolkit asks for: ``model.info`` (a
:class:`ModelInfo` with the classifier path found by inspection) and, for torchvision models,
``forward_features`` / ``forward_head`` / ``reset_classifier`` as bound methods (timm models have
their own). Attributes that are not modules or tensors never enter the state dict.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from ..errors import ModelError, suggest
from .base import reset_classifier
from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, _parse_size

# torchvision builders whose auxiliary heads would make training-mode outputs tuples.
_AUX_MODELS = ("googlenet", "inception_v3")


def create_external(name: str, num_classes: int, in_chans: int | None, input_size: int | tuple[int, ...] | None,
                    kwargs: dict[str, Any]) -> nn.Module:  # fmt: skip
    """Build ``torchvision:NAME`` or ``timm:NAME`` (randomly initialised) and attach a :class:`ModelInfo`.

    Called by :func:`~cnnkit.models.create_model`, which holds the defaults and checks ``num_classes``.
    """
    lib, _, model_name = name.partition(":")
    if not model_name:
        raise ModelError(f"model name missing after {lib + ':'!r}", hint=f"for example {lib}:resnet18")
    if lib == "torchvision":
        return _torchvision(name, model_name, num_classes, in_chans, input_size, kwargs)
    if lib == "timm":
        return _timm(name, model_name, num_classes, in_chans, input_size, kwargs)
    raise ModelError(f"unknown model library {lib!r}", hint="use torchvision:NAME or timm:NAME")


def _torchvision(name: str, model_name: str, num_classes: int, in_chans: int | None,
                 input_size: int | tuple[int, ...] | None, kwargs: dict[str, Any]) -> nn.Module:
    import torchvision

    available = torchvision.models.list_models()
    if model_name not in available:
        raise ModelError(f"torchvision has no model {model_name!r}", hint=suggest(model_name, available))
    if model_name in _AUX_MODELS:
        # Plain tensors in training mode by default (and silence torchvision's init_weights warning).
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    default = (3, 299, 299) if model_name == "inception_v3" else (3, 224, 224)
    c, h, w = _parse_size(input_size, default, in_chans)
    try:
        model = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelError(f"cannot build {name!r} with {kwargs}: {e}") from e
    if c != 3:
        _replace_input_conv(model, c, name)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else ((0.5,) * c, (0.5,) * c)
    model.info = ModelInfo(name, "torchvision", (c, h, w), num_classes, mean, std, find_classifier(model),
                           kwargs=dict(kwargs))  # fmt: skip
    model.forward_features = types.MethodType(_tv_forward_features, model)
    model.forward_head = types.MethodType(_tv_forward_head, model)
    model.reset_classifier = types.MethodType(reset_classifier, model)
    return model


def _timm(name: str, model_name: str, num_classes: int, in_chans: int | None,
          input_size: int | tuple[int, ...] | None, kwargs: dict[str, Any]) -> nn.Module:
    try:
        import timm
    except ImportError as e:
        raise ModelError(f"{name!r} needs the timm package, which is not installed",
                         hint="pip install timm   (or: pip install 'cnnkit[timm]')") from e  # fmt: skip
    if not timm.is_model(model_name):
        raise ModelError(f"timm has no model {model_name!r}", hint=suggest(model_name, timm.list_models()))
    cfg_in = tuple(timm.get_pretrained_cfg_value(model_name, "input_size") or (3, 224, 224))
    c, h, w = _parse_size(input_size, cfg_in, in_chans)
    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=c, **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"cannot build {name!r} with {kwargs}: {e}") from e
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN)) if c == 3 else (0.5,) * c
    std = tuple(cfg.get("std", IMAGENET_STD)) if c == 3 else (0.5,) * c
    classifier = cfg.get("classifier") or find_classifier(model)
    if isinstance(classifier, (list, tuple)):
        classifier = classifier[0]
    model.info = ModelInfo(name, "timm", (c, h, w), num_classes, mean, std, classifier, kwargs=dict(kwargs))
    # timm models bring their own forward_features / forward_head / reset_classifier; the last one
    # is wrapped only so model.info keeps the class count.
    model.reset_classifier = types.MethodType(_timm_reset_classifier, model)
    return model


def _timm_reset_classifier(self: nn.Module, num_classes: int, *args: Any, **kwargs: Any) -> None:
    type(self).reset_classifier(self, num_classes, *args, **kwargs)
    self.info.num_classes = num_classes


def find_classifier(model: nn.Module) -> str:
    """Attribute path of the final class-scoring layer: ``fc``, ``classifier``, ``head``, or ``classifier.N``."""
    for attr in ("fc", "classifier", "head", "heads", "last_linear"):
        m = getattr(model, attr, None)
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            return attr
        if isinstance(m, nn.Module):
            inner = [n for n, sub in m.named_modules() if n and isinstance(sub, (nn.Linear, nn.Conv2d))]
            if inner:
                return f"{attr}.{inner[-1]}"
    last = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ModelError(f"cannot find the classifier layer of {type(model).__name__}")
    return last[-1]


def _replace_input_conv(model: nn.Module, in_chans: int, name: str) -> None:
    # A fresh first convolution with the same geometry; its state-dict key stays the same.
    for path, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3:
            parent_path, _, attr = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            setattr(parent, attr, nn.Conv2d(in_chans, m.out_channels, m.kernel_size, m.stride, m.padding,
                                            m.dilation, m.groups, m.bias is not None, m.padding_mode))  # fmt: skip
            return
    raise ModelError(f"cannot change the input channels of {name!r}: no 3-channel convolution found")


def _trunk(model: nn.Module) -> list[nn.Module] | None:
    """Children before global pooling, for models built as a chain (ResNet, GoogLeNet, RegNet, ...)."""
    # Auxiliary heads hang off the trunk but are not part of the feature path.
    names = [n for n, m in model._modules.items() if m is not None and not n.lower().startswith("aux")]
    if "avgpool" not in names:
        return None
    return [model._modules[n] for n in names[: names.index("avgpool")]]


def _tv_forward_features(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Feature map before global pooling (``features`` output, or the trunk before ``avgpool``)."""
    if isinstance(getattr(self, "features", None), nn.Module):
        return self.features(x)
    trunk = _trunk(self)
    if trunk is None:
        raise ModelError(f"forward_features is not available for {self.info.name!r}",
                         hint="timm:NAME models all provide it")  # fmt: skip
    if getattr(self, "transform_input", False):
        x = self._transform_input(x)
    for m in trunk:
        x = m(x)
    return x


def _tv_forward_head(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits from the output of :func:`_tv_forward_features`."""
    if isinstance(getattr(self, "features", None), nn.Module):
        # These models' forward is features -> head; run it with the features stage bypassed.
        features = self._modules["features"]
        self._modules["features"] = nn.Identity()
        try:
            return type(self).forward(self, x)
        finally:
            self._modules["features"] = features
    names = [n for n, m in self._modules.items() if m is not None and not n.lower().startswith("aux")]
    for n in names[names.index("avgpool"):]:
        m = self._modules[n]
        if isinstance(m, nn.Linear) and x.dim() > 2:
            x = torch.flatten(x, 1)
        x = m(x)
    return x
