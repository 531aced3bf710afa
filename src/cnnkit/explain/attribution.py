"""Where a network looks: attribution maps for one class, computed with Captum.

Methods (named as in the papers):

- ``saliency``: |d score / d pixel| (Simonyan, Vedaldi and Zisserman 2013), max over colour channels.
- ``gradcam``: class-weighted sum of a convolutional layer's maps, ReLU'd and upsampled to the image
  (Selvaraju et al. 2017); by default the last ``Conv2d``.
- ``guided-backprop``: gradients with the ReLUs letting only positive signals through, both ways
  (Springenberg et al. 2015).
- ``deconvnet``: Zeiler and Fergus's deconvolutional network (2014): ReLUs applied to the backward
  signal only, i.e. the lecture's "save the state of the non-linearities, run the transposed
  convolutions back to pixels".
- ``occlusion``: how much the class score drops when a gray square hides each region (Zeiler and
  Fergus 2014); model-agnostic, no gradients.
- ``integrated-gradients``: gradients averaged along the straight path from a black image,
  times the pixel change (Sundararajan et al. 2017); the map sums to score(x) - score(baseline).

Every map is for pixels in [0, 1] (see :class:`~cnnkit.explain._common.PixelModel`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, suggest
from ._common import PixelModel, inner, require_captum, resolve_layer, same_layer, without_inplace

METHODS = ("saliency", "gradcam", "guided-backprop", "deconvnet", "occlusion", "integrated-gradients")
# Maps whose sign means something (the score goes up or down) are shown on a diverging scale.
SIGNED = frozenset({"occlusion", "integrated-gradients"})


def check_method(method: str) -> str:
    """``method`` if known, else :class:`ConfigError` with a suggestion."""
    if method not in METHODS:
        raise ConfigError(f"unknown explanation method {method!r}", hint=suggest(method, METHODS))
    return method


def _targets(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """One class index per image: ``target`` broadcast, or the model's prediction when ``None``."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(1)
    t = torch.as_tensor(target, dtype=torch.long, device=x.device)
    return t.expand(len(x)).clone() if t.ndim == 0 else t


# Modules that rectify a convolution's output; Grad-CAM is defined on the rectified maps.
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish)


@torch.no_grad()
def gradcam_layer(model: nn.Module, layer: str | nn.Module | None, x: torch.Tensor) -> tuple[str, str]:
    """``(layer asked for, layer hooked)``: a convolution followed by its activation is read after it.

    Grad-CAM (Selvaraju et al.) weighs the *rectified* maps ``A^k >= 0`` of the last convolutional
    layer. Read before the ReLU, the maps are mostly negative (bias, background) and the weighted
    sum is often below zero everywhere, so the ReLU'd CAM is blank; this was the case for LeNet-5 on
    digits. So when the convolution's output goes straight (or through a BatchNorm) into an
    activation module, the activation's output is used.
    """
    name, target = resolve_layer(model, layer, nn.Conv2d, last=True)
    net = inner(model)
    names = {m: n for n, m in net.named_modules()}
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in net.modules() if not list(m.children())]
    try:
        model.eval()
        model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(target, nn.Conv2d) or target not in order:
        return name, name
    for m in order[order.index(target) + 1 :]:
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            continue
        if isinstance(m, _ACTIVATIONS):
            return name, names[m]
        break
    return name, name


def gradcam(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None,
            layer: str | nn.Module | None = None, upsample: bool = True) -> torch.Tensor:
    """Grad-CAM heatmaps ``N x H x W`` (>= 0) of ``target`` at ``layer`` (default: the last Conv2d).

    The layer's (rectified, see :func:`gradcam_layer`) maps are weighted by their spatially
    averaged gradients, summed and ReLU'd (Captum's ``LayerGradCam``), then bilinearly upsampled to
    the input size when ``upsample``.
    """
    ca = require_captum()
    m = without_inplace(model)
    name, hooked = gradcam_layer(m, layer if not isinstance(layer, nn.Module) else resolve_layer(model, layer)[0], x)
    t = _targets(m, x, target)
    cam = ca.LayerGradCam(m, same_layer(m, hooked)).attribute(x, target=t, relu_attributions=True)
    if cam.ndim != 4:
        raise ConfigError(f"Grad-CAM needs a layer with spatial maps; {name!r} gives shape {tuple(cam.shape)}",
                          hint="pick a convolutional layer with --layer")  # fmt: skip
    if upsample:
        cam = ca.LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")
    return cam[:, 0].detach()


def occlusion(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None,
              window: int | None = None, stride: int | None = None,
              baseline: float | torch.Tensor | None = None) -> torch.Tensor:
    """Occlusion sensitivity ``N x H x W``: drop in the target score when a square hides each pixel.

    ``window`` defaults to a sixth of the shorter side (at least 3), ``stride`` to half the window.
    The square is filled with ``baseline``: by default the model's normalisation mean, the gray the
    network sees as "nothing" (0 after normalisation), so hiding is not itself a strong signal.
    Positive values mark regions that support the class; negative ones count against it.
    """
    ca = require_captum()
    h, w = x.shape[-2:]
    window = window or max(3, min(h, w) // 6)
    stride = stride or max(1, window // 2)
    if baseline is None:
        baseline = model.mean if isinstance(model, PixelModel) else 0.5
    if isinstance(baseline, torch.Tensor):
        baseline = baseline.to(x.device).expand(1, x.shape[1], h, w)
    t = _targets(model, x, target)
    with torch.no_grad():
        attr = ca.Occlusion(model).attribute(
            x, target=t, sliding_window_shapes=(x.shape[1], window, window), strides=(x.shape[1], stride, stride),
            baselines=baseline, perturbations_per_eval=64,
        )  # fmt: skip
    return attr.mean(1).detach()


@contextlib.contextmanager
def _quiet_relu_hooks() -> Iterator[None]:
    """Silence Captum's notice that it hooks the ReLUs: that is the method, not a problem to report."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        yield


def _captum_pixels(method: str) -> Callable[..., torch.Tensor]:
    """A function ``(model, x, targets) -> N x C x H x W`` raw attribution for gradient methods."""
    ca = require_captum()

    def saliency(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ca.Saliency(m).attribute(x, target=t, abs=True)

    def guided(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with _quiet_relu_hooks():
            return ca.GuidedBackprop(m).attribute(x, target=t)

    def deconv(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with _quiet_relu_hooks():
            return ca.Deconvolution(m).attribute(x, target=t)

    def integrated(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Black baseline: for photographs and digits alike "no signal" is dark; 32 steps keep the
        # completeness error small for small CNNs (Captum's default is 50).
        return ca.IntegratedGradients(m).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=32,
                                                   internal_batch_size=64)  # fmt: skip

    return {"saliency": saliency, "guided-backprop": guided, "deconvnet": deconv,
            "integrated-gradients": integrated}[method]  # fmt: skip


def reduce_channels(attr: torch.Tensor, method: str) -> torch.Tensor:
    """``N x C x H x W`` pixel attribution -> ``N x H x W`` map, the way each method's paper shows it.

    Saliency, guided backprop and deconvnet: max of |a| over colour channels (Simonyan et al.);
    integrated gradients: the signed sum over channels (keeps the completeness property).
    """
    if method == "integrated-gradients":
        return attr.sum(1)
    return attr.abs().amax(1)


def attribute(model: nn.Module, x: torch.Tensor, method: str, target: int | torch.Tensor | None = None,
              layer: str | nn.Module | None = None, **kwargs) -> torch.Tensor:
    """Attribution map ``N x H x W`` of class ``target`` (default: the predicted class) for images ``x``.

    ``model`` maps ``x`` to logits; wrap a trained network with
    :func:`~cnnkit.explain.pixel_model` so ``x`` is in [0, 1]. ``method`` is one of :data:`METHODS`;
    ``layer`` is used by Grad-CAM; extra keywords go to :func:`occlusion` (``window``, ``stride``,
    ``baseline``). Maps of :data:`SIGNED` methods can be negative; the others are >= 0.
    """
    check_method(method)
    x = x.detach()
    was = model.training
    model.eval()
    try:
        if method == "gradcam":
            return gradcam(model, x, target, layer=layer)
        if method == "occlusion":
            return occlusion(model, x, target, **kwargs)
        m = without_inplace(model)
        t = _targets(m, x, target)
        raw = _captum_pixels(method)(m, x.clone().requires_grad_(True), t)
        return reduce_channels(raw.detach(), method)
    finally:
        model.train(was)


# --- sanity checks (Adebayo et al. 2018, "Sanity checks for saliency maps") -----------------------


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer's parameters re-initialised (the model-randomisation test).

    Uses each layer's own ``reset_parameters`` (PyTorch's default init), so the architecture and
    the normalisation stay, only what was learnt is gone.
    """
    import copy

    m = copy.deepcopy(model)
    torch.manual_seed(seed)
    for mod in m.modules():
        reset = getattr(mod, "reset_parameters", None)
        if callable(reset):
            reset()
    return m.eval()


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (flattened); 1 = same ordering of pixels."""
    from scipy.stats import spearmanr

    a_, b_ = a.detach().flatten().cpu().numpy(), b.detach().flatten().cpu().numpy()
    if np.ptp(a_) == 0 or np.ptp(b_) == 0:
        # A constant map (e.g. Grad-CAM all zero after its ReLU) orders no pixel: no shared ranking.
        return 0.0
    return float(spearmanr(a_, b_).statistic)


def randomisation_check(model: nn.Module, x: torch.Tensor, method: str, target: int | torch.Tensor | None = None,
                        layer: str | nn.Module | None = None, seed: int = 0) -> list[float]:
    """Per image, the rank correlation between ``method``'s map of ``model`` and of a randomised copy.

    A method that explains the *model* gives a low correlation; one that mostly reflects the image
    (an edge detector would) keeps it high whatever the weights are. The target defaults to the
    trained model's prediction and is kept for the randomised one, so only the weights differ.
    """
    t = _targets(model, x, target)
    name = resolve_layer(model, layer)[0] if method == "gradcam" else None
    before = attribute(model, x, method, t, layer=name)
    after = attribute(randomized_copy(model, seed), x, method, t, layer=name)
    return [rank_correlation(a, b) for a, b in zip(before, after, strict=True)]


def top_fraction_mask(heat: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of the ``fraction`` of pixels with the highest values of ``heat`` (``H x W``)."""
    k = max(1, round(fraction * heat.numel()))
    thresh = heat.flatten().topk(k).values[-1]
    return heat >= thresh


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of two boolean masks."""
    inter = (a & b).sum().item()
    union = (a | b).sum().item()
    return inter / union if union else 1.0


def upsample_to(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``N x h x w`` maps bilinearly resized to ``size``."""
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
