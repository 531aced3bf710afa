"""``cnnkit summary`` and ``cnnkit compare-arch`` from the command line."""

from __future__ import annotations

import csv
import io
import json

from cnnkit.cli import main


def test_summary_json(capsys):
    assert main(["summary", "lenet5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "lenet5" and d["totals"]["params"] == 61_706
    assert d["rows"][0]["name"] == "input"


def test_summary_table_with_depth_batch_and_input(capsys):
    assert main(["summary", "resnet18", "--input", "3x160x160", "--depth", "1", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "resnet18  input 3x160x160  batch 4" in out
    assert "layer3" in out and "layer3.0.conv1" not in out  # folded at depth 1
    assert "batch of 4" in out and "final features RF" in out


def test_summary_csv_and_markdown(capsys):
    assert main(["summary", "vgg11", "--csv", "--dtype", "float16"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[1]["name"] == "features.0" and int(rows[1]["act_bytes"]) == 2 * 224 * 224 * 64
    assert main(["summary", "lenet5", "--markdown"]) == 0
    assert "| features.0 | Conv2d | 6x28x28 |" in capsys.readouterr().out


def test_compare_arch(capsys):
    assert main(["compare-arch", "lenet5", "resnet20", "mobilenet_v1"]) == 0
    out = capsys.readouterr().out
    for word in ("lenet5", "resnet20", "mobilenet_v1", "parameters", "MACs / image", "RF of final features"):
        assert word in out
    assert main(["compare-arch", "lenet5", "resnet20", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["models"][0]["parameters"] == 61_706


def test_errors_exit_cleanly(capsys):
    assert main(["summary", "resnet19"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnet19'" in err and "Traceback" not in err
    assert main(["summary", "resnet18", "--input", "three"]) == 2
    assert "input size" in capsys.readouterr().err
    assert main(["summary", "./no/such/run"]) == 2
    assert "neither a run folder nor a model name" in capsys.readouterr().err
