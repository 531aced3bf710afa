"""One function per ``cnnkit`` explain subcommand: load the run, compute, write the figure, return numbers.

The CLI (:mod:`cnnkit.cli.explain`) only parses flags, calls these and prints what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from ._common import class_index, from_run, load_image, predict_proba, to_pixels, top_k
from .adversarial import RobustnessCurve, attack, robustness_curve
from .attribution import SIGNED, attribute, check_method
from .features import feature_maps, gabor_bank, layer_filters, top_activations
from .plots import (
    plot_adversarial,
    plot_attribution,
    plot_class_visualisations,
    plot_feature_maps,
    plot_filters,
    plot_robustness,
    plot_style_transfer,
    plot_top_activations,
)
from .synthesis import (
    ClassVisualisation,
    StyleTransferResult,
    class_visualisation,
    feature_network,
    resize_to,
    style_transfer,
)


def _load(run_dir: str | Path, device: str = "auto"):
    from ..engine.device import select_device
    from ..run import load_run

    run = load_run(run_dir, device=select_device(device))
    return run, from_run(run)


def _size(run) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in run.meta.input_size)
    return c, h, w


@dataclass
class ExplainResult:
    """What ``cnnkit explain`` computed for one image."""

    path: Path
    method: str
    target: str
    layer: str | None
    top: list[tuple[str, float]]


def attribution_of(model: torch.nn.Module, x: torch.Tensor, classes: list[str], method: str = "gradcam",
                   target: int | str | None = None, layer: str | None = None,
                   ) -> tuple[torch.Tensor, int, str | None, list[tuple[str, float]]]:  # fmt: skip
    """``(map, class index, layer shown, top-5)``: the attribution of ``target`` (default: the prediction) for one
    image ``x`` (``1 x C x H x W`` in [0, 1], on the model's device); what ``cnnkit explain`` draws."""
    from .attribution import gradcam_layer

    check_method(method)
    if layer is not None and method != "gradcam":
        raise ConfigError(f"--layer is only used by gradcam, not {method}", hint="drop --layer or use --method gradcam")
    probs = predict_proba(model, x)[0].cpu()
    t = class_index(target, classes, len(classes))
    t = int(probs.argmax()) if t is None else t
    shown = None
    if method == "gradcam":  # Grad-CAM reads after the layer's activation: say so when that is another module
        asked, hooked = gradcam_layer(model, layer, x)
        shown, layer = (asked if asked == hooked else f"{asked} (read after its activation {hooked})"), asked
    return attribute(model, x, method, t, layer=layer)[0].detach().cpu(), t, shown, top_k(probs, classes, 5)


def explain_image(run_dir: str | Path, image: str | Path, method: str = "gradcam", target: int | str | None = None,
                  layer: str | None = None, output: str | Path = "explain.png", device: str = "auto") -> ExplainResult:
    """Attribution map of ``method`` for ``target`` (default: the predicted class) beside the top-5 predictions."""
    check_method(method)  # before the run is loaded: a typo fails at once
    run, model = _load(run_dir, device)
    c, h, w = _size(run)
    x = load_image(image, c, (h, w)).to(next(model.parameters()).device)
    heat, t, shown, top = attribution_of(model, x, run.classes, method, target, layer)
    path = plot_attribution(x[0].cpu(), heat, top, method, run.classes[t], output, signed=method in SIGNED, layer=shown)
    return ExplainResult(path, method, run.classes[t], shown, top)


def show_filters(run_dir: str | Path, layer: str | None = None, output: str | Path = "filters.png",
                 gabor: bool = False, device: str = "auto") -> tuple[Path, str, tuple[int, ...]]:
    """Grid of a convolution's kernels (default: the first), optionally beside Gabor filters."""
    run, model = _load(run_dir, device)
    name, w = layer_filters(model, layer)
    bank = gabor_bank(int(w.shape[-1])) if gabor else ()
    path = plot_filters(w, output, layer=name, gabor=bank)
    return path, name, tuple(w.shape)


def show_feature_maps(run_dir: str | Path, image: str | Path, layer: str, output: str | Path = "maps.png",
                      max_maps: int = 32, device: str = "auto") -> tuple[Path, tuple[int, ...]]:
    """The maps one layer computes for an image."""
    from ._common import device_of, resolve_layer

    if max_maps < 1:
        raise ConfigError(f"--max-maps must be >= 1, got {max_maps}")
    run, model = _load(run_dir, device)
    c, h, w = _size(run)
    x = load_image(image, c, (h, w))
    name, mod = resolve_layer(model, layer)
    maps = feature_maps(model, x.to(device_of(model)), name)[0].cpu()
    path = plot_feature_maps(x[0], maps, f"{name} ({type(mod).__name__})", output, max_maps=max_maps)
    return path, tuple(maps.shape)


def show_top_activations(run_dir: str | Path, layer: str, unit: int, output: str | Path = "top.png",
                         data: str | None = None, split: str = "test", k: int = 9, device: str = "auto"):
    """The ``k`` images of a split of the run's data that excite ``unit`` of ``layer`` most."""
    from ..evaluate.runner import run_data

    run, model = _load(run_dir, device)
    part = run_data(run, data).split(split)
    top = top_activations(model, part.images, layer, unit, k=k)
    imgs = to_pixels(part.images[top.index])
    labels = [run.classes[int(part.labels[i])] for i in top.index]
    from ._common import resolve_layer

    kind = type(resolve_layer(model, top.layer)[1]).__name__
    title = (f"The {len(top.index)} {split} images that excite unit {unit} of {top.layer} ({kind}) most; "
             f"receptive field {top.rf_size[0]:.0f}x{top.rf_size[1]:.0f} px")  # fmt: skip
    path = plot_top_activations(imgs, top.box, top.score, labels, top.layer, unit, output, rf_size=top.rf_size,
                                title=title)  # fmt: skip
    return path, top


def dream(run_dir: str | Path, classes: Sequence[int | str] | str = "all", output: str | Path = "dream.png",
          steps: int = 150, lr: float = 0.05, l2: float = 0.1, seed: int = 0,
          device: str = "auto") -> list[ClassVisualisation]:
    """Class model visualisations (Simonyan et al.) of ``classes`` (names/indices, or ``"all"``), in one grid."""
    run, model = _load(run_dir, device)
    n = len(run.classes)
    if classes == "all":
        idx = list(range(n))
    else:
        items = [c for c in classes.split(",") if c.strip()] if isinstance(classes, str) else list(classes)
        if not items:
            raise ConfigError("--class names no class", hint="e.g. --class 3, --class 3,7 or --class all")
        idx = [class_index(str(c).strip() if isinstance(c, str) else c, run.classes, n) for c in items]
    if len(idx) > 50:
        raise ConfigError(f"{len(idx)} classes would make an unreadable grid", hint="pass up to 50 with --class A,B,C")
    out = [class_visualisation(model, i, _size(run), steps=steps, lr=lr, l2=l2, seed=seed) for i in idx]
    plot_class_visualisations([v.image for v in out], [run.classes[v.target] for v in out], [v.prob for v in out], output,
                              title=f"What the network thinks each class looks like ({steps} steps of gradient ascent)")  # fmt: skip
    return out


@dataclass
class StyleTransferReport:
    result: StyleTransferResult
    path: Path
    model: str
    size: tuple[int, int]


def _image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, refusing missing files, non-images and decompression bombs.

    Cheap (no pixel is decoded), so style transfer checks both images before building its network.
    """
    from ..data.images import BadImage, probe_image
    from ..errors import DataError

    if not Path(path).exists():
        raise DataError(f"image {str(path)!r} does not exist")
    if Path(path).is_dir():
        raise DataError(f"image {str(path)!r} is a folder, not an image file", hint="pass one image file")
    try:
        _, size = probe_image(path)
    except BadImage as e:
        raise DataError(f"cannot read image {str(path)!r}: {e.reason}", hint="is it a valid image file?") from None
    return size


def _read_rgb(path: str | Path, channels: int) -> torch.Tensor:
    """An image file as ``1 x C x H x W`` in [0, 1] at its own size (``load_image``, the explain commands' reader)."""
    return load_image(path, channels, None)


def style_transfer_files(content: str | Path, style: str | Path, model: str = "vgg11", weights: str | None = None,
                         output: str | Path = "style.png", steps: int = 200, size: int = 128,
                         optimizer: str = "adam", style_weight: float = 10.0, lr: float = 0.02,
                         seed: int = 0, device: str = "auto") -> StyleTransferReport:
    """Style transfer between two image files with a run folder's network or a (random) registered one.

    ``model`` is a run folder (its trained convolutions) or a registry name (random weights drawn with
    ``seed``, or loaded from ``weights``). Images are resized so their longer side is ``size``.
    """
    from ..engine.device import select_device
    from ..resolve import names_a_run, run_or_model

    _image_size(content), _image_size(style)  # a bad image fails before the network is built
    if weights and names_a_run(model):
        raise ConfigError("--weights is for a model name; a run folder brings its own weights")
    found = run_or_model(model, select_device(device))
    if isinstance(found, str):
        net = feature_network(found, weights=weights, seed=seed).to(select_device(device))
        channels = int(net.channels)
    else:
        net, channels = from_run(found), int(found.meta.input_size[0])
    dev = next(net.parameters()).device
    c = resize_to(_read_rgb(content, channels), size).to(dev)
    s = resize_to(_read_rgb(style, channels), size).to(dev)
    res = style_transfer(net, c, s, steps=steps, optimizer=optimizer, style_weight=style_weight, lr=lr, seed=seed)
    kind = f"run {Path(model).name}" if not isinstance(found, str) else f"{model}, " + (f"weights {Path(weights).name}" if weights else f"random weights (seed {seed})")  # fmt: skip
    title = (f"Style transfer with {kind}: style loss {res.style_loss_start:.3g} → {res.style_loss_end:.3g} "
             f"({res.style_ratio:.0f}x lower)")  # fmt: skip
    path = plot_style_transfer(c[0].cpu(), s[0].cpu(), res.image, res.history, output, title=title)
    return StyleTransferReport(res, path, kind, tuple(c.shape[-2:]))


@dataclass
class FoolResult:
    """An adversarial example and what the model says before and after."""

    path: Path
    method: str
    eps: float
    original: tuple[str, float]
    adversarial: tuple[str, float]
    target: str | None
    linf: float = 0.0
    fooled: bool = field(init=False)

    def __post_init__(self) -> None:
        self.fooled = self.adversarial[0] != self.original[0] if self.target is None else self.adversarial[0] == self.target


def fool_image(run_dir: str | Path, image: str | Path, method: str = "fgsm", eps: float = 8 / 255,
               target: int | str | None = None, steps: int = 40, output: str | Path = "fool.png",
               label: int | str | None = None, device: str = "auto") -> FoolResult:
    """A near-identical copy of ``image`` the model misclassifies (or classifies as ``target``)."""
    from ._common import device_of

    run, model = _load(run_dir, device)
    c, h, w = _size(run)
    x = load_image(image, c, (h, w)).to(device_of(model))
    n = len(run.classes)
    t = class_index(target, run.classes, n)
    y = class_index(label, run.classes, n)
    kw = {"steps": steps} if method == "pgd" else {}
    adv = attack(method, model, x, y=y, eps=eps, target=t, **kw)
    p0, p1 = predict_proba(model, x)[0], predict_proba(model, adv)[0]
    o = (run.classes[int(p0.argmax())], float(p0.max()))
    a = (run.classes[int(p1.argmax())], float(p1.max()))
    tname = run.classes[t] if t is not None else None
    path = plot_adversarial(x[0].cpu(), adv[0].cpu(), o, a, method, eps, output,
                            true_name=run.classes[y] if y is not None else None, target_name=tname)  # fmt: skip
    return FoolResult(path, method, eps, o, a, tname, linf=float((adv - x).abs().max()))


def robustness_report(run_dir: str | Path, eps: Sequence[float], method: str | Sequence[str] = "fgsm",
                      output: str | Path = "robustness.png", data: str | None = None, split: str = "test",
                      limit: int | None = None, steps: int = 10, device: str = "auto") -> list[RobustnessCurve]:
    """Accuracy on the run's ``split`` under each attack ``method`` at every ``eps``; writes one plot."""
    from ..evaluate.runner import run_data

    methods = [method] if isinstance(method, str) else list(method)
    if not methods:
        raise ConfigError("no attack method given", hint="e.g. fgsm or pgd")
    run, model = _load(run_dir, device)
    part = run_data(run, data).split(split)
    images, labels = part.images, part.labels
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")
        images, labels = images[:limit], labels[:limit]
    curves = [robustness_curve(model, images, labels, eps, method=m, **({"steps": steps} if m == "pgd" else {}))
              for m in methods]  # fmt: skip
    names = " vs ".join(m.upper() for m in methods)
    plot_robustness(curves, output, chance=1 / len(run.classes),
                    title=f"Accuracy under {names} attack ({Path(run_dir).name}, {split} split)")  # fmt: skip
    return curves
