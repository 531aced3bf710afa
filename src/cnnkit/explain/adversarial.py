"""How easily the network is fooled: adversarial examples (the lecture's "CNNs are easily fooled").

- :func:`fgsm`: the fast gradient sign method (Goodfellow, Shlens and Szegedy 2015): one step of size
  ``eps`` along the sign of the loss gradient, ``x + eps * sign(grad_x loss)``.
- :func:`pgd`: projected gradient descent (Madry et al. 2018): many small sign steps, each followed
  by projection back into the ``eps``-ball around ``x`` (L-infinity) and the valid pixel range.

Both are written here rather than taken from ``torchattacks``: they are a few lines each, the
project avoids a dependency for them, and the [0, 1] clipping and the normalisation (inside
:class:`~cnnkit.explain._common.PixelModel`) stay under our control, so ``eps = 8/255`` means
eight grey levels in every channel whatever mean/std the run was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ._common import device_of, to_pixels


def _check_eps(eps: float) -> float:
    if not 0 <= eps <= 1:
        raise ConfigError(f"eps must be in [0, 1] (pixels are in [0, 1]), got {eps}",
                          hint="e.g. 8/255 = 0.031 for a barely visible change")  # fmt: skip
    return float(eps)


def _loss_grad(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d cross-entropy / d x, without touching the model's parameter gradients."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def _labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor | int | None) -> torch.Tensor:
    if y is None:  # no ground truth: attack the model's own prediction
        with torch.no_grad():
            return model(x).argmax(1)
    y = torch.as_tensor(y, dtype=torch.long, device=x.device)
    return y.expand(len(x)).clone() if y.ndim == 0 else y


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor | int | None = None, eps: float = 8 / 255,
         target: torch.Tensor | int | None = None) -> torch.Tensor:
    """FGSM adversarial images for ``x`` in [0, 1] (``model`` must take [0, 1] pixels, see ``pixel_model``).

    Untargeted (default): one step *up* the loss of the true label ``y`` (default: the prediction).
    Targeted: one step *down* the loss of ``target``. The result is clipped to [0, 1].
    """
    eps = _check_eps(eps)
    model.eval()
    x = to_pixels(x).to(device_of(model))
    if target is not None:
        step = -_loss_grad(model, x, _labels(model, x, target)).sign()
    else:
        step = _loss_grad(model, x, _labels(model, x, y)).sign()
    return (x + eps * step).clamp(0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor | int | None = None, eps: float = 8 / 255,
        target: torch.Tensor | int | None = None, steps: int = 40, alpha: float | None = None,
        random_start: bool = True, seed: int = 0) -> torch.Tensor:
    """PGD (L-infinity) adversarial images for ``x`` in [0, 1].

    ``alpha`` (the step) defaults to ``2.5 * eps / steps``, Madry et al.'s choice, so the walk can
    cross the ball and back. ``random_start`` begins at a uniform point of the ball (seeded).
    Targeted when ``target`` is given (descends the target's loss), else untargeted on ``y``.
    """
    eps = _check_eps(eps)
    if steps < 1:
        raise ConfigError(f"PGD needs steps >= 1, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else float(alpha)
    model.eval()
    x = to_pixels(x).to(device_of(model))
    labels = _labels(model, x, target if target is not None else y)
    sign = -1.0 if target is not None else 1.0
    adv = x.clone()
    if random_start and eps > 0:
        g = torch.Generator(device="cpu").manual_seed(seed)
        adv = (adv + (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device) * eps).clamp(0, 1)
    for _ in range(steps):
        adv = adv + sign * alpha * _loss_grad(model, adv, labels).sign()
        # Project: back into the eps-ball around x, then into the valid pixel range.
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1).detach()
    return adv


ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def attack(method: str, model: nn.Module, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """:func:`fgsm` or :func:`pgd` by name."""
    from ..errors import suggest

    if method not in ATTACKS:
        raise ConfigError(f"unknown attack {method!r}", hint=suggest(method, ATTACKS))
    return ATTACKS[method](model, x, **kwargs)


@dataclass
class RobustnessCurve:
    """Accuracy of a model on adversarial images, one entry per ``eps``."""

    method: str
    eps: list[float]
    accuracy: list[float]
    n: int

    def rows(self) -> list[dict[str, float]]:
        return [{"eps": e, "eps_255": e * 255, "accuracy": a} for e, a in zip(self.eps, self.accuracy, strict=True)]


def robustness_curve(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: Sequence[float],
                     method: str = "fgsm", batch_size: int = 256, **kwargs) -> RobustnessCurve:
    """Accuracy on ``images`` (uint8 or [0, 1]) attacked with ``method`` at each ``eps`` (0 = clean).

    Each image is attacked against its true label (untargeted), the attack the accuracy is about.
    """
    dev = device_of(model)
    accs = []
    for e in eps:
        e = _check_eps(float(e))
        right = 0
        for i in range(0, len(images), batch_size):
            x = to_pixels(images[i : i + batch_size]).to(dev)
            y = labels[i : i + batch_size].to(dev)
            xa = x if e == 0 else attack(method, model, x, y=y, eps=e, **kwargs)
            with torch.no_grad():
                right += int((model(xa).argmax(1) == y).sum())
        accs.append(right / max(len(images), 1))
    return RobustnessCurve(method, [float(e) for e in eps], accs, len(images))


def parse_eps_list(text: str) -> list[float]:
    """``"0,1/255,2/255,0.03"`` -> floats; fractions allowed so eps reads in grey levels."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "/" in part:
                num, den = part.split("/", 1)
                v = float(num) / float(den)
            else:
                v = float(part)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"cannot read eps {part!r}", hint="write numbers or fractions, e.g. 0,1/255,0.03") from None
        out.append(_check_eps(v))
    if not out:
        raise ConfigError("no eps values given", hint="e.g. --eps 0,1/255,2/255,4/255,8/255")
    return out
