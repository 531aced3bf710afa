"""The command line: every user mistake gives a short message, a non-zero exit code, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cnnkit.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_names_the_right_class_for_test_digit_pngs(trained_run, tmp_path, capsys):
    from cnnkit.evaluate import run_data
    from cnnkit.run import load_run

    ds = run_data(load_run(trained_run))
    test = ds.test
    # One PNG per class, the first test image of each class.
    for c in range(10):
        i = int((test.labels == c).nonzero()[0])
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(tmp_path / f"digit_{c}.png")
    code, out, _ = run_cli(capsys, "predict", str(trained_run), str(tmp_path), "--json", "--topk", "3")
    assert code == 0
    preds = json.loads(out)
    assert len(preds) == 10 and all(len(p["top"]) == 3 for p in preds)
    right = sum(p["top"][0]["class"] == Path(p["path"]).stem.split("_")[1] for p in preds)
    assert right >= 9, preds  # a >= 97% model may miss at most one of ten


def test_eval_reproduces_summary_accuracy(trained_run, capsys):
    code, out, _ = run_cli(capsys, "eval", str(trained_run), "--json")
    assert code == 0
    m = json.loads(out)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert m["acc"] == pytest.approx(summary["test"]["acc"], abs=1e-12)
    assert m["n"] == summary["test"]["n"]
    assert (trained_run / "eval" / "test" / "metrics.json").is_file()


def test_predict_reports_unreadable_image_without_stopping(trained_run, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.new("L", (8, 8), 0).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code, out, err = run_cli(capsys, "predict", str(trained_run), str(good), str(bad), "--json")
    assert code == 0
    preds = {Path(p["path"]).name: p for p in json.loads(out)}
    assert preds["good.png"]["top"] and "error" in preds["broken.png"]
    assert "broken.png" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "predict", str(trained_run), str(bad))
    assert code != 0 and "cannot read image" in err and "broken.png" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--model", "lenet6"], "unknown model 'lenet6'"),
        (["train", "--model", "lenet6"], "did you mean 'lenet5'"),
        (["train", "--data", "digitz"], "unknown dataset 'digitz'"),
        (["train", "--data", "digitz"], "did you mean 'digits'"),
        (["train", "--lr", "0"], "--lr: must be > 0"),
        (["train", "--lr", "-1"], "--lr: must be > 0"),
        (["train", "--batch-size", "0"], "--batch-size: must be >= 1"),
        (["train", "--epochs", "0"], "--epochs: must be >= 1"),
        (["train", "--val-split", "0.6", "--test-split", "0.5"], "leaves no training data"),
        (["train", "--augment", "rotate=abc"], "rotate needs a number"),
        (["train", "--model-args", "{wings: 2}"], "has no argument 'wings'"),
    ],
)
def test_bad_training_options(capsys, tmp_path, args, needle):
    code, _, err = run_cli(capsys, *args, "--runs-dir", str(tmp_path))
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "a rejected run must not leave a folder behind"


def test_config_file_unknown_key_and_bad_value(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochz: 3\n")
    code, _, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2 and "unknown key 'epochz'" in err and "did you mean 'epochs'" in err
    cfg.write_text("optimizer: adagrid\n")
    code, _, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2 and "--optimizer 'adagrid' is not allowed" in err and "sgd, adam, adamw" in err
    cfg.write_text("epochs: many\n")
    code, _, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2 and "epochs must be int" in err
    code, _, err = run_cli(capsys, "train", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err


def test_config_file_values_are_used_and_flags_override(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nbatch_size: 128\nname: fromfile\nlr: 0.02\n")
    code, out, err = run_cli(capsys, "train", "--config", str(cfg), "--runs-dir", str(tmp_path / "r"), "--lr", "0.03")
    assert code == 0, err
    import yaml

    saved = yaml.safe_load((tmp_path / "r" / "fromfile" / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["batch_size"] == 128 and saved["lr"] == 0.03


def test_existing_run_folder_is_refused_then_overwritten(capsys, tmp_path):
    args = ["train", "--epochs", "1", "--name", "x", "--runs-dir", str(tmp_path)]
    assert run_cli(capsys, *args)[0] == 0
    marker = tmp_path / "x" / "metrics.csv"
    before = marker.read_text()
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "already exists" in err and "--overwrite" in err and "--resume" in err
    assert marker.read_text() == before
    assert run_cli(capsys, *args, "--overwrite")[0] == 0


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_last_good_checkpoint(capsys, tmp_path):
    import torch

    # SGD at lr 2 (lenet5's own recipe is AdamW, which this rate does not blow up as reliably)
    code, _, err = run_cli(capsys, "train", "--optimizer", "sgd", "--scheduler", "cosine", "--label-smoothing", "0",
                           "--lr", "2", "--warmup-epochs", "5", "--epochs", "6", "--augment", "none", "--name", "nan",
                           "--runs-dir", str(tmp_path))  # fmt: skip
    assert code == 3, err
    assert "the loss became" in err and "at epoch 2, batch" in err and "lower the learning rate" in err
    run = tmp_path / "nan"
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1  # the last good epoch is kept
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"


def test_missing_corrupt_and_mismatched_checkpoints(capsys, trained_run, tmp_path):
    import shutil

    code, _, err = run_cli(capsys, "eval", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path / "nope"))
    assert code == 2 and "not a run folder" in err

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "best.safetensors").write_bytes(b"garbage" * 10)
    code, _, err = run_cli(capsys, "eval", str(broken))
    assert code == 2 and "corrupt" in err and "best.safetensors" in err

    (broken / "checkpoint.pt").write_bytes(b"garbage")
    code, _, err = run_cli(capsys, "train", "--resume", str(broken))
    assert code == 2 and "checkpoint" in err and "corrupt" in err

    mism = tmp_path / "mismatch"
    shutil.copytree(trained_run, mism)
    side = json.loads((mism / "best.json").read_text())
    side["num_classes"], side["classes"] = 7, side["classes"][:7]  # a consistent sidecar of another model
    (mism / "best.json").write_text(json.dumps(side))
    code, _, err = run_cli(capsys, "eval", str(mism))
    assert code == 2 and "do not fit model" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "eval", str(empty))
    assert code == 2 and "holds no weights" in err


def test_no_traceback_from_the_console_script_and_debug_shows_it(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cnnkit", "train", "--model", "nonet"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown model" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "cnnkit", "--debug", "train", "--model", "nonet"], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr
