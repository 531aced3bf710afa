"""Optimisers, learning-rate schedules and losses are registries (issue 16): one decorated function adds
one, from outside the package, and ``--optimizer``/``--scheduler``/``--loss`` accept it and ``--help``
lists it."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import cnnkit
from cnnkit.cli import main
from cnnkit.config import DEFAULT_LR, LOSSES, OPTIMIZERS, SCHEDULERS, TrainConfig
from cnnkit.engine import SCHEDULES, Progress, register_loss, register_optimizer, register_schedule
from cnnkit.engine.losses import build_loss
from cnnkit.engine.optim import LRSchedule, build_optimizer
from cnnkit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------ what a user writes, outside cnnkit


class SignSGD(torch.optim.Optimizer):
    """A Lion-like toy: step by the sign of the gradient; decoupled weight decay."""

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": 0.0})

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.mul_(1 - g["lr"] * g["weight_decay"]).add_(p.grad.sign(), alpha=-g["lr"])


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.): cross-entropy weighted by (1 - p_true)^gamma."""

    calls = 0

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        FocalLoss.calls += 1
        logp = F.log_softmax(scores, 1).gather(1, target[:, None]).squeeze(1)
        return (-((1 - logp.exp()) ** self.gamma) * logp).mean()


@pytest.fixture
def custom() -> Iterator[None]:
    """Register an optimiser, a schedule and a loss the way a user would; unregister afterwards."""
    try:

        @register_optimizer("signsgd", default_lr=0.01, help="sign of the gradient (a test's toy)")
        def signsgd(param_groups, lr, cfg):
            return SignSGD(param_groups, lr)

        @register_schedule("linear_decay", help="straight down to 0 at the end (a test's)")
        def linear_decay(p: Progress) -> float:
            return 1 - p.fraction

        @register_loss("focal", help="focal loss, gamma 2 (a test's)")
        def focal(label_smoothing: float) -> nn.Module:
            return FocalLoss(gamma=2.0)

        yield
    finally:
        for reg, name in ((OPTIMIZERS, "signsgd"), (SCHEDULERS, "linear_decay"), (LOSSES, "focal")):
            if name in reg:
                reg.unregister(name)


def _steps_seen() -> tuple[list[tuple[type, float]], object]:
    seen: list[tuple[type, float]] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, a, k: seen.append((type(opt), opt.param_groups[0]["lr"]))
    )
    return seen, handle


def test_a_user_registered_optimizer_schedule_and_loss_train(custom, tmp_path):
    FocalLoss.calls = 0
    seen, handle = _steps_seen()
    try:
        result = cnnkit.train(model="linear", optimizer="signsgd", scheduler="linear_decay", loss="focal", epochs=2,
                              batch_size=256, augment="none", runs_dir=str(tmp_path), name="x", quiet=True)  # fmt: skip
    finally:
        handle.remove()
    cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert (cfg["optimizer"], cfg["scheduler"], cfg["loss"]) == ("signsgd", "linear_decay", "focal")
    assert cfg["lr"] == 0.01 and cfg["warmup_epochs"] == 0  # the optimiser's declared default rate
    # the custom optimiser did every step, at the rate the custom schedule gives
    n = len(seen)
    assert n == 2 * math.ceil(1257 / 256)
    assert all(cls is SignSGD for cls, _ in seen)
    assert [lr for _, lr in seen] == pytest.approx([0.01 * (1 - i / n) for i in range(n)], rel=1e-12)
    with open(result.run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.01, 0.01 * (1 - (n // 2) / n)])
    # the custom loss was used for training and validation, and the model learnt something
    assert FocalLoss.calls > n
    assert result.test["acc"] > 0.5


def test_the_cli_accepts_and_lists_what_is_registered(custom, tmp_path, capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("signsgd", "linear_decay", "focal", "sign of the gradient", "default lr 0.01"):
        assert name in out, name
    rc = main(["train", "--model", "linear", "--optimizer", "signsgd", "--scheduler", "linear_decay", "--loss",
               "focal", "--epochs", "1", "--augment", "none", "--runs-dir", str(tmp_path), "--name", "cli", "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    cfg = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert (cfg["optimizer"], cfg["scheduler"], cfg["loss"]) == ("signsgd", "linear_decay", "focal")


def test_unregistered_names_are_gone_again():
    # the fixture above unregistered its entries: other tests never see them
    assert "signsgd" not in OPTIMIZERS and "linear_decay" not in SCHEDULERS and "focal" not in LOSSES
    with pytest.raises(ConfigError, match="--optimizer 'signsgd' is not allowed"):
        TrainConfig(optimizer="signsgd").validate()


# ------------------------------------------------------------------ the built-in entries


def test_built_in_names_defaults_and_config_choices():
    assert list(OPTIMIZERS) == ["sgd", "adam", "adamw", "rmsprop", "adagrad"]
    assert dict(DEFAULT_LR) == {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adagrad": 1e-2}
    assert list(SCHEDULERS) == ["constant", "step", "plateau", "cosine", "linear", "onecycle"]
    assert list(LOSSES) == ["cross_entropy", "hinge", "squared_error"]
    # the config's choices are the registries themselves, not copies
    fields = TrainConfig.__dataclass_fields__
    assert (
        fields["optimizer"].metadata["choices"] is OPTIMIZERS and fields["loss"].metadata["choices"] is LOSSES
    )
    assert fields["scheduler"].metadata["choices"] is SCHEDULES


@pytest.mark.parametrize(
    "name, cls, lr", [("rmsprop", torch.optim.RMSprop, 1e-3), ("adagrad", torch.optim.Adagrad, 1e-2)]
)
def test_rmsprop_and_adagrad_train_on_digits(name, cls, lr, tmp_path):
    opt = build_optimizer(nn.Linear(3, 2), TrainConfig(optimizer=name, weight_decay=0.01))
    assert type(opt) is cls and [g["lr"] for g in opt.param_groups] == [lr, lr]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]  # no decay on the bias
    if name == "rmsprop":
        assert all(g["alpha"] == 0.99 and g["momentum"] == 0.0 for g in opt.param_groups)
    seen, handle = _steps_seen()
    try:
        result = cnnkit.train(model="linear", optimizer=name, epochs=1, augment="none", runs_dir=str(tmp_path),
                              name=name, quiet=True)  # fmt: skip
    finally:
        handle.remove()
    assert seen and all(c is cls for c, _ in seen)
    cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert cfg["optimizer"] == name and cfg["lr"] == lr
    assert math.isfinite(result.history[0]["train_loss"]) and result.test["acc"] > 0.5


def test_train_help_lists_every_optimizer_schedule_and_loss(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for reg in (OPTIMIZERS, SCHEDULERS, LOSSES):
        for e in reg.entries():
            assert f"  {e.name} " in out and e.help[:30] in out, e.name
    assert "rmsprop" in out and "default lr 0.01" in out  # adagrad's


@pytest.mark.parametrize("flag, typo, meant", [("--optimizer", "rmsprob", "rmsprop"), ("--scheduler", "cosin", "cosine"),
                                               ("--loss", "hinj", "hinge")])  # fmt: skip
def test_a_typo_gets_did_you_mean(flag, typo, meant, capsys, tmp_path):
    assert main(["train", flag, typo, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"did you mean '{meant}'" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_builders_name_an_unknown_entry():
    with pytest.raises(ConfigError, match="unknown loss 'hinj'") as e:
        build_loss("hinj")
    assert "did you mean 'hinge'" in str(e.value)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'"):
        build_optimizer(nn.Linear(2, 2), TrainConfig(optimizer="adamm"))
    with pytest.raises(ConfigError, match="unknown learning-rate schedule 'linaer'"):
        LRSchedule(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0), TrainConfig(scheduler="linaer"), 1)


# ------------------------------------------------------------------ registering: the contract


def test_registration_checks_names_defaults_and_duplicates():
    with pytest.raises(RuntimeError, match="registered twice"):
        register_loss("hinge")(lambda ls: nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="one word"):
        register_loss("my loss")
    with pytest.raises(ValueError, match="default_lr"):
        register_optimizer("zero", default_lr=0.0)
    assert "zero" not in OPTIMIZERS and "my loss" not in LOSSES


def test_a_registered_schedule_composes_with_warmup_and_can_follow_the_plateau():
    """Warmup comes first for every schedule; ``plateau=True`` gives a schedule the metric's stalls."""

    @register_schedule("cosine_plateau", plateau=True)
    def cosine_plateau(p: Progress) -> float:
        """cosine, also divided when --monitor stalls"""
        return p.plateau * 0.5 * (1 + math.cos(math.pi * p.fraction))

    try:
        assert (
            SCHEDULES.get("cosine_plateau").help == "cosine, also divided when --monitor stalls"
        )  # from the docstring
        cfg = TrainConfig(
            scheduler="cosine_plateau", lr=1.0, epochs=4, warmup_epochs=1, plateau_patience=0, gamma=0.5
        )
        s = LRSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), cfg, steps_per_epoch=10)
        assert (
            s.factor(0) == pytest.approx(0.01) and s.factor(10) == 1.0
        )  # the warmup ramp, then the schedule
        assert s.factor(25) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 30)))
        s.end_epoch(1.0)
        s.end_epoch(1.0)  # no improvement, patience 0: times gamma
        assert s.plateau_factor == 0.5 and s.factor(25) == pytest.approx(
            0.25 * (1 + math.cos(math.pi * 15 / 30))
        )
        plain = LRSchedule(
            torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), cfg.replace(scheduler="cosine"), 10
        )
        plain.end_epoch(1.0)
        plain.end_epoch(1.0)
        assert plain.state_dict() == {
            "plateau_factor": 1.0,
            "best": None,
            "bad_epochs": 0,
        }  # only plateau schedules track
    finally:
        SCHEDULES.unregister("cosine_plateau")


def test_a_schedule_returning_nonsense_is_refused():
    @register_schedule("broken", help="negative")
    def broken(p: Progress) -> float:
        return -1.0

    try:
        s = LRSchedule(
            torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), TrainConfig(scheduler="broken"), 1
        )
        with pytest.raises(ValueError, match="schedule 'broken' returned -1"):
            s.set_step(0)
    finally:
        SCHEDULES.unregister("broken")


def test_progress_measures_steps_after_the_warmup():
    p = Progress(step=25, steps_per_epoch=10, total=40, warmup=10, cfg=TrainConfig())
    assert (p.t, p.span, p.fraction) == (15, 30, 0.5)
    assert Progress(step=99, steps_per_epoch=10, total=40, warmup=10, cfg=TrainConfig()).fraction == 1.0
