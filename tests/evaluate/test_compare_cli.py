"""``cnnkit compare``, and the eval/predict command-line options added for evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from cnnkit.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_three_runs_writes_table_and_both_scatter_plots(trained_run, short_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    runs = [str(trained_run), *map(str, short_runs)]
    code, stdout, err = run_cli(capsys, "compare", *runs, "-o", str(out))
    assert code == 0, err
    with open(out / "compare.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"lenet5-digits", "lenet1-digits", "linear-digits"}
    for name, r in rows.items():
        summary = json.loads((Path(r["run"]) / "summary.json").read_text())
        assert int(r["params"]) == summary["params"], name
        assert int(r["macs"]) > 0 and 0 < float(r["acc"]) <= 1
        assert float(r["train_seconds"]) == summary["timing"]["train_seconds"]
        assert int(r["n"]) == summary["test"]["n"] > 0  # the test-set size the plots state
    # LeNet-5 does more work per image than LeNet-1; a linear model is one layer of C*H*W x 10 MACs.
    assert int(rows["lenet5-digits"]["macs"]) > int(rows["lenet1-digits"]["macs"])
    c, h, w = json.loads((Path(rows["linear-digits"]["run"]) / "best.json").read_text())["input_size"]
    assert int(rows["linear-digits"]["macs"]) == c * h * w * 10
    for png in ("acc_vs_macs.png", "acc_vs_params.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert "lenet1-digits" in stdout


@pytest.mark.parametrize("columns", [100, 60])
def test_compare_in_a_narrow_terminal_keeps_every_number_whole(trained_run, short_runs, tmp_path, capsys,
                                                               monkeypatch, columns):  # fmt: skip
    import re
    import sys

    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal: the table fits its width
    out = tmp_path / "cmp"
    code, stdout, err = run_cli(capsys, "compare", str(trained_run), *map(str, short_runs), "-o", str(out))
    assert code == 0, err
    stdout = re.sub(r"\x1b\[[0-9;]*m", "", stdout)  # the terminal's colour codes
    table = [line for line in stdout.splitlines() if line.count("│") > 3]
    assert table and all(len(line) <= columns for line in table) and "…" not in stdout
    with open(out / "compare.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            for key in ("params", "macs"):
                assert f" {int(r[key]):,} │" in stdout, (key, r[key])
            assert f" {float(r['acc']):.2%} │" in stdout
    # the lowest-value column ("from") went first and is said once under the table instead
    assert "eval/test/metrics.json" not in "".join(table) and "accuracy from " in stdout
    if columns == 60:
        assert "left out to fit 60 columns" in stdout and "compare.csv" in stdout


def test_compare_plot_joins_labels_of_coinciding_runs_and_sizes_markers_visibly():
    import matplotlib.pyplot as plt

    from cnnkit.evaluate.compare import _images_note
    from cnnkit.evaluate.plots import _label_points, _param_area

    # 61k and 269k parameters: marker areas must differ visibly (an absolute log scale gave 132 vs 145)
    area = _param_area([61_706, 269_434])
    assert area(269_434) / area(61_706) > 2
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    pts = [(416_520, 24.07, "demo", area(61_706)), (416_520, 24.07, "recipe", area(61_706)),
           (40_637_056, 10.37, "b", area(269_434)), (40_637_056, 10.74, "near", area(269_434)),
           (40_637_056, 11.11, "nearer-with-a-long-name", area(269_434))]  # fmt: skip
    for x, y, _, s in pts:
        ax.scatter(x, y, s=s)
    ax.set_xscale("log")
    ax.set_xlim(2e5, 1.2e8)
    fig.tight_layout()
    _label_points(ax, pts)
    texts = list(ax.texts)
    assert sorted(t.get_text() for t in texts) == ["b", "demo, recipe", "near", "nearer-with-a-long-name"]
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    frame = ax.get_window_extent(r)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for b in boxes)
    plt.close(fig)
    assert _images_note([{"n": 270}, {"n": 270}], "test") == "\n270 test images: one image = 0.37 accuracy points"


def test_compare_missing_run_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "compare", str(tmp_path / "nope"), "-o", str(tmp_path / "c"))
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_predict_csv_and_tta(trained_run, tmp_path, capsys):
    from cnnkit.evaluate import run_data
    from cnnkit.run import load_run

    test = run_data(load_run(trained_run)).test
    for i in range(3):
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(tmp_path / f"img{i}.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(test.images[3, 0].numpy(), mode="L").save(tmp_path / "sub" / "img3.png")
    (tmp_path / "sub" / "bad.png").write_bytes(b"not an image")
    code, out, err = run_cli(capsys, "predict", str(trained_run), str(tmp_path), "--csv", "--topk", "2")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 5 and list(rows[0]) == ["path", "class_1", "prob_1", "class_2", "prob_2", "error"]
    bad = [r for r in rows if r["path"].endswith("bad.png")][0]
    assert bad["error"] and not bad["class_1"] and "bad.png" in err
    good = [r for r in rows if not r["error"]]
    assert all(float(r["prob_1"]) >= float(r["prob_2"]) for r in good)
    code, out_tta, _ = run_cli(capsys, "predict", str(trained_run), str(tmp_path), "--json", "--tta", "crops")
    assert code == 0
    code, out_plain, _ = run_cli(capsys, "predict", str(trained_run), str(tmp_path), "--json")
    tta = {p["path"]: p for p in json.loads(out_tta)}
    plain = {p["path"]: p for p in json.loads(out_plain)}
    assert tta.keys() == plain.keys()
    assert any(tta[k]["top"] and tta[k]["top"][0]["prob"] != plain[k]["top"][0]["prob"] for k in tta)


def test_eval_cli_with_tta_prints_and_writes_its_own_folder(trained_run, capsys):
    code, out, err = run_cli(capsys, "eval", str(trained_run), "--tta", "flip", "--no-report")
    assert code == 0, err
    assert "TTA flip (2 views)" in out and "mAP" in out and "ECE" in out
    folder = trained_run / "eval" / "test-tta-flip"
    m = json.loads((folder / "metrics.json").read_text())
    assert m["tta"] == "flip" and m["views"] == 2 and not (folder / "report.html").exists()
