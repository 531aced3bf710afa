"""Losses, optimiser groups and learning-rate schedules behave as the lectures define them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.engine.losses import MulticlassHinge, SquaredError, build_loss
from cnnkit.engine.optim import LRSchedule, build_optimizer, l1_penalty, load_optimizer_state, param_groups


def test_hinge_matches_the_lecture_example():
    # CS231n / seed 000 worked example: scores for (cat, car, frog), true class cat.
    scores = torch.tensor([[3.2, 5.1, -1.7]])
    loss = MulticlassHinge()(scores, torch.tensor([0]))
    assert loss.item() == pytest.approx(max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1))  # 2.9
    scores = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    ref = sum(max(0.0, float(scores[i, j].detach() - scores[i, y[i]].detach() + 1)) for i in range(6) for j in range(4) if j != y[i]) / 6
    assert MulticlassHinge()(scores, y).item() == pytest.approx(ref)


def test_squared_error_on_one_hot_targets():
    s = torch.tensor([[0.2, 0.9], [0.1, 0.3]])
    y = torch.tensor([1, 0])
    expected = ((0.2**2 + 0.1**2) + (0.9**2 + 0.3**2)) / 2
    assert SquaredError()(s, y).item() == pytest.approx(expected)
    assert isinstance(build_loss("cross_entropy", 0.1), nn.CrossEntropyLoss)


def test_weight_decay_only_on_weights_and_lr_multipliers():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    groups = param_groups(m, 0.1, {"3.": 0.5})
    by = {(g["lr_mult"], g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in groups}
    assert by[(1.0, 0.1)] == 2 * 9  # conv kernel
    assert by[(1.0, 0.0)] == 2 + 2 + 2  # conv bias, bn weight and bias
    assert by[(0.5, 0.1)] == 24 and by[(0.5, 0.0)] == 3  # the linear layer, at half the rate
    cfg = TrainConfig(lr=0.2, weight_decay=0.1)
    opt = build_optimizer(m, cfg, {"3.": 0.5})
    assert sorted(g["lr"] for g in opt.param_groups) == [0.1, 0.1, 0.2, 0.2]
    assert l1_penalty(m.parameters()).item() == pytest.approx(
        sum(p.abs().sum().item() for p in m.parameters() if p.ndim > 1)
    )



@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad", "rmsprop"])
def test_fused_kernels_on_the_cpu_make_the_same_steps(name):
    """Where torch has a fused CPU kernel the optimiser uses it, and it moves the weights as the plain loop does."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    twin = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    twin.load_state_dict(m.state_dict())
    cfg = TrainConfig(optimizer=name, lr=0.01, weight_decay=0.01)
    opt = build_optimizer(m, cfg)
    assert bool(opt.defaults.get("fused")) == (name != "rmsprop")
    plain = build_optimizer(twin, cfg)
    for g in plain.param_groups:
        g["fused"] = None  # the same groups and settings, the default per-tensor loop
    x = torch.randn(4, 1, 6, 6)
    for _ in range(3):
        for model, o in ((m, opt), (twin, plain)):
            o.zero_grad()
            model(x).square().sum().backward()
            o.step()
    for a, b in zip(m.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_fused_checkpoint_resumes_where_there_is_no_fused_kernel():
    """Saved with the fused kernel (CPU), loaded where torch has none: the plain loop, and it steps."""
    from cnnkit.engine import optim

    m = nn.Linear(3, 2)
    saved = build_optimizer(m, TrainConfig(optimizer="adamw"))
    m(torch.randn(4, 3)).sum().backward()
    saved.step()
    state = saved.state_dict()
    assert state["param_groups"][0]["fused"]
    plain = optim._fused(torch.optim.AdamW, optim.param_groups(m, 0.0), devices=(), lr=1e-3)  # "no kernel here"
    load_optimizer_state(plain, state)
    assert not any(g["fused"] for g in plain.param_groups)
    plain.step()  # the plain loop takes the fused run's state
    fused = build_optimizer(m, TrainConfig(optimizer="adamw"))
    load_optimizer_state(fused, state)
    assert all(g["fused"] for g in fused.param_groups)


def test_parameters_off_the_fused_devices_keep_the_plain_loop():
    """torch checks a fused optimiser's device only at its first step: build_optimizer checks it up front."""
    for name in ("sgd", "adamw", "adagrad"):
        assert not build_optimizer(nn.Linear(3, 2, device="meta"), TrainConfig(optimizer=name)).defaults["fused"]


def _lrs(**kw) -> list[float]:
    cfg = TrainConfig(lr=1.0, epochs=10, **kw)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = LRSchedule(opt, cfg, steps_per_epoch=10)
    out = []
    for step in range(100):
        s.set_step(step)
        out.append(s.lr)
    return out


def test_schedules():
    assert set(_lrs(scheduler="constant")) == {1.0}
    step = _lrs(scheduler="step", step_size=3, gamma=0.1)
    assert step[29] == 1.0 and step[30] == pytest.approx(0.1) and step[60] == pytest.approx(0.01)
    cos = _lrs(scheduler="cosine")
    assert cos[0] == 1.0 and cos[50] == pytest.approx(0.5) and cos[99] < 0.001
    warm = _lrs(scheduler="cosine", warmup_epochs=2)
    assert warm[0] == pytest.approx(0.01) and warm[10] < warm[19] < 1.0 and warm[20] == 1.0
    one = _lrs(scheduler="onecycle")
    peak = max(range(100), key=one.__getitem__)
    assert 25 <= peak <= 31 and one[0] < 0.1 and one[99] < 0.01
    assert all(math.isfinite(v) and v > 0 for v in one)


def test_plateau_divides_by_ten_when_the_metric_stalls():
    cfg = TrainConfig(lr=1.0, scheduler="plateau", plateau_patience=2, gamma=0.1, monitor="val_loss")
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = LRSchedule(opt, cfg, steps_per_epoch=1)
    seen = []
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9]):
        s.set_step(epoch)
        seen.append(s.lr)
        s.end_epoch(loss)
    # three epochs without improvement (patience 2) -> divide by 10
    assert seen[:5] == [1.0] * 5 and seen[5] == pytest.approx(0.1)
    assert seen[8] == pytest.approx(0.1)
    state = s.state_dict()
    s2 = LRSchedule(opt, cfg, 1)
    s2.load_state_dict(state)
    s2.end_epoch(0.9)
    s2.set_step(9)
    assert s2.lr == pytest.approx(0.01)
