"""Bad input to the explain commands (``explain``, ``filters``, ``feature-maps``, ``top-activations``,
``dream``, ``style-transfer``, ``fool``, ``robustness``) and the transfer commands ``features``,
``fit-head`` and ``retrieve`` (issue 18).

Every case must fail cleanly (one ``error:`` line, a non-zero exit, no traceback, no "internal error")
and leave the case folder as it was, the run copy included (see :mod:`cnnkit_fuzz`). Cases stop before
any long computation; the ones on ``{run}`` use a copy of the session's trained LeNet-5 digits run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cnnkit_fuzz import Case, private_dirs, run_case  # noqa: F401  (private_dirs: autouse fixture)
from fuzz_files import (
    bad_image_cases,
    bomb_png,
    both,
    edit_run_config,
    folder,
    in_run,
    npy_as_npz,
    npz,
    npz_member,
    npz_pickle,
    png,
    random_bytes,
    raw,
    truncated_npz,
    truncated_png,
)

IMG = png("img.png")
STYLE = both(png("img.png"), png("style.png"))
CUDA = torch.cuda.is_available()


def explain(*extra: str) -> list[str]:
    return ["explain", "{run}", "img.png", *extra]


def style(*extra: str) -> list[str]:
    return ["style-transfer", "img.png", "style.png", "--steps", "1", "--size", "16", *extra]


def fool(*extra: str) -> list[str]:
    return ["fool", "{run}", "img.png", *extra]


EXPLAIN_CASES = [
    # --- images: missing, empty, not an image, damaged, too big, a folder
    *bad_image_cases("explain", explain(), missing_image="does not exist", truncated_image="truncated",
                     decompression_bomb="too large", bomb_just_over_limit="img.png", folder_as_image="img.png"),
    # --- classes and layers
    Case("explain-unknown-target", explain("--target", "zebra"), setup=IMG, expect="unknown class 'zebra'"),
    Case("explain-target-out-of-range", explain("--target", "99"), setup=IMG, expect="out of range"),
    Case("explain-unknown-layer", explain("--layer", "nosuch"), setup=IMG, expect="'nosuch'"),
    Case("explain-layer-without-maps", explain("--layer", "classifier"), setup=IMG, expect="spatial"),
    Case("explain-layer-with-saliency", explain("--method", "saliency", "--layer", "features.0"), setup=IMG,
         expect="only used by gradcam"),  # fmt: skip
    Case("explain-unknown-method", explain("--method", "magic"), setup=IMG, expect="--method"),
    # --- outputs: never over an input, never a folder, never under a file
    Case("explain-output-is-the-image", explain("-o", "img.png"), setup=IMG, expect="also an input"),
    Case("explain-output-over-run-weights", explain("-o", "{run}/best.safetensors"), setup=IMG,
         expect="also an input"),  # fmt: skip
    # explain's default output taken by an input: moves to explain-2.png (tests/cli/test_first_hour.py).
    Case("explain-output-is-a-folder", explain("-o", "out"), setup=both(IMG, folder("out")), expect="is a folder"),
    Case("explain-output-under-a-file", explain("-o", "afile/x.png"), setup=both(IMG, raw("afile", "x")),
         expect="is a file"),  # fmt: skip
    # --- devices
    Case("explain-unknown-device", explain("--device", "tpu"), setup=IMG, expect="--device"),
    # --- damaged or missing run folders
    Case("explain-run-missing", ["explain", "norun", "img.png"], setup=IMG, expect="does not exist"),
    Case("explain-run-is-a-file", ["explain", "afile", "img.png"], setup=both(IMG, raw("afile", "x")),
         expect="afile"),  # fmt: skip
    Case("explain-config-not-yaml", explain(), setup=both(IMG, in_run("config.yaml", "model: [unclosed\n")),
         expect="config.yaml"),  # fmt: skip
    Case("explain-config-a-list", explain(), setup=both(IMG, in_run("config.yaml", "- a\n- b\n")),
         expect="config.yaml"),  # fmt: skip
    Case("explain-weights-random-bytes", explain(), setup=both(IMG, in_run("best.safetensors", b"\x01" * 300)),
         expect="best.safetensors"),  # fmt: skip
    Case("explain-weights-empty", explain(), setup=both(IMG, in_run("best.safetensors", b"")),
         expect="best.safetensors"),  # fmt: skip
    Case("explain-sidecar-not-json", explain(), setup=both(IMG, in_run("best.json", "{oops")), expect="best.json"),
]

FILTERS_MAPS_TOP_CASES = [
    Case("filters-unknown-layer", ["filters", "{run}", "--layer", "nosuch"], expect="'nosuch'"),
    Case("filters-layer-not-a-convolution", ["filters", "{run}", "--layer", "features.1"], expect="no convolution"),
    Case("filters-output-is-a-folder", ["filters", "{run}", "-o", "out"], setup=folder("out"), expect="is a folder"),
    Case("filters-unknown-device", ["filters", "{run}", "--device", "tpu"], expect="--device"),
    Case("filters-damaged-weights", ["filters", "{run}"], setup=in_run("best.safetensors", b"\x00" * 64),
         expect="best.safetensors"),  # fmt: skip
    Case("maps-max-maps-0", ["feature-maps", "{run}", "img.png", "--layer", "features.0", "--max-maps", "0"],
         setup=IMG, expect="--max-maps"),  # fmt: skip
    Case("maps-max-maps-huge", ["feature-maps", "{run}", "img.png", "--layer", "features.0", "--max-maps", "100000"],
         setup=IMG, expect="--max-maps"),  # fmt: skip
    Case("maps-layer-required", ["feature-maps", "{run}", "img.png"], setup=IMG, expect="--layer"),
    Case("maps-unknown-layer", ["feature-maps", "{run}", "img.png", "--layer", "nosuch"], setup=IMG, expect="'nosuch'"),
    Case("maps-folder-as-image", ["feature-maps", "{run}", "img.png", "--layer", "features.0"], setup=folder("img.png"),
         expect="img.png"),  # fmt: skip
    Case("maps-output-is-the-image", ["feature-maps", "{run}", "img.png", "--layer", "features.0", "-o", "img.png"],
         setup=IMG, expect="also an input"),  # fmt: skip
    Case("top-unit-out-of-range", ["top-activations", "{run}", "--layer", "features.0", "--unit", "999"],
         expect="out of range"),  # fmt: skip
    Case("top-unit-negative", ["top-activations", "{run}", "--layer", "features.0", "--unit", "-1"], expect="--unit"),
    Case("top-unit-not-a-number", ["top-activations", "{run}", "--layer", "features.0", "--unit", "x"], expect="--unit"),
    Case("top-k-0", ["top-activations", "{run}", "--layer", "features.0", "--unit", "0", "-k", "0"], expect="-k"),
    Case("top-unknown-layer", ["top-activations", "{run}", "--layer", "nosuch", "--unit", "0"], expect="'nosuch'"),
    Case("top-unknown-data", ["top-activations", "{run}", "--layer", "features.0", "--unit", "0", "--data", "nosuch"],
         expect="unknown dataset"),  # fmt: skip
    Case("top-unknown-split", ["top-activations", "{run}", "--layer", "features.0", "--unit", "0", "--split", "x"],
         expect="--split"),  # fmt: skip
    Case("top-split-json-damaged", ["top-activations", "{run}", "--layer", "features.0", "--unit", "0"],
         setup=in_run("split.json", "[1, 2"), expect="split.json"),  # fmt: skip
    Case("top-config-bad-value", ["top-activations", "{run}", "--layer", "features.0", "--unit", "0"],
         setup=edit_run_config("val_split: 0.15", "val_split: 7"), expect="val"),  # fmt: skip
]

DREAM_CASES = [
    Case("dream-steps-0", ["dream", "{run}", "--steps", "0"], expect="--steps"),
    Case("dream-steps-huge", ["dream", "{run}", "--steps", "1000000000"], expect="--steps"),
    Case("dream-unknown-class", ["dream", "{run}", "--class", "zebra", "--steps", "1"], expect="unknown class"),
    Case("dream-empty-class-list", ["dream", "{run}", "--class", ",", "--steps", "1"], expect="--class"),
    Case("dream-class-out-of-range", ["dream", "{run}", "--class", "10", "--steps", "1"], expect="out of range"),
    Case("dream-lr-negative", ["dream", "{run}", "--lr", "-1", "--steps", "1"], expect="--lr"),
    Case("dream-lr-zero", ["dream", "{run}", "--lr", "0", "--steps", "1"], expect="--lr"),
    Case("dream-l2-negative", ["dream", "{run}", "--l2", "-1", "--steps", "1"], expect="--l2"),
    Case("dream-l2-nan", ["dream", "{run}", "--l2", "nan", "--steps", "1"], expect="--l2"),
    Case("dream-seed-negative", ["dream", "{run}", "--seed", "-1", "--steps", "1"], expect="--seed"),
    Case("dream-output-over-run-config", ["dream", "{run}", "--steps", "1", "-o", "{run}/config.yaml"],
         expect="also an input"),  # fmt: skip
]

STYLE_CASES = [
    Case("style-output-is-the-style-image", style("-o", "style.png"), setup=STYLE, expect="also an input"),
    Case("style-output-is-the-content-image", style("-o", "img.png"), setup=STYLE, expect="also an input"),
    # Without -o the result goes to styled.png (never an input's name; tests/cli/test_first_hour.py).
    Case("style-steps-0", style("--steps", "0", "-o", "o.png"), setup=STYLE, expect="--steps"),
    Case("style-size-0", style("--size", "0", "-o", "o.png"), setup=STYLE, expect="--size"),
    Case("style-size-huge", style("--size", "100000", "-o", "o.png"), setup=STYLE, expect="--size"),
    Case("style-unknown-model", style("--model", "nosuch", "-o", "o.png"), setup=STYLE, expect="unknown model"),
    Case("style-missing-run-folder", style("--model", "runs/nosuch", "-o", "o.png"), setup=STYLE,
         expect="does not exist"),  # fmt: skip
    Case("style-weights-random-bytes", style("--weights", "w.pt", "-o", "o.png"),
         setup=both(STYLE, random_bytes("w.pt")), expect="w.pt"),  # fmt: skip
    Case("style-weights-missing", style("--weights", "w.pt", "-o", "o.png"), setup=STYLE, expect="does not exist"),
    Case("style-weights-with-a-run", style("--model", "{run}", "--weights", "w.pt", "-o", "o.png"), setup=STYLE,
         expect="--weights"),  # fmt: skip
    Case("style-content-missing", ["style-transfer", "nope.png", "style.png", "-o", "o.png"], setup=STYLE,
         expect="does not exist"),  # fmt: skip
    Case("style-content-random-bytes", style("-o", "o.png"), setup=both(STYLE, random_bytes("img.png")),
         expect="not an image"),  # fmt: skip
    Case("style-content-bomb", style("-o", "o.png"), setup=both(STYLE, bomb_png("img.png")), expect="too large"),
    Case("style-style-is-a-folder", style("-o", "o.png"), setup=both(IMG, folder("style.png")), expect="style.png"),
    Case("style-style-truncated", style("-o", "o.png"), setup=both(IMG, truncated_png("style.png")),
         expect="truncated"),  # fmt: skip
    Case("style-style-weight-negative", style("--style-weight", "-1", "-o", "o.png"), setup=STYLE,
         expect="--style-weight"),  # fmt: skip
    Case("style-lr-zero", style("--lr", "0", "-o", "o.png"), setup=STYLE, expect="--lr"),
    Case("style-lr-inf", style("--lr", "inf", "-o", "o.png"), setup=STYLE, expect="--lr"),
    Case("style-unknown-optimizer", style("--optimizer", "sgd", "-o", "o.png"), setup=STYLE, expect="--optimizer"),
    Case("style-seed-negative", style("--seed", "-1", "-o", "o.png"), setup=STYLE, expect="--seed"),
    Case("style-unknown-device", style("--device", "tpu", "-o", "o.png"), setup=STYLE, expect="--device"),
    # A 200x4 image at --size 16 is 16x1 pixels: smaller than LeNet-5's 5x5 windows.
    Case("style-image-too-thin-for-the-network", style("--model", "{run}", "-o", "o.png"),
         setup=both(png("img.png", 200, 4), png("style.png")), expect="too small"),  # fmt: skip
]

FOOL_ROBUSTNESS_CASES = [
    Case("fool-eps-2", fool("--eps", "2"), setup=IMG, expect="eps"),
    Case("fool-eps-negative", fool("--eps", "-1"), setup=IMG, expect="eps"),
    Case("fool-eps-not-a-number", fool("--eps", "abc"), setup=IMG, expect="'abc'"),
    Case("fool-eps-division-by-zero", fool("--eps", "1/0"), setup=IMG, expect="'1/0'"),
    Case("fool-eps-nan", fool("--eps", "nan"), setup=IMG, expect="eps"),
    Case("fool-eps-two-values", fool("--eps", "0.1,0.2"), setup=IMG, expect="one eps"),
    Case("fool-steps-0", fool("--method", "pgd", "--steps", "0"), setup=IMG, expect="--steps"),
    Case("fool-unknown-method", fool("--method", "magic"), setup=IMG, expect="--method"),
    Case("fool-unknown-target", fool("--target", "zebra"), setup=IMG, expect="unknown class"),
    Case("fool-label-out-of-range", fool("--label", "10"), setup=IMG, expect="out of range"),
    Case("fool-output-is-the-image", fool("-o", "img.png"), setup=IMG, expect="also an input"),
    Case("fool-folder-as-image", fool(), setup=folder("img.png"), expect="img.png"),
    Case("fool-unknown-device", fool("--device", "tpu"), setup=IMG, expect="--device"),
    Case("robustness-eps-2", ["robustness", "{run}", "--eps", "0,2"], expect="eps"),
    Case("robustness-eps-empty", ["robustness", "{run}", "--eps", ","], expect="no eps"),
    Case("robustness-limit-0", ["robustness", "{run}", "--limit", "0"], expect="--limit"),
    Case("robustness-method-empty", ["robustness", "{run}", "--method", ","], expect="--method"),
    Case("robustness-unknown-method", ["robustness", "{run}", "--method", "fgsm,magic"], expect="'magic'"),
    Case("robustness-steps-0", ["robustness", "{run}", "--method", "pgd", "--steps", "0"], expect="--steps"),
    Case("robustness-unknown-data", ["robustness", "{run}", "--data", "nosuch", "--limit", "2"],
         expect="unknown dataset"),  # fmt: skip
    Case("robustness-output-is-a-folder", ["robustness", "{run}", "--limit", "2", "-o", "out"], setup=folder("out"),
         expect="is a folder"),  # fmt: skip
    Case("robustness-unknown-device", ["robustness", "{run}", "--device", "tpu"], expect="--device"),
]

# `--device cuda` on a machine without CUDA: every command that runs a network refuses it the same way.
DEVICE_CASES = [
    Case(f"{argv[0]}-device-cuda-unavailable", [*argv, "--device", "cuda"], setup=setup, expect="cuda")
    for argv, setup in [
        (explain(), IMG),
        (["filters", "{run}"], None),
        (["feature-maps", "{run}", "img.png", "--layer", "features.0"], IMG),
        (["top-activations", "{run}", "--layer", "features.0", "--unit", "0"], None),
        (["dream", "{run}", "--steps", "1"], None),
        (style("-o", "o.png"), STYLE),
        (fool(), IMG),
        (["robustness", "{run}", "--limit", "2"], None),
        (["features", "{run}"], None),
        (["retrieve", "--model", "{run}"], None),
    ]
]

FEATURES_CASES = [
    Case("features-unknown-source", ["features", "nosuchmodel"], expect="unknown model"),
    Case("features-missing-run-folder", ["features", "runs/nosuch"], expect="does not exist"),
    Case("features-pca-0", ["features", "{run}", "--pca", "0"], expect="--pca"),
    Case("features-pca-above-dimension", ["features", "{run}", "--pca", "500", "--splits", "train"],
         expect="--pca 500"),  # fmt: skip
    Case("features-pq-0", ["features", "{run}", "--pq", "0"], expect="--pq"),
    Case("features-pq-bits-0", ["features", "{run}", "--pq", "2", "--pq-bits", "0"], expect="--pq-bits"),
    Case("features-pq-bits-20", ["features", "{run}", "--pq", "2", "--pq-bits", "20"], expect="--pq-bits"),
    Case("features-pq-above-dimension", ["features", "{run}", "--pq", "500", "--splits", "train"],
         expect="feature dimension"),  # fmt: skip
    Case("features-unknown-layer", ["features", "{run}", "--layer", "nosuch"], expect="'nosuch'"),
    Case("features-unknown-split", ["features", "{run}", "--splits", "train,tset"], expect="'tset'"),
    Case("features-no-split", ["features", "{run}", "--splits", ","], expect="split"),
    Case("features-unknown-pool", ["features", "{run}", "--pool", "median"], expect="--pool"),
    Case("features-input-size-0", ["features", "lenet5", "--input-size", "0"], expect="--input-size"),
    Case("features-input-size-huge", ["features", "lenet5", "--input-size", "100000"], expect="--input-size"),
    Case("features-input-size-too-small-for-model", ["features", "lenet5", "--input-size", "4", "--splits", "test"],
         expect="at least"),  # fmt: skip
    Case("features-seed-negative", ["features", "{run}", "--seed", "-1"], expect="--seed"),
    Case("features-pixels-without-data", ["features", "pixels"], expect="--data"),
    Case("features-weights-random-bytes", ["features", "lenet5", "--weights", "w.pt"], setup=random_bytes("w.pt"),
         expect="w.pt"),  # fmt: skip
    Case("features-output-is-a-folder", ["features", "{run}", "-o", "out.npz"], setup=folder("out.npz"),
         expect="is a folder"),  # fmt: skip
    Case("features-output-under-a-file", ["features", "{run}", "-o", "afile/f.npz"], setup=raw("afile", "x"),
         expect="is a file"),  # fmt: skip
    Case("features-config-not-yaml", ["features", "{run}"], setup=in_run("config.yaml", "a: [b\n"),
         expect="config.yaml"),  # fmt: skip
    Case("features-subset-with-damaged-config", ["features", "{run}", "--per-class", "2"],
         setup=in_run("config.yaml", "a: [b\n"), expect="config.yaml"),  # fmt: skip
    Case("features-per-class-0", ["features", "{run}", "--per-class", "0"], expect="per-class"),
    Case("features-unknown-class", ["features", "{run}", "--classes", "zebra"], expect="'zebra'"),
]

FIT_HEAD_CASES = [
    Case("fit-head-missing-file", ["fit-head", "nope.npz"], expect="does not exist"),
    Case("fit-head-folder", ["fit-head", "f.npz"], setup=folder("f.npz"), expect="is a folder"),
    Case("fit-head-random-bytes", ["fit-head", "f.npz"], setup=random_bytes("f.npz"), expect="not an .npz"),
    Case("fit-head-an-image", ["fit-head", "img.png"], setup=IMG, expect="not an .npz"),
    Case("fit-head-npy-not-npz", ["fit-head", "f.npz"], setup=npy_as_npz("f.npz"), expect="single .npy"),
    Case("fit-head-truncated-zip", ["fit-head", "f.npz"], setup=truncated_npz("f.npz"), expect="f.npz"),
    # Loading this file with allow_pickle=True would create the folder UNPICKLED (the harness notices).
    Case("fit-head-pickled-objects", ["fit-head", "f.npz"], setup=npz_pickle("f.npz"), expect="pickled"),
    Case("fit-head-member-not-npy", ["fit-head", "f.npz"], setup=npz_member("f.npz", "features", b"garbage"),
         expect="not a NumPy array"),  # fmt: skip
    Case("fit-head-missing-arrays", ["fit-head", "f.npz"], setup=npz("f.npz", labels=None, ids=None),
         expect="missing ids, labels"),  # fmt: skip
    Case("fit-head-lengths-disagree", ["fit-head", "f.npz"], setup=npz("f.npz", labels=np.arange(10) % 2),
         expect="disagree in length"),  # fmt: skip
    Case("fit-head-features-1d", ["fit-head", "f.npz"], setup=npz("f.npz", features=np.zeros(12, np.float32)),
         expect="2-D"),  # fmt: skip
    Case("fit-head-features-strings", ["fit-head", "f.npz"], setup=npz("f.npz", features=np.full((12, 4), "a")),
         expect="numeric"),  # fmt: skip
    Case("fit-head-features-nan", ["fit-head", "f.npz"], setup=npz("f.npz", features=np.full((12, 4), np.nan)),
         expect="NaN"),  # fmt: skip
    Case("fit-head-labels-out-of-range", ["fit-head", "f.npz"], setup=npz("f.npz", labels=np.arange(12) % 2 * 5),
         expect="2 classes"),  # fmt: skip
    Case("fit-head-labels-negative", ["fit-head", "f.npz"], setup=npz("f.npz", labels=-(np.arange(12) % 2)),
         expect="2 classes"),  # fmt: skip
    Case("fit-head-labels-float", ["fit-head", "f.npz"], setup=npz("f.npz", labels=np.arange(12) % 2 + 0.5),
         expect="integer"),  # fmt: skip
    Case("fit-head-no-classes", ["fit-head", "f.npz"], setup=npz("f.npz", classes=np.array([], dtype=str)),
         expect="'classes' is empty"),  # fmt: skip
    Case("fit-head-unknown-split-rows", ["fit-head", "f.npz"], setup=npz("f.npz", split=np.array(["x"] * 12)),
         expect="unknown split"),  # fmt: skip
    Case("fit-head-meta-not-json", ["fit-head", "f.npz"], setup=npz("f.npz", meta=np.array("{oops")), expect="meta"),
    Case("fit-head-one-class", ["fit-head", "f.npz"], setup=npz("f.npz", labels=np.zeros(12, np.int64)),
         expect="single class"),  # fmt: skip
    Case("fit-head-k-0", ["fit-head", "f.npz", "-k", "0"], setup=npz("f.npz"), expect="-k"),
    Case("fit-head-C-0", ["fit-head", "f.npz", "--C", "0"], setup=npz("f.npz"), expect="--C"),
    Case("fit-head-C-inf", ["fit-head", "f.npz", "--C", "inf"], setup=npz("f.npz"), expect="--C"),
    Case("fit-head-unknown-fit-split", ["fit-head", "f.npz", "--fit-on", "trian"], setup=npz("f.npz"),
         expect="'trian'"),  # fmt: skip
    Case("fit-head-no-fit-split", ["fit-head", "f.npz", "--fit-on", ","], setup=npz("f.npz"), expect="--fit-on"),
    Case("fit-head-unknown-classifier", ["fit-head", "f.npz", "--classifier", "tree"], setup=npz("f.npz"),
         expect="--classifier"),  # fmt: skip
]


def retrieve(*extra: str) -> list[str]:
    return ["retrieve", "--model", "{run}", *extra]


RETRIEVE_CASES = [
    Case("retrieve-k-0", retrieve("-k", "0"), expect="-k"),
    Case("retrieve-k-above-index", retrieve("-k", "5000"), expect="exceeds"),
    Case("retrieve-pca-0", retrieve("--pca", "0"), expect="--pca"),
    Case("retrieve-pq-bits-20", retrieve("--pq", "2", "--pq-bits", "20"), expect="--pq-bits"),
    Case("retrieve-show-0", retrieve("--show", "0"), expect="--show"),
    Case("retrieve-without-model", ["retrieve"], expect="--model"),
    Case("retrieve-pixels-without-index", ["retrieve", "--features", "pixels"], expect="--index"),
    Case("retrieve-missing-run", ["retrieve", "--model", "runs/nosuch"], expect="does not exist"),
    Case("retrieve-missing-query-image", retrieve("--query", "nope.png"), expect="does not exist"),
    Case("retrieve-random-bytes-query", retrieve("--query", "q.png"), setup=random_bytes("q.png"),
         expect="not an image"),  # fmt: skip
    Case("retrieve-bomb-query", retrieve("--query", "q.png"), setup=bomb_png("q.png"), expect="too large"),
    Case("retrieve-empty-query-folder", retrieve("--query", "q"), setup=folder("q"), expect="no query images"),
    Case("retrieve-output-is-a-query", retrieve("--query", "img.png", "-o", "img.png"), setup=IMG,
         expect="also an input"),  # fmt: skip
    Case("retrieve-output-folder", retrieve("-o", "out.png"), setup=folder("out.png"), expect="is a folder"),
    Case("retrieve-html-beside-is-a-folder", retrieve("-o", "out.png"), setup=folder("out.html"),
         expect="out.html"),  # fmt: skip
    Case("retrieve-unknown-layer", retrieve("--layer", "nosuch"), expect="'nosuch'"),
    Case("retrieve-unknown-index-data", retrieve("--index", "nosuch"), expect="unknown dataset"),
    Case("retrieve-split-json-damaged", retrieve(), setup=in_run("split.json", "{"), expect="split.json"),
    Case("retrieve-unknown-metric", retrieve("--metric", "manhattan"), expect="--metric"),
]

CASES = [
    *EXPLAIN_CASES,
    *FILTERS_MAPS_TOP_CASES,
    *DREAM_CASES,
    *STYLE_CASES,
    *FOOL_ROBUSTNESS_CASES,
    *([] if CUDA else DEVICE_CASES),
    *FEATURES_CASES,
    *FIT_HEAD_CASES,
    *RETRIEVE_CASES,
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, tmp_path, request) -> None:
    # Only cases on {run} get (and pay for) a copy of the trained run.
    run_dir = request.getfixturevalue("trained_run") if any("{run}" in a for a in case.argv) else None
    run_case(case, tmp_path, run_dir=run_dir)


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


# ----------------------------------------------------------------------------- what still works
NETWORK_COMMANDS = [
    ["explain", "r", "i.png"],
    ["filters", "r"],
    ["feature-maps", "r", "i.png", "--layer", "features.0"],
    ["top-activations", "r", "--layer", "features.0", "--unit", "0"],
    ["dream", "r"],
    ["style-transfer", "a.png", "b.png"],
    ["fool", "r", "i.png"],
    ["robustness", "r"],
    ["features", "r"],
    ["retrieve", "--model", "r"],
]


@pytest.mark.parametrize("argv", NETWORK_COMMANDS, ids=[a[0] for a in NETWORK_COMMANDS])
def test_every_network_command_takes_the_same_device_flag(argv: list[str]) -> None:
    from cnnkit.cli import build_parser

    for device in ("auto", "cpu", "cuda", "mps"):
        assert build_parser().parse_args([*argv, "--device", device]).device == device


def test_filters_runs_with_device_auto(trained_run, tmp_path) -> None:
    from cnnkit_fuzz import run

    code, out, err = run(["filters", str(trained_run), "--device", "auto", "-o", "f.png"], tmp_path)
    assert code == 0, err
    assert (tmp_path / "f.png").is_file()


def test_style_transfer_default_output_is_written_when_it_is_not_an_input(tmp_path) -> None:
    from cnnkit_fuzz import run

    both(png("a.png"), png("b.png"))(tmp_path)
    code, out, err = run(["style-transfer", "a.png", "b.png", "--steps", "1", "--size", "16"], tmp_path)
    assert code == 0, err
    assert "written to styled.png" in out and (tmp_path / "styled.png").is_file()


def test_fit_head_does_not_score_the_rows_it_was_fitted_on(tmp_path) -> None:
    """--fit-on test used to report a (meaningless) near-100% "test accuracy"."""
    from cnnkit.transfer import fit_head

    npz("f.npz")(tmp_path)
    r = fit_head(tmp_path / "f.npz", "knn", fit_on=["test"], k=1)
    assert r.n_fit == 4 and "test" not in r.accuracy
    assert set(fit_head(tmp_path / "f.npz", "knn", fit_on=["train"], k=1).accuracy) == {"test"}
