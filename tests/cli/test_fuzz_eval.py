"""Bad inputs to ``cnnkit eval``, ``predict``, ``compare``, ``summary`` and ``compare-arch``.

Every case must fail cleanly (see ``cnnkit_fuzz``): one ``error:`` line naming the file or option,
a non-zero exit, no traceback, and no file outside the command's own output changed. The run folder
``{run}`` is a fresh copy of the session's trained LeNet-5 digits run for each case, so cases may
damage it freely.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cnnkit_fuzz import Case, bad_values, run_case, write

Setup = Callable[[Path], None]


# -- setup helpers: each returns a function of the case folder ------------------------------------
def edit_json(rel: str, change: Callable[[Any], Any]) -> Setup:
    """Load ``rel`` as JSON, apply ``change`` (which returns the new content), write it back."""

    def setup(folder: Path) -> None:
        p = folder / rel
        p.write_text(json.dumps(change(json.loads(p.read_text()))))

    return setup


def edit_dict(rel: str, **values: Any) -> Setup:
    """Set keys of a JSON object (a value of ``DROP`` removes the key)."""

    def change(d: dict[str, Any]) -> dict[str, Any]:
        for k, v in values.items():
            if v is DROP:
                d.pop(k, None)
            else:
                d[k] = v
        return d

    return edit_json(rel, change)


DROP = object()


def truncate(rel: str, keep: float = 0.5) -> Setup:
    def setup(folder: Path) -> None:
        p = folder / rel
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])

    return setup


def remove(rel: str) -> Setup:
    def setup(folder: Path) -> None:
        p = folder / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    return setup


def mkdir(rel: str) -> Setup:
    return lambda folder: (folder / rel).mkdir(parents=True, exist_ok=True)


def both(*setups: Setup) -> Setup:
    def setup(folder: Path) -> None:
        for s in setups:
            s(folder)

    return setup


RANDOM = bytes((i * 7919 + 13) % 251 for i in range(4096))  # fixed "random" bytes


def png_header(width: int, height: int, bit_depth: int = 1) -> bytes:
    """A grey PNG that declares ``width x height`` pixels but holds almost no data (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tiny_png(rel: str, size: tuple[int, int] = (8, 8)) -> Setup:
    def setup(folder: Path) -> None:
        from PIL import Image

        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", size, 128).save(p)

    return setup


def noisy_png_bytes() -> bytes:
    """A 64x64 PNG of noise: its pixel data does not compress, so cutting the file cuts pixels."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("L", (64, 64), random.Random(0).randbytes(64 * 64)).save(buf, format="PNG")
    return buf.getvalue()


def other_arch_weights(rel: str = "run/best.safetensors") -> Setup:
    """Replace a run's weights with a LeNet-1's (the sidecar still says LeNet-5)."""

    def setup(folder: Path) -> None:
        from safetensors.torch import save_file

        from cnnkit.models import create_model

        m = create_model("lenet1", num_classes=10, in_chans=1, input_size=(28, 28))
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(folder / rel))

    return setup


def copy_run(dest: str, change: Callable[[dict[str, Any]], None] | None = None) -> Setup:
    """Copy the case's run to ``dest`` and optionally edit the copy's ``best.json``."""

    def setup(folder: Path) -> None:
        shutil.copytree(folder / "run", folder / dest)
        if change is not None:
            p = folder / dest / "best.json"
            d = json.loads(p.read_text())
            change(d)
            p.write_text(json.dumps(d))

    return setup


def rgb_run(dest: str) -> Setup:
    """A run folder holding a colour (3-channel) LeNet-5 with the digits classes."""

    def setup(folder: Path) -> None:
        from cnnkit.models import create_model
        from cnnkit.run import WeightsMeta, save_weights

        (folder / dest).mkdir()
        meta = WeightsMeta(model="lenet5", model_args={}, num_classes=10, classes=[str(i) for i in range(10)],
                           input_size=[3, 32, 32], mean=[0.5] * 3, std=[0.25] * 3, dataset="digits")  # fmt: skip
        save_weights(create_model("lenet5", num_classes=10, in_chans=3, input_size=(32, 32)),
                     folder / dest / "best.safetensors", meta)  # fmt: skip

    return setup


def letters(d: dict[str, Any]) -> None:
    d["classes"] = list("abcdefghij")


def split_with_test_in_train(d: dict[str, Any]) -> dict[str, Any]:
    d["train"] = d["train"] + d["test"][:3]
    return d


def eval_metrics(**values: Any) -> Setup:
    """An ``eval/test/metrics.json`` for compare (cheap: compare reads it instead of counting)."""
    base = {"acc": 0.9, "top5": 1.0, "loss": 0.1, "params": 61706, "macs": 416520}
    base.update(values)
    return write("run/eval/test/metrics.json", json.dumps(base))


def no_eval_in(folder: Path) -> None:
    """A folder that is no run: a couple of unrelated files."""
    (folder / "notrun").mkdir()
    (folder / "notrun" / "notes.txt").write_text("hello\n")


R = "{run}"
T = "{tmp}"

# fmt: off
CASES: list[Case] = [
    # ---- eval: damaged run folders ------------------------------------------------------------------
    Case("eval-config-not-yaml", ["eval", R], write("run/config.yaml", "model: [lenet5\n  epochs: {"), "config.yaml"),
    Case("eval-config-a-list", ["eval", R], write("run/config.yaml", "- lenet5\n- digits\n"), "not a mapping"),
    Case("eval-config-binary", ["eval", R], write("run/config.yaml", b"\xff\xfe\x00garbage\x80"), "config.yaml"),
    Case("eval-config-bad-value", ["eval", R],
         lambda f: (f / "run/config.yaml").write_text((f / "run/config.yaml").read_text()
                                                      .replace("val_split: 0.15", "val_split: lots")), "val_split"),
    Case("eval-config-unknown-data", ["eval", R],
         lambda f: (f / "run/config.yaml").write_text((f / "run/config.yaml").read_text()
                                                      .replace("data: digits", "data: digitz")), "digitz"),
    Case("eval-sidecar-not-json", ["eval", R], write("run/best.json", "{\"model\": "), "best.json"),
    Case("eval-sidecar-a-list", ["eval", R], write("run/best.json", "[1, 2, 3]"), "best.json"),
    Case("eval-sidecar-num-classes-str", ["eval", R], edit_dict("run/best.json", num_classes="ten"), "num_classes"),
    Case("eval-sidecar-no-classes", ["eval", R], edit_dict("run/best.json", classes=DROP), "best.json"),
    Case("eval-sidecar-short-classes", ["eval", R], edit_dict("run/best.json", classes=["0", "1"]), "classes"),
    Case("eval-sidecar-bad-input-size", ["eval", R], edit_dict("run/best.json", input_size=[1, 0, -3]), "input_size"),
    Case("eval-sidecar-std-zero", ["eval", R], edit_dict("run/best.json", std=[0.0]), "std"),
    Case("eval-sidecar-no-format", ["eval", R], edit_dict("run/best.json", format=DROP), "best.json"),
    Case("eval-sidecar-other-model", ["eval", R], edit_dict("run/best.json", model="lenet1"), "best"),
    Case("eval-sidecar-unknown-model", ["eval", R], edit_dict("run/best.json", model="lenet99"), "lenet99"),
    Case("eval-sidecar-bogus-model-args", ["eval", R], edit_dict("run/best.json", model_args={"wings": 2}), "wings"),
    Case("eval-sidecar-model-args-list", ["eval", R], edit_dict("run/best.json", model_args=[1]), "model_args"),
    Case("eval-weights-truncated", ["eval", R], truncate("run/best.safetensors"), "best.safetensors"),
    Case("eval-weights-random", ["eval", R], write("run/best.safetensors", RANDOM), "best.safetensors"),
    Case("eval-weights-empty", ["eval", R], write("run/best.safetensors", b""), "best.safetensors"),
    Case("eval-weights-other-arch", ["eval", R], other_arch_weights(), "do not fit"),
    Case("eval-weights-missing", ["eval", R], remove("run/best.safetensors"), "best.safetensors"),
    Case("eval-weights-a-folder", ["eval", R], both(remove("run/best.safetensors"), mkdir("run/best.safetensors")),
         "best.safetensors"),
    Case("eval-split-not-json", ["eval", R], write("run/split.json", "{\"train\": ["), "split.json"),
    Case("eval-split-not-lists", ["eval", R], edit_dict("run/split.json", test="digits/1"), "split.json"),
    Case("eval-split-other-ids", ["eval", R], edit_dict("run/split.json", test=["cifar/1", "cifar/2"]), "split.json"),
    Case("eval-split-int-ids", ["eval", R], edit_dict("run/split.json", val=[1, 2, 3]), "split.json"),
    Case("eval-not-a-run", ["eval", f"{T}/notrun"], no_eval_in, "notrun"),
    Case("eval-empty-folder", ["eval", f"{T}/empty"], mkdir("empty"), "empty"),
    Case("eval-file-as-run", ["eval", f"{R}/best.safetensors"], None, "best.safetensors"),
    Case("eval-missing-path", ["eval", f"{T}/nope"], None, "does not exist"),
    # ---- eval: options ------------------------------------------------------------------------------------
    Case("eval-split-bad-choice", ["eval", R, "--split", "holdout"], None, "--split", code=2),
    Case("eval-tta-bad-choice", ["eval", R, "--tta", "rotate"], None, "--tta", code=2),
    Case("eval-device-bad", ["eval", R, "--device", "tpu"], None, "--device", code=2),
    Case("eval-ensemble-other-classes", ["eval", R, "--ensemble", f"{T}/other"], copy_run("other", letters), "classes"),
    Case("eval-ensemble-other-channels", ["eval", R, "--tta", "flip", "--ensemble", f"{T}/rgb"], rgb_run("rgb"),
         "channel"),
    Case("eval-ensemble-missing", ["eval", R, "--ensemble", f"{T}/nope"], None, "nope"),
    Case("eval-ensemble-itself", ["eval", R, "--ensemble", R], None, "twice"),
    Case("eval-ensemble-trained-on-test", ["eval", R, "--ensemble", f"{T}/other"],
         both(copy_run("other"), edit_json("other/split.json", split_with_test_in_train)), "trained"),
    Case("eval-ensemble-damaged-member", ["eval", R, "--ensemble", f"{T}/other"],
         both(copy_run("other"), write("other/best.json", "nope")), "other"),
    Case("eval-data-unknown", ["eval", R, "--data", "nosuchdata"], None, "nosuchdata"),
    Case("eval-data-missing-folder", ["eval", R, "--data", f"folder:{T}/nope"], None, "nope"),
    Case("eval-data-other-classes", ["eval", R, "--data", f"folder:{T}/imgs"],
         both(*[tiny_png(f"imgs/{c}/{i}.png") for c in ("cat", "dog") for i in range(6)]), "classes"),
    Case("eval-data-csv-binary", ["eval", R, "--data", f"csv:{T}/list.csv"], write("list.csv", RANDOM), "list.csv"),
    Case("eval-data-empty-folder", ["eval", R, "--data", f"folder:{T}/imgs"], mkdir("imgs"), "imgs"),
    Case("eval-ensemble-no-value", ["eval", R, "--ensemble"], None, "--ensemble", code=2),
    Case("eval-out-is-a-file", ["eval", R, "--no-report"], write("run/eval", "not a folder"), "eval"),
    Case("eval-metrics-is-a-folder", ["eval", R, "--no-report"], mkdir("run/eval/test/metrics.json"), "metrics.json"),
    # ---- predict ------------------------------------------------------------------------------------------------
    Case("predict-zero-byte", ["predict", R, f"{T}/empty.png"], write("empty.png", b""), "empty.png"),
    Case("predict-truncated", ["predict", R, f"{T}/cut.png"],
         write("cut.png", noisy_png_bytes()[:2500]), "truncated"),
    Case("predict-random-bytes", ["predict", R, f"{T}/noise.png"], write("noise.png", RANDOM), "noise.png"),
    Case("predict-text-file", ["predict", R, f"{R}/config.yaml"], None, "config.yaml"),
    Case("predict-bomb-error", ["predict", R, f"{T}/bomb.png"], write("bomb.png", png_header(100_000, 100_000)),
         "too large"),
    Case("predict-bomb-warning", ["predict", R, f"{T}/bomb.png"], write("bomb.png", png_header(10_000, 10_000)),
         "too large"),
    Case("predict-missing-image", ["predict", R, f"{T}/nope.png"], None, "nope.png"),
    Case("predict-all-bad", ["predict", R, f"{T}/a.png", f"{T}/b.png", "--json"],
         both(write("a.png", b""), write("b.png", RANDOM)), "could be read"),
    Case("predict-dev-zero", ["predict", R, "/dev/zero"], None, "/dev/zero"),
    Case("predict-markup-in-name", ["predict", R, f"{T}/x[/red].png"], write("x[/red].png", RANDOM), "red]"),
    Case("predict-folder-named-png", ["predict", R, f"{T}/photo.png"], mkdir("photo.png"), "no images"),
    Case("predict-folder-no-images", ["predict", R, f"{T}/docs"], write("docs/readme.txt", "hi"), "no images"),
    Case("predict-empty-folder", ["predict", R, f"{T}/none"], mkdir("none"), "no images"),
    Case("predict-topk-zero", ["predict", R, f"{T}/a.png", "--topk", "0"], tiny_png("a.png"), "--topk", code=2),
    Case("predict-topk-negative", ["predict", R, f"{T}/a.png", "--topk", "-3"], tiny_png("a.png"), "--topk", code=2),
    Case("predict-topk-huge", ["predict", R, f"{T}/a.png", "--topk", str(10**30)], tiny_png("a.png"), "--topk",
         code=2),
    Case("predict-topk-text", ["predict", R, f"{T}/a.png", "--topk", "all"], tiny_png("a.png"), "--topk", code=2),
    Case("predict-tta-bad", ["predict", R, f"{T}/a.png", "--tta", "mirror"], tiny_png("a.png"), "--tta", code=2),
    Case("predict-json-and-csv", ["predict", R, f"{T}/a.png", "--json", "--csv"], tiny_png("a.png"), "--csv", code=2),
    Case("predict-image-as-run", ["predict", f"{T}/a.png", f"{T}/a.png"], tiny_png("a.png"), "a.png"),
    Case("predict-weights-random", ["predict", R, f"{T}/a.png"],
         both(tiny_png("a.png"), write("run/best.safetensors", RANDOM)), "best.safetensors"),
    Case("predict-weights-other-arch", ["predict", R, f"{T}/a.png"], both(tiny_png("a.png"), other_arch_weights()),
         "do not fit"),
    Case("predict-sidecar-classes-ints", ["predict", R, f"{T}/a.png"],
         both(tiny_png("a.png"), edit_dict("run/best.json", classes=list(range(10)))), "classes"),
    Case("predict-config-damaged", ["predict", R, f"{T}/a.png"],
         both(tiny_png("a.png"), write("run/config.yaml", ": : :\n\t- [")), "config.yaml"),
    # ---- compare ------------------------------------------------------------------------------------------------
    Case("compare-summary-not-json", ["compare", R, "-o", f"{T}/cmp"], write("run/summary.json", "{\"test\":"),
         "summary.json"),
    Case("compare-summary-a-list", ["compare", R, "-o", f"{T}/cmp"], write("run/summary.json", "[]"), "summary.json"),
    Case("compare-summary-test-a-string", ["compare", R, "-o", f"{T}/cmp"],
         edit_dict("run/summary.json", test="great"), "summary.json"),
    Case("compare-summary-acc-a-string", ["compare", R, "-o", f"{T}/cmp"],
         edit_dict("run/summary.json", test={"acc": "high"}), "summary.json"),
    Case("compare-summary-timing-bad", ["compare", R, "-o", f"{T}/cmp"],
         edit_dict("run/summary.json", timing={"train_seconds": "fast"}), "summary.json"),
    Case("compare-eval-not-json", ["compare", R, "-o", f"{T}/cmp"], write("run/eval/test/metrics.json", "{"),
         "metrics.json"),
    Case("compare-eval-a-list", ["compare", R, "-o", f"{T}/cmp"], write("run/eval/test/metrics.json", "[0.9]"),
         "metrics.json"),
    Case("compare-eval-acc-a-string", ["compare", R, "-o", f"{T}/cmp"], eval_metrics(acc="ninety"), "metrics.json"),
    Case("compare-eval-acc-out-of-range", ["compare", R, "-o", f"{T}/cmp"], eval_metrics(acc=95.0), "metrics.json"),
    Case("compare-eval-params-a-string", ["compare", R, "-o", f"{T}/cmp"], eval_metrics(params="61k"), "metrics.json"),
    Case("compare-eval-macs-negative", ["compare", R, "-o", f"{T}/cmp"], eval_metrics(macs=-5), "metrics.json"),
    Case("compare-config-damaged", ["compare", R, "-o", f"{T}/cmp"], write("run/config.yaml", "[unclosed"),
         "config.yaml"),
    Case("compare-weights-random", ["compare", R, "-o", f"{T}/cmp"], write("run/best.safetensors", RANDOM),
         "best.safetensors"),
    Case("compare-missing-run", ["compare", R, f"{T}/nope", "-o", f"{T}/cmp"], None, "nope"),
    Case("compare-not-a-run", ["compare", f"{T}/notrun", "-o", f"{T}/cmp"], no_eval_in, "notrun"),
    Case("compare-file-as-run", ["compare", f"{R}/summary.json", "-o", f"{T}/cmp"], None, "summary.json"),
    Case("compare-same-run-twice", ["compare", R, R, "-o", f"{T}/cmp"], None, "twice"),
    Case("compare-out-is-a-file", ["compare", R, "-o", f"{T}/out.txt"], write("out.txt", "x"), "out.txt"),
    Case("compare-out-under-a-file", ["compare", R, "-o", f"{T}/out.txt/sub"], write("out.txt", "x"), "out.txt"),
    Case("compare-out-csv-is-a-folder", ["compare", R, "-o", f"{T}/cmp"], mkdir("cmp/compare.csv"), "compare.csv"),
    Case("compare-out-png-is-a-folder", ["compare", R, "-o", f"{T}/cmp"], mkdir("cmp/acc_vs_macs.png"),
         "acc_vs_macs.png"),
    Case("compare-out-empty", ["compare", R, "-o", ""], None, "--out"),
    Case("compare-split-bad", ["compare", R, "--split", "train"], None, "--split", code=2),
    # ---- summary ------------------------------------------------------------------------------------------------
    Case("summary-input-zero", ["summary", "lenet5", "--input", "0x0x0"], None, "--input"),
    Case("summary-input-huge", ["summary", "lenet5", "--input", "3x100000x100000"], None, "--input"),
    Case("summary-input-huge-run", ["summary", R, "--input", "1x100000x100000"], None, "--input"),
    Case("summary-input-negative", ["summary", "lenet5", "--input", "-3"], None, "--input"),
    Case("summary-input-huge-channels", ["summary", "lenet5", "--input", "100000x32x32"], None, "--input"),
    Case("summary-input-size-run", ["summary", R, "--input", "64"], None, "1x64x64"),
    Case("summary-input-garbage", ["summary", "lenet5", "--input", "big"], None, "--input"),
    Case("summary-input-four-dims", ["summary", "lenet5", "--input", "1x3x32x32"], None, "--input"),
    Case("summary-input-float", ["summary", "lenet5", "--input", "32.5"], None, "--input"),
    Case("summary-input-empty", ["summary", "lenet5", "--input", ""], None, "--input"),
    Case("summary-input-too-small", ["summary", "lenet5", "--input", "1x2x2"], None, "lenet5"),
    Case("summary-input-channels-run", ["summary", R, "--input", "3x32x32"], None, "3x32x32"),
    Case("summary-unknown-model", ["summary", "lenet6"], None, "lenet6"),
    Case("summary-unknown-torchvision", ["summary", "torchvision:nosuchnet"], None, "nosuchnet"),
    Case("summary-num-classes-zero", ["summary", "lenet5", "--num-classes", "0"], None, "--num-classes", code=2),
    Case("summary-num-classes-huge", ["summary", "lenet5", "--num-classes", str(10**12)], None, "--num-classes",
         code=2),
    Case("summary-num-classes-run", ["summary", R, "--num-classes", "5"], None, "--num-classes"),
    Case("summary-batch-zero", ["summary", "lenet5", "--batch", "0"], None, "--batch", code=2),
    Case("summary-depth-negative", ["summary", "lenet5", "--depth", "-1"], None, "--depth", code=2),
    Case("summary-dtype-bad", ["summary", "lenet5", "--dtype", "int8"], None, "--dtype", code=2),
    Case("summary-run-weights-random", ["summary", R], write("run/best.safetensors", RANDOM), "best.safetensors"),
    Case("summary-run-sidecar-damaged", ["summary", R], write("run/best.json", "{}"), "best.json"),
    Case("summary-not-a-run", ["summary", f"{T}/notrun"], no_eval_in, "notrun"),
    Case("summary-file-path", ["summary", f"{R}/config.yaml"], None, "config.yaml"),
    Case("summary-missing-path", ["summary", f"{T}/nope/run"], None, "nope"),
    # ---- compare-arch -------------------------------------------------------------------------------------------
    Case("arch-unknown-model", ["compare-arch", "lenet5", "alexnett"], None, "alexnett"),
    Case("arch-input-garbage", ["compare-arch", "lenet5", "lenet1", "--input", "3by32"], None, "--input"),
    Case("arch-input-huge", ["compare-arch", "lenet5", "--input", "3x100000x100000"], None, "--input"),
    Case("arch-num-classes-zero", ["compare-arch", "lenet5", "--num-classes", "0"], None, "--num-classes", code=2),
    Case("arch-dtype-bad", ["compare-arch", "lenet5", "--dtype", "float8"], None, "--dtype", code=2),
    Case("arch-damaged-run", ["compare-arch", "lenet5", R], write("run/config.yaml", "{"), "config.yaml"),
    Case("arch-missing-run", ["compare-arch", "lenet5", f"{T}/nope/"], None, "nope"),
    # ---- bench --------------------------------------------------------------------------------------------------
    Case("bench-no-model", ["bench"], None, "--model", code=2),
    Case("bench-unknown-model", ["bench", "--model", "lenet6"], None, "lenet6"),
    *bad_values(["bench", "--model", "lenet5"], "--batch-size", "bench-batch", zero="0", word="many",
                huge="1000000000"),
    *bad_values(["bench", "--model", "lenet5"], "--steps", "bench-steps", zero="0", negative="-1"),
    *bad_values(["bench", "--model", "lenet5"], "--repeats", "bench-repeats", zero="0"),
    *bad_values(["bench", "--model", "lenet5"], "--warmup", "bench-warmup", negative="-1"),
    *bad_values(["bench", "--model", "lenet5"], "--input-size", "bench-input", zero="0", too_small=("4", "4x4"),
                huge="100000"),
    Case("bench-input-alexnet-tiny", ["bench", "--model", "alexnet", "--input-size", "8"], None, "3x8x8"),
    Case("bench-channels-zero", ["bench", "--model", "lenet5", "--channels", "0"], None, "--channels", code=2),
    Case("bench-classes-with-data", ["bench", "--model", "lenet5", "--data", "digits", "--classes", "3"], None,
         "--classes"),
    Case("bench-data-missing-folder", ["bench", "--model", "lenet5", "--data", f"folder:{T}/nope"], None, "nope"),
    Case("bench-data-unknown", ["bench", "--model", "lenet5", "--data", "nosuchset"], None, "nosuchset"),
    Case("bench-augment-bad", ["bench", "--model", "lenet5", "--augment", "spin=3"], None, "--augment"),
    Case("bench-amp-bad", ["bench", "--model", "lenet5", "--amp", "maybe"], None, "--amp", code=2),
    Case("bench-device-bad", ["bench", "--model", "lenet5", "--device", "tpu"], None, "--device", code=2),
    Case("bench-synthetic-too-big", ["bench", "--model", "resnet18", "--batch-size", "60000"], None, "--batch-size"),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, tmp_path: Path, trained_run: Path) -> None:
    run_case(case, tmp_path, run_dir=trained_run)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_unwritable_run_folder_for_eval(tmp_path: Path, trained_run: Path) -> None:
    """``eval`` writes into RUN_DIR/eval: a read-only run folder is refused before any work."""
    if os.geteuid() == 0:
        pytest.skip("permissions are not enforced for root")
    case = Case("eval-readonly-run", ["eval", R, "--no-report"], lambda f: (f / "run").chmod(0o500), "not writable")
    try:
        run_case(case, tmp_path, run_dir=trained_run)
    finally:
        (tmp_path / "run").chmod(0o700)


def test_unwritable_compare_out(tmp_path: Path, trained_run: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("permissions are not enforced for root")
    case = Case("compare-readonly-out", ["compare", R, "-o", f"{T}/ro/cmp"],
                lambda f: (f / "ro").mkdir(mode=0o500), "not writable")  # fmt: skip
    try:
        run_case(case, tmp_path, run_dir=trained_run)
    finally:
        (tmp_path / "ro").chmod(0o700)


def _cnnkit(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "0"}
    return subprocess.Popen([sys.executable, "-m", "cnnkit", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)  # fmt: skip


def _read_a_little_then_close(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """What ``| head -2`` does: read two lines, close the pipe, wait for the writer."""
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace")
    return proc.wait(timeout=120), err


def test_predict_json_into_a_closed_pipe(tmp_path: Path, trained_run: Path) -> None:
    """``cnnkit predict RUN DIR --json | head -2``: more output than a pipe buffer holds, reader gone early."""
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(200):  # ~700 bytes of JSON each: twice the 64 KiB a pipe buffers
        Image.new("L", (8, 8), i).save(imgs / f"{i:03d}.png")
    code, err = _read_a_little_then_close(_cnnkit("predict", str(trained_run), str(imgs), "--json", "--topk", "10",
                                                  cwd=tmp_path))  # fmt: skip
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert code in (0, 141), (code, err)


def test_summary_json_into_a_closed_pipe(tmp_path: Path) -> None:
    """``cnnkit summary resnet50 --json | head -2`` ends quietly (a large table, built on the meta device)."""
    code, err = _read_a_little_then_close(_cnnkit("summary", "resnet50", "--json", cwd=tmp_path))
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert code in (0, 141), (code, err)


def test_markup_in_names_is_printed_verbatim(
    tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """File, run and class names are text: ``x[/red].png`` once crashed rich's markup parser (exit 0 now)."""
    from PIL import Image

    from cnnkit.cli import main

    monkeypatch.setenv("COLUMNS", "400")  # rich's table: one line per image, no folded paths
    (tmp_path / "x[").mkdir()
    Image.new("L", (8, 8), 9).save(tmp_path / "x[" / "red].png")
    run = tmp_path / "r[" / "b]"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval", "*.lock"))
    meta = json.loads((run / "best.json").read_text())
    meta["classes"][0] = "[/zero]"
    (run / "best.json").write_text(json.dumps(meta))
    assert main(["predict", str(run), str(tmp_path / "x["), "--topk", "10"]) == 0
    out = capsys.readouterr().out
    assert "red].png" in out and "[/zero]" in out
    assert main(["compare", str(run), "-o", str(tmp_path / "cmp")]) == 0
    assert "b]" in capsys.readouterr().out
    assert main(["compare-arch", str(run)]) == 0
    assert "(b])" in capsys.readouterr().out
