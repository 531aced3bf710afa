"""``cnnkit pack`` and ``--data shards:DIR``: the index, checksums, the split, streaming, rank splitting."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from cnnkit.cli import main
from cnnkit.data import Normalize, load_dataset
from cnnkit.data.loader import StreamLoader, epoch_indices
from cnnkit.data.shards import ShardData

from .image_folders import write_digit_folder


@pytest.fixture(scope="module")
def digits_pack(tmp_path_factory) -> Path:
    """digits packed with the default split, 500 samples per shard (so train has 3 shards)."""
    out = tmp_path_factory.mktemp("pack") / "digits"
    assert main(["pack", "digits", "-o", str(out), "--shard-size", "500", "--quiet"]) == 0
    return out


def _copy(pack: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(pack, dst)
    return dst


def test_pack_reproduces_the_split_and_the_pixels(digits_pack):
    mem, shards = load_dataset("digits"), load_dataset(f"shards:{digits_pack}")
    assert shards.classes == mem.classes and not shards.in_memory
    for s in ("train", "val", "test"):
        a, b = mem.split(s), shards.split(s)
        assert isinstance(b, ShardData)
        assert b.ids == a.ids and torch.equal(b.labels, a.labels)
    # PNG is lossless and the pack keeps the native 8x8: decoding gives back the very same pixels
    assert torch.equal(shards.test.load().images, mem.test.images)
    assert shards.mean == pytest.approx(mem.mean, abs=1e-6)


def test_index_counts_and_checksums_match_the_files(digits_pack):
    index = json.loads((digits_pack / "index.json").read_text())
    mem = load_dataset("digits")
    assert index["format"] == "cnnkit-shards" and index["image_shape"] == [1, 8, 8]
    assert index["split"]["seed"] == 0 and index["split"]["val_split"] == 0.15
    for s in ("train", "val", "test"):
        rec = index["splits"][s]
        assert rec["count"] == len(mem.split(s))
        assert rec["class_counts"] == mem.split(s).class_counts(10)
        assert sum(sh["count"] for sh in rec["shards"]) == rec["count"]
        for sh in rec["shards"]:
            data = (digits_pack / sh["file"]).read_bytes()
            assert len(data) == sh["bytes"] and hashlib.sha256(data).hexdigest() == sh["sha256"]
    assert len(index["splits"]["train"]["shards"]) == 3
    # a plain tar reader sees WebDataset samples: KEY.png, KEY.cls, KEY.id, in that order
    with tarfile.open(digits_pack / "val-000000.tar") as tar:
        names = tar.getnames()
        assert names[:3] == ["00000000.png", "00000000.cls", "00000000.id"]
        assert int(tar.extractfile("00000005.cls").read()) == int(mem.val.labels[5])
        assert tar.extractfile("00000005.id").read().decode() == mem.val.ids[5]


def test_damaged_or_missing_shard_is_one_line_naming_it(digits_pack, tmp_path, capsys):
    pack = _copy(digits_pack, tmp_path)
    shard = pack / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[5000] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert (
        main(["train", "--data", f"shards:{pack}", "--epochs", "1", "--runs-dir", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: shard") and "train-000001.tar" in err[0] and "damaged" in err[0]
    assert "--overwrite" in err[1] and "Traceback" not in "\n".join(err)
    shard.unlink()
    assert (
        main(["train", "--data", f"shards:{pack}", "--epochs", "1", "--runs-dir", str(tmp_path / "r")]) == 2
    )
    assert "train-000001.tar" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_pack_refuses_other_folders_and_overwrites_only_a_pack(digits_pack, tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    assert main(["pack", "digits", "-o", str(user), "--quiet"]) == 2
    assert "not a cnnkit pack" in capsys.readouterr().err and (user / "notes.txt").read_text() == "keep me"
    pack = _copy(digits_pack, tmp_path)
    assert main(["pack", "digits", "-o", str(pack), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["pack", "digits", "-o", str(pack), "--quiet", "--overwrite", "--shard-size", "2000"]) == 0
    assert sorted(p.name for p in pack.iterdir()) == ["index.json", "samples.npz", "test-000000.tar",
                                                       "train-000000.tar", "val-000000.tar"]  # fmt: skip
    assert not list(tmp_path.glob(".tmp-*"))  # the old pack was removed, nothing left aside
    (pack / "notes.txt").write_text("mine")
    assert main(["pack", "digits", "-o", str(pack), "--quiet", "--overwrite"]) == 2
    assert "notes.txt" in capsys.readouterr().err and (pack / "notes.txt").exists()


def test_folder_pack_keeps_the_files_own_bytes(tmp_path):
    src = write_digit_folder(tmp_path / "digits", per_class=8, scale=2)
    out = tmp_path / "pack"
    assert main(["pack", f"folder:{src}", "-o", str(out), "--quiet", "--seed", "3"]) == 0
    index = json.loads((out / "index.json").read_text())
    mem, shards = load_dataset(f"folder:{src}", seed=3), load_dataset(f"shards:{out}")
    assert shards.train.ids == mem.train.ids and shards.test.ids == mem.test.ids
    assert index["image_shape"] == [1, 16, 16]
    first = mem.train.ids[0]
    with tarfile.open(out / "train-000000.tar") as tar:
        assert tar.extractfile("00000000.png").read() == (src / first).read_bytes()
    assert torch.equal(shards.val.load().images, mem.val.images)


def test_raw_encoding_streams_the_same_pixels(tmp_path):
    out = tmp_path / "raw"
    assert main(["pack", "digits", "-o", str(out), "--quiet", "--encoding", "raw", "--input-size", "12"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["encoding"] == "raw" and index["raw_shape"] == [12, 12, 1]
    with tarfile.open(out / "test-000000.tar") as tar:
        assert tar.getmember("00000000.u8").size == 144
    mem, shards = load_dataset("digits", input_size=12), load_dataset(f"shards:{out}")
    assert torch.equal(shards.test.load().images, mem.test.images)


@pytest.mark.parametrize("workers", [0, 2])
def test_two_ranks_see_every_sample_once_per_epoch(digits_pack, workers):
    """Across rank 0 and 1 every sample comes once, plus DistributedSampler's padding.

    The padding rule (as ``DistributedSampler(drop_last=False)``): the epoch's permutation is extended
    by its own first ``ceil(n / 2) * 2 - n`` samples so both ranks get the same number of batches;
    those samples (at most one here) are seen twice.
    """
    data = load_dataset(f"shards:{digits_pack}").test  # 270 samples: even; drop one to need padding
    data = data.subset(list(range(len(data) - 1)))
    n = len(data)
    pixels = data.load().images.reshape(n, -1).numpy()
    owner = {row.tobytes(): data.ids[i] for i, row in enumerate(pixels)}
    ident = Normalize((0.0,), (1.0,))  # x = pixel / 255: each batch row maps back to its sample
    for epoch in (0, 1):
        seen: list[str] = []
        for rank in (0, 1):
            loader = StreamLoader(
                data, 32, ident, workers=workers, shuffle=True, seed=7, rank=rank, world_size=2
            )
            loader.set_epoch(epoch)
            for x, _ in loader:
                rows = (x * 255).round().to(torch.uint8).reshape(len(x), -1).numpy()
                seen += [owner[r.tobytes()] for r in rows]
        counts = Counter(seen)
        assert set(counts) == set(data.ids) and len(seen) == 2 * -(-n // 2)
        first = epoch_indices(n, True, 7, epoch)[0].item()  # the padded sample: the permutation's first
        assert [k for k, c in counts.items() if c == 2] == [data.ids[first]]


@pytest.mark.slow
def test_train_on_shards_matches_in_memory_and_eval_works(digits_pack, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    common = ["--epochs", "2", "--runs-dir", runs, "--quiet"]
    assert main(["train", "--data", "digits", "--name", "mem", *common]) == 0
    assert (
        main(["train", "--data", f"shards:{digits_pack}", "--memory-budget-mb", "0", "--name", "sh", *common])
        == 0
    )
    acc = {
        n: json.loads((tmp_path / "runs" / n / "summary.json").read_text())["test"]["acc"]
        for n in ("mem", "sh")
    }
    # Same split, same order, same seeds; only the resize differs (PIL when streaming, torch in memory)
    assert abs(acc["mem"] - acc["sh"]) <= 0.05, acc
    split = json.loads((tmp_path / "runs" / "sh" / "split.json").read_text())
    assert split["test"] == load_dataset("digits").test.ids
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "runs" / "sh")]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {acc['sh']:.2%}" in out


def test_shards_error_messages(tmp_path, capsys):
    assert main(["train", "--data", f"shards:{tmp_path / 'nope'}", "--epochs", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--data", f"shards:{tmp_path}", "--epochs", "1"]) == 2
    assert "not a cnnkit pack" in capsys.readouterr().err


def test_inspect_decodes_a_pack_that_fits_the_budget_and_refuses_one_that_does_not(digits_pack, capsys):
    assert main(["inspect", f"shards:{digits_pack}", "--json", "--top", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    mem = load_dataset("digits")
    assert report["splits"] == {s: len(mem.split(s)) for s in ("train", "val", "test")}
    assert report["classes"]["counts"]["test"] == mem.test.class_counts(10)
    assert report["images"]["loaded_as"] == "1x8x8"
    assert main(["inspect", f"shards:{digits_pack}", "--memory-budget-mb", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (f"error: 'shards:{digits_pack}' decodes to 0.11 MB (1,797 images of 1x8x8), more than "
                      "--memory-budget-mb 0; inspect compares every image with every other, so it holds them all "
                      "in memory")  # fmt: skip
    assert err[1].strip() == ("hint: raise --memory-budget-mb if the machine has the memory, or inspect a sample: "
                              f"'subset:shards:{digits_pack}?per_class=500'")  # fmt: skip


def test_a_registered_set_over_the_budget_is_refused_with_the_pack_route_that_works(digits_pack, capsys):
    """Registered sets are read whole by torchvision (CIFAR's pickles, SVHN's compressed .mat files are not
    laid out for reading image by image), so one that would exceed the budget once resized is refused; the hint's route,
    a pack at the native size streamed and resized batch by batch, then works within the budget."""
    args = ["--input-size", "300", "--memory-budget-mb", "100", "--epochs", "1"]
    assert main(["train", "--data", "digits", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("error: dataset 'digits' at 300x300 pixels needs 154 MB in memory, more than the memory "
                      "budget of 100 MB")  # fmt: skip
    assert "`cnnkit pack digits -o DIR` once, then --data shards:DIR" in err[1] and len(err) == 2
    ds = load_dataset(f"shards:{digits_pack}", input_size=300, memory_budget_mb=100)
    assert not ds.in_memory and ds.image_shape == (1, 300, 300)
    x, _ = next(iter(StreamLoader(ds.test, 4, Normalize(ds.mean, ds.std))))
    assert x.shape == (4, 1, 300, 300)
