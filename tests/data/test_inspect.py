"""``cnnkit inspect``: planted duplicates across splits are found, planted wrong labels rank near the top."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main
from cnnkit.data import load_dataset
from cnnkit.data.inspect import inspect_dataset

from .image_folders import digit_arrays, write_digit_folder

SPLIT_OF = ("train",) * 36 + ("val",) * 7 + ("test",) * 7  # 50 images per class


def _save(root, split, label, name, im):
    folder = root / split / str(label)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(im, mode="L").save(folder / name)
    return f"{split}/{label}/{name}"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """500 digits (32 px) in train/val/test folders; 4 exact and 4 near copies of training images planted in
    val/test; 10 training images filed under a wrong class."""
    root = tmp_path_factory.mktemp("inspect") / "digits"
    imgs, labels = digit_arrays(per_class=50, scale=4)
    rng = np.random.default_rng(0)
    ids, where = [], {}
    for k in range(10):
        for j, i in enumerate(np.flatnonzero(labels == k)):
            where[i] = SPLIT_OF[j]
    train = [i for i in range(len(imgs)) if where[i] == "train"]
    picks = rng.choice(train, 18, replace=False)
    wrong, exact_src, near_src = picks[:10], picks[10:14], picks[14:18]
    wrong_ids = []
    for i in range(len(imgs)):
        label = int(labels[i])
        if i in wrong:
            label = (label + 1 + int(rng.integers(0, 9))) % 10
        ids.append(_save(root, where[i], label, f"{i:04d}.png", imgs[i]))
        if i in wrong:
            wrong_ids.append(ids[-1])
    pairs = []
    for n, i in enumerate(exact_src):
        pairs.append(
            ("exact", ids[i], _save(root, ("val", "test")[n % 2], int(labels[i]), f"copy{i}.png", imgs[i]))
        )
    for n, i in enumerate(near_src):
        x = imgs[i].astype(np.float64)
        if n == 0:  # a little noise
            x = x + rng.normal(0, 6, x.shape)
        elif n == 1:  # brighter, less contrast
            x = x * 0.8 + 30
        elif n == 2:  # darker, more contrast
            x = (x - 128) * 1.15 + 110
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
        if n == 3:  # re-encoded as JPEG
            buf = io.BytesIO()
            Image.fromarray(x).save(buf, format="JPEG", quality=85)
            x = np.asarray(Image.open(buf).convert("L"))
        pairs.append(("near", ids[i], _save(root, ("val", "test")[n % 2], int(labels[i]), f"near{i}.png", x)))
    return root, pairs, wrong_ids


def test_finds_every_planted_duplicate_and_ranks_the_wrong_labels_high(planted):
    root, pairs, wrong_ids = planted
    data = load_dataset(f"folder:{root}", cache=False)
    r = inspect_dataset(data, input_size=32)
    groups = r["duplicates"]["groups"]
    for kind, a, b in pairs:
        hit = [g for g in groups if {a, b} <= {m["id"] for m in g["images"]}]
        assert hit, f"{kind} duplicate {a} / {b} not found"
        assert hit[0]["kind"] == kind and hit[0]["cross_split"]
    assert r["duplicates"]["leaked_eval_images"] >= 8
    top = [x["id"] for x in r["label_issues"]["ranking"][:30]]
    missed = [w for w in wrong_ids if w not in top]
    assert not missed, f"planted wrong labels outside the top 30: {missed}"
    assert r["label_issues"]["flagged"] >= 8
    assert len(r["classes"]["total"]) == 10 and sum(r["classes"]["total"]) == 508
    assert r["images"]["sizes"] == {"32x32": 508} and r["images"]["modes"] == {"L": 508}
    assert "flip" not in r["auto"]["augment"]


@pytest.mark.slow
def test_cli_table_json_and_page(planted, tmp_path, capsys):
    root, pairs, _ = planted
    page = tmp_path / "inspect.html"
    assert main(["inspect", f"folder:{root}", "-o", str(page)]) == 0
    out = capsys.readouterr().out
    assert "images per class" in out and "across splits" in out and "auto would choose" in out
    text = page.read_text()
    assert 'content="cnnkit inspect"' in text and text.count("data:image/png;base64,") >= 30
    assert (
        main(["inspect", f"folder:{root}", "-o", str(page), "--json", "--top", "5"]) == 0
    )  # our page: replaced
    report = json.loads(capsys.readouterr().out)
    assert len(report["label_issues"]["ranking"]) == 5 and report["duplicates"]["cross_split_groups"] >= 8
    assert report["splits"] == {"train": 360, "val": 74, "test": 74}


def test_cli_never_replaces_a_users_file(tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    assert main(["inspect", "digits", "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "not a page cnnkit inspect wrote" in err and "--overwrite" in err and "Traceback" not in err
    assert mine.read_text() == "<p>my notes</p>"
    assert main(["inspect", "digits", "-o", str(tmp_path / "report.png")]) == 2
    assert "not an HTML file name" in capsys.readouterr().err
    assert main(["inspect", "digits", "--model", "lenett5"]) == 2
    assert "lenet5" in capsys.readouterr().err
    small = write_digit_folder(tmp_path / "small", per_class=2)
    assert (
        main(["inspect", f"folder:{small}", "--memory-budget-mb", "0"]) == 2
    )  # would stream: refused, one line
    err = capsys.readouterr().err
    assert "larger than the memory budget" in err and "Traceback" not in err
