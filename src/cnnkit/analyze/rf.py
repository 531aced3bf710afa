"""Receptive fields: which input pixels one unit of a feature map can see.

Each feature map carries three numbers per spatial axis (rows, columns):

* ``size`` (r): the width of the input window one unit sees,
* ``jump`` (j): the distance in input pixels between two neighbouring units (the effective stride),
* ``start``: the centre of the first unit's window, in input pixel coordinates (pixel ``i`` has its
  centre at ``i``; a negative start means the first window hangs over the zero padding).

The input image has ``r = 1, j = 1, start = 0``. A convolution or pooling layer with kernel ``k``
(dilation ``d`` makes it ``k_eff = d*(k-1)+1``), stride ``s`` and padding ``p`` before the first pixel maps

    r' = r + (k_eff - 1) * j
    j' = j * s
    start' = start + ((k_eff - 1)/2 - p) * j

so two stacked 3x3 convolutions see 5x5 and three see 7x7 (the VGG lecture), and a 2x2 max pool after
a 5x5 convolution sees 6x6 (seed 004). Where branches merge (ResNet's addition, Inception's and
DenseNet's concatenation) a unit sees the union of what its inputs see: the largest window over the
branches. A unit that depends on every pixel (after global pooling, a fully connected layer on a
flattened map, or a squeeze-and-excitation gate) has a *global* receptive field. Layers whose spatial
effect the analysis does not model (transposed convolutions, resampling) make it *unknown* rather
than guessed.

The size is the theoretical one: it can exceed the image (ResNet-50's last stage sees 427 pixels of a
224 image), and it ignores normalisation statistics (batch norm in inference is a per-channel affine map).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Pair = tuple[float, float]


def _num(v: float) -> str:
    """``5`` for whole numbers, ``2.5`` otherwise (starts can sit between pixels)."""
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def fmt_pair(p: Pair) -> str:
    """``5`` for a square quantity, ``5x7`` (rows x columns) otherwise."""
    return _num(p[0]) if p[0] == p[1] else f"{_num(p[0])}x{_num(p[1])}"


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field size, jump and start of a feature map, per axis (rows, columns).

    ``kind`` is ``"local"`` (the numbers hold), ``"global"`` (every unit sees the whole input; ``size``
    is then the input size) or ``"unknown"`` (an operation the analysis does not model).
    """

    size: Pair = (1, 1)
    jump: Pair = (1, 1)
    start: Pair = (0, 0)
    kind: str = "local"

    def __post_init__(self) -> None:
        # Whole numbers as ints (they print and serialise as "5", not "5.0").
        for attr in ("size", "jump", "start"):
            v = getattr(self, attr)
            object.__setattr__(self, attr, tuple(int(a) if float(a).is_integer() else float(a) for a in v))

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def window(self, index: tuple[int, int] = (0, 0)) -> tuple[Pair, Pair]:
        """Input rectangle ``((top, left), (bottom, right))`` (inclusive) seen by unit ``index``."""
        lo = tuple(
            s + i * j - (r - 1) / 2
            for s, i, j, r in zip(self.start, index, self.jump, self.size, strict=True)
        )
        hi = tuple(a + r - 1 for a, r in zip(lo, self.size, strict=True))
        return lo, hi  # type: ignore[return-value]

    # -- layers ---------------------------------------------------------------------------------
    def window_op(self, kernel: Pair, stride: Pair, pad_before: Pair) -> ReceptiveField:
        """After a convolution or pooling window (``kernel`` already dilated) with ``stride``."""
        if not self.is_local:
            return self
        return ReceptiveField(
            size=tuple(r + (k - 1) * j for r, k, j in zip(self.size, kernel, self.jump, strict=True)),
            jump=tuple(j * s for j, s in zip(self.jump, stride, strict=True)),
            start=tuple(
                st + ((k - 1) / 2 - p) * j
                for st, k, p, j in zip(self.start, kernel, pad_before, self.jump, strict=True)
            ),
        )  # type: ignore[arg-type]

    def pad(self, before: Pair) -> ReceptiveField:
        """After padding ``before`` pixels (of this map) at the top/left: unit 0 moves back by that many."""
        if not self.is_local:
            return self
        start = tuple(s - p * j for s, p, j in zip(self.start, before, self.jump, strict=True))
        return ReceptiveField(self.size, self.jump, start)  # type: ignore[arg-type]

    def subsample(self, offset: Pair, step: Pair) -> ReceptiveField:
        """After slicing ``x[..., o::s, o::s]`` (ResNet's option-A shortcut): a 1x1 window with a stride."""
        if not self.is_local:
            return self
        start = tuple(st + o * j for st, o, j in zip(self.start, offset, self.jump, strict=True))
        jump = tuple(j * s for j, s in zip(self.jump, step, strict=True))
        return ReceptiveField(self.size, jump, start)  # type: ignore[arg-type]

    @staticmethod
    def global_(input_hw: Pair) -> ReceptiveField:
        """Every unit sees the whole ``input_hw`` image."""
        return ReceptiveField(size=input_hw, jump=(0, 0), start=(0, 0), kind="global")

    @staticmethod
    def unknown() -> ReceptiveField:
        return ReceptiveField(size=(0, 0), jump=(0, 0), start=(0, 0), kind="unknown")

    @staticmethod
    def merge(fields: Iterable[ReceptiveField], input_hw: Pair) -> ReceptiveField | None:
        """The field of a unit combining units of several maps on the same grid (add, cat, multiply).

        It sees the union of their windows (the largest over the branches when they share a centre,
        as in ResNet and Inception). Any global input makes it global; any unknown one, unknown.
        """
        fs = [f for f in fields if f is not None]
        if not fs:
            return None
        if len(fs) == 1:
            return fs[0]
        if any(f.kind == "unknown" for f in fs):
            return ReceptiveField.unknown()
        if any(f.kind == "global" for f in fs):
            return ReceptiveField.global_(input_hw)
        lows = [f.window()[0] for f in fs]
        highs = [f.window()[1] for f in fs]
        lo = (min(a[0] for a in lows), min(a[1] for a in lows))
        hi = (max(a[0] for a in highs), max(a[1] for a in highs))
        # Maps on one grid share the jump; a coarser map broadcast onto a finer one keeps the coarser.
        jump = (max(f.jump[0] for f in fs), max(f.jump[1] for f in fs))
        return ReceptiveField(
            size=(hi[0] - lo[0] + 1, hi[1] - lo[1] + 1),
            jump=jump,
            start=((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2),
        )

    # -- display --------------------------------------------------------------------------------
    def size_str(self) -> str:
        if self.kind == "global":
            return "global"
        if self.kind == "unknown":
            return "?"
        return fmt_pair(self.size)

    def jump_str(self) -> str:
        return fmt_pair(self.jump) if self.is_local else ""

    def start_str(self) -> str:
        return fmt_pair(self.start) if self.is_local else ""

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "size": list(self.size),
            "jump": list(self.jump),
            "start": list(self.start),
        }
