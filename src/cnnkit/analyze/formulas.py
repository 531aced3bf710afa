"""The lectures' closed-form formulas for one convolution or pooling layer.

* Output size: ``N_O = (N - P + 2z)/s + 1`` for an ``N x N`` input, a ``P x P`` filter, zero padding
  ``z`` and stride ``s`` (seed 000). A dilated filter (dilation ``d``) covers ``d*(P-1)+1`` pixels, so
  that effective size replaces ``P``. When the division is not exact (the lecture's
  ``(7-3)/3+1 = 2.33``) the framework drops the incomplete last window (floors; ``ceil_mode`` pooling
  keeps it).
* Parameters of a convolution: ``[(P*P*d) + 1] * K`` for ``K`` filters over ``d`` input channels
  (``d = C_in / groups`` for a grouped or depthwise convolution; drop the ``+1`` without bias).
* Multiply-accumulates: every output element costs one MAC per filter weight it reads:
  ``H_out * W_out * K * (C_in/groups) * P * P``.

:mod:`cnnkit.analyze.summary` measures these on a real forward pass; the functions here state them
for a reader (and for tests that compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Pixels a dilated kernel spans: ``d*(P-1)+1`` (a 3x3 kernel with dilation 2 spans 5)."""
    return dilation * (kernel - 1) + 1


def output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> float:
    """The lecture's ``(N - P + 2z)/s + 1`` as an exact (possibly fractional) number."""
    return (n - effective_kernel(kernel, dilation) + 2 * padding) / stride + 1


def conv_params(kernel: int, in_channels: int, filters: int, groups: int = 1, bias: bool = True) -> int:
    """``[(P*P*d) + 1] * K`` with ``d = in_channels / groups`` (608 for P=5, d=3, K=8)."""
    d = in_channels // groups
    return (kernel * kernel * d + (1 if bias else 0)) * filters


def conv_macs(out_h: int, out_w: int, kernel: int, in_channels: int, filters: int, groups: int = 1) -> int:
    """Multiply-accumulates of one convolution for one image (bias additions not counted)."""
    return out_h * out_w * filters * (in_channels // groups) * kernel * kernel


@dataclass(frozen=True)
class SizeCheck:
    """One spatial dimension of a conv/pool layer checked against the output-size formula."""

    n: int  # input size along this dimension
    kernel: int  # effective kernel (dilation applied)
    padding: int  # total padding along this dimension (2z for symmetric padding)
    stride: int
    actual: int  # the size the framework produced

    @property
    def exact(self) -> float:
        return (self.n - self.kernel + self.padding) / self.stride + 1

    @property
    def divides(self) -> bool:
        """Whether the windows tile the padded input exactly (no pixels dropped or added)."""
        return (self.n - self.kernel + self.padding) % self.stride == 0

    def note(self) -> str:
        """``(7-3+0)/3+1 = 2.33, uses 2``: the formula with its numbers and the size actually used."""
        return (
            f"({self.n}-{self.kernel}+{self.padding})/{self.stride}+1 = {self.exact:.2f}, uses {self.actual}"
        )
