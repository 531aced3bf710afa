"""LeNet-5's robustness demo (~1998, seed 004): shifts, noise, scale, rotation, several and overlapping digits.

What made LeNet famous, replayed on the user's own trained digit model: the run's test images are
shifted, covered in noise, scaled and rotated (accuracy at each strength, one example each), and
strings of test digits, apart, touching and overlapping, are read by sliding the convolutionalised
network along them (:mod:`cnnkit.explain.class_map`), as the 1998 demo's space-displacement network did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .class_map import class_maps, read_string
from .distort import add_noise, affine, digit_strings

# Strength levels of each distortion (the first is the undistorted image).
LEVELS: dict[str, tuple[float, ...]] = {
    "shift (px)": (0, 2, 4, 6, 8),
    "noise (sigma)": (0.0, 0.1, 0.2, 0.3, 0.5),
    "scale": (1.0, 0.8, 0.6, 1.2, 1.4),
    "rotation (deg)": (0, 15, 30, 45, 60),
}
# Strings: spacing between digit origins as a fraction of the digit width.
SPACINGS: dict[str, float] = {"apart": 1.0, "touching": 0.8, "overlapping": 0.65}


def distort(images: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """``images`` ([0, 1]) under one distortion of :data:`LEVELS` at strength ``level``."""
    if kind.startswith("shift"):
        return affine(images, shift=(level, level))
    if kind.startswith("noise"):
        return add_noise(images, level, seed) if level > 0 else images
    if kind.startswith("scale"):
        return affine(images, scale=level)
    return affine(images, rotate=level)


@dataclass
class DemoResult:
    """Accuracy per distortion and level, string reading rates, and the figure."""

    accuracy: dict[str, list[float]] = field(default_factory=dict)  # kind -> accuracy per level of LEVELS
    strings: dict[str, float] = field(default_factory=dict)  # spacing -> fraction of strings read exactly
    digits_read: dict[str, float] = field(default_factory=dict)  # spacing -> fraction of digits right
    n_images: int = 0
    n_strings: int = 0
    path: Path | None = None


@torch.no_grad()
def robustness_demo(
    run_dir: str | Path,
    output: str | Path,
    n_strings: int = 100,
    length: int = 3,
    device: str = "auto",
    seed: int = 0,
) -> DemoResult:
    """Run the demo on a trained run's test split and write the picture grid to ``output``."""
    from ..evaluate.runner import run_data
    from ._common import predict_proba, to_pixels
    from .class_map import _fcn
    from .commands import _load

    run, model = _load(run_dir, device)
    _fcn(model)  # the string reading needs the convolutionalised network: fail before any work
    test = run_data(run).test
    x = to_pixels(test.images).to(model.mean.device)
    y = test.labels.to(x.device)
    res = DemoResult(n_images=len(x), n_strings=n_strings)
    examples: dict[str, list[tuple[torch.Tensor, int]]] = {}
    pick = int(torch.randint(0, len(x), (1,), generator=torch.Generator().manual_seed(seed)))
    for kind, levels in LEVELS.items():
        res.accuracy[kind], examples[kind] = [], []
        for level in levels:
            xd = distort(x, kind, level, seed)
            pred = predict_proba(model, xd).argmax(1)
            res.accuracy[kind].append(float((pred == y.cpu()).float().mean()))
            examples[kind].append((xd[pick].cpu(), int(pred[pick])))
    width = x.shape[-1]
    shown = []
    for name, frac in SPACINGS.items():
        strips, labels = digit_strings(
            x.cpu(), y.cpu(), n_strings, length, pitch=round(frac * width), seed=seed
        )
        maps = class_maps(model, strips)
        found = [read_string(m) for m in maps]
        reads = [[c for c, _, _ in f] for f in found]
        res.strings[name] = sum(r == lab.tolist() for r, lab in zip(reads, labels, strict=True)) / n_strings
        right = sum(
            sum(a == b for a, b in zip(r, lab.tolist(), strict=True))
            for r, lab in zip(reads, labels, strict=True)
            if len(r) == length
        )
        res.digits_read[name] = right / (n_strings * length)
        shown.append((name, strips[0], maps[0], found[0], labels[0].tolist()))
    res.path = _plot(res, examples, int(y[pick]), shown, run.classes, output, Path(run_dir).name)
    return res


def _plot(
    res: DemoResult, examples, truth: int, shown, classes: list[str], output: str | Path, name: str
) -> Path:
    import matplotlib.pyplot as plt

    from .plots import _np_image, _save, show_image

    kinds = list(LEVELS)
    n_levels = max(len(v) for v in LEVELS.values())
    fig = plt.figure(figsize=(1.6 * n_levels + 1.2, 1.75 * len(kinds) + 1.5 * len(shown) + 0.6))
    grid = fig.add_gridspec(len(kinds) + len(shown), n_levels)
    for r, kind in enumerate(kinds):
        for c, (level, (img, pred)) in enumerate(zip(LEVELS[kind], examples[kind], strict=True)):
            ax = fig.add_subplot(grid[r, c])
            show_image(ax, img)
            ok = pred == truth
            ax.set_title(f"{level:g}: acc {res.accuracy[kind][c]:.0%}", fontsize=8)
            ax.set_xlabel(f"pred {classes[pred]}", fontsize=8, color="green" if ok else "red")
            if c == 0:
                ax.set_ylabel(kind, fontsize=8)
    for i, (spacing, strip, cmap, read, labels) in enumerate(shown):
        ax = fig.add_subplot(grid[len(kinds) + i, :])
        ax.imshow(_np_image(strip), cmap="gray", vmin=0, vmax=1)
        h = strip.shape[-2]
        kept = {round(col) for _, col, _ in read}
        for j, col in enumerate(cmap.cols.tolist()):  # the arg-max class of each window, below the strip
            conf, chosen = float(cmap.confidence[0, j]), round(col) in kept
            ax.text(col, h + 1, classes[int(cmap.argmax[0, j])], ha="center", va="top", fontsize=8 if chosen else 6,
                    alpha=1.0 if chosen else max(conf, 0.2) * 0.6, color="blue" if chosen else "black",
                    fontweight="bold" if chosen else "normal")  # fmt: skip
        ax.set_ylim(h + 9, -0.5)
        got, want = "".join(classes[c] for c, _, _ in read), "".join(classes[c] for c in labels)
        ax.set_title(f"{spacing}: read {got!r} (true {want!r}); {res.strings[spacing]:.0%} of {res.n_strings} strings "
                     "read exactly (below: arg-max class of each window, bold: read)", fontsize=8,
                     color="green" if got == want else "red")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"LeNet-style robustness demo: {name} ({res.n_images} test images)", fontsize=10)
    fig.tight_layout()
    return _save(fig, output)
