"""Bad input to ``cnnkit train``, ``finetune``, ``show-batch``, ``datasets`` and ``models`` (issue 18).

Every case must fail cleanly (one ``error:`` line, a non-zero exit, no traceback) and leave the case
folder as it was (see :mod:`cnnkit_fuzz`). Cases fail before training starts, so each takes well under
a second; the ones on ``{run}`` use a copy of the session's trained LeNet-5 digits run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from cnnkit_fuzz import Case, bad_values, private_dirs, run_case, write  # noqa: F401  (private_dirs: autouse fixture)
from fuzz_files import both
from PIL import Image


# ----------------------------------------------------------------------------- setup helpers
def images(rel: str, classes: tuple[str, ...] = ("a", "b"), n: int = 6, size: int = 20) -> Callable[[Path], None]:
    """Setup: a folder of small grey PNGs, one subfolder per class."""

    def setup(folder: Path) -> None:
        rng = np.random.default_rng(0)
        for c in classes:
            d = folder / rel / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f"{i}.png")

    return setup


def junk_images(rel: str, classes: tuple[str, ...] = ("a", "b"), n: int = 3) -> Callable[[Path], None]:
    """Setup: class folders whose .png files are not images."""

    def setup(folder: Path) -> None:
        for c in classes:
            d = folder / rel / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (d / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))

    return setup


def csv_of(rel: str, text: str, with_images: bool = True) -> Callable[[Path], None]:
    """Setup: a CSV at ``rel`` (and images img/a/*.png, img/b/*.png beside it)."""
    mk = images("img") if with_images else (lambda folder: None)
    return both(mk, write(rel, text))


def rows(classes: tuple[str, ...] = ("a", "b"), n: int = 6) -> str:
    return "path,label\n" + "".join(f"img/{c}/{i}.png,{c}\n" for c in classes for i in range(n))


def edit_run(rel: str, change: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        change(folder / "run" / rel)

    return setup


def torch_file(rel: str, obj: object) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, p)

    return setup


def other_arch_checkpoint(folder: Path) -> None:
    """Replace the run's checkpoint.pt by one whose model state is another architecture's."""
    from cnnkit.models import create_model

    p = folder / "run" / "checkpoint.pt"
    ck = torch.load(p, weights_only=True)
    ck["model"] = create_model("lenet1", num_classes=10).state_dict()
    torch.save(ck, p)


def checkpoint_without(key: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        p = folder / "run" / "checkpoint.pt"
        ck = torch.load(p, weights_only=True)
        del ck[key]
        torch.save(ck, p)

    return setup


def lenet1_weights(rel: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        from cnnkit.models import create_model

        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(create_model("lenet1", num_classes=10).state_dict(), p)

    return setup


class Evil:
    """A pickled object: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("payload ran",))


RANDOM = bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))
FT = ["finetune", "--from", "{run}", "--epochs", "1"]
FTW = ["finetune", "--weights", "w.pth", "--model", "lenet5", "--epochs", "1"]  # fine-tune from a weights file
SB = ["show-batch", "-o", "out.png"]
LF = ["lr-find", "-o", "out.png", "--steps", "5"]

# ----------------------------------------------------------------------------- the cases
CASES: list[Case] = [
    # ---- train: numeric options out of range, bad choices
    *bad_values(["train"], "--epochs", zero="0", negative="-3", text="ten", huge="10000000000"),
    *bad_values(["train"], "--batch-size", zero="0", huge="99999999"),
    *bad_values(["train"], "--lr", zero="0", negative="-0.1", nan="nan", inf="inf", huge="1e6"),
    *bad_values(["train"], "--momentum", one="1"),
    *bad_values(["train"], "--weight-decay", negative="-1"),
    *bad_values(["train"], "--val-split", high="0.95"),
    Case("val-test-sum", ["train", "--val-split", "0.5", "--test-split", "0.5"], expect="val_split"),
    *bad_values(["train"], "--label-smoothing", one="1"),
    *bad_values(["train"], "--gamma", zero="0"),
    *bad_values(["train"], "--step-size", zero="0"),
    *bad_values(["train"], "--warmup-epochs", "warmup", negative="-1"),
    *bad_values(["train"], "--input-size", zero="0", huge="100000"),
    Case("input-size-too-small-for-model", ["train", "--input-size", "8", "--epochs", "1"], expect="16"),
    *bad_values(["train"], "--workers", negative="-1", huge="100000"),
    *bad_values(["train"], "--shuffle-buffer", negative="-1", huge="100000000", text="many"),
    *bad_values(["train"], "--memory-budget-mb", "memory-budget", negative="-5"),
    *bad_values(["train"], "--grad-clip", negative="-1"),
    *bad_values(["train"], "--early-stopping", negative="-1"),
    *bad_values(["train"], "--seed", negative="-1", huge=str(2**40)),
    Case("optimizer-typo", ["train", "--optimizer", "adamm"], expect="did you mean"),
    Case("scheduler-unknown", ["train", "--scheduler", "linaer"], expect="--scheduler"),
    Case("loss-unknown", ["train", "--loss", "mse"], expect="--loss"),
    Case("device-cuda-missing", ["train", "--device", "cuda", "--epochs", "1"], expect="cuda"),
    Case("amp-unknown", ["train", "--amp", "maybe"], expect="--amp"),
    Case("compile-unknown", ["train", "--compile", "maybe"], expect="--compile"),
    Case("tta-unknown", ["train", "--tta", "crops"], expect="--tta"),
    Case("unknown-flag", ["train", "--epoch", "1", "--bogus"], expect="--bogus"),
    # ---- train: run names and folders (the lead's checks)
    Case("name-dotdot", ["train", "--name", "..", "--overwrite"], expect="--name"),
    Case("name-slash", ["train", "--name", "a/b"], expect="--name"),
    Case("name-empty", ["train", "--name", ""], expect="--name"),
    Case("name-hidden", ["train", "--name", ".x"], expect="--name"),
    Case("runs-dir-empty", ["train", "--runs-dir", " "], expect="--runs-dir"),
    Case("runs-dir-is-file", ["train", "--runs-dir", "f.txt", "--epochs", "1"], write("f.txt", "x"), expect="f.txt"),
    Case("run-exists", ["train", "--name", "old", "--epochs", "1"],
         both(write("runs/old/config.yaml", "model: lenet5\n"), write("runs/old/split.json", "{}")),
         expect="already exists"),  # fmt: skip
    Case("overwrite-not-a-run", ["train", "--name", "mine", "--overwrite", "--epochs", "1"],
         write("runs/mine/notes.txt", "my notes"), expect="not a cnnkit run"),  # fmt: skip
    # ---- train: model and model args
    Case("model-unknown", ["train", "--model", "lenet6"], expect="did you mean"),
    Case("model-torchvision-unknown", ["train", "--model", "torchvision:nosuchnet", "--epochs", "1"],
         expect="nosuchnet"),  # fmt: skip
    Case("model-prefix-only", ["train", "--model", "torchvision:", "--epochs", "1"], expect="torchvision"),
    Case("model-args-not-yaml", ["train", "--model-args", "{{act: [relu", "--epochs", "1"], expect="--model-args"),
    Case("model-args-list", ["train", "--model-args", "[1, 2]"], expect="model_args"),
    Case("model-args-unknown-key", ["train", "--model-args", "{{depth: 3}}", "--epochs", "1"], expect="depth"),
    Case("model-args-bad-value", ["train", "--model-args", "{{act: wobble}}", "--epochs", "1"], expect="wobble"),
    Case("model-args-num-classes", ["train", "--model-args", "{{num_classes: 3}}", "--epochs", "1"],
         expect="num_classes"),  # fmt: skip
    Case("model-args-input-size", ["train", "--model-args", "{{input_size: 8}}", "--epochs", "1"],
         expect="input_size"),  # fmt: skip
    Case("model-args-dropout-range", ["train", "--model", "mlp", "--model-args", "{{dropout: 5}}"], expect="dropout"),
    Case("model-args-nan", ["train", "--model", "mlp", "--model-args", "{{dropout: .nan}}"], expect="dropout"),
    Case("model-args-hidden-huge", ["train", "--model", "mlp", "--model-args", "{{hidden: [1000000000]}}"],
         expect="hidden"),  # fmt: skip
    Case("model-args-hidden-text", ["train", "--model", "mlp", "--model-args", "{{hidden: wide}}"], expect="hidden"),
    Case("input-size-out-of-memory", ["train", "--input-size", "2048", "--epochs", "1"], expect="--input-size"),
    Case("model-args-bad-type", ["train", "--model-args", "{{classic: [1]}}", "--epochs", "1"], expect="classic"),
    # ---- train: --augment
    *bad_values(["train", "--epochs", "1"], "--augment", unknown=("rotat=10", "did you mean"),
                not_number=("rotate=ten", "rotate"), negative=("rotate=-5", "rotate"), erase_above_one=("erase=2", "erase"),
                translate_huge=("translate=1e9", "translate"), rotate_huge=("rotate=1e9", "rotate"),
                scale_one=("scale=1", "scale"), shear_90=("shear=90", "shear"), flip_value=("flip=maybe", "flip"),
                twice=("rotate=5,rotate=30", "twice"), nan=("jitter=nan", "jitter")),  # fmt: skip
    # ---- train: --config files
    Case("config-missing", ["train", "--config", "nope.yaml"], expect="nope.yaml"),
    Case("config-folder", ["train", "--config", "cfgdir"], write("cfgdir/x", ""), expect="cfgdir"),
    Case("config-not-yaml", ["train", "--config", "c.yaml"], write("c.yaml", "epochs: [1,\n"), expect="c.yaml"),
    Case("config-binary", ["train", "--config", "c.yaml"], write("c.yaml", RANDOM), expect="c.yaml"),
    Case("config-list", ["train", "--config", "c.yaml"], write("c.yaml", "- 1\n- 2\n"), expect="c.yaml"),
    Case("config-scalar", ["train", "--config", "c.yaml"], write("c.yaml", "42\n"), expect="c.yaml"),
    Case("config-unknown-key", ["train", "--config", "c.yaml"], write("c.yaml", "epoch: 3\n"), expect="did you mean"),
    Case("config-bad-type", ["train", "--config", "c.yaml"], write("c.yaml", "epochs: many\n"), expect="epochs"),
    Case("config-bool-as-int", ["train", "--config", "c.yaml"], write("c.yaml", "epochs: true\n"), expect="epochs"),
    Case("config-float-as-int", ["train", "--config", "c.yaml"], write("c.yaml", "batch_size: 3.5\n"),
         expect="batch_size"),  # fmt: skip
    Case("config-number-key", ["train", "--config", "c.yaml"], write("c.yaml", "1: 2\n"), expect="option names"),
    Case("config-model-args-number-keys", ["train", "--config", "c.yaml"], write("c.yaml", "model_args: {1: 2}\n"),
         expect="model_args"),  # fmt: skip
    Case("config-nan", ["train", "--config", "c.yaml"], write("c.yaml", "lr: .nan\n"), expect="lr"),
    Case("config-list-value", ["train", "--config", "c.yaml"], write("c.yaml", "model: [lenet5]\n"), expect="model"),
    Case("config-bad-choice", ["train", "--config", "c.yaml"], write("c.yaml", "optimizer: lbfgs\n"),
         expect="optimizer"),  # fmt: skip
    Case("config-model-args-bad-yaml", ["train", "--config", "c.yaml"],
         write("c.yaml", "model_args: '{act: [relu'\n"), expect="model_args"),  # fmt: skip
    Case("config-name-traversal", ["train", "--config", "c.yaml"], write("c.yaml", "name: ../../x\n"), expect="--name"),
    Case("config-duplicate-key", ["train", "--config", "c.yaml"], write("c.yaml", "epochs: 1\nepochs: 2\n"),
         expect="epochs"),  # fmt: skip
    Case("config-not-utf8", ["train", "--config", "c.yaml"], write("c.yaml", "model: l\xe9net\n".encode("latin-1")),
         expect="c.yaml"),  # fmt: skip
    # ---- train: --data specs
    Case("data-unknown", ["train", "--data", "digitz"], expect="did you mean"),
    Case("data-folder-missing", ["train", "--data", "folder:nope", "--epochs", "1"], expect="nope"),
    Case("data-folder-empty-path", ["train", "--data", "folder:", "--epochs", "1"], expect="folder:"),
    Case("data-folder-is-file", ["train", "--data", "folder:f.txt", "--epochs", "1"], write("f.txt", "x"),
         expect="f.txt"),  # fmt: skip
    Case("data-folder-no-classes", ["train", "--data", "folder:imgs", "--epochs", "1"], write("imgs/x.png", b"x"),
         expect="class subfolders"),  # fmt: skip
    Case("data-folder-one-class", ["train", "--data", "folder:imgs", "--epochs", "1"], images("imgs", ("cat",)),
         expect="class"),  # fmt: skip
    Case("data-folder-empty-class", ["train", "--data", "folder:imgs", "--epochs", "1"],
         both(images("imgs", ("a", "b")), lambda f: (f / "imgs" / "c").mkdir()), expect="imgs/c"),  # fmt: skip
    Case("data-folder-all-corrupt", ["train", "--data", "folder:imgs", "--epochs", "1"], junk_images("imgs"),
         expect="no readable images"),  # fmt: skip
    Case("data-folder-strict-corrupt", ["train", "--data", "folder:imgs", "--strict", "--epochs", "1"],
         both(images("imgs"), write("imgs/a/bad.png", b"\x89PNG\r\n\x1a\ntruncated")), expect="bad.png"),  # fmt: skip
    Case("data-folder-text-files", ["train", "--data", "folder:imgs", "--epochs", "1"],
         both(write("imgs/a/x.txt", "x"), write("imgs/b/y.txt", "y")), expect="no readable images"),  # fmt: skip
    Case("data-folder-too-few", ["train", "--data", "folder:imgs", "--epochs", "1"], images("imgs", n=1),
         expect="imgs"),  # fmt: skip
    Case("data-csv-missing", ["train", "--data", "csv:nope.csv", "--epochs", "1"], expect="nope.csv"),
    Case("data-csv-folder", ["train", "--data", "csv:img", "--epochs", "1"], images("img"), expect="img"),
    Case("data-csv-empty", ["train", "--data", "csv:d.csv", "--epochs", "1"], csv_of("d.csv", ""), expect="empty"),
    Case("data-csv-binary", ["train", "--data", "csv:d.csv", "--epochs", "1"], csv_of("d.csv", RANDOM, False),
         expect="d.csv"),  # fmt: skip
    Case("data-csv-no-label-column", ["train", "--data", "csv:d.csv", "--epochs", "1"],
         csv_of("d.csv", "path,kind\nimg/a/0.png,a\n"), expect="label"),  # fmt: skip
    Case("data-csv-short-row", ["train", "--data", "csv:d.csv", "--epochs", "1"],
         csv_of("d.csv", rows() + "img/a/1.png\n"), expect="line"),  # fmt: skip
    Case("data-csv-one-class", ["train", "--data", "csv:d.csv", "--epochs", "1"], csv_of("d.csv", rows(("a",))),
         expect="class"),  # fmt: skip
    Case("data-csv-missing-files", ["train", "--data", "csv:d.csv", "--epochs", "1"],
         csv_of("d.csv", rows(("x", "y")), with_images=False), expect="no readable images"),  # fmt: skip
    Case("data-csv-bad-split", ["train", "--data", "csv:d.csv", "--epochs", "1"],
         csv_of("d.csv", "path,label,split\nimg/a/0.png,a,training\n"), expect="split"),  # fmt: skip
    Case("data-csv-no-train-rows", ["train", "--data", "csv:d.csv", "--epochs", "1"],
         csv_of("d.csv", "path,label,split\nimg/a/0.png,a,test\nimg/b/0.png,b,val\n"), expect="train"),  # fmt: skip
    Case("data-csv-nul", ["train", "--data", "csv:d.csv", "--epochs", "1"], csv_of("d.csv", "path,label\n\0\0,\0\n"),
         expect="d.csv"),  # fmt: skip
    Case("data-csv-empty-path", ["train", "--data", "csv:", "--epochs", "1"], expect="csv:"),
    Case("data-prefix-unknown", ["train", "--data", "zip:x.zip"], expect="zip:x.zip"),
    Case("data-mnist-not-downloaded", ["train", "--data", "mnist", "--epochs", "1"], expect="mnist"),
    Case("data-mnist-damaged", ["train", "--data", "mnist", "--data-root", "root", "--epochs", "1"],
         both(*(write(f"root/MNIST/raw/{n}", RANDOM[:100]) for n in (
             "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"))), expect="mnist"),  # fmt: skip
    *bad_values(["train", "--epochs", "1"], "--data", "data-subset",
                unknown_key=("subset:digits?clases=1,2", "clases"), unknown_class=("subset:digits?classes=1,42", "42"),
                one_class=("subset:digits?classes=3", "class"), per_class_text=("subset:digits?per_class=ten", "per_class"),
                per_class_zero=("subset:digits?per_class=0", "per_class"),
                per_class_negative=("subset:digits?per_class=-2", "per_class"),
                per_class_too_many=("subset:digits?per_class=100000", "per_class"),
                val_split=("subset:digits?val_split=2", "val_split"), seed_negative=("subset:digits?seed=-1", "seed"),
                classes_empty=("subset:digits?classes=", "classes"), no_base=("subset:?classes=1", "subset"),
                nested=("subset:subset:digits?classes=1,2", "subset"),
                missing_base=("subset:folder:nope?classes=a,b", "nope")),  # fmt: skip
    # ---- train --resume on damaged run folders
    Case("resume-missing", ["train", "--resume", "nope"], expect="nope"),
    Case("resume-file", ["train", "--resume", "f.txt"], write("f.txt", "x"), expect="f.txt"),
    Case("resume-config-not-yaml", ["train", "--resume", "{run}"], edit_run("config.yaml", lambda p: p.write_text("a: [\n")),
         expect="config.yaml"),  # fmt: skip
    Case("resume-config-list", ["train", "--resume", "{run}"], edit_run("config.yaml", lambda p: p.write_text("- 1\n")),
         expect="config.yaml"),  # fmt: skip
    Case("resume-config-binary", ["train", "--resume", "{run}"], edit_run("config.yaml", lambda p: p.write_bytes(RANDOM)),
         expect="config.yaml"),  # fmt: skip
    Case("resume-config-bad-value", ["train", "--resume", "{run}"],
         edit_run("config.yaml", lambda p: p.write_text(p.read_text().replace("epochs: 30", "epochs: -4"))),
         expect="epochs"),  # fmt: skip
    Case("resume-config-unknown-key", ["train", "--resume", "{run}"],
         edit_run("config.yaml", lambda p: p.write_text(p.read_text() + "colour: red\n")), expect="colour"),  # fmt: skip
    Case("resume-split-damaged", ["train", "--resume", "{run}", "--epochs", "31"],
         edit_run("split.json", lambda p: p.write_text("{not json")), expect="split.json"),  # fmt: skip
    Case("resume-split-wrong-shape", ["train", "--resume", "{run}", "--epochs", "31"],
         edit_run("split.json", lambda p: p.write_text('{"train": 3}')), expect="split.json"),  # fmt: skip
    Case("resume-split-other-ids", ["train", "--resume", "{run}", "--epochs", "31"],
         edit_run("split.json", lambda p: p.write_text(json.dumps({"train": ["x"], "val": [], "test": []}))),
         expect="split"),  # fmt: skip
    Case("resume-summary-damaged", ["train", "--resume", "{run}", "--epochs", "31"],
         edit_run("summary.json", lambda p: p.write_bytes(RANDOM)), expect="summary.json"),  # fmt: skip
    Case("resume-checkpoint-random", ["train", "--resume", "{run}", "--epochs", "31"],
         edit_run("checkpoint.pt", lambda p: p.write_bytes(RANDOM)), expect="checkpoint.pt"),  # fmt: skip
    Case("resume-checkpoint-missing", ["train", "--resume", "{run}", "--epochs", "31"],
         edit_run("checkpoint.pt", lambda p: p.unlink()), expect="checkpoint.pt"),  # fmt: skip
    Case("resume-checkpoint-pickle", ["train", "--resume", "{run}", "--epochs", "31"],
         torch_file("run/checkpoint.pt", Evil()), expect="checkpoint.pt"),  # fmt: skip
    Case("resume-checkpoint-other-arch", ["train", "--resume", "{run}", "--epochs", "31"], other_arch_checkpoint,
         expect="checkpoint.pt"),  # fmt: skip
    Case("resume-checkpoint-no-optimizer", ["train", "--resume", "{run}", "--epochs", "31"],
         checkpoint_without("optimizer"), expect="checkpoint.pt"),  # fmt: skip
    Case("resume-checkpoint-no-epoch", ["train", "--resume", "{run}", "--epochs", "31"], checkpoint_without("epoch"),
         expect="checkpoint.pt"),  # fmt: skip
    Case("resume-change-lr", ["train", "--resume", "{run}", "--lr", "0.1"], expect="lr"),
    Case("resume-fewer-epochs", ["train", "--resume", "{run}", "--epochs", "5"], expect="--epochs"),
    Case("resume-finished", ["train", "--resume", "{run}"], expect="already trained"),
    # ---- finetune
    Case("ft-no-source", ["finetune", "--epochs", "1"], expect="--from"),
    Case("ft-two-sources", ["finetune", "--from", "{run}", "--pretrained"], expect="not allowed"),
    Case("ft-from-missing", ["finetune", "--from", "nope", "--epochs", "1"], expect="nope"),
    Case("ft-from-not-a-run", ["finetune", "--from", "d", "--epochs", "1"], write("d/x.txt", "x"), expect="d"),
    Case("ft-from-weights-random", FT, edit_run("best.safetensors", lambda p: p.write_bytes(RANDOM)),
         expect="best.safetensors"),  # fmt: skip
    Case("ft-from-sidecar-damaged", FT, edit_run("best.json", lambda p: p.write_text("{")),
         expect="best.json"),  # fmt: skip
    Case("ft-from-other-model", [*FT, "--model", "resnet18"], expect="resnet18"),
    Case("ft-weights-missing", FTW, expect="w.pth"),
    Case("ft-weights-no-model", ["finetune", "--weights", "w.pth", "--epochs", "1"], lenet1_weights("w.pth"),
         expect="--model"),  # fmt: skip
    Case("ft-weights-random-pth", FTW, write("w.pth", RANDOM), expect="w.pth"),
    Case("ft-weights-random-safetensors", ["finetune", "--weights", "w.safetensors", "--model", "lenet5",
         "--epochs", "1"], write("w.safetensors", RANDOM), expect="w.safetensors"),  # fmt: skip
    Case("ft-weights-unknown-suffix", ["finetune", "--weights", "w.txt", "--model", "lenet5", "--epochs", "1"],
         write("w.txt", "x"), expect="w.txt"),  # fmt: skip
    Case("ft-weights-other-arch", FTW, lenet1_weights("w.pth"), expect="w.pth"),
    Case("ft-weights-pickle", FTW, torch_file("w.pth", Evil()), expect="w.pth"),
    Case("ft-weights-empty-dict", FTW, torch_file("w.pth", {}), expect="w.pth"),
    Case("ft-weights-no-tensors", FTW, torch_file("w.pth", {"a": 1, "b": "x"}), expect="w.pth"),
    Case("ft-weights-folder", ["finetune", "--weights", "wd", "--model", "lenet5", "--epochs", "1"],
         write("wd/x", "x"), expect="wd"),  # fmt: skip
    Case("ft-pretrained-none", ["finetune", "--pretrained", "--model", "lenet5", "--epochs", "1"], expect="lenet5"),
    Case("ft-freeze-unknown", [*FT, "--freeze", "most"], expect="--freeze"),
    Case("ft-freeze-lower-text", [*FT, "--freeze", "lower:x"], expect="lower"),
    Case("ft-freeze-lower-negative", [*FT, "--freeze", "lower:-1"], expect="lower"),
    Case("ft-freeze-lower-too-many", [*FT, "--freeze", "lower:999"], expect="lower"),
    *bad_values(FT, "--unfreeze-after", "ft-unfreeze", negative="-1", text="soon"),
    *bad_values(FT, "--backbone-lr-mult", "ft-backbone-mult", zero="0", nan="nan", huge="1e9"),
    Case("ft-classes-unknown", [*FT, "--classes", "1,x"], expect="'x'"),
    Case("ft-classes-one", [*FT, "--classes", "3"], expect="class"),
    Case("ft-classes-twice", [*FT, "--classes", "3,3"], expect="twice"),
    Case("ft-classes-empty", [*FT, "--classes", ","], expect="classes"),
    *bad_values(FT, "--per-class", "ft-per-class", zero="0", negative="-1"),
    Case("ft-per-class-too-many", [*FT, "--per-class", "5000"], expect="5000"),
    Case("ft-val-per-class-negative", [*FT, "--val-per-class", "-1"], expect="--val-per-class"),
    Case("ft-epochs-zero", [*FT[:-1], "0"], expect="--epochs"),
    Case("ft-config-not-yaml", ["finetune", "--from", "{run}", "--config", "c.yaml"], write("c.yaml", "a: [\n"),
         expect="c.yaml"),  # fmt: skip
    Case("ft-resume-not-finetune", ["finetune", "--resume", "{run}"], expect="fine-tune"),
    Case("ft-resume-with-source", ["finetune", "--resume", "{run}", "--from", "{run}"], expect="--resume"),
    Case("ft-resume-record-damaged", ["finetune", "--resume", "{run}"], write("run/finetune.json", "{oops"),
         expect="finetune.json"),  # fmt: skip
    Case("ft-resume-record-list", ["finetune", "--resume", "{run}"], write("run/finetune.json", "[1]"),
         expect="finetune.json"),  # fmt: skip
    Case("ft-resume-record-wrong-fields", ["finetune", "--resume", "{run}"],
         write("run/finetune.json", json.dumps({"format": "cnnkit-finetune/1", "freeze": 3})),
         expect="finetune.json"),  # fmt: skip
    Case("ft-resume-record-bad-kind", ["finetune", "--resume", "{run}"],
         write("run/finetune.json", json.dumps({"format": "cnnkit-finetune/1", "source_kind": "magic", "source": "x",
                                                "description": "x"})), expect="finetune.json"),  # fmt: skip
    # A fine-tune run made before runs recorded their command (no resume.json): finetune.json tells.
    Case("train-resume-finetune-run", ["train", "--resume", "{run}"],
         both(edit_run("resume.json", lambda p: p.unlink()),
              write("run/finetune.json", json.dumps({"format": "cnnkit-finetune/1"}))),
         expect="finetune --resume"),  # fmt: skip
    Case("train-resume-run-recorded-as-finetune", ["train", "--resume", "{run}"],
         write("run/resume.json", json.dumps({"format": "cnnkit-resume/1", "command": "finetune"})),
         expect="finetune --resume"),  # fmt: skip
    # ---- show-batch
    Case("sb-dataset-unknown", [*SB, "digitz"], expect="did you mean"),
    *bad_values(SB, "--n", "sb-n", zero="0", huge="100000000"),
    *bad_values(SB, "--input-size", "sb-input-size", zero="0", huge="1000000"),
    *bad_values(SB, "--seed", "sb-seed", negative="-1"),
    *bad_values(SB, "--augment", "sb-augment", bad=("spin=3", "spin"), huge=("translate=1e9", "translate")),
    Case("sb-output-folder", ["show-batch", "-o", "outdir"], write("outdir/x", "x"), expect="outdir"),
    Case("sb-output-parent-file", ["show-batch", "-o", "f.txt/out.png"], write("f.txt", "x"), expect="f.txt"),
    Case("sb-output-bad-suffix", ["show-batch", "-o", "out.xyz"], expect="out.xyz"),
    Case("sb-output-no-suffix", ["show-batch", "-o", "grid"], expect="grid"),
    Case("sb-output-empty", ["show-batch", "-o", ""], expect="--output"),
    Case("sb-output-is-input", ["show-batch", "csv:d.csv", "-o", "d.csv"], csv_of("d.csv", rows()),
         expect="d.csv"),  # fmt: skip
    Case("sb-folder-missing", [*SB, "folder:nope"], expect="nope"),
    Case("sb-folder-corrupt", [*SB, "folder:imgs"], junk_images("imgs"), expect="no readable images"),
    Case("sb-csv-binary", [*SB, "csv:d.csv"], write("d.csv", RANDOM), expect="d.csv"),
    Case("sb-split-unknown", [*SB, "--split", "all"], expect="--split"),
    # ---- lr-find (and train --lr find)
    *bad_values(LF, "--steps", "lf-steps", zero="0", huge="1000000", word="many"),
    *bad_values(LF, "--start-lr", "lf-start-lr", zero="0", negative="-1", word="find", nan="nan"),
    *bad_values(LF, "--end-lr", "lf-end-lr", zero="0", inf="inf", huge="1e9"),
    Case("lf-start-above-end", [*LF, "--start-lr", "1", "--end-lr", "0.1"], expect="--start-lr 1 must be below"),
    Case("lf-model-unknown", [*LF, "--model", "lenet6"], expect="lenet6"),
    Case("lf-data-unknown", [*LF, "--data", "digitz"], expect="did you mean"),
    Case("lf-config-missing", [*LF, "--config", "nope.yaml"], expect="nope.yaml"),
    Case("lf-epochs-not-an-option", [*LF, "--epochs", "3"], expect="--epochs"),
    Case("lf-output-bad-suffix", ["lr-find", "-o", "out.xyz"], expect="out.xyz"),
    Case("lf-output-folder", ["lr-find", "-o", "outdir"], write("outdir/x", "x"), expect="outdir"),
    Case("lf-output-is-input", ["lr-find", "--data", "csv:d.csv", "-o", "d.csv"], csv_of("d.csv", rows()),
         expect="d.csv"),  # fmt: skip
    *bad_values(["train"], "--lr", "train-lr", word=("fast", "or find")),
    # ---- datasets and models
    Case("datasets-root-file", ["datasets", "--root", "f.txt"], write("f.txt", "x"), expect="f.txt"),
    Case("datasets-root-empty", ["datasets", "--root", ""], expect="--root"),
    Case("datasets-extra-arg", ["datasets", "mnist"], expect="unrecognized"),
    Case("models-no-match", ["models", "--filter", "nosuch*", "--no-params"], expect="nosuch*"),
    Case("models-family-unknown", ["models", "--family", "resnett", "--no-params"], expect="did you mean"),
    Case("models-unknown-flag", ["models", "--params"], expect="--params"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, tmp_path: Path, trained_run: Path) -> None:
    uses_run = any("{run}" in a for a in case.argv)
    run_case(case, tmp_path, run_dir=trained_run if uses_run else None)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 70
