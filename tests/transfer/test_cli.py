"""The transfer subcommands end to end: finetune, features -> fit-head, retrieve; errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnnkit.cli import main


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_finetune_command_and_its_errors(source_04, runs_dir, capsys):
    code, out, _ = _cli(capsys, "finetune", "--from", str(source_04), "--classes", "5,6,7,8,9", "--per-class", "5",
                        "--freeze", "lower:2", "--unfreeze-after", "never", "--epochs", "1", "--batch-size", "10",
                        "--augment", "none", "--runs-dir", runs_dir, "--name", "cli-ft", "--quiet")  # fmt: skip
    assert code == 0 and out.startswith("test accuracy ")
    ft = json.loads((Path(runs_dir) / "cli-ft" / "finetune.json").read_text())
    assert ft["freeze"] == "lower:2" and ft["unfreeze_after"] is None
    code, _, err = _cli(capsys, "finetune", "--from", str(source_04), "--freeze", "top:3", "--runs-dir", runs_dir)
    assert code == 2 and "not a freeze policy" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "finetune", "--epochs", "1", "--runs-dir", runs_dir)
    assert code == 2 and "--from RUN_DIR, --weights FILE or --pretrained" in err


def test_features_then_fit_head(source_04, tmp_path, capsys):
    out_file = tmp_path / "feats.npz"
    code, out, _ = _cli(capsys, "features", str(source_04), "--layer", "features", "--pool", "flatten", "--pca", "20",
                        "-o", str(out_file))  # fmt: skip
    assert code == 0 and "dimension 20" in out and out_file.is_file()
    with np.load(out_file, allow_pickle=False) as z:
        assert {"features", "labels", "split", "ids", "classes"} <= set(z.files)
    code, out, _ = _cli(capsys, "fit-head", str(out_file), "--classifier", "logreg", "--json")
    acc = json.loads(out)["accuracy"]
    assert code == 0 and acc["test"] > 0.9  # 0-4 digits with their own network's conv features
    code, _, err = _cli(capsys, "fit-head", str(tmp_path / "nope.npz"))
    assert code == 2 and "does not exist" in err


def test_retrieve_command_writes_png_and_html(digits_run, tmp_path, capsys):
    png = tmp_path / "r.png"
    code, out, _ = _cli(capsys, "retrieve", "--model", str(digits_run), "-k", "5", "--pca", "16", "--metric", "l2",
                        "--show", "3", "-o", str(png))  # fmt: skip
    assert code == 0 and "mAP@5" in out and png.is_file() and png.with_suffix(".html").is_file()
    code, out, _ = _cli(capsys, "retrieve", "--index", "digits", "--features", "pixels", "--json", "-o", str(png))
    m = json.loads(out)
    assert code == 0 and m["queries"] == 270 and 0.8 < m["map@10"] < 1
    code, _, err = _cli(capsys, "retrieve", "--index", "digits")
    assert code == 2 and "needs --model" in err


def test_retrieve_with_image_files_as_queries(digits_run, tmp_path):
    from PIL import Image

    from cnnkit.evaluate import run_data
    from cnnkit.run import load_run
    from cnnkit.transfer import retrieve

    test = run_data(load_run(digits_run)).test
    for i in range(3):
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(tmp_path / f"q{i}.png")
    r = retrieve(query=[tmp_path], model=digits_run, k=5, out=tmp_path / "files.png")
    assert r.metrics == {} and [Path(q).name for q in r.query_ids] == ["q0.png", "q1.png", "q2.png"]
    train_labels = run_data(load_run(digits_run)).train.labels
    # Unlabelled queries, but a ~97% network's nearest neighbours mostly share the true class.
    hits = sum(int((train_labels[r.neighbors[i]] == test.labels[i]).sum()) for i in range(3))
    assert hits >= 12 and r.png.is_file()
