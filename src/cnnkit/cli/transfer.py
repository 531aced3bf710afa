"""Transfer-learning subcommands: ``finetune``, ``features``, ``fit-head``, ``retrieve``.

Flags only: each command calls :mod:`cnnkit.transfer` and prints what it returns.
"""

from __future__ import annotations

import argparse
import json

from ._args import (
    add_command,
    add_device,
    add_json,
    add_output,
    add_run_folder_flags,
    add_seed,
    float_in,
    int_in,
)
from .train import add_config_flags, given_overrides


def _add_subset_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", metavar="A,B,...", help="keep only these classes (names, or indices), relabelled 0..K-1")
    p.add_argument("--per-class", type=int_in(1, 10**9), metavar="N", help="keep N training images per class (a seeded draw)")
    p.add_argument("--val-per-class", type=int_in(0, 10**9), metavar="N", help="keep N validation images per class (0: none)")


def _add_feature_flags(p: argparse.ArgumentParser, fitted_on: str, pool: str) -> None:
    """The options of how an image becomes a vector (``features`` and ``retrieve``): layer, pooling, reduction."""
    from ..transfer.features import POOLS

    p.add_argument("--layer", metavar="NAME", help="module name (default: the input of the final classifier layer)")
    p.add_argument("--pool", default=pool, choices=POOLS,
                   help="how a conv feature map becomes a vector: avg or max per channel, flatten, or auto: the "
                   "channel average, over a grid of regions when --pca/--pq need more numbers than the layer has "
                   f"channels (default {pool})")  # fmt: skip
    p.add_argument("--pca", type=int_in(1, 100_000), metavar="K",
                   help=f"keep the first K principal components (fitted on {fitted_on})")  # fmt: skip
    p.add_argument("--pq", type=int_in(1, 4096), metavar="M",
                   help=f"product-quantise into M sub-vectors (codebooks fitted on {fitted_on})")  # fmt: skip
    p.add_argument("--pq-bits", type=int_in(1, 16), default=8, metavar="B",
                   help="bits per PQ code: 2**B centroids, 1-16 (default 8)")  # fmt: skip


def _subset_data(args: argparse.Namespace, data: str | None, run_dir: str | None = None) -> str | None:
    """``--data`` wrapped in a ``subset:`` spec when --classes/--per-class/--val-per-class are given.

    Without ``--data`` the base is the run's own dataset, split as the run recorded it.
    """
    if args.classes is None and args.per_class is None and args.val_per_class is None:
        return data
    from ..engine.train import data_config
    from ..resolve import names_a_run
    from ..run import RunDir
    from ..transfer import subset_spec

    run = RunDir(run_dir) if run_dir and names_a_run(run_dir) else None
    cfg = data_config(data, run.read_config() if run else None, str(run.config) if run else "config")
    classes = [c for c in args.classes.split(",") if c.strip()] if args.classes else None
    return subset_spec(cfg.data, classes, args.per_class, args.val_per_class, cfg.val_split, cfg.test_split, cfg.seed)


def register(sub: argparse._SubParsersAction) -> None:
    # ---- finetune
    p = add_command(sub, "finetune", run_finetune,
                    "fine-tune trained weights on new data (new classifier, frozen layers, then unfreeze)",
                    "Fine-tune: load weights, replace the classifier for the new classes, train with the lower "
                    "layers frozen (batch norm there stays in eval mode), then unfreeze everything with a lower "
                    "backbone learning rate. Takes every `cnnkit train` option too.")  # fmt: skip
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from", dest="from_run", metavar="RUN_DIR", help="a cnnkit run folder (model and size default to its)")
    src.add_argument("--weights", metavar="FILE", help="a .pth/.pt/.safetensors state dict (needs --model)")
    src.add_argument("--pretrained", action="store_true", help="torchvision's ImageNet weights for --model")
    p.add_argument("--freeze", default="all-conv", metavar="POLICY",
                   help="all-conv (freeze the convolutional body, train the FC head), lower:N (freeze the first N "
                   "weight layers) or none (default: all-conv)")  # fmt: skip
    p.add_argument("--unfreeze-after", default="auto", metavar="EPOCHS",
                   help="epochs to train frozen before unfreezing everything; 'never' trains the head only "
                   "(default auto: a fifth of the epochs, at least 1)")  # fmt: skip
    p.add_argument("--backbone-lr-mult", type=float, default=0.1, metavar="X",
                   help="learning-rate multiplier of the formerly frozen layers after unfreezing (default 0.1)")
    _add_subset_flags(p)
    p.add_argument("--config", metavar="FILE", help="YAML file of training options")
    add_run_folder_flags(p, "fine-tune run")
    # Fine-tuning refuses `--lr find` (the range test would sweep the frozen and unfrozen phases as one).
    add_config_flags(p, skip=("weights",), helps={"lr": "learning rate of the new head and, times --backbone-lr-mult after "
                                     "unfreezing, of the pretrained layers (default: the model's recipe, else the "
                                     "optimiser's own, e.g. 0.05 for sgd and 0.001 for adam)"})  # fmt: skip

    # ---- features
    p = add_command(sub, "features", run_features,
                    "extract CNN features of a dataset (any layer; optional PCA or product quantisation) to .npz",
                    "Features of every image (train/val/test) from a layer of a trained run, a model "
                    "(random initialisation unless --weights) or raw pixels; written with labels, split and "
                    "image ids.")  # fmt: skip
    p.add_argument("source", metavar="RUN_DIR|MODEL|pixels")
    p.add_argument("--data", help="dataset (default: the run's own, with its recorded split)")
    _add_subset_flags(p)
    _add_feature_flags(p, "train", "auto")
    p.add_argument("--splits", default="train,val,test", help="which splits to extract (default: all three)")
    p.add_argument("--weights", metavar="FILE", help="weights for a MODEL name")
    p.add_argument("--input-size", type=int_in(1, 2048), metavar="PX",
                   help="image side for a MODEL name (default: as `cnnkit train` sizes it for the data)")  # fmt: skip
    p.add_argument("--list-layers", action="store_true", help="print the layer names and exit")
    add_seed(p, "seed of PCA and product quantisation")
    add_device(p)
    add_output(p, "features.npz", "the .npz feature file")

    # ---- fit-head
    p = add_command(sub, "fit-head", run_fit_head,
                    "fit an SVM, k-NN or logistic regression on a feature file; report accuracy")
    p.add_argument("features", metavar="FEATS.npz")
    p.add_argument("--classifier", default="svm", choices=("svm", "knn", "logreg"))
    p.add_argument("--fit-on", default="train", help="splits to fit on, e.g. train or train,val (default train)")
    p.add_argument("--C", dest="c", type=float_in(0, 1e6, lo_open=True), default=1.0,
                   help="SVM / logistic regression regularisation (default 1)")  # fmt: skip
    p.add_argument("-k", type=int_in(1, 10_000), default=5, help="k-NN neighbours (default 5)")
    add_json(p)

    # ---- retrieve
    p = add_command(sub, "retrieve", run_retrieve,
                    "nearest-neighbour image retrieval with CNN features (PNG + HTML; precision@k, mAP@k)",
                    "Search the train split of --index for the k nearest images of each query (the test split, "
                    "or image files) and draw them; on labelled queries report precision@k and mAP@k.")  # fmt: skip
    p.add_argument("--index", metavar="DATA", help="dataset to search (default: the run's own)")
    _add_subset_flags(p)
    p.add_argument("--query", nargs="+", default=["test"], metavar="SPLIT|IMAGE",
                   help="'test' or 'val' split of the index data, or image files/folders (default test)")  # fmt: skip
    p.add_argument("-k", type=int_in(1, 10_000), default=10, help="neighbours per query (default 10)")
    p.add_argument("--model", metavar="RUN_DIR", help="trained run whose features to use")
    p.add_argument("--features", default="model", choices=("model", "pixels"), help="CNN features or raw pixels")
    _add_feature_flags(p, "the index", "avg")
    p.add_argument("--metric", default="cosine", choices=("cosine", "l2"))
    p.add_argument("--show", type=int_in(1, 1000), default=8, help="queries drawn in the PNG/HTML (default 8)")
    add_output(p, "retrieval.png", "PNG (and the .html beside it)", "FILE.png")
    add_device(p)
    add_json(p, "print the metrics as JSON")


def run_finetune(args: argparse.Namespace) -> int:
    from ..transfer import finetune

    over = given_overrides(args, skip=("weights",))  # finetune's --weights is its source, not a train option
    if args.resume:
        result = finetune(resume=args.resume, quiet=args.quiet, **over)
    else:
        classes = args.classes.split(",") if args.classes else None
        result = finetune(
            args.config, from_run=args.from_run, weights=args.weights, pretrained=args.pretrained, freeze=args.freeze,
            unfreeze_after=args.unfreeze_after, backbone_lr_mult=args.backbone_lr_mult, classes=classes,
            per_class=args.per_class, val_per_class=args.val_per_class, overwrite=args.overwrite, quiet=args.quiet,
            **over,
        )  # fmt: skip
    if args.quiet:
        print(f"test accuracy {result.test.get('acc', float('nan')):.2%}  run {result.run_dir}")
    return 0


def run_features(args: argparse.Namespace) -> int:
    from ..io import check_output_file
    from ..transfer import extract_features
    from ..transfer.features import layer_names, npz_path, resolve_source

    if not args.list_layers:  # checked before the (slow) extraction, at the name save() will write
        check_output_file(npz_path(args.output), inputs=tuple(x for x in (args.weights,) if x))
    data = _subset_data(args, args.data, args.source)
    if args.list_layers:
        model, *_ = resolve_source(args.source, data, args.input_size, args.weights, args.device)
        print("\n".join(layer_names(model)) if model is not None else "raw pixels have no layers")
        return 0
    fs = extract_features(
        args.source, data, layer=args.layer, pool=args.pool, splits=[s for s in args.splits.split(",") if s],
        pca=args.pca, pq=args.pq, pq_bits=args.pq_bits, weights=args.weights, input_size=args.input_size,
        seed=args.seed, device=args.device,
    )  # fmt: skip
    path = fs.save(args.output)
    counts = ", ".join(f"{s} {int(fs.mask(s).sum())}" for s in ("train", "val", "test") if fs.mask(s).any())
    extra = ""
    if "pca" in fs.meta:  # the numbers in words, not a Python dict
        extra += (f", PCA to {fs.meta['pca']['components']} components "
                  f"({fs.meta['pca']['explained_variance']:.2%} of the variance)")  # fmt: skip
    if "pq" in fs.meta:
        pq = fs.meta["pq"]
        extra += f", product-quantised: {pq['subvectors']} sub-vectors x {pq['centroids']} centroids"
    print(f"{len(fs)} feature vectors of dimension {fs.dim} ({counts}) from {fs.meta['source']}, layer "
          f"{fs.meta['layer']}, pooling {fs.meta['pool']}{extra}")  # fmt: skip
    print(f"written to {path}")
    return 0


def run_fit_head(args: argparse.Namespace) -> int:
    from ..transfer import fit_head

    r = fit_head(args.features, args.classifier, fit_on=[s for s in args.fit_on.split(",") if s], c=args.c, k=args.k)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
        return 0
    print(f"{r.classifier} fitted on {r.n_fit} {'+'.join(r.fit_on)} vectors")
    for s, acc in r.accuracy.items():
        print(f"{s} accuracy {acc:.2%} ({r.n_eval[s]} images)")
    if not r.accuracy:
        print("no val/test rows in the feature file to evaluate on")
    return 0


def run_retrieve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluate.predict import collect_images
    from ..io import check_output_file
    from ..transfer import retrieve

    # The PNG and the HTML beside it (named as retrieval._render names them), checked before any work;
    # neither may be one of the query images.
    png = Path(args.output) if Path(args.output).suffix.lower() == ".png" else Path(args.output).with_suffix(".png")
    queries = [] if args.query[0] in ("test", "val", "train") else collect_images(args.query)
    for out in (png, png.with_suffix(".html")):
        check_output_file(out, inputs=tuple(queries))
    index = _subset_data(args, args.index, args.model)
    query = args.query[0] if len(args.query) == 1 and args.query[0] in ("test", "val", "train") else args.query
    r = retrieve(
        index, query, k=args.k, model=args.model, features=args.features, layer=args.layer, pool=args.pool,
        pca=args.pca, pq=args.pq, pq_bits=args.pq_bits, metric=args.metric, out=args.output, show=args.show,
        device=args.device,
    )  # fmt: skip
    if args.json:
        print(json.dumps({"description": r.description, **r.metrics, "png": str(r.png), "html": str(r.html)}, indent=2))
        return 0
    print(f"{len(r.query_ids)} queries against {len(r.index_ids)} images; {r.description}")
    if r.metrics:
        k = r.metrics["k"]
        print(f"precision@{k} {r.metrics[f'precision@{k}']:.4f}   mAP@{k} {r.metrics[f'map@{k}']:.4f}")
    if r.query_precision is not None:
        fails = int((r.query_precision < 1).sum())
        print(f"{fails} of {len(r.query_ids)} queries have a neighbour of another class (drawn first)")
    print(f"written {r.png} and {r.html}")
    return 0
