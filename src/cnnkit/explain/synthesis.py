"""Images made by back-propagating to the pixels: class models and style transfer.

- :func:`class_visualisation`: the image a network finds most typical of a class (Simonyan, Vedaldi
  and Zisserman 2013): gradient ascent on the class *score* (pre-softmax) minus an L2 penalty on the
  image, with the jitter and blurring of Yosinski et al. (2015) so the result is not high-frequency
  noise.
- :func:`style_transfer`: Gatys, Ecker and Bethge (2016), as in the lecture: find the image ``I``
  minimising ``(F(C) - F(I))^2 + (G(S) - G(I))^2`` where ``F`` are a layer's features and ``G`` the
  Gram matrix of a layer's features (channel correlations over pixels), by gradient descent on the
  pixels.

No pretrained ImageNet weights are available offline, so style transfer runs on whatever network is
given: a trained run, or a *randomly initialised* VGG. Random convolutional features are known to
capture texture statistics well (Ustyuzhaninov et al. 2017, "What does it take to generate natural
textures?"; He et al. 2016 on random-weight style transfer); their content reconstruction is cruder
than with a trained VGG-19.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ._common import PixelModel, device_of, inner, resolve_layer


@dataclass
class ClassVisualisation:
    """The synthesised image of one class and how sure the model is about it."""

    image: torch.Tensor  # C x H x W in [0, 1]
    target: int
    score: float  # the class score (logit) reached
    prob: float  # its softmax probability
    history: list[float] = field(default_factory=list)  # score per step


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    k = max(3, 2 * round(2 * sigma) + 1)
    return gaussian_blur(x, [k, k], [sigma, sigma])


def class_visualisation(model: nn.Module, target: int, input_size: Sequence[int], steps: int = 150,
                        lr: float = 0.05, l2: float = 0.1, jitter: int | None = None, blur_every: int = 4,
                        blur_sigma: float = 0.7, seed: int = 0) -> ClassVisualisation:
    """Maximise ``score_target(I) - l2 * ||I - mean||^2`` over images ``I`` in [0, 1] (Simonyan et al.).

    ``model`` takes [0, 1] pixels (see ``pixel_model``). The image starts as the model's mean gray
    plus a little noise and is optimised with Adam; every step the image is shifted by up to
    ``jitter`` pixels (default: 1/16 of the side) before the forward pass, and every ``blur_every``
    steps it is blurred: both suppress the high-frequency patterns that raise the score without
    looking like anything (Yosinski et al. 2015).

    ``l2`` multiplies the *sum* of squared deviations from the mean gray; the defaults were chosen
    by eye on LeNet-5/digits (l2 = 0.001 saturates every pixel, 0.3 washes the strokes out) and
    every class still reaches ~100% probability.
    """
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    _check_rates(lr, l2=l2)
    c, h, w = (int(v) for v in input_size)
    dev = device_of(model)
    model.eval()
    g = torch.Generator().manual_seed(seed)
    mean = model.mean.to(dev) if isinstance(model, PixelModel) else torch.full((1, c, 1, 1), 0.5, device=dev)
    img = (mean + 0.02 * torch.randn(1, c, h, w, generator=g).to(dev)).clamp(0, 1).requires_grad_(True)
    opt = torch.optim.Adam([img], lr=lr)
    jitter = max(1, min(h, w) // 16) if jitter is None else jitter
    history = []
    for step in range(steps):
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g)) if jitter else (0, 0)
        shifted = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
        score = model(shifted)[0, target]
        loss = -score + l2 * ((img - mean) ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            if blur_every and (step + 1) % blur_every == 0 and step < steps - 1:
                img.copy_(_blur(img, blur_sigma))
            img.clamp_(0, 1)
        history.append(float(score.detach()))
    with torch.no_grad():
        logits = model(img)[0]
    return ClassVisualisation(img.detach()[0].cpu(), target, float(logits[target]),
                              float(logits.softmax(0)[target]), history)  # fmt: skip


# --- style transfer ---------------------------------------------------------------------------------


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """``N x C x C`` channel correlations of features ``N x C x H x W``, divided by ``C * H * W``."""
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class _Stop(Exception):
    """Raised by a hook once the last needed layer has run: the rest of the network is not needed."""


class FeatureExtractor:
    """Outputs of named layers of ``model`` for an input, stopping the forward pass after the last one."""

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        self.model, self.layers = model, list(layers)
        self.mods = {n: resolve_layer(model, n)[1] for n in self.layers}
        self.last_needed: str | None = None

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)

        def make(name: str):
            def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
                # clone: the in-place ReLU after a convolution would overwrite its output.
                feats[name] = out.clone()
                if set(feats) >= wanted:
                    raise _Stop

            return hook

        handles = [m.register_forward_hook(make(n)) for n, m in self.mods.items()]
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return feats


def default_style_layers(model: nn.Module, n_style: int = 5) -> tuple[list[str], str]:
    """``(style layers, content layer)``: the first ``n_style`` convolutions for style, the 4th for content.

    Gatys et al. take style from conv1_1..conv5_1 of VGG-19 (every scale) and content from conv4_2;
    "the first five convolutions" and "the fourth" are the same idea for any network (the last
    convolution when there are fewer than four).
    """
    convs = [n for n, m in inner(model).named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError("style transfer needs a model with convolutional layers")
    return convs[:n_style], convs[min(3, len(convs) - 1)]


def _check_rates(lr: float, l2: float = 0.0, style_weight: float = 1.0) -> None:
    """Refuse step sizes and weights that make the optimisation meaningless (or make PyTorch raise)."""
    import math

    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr}")
    if not (math.isfinite(l2) and l2 >= 0):
        raise ConfigError(f"l2 must be >= 0, got {l2}", hint="a negative penalty rewards saturated pixels")
    if not (math.isfinite(style_weight) and style_weight > 0):
        raise ConfigError(f"style weight must be > 0, got {style_weight}")


def _fits(extract: FeatureExtractor, x: torch.Tensor, what: str) -> dict[str, torch.Tensor]:
    """Features of ``x``, or a ConfigError when the image is smaller than the network's windows.

    PyTorch reports a convolution or pooling window larger than its (padded) input as a RuntimeError
    ("Kernel size can't be greater than actual input size", "Output size is too small"); for style
    transfer that means the image side (``--size``, or a thin image's short side) is too small.
    """
    try:
        return extract(x)
    except RuntimeError as e:
        if "input size" not in str(e):
            raise
        h, w = x.shape[-2:]
        raise ConfigError(f"the {what} image ({h}x{w} px after resizing) is too small for this network's layers",
                          hint="raise --size, or use an image that is less elongated") from None  # fmt: skip


@dataclass
class StyleTransferResult:
    """The stylised image and the losses at the start and the end of the optimisation."""

    image: torch.Tensor  # C x H x W in [0, 1]
    style_loss_start: float
    style_loss_end: float
    content_loss_start: float
    content_loss_end: float
    style_layers: list[str]
    content_layer: str
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def style_ratio(self) -> float:
        """How many times the style loss fell (start / end)."""
        return self.style_loss_start / max(self.style_loss_end, 1e-12)


def style_transfer(model: nn.Module, content: torch.Tensor, style: torch.Tensor, steps: int = 200,
                   style_weight: float = 10.0, content_weight: float = 1.0, lr: float = 0.02,
                   optimizer: str = "adam", style_layers: Sequence[str] | None = None,
                   content_layer: str | None = None, init: str = "content", seed: int = 0) -> StyleTransferResult:
    """Render ``content`` (``1 x C x H x W`` in [0, 1]) in the style of ``style`` (any size, same channels).

    Losses are *relative*, so layers with large activations do not drown the others and the numbers
    mean the same for any network: style loss = mean over style layers of
    ``||G(I) - G(S)||^2 / ||G(S)||^2``, content loss = ``||F(I) - F(C)||^2 / ||F(C)||^2``.
    The image starts from the content (``init="content"``) or noise and is optimised with Adam
    (``lr`` per step in pixel units) or L-BFGS, clipped to [0, 1] after each step.
    """
    if optimizer not in ("adam", "lbfgs"):
        raise ConfigError(f"unknown optimizer {optimizer!r}", hint="use adam or lbfgs")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    _check_rates(lr, style_weight=style_weight)
    if content.shape[1] != style.shape[1]:
        raise ConfigError(f"content has {content.shape[1]} channels but style has {style.shape[1]}")
    dev = device_of(model)
    model.eval()
    d_style, d_content = default_style_layers(model)
    s_layers = list(style_layers) if style_layers else d_style
    c_layer = content_layer or d_content
    extract = FeatureExtractor(model, [*dict.fromkeys([*s_layers, c_layer])])
    content, style = content.to(dev), style.to(dev)
    with torch.no_grad():
        fs = _fits(extract, style, "style")
        fc = _fits(extract, content, "content")
        g_style = {n: gram_matrix(fs[n]) for n in s_layers}
        f_content = fc[c_layer]

    def losses(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = extract(img)
        sl = torch.stack([((gram_matrix(f[n]) - g_style[n]) ** 2).sum() / (g_style[n] ** 2).sum().clamp_min(1e-12)
                          for n in s_layers]).mean()  # fmt: skip
        cl = ((f[c_layer] - f_content) ** 2).sum() / (f_content**2).sum().clamp_min(1e-12)
        return sl, cl

    if init == "content":
        img = content.clone()
    elif init == "noise":
        g = torch.Generator().manual_seed(seed)
        img = torch.rand(content.shape, generator=g).to(dev)
    else:
        raise ConfigError(f"unknown init {init!r}", hint="use content or noise")
    img.requires_grad_(True)
    with torch.no_grad():
        s0, c0 = losses(img)
    history: list[dict[str, float]] = [{"step": 0, "style": float(s0), "content": float(c0)}]

    if optimizer == "adam":
        opt = torch.optim.Adam([img], lr=lr)
        for step in range(1, steps + 1):
            sl, cl = losses(img)
            # Gradients for the pixels only: the network's own .grad stays untouched.
            (img.grad,) = torch.autograd.grad(style_weight * sl + content_weight * cl, img)
            opt.step()
            with torch.no_grad():
                img.clamp_(0, 1)
            history.append({"step": step, "style": float(sl.detach()), "content": float(cl.detach())})
    else:
        # One L-BFGS "step" = one function evaluation; clipping inside the closure as in PyTorch's
        # neural-style tutorial keeps the pixels valid without a box-constrained solver.
        opt = torch.optim.LBFGS([img], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")
        count = [0]

        def closure() -> torch.Tensor:
            with torch.no_grad():
                img.clamp_(0, 1)
            sl, cl = losses(img)
            loss = style_weight * sl + content_weight * cl
            (img.grad,) = torch.autograd.grad(loss, img)
            count[0] += 1
            history.append({"step": count[0], "style": float(sl.detach()), "content": float(cl.detach())})
            return loss

        opt.step(closure)
        with torch.no_grad():
            img.clamp_(0, 1)
    with torch.no_grad():
        s1, c1 = losses(img)
    return StyleTransferResult(
        image=img.detach()[0].cpu(), style_loss_start=float(s0), style_loss_end=float(s1),
        content_loss_start=float(c0), content_loss_end=float(c1), style_layers=s_layers,
        content_layer=c_layer, history=history,
    )  # fmt: skip


def feature_network(name: str, channels: int = 3, weights: str | None = None, seed: int = 0) -> nn.Module:
    """A :class:`PixelModel` of a registered architecture for style transfer, random or from ``weights``.

    Random weights are drawn with a fixed ``seed`` so results repeat. When the builder has a
    ``small_input`` switch it is turned on: only the convolutions are used, and the small head
    avoids allocating (for VGG) a 100M-parameter classifier that would never run.
    """
    import inspect

    from ..models import create_model
    from ..models.registry import model_entry

    kwargs = {}
    if ":" not in name and "small_input" in inspect.signature(model_entry(name).fn).parameters:
        kwargs["small_input"] = True
    torch.manual_seed(seed)
    net = create_model(name, num_classes=10, in_chans=channels, **kwargs)
    if weights:
        _load_feature_weights(net, weights)
    info = net.info
    return PixelModel(net, info.mean, info.std).eval()


def _load_feature_weights(net: nn.Module, path: str) -> None:
    """Load a state dict (safetensors or ``torch.save``) into the feature layers; the head may differ."""
    from pathlib import Path

    from ..errors import CheckpointError

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"weights file {path!r} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors/torch raise several types for damaged files
        from ..models.weights import load_error_reason, refused_global

        # Fix (issue 18): name the refused pickled object instead of relaying PyTorch's multi-line
        # message, which advises retrying with weights_only=False (that would run the payload).
        refused = refused_global(e)
        if refused:
            raise CheckpointError(f"weights {path!r} hold objects cnnkit refuses to unpickle (it asks to run {refused})",
                                  hint="only plain tensors load (weights_only=True): save the state dict with "
                                  "torch.save(model.state_dict(), path) or as .safetensors") from e  # fmt: skip
        raise CheckpointError(f"cannot read weights {path!r}: {load_error_reason(e)}") from e
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    convs = [k for k in own if k.endswith("weight") and own[k].ndim == 4]
    if not any(k in usable for k in convs):
        raise CheckpointError(f"{path!r} holds no convolution weights for this model",
                              hint="pass the architecture the weights were trained with (--model NAME)")  # fmt: skip
    net.load_state_dict(usable, strict=False)


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``1 x C x H x W`` so its longer side is ``size`` (antialiased), keeping the aspect ratio."""
    h, w = x.shape[-2:]
    s = size / max(h, w)
    return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                         antialias=True, align_corners=False).clamp(0, 1)  # fmt: skip
