"""The sequential pack reader with a shuffle buffer (``--shuffle-buffer N``, :mod:`cnnkit.data.shard_stream`).

Exactly once per epoch across 2 ranks x 2 workers (plus DistributedSampler's padding when the count is
odd), the same bytes as a read by offset, an order determined by (seed, epoch), and a loader that
trains with worker processes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.data import Normalize, load_dataset, make_loader
from cnnkit.data.packing import PackWriter
from cnnkit.data.shard_stream import BufferedShardLoader, ShardStream, rank_sequence
from cnnkit.data.shards import _read, open_pack

N_TRAIN, SHARD = 103, 10  # 11 shards, the last one short; an odd count needs one padded sample


def _pixels(i: int) -> bytes:
    """A 4x4 grey image that names its sample: bytes 0 and 1 hold the index."""
    a = np.full(16, 7, dtype=np.uint8)
    a[0], a[1] = i % 256, i // 256
    return a.tobytes()


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream")
    w = PackWriter(out, shard_size=SHARD)
    for split, n in (("train", N_TRAIN), ("val", 12), ("test", 12)):
        w.start_split(split)
        for i in range(n):
            w.add("u8", _pixels(i), i % 3, f"{split}/{i}")
    w.finish(["a", "b", "c"], (1, 4, 4), "raw", {"source": "generated"})
    return out


def _train(pack: Path, n: int | None = None, buffer: int = 20):
    data = open_pack(pack)[1]["train"]
    if n is not None:
        data = data.subset(list(range(n)))
    data.shuffle_buffer = buffer
    return data


def _epoch(data, seed: int, epoch: int, ranks: int = 2, workers: int = 2, buffer: int = 20) -> dict:
    """Positions handed out by each (rank, worker) reader, in order."""
    out = {}
    for r in range(ranks):
        st = ShardStream(data, 8, buffer, seed, epoch, True, r, ranks)
        for w in range(workers):
            out[r, w] = [p for p, _ in st.samples(w, workers)]
    return out


@pytest.mark.parametrize("n", [102, N_TRAIN])
def test_each_sample_exactly_once_across_2_ranks_x_2_workers(pack, n):
    data = _train(pack, n)
    for epoch in (0, 1, 2):
        got = _epoch(data, seed=5, epoch=epoch)
        per_rank = [sum(len(got[r, w]) for w in (0, 1)) for r in (0, 1)]
        assert per_rank == [-(-n // 2)] * 2  # equal steps on every rank
        counts = Counter(p for seq in got.values() for p in seq)
        assert set(counts) == set(range(n))
        twice = sorted(p for p, c in counts.items() if c > 1)
        if n % 2 == 0:
            assert twice == []  # exactly once
        else:  # the padding: the epoch sequence's first sample, as DistributedSampler repeats its first
            assert twice == [int(rank_sequence(data, 5, epoch)[0])] and counts[twice[0]] == 2


def test_order_is_a_function_of_seed_and_epoch(pack):
    data = _train(pack)
    a, b = _epoch(data, 5, 1), _epoch(data, 5, 1)
    assert a == b
    assert _epoch(data, 5, 2) != a and _epoch(data, 6, 1) != a
    # the buffer does shuffle: not the reading order, yet the same samples
    seq = rank_sequence(data, 5, 1, rank=0, world_size=2)
    st = ShardStream(data, 8, 20, 5, 1, True, 0, 2)
    out = [p for p, _ in st.samples()]
    assert out != seq.tolist() and sorted(out) == sorted(seq.tolist())
    # a buffer of 1 keeps the reading order: whole shards in a seeded order
    plain = [p for p, _ in ShardStream(data, 8, 1, 5, 1, True, 0, 2).samples()]
    assert plain == seq.tolist()
    shards = [int(data.shard[p]) for p in plain]
    assert shards == sorted(shards, key=shards.index)  # each shard read in one run


def test_sequential_reads_give_the_bytes_of_reads_by_offset(pack):
    data = _train(pack)
    for p, buf in ShardStream(data, 8, 20, 0, 0, True, 0, 1).samples():
        assert buf == _read(data.shard_paths[int(data.shard[p])], int(data.offset[p]), int(data.nbytes[p]))
        assert buf == _pixels(p)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_yields_every_sample_once_per_epoch_on_2_ranks(pack, workers):
    data = _train(pack, 102)
    ident = Normalize((0.0,), (1.0,))  # x = pixel / 255: each row names its sample
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            loader = make_loader(
                data, 16, ident, workers=workers, shuffle=True, seed=3, rank=rank, world_size=2
            )
            assert isinstance(loader, BufferedShardLoader)
            loader.set_epoch(epoch)
            batches = list(loader)
            assert len(batches) == len(loader)
            for x, y in batches:
                px = (x * 255).round().to(torch.long).flatten(1)
                idx = (px[:, 0] + 256 * px[:, 1]).tolist()
                assert y.tolist() == [i % 3 for i in idx]
                seen += idx
        assert sorted(seen) == list(range(102))
    # without a buffer, or unshuffled (evaluation), the reader by offset is used
    assert type(make_loader(_train(pack, buffer=0), 16, ident, shuffle=True)).__name__ == "StreamLoader"
    assert type(make_loader(data, 16, ident, shuffle=False)).__name__ == "StreamLoader"


def test_shuffle_buffer_reaches_the_splits_from_load_dataset(pack):
    ds = load_dataset(f"shards:{pack}", shuffle_buffer=50)
    assert ds.train.shuffle_buffer == 50 and ds.val.shuffle_buffer == 50
    assert load_dataset(f"shards:{pack}").train.shuffle_buffer == 0


@pytest.mark.slow
def test_train_with_a_shuffle_buffer_learns_like_reads_by_offset(tmp_path, capsys):
    import json

    import yaml

    from cnnkit.cli import main

    pack = tmp_path / "digits"
    assert main(["pack", "digits", "-o", str(pack), "--shard-size", "300", "--quiet"]) == 0
    runs = tmp_path / "runs"
    common = ["--data", f"shards:{pack}", "--epochs", "3", "--runs-dir", str(runs), "--quiet"]
    assert main(["train", *common, "--name", "offset"]) == 0
    assert main(["train", *common, "--name", "seq", "--shuffle-buffer", "300"]) == 0
    cfg = yaml.safe_load((runs / "seq" / "config.yaml").read_text())
    assert cfg["shuffle_buffer"] == 300
    acc = {n: json.loads((runs / n / "summary.json").read_text())["test"]["acc"] for n in ("offset", "seq")}
    assert acc["seq"] > 0.8 and abs(acc["seq"] - acc["offset"]) < 0.06, acc
