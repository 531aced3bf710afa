"""``cnnkit explain | filters | feature-maps | top-activations | dream | style-transfer | fool | robustness``.

What a trained network learned, where it looks, and how easily it is fooled. Every command writes
one PNG (``-o``) and prints the numbers behind it; the work is done by :mod:`cnnkit.explain`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._args import add_command, add_device, add_output, add_run, add_seed, float_in, int_in


def _out(p: argparse.ArgumentParser, default: str) -> None:
    # default None: run_* fill it in, so "the default output" can be named when it clashes with an input.
    add_output(p, None, default_text=f"default {default}")
    p.set_defaults(default_output=default)


def _command(sub: Any, name: str, func: Any, output: str, help: str, description: str | None = None,
             run: bool = True, image: bool = False) -> argparse.ArgumentParser:  # fmt: skip
    """An explain command: ``[RUN_DIR] [IMAGE]``, ``--device`` and ``-o`` (one PNG); its own options go on the result."""
    p = add_command(sub, name, func, help, description)
    if run:
        add_run(p)
    if image:
        p.add_argument("image", metavar="IMAGE", help="the image file")
    add_device(p)
    _out(p, output)
    return p


def _output(args: argparse.Namespace, *inputs: str | Path) -> Path:
    """The checked output path, before any work: writable, not a folder, and never one of ``inputs``.

    ``inputs`` are the command's image files and, for a run folder, the files in it: a figure written
    over ``best.safetensors`` or over the image it explains would destroy what the user asked about.
    """
    from ..io import check_output_file, unused_name

    files: list[str | Path] = []
    for i in inputs:
        p = Path(i)
        files += [f for f in p.iterdir() if f.is_file()] if p.is_dir() else [p]
    if args.output is None:  # the default never replaces a file, an input or the last result
        args.output = str(unused_name(args.default_output))
    return check_output_file(args.output, inputs=tuple(files))


def register(sub: Any) -> None:
    """Add the explain subcommands to ``cnnkit``'s sub-parsers."""
    from ..explain import ATTACKS, METHODS

    p = _command(sub, "explain", run_explain, "explain.png",
                 "where the model looks: attribution heatmap of an image + top-5",
                 "Attribution map (saliency, Grad-CAM, guided backprop, deconvnet, occlusion or "
                 "integrated gradients, via Captum) of one class for an image, over the image and beside the "
                 "model's top-5 predictions.", image=True)  # fmt: skip
    p.add_argument("--method", default="gradcam", choices=(*METHODS, "stn"),
                   help="attribution method (default gradcam); stn: what a spatial transformer does to the image")
    p.add_argument("--target", metavar="CLASS", help="class to explain, by name or index (default: the prediction)")
    p.add_argument("--layer", metavar="NAME", help="Grad-CAM layer (default: the last Conv2d)")

    p = _command(sub, "filters", run_filters, "filters.png", "what the first layer learned: its kernels as a grid",
                 "Plot a convolution's kernels (default the first Conv2d; RGB kernels in colour), "
                 "optionally beside a bank of Gabor filters of the same size.")  # fmt: skip
    p.add_argument("--layer", metavar="NAME", help="convolution to show (default: the first Conv2d)")
    p.add_argument("--gabor", action="store_true", help="show Gabor filters beside the learnt ones")

    p = _command(sub, "feature-maps", run_feature_maps, "maps.png", "the maps a layer computes for an image", image=True)
    p.add_argument("--layer", metavar="NAME", required=True, help="layer name, e.g. features.0")
    p.add_argument("--max-maps", type=int_in(1, 1024), default=32, help="show at most this many maps (default 32)")

    p = _command(sub, "top-activations", run_top_activations, "top.png",
                 "the images and patches that excite one unit most",
                 "Search a split of the run's data for the images whose strongest response of "
                 "UNIT (a channel of a conv layer) is highest; show them with the receptive field of that "
                 "response boxed, and the patches (Zeiler and Fergus).")  # fmt: skip
    p.add_argument("--layer", metavar="NAME", required=True)
    p.add_argument("--unit", type=int_in(0, 1_000_000), required=True,
                   help="channel (conv layer) or output (dense layer) index")  # fmt: skip
    p.add_argument("--data", help="search another dataset with the same classes (default: the run's own)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("-k", type=int_in(1, 1000), default=9, help="how many images (default 9)")

    p = _command(sub, "dream", run_dream, "dream.png",
                 "class model visualisation: the image the network finds most typical of a class",
                 "Gradient ascent on the class score from a gray image, with jitter, blur and "
                 "an L2 penalty (Simonyan et al. 2013).")  # fmt: skip
    p.add_argument("--class", dest="classes", default="all", metavar="C",
                   help="class name/index, comma-separated list, or 'all' (default)")  # fmt: skip
    p.add_argument("--steps", type=int_in(1, 100_000), default=150)
    p.add_argument("--lr", type=float_in(0, 1000, lo_open=True), default=0.05)
    p.add_argument("--l2", type=float_in(0, 1e6), default=0.1, help="L2 penalty on the image (default 0.1)")
    add_seed(p)

    p = _command(sub, "style-transfer", run_style, "styled.png",
                 "render CONTENT in the style of STYLE (Gram-matrix losses)",
                 "Gatys et al.: optimise the pixels so the features match CONTENT and the Gram "
                 "matrices match STYLE. No pretrained ImageNet weights are needed: by default a randomly "
                 "initialised VGG-11 (seeded) is used, whose random features capture texture well.", run=False)  # fmt: skip
    p.add_argument("content", metavar="CONTENT")
    p.add_argument("style", metavar="STYLE")
    p.add_argument("--model", default="vgg11", metavar="RUN_DIR|NAME",
                   help="a run folder or a model name (random weights unless --weights); default vgg11")  # fmt: skip
    p.add_argument("--weights", metavar="FILE", help="state dict (.safetensors or .pt) for --model NAME")
    p.add_argument("--steps", type=int_in(1, 100_000), default=200)
    # Up to 1024 px: VGG's first layers alone hold gigabytes of activations (and their gradients) beyond.
    p.add_argument("--size", type=int_in(16, 1024), default=128, help="longer image side in pixels, 16-1024 (default 128)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "lbfgs"))
    p.add_argument("--lr", type=float_in(0, 1000, lo_open=True), default=0.02, help="Adam step in pixel units (default 0.02)")
    p.add_argument("--style-weight", type=float_in(0, 1e9, lo_open=True), default=10.0)
    add_seed(p)

    p = _command(sub, "fool", run_fool, "fool.png",
                 "an adversarial example: a near-identical image the model gets wrong", image=True)
    p.add_argument("--method", default="fgsm", choices=tuple(ATTACKS))
    p.add_argument("--eps", default="8/255", help="max change per pixel, in [0, 1]; fractions allowed (default 8/255)")
    p.add_argument("--target", metavar="CLASS", help="make the model predict this class (targeted attack)")
    p.add_argument("--label", metavar="CLASS", help="the image's true class (default: the model's prediction)")
    p.add_argument("--steps", type=int_in(1, 10_000), default=40, help="PGD iterations (default 40)")

    p = _command(sub, "robustness", run_robustness, "robustness.png", "accuracy against attack strength eps (table + plot)")
    p.add_argument("--eps", default="0,1/255,2/255,4/255,8/255", help="comma-separated eps values (default 0..8/255)")
    p.add_argument("--method", default="fgsm", help=f"attack, or comma-separated attacks: {', '.join(ATTACKS)} (default fgsm)")
    p.add_argument("--steps", type=int_in(1, 10_000), default=10, help="PGD iterations (default 10)")
    p.add_argument("--data", help="attack another dataset with the same classes (default: the run's own)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--limit", type=int_in(1, 10**9), help="use only the first N images")


def run_explain(args: argparse.Namespace) -> int:
    from ..explain import explain_image

    _output(args, args.image, args.run_dir)
    if args.method == "stn":  # not an attribution: the image beside what the model's spatial transformer makes of it
        from ..explain.stn_view import explain_stn

        v = explain_stn(args.run_dir, args.image, args.output, device=args.device)
        print("most likely: " + ", ".join(f"{c} {p:.2%}" for c, p in v.top))
        print("affine map: " + " ".join(f"{t:.3f}" for t in v.theta[0].flatten().tolist()))
        print(f"written to {v.path}")
        return 0
    r = explain_image(args.run_dir, args.image, args.method, args.target, args.layer, args.output, device=args.device)
    print(f"{r.method} for class {r.target!r}" + (f" at layer {r.layer}" if r.layer else ""))
    print("most likely: " + ", ".join(f"{c} {p:.2%}" for c, p in r.top))
    print(f"written to {r.path}")
    return 0


def run_filters(args: argparse.Namespace) -> int:
    from ..explain import show_filters

    _output(args, args.run_dir)
    path, name, shape = show_filters(args.run_dir, args.layer, args.output, gabor=args.gabor, device=args.device)
    print(f"{name}: {' x '.join(map(str, shape))} kernels; written to {path}")
    return 0


def run_feature_maps(args: argparse.Namespace) -> int:
    from ..explain import show_feature_maps

    _output(args, args.image, args.run_dir)
    path, shape = show_feature_maps(args.run_dir, args.image, args.layer, args.output, max_maps=args.max_maps,
                                    device=args.device)  # fmt: skip
    print(f"{args.layer}: output {' x '.join(map(str, shape))}; written to {path}")
    return 0


def run_top_activations(args: argparse.Namespace) -> int:
    from ..explain import show_top_activations

    _output(args, args.run_dir)
    path, top = show_top_activations(args.run_dir, args.layer, args.unit, args.output, data=args.data,
                                     split=args.split, k=args.k, device=args.device)  # fmt: skip
    print(f"unit {top.unit} of {top.layer}, receptive field {top.rf_size[0]:.0f}x{top.rf_size[1]:.0f} px")
    for i, s, b in zip(top.index, top.score, top.box, strict=True):
        print(f"  image {i:5d}  activation {s:8.3f}  box (top, left, bottom, right) {b}")
    print(f"written to {path}")
    return 0


def run_dream(args: argparse.Namespace) -> int:
    from ..explain import dream

    _output(args, args.run_dir)
    out = dream(args.run_dir, args.classes, args.output, steps=args.steps, lr=args.lr, l2=args.l2, seed=args.seed,
                device=args.device)  # fmt: skip
    for v in out:
        print(f"class {v.target}: score {v.score:.2f}, probability {v.prob:.2%}")
    print(f"written to {args.output}")
    return 0


def run_style(args: argparse.Namespace) -> int:
    from ..explain import style_transfer_files

    runs = [args.model] if Path(args.model).is_dir() else []
    _output(args, args.content, args.style, *runs, *([args.weights] if args.weights else []))
    r = style_transfer_files(args.content, args.style, args.model, args.weights, args.output, steps=args.steps,
                             size=args.size, optimizer=args.optimizer, style_weight=args.style_weight, lr=args.lr,
                             seed=args.seed, device=args.device)  # fmt: skip
    res = r.result
    print(f"network: {r.model}; image {r.size[0]}x{r.size[1]}; style layers {', '.join(res.style_layers)}; "
          f"content layer {res.content_layer}")  # fmt: skip
    print(f"style loss   {res.style_loss_start:.4g} -> {res.style_loss_end:.4g} ({res.style_ratio:.1f}x lower)")
    print(f"content loss {res.content_loss_start:.4g} -> {res.content_loss_end:.4g}")
    print(f"written to {r.path}")
    return 0


def run_fool(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..explain import fool_image, parse_eps_list

    eps = parse_eps_list(args.eps)
    if len(eps) != 1:
        raise ConfigError(f"fool takes one eps, got {len(eps)}", hint="use `cnnkit robustness --eps ...` for several")
    _output(args, args.image, args.run_dir)
    r = fool_image(args.run_dir, args.image, args.method, eps[0], args.target, args.steps, args.output, label=args.label,
                   device=args.device)  # fmt: skip
    print(f"original:    {r.original[0]!r} {r.original[1]:.2%}")
    print(f"adversarial: {r.adversarial[0]!r} {r.adversarial[1]:.2%}  (max pixel change {r.linf * 255:.1f}/255)")
    goal = f"target {r.target!r} reached" if r.target is not None else "prediction changed"
    print(f"{goal}: {'yes' if r.fooled else 'no'}")
    print(f"written to {r.path}")
    return 0


def run_robustness(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError, suggest
    from ..explain import ATTACKS, parse_eps_list, robustness_report

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--method names no attack", hint=f"e.g. --method fgsm or --method {','.join(ATTACKS)}")
    for m in methods:
        if m not in ATTACKS:
            raise ConfigError(f"unknown attack {m!r}", hint=suggest(m, ATTACKS))
    eps = parse_eps_list(args.eps)
    _output(args, args.run_dir)
    curves = robustness_report(args.run_dir, eps, methods, args.output, data=args.data, split=args.split,
                               limit=args.limit, steps=args.steps, device=args.device)  # fmt: skip
    t = Table(title=f"Accuracy under attack ({curves[0].n} images)", header_style="bold")
    t.add_column("eps", justify="right")
    t.add_column("eps x 255", justify="right")
    for c in curves:
        t.add_column(c.method.upper() + (f" ({args.steps} steps)" if c.method == "pgd" else ""), justify="right")
    for i, e in enumerate(eps):
        t.add_row(f"{e:.4f}", f"{255 * e:.1f}", *(f"{c.accuracy[i]:.2%}" for c in curves))
    Console().print(t)
    print(f"written to {args.output}")
    return 0
