"""Issue 13, item 6: the learning-rate range test (`cnnkit lr-find`, `cnnkit train --lr find`)."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch
import yaml

import cnnkit
from cnnkit.cli import main
from cnnkit.config import TrainConfig
from cnnkit.engine.loop import Trainer
from cnnkit.engine.train import load_data_for, resolve_augment, resolve_config
from cnnkit.errors import ConfigError, TrainingDiverged
from cnnkit.models import create_model, list_models, model_entry
from cnnkit.run import WeightsMeta

pytestmark = pytest.mark.usefixtures("one_thread")
# The module (cnnkit.engine.lr_find the attribute is the function, as cnnkit.engine.train).
lrf = importlib.import_module("cnnkit.engine.lr_find")

# One small member of every model family, with the options that exercise its special parts.
FAMILY_MODELS = {
    "linear": ("linear", {}),
    "lenet": ("lenet1", {}),
    "stn": ("stn_lenet1", {}),
    "alexnet": ("alexnet", {}),
    "vgg": ("vgg11_bn", {}),
    "inception": ("googlenet", {"aux_logits": True}),  # the auxiliary heads' losses go into the step
    "resnet": ("resnet20", {}),
    "densenet": ("densenet121", {}),
    "mobilenet": ("mobilenet_v1", {}),
    "squeezenet": ("squeezenet1_1", {}),
}


def _trainer(model: str = "lenet1", lr_mults: dict[str, float] | None = None, **over) -> Trainer:
    cfg = resolve_config(TrainConfig.from_dict({"model": model, "batch_size": 32, "augment": "none", **over}))
    data = load_data_for(cfg)
    cfg = resolve_augment(cfg, data)
    c, h, w = data.image_shape
    net = create_model(model, num_classes=data.num_classes, in_chans=c, input_size=(h, w))
    meta = WeightsMeta(model=model, model_args={}, num_classes=10, classes=data.classes, input_size=[c, h, w],
                       mean=list(data.mean), std=list(data.std))  # fmt: skip
    return Trainer(net, cfg, data, meta, None, torch.device("cpu"), lr_mults=lr_mults)


# ---------------------------------------------------------------------------- the suggestion rules
def test_rates_are_exponential() -> None:
    lrs = lrf.exp_lrs(1e-7, 10.0, 100)
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9) and ratios[0] > 1


def test_valley_and_steepest_on_a_known_curve() -> None:
    lrs = lrf.exp_lrs(1e-4, 1.0, 41)
    # Flat, then a descent between indices 10 and 30 (steepest at its start), then a blow-up.
    losses = [
        2.0 if i < 10 else 2.0 - math.sin((i - 10) / 20 * math.pi / 2) if i <= 30 else 1.0 + (i - 30)
        for i in range(41)
    ]
    v, s = lrf.valley(lrs, losses), lrf.steepest(lrs, losses)
    assert 10 <= v <= 30  # inside the descent, 2/3 of the way down
    assert v == 9 + round(2 * (30 - 9) / 3)
    assert 10 <= s <= 12  # sin's derivative is largest at the start of the descent
    cands = lrf.suggest(lrs, losses, 41)
    assert set(cands) == {"valley", "steep", "minimum/10"}
    assert cands["minimum/10"] == pytest.approx(lrs[30] / 10)


@pytest.mark.parametrize(("start", "end", "steps", "what"),
                         [(1.0, 0.1, 100, "below"), (1e-3, 1e-3, 100, "below"), (0.0, 1.0, 100, "--start-lr"),
                          (1e-7, 10.0, 0, "--steps"), (1e-7, float("nan"), 100, "--end-lr")])  # fmt: skip
def test_bad_ranges_are_one_clear_error(start: float, end: float, steps: int, what: str) -> None:
    with pytest.raises(ConfigError, match=what):
        lrf.check_range(start, end, steps)


# ---------------------------------------------------------------------------- the sweep
def test_sweep_sets_every_group_with_its_multiplier() -> None:
    t = _trainer(lr_mults={"features": 0.1})
    mults = sorted({g["lr_mult"] for g in t.optimizer.param_groups})
    assert mults == [0.1, 1.0]
    seen: list[float] = []
    lrs, losses, smoothed, _ = lrf.sweep(t, 1e-4, 1e-2, 6, on_step=lambda i, lr, loss, s: seen.append(lr))
    assert seen == lrs == pytest.approx(lrf.exp_lrs(1e-4, 1e-2, 6))
    for g in t.optimizer.param_groups:
        assert g["lr"] == pytest.approx(1e-2 * g["lr_mult"])
    assert all(math.isfinite(v) for v in losses + smoothed)


def test_sweep_stops_on_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    t = _trainer()
    real = t.train_step

    def step(x, y):
        if t.step == 7:  # the training step's own check for a non-finite loss
            raise TrainingDiverged("the loss became nan")
        return real(x, y)

    monkeypatch.setattr(t, "train_step", step)
    lrs, losses, _, reason = lrf.sweep(t, 1e-5, 1.0, 50)
    assert len(lrs) == len(losses) == 7
    assert "non-finite" in reason


def test_sweep_stops_when_the_smoothed_loss_passes_4x_its_minimum() -> None:
    # Adam at rates up to 1e4 blows the loss up long before the end of the range.
    t = _trainer(optimizer="adam")
    lrs, _, smoothed, reason = lrf.sweep(t, 1e-4, 1e4, 60)
    assert len(lrs) < 60, reason
    assert "4x" in reason or "non-finite" in reason
    if "4x" in reason:
        assert smoothed[-1] > 4 * min(smoothed)


def test_find_lr_leaves_the_model_and_the_random_state_alone() -> None:
    t = _trainer()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    rng = torch.get_rng_state()
    r = lrf.find_lr(t.cfg, t.data, t.model, torch.device("cpu"), start_lr=1e-5, end_lr=1.0, steps=12)
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert r.start_lr <= r.suggestion <= r.lrs[-1]


# ---------------------------------------------------------------------------- the API, every family
def test_family_table_covers_every_family() -> None:
    families = {model_entry(m).family for m in list_models()}
    assert families == set(FAMILY_MODELS), families ^ set(FAMILY_MODELS)


SLOW_FAMILIES = {"densenet", "inception"}  # 8-13 s each at 32 px on one CPU thread


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f
                                    for f in sorted(FAMILY_MODELS)])  # fmt: skip
def test_lr_find_works_on_every_family(family: str) -> None:
    name, args = FAMILY_MODELS[family]
    r = cnnkit.lr_find(model=name, model_args=args, input_size=32, batch_size=8, steps=6, start_lr=1e-4,
                       end_lr=1.0, data="subset:digits?classes=0,1,2")  # fmt: skip
    assert 1 <= len(r.lrs) <= 6 and r.setup["model"] == name
    assert r.lrs[0] == pytest.approx(1e-4)
    assert r.start_lr <= r.suggestion <= r.lrs[-1] * 1.01  # a swept rate (3 digits)
    assert all(math.isfinite(v) for v in r.losses)


def test_default_sweep_on_lenet5_suggests_a_rate_inside_the_range() -> None:
    r = cnnkit.lr_find(model="lenet5")
    ratios = [b / a for a, b in zip(r.lrs, r.lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-6)
    assert 1e-7 <= r.suggestion <= r.lrs[-1]
    assert any(abs(math.log(r.suggestion / lr)) < 0.01 for lr in r.lrs)  # one of the swept rates
    assert set(r.candidates) == {"valley", "steep", "minimum/10"} and r.suggestion == r.candidates["valley"]
    # LeNet-5's ReLUs die at rates near 10, so the loss returns to ~2.3 instead of blowing up: either ending.
    assert ("4x" in r.stop_reason and len(r.lrs) < 100) or ("reached" in r.stop_reason and len(r.lrs) == 100)


# ---------------------------------------------------------------------------- the commands
def test_cli_writes_the_plot_and_json(tmp_path, capsys) -> None:
    out = tmp_path / "lr.png"
    code = main(["lr-find", "--model", "lenet1", "--steps", "12", "--start-lr", "1e-5", "--end-lr", "1",
                 "--batch-size", "32", "-o", str(out), "--json"])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["plot"] == str(out) and doc["suggestion"] == doc["candidates"]["valley"]
    assert doc["setup"]["batch_size"] == 32 and len(doc["lrs"]) == len(doc["losses"]) <= 12


def test_cli_table_and_default_output_never_replaces_a_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr_find.png").write_text("mine")
    assert main(["lr-find", "--model", "lenet1", "--steps", "10", "--start-lr", "1e-4", "--end-lr", "1"]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "lr_find.png").read_text() == "mine"
    assert (tmp_path / "lr_find-2.png").is_file() and "wrote lr_find-2.png" in text
    assert "suggested lr" in text and "steep" in text and "stopped after" in text


@pytest.mark.parametrize(("argv", "expect"), [
    (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr 1 must be below --end-lr 0.1"),
    (["--steps", "0"], "--steps"),
    (["--model", "lenet6"], "lenet6"),
    (["-o", "plot.txt"], "not an image file name"),
])  # fmt: skip
def test_cli_bad_input_is_one_line(argv: list[str], expect: str, tmp_path, capsys) -> None:
    code = main(["lr-find", "-o", str(tmp_path / "x.png"), *argv] if "-o" not in argv else ["lr-find", *argv])
    err = capsys.readouterr().err
    assert code != 0 and expect in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
    assert not (tmp_path / "x.png").exists()


def test_train_lr_find_records_the_number(tmp_path, capsys) -> None:
    code = main(["train", "--lr", "find", "--model", "lenet1", "--epochs", "1", "--runs-dir", str(tmp_path),
                 "--name", "r", "--batch-size", "32"])  # fmt: skip
    assert code == 0
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert isinstance(cfg["lr"], float) and 0 < cfg["lr"] < 10
    assert cfg["lr_reason"].startswith(f"lr-find chose {cfg['lr']:g}")
    log = " ".join((tmp_path / "r" / "log.txt").read_text().split())
    assert f"lr {cfg['lr']:g}" in log and "lr: lr-find]" in log and "valley of the smoothed loss" in log
    # The record replays: the same number, and the reason stays with it.
    again = resolve_config(TrainConfig.from_dict({**cfg, "name": "r2"}))
    assert again.lr == cfg["lr"] and again.lr_reason == cfg["lr_reason"]
    assert resolve_config(TrainConfig.from_dict({**cfg, "lr": 0.5})).lr_reason is None  # not for another rate
    # The sweep trained a copy and put the random state back: the run is the one `--lr <the number>` makes.
    assert main(["train", "--config", str(tmp_path / "r" / "config.yaml"), "--name", "r2"]) == 0
    metrics = [(tmp_path / n / "metrics.csv").read_text().splitlines() for n in ("r", "r2")]
    assert [ln.rsplit(",", 1)[0] for ln in metrics[0]] == [
        ln.rsplit(",", 1)[0] for ln in metrics[1]
    ]  # but time_s


def test_find_is_asked_by_a_flag_or_a_config_file() -> None:
    assert lrf.wants_lr_find({}, {"lr": "find"}) and lrf.wants_lr_find({"lr": "find"}, {})
    assert not lrf.wants_lr_find({"lr": "find"}, {"lr": 0.1})  # a flag wins over the file
    assert not lrf.wants_lr_find({"lr": 0.1}, {}) and not lrf.wants_lr_find({}, {})


@pytest.mark.slow
def test_lr_find_trains_lenet5_within_a_point_of_the_default_recipe(tmp_path) -> None:
    """Acceptance: the lr-find suggestion trains LeNet-5 on digits to within 1 point of the default recipe."""
    epochs = 10
    found = cnnkit.train(
        model="lenet5", lr="find", epochs=epochs, runs_dir=str(tmp_path), name="found", quiet=True
    )
    default = cnnkit.train(model="lenet5", epochs=epochs, runs_dir=str(tmp_path), name="default", quiet=True)
    lr = yaml.safe_load((found.run_dir / "config.yaml").read_text())["lr"]
    print(
        f"lr-find lr {lr:g}: test {found.test_accuracy:.4f}; default recipe: test {default.test_accuracy:.4f}"
    )
    assert found.test_accuracy >= default.test_accuracy - 0.01, (
        lr,
        found.test_accuracy,
        default.test_accuracy,
    )
