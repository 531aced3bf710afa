"""Acceptance: a LeNet-5 trained on digits 0-4, transferred to digits 5-9 with 10 labelled images per class.

The fast form of ``benchmarks/transfer_demo.py`` (one seed, translation-only augmentation): head-only
fine-tuning and features + linear SVM must both beat the same network trained from scratch on the
same 50 images, all tested on every held-out 5-9 test image (~450).

One seed (the default, 0) is a demonstration, not a statistic: from-scratch training on 50 images
varies by several points between draws (the benchmark averages 5 seeds and shows the spread, and a
grid of recipes). It still fails if transfer is broken: with the source weights not loaded, or the
frozen layers trained anyway, head-only fine-tuning is just training from scratch with fewer layers.
"""

from __future__ import annotations

import json

import cnnkit
from cnnkit.transfer import extract_features, finetune, fit_head, subset_spec

TARGET = {"classes": [5, 6, 7, 8, 9], "per_class": 10, "val_per_class": 0}
SPLIT = {"val_split": 0.0, "test_split": 0.5, "seed": 0}  # half of 5-9 held out for testing
# The benchmark's recipe: cnnkit's general SGD recipe (LeNet-5's own AdamW recipe trains the 50 images
# from scratch better: 92.9% at seed 0, which the benchmark's table does not cover).
RECIPE = {"epochs": 20, "batch_size": 10, "augment": "translate=2", "quiet": True, "optimizer": "sgd",
          "scheduler": "cosine", "label_smoothing": 0.0, **SPLIT}  # fmt: skip


def test_transfer_beats_training_from_scratch_on_50_images(source_04, runs_dir, capsys):
    data = subset_spec("digits", **TARGET, **{k: SPLIT[k] for k in ("val_split", "test_split", "seed")})
    scratch = cnnkit.train(data=data, name="scratch", runs_dir=runs_dir, **RECIPE)
    head = finetune(from_run=source_04, freeze="all-conv", unfreeze_after="never", name="head", runs_dir=runs_dir,
                    **TARGET, **RECIPE)  # fmt: skip
    feats = extract_features(source_04, data, layer="features", pool="flatten")  # the last conv block, 16x5x5
    svm = fit_head(feats, "svm")
    n_test = svm.n_eval["test"]
    print(f"\nscratch {scratch.test_accuracy:.4f}  head-only {head.test_accuracy:.4f}  features+SVM "
          f"{svm.test_accuracy:.4f}  ({n_test} test images)")  # fmt: skip
    assert svm.n_fit == 50 and n_test == head.test["n"] == scratch.test["n"] > 400
    assert head.test_accuracy > scratch.test_accuracy
    assert svm.test_accuracy > scratch.test_accuracy

    # The run records where its weights came from, and what was frozen.
    side = json.loads((head.run_dir / "best.json").read_text())
    assert side["source"].startswith(f"fine-tuned from run {source_04}") and side["classes"] == ["5", "6", "7", "8", "9"]
    ft = json.loads((head.run_dir / "finetune.json").read_text())
    assert ft["freeze"] == "all-conv" and ft["unfreeze_after"] is None and ft["source_kind"] == "run"
    assert ft["freeze_report"]["frozen_layers"] == ["features.0", "features.3"]
    assert head.summary["finetune"]["source"] == str(source_04)
    assert "2,572 frozen" in (head.run_dir / "log.txt").read_text()
    # cnnkit eval rebuilds the subset from the recorded data name and gets the same number.
    assert cnnkit.evaluate(head.run_dir)["acc"] == head.test_accuracy
