"""``cnnkit bench``: consistent numbers from one measurement, every model family, clear errors."""

from __future__ import annotations

import json
import statistics

import pytest

from cnnkit.cli import main
from cnnkit.engine import bench as bench_mod
from cnnkit.engine.bench import bench, time_blocks
from cnnkit.engine.bench_result import TRAIN_FLOPS_FACTOR
from cnnkit.models import list_models, model_entry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def small_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small peak matmul and short timing blocks: the arithmetic is tested here, not this machine's speed."""
    monkeypatch.setitem(bench_mod.PEAK_SIDE, "cpu", 256)
    monkeypatch.setattr(bench_mod, "PEAK_SECONDS", 0.02)
    monkeypatch.setattr(bench_mod, "MIN_BLOCK_S", 0.005)


def test_numbers_come_from_one_measurement() -> None:
    r = bench("lenet5", batch_size=8, infer_batch=16, steps=2, warmup=1, repeats=4, device="cpu")
    assert r.input_size == (1, 32, 32) and r.num_classes == 10 and r.data == "synthetic"
    for tm, batch in ((r.train, 8), (r.inference, 16), (r.pipeline, 8)):
        assert tm.batch == batch and tm.steps >= 2 and len(tm.seconds) == 4
        assert tm.images == [batch * tm.steps] * 4  # every block ran full batches
        assert all(s > 0 for s in tm.seconds)
        # images/s is the median over the blocks of (batch x steps) / seconds: an even count averages two
        assert tm.images_per_s == pytest.approx(statistics.median(batch * tm.steps / s for s in tm.seconds))
        assert min(tm.rates) <= tm.images_per_s <= max(tm.rates)
        assert tm.spread == pytest.approx((max(tm.rates) - min(tm.rates)) / tm.images_per_s)
    assert r.macs_per_image == 416_520  # LeNet-5's multiply-adds at 32 px, as `cnnkit summary lenet5` counts
    assert r.flops_train == TRAIN_FLOPS_FACTOR * 2 * r.macs_per_image
    assert r.gflops("train") == pytest.approx(r.flops_train * r.train.images_per_s / 1e9)
    assert r.gflops("inference") == pytest.approx(2 * r.macs_per_image * r.inference.images_per_s / 1e9)
    peak = r.peaks["float32"]
    assert r.amp is None and set(r.peaks) == {"float32"} and peak.n == 256
    assert len(peak.seconds) == 2 * 4  # measured before and after the workloads; the fastest block counts
    assert peak.gflops == pytest.approx(2 * 256**3 * peak.count / min(peak.seconds) / 1e9)
    assert r.pct_of_peak("train") == pytest.approx(100 * r.gflops("train") / peak.gflops)
    ratio = r.pipeline.images_per_s / r.train.images_per_s
    assert r.data_vs_train == pytest.approx(ratio)
    assert f"{max(ratio, 1 / ratio):.1f}x" in r.verdict or "similar speeds" in r.verdict
    d = json.loads(r.to_json())
    assert d["train"]["images_per_s"] == pytest.approx(r.train.images_per_s)
    assert d["train"]["gflops"] == pytest.approx(r.gflops("train"))
    assert d["data_pipeline"]["images"] == r.pipeline.images and d["verdict"] == r.verdict
    assert d["augment"] == r.augment and d["peak_used"] == "float32"


def test_time_blocks_counts_the_images_it_timed() -> None:
    """A step that returns fewer images (a streamed batch that lost a file) counts what it returned."""
    import itertools

    import torch

    sizes, returned = itertools.cycle([5, 4, 5, 3]), []

    def step() -> int:
        returned.append(next(sizes))
        return returned[-1]

    tm = time_blocks(step, torch.device("cpu"), steps=3, warmup=2, repeats=2, batch=5)
    timed = returned[2:]  # after the warmup steps
    assert len(timed) == 2 * tm.steps
    assert tm.images == [sum(timed[: tm.steps]), sum(timed[tm.steps :])]


# One small member of every family (`cnnkit models`), at a small input where the family takes one.
FAMILY_CASES = {
    "alexnet": ("alexnet", 16), "densenet": ("densenet121", 16), "inception": ("googlenet", 16),
    "lenet": ("lenet1", None), "linear": ("linear", None), "mobilenet": ("mobilenet_v1", 16),
    "resnet": ("resnet20", 16), "squeezenet": ("squeezenet1_1", 16), "stn": ("stn_lenet1", None),
    "vgg": ("vgg11_bn", 16),
}  # fmt: skip


def test_every_family_is_covered() -> None:
    assert {model_entry(n).family for n in list_models()} == set(FAMILY_CASES)


@pytest.mark.parametrize(("name", "size"), list(FAMILY_CASES.values()), ids=list(FAMILY_CASES))
def test_every_family(name: str, size: int | None) -> None:
    r = bench(name, batch_size=2, infer_batch=4, input_size=size, steps=1, warmup=0, repeats=1, device="cpu",
              augment="translate=1")  # fmt: skip
    assert r.input_size[1] == (size or model_entry(name).default_input[1])
    assert r.macs_per_image > 0
    for tm in (r.train, r.inference, r.pipeline):
        assert tm.images_per_s > 0 and tm.images[0] == tm.batch * tm.steps
    assert r.gflops("train") > 0 and r.pct_of_peak("inference") > 0


def test_data_option_times_that_datasets_pipeline() -> None:
    r = bench(
        "lenet5", data="digits", batch_size=16, infer_batch=16, steps=1, warmup=0, repeats=1, device="cpu"
    )
    assert r.data == "digits" and r.input_size == (1, 32, 32)  # cnnkit train's 32 px for 8 px digits
    # auto: digits are chiral, as cnnkit train decides
    assert "rotate" in r.augment and "flip" not in r.augment


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--model", "lenet1", "--batch-size", "4", "--infer-batch", "4", "--steps", "1",
                 "--warmup", "0", "--repeats", "1", "--device", "cpu", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    d = json.loads(out)
    assert d["model"] == "lenet1" and d["train"]["images_per_s"] > 0 and d["verdict"]


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--model", "linear", "--batch-size", "4", "--infer-batch", "4", "--steps", "1",
                 "--warmup", "0", "--repeats", "1", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "training step" in out and "matmul peak float32" in out and "verdict: data pipeline" in out


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--model", "lenet5", "--batch-size", "0"], "--batch-size"),
        (["--model", "lenet55"], "unknown model 'lenet55'"),
        (["--model", "alexnet", "--input-size", "4"], "cannot take a 3x4x4 input"),
        (["--model", "stn_lenet1", "--input-size", "8"], "8x8"),
        (["--model", "lenet5", "--data", "digits", "--classes", "3"], "--classes"),
        (["--model", "lenet5", "--augment", "spin=3"], "--augment"),
        (["--model", "lenet5", "--amp", "maybe"], "--amp"),
        (["--model", "resnet18", "--batch-size", "60000"], "--batch-size"),
    ],
)
def test_bad_inputs_one_line(argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", *argv, "--device", "cpu", "--steps", "1", "--warmup", "0", "--repeats", "1"])
    err = capsys.readouterr().err
    assert code != 0
    assert expect in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_api_rejects_bad_numbers() -> None:
    from cnnkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--batch-size must be a whole number >= 1"):
        bench("lenet5", batch_size=0)
    with pytest.raises(ConfigError, match="--warmup"):
        bench("lenet5", warmup=-1)


def test_verdict_names_the_slower_part() -> None:
    from cnnkit.engine.bench_result import BenchResult, Peak, Timing

    def result(data_rate: float) -> BenchResult:
        train = Timing([100], [1.0], 10, 10)  # 100 images/s
        data = Timing([int(data_rate)], [1.0], 10, 10)
        return BenchResult("m", (1, 8, 8), 10, "cpu", 1, None, False, "synthetic", "", 1000, train, train, data,
                           {"float32": Peak("float32", 64, 1, [0.001])}, 0, 1)  # fmt: skip

    assert result(1200).verdict == "data pipeline is 12.0x faster than training: the model is the bottleneck"
    assert result(25).verdict == "data pipeline is 4.0x slower than training: the data is the bottleneck"
    assert "similar speeds" in result(110).verdict
    assert result(100).epoch_images_per_s == pytest.approx(50)  # loader then step: the times add


def test_a_small_split_fills_the_batch_in_the_loaders_memory_format() -> None:
    import torch

    from cnnkit.data import ImageData, Normalize, make_loader
    from cnnkit.engine.bench import _first_batch

    d = ImageData(torch.arange(3 * 3 * 4 * 4, dtype=torch.uint8).reshape(3, 3, 4, 4), torch.tensor([0, 1, 2]),
                  ["a", "b", "c"])  # fmt: skip
    loader = make_loader(d, 2, Normalize((0.5,) * 3, (0.5,) * 3), channels_last=True)
    x, y = _first_batch(loader, 5)
    assert x.shape == (5, 3, 4, 4) and y.tolist() == [0, 1, 0, 1, 0]
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x[2], x[0])
