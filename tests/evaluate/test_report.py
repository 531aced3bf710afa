"""The files of ``cnnkit eval`` and the self-contained HTML report."""

from __future__ import annotations

import base64
import csv
import json
import re

import pytest

from cnnkit.evaluate import evaluate_run


@pytest.fixture(scope="module")
def evaluated(trained_run):
    return trained_run, evaluate_run(trained_run)


def test_eval_writes_every_file_with_consistent_contents(evaluated):
    run, m = evaluated
    out = run / "eval" / "test"
    for f in ("metrics.json", "per_class.csv", "predictions.csv", "confusion.csv", "confusion.png", "pr_curves.png",
              "reliability.png", "top_losses.png", "report.html"):  # fmt: skip
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("acc", "top5", "loss", "error", "n"):  # the API's stable top-level keys
        assert saved[key] == m[key]
    assert m["error"] == pytest.approx(1 - m["acc"])
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == m["n"]
    probs = [[float(r[f"p_{c}"]) for c in m["classes"]] for r in rows]
    assert all(abs(sum(p) - 1) < 1e-4 for p in probs)
    assert sum(int(r["correct"]) for r in rows) == round(m["acc"] * m["n"])
    assert all(r["pred"] == m["classes"][max(range(len(p)), key=p.__getitem__)] for r, p in zip(rows, probs, strict=True))
    with open(out / "per_class.csv", newline="") as fh:
        per_class = list(csv.DictReader(fh))
    assert [r["class"] for r in per_class] == m["classes"]
    assert sum(int(r["support"]) for r in per_class) == m["n"]
    with open(out / "confusion.csv", newline="") as fh:
        cm = [list(map(int, r[1:])) for r in list(csv.reader(fh))[1:]]
    assert sum(cm[i][i] for i in range(len(cm))) == sum(int(r["correct"]) for r in rows)
    # The complexity numbers, exactly as the README's report screenshot gives them for LeNet-5 on digits.
    assert m["params"] == 61_706 and m["macs"] == 416_520
    assert m["acc_per_mparam"] == pytest.approx(m["acc"] / (m["params"] / 1e6))
    assert len(m["top_losses"]) == 16 and m["top_losses"][0]["loss"] >= m["top_losses"][-1]["loss"]


def test_report_is_self_contained(evaluated):
    run, m = evaluated
    page = (run / "eval" / "test" / "report.html").read_text()
    assert not re.search(r"https?://", page, re.I), "the report must not point outside itself"
    assert not re.search(r"<(script|link|iframe)\b", page, re.I)
    assert not re.search(r"url\(", page, re.I)  # no CSS fetches either
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)
    # training curves, confusion, PR curves, reliability diagram, top losses
    assert len(srcs) == 5, srcs[:1]
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    for text in ("Confusion matrix", "Precision-recall", "Reliability", "Top losses", "Model summary", "Config",
                 "Training curves", "specificity", "features.0", f"{m['acc']:.2%}".replace("%", "")):  # fmt: skip
        assert text.lower() in page.lower(), text


def test_report_writes_config_values_as_config_yaml_does_and_sizes_the_worst_bin(evaluated):
    run, m = evaluated
    page = (run / "eval" / "test" / "report.html").read_text()
    cells = dict(re.findall(r"<tr><td[^>]*>([a-z_]+)</td><td[^>]*>([^<]*)</td></tr>", page))
    assert cells["time_budget"] == "null" and cells["download"] == "false", cells  # not Python's None/False
    assert m["mce_images"] >= 1
    assert f"MCE = {m['mce']:.4f} (a bin of {m['mce_images']} image" in page
