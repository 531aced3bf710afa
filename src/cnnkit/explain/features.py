"""What the network learned: filters, feature maps and the images that excite a unit most.

Zeiler and Fergus (2014) show, for a unit, the dataset patches that activate it most next to what
it responds to; the lecture's "what images are selected by the neuron". :func:`top_activations`
does this over a split: the images whose strongest response of ``unit`` is highest, and the
receptive field (the input window that unit can see) around the strongest position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ._common import device_of, inner, resolve_layer


def layer_filters(model: nn.Module, layer: str | nn.Module | None = None) -> tuple[str, torch.Tensor]:
    """``(layer name, weights out x in x kH x kW)`` of a convolution (default: the first Conv2d)."""
    name, mod = resolve_layer(model, layer, nn.Conv2d, last=False)
    w = getattr(mod, "weight", None)
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        raise ModelError(f"layer {name!r} ({type(mod).__name__}) has no convolution kernels",
                         hint="pick a Conv2d layer, e.g. the first one (the default)")  # fmt: skip
    return name, w.detach().cpu().float()


class _Capture:
    """Forward hook keeping a copy of one layer's output.

    The copy matters: cnnkit's ReLUs are in-place, so the tensor a convolution returns is
    overwritten by the ReLU right after the hook sees it.
    """

    def __init__(self, module: nn.Module) -> None:
        self.out: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        self.out = out.detach().clone()

    def close(self) -> None:
        self.handle.remove()


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layer: str | nn.Module) -> torch.Tensor:
    """The output of ``layer`` for images ``x`` (``N x C x h x w``, or ``N x F`` for dense layers)."""
    _, mod = resolve_layer(model, layer)
    cap = _Capture(mod)
    try:
        model.eval()
        model(x)
    finally:
        cap.close()
    if cap.out is None:
        raise ModelError(f"layer {layer!r} was not used in the forward pass")
    return cap.out


@dataclass
class ReceptiveField:
    """Where output unit ``(i, j)`` of a layer looks in the input (per axis: rows, then columns).

    ``size``: the window side in input pixels; ``jump``: input pixels between neighbouring units;
    ``start``: centre of unit 0 in input coordinates (pixel ``k`` spans ``[k, k + 1)``).
    """

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]
    input_size: tuple[int, int]

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` pixel box of unit ``(i, j)``, clipped to the image."""
        out = []
        for axis, idx in ((0, i), (1, j)):
            c = self.start[axis] + idx * self.jump[axis]
            lo = math.floor(c - self.size[axis] / 2 + 1e-6)
            hi = math.ceil(c + self.size[axis] / 2 - 1e-6)
            out.append((max(0, lo), min(self.input_size[axis], hi)))
        return out[0][0], out[1][0], out[0][1], out[1][1]


def receptive_field(model: nn.Module, layer: str | nn.Module, input_size: tuple[int, int, int]) -> ReceptiveField:
    """The receptive field of ``layer``'s units, as :func:`cnnkit.analyze.summary` measures it.

    The analysis traces one forward pass with the lectures' recurrences (``r += (k - 1) d j``,
    ``j *= s``), taking the union where branches merge (ResNet, Inception). A unit that sees every
    pixel (after a dense layer or global pooling), or one the analysis cannot model, gets the whole
    image; a theoretical window larger than the image (deep ResNets) is clipped by :meth:`box`.
    """
    from ..analyze import summary

    name, _ = resolve_layer(model, layer)
    h, w = (int(v) for v in input_size[1:])
    try:
        rf = summary(inner(model), tuple(input_size)).row(name).rf
    except KeyError:
        raise ModelError(f"layer {name!r} was not used in the forward pass") from None
    if rf is None or rf.kind != "local":
        return ReceptiveField((float(h), float(w)), (float(h), float(w)), (h / 2, w / 2), (h, w))
    # analyze puts pixel i's centre at i; here pixel k spans [k, k + 1), so centres are at k + 0.5.
    start = (float(rf.start[0]) + 0.5, float(rf.start[1]) + 0.5)
    return ReceptiveField((float(rf.size[0]), float(rf.size[1])), (float(rf.jump[0]), float(rf.jump[1])), start, (h, w))


@dataclass
class TopActivations:
    """The ``k`` images of a set that excite one unit most, best first."""

    layer: str
    unit: int
    index: list[int]  # positions in the image set
    score: list[float]  # the unit's strongest response in each image
    position: list[tuple[int, int]]  # (row, column) of that response in the layer's map
    box: list[tuple[int, int, int, int]]  # receptive field of that position, (top, left, bottom, right)
    rf_size: tuple[float, float]


@torch.no_grad()
def top_activations(model: nn.Module, images: torch.Tensor, layer: str | nn.Module, unit: int, k: int = 9,
                    batch_size: int = 256) -> TopActivations:
    """Images (``N x C x H x W`` in [0, 1] or uint8) whose maximum response of ``unit`` at ``layer`` is highest.

    For a convolutional layer the unit is a channel, scored by its maximum over positions (a
    feature detector fires somewhere); for a dense layer it is one output.
    """
    from ._common import to_pixels

    if k < 1:
        raise ConfigError(f"-k must be >= 1, got {k}")
    name, mod = resolve_layer(model, layer)
    if len(images) == 0:
        raise ConfigError("no images to search for top activations")
    dev = device_of(model)
    cap = _Capture(mod)
    scores, where = [], []
    try:
        model.eval()
        for i in range(0, len(images), batch_size):
            model(to_pixels(images[i : i + batch_size]).to(dev))
            a = cap.out
            if a is None:
                raise ModelError(f"layer {name!r} was not used in the forward pass")
            if not 0 <= unit < a.shape[1]:
                raise ConfigError(f"--unit {unit} is out of range: layer {name!r} has {a.shape[1]} units (0..{a.shape[1] - 1})")
            if a.ndim == 4:
                flat = a[:, unit].flatten(1)
                v, pos = flat.max(1)
                wmap = a.shape[-1]
                where += [(int(p) // wmap, int(p) % wmap) for p in pos]
            else:
                v = a[:, unit].flatten(1).amax(1) if a.ndim > 2 else a[:, unit]
                where += [(0, 0)] * len(v)
            scores.append(v.float().cpu())
    finally:
        cap.close()
    s = torch.cat(scores)
    k = min(k, len(s))
    best = s.topk(k).indices.tolist()
    rf = receptive_field(model, name, tuple(images.shape[1:]))
    return TopActivations(
        layer=name, unit=unit, index=best, score=[float(s[i]) for i in best],
        position=[where[i] for i in best], box=[rf.box(*where[i]) for i in best], rf_size=rf.size,
    )  # fmt: skip


def gabor_bank(size: int, orientations: int = 4, freqs: tuple[float, ...] = (0.2, 0.35)) -> list[tuple[str, torch.Tensor]]:
    """Gabor kernels of side ``size`` (the lecture's formula, :func:`cnnkit.classic.filters.gabor`).

    Shown beside learnt first-layer filters, which often look like them (oriented edges and
    stripes at a few frequencies).
    """
    from ..classic.filters import gabor

    # A wide enough envelope to show at least one full period inside a small (5x5) kernel.
    sigma = max(size / 3.0, 1.0)
    out = []
    for f in freqs:
        for o in range(orientations):
            theta = math.pi * o / orientations
            out.append((f"θ {math.degrees(theta):.0f}°, f {f}", torch.from_numpy(gabor(theta, f, sigma, size)).float()))
    return out
