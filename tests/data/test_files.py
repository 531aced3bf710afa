"""The user's own images: folder:PATH and csv:FILE, messy files, strict mode, the decoded cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import cnnkit
from cnnkit.data import FileData, ImageData, load_dataset, read_image
from cnnkit.data.images import decode_array
from cnnkit.errors import DataError

TRAIN = dict(model="lenet5", epochs=1, batch_size=16, quiet=True)


def test_every_image_mode_is_decoded_like_pil_with_exif_orientation(tmp_path, fx):
    root = fx.make_messy_folder(tmp_path / "messy")
    for name in ("m_gray.png", "m_rgba.png", "m_palette.gif", "m_cmyk.jpg", "m_16bit.png", "m_la.png", "m_exif.jpg"):
        p = root / "dog" / name
        with Image.open(p) as im:
            ref = ImageOps.exif_transpose(im)
            if ref.mode not in ("I;16", "I"):
                assert np.array_equal(decode_array(p, 3, None)[0], np.asarray(ref.convert("RGB"))), name
    arr, gray = decode_array(root / "dog" / "m_exif.jpg", 3, None)
    assert arr.shape == (20, 10, 3) and not gray  # stored 20 wide x 10 high, displayed rotated
    a16, gray = decode_array(root / "dog" / "m_16bit.png", 1, None)
    assert gray and a16.dtype == np.uint8 and a16.max() == 255  # 16-bit stretched to 0..255
    assert read_image(root / "dog" / "m_big.jpg", 1, (8, 6)).shape == (1, 8, 6)
    with pytest.raises(DataError, match="c_truncated.jpg"):
        read_image(root / "cat" / "c_truncated.jpg", 3, (8, 8))


def test_messy_folder_loads_skipping_and_listing_bad_files(tmp_path, fx):
    root = fx.make_messy_folder(tmp_path / "messy")
    ds = load_dataset(f"folder:{root}", input_size=16, val_split=0.2, test_split=0.2)
    assert ds.classes == ["cat", "dog"] and ds.image_shape == (3, 16, 16)  # RGB among them: 3 channels
    assert isinstance(ds.train, ImageData) and ds.info["storage"] == "memory"
    skipped = {os.path.relpath(s["path"], root): s["reason"] for s in ds.info["skipped"]}
    assert sorted(skipped) == sorted(p for p, _ in fx.MESSY_BAD)
    for p, why in fx.MESSY_BAD:
        assert why in skipped[p], (p, skipped[p])
    ids = ds.train.ids + ds.val.ids + ds.test.ids
    assert len(ids) == 10 + fx.MESSY_GOOD_DOG and "dog/nested/m_nested.png" in ids  # ids: paths relative to PATH
    assert not any("hidden" in i or ".git" in i or "DS_Store" in i for i in ids)
    assert any("skipped 5 bad files" in w for w in ds.info["warnings"])


def test_messy_folder_trains_and_reports_skipped_files_in_the_run(tmp_path, fx, runs_dir):
    root = fx.make_messy_folder(tmp_path / "messy")
    r = cnnkit.train(data=f"folder:{root}", name="messy", runs_dir=runs_dir, **TRAIN)
    listed = (r.run_dir / "skipped_files.txt").read_text().splitlines()
    assert len(listed) == len(fx.MESSY_BAD) and str(root / "cat" / "c_truncated.jpg") in listed[2]
    as_json = json.loads((r.run_dir / "skipped_files.json").read_text())
    assert {"path", "reason"} == set(as_json[0])
    assert "skipped 5 bad files" in (r.run_dir / "log.txt").read_text()
    split = json.loads((r.run_dir / "split.json").read_text())
    assert all(not os.path.isabs(i) for i in split["test"]) and split["classes"] == ["cat", "dog"]
    # eval later re-loads the same files (from the cache) and checks the recorded split
    assert cnnkit.evaluate(r.run_dir)["n"] == len(split["test"])


def test_strict_fails_naming_the_first_bad_file(tmp_path, fx, runs_dir, capsys):
    root = fx.make_messy_folder(tmp_path / "messy")
    with pytest.raises(DataError, match="a_notes.txt"):
        cnnkit.train(data=f"folder:{root}", name="s", runs_dir=runs_dir, strict=True, **TRAIN)
    assert not (tmp_path / "runs" / "s").exists()
    # only a file that fails to decode left: strict still names it
    for p, _ in fx.MESSY_BAD:
        if "truncated" not in p:
            (root / p).unlink()
    from cnnkit.cli import main

    assert main(["train", "--data", f"folder:{root}", "--strict", "--epochs", "1", "--runs-dir", runs_dir]) == 2
    err = capsys.readouterr().err
    assert "c_truncated.jpg" in err and "truncated" in err and "Traceback" not in err


def test_empty_class_folder_is_an_error_naming_it(tmp_path, fx):
    root = fx.make_clean_folder(tmp_path / "d", per_class=3)
    (root / "bird").mkdir()
    (root / "bird" / ".DS_Store").write_bytes(b"x")  # hidden files do not count
    with pytest.raises(DataError, match="bird") as e:
        load_dataset(f"folder:{root}", input_size=8)
    assert "empty" in e.value.message
    (root / "bird" / "broken.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="no readable images") as e:
        load_dataset(f"folder:{root}", input_size=8)
    assert "broken.png" in str(e.value)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(f"folder:{root / 'cat'}")


def test_second_run_is_a_cache_hit_that_skips_decoding(tmp_path, fx, runs_dir, capsys, monkeypatch):
    root = fx.make_clean_folder(tmp_path / "d", per_class=10)
    cnnkit.train(data=f"folder:{root}", name="a", runs_dir=runs_dir, **{**TRAIN, "quiet": False})
    first = capsys.readouterr().out
    assert "decoded 20 images" in first and "cache hit" not in first

    from cnnkit.data import files

    def no_decoding(*a, **k):
        raise AssertionError("decoded although the cache holds the images")

    decode_files = files.decode_files
    monkeypatch.setattr(files, "decode_files", no_decoding)
    cnnkit.train(data=f"folder:{root}", name="b", runs_dir=runs_dir, **{**TRAIN, "quiet": False})
    second = capsys.readouterr().out
    assert "cache hit: 20 decoded images" in second and "decoding them took" in second
    a = json.loads((tmp_path / "runs" / "a" / "split.json").read_text())
    b = json.loads((tmp_path / "runs" / "b" / "split.json").read_text())
    assert a == b
    # a changed file (new mtime) is decoded again; other sizes/channels are other entries
    monkeypatch.setattr(files, "decode_files", decode_files)  # (not undo(): that would drop the private cache)
    os.utime(root / "cat" / "000.png", ns=(1, 1))
    assert load_dataset(f"folder:{root}", input_size=32).info["cache"]["hit"] is False
    assert load_dataset(f"folder:{root}", input_size=32).info["cache"]["hit"] is True
    assert load_dataset(f"folder:{root}", input_size=16).info["cache"]["hit"] is False
    assert load_dataset(f"folder:{root}", input_size=16, cache=False).info["cache"]["path"] is None
    cached = list((tmp_path / "decoded-cache").iterdir())
    assert {p.suffix for p in cached} == {".npy", ".json"}  # never pickle


def test_presplit_train_val_test_folders_are_used_as_they_are(tmp_path, fx):
    root = tmp_path / "d"
    fx.make_clean_folder(root / "train", per_class=6)
    fx.make_clean_folder(root / "val", per_class=2, seed=1)
    fx.make_clean_folder(root / "test", per_class=3, seed=2)
    ds = load_dataset(f"folder:{root}", input_size=8)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 4, 6)
    assert all(i.startswith("test/") for i in ds.test.ids) and ds.classes == ["cat", "dog"]
    fx.make_clean_folder(root / "val", classes=("cow",), per_class=1)
    with pytest.raises(DataError, match="cow"):
        load_dataset(f"folder:{root}", input_size=8)


def test_csv_rows_resolve_against_the_csv_folder(tmp_path, fx):
    root = fx.make_clean_folder(tmp_path / "imgs", per_class=5)
    lines = ["path,label"] + [f"imgs/cat/{i:03d}.png,cat" for i in range(5)] + [f"imgs/dog/{i:03d}.png,dog" for i in range(5)]
    lines += ["imgs/dog/missing.png,dog", f"{root / 'dog' / '000.png'},dog"]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    cwd = os.getcwd()
    os.chdir(sub)  # relative paths are resolved against the CSV's folder, not the working directory
    try:
        ds = load_dataset(f"csv:{tmp_path / 'labels.csv'}", input_size=8, val_split=0.2, test_split=0.2)
    finally:
        os.chdir(cwd)
    assert ds.classes == ["cat", "dog"] and len(ds.train) + len(ds.val) + len(ds.test) == 11
    assert [s["reason"] for s in ds.info["skipped"]] == ["file not found"]
    assert "imgs/cat/000.png" in ds.train.ids + ds.val.ids + ds.test.ids
    (tmp_path / "bad.csv").write_text("path,label\nimgs/cat/000.png\n")
    with pytest.raises(DataError, match="line 2"):
        load_dataset(f"csv:{tmp_path / 'bad.csv'}", input_size=8)
    (tmp_path / "split.csv").write_text("file,class,split\n" + "\n".join(
        f"imgs/{c}/{i:03d}.png,{c},{'train' if i < 3 else 'test'}" for c in ("cat", "dog") for i in range(5)))
    ds = load_dataset(f"csv:{tmp_path / 'split.csv'}", input_size=8, val_split=0.3)
    assert len(ds.test) == 4 and len(ds.train) + len(ds.val) == 6


def test_class_imbalance_is_reported(tmp_path, fx, runs_dir, capsys):
    root = fx.make_clean_folder(tmp_path / "d", per_class=2)
    fx.make_clean_folder(root, classes=("zebra",), per_class=12, seed=3)
    ds = load_dataset(f"folder:{root}", input_size=8)
    assert ds.info["class_counts"] == {"cat": 2, "dog": 2, "zebra": 12}
    assert any("class imbalance" in w and "'zebra' has 12" in w for w in ds.info["warnings"])
    cnnkit.train(data=f"folder:{root}", name="imb", runs_dir=runs_dir, **{**TRAIN, "quiet": False})
    assert "warning: class imbalance" in capsys.readouterr().out


def test_beyond_the_memory_budget_data_streams_from_files(tmp_path, fx, runs_dir, monkeypatch):
    root = fx.make_messy_folder(tmp_path / "messy")
    mem = load_dataset(f"folder:{root}", input_size=16)
    from cnnkit.data import registry

    monkeypatch.setattr(registry, "STATS_SAMPLE", 10_000)
    ds = load_dataset(f"folder:{root}", input_size=16, memory_budget_mb=0)
    assert isinstance(ds.train, FileData) and ds.info["storage"] == "streaming" and not ds.in_memory
    assert ds.split_ids() == mem.split_ids() and ds.image_shape == (3, 16, 16)
    # the header check already finds everything but the truncated JPEG, which fails when decoded
    assert len(ds.info["skipped"]) >= len(fx.MESSY_BAD) - 1
    assert ds.mean == pytest.approx(mem.mean, abs=1e-5) and ds.std == pytest.approx(mem.std, abs=1e-5)
    monkeypatch.setattr(registry, "STATS_SAMPLE", 8)  # mean/std estimated on a seeded sample
    est = load_dataset(f"folder:{root}", input_size=16, memory_budget_mb=0)
    assert est.mean != ds.mean and est.mean == load_dataset(f"folder:{root}", input_size=16, memory_budget_mb=0).mean
    monkeypatch.setattr(registry, "STATS_SAMPLE", 10_000)
    # streaming training gives the same numbers as in memory (same pixels, same batches, same augmentation)
    clean = fx.make_clean_folder(tmp_path / "clean", per_class=10)
    a = cnnkit.train(data=f"folder:{clean}", name="mem", runs_dir=runs_dir, augment="translate=2,flip", **TRAIN)
    b = cnnkit.train(data=f"folder:{clean}", name="stream", runs_dir=runs_dir, augment="translate=2,flip",
                     memory_budget_mb=0, **TRAIN)  # fmt: skip
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"], abs=1e-6)
    assert a.test == pytest.approx(b.test, abs=1e-6)


def test_data_without_a_model_size_uses_the_common_size(tmp_path, fx):
    root = fx.make_clean_folder(tmp_path / "d", per_class=4, size=(20, 24))
    fx.save_image(root / "cat" / "odd.png", np.zeros((50, 50), dtype=np.uint8))
    ds = load_dataset(f"folder:{root}")
    assert ds.image_shape == (3, 20, 24)
    gray = tmp_path / "g"
    for c in ("a", "b"):
        for i in range(3):
            fx.save_image(gray / c / f"{i}.png", np.full((9, 9), 50 * i, dtype=np.uint8))
    assert load_dataset(f"folder:{gray}").image_shape == (1, 9, 9)  # all grey: one channel
    assert torch.is_tensor(load_dataset(f"folder:{gray}", channels=3).train.images)
