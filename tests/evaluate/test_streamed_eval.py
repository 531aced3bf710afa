"""``eval`` and ``features`` on streamed data (issue 14, item 4): batch by batch, never a whole split in memory.

A streamed split (``shards:DIR``, or a folder over ``--memory-budget-mb 0``) must give the very same
numbers as the same pixels held in memory, and must never be decoded whole: ``FileData.load`` (what
``.images`` calls) is made to fail, and every decode is checked to be one batch at most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.cli import main
from cnnkit.data import FileData, load_dataset
from cnnkit.data.loader import pixel_batches
from cnnkit.data.registry import STATS_SAMPLE
from cnnkit.data.shards import ShardData
from cnnkit.evaluate import evaluate_run
from cnnkit.run import load_run
from cnnkit.transfer import extract_features

from ..data.image_folders import write_digit_folder


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A one-epoch linear model on digits at 16 px (a second or two)."""
    runs = tmp_path_factory.mktemp("runs")
    return cnnkit.train(
        model="linear", epochs=1, input_size=16, name="lin", runs_dir=str(runs), quiet=True
    ).run_dir


@pytest.fixture(scope="module")
def pack16(tmp_path_factory) -> Path:
    """digits packed at the run's input size: PNG is lossless, so the pack holds the in-memory pixels."""
    out = tmp_path_factory.mktemp("pack") / "digits16"
    assert (
        main(["pack", "digits", "-o", str(out), "--input-size", "16", "--shard-size", "100", "--quiet"]) == 0
    )
    return out


@pytest.fixture
def no_whole_split(monkeypatch):
    """Fail on any decoding of a whole split; record the size of every decode call.

    One exception: ``load_dataset`` estimates mean/std on a seeded sample of at most ``STATS_SAMPLE``
    training images (bounded whatever the split's size), which ``decode()`` reads in one call.
    """
    sizes: list[int] = []

    def load(self, threads=None):
        raise AssertionError(f"a whole split of {len(self)} images was decoded into memory")

    def checked(real):
        def decode(self, indices=None, threads=None, executor=None):
            if indices is None:
                assert len(self) <= STATS_SAMPLE, f"decode() of a whole split of {len(self)} images"
            else:
                sizes.append(len(indices))
            return real(self, indices, threads=threads, executor=executor)

        return decode

    monkeypatch.setattr(FileData, "load", load)
    monkeypatch.setattr(FileData, "decode", checked(FileData.decode))
    monkeypatch.setattr(ShardData, "decode", checked(ShardData.decode))
    return sizes


def test_eval_on_shards_equals_in_memory_without_materialising(
    small_run, pack16, monkeypatch, no_whole_split
):
    streamed = evaluate_run(small_run, data=f"shards:{pack16}", write=False, tta="flip")
    assert no_whole_split and max(no_whole_split) <= 512  # batches, then the few top-loss images
    monkeypatch.undo()
    mem = evaluate_run(small_run, write=False, tta="flip")
    assert streamed["n"] == mem["n"] == len(load_dataset("digits").test)
    for k in ("acc", "top5", "loss"):
        assert streamed[k] == pytest.approx(mem[k], abs=1e-12), k
    assert [r["id"] for r in streamed["top_losses"]] == [r["id"] for r in mem["top_losses"]]


@pytest.mark.slow
def test_eval_writes_its_report_from_a_streamed_folder(small_run, tmp_path, no_whole_split):
    src = write_digit_folder(tmp_path / "digits", per_class=6, scale=2)
    run = load_run(small_run)
    run.config = {**run.config, "memory_budget_mb": 0, "val_split": 0.2, "test_split": 0.5}  # stream it
    streamed = evaluate_run(run, data=f"folder:{src}", write=True, report=False)
    assert streamed["n"] == 30 and Path(streamed["out_dir"], "top_losses.png").is_file()
    assert no_whole_split and max(no_whole_split) <= 512
    run.config = {**run.config, "memory_budget_mb": 4096}
    mem = evaluate_run(run, data=f"folder:{src}", write=False)
    assert mem["acc"] == streamed["acc"] and mem["loss"] == pytest.approx(streamed["loss"], abs=1e-12)


def test_features_streamed_equal_in_memory(small_run, pack16, tmp_path, no_whole_split):
    src = write_digit_folder(tmp_path / "digits", per_class=10, scale=2)
    folder = load_dataset(f"folder:{src}", input_size=16, memory_budget_mb=0)
    shards = load_dataset(f"shards:{pack16}", input_size=16)
    assert not folder.in_memory and not shards.in_memory
    no_whole_split.clear()
    got = {
        n: extract_features(small_run, d, batch_size=16) for n, d in (("folder", folder), ("shards", shards))
    }
    assert no_whole_split and max(no_whole_split) <= 16  # one batch at a time, never a split
    ref = {
        "folder": load_dataset(f"folder:{src}", input_size=16),
        "shards": load_dataset("digits", input_size=16),
    }
    for name, ds in ref.items():
        want = extract_features(small_run, ds, batch_size=16)
        assert list(got[name].ids) == list(want.ids)
        np.testing.assert_array_equal(got[name].labels, want.labels)
        np.testing.assert_allclose(got[name].features, want.features, rtol=0, atol=1e-6)


def test_pixel_batches_reads_in_order_one_batch_at_a_time(pack16, no_whole_split):
    part = load_dataset(f"shards:{pack16}").val
    no_whole_split.clear()
    got = list(pixel_batches(part, 64))
    assert [len(i) for _, i in got] == [64] * (len(part) // 64) + ([len(part) % 64] if len(part) % 64 else [])
    assert torch.equal(torch.cat([i for _, i in got]), torch.arange(len(part)))
    assert max(no_whole_split) <= 64
    monkey = load_dataset("digits", input_size=16).val.images
    assert torch.equal(torch.cat([x for x, _ in got]), monkey)


def test_predict_reads_a_folder_batch_by_batch(small_run, tmp_path, monkeypatch):
    """``cnnkit predict DIR`` already streams: files are listed, then decoded and scored one batch at a time."""
    from cnnkit.evaluate import predict_files, tta

    src = write_digit_folder(tmp_path / "digits", per_class=3, scale=2)
    run = load_run(small_run)
    whole = predict_files(run, [src], topk=1, batch_size=1000)
    sizes: list[int] = []
    real = tta.predict_probs
    monkeypatch.setattr(tta, "predict_probs", lambda r, x, **kw: sizes.append(len(x)) or real(r, x, **kw))
    batched = predict_files(run, [src], topk=1, batch_size=8)
    assert sizes == [8, 8, 8, 6]
    assert [(p.path, p.top[0][0]) for p in batched] == [(p.path, p.top[0][0]) for p in whole]
