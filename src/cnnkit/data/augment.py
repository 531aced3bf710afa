"""Batched data augmentation applied to whole tensors on the training device.

Why not torchvision.transforms.v2: its random transforms draw one set of parameters per call, so
per-sample randomness needs a Python loop over images. Here every image in a batch gets its own
random parameters in a handful of tensor ops (one ``grid_sample`` for all geometric changes), which
keeps the hot loop free of per-sample Python (airbench's approach).

Spec strings: ``"translate=2,rotate=10,scale=0.1,flip,erase=0.25,jitter=0.2,elastic=2"``;
``"none"`` disables augmentation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..errors import ConfigError, suggest

# Upper limits of the numeric augmentations: beyond them an augmentation destroys the image or
# breaks the maths (scale 1 can zoom to 0x, shear 90 degrees is tan = infinity), or allocates absurd
# memory (translate pads every image by that many pixels on each side).
_LIMITS: dict[str, tuple[float, str]] = {
    "translate": (128.0, "pixels of shift"),
    "rotate": (180.0, "degrees"),
    "scale": (1.0, "relative zoom: 0.1 means 0.9x to 1.1x"),
    "shear": (60.0, "degrees"),
    "elastic": (64.0, "pixels of displacement"),
    "jitter": (1.0, "relative brightness/contrast change"),
    "erase": (1.0, "a probability"),
}
_OPEN = {"scale"}  # exclusive upper limit
_BOOL_WORDS = {"": True, "1": True, "true": True, "on": True, "yes": True,
               "0": False, "false": False, "off": False, "no": False}  # fmt: skip


@dataclass
class Augment:
    """Per-batch random augmentation; all values 0/False mean off."""

    translate: float = 0.0  # max shift in pixels (whole numbers: random crop with zero padding)
    rotate: float = 0.0  # max rotation in degrees
    scale: float = 0.0  # max relative zoom (0.1: 0.9x .. 1.1x)
    shear: float = 0.0  # max shear in degrees
    flip: bool = False  # horizontal flip with probability 0.5
    elastic: float = 0.0  # elastic distortion strength in pixels (LeNet-style distortions)
    jitter: float = 0.0  # brightness/contrast jitter (relative)
    erase: float = 0.0  # probability of erasing one random rectangle (random erasing)

    @classmethod
    def from_spec(cls, spec: str | None) -> Augment:
        """Parse ``"translate=2,flip,..."``; raises ConfigError naming a bad item."""
        a = cls()
        if spec is None or spec.strip().lower() in ("", "none", "off"):
            return a
        names = {f.name: f for f in fields(cls)}
        given: set[str] = set()
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, _, val = item.partition("=")
            key, val = key.strip(), val.strip()
            if key not in names:
                raise ConfigError(f"--augment: unknown augmentation {key!r}", hint=suggest(key, names))
            if key in given:  # "rotate=5,rotate=30": which one was meant?
                raise ConfigError(f"--augment: {key} is given twice", hint="give each augmentation once")
            given.add(key)
            if names[key].type in (bool, "bool"):
                if val.lower() not in _BOOL_WORDS:
                    raise ConfigError(f"--augment: {key} takes no value or on/off, got {val!r}",
                                      hint=f"e.g. --augment {key} or --augment {key}=off")  # fmt: skip
                setattr(a, key, _BOOL_WORDS[val.lower()])
                continue
            try:
                v = float(val) if val else 1.0
            except ValueError:
                raise ConfigError(f"--augment: {key} needs a number, got {val!r}") from None
            lo_ok = v >= 0
            hi, what = _LIMITS[key]
            if not (lo_ok and math.isfinite(v) and (v < hi if key in _OPEN else v <= hi)):
                sym = "<" if key in _OPEN else "<="
                raise ConfigError(f"--augment: {key}={val} is out of range", hint=f"use 0 <= {key} {sym} {hi:g} ({what})")
            setattr(a, key, v)
        return a

    def to_spec(self) -> str:
        parts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if v:
                parts.append(f.name if v is True else f"{f.name}={v:g}")
        return ",".join(parts) or "none"

    @property
    def enabled(self) -> bool:
        return self.to_spec() != "none"

    @property
    def moves_pixels_only(self) -> bool:
        """Only whole-pixel crops and flips: exact on any dtype (the loaders apply it to uint8)."""
        return not (self.rotate or self.scale or self.shear or self.elastic or self.jitter or self.erase
                    or self.translate % 1)  # fmt: skip

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a float batch ``N x C x H x W`` in [0, 1]; random numbers come from ``gen`` (CPU).

        When :attr:`moves_pixels_only`, any dtype works (uint8 too) and gives the same pixels.
        """
        if not self.enabled:
            return x
        n, _, h, w = x.shape
        dev = x.device

        def rand(*shape: int) -> torch.Tensor:  # uniform [0, 1) drawn on CPU so results match across devices
            return torch.rand(*shape, generator=gen).to(dev)

        crop = self.translate and not (self.rotate or self.scale or self.shear or self.elastic or self.translate % 1)
        if crop:  # the most common case gets a fast path: whole-pixel shifts and the flip in one gather
            x = self._crop(x, rand, self.flip)
        elif self.translate or self.rotate or self.scale or self.shear or self.elastic:
            x = self._geometric(x, rand)
        if self.flip and not crop:
            m = rand(n) < 0.5
            x = torch.where(m.view(n, 1, 1, 1), x.flip(-1), x)
        if self.jitter:
            b = 1 + (rand(n, 1, 1, 1) * 2 - 1) * self.jitter
            c = 1 + (rand(n, 1, 1, 1) * 2 - 1) * self.jitter
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * c + mean) * b
            x = x.clamp(0, 1)
        if self.erase:
            x = self._erase(x, rand)
        return x

    def _crop(self, x: torch.Tensor, rand, flip: bool) -> torch.Tensor:
        """Random crop with zero padding (whole-pixel shifts up to ``translate``), then the random flip.

        One ``gather`` on the padded, flattened images reads every output pixel from its shifted (and
        possibly mirrored) source: no resampling blur, and several times cheaper than ``grid_sample``
        plus a separate flip. Random numbers are drawn in the same order as the two-step version.
        """
        n, c, h, w = x.shape
        t = int(self.translate)
        dy = (rand(n) * (2 * t + 1)).floor().long().clamp_(0, 2 * t)
        dx = (rand(n) * (2 * t + 1)).floor().long().clamp_(0, 2 * t)
        cols = torch.arange(w, device=x.device).view(1, w)
        if flip:
            cols = torch.where((rand(n) < 0.5).view(n, 1), w - 1 - cols, cols)
        wp = w + 2 * t
        rows = torch.arange(h, device=x.device).view(1, h, 1) + dy.view(n, 1, 1)
        idx = (rows * wp + dx.view(n, 1, 1) + cols.view(-1, 1, w)).view(n, 1, h * w)
        xp = F.pad(x, (t, t, t, t)).view(n, c, (h + 2 * t) * wp)
        return xp.gather(2, idx.expand(n, c, h * w)).view(n, c, h, w)

    def _geometric(self, x: torch.Tensor, rand) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device
        ang = (rand(n) * 2 - 1) * math.radians(self.rotate)
        sh = (rand(n) * 2 - 1) * math.radians(self.shear)
        s = 1 + (rand(n) * 2 - 1) * self.scale
        # Translation in normalised coordinates: `translate` pixels of a side of w is 2*t/w.
        tx = (rand(n) * 2 - 1) * self.translate * 2 / w
        ty = (rand(n) * 2 - 1) * self.translate * 2 / h
        cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
        # The sampling field (n x 2 x h x w) of the affine map [[cos, tan(sh)/s - sin, tx], [sin, cos, ty]]
        # at the pixel centres, as F.affine_grid(align_corners=False) places them, built by broadcasting:
        # one add over the batch instead of affine_grid's batched matrix product (half the augmentation's
        # time on a CPU for 32 px images), and the elastic field is added in place.
        a = torch.stack([cos, sin], 1).view(n, 2, 1, 1)
        b = torch.stack([torch.tan(sh) / s - sin, cos], 1).view(n, 2, 1, 1)
        t = torch.stack([tx, ty], 1).view(n, 2, 1, 1)
        xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=dev).view(1, 1, 1, w)
        ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=dev).view(1, 1, h, 1)
        field = a * xs + (b * ys + t)
        if self.elastic:
            # Smooth random displacement field (Simard et al. 2003), strength in pixels. Simard smooths a
            # per-pixel random field with a Gaussian; a coarse random grid (a control point every ~4 px)
            # upsampled bicubically gives the same kind of smooth field for a fraction of the cost
            # (a 1-channel separable blur of every field was slower than the LeNet-5 step it fed).
            gh, gw = max(2, -(-h // 4)), max(2, -(-w // 4))
            rows, cols = _cubic_upsampler(gh, h, dev), _cubic_upsampler(gw, w, dev)
            disp = rows @ (rand(n, 2, gh, gw) * 2 - 1) @ cols.T  # bicubic upsampling as two small matmuls
            # Each field scaled to a peak of `elastic` pixels (in normalised units per axis).
            k = torch.tensor([2 / w, 2 / h], device=dev).view(1, 2, 1, 1) * self.elastic
            field.addcmul_(disp, k / disp.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-6))
        return F.grid_sample(x, field.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=False)

    def _erase(self, x: torch.Tensor, rand) -> torch.Tensor:
        n, _, h, w = x.shape
        area = 0.02 + rand(n) * 0.2  # fraction of the image erased
        aspect = torch.exp((rand(n) * 2 - 1) * math.log(3))
        eh = (area * h * w * aspect).sqrt().clamp(1, h)
        ew = (area * h * w / aspect).sqrt().clamp(1, w)
        y0 = rand(n) * (h - eh)
        x0 = rand(n) * (w - ew)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        box = (ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1))
        box = box & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1))
        box = box & (rand(n) < self.erase).view(n, 1, 1)
        return x.masked_fill(box.unsqueeze(1), 0.0)


@functools.lru_cache(maxsize=32)
def _cubic_upsampler(coarse: int, size: int, device: torch.device) -> torch.Tensor:
    """The ``size x coarse`` matrix of bicubic upsampling (align_corners) along one axis.

    Bicubic upsampling is separable and linear, so a field's upsampling is ``rows @ field @ cols.T``:
    several times faster on a CPU than ``F.interpolate`` on a batch of small fields.
    """
    eye = torch.eye(coarse).view(coarse, 1, coarse, 1)
    m = F.interpolate(eye, size=(size, 1), mode="bicubic", align_corners=True).view(coarse, size).T
    return m.contiguous().to(device)
