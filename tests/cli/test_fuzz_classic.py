"""Bad input to the classic-vision commands ``filter``, ``filter-bank`` and ``baseline`` (issue 18).

Every case must fail cleanly (one ``error:`` line, a non-zero exit, no traceback, no "internal error")
and leave the case folder as it was (see :mod:`cnnkit_fuzz`). None needs a trained run; kernels and
images are tiny, and sizes that would allocate gigabytes are refused before any allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cnnkit_fuzz import Case, bad_values, run_case
from fuzz_files import bad_image_cases, bomb_png, both, folder, png, random_bytes, raw

IMG = png("img.png")


def classes(rel: str, per_class: int = 5, names: tuple[str, ...] = ("a", "b")) -> Callable[[Path], None]:
    """Setup: ``rel/<class>/<i>.png``, tiny grey-ish images."""
    return both(*(png(f"{rel}/{c}/{i}.png", 8, 8) for c in names for i in range(per_class)))


def filt(*extra: str) -> list[str]:
    return ["filter", "img.png", *extra]


GAUSS = filt("--kernel", "gaussian")


FILTER_CASES = [
    # --- images
    *bad_image_cases("filter", filt(), missing_image="not found", truncated_image="img.png",
                     decompression_bomb="pixels", bomb_just_over_limit="pixels", folder_as_image="is a folder"),
    # --- sizes and counts
    *bad_values(filt(), "--stride", "filter-stride", setup=IMG, **{"0": "0"}, huge="100000"),
    *bad_values(filt(), "--dilation", "filter-dilation", setup=IMG, **{"0": "0"}, huge="100000"),
    Case("filter-dilated-span-too-wide", filt("--kernel", "gaussian", "-p", "sigma=3", "--dilation", "1000"),
         setup=IMG, expect="spans"),  # fmt: skip
    Case("filter-valid-mode-kernel-larger-than-image", filt("--kernel", "boxcar", "-p", "n=50", "--mode", "valid"),
         setup=IMG, expect="smaller than"),  # fmt: skip
    # --- kernel parameters
    *bad_values(GAUSS, "-p", "filter-sigma", expect="sigma", setup=IMG, negative="sigma=-1", nan="sigma=nan",
                huge="sigma=1e6"),  # fmt: skip
    Case("filter-sigma-inf", [*GAUSS, "-p", "sigma=inf"], setup=IMG, expect="finite"),
    Case("filter-size-0", [*GAUSS, "-p", "size=0"], setup=IMG, expect="size"),
    # Kernels larger than any image are refused before they are built.
    *bad_values(GAUSS, "-p", "filter-size", expect="at most", setup=IMG, huge="size=100000"),
    *bad_values(filt("--kernel", "boxcar"), "-p", "filter-boxcar-n", setup=IMG, huge=("n=100000", "at most"),
                fraction=("n=2.5", "integer")),  # fmt: skip
    Case("filter-gabor-theta-inf", filt("--kernel", "gabor", "-p", "theta=inf"), setup=IMG, expect="theta"),
    *bad_values(GAUSS, "-p", "filter", setup=IMG, unknown_parameter=("bogus=1", "accepts"),
                parameter_not_a_number=("sigma=abc", "sigma"), parameter_without_value=("sigma", "KEY=VALUE")),  # fmt: skip
    Case("filter-unknown-kernel", filt("--kernel", "sobelx"), setup=IMG, expect="sobel_x"),
    Case("filter-unknown-boundary", filt("--boundary", "wrap"), setup=IMG, expect="boundary"),
    Case("filter-unknown-mode", filt("--mode", "half"), setup=IMG, expect="mode"),
    # --- outputs
    Case("filter-output-is-the-image", filt("-o", "img.png"), setup=IMG, expect="also an input"),
    Case("filter-output-is-a-folder", filt("-o", "out"), setup=both(IMG, folder("out")), expect="is a folder"),
    Case("filter-output-under-a-file", filt("-o", "afile/x.png"), setup=both(IMG, raw("afile", "x")),
         expect="is a file"),  # fmt: skip
    # A default output name that is taken (a folder, a user's file) moves to NAME-2.png: not an error
    # any more (issue 17); tests/cli/test_first_hour.py checks that no such file is touched.
]

BANK_CASES = [
    Case("bank-missing-image", ["filter-bank", "nope.png"], expect="not found"),
    Case("bank-decompression-bomb", ["filter-bank", "img.png"], setup=bomb_png("img.png"), expect="pixels"),
    Case("bank-random-bytes-image", ["filter-bank", "img.png"], setup=random_bytes("img.png"), expect="not an image"),
    Case("bank-max-size-0", ["filter-bank", "img.png", "--max-size", "0"], setup=IMG, expect="--max-size"),
    Case("bank-max-size-negative", ["filter-bank", "img.png", "--max-size", "-1"], setup=IMG, expect="--max-size"),
    Case("bank-unknown-boundary", ["filter-bank", "img.png", "--boundary", "wrap"], setup=IMG, expect="boundary"),
    Case("bank-output-is-the-image", ["filter-bank", "img.png", "-o", "img.png"], setup=IMG, expect="also an input"),
    Case("bank-output-is-a-folder", ["filter-bank", "img.png", "-o", "out"], setup=both(IMG, folder("out")),
         expect="is a folder"),  # fmt: skip
]

BASELINE_CASES = [
    Case("baseline-unknown-features", ["baseline", "--features", "sift"], expect="'sift'"),
    Case("baseline-unknown-classifier", ["baseline", "--classifier", "tree"], expect="'tree'"),
    Case("baseline-test-split-above-1", ["baseline", "--test-split", "1.5"], expect="--test-split"),
    Case("baseline-test-split-0", ["baseline", "--test-split", "0"], expect="--test-split"),
    Case("baseline-test-split-1", ["baseline", "--test-split", "1"], expect="split"),
    Case("baseline-test-split-text", ["baseline", "--test-split", "half"], expect="--test-split"),
    Case("baseline-image-size-0", ["baseline", "--image-size", "0"], expect="--image-size"),
    Case("baseline-image-size-huge", ["baseline", "--image-size", "100000"], expect="--image-size"),
    Case("baseline-seed-negative", ["baseline", "--seed", "-1"], expect="--seed"),
    Case("baseline-unknown-data", ["baseline", "--data", "mnist"], expect="unknown dataset"),
    Case("baseline-missing-folder", ["baseline", "--data", "folder:nope"], expect="not found"),
    Case("baseline-folder-is-a-file", ["baseline", "--data", "folder:afile"], setup=raw("afile", "x"),
         expect="afile"),  # fmt: skip
    Case("baseline-one-class", ["baseline", "--data", "folder:d"], setup=classes("d", names=("a",)),
         expect="at least 2"),  # fmt: skip
    Case("baseline-too-few-images", ["baseline", "--data", "folder:d"], setup=classes("d", per_class=1),
         expect="too few"),  # fmt: skip
    Case("baseline-damaged-image-in-folder", ["baseline", "--data", "folder:d", "--features", "pixels"],
         setup=both(classes("d"), random_bytes("d/a/bad.png")), expect="bad.png"),  # fmt: skip
    Case("baseline-bomb-in-folder", ["baseline", "--data", "folder:d", "--features", "pixels"],
         setup=both(classes("d"), bomb_png("d/b/bomb.png")), expect="bomb.png"),  # fmt: skip
]

CASES = [*FILTER_CASES, *BANK_CASES, *BASELINE_CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


def test_a_folder_named_like_an_image_is_not_an_image(tmp_path, capsys) -> None:
    """A class sub-folder called ``x.png`` used to be read as an image and stop the baseline."""
    from cnnkit_fuzz import run

    both(classes("d"), folder("d/a/x.png"))(tmp_path)
    code, out, err = run(["baseline", "--data", "folder:d", "--features", "pixels", "--classifier", "knn"], tmp_path)
    assert code == 0, err
    assert "test accuracy" in out
