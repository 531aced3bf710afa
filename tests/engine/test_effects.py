"""Every optimiser, schedule, loss and machine option of ``cnnkit train`` has its documented effect.

Most checks run the real :class:`~cnnkit.engine.loop.Trainer` (the loop ``cnnkit train`` runs) for one
to four epochs of a linear classifier or LeNet-5 on the real digits split, and watch what the loop
does: the learning rate the optimiser holds at every step (a global optimiser step hook), the
gradient norm it steps with, the dtype and memory format inside the forward pass, the recorded
losses. Expected values come from the formulas (checked against torch's own schedulers), not
from cnnkit's code.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from cnnkit.config import TrainConfig
from cnnkit.data import DatasetSplits, load_dataset
from cnnkit.engine.device import select_device
from cnnkit.engine.loop import Trainer
from cnnkit.engine.losses import MulticlassHinge, SquaredError, build_loss
from cnnkit.engine.optim import LRSchedule, build_optimizer
from cnnkit.models import create_model
from cnnkit.run import WeightsMeta

# ------------------------------------------------------------------------------------------ helpers


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    """scikit-learn's digits at 32 px with cnnkit's 70/15/15 split (1257 / 270 / 270 images)."""
    return load_dataset("digits", input_size=32)


def make_trainer(data: DatasetSplits, model: str = "linear", **options) -> Trainer:
    """A Trainer as ``cnnkit train`` builds it (same seed, same initial weights), without a run folder."""
    base = {"epochs": 1, "augment": "none", "optimizer": "sgd", "lr": 0.05, "warmup_epochs": 0.0, "device": "cpu"}
    cfg = TrainConfig.from_dict({**base, **options})
    c, h, w = data.image_shape
    torch.manual_seed(cfg.seed)
    net = create_model(model, num_classes=data.num_classes, in_chans=c, input_size=(h, w))
    meta = WeightsMeta(model=model, model_args={}, num_classes=data.num_classes, classes=data.classes,
                       input_size=[c, h, w], mean=list(data.mean), std=list(data.std))  # fmt: skip
    return Trainer(net, cfg, data, meta, None, select_device(cfg.device))


@contextlib.contextmanager
def optimizer_steps() -> Iterator[list[dict]]:
    """Record, at every optimiser step, each group's learning rate and the total gradient norm."""
    seen: list[dict] = []

    def hook(opt, args, kwargs) -> None:
        grads = [p.grad.detach().flatten() for g in opt.param_groups for p in g["params"] if p.grad is not None]
        seen.append({"lrs": [g["lr"] for g in opt.param_groups], "grad_norm": float(torch.cat(grads).norm())})

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def expected_factor(kind: str, step: int, spe: int, epochs: int, warmup_epochs: float = 0.0, step_size: int = 10,
                    gamma: float = 0.1) -> float:  # fmt: skip
    """The documented schedules as closed forms: multiplier of the base learning rate at optimiser step
    ``step`` (``spe`` steps per epoch). Warmup is linear from lr/100 to lr; the decay then spans the
    remaining steps."""
    warm, total = round(warmup_epochs * spe), epochs * spe
    if step < warm:
        return 0.01 + 0.99 * step / warm
    t, span = step - warm, total - warm
    if kind == "constant":
        return 1.0
    if kind == "step":  # divide by 1/gamma every step_size epochs (whole epochs since the start)
        return gamma ** ((step // spe) // step_size)
    if kind == "cosine":  # half a cosine from lr down to 0 at the end of training
        return 0.5 * (1 + math.cos(math.pi * t / span))
    if kind == "onecycle":  # up over the first 30% (or the warmup) from lr/25, cosine down to lr/1000
        up = 0 if warm else int(0.3 * span)
        if t < up:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / up))
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * (t - up) / (span - up)))
    raise ValueError(kind)


def cnnkit_trace(kind: str, spe: int, epochs: int, **kw) -> list[float]:
    cfg = TrainConfig(scheduler=kind, lr=1.0, epochs=epochs, **kw)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = LRSchedule(opt, cfg, spe)
    out = []
    for step in range(epochs * spe):
        s.set_step(step)
        out.append(opt.param_groups[0]["lr"])
    return out


def torch_trace(make, steps: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


# ------------------------------------------------------------------------------- schedules: formulas

SPE, EPOCHS = 7, 6  # 42 optimiser steps


def test_closed_forms_match_torchs_schedulers():
    """The formulas this file expects are torch's StepLR, CosineAnnealingLR and LinearLR warmup."""
    n = SPE * EPOCHS
    S = torch.optim.lr_scheduler
    refs = {
        ("step", 0): lambda o: S.StepLR(o, step_size=2 * SPE, gamma=0.5),
        ("cosine", 0): lambda o: S.CosineAnnealingLR(o, T_max=n),
        ("cosine", 2): lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.01, 1.0, total_iters=2 * SPE),
                                                    S.CosineAnnealingLR(o, T_max=n - 2 * SPE)], milestones=[2 * SPE]),
    }  # fmt: skip
    for (kind, warm), make in refs.items():
        formula = [expected_factor(kind, s, SPE, EPOCHS, warm, step_size=2, gamma=0.5) for s in range(n)]
        np.testing.assert_allclose(formula, torch_trace(make, n), rtol=1e-9, atol=1e-12, err_msg=f"{kind} {warm}")


@pytest.mark.parametrize(
    "kind, options",
    [
        ("constant", {}),
        ("constant", {"warmup_epochs": 2}),
        ("step", {"step_size": 2, "gamma": 0.5}),
        ("step", {"step_size": 2, "gamma": 0.5, "warmup_epochs": 1}),
        ("cosine", {}),
        ("cosine", {"warmup_epochs": 2}),
        ("cosine", {"warmup_epochs": 0.5}),  # round(3.5) = 4 warmup steps
        ("onecycle", {}),
        ("onecycle", {"warmup_epochs": 1}),
    ],
)
def test_every_schedule_follows_its_formula_at_every_step(kind, options):
    got = cnnkit_trace(kind, SPE, EPOCHS, **options)
    want = [expected_factor(kind, s, SPE, EPOCHS, **options) for s in range(SPE * EPOCHS)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_onecycle_shape():
    lrs = cnnkit_trace("onecycle", 10, 10)
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(1 / 25) and peak == 30 and lrs[peak] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1], strict=True))  # rises to the peak
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1 :], strict=True))  # then only falls
    # down to a thousandth of the peak at the end of the last step
    assert 1e-3 < lrs[-1] < 2e-3
    end = LRSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), TrainConfig(scheduler="onecycle", epochs=10), 10)
    assert end.factor(100) == pytest.approx(1e-3)


# ------------------------------------------------------------------ schedules: what the loop really uses


@pytest.mark.parametrize(
    "kind, options",
    [
        ("constant", {}),
        ("step", {"step_size": 1, "gamma": 0.5}),
        ("cosine", {"warmup_epochs": 1}),
        ("onecycle", {}),
    ],
)
def test_the_optimiser_steps_with_the_scheduled_rate(digits, kind, options):
    lr, epochs = 0.02, 3
    tr = make_trainer(digits, scheduler=kind, lr=lr, epochs=epochs, batch_size=256, **options)
    spe = len(tr.train_loader)
    assert spe == math.ceil(len(digits.train) / 256) == 5
    with optimizer_steps() as steps:
        state = tr.fit()
    assert len(steps) == epochs * spe
    for i, s in enumerate(steps):
        want = lr * expected_factor(kind, i, spe, epochs, **options)
        assert s["lrs"] == pytest.approx([want] * len(s["lrs"]), rel=1e-9), (i, s["lrs"], want)
    # metrics.csv's "lr" column: the rate of each epoch's first step, to 6 significant digits
    assert [row["lr"] for row in state.history] == pytest.approx(
        [steps[e * spe]["lrs"][0] for e in range(epochs)], rel=1e-5
    )


def test_plateau_divides_the_rate_when_validation_stalls(digits):
    # lr 1e-12 leaves every float32 weight unchanged, so val_acc repeats exactly: with patience 0 the
    # second epoch is already "no improvement" and every later epoch divides the rate by 1/gamma.
    lr = 1e-12
    tr = make_trainer(digits, scheduler="plateau", lr=lr, epochs=4, batch_size=512, monitor="val_acc",
                      plateau_patience=0, gamma=0.1)  # fmt: skip
    with optimizer_steps() as steps:
        state = tr.fit()
    assert len({row["val_acc"] for row in state.history}) == 1
    want = [lr, lr, lr / 10, lr / 100]
    assert [row["lr"] for row in state.history] == pytest.approx(want, rel=1e-5)  # rows keep 6 digits
    spe = len(tr.train_loader)
    assert [steps[e * spe]["lrs"][0] for e in range(4)] == pytest.approx(want, rel=1e-9)


# ------------------------------------------------------------------------------------------ optimisers


def _groups_by_decay(opt: torch.optim.Optimizer) -> dict[float, int]:
    return {g["weight_decay"]: sum(p.ndim > 1 for p in g["params"]) for g in opt.param_groups}


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_optimizer_class_and_hyper_parameters(name, cls):
    model = create_model("lenet5", num_classes=10, in_chans=1, input_size=32)
    opt = build_optimizer(model, TrainConfig(optimizer=name, lr=0.03, momentum=0.7, nesterov=True, weight_decay=0.02))
    assert type(opt) is cls
    assert all(g["lr"] == 0.03 for g in opt.param_groups)
    # L2 only on weight matrices and kernels; biases get none
    decay = _groups_by_decay(opt)
    assert decay == {0.02: 5, 0.0: 0}, decay
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    if name == "sgd":
        assert all(g["momentum"] == 0.7 and g["nesterov"] is True for g in opt.param_groups)
    plain = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.03, momentum=0.7, nesterov=False))
    assert all(g["nesterov"] is False and g["momentum"] == 0.7 for g in plain.param_groups)
    # Nesterov needs momentum: momentum 0 gives plain SGD rather than torch's error
    none = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.03, momentum=0.0, nesterov=True))
    assert all(g["nesterov"] is False and g["momentum"] == 0.0 for g in none.param_groups)


def _one_step_with_zero_gradient(name: str, **cfg) -> torch.Tensor:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    opt = build_optimizer(model, TrainConfig(optimizer=name, **cfg))
    model.weight.grad = torch.zeros_like(model.weight)
    opt.step()
    return model.weight.detach()[0, 0]


def test_weight_decay_acts_as_each_optimizer_defines_it():
    lr, wd = 0.1, 0.05
    # SGD (no momentum): w <- w - lr * wd * w
    assert _one_step_with_zero_gradient("sgd", lr=lr, momentum=0.0, weight_decay=wd) == pytest.approx(2 * (1 - lr * wd))
    # AdamW: decoupled, w <- w (1 - lr wd); the zero gradient itself moves nothing
    assert _one_step_with_zero_gradient("adamw", lr=lr, weight_decay=wd) == pytest.approx(2 * (1 - lr * wd))
    # Adam: L2 added to the gradient, which Adam normalises: the first step is lr whatever wd is
    assert _one_step_with_zero_gradient("adam", lr=lr, weight_decay=wd) == pytest.approx(2 - lr, rel=1e-5)
    assert _one_step_with_zero_gradient("adamw", lr=lr, weight_decay=0.0) == 2.0


def test_nesterov_momentum_update_rule():
    # Two SGD steps with a constant gradient g: v1 = g, v2 = m v1 + g; Nesterov steps with g + m v.
    lr, m, g = 0.1, 0.9, 1.0
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    opt = build_optimizer(model, TrainConfig(optimizer="sgd", lr=lr, momentum=m, nesterov=True, weight_decay=0.0))
    for _ in range(2):
        model.weight.grad = torch.full_like(model.weight, g)
        opt.step()
    v1, v2 = g, m * g + g
    assert model.weight.item() == pytest.approx(-lr * (g + m * v1) - lr * (g + m * v2))


# ------------------------------------------------------------------------------------------ L1 penalty


def test_l1_adds_l1_times_the_sum_of_absolute_weights_to_the_loss(digits):
    # lr 1e-12: no float32 weight moves, so both runs see the same weights on the same batches and
    # their training losses differ by exactly l1 * sum|W| (weight matrices only, not biases).
    l1 = 1e-3
    runs = {}
    for value in (0.0, l1):
        tr = make_trainer(digits, lr=1e-12, l1=value)
        runs[value] = (tr.fit().history[0]["train_loss"], tr.model)
    model = runs[l1][1]
    weights = sum(float(p.detach().double().abs().sum()) for p in model.parameters() if p.ndim > 1)
    biases = sum(float(p.detach().double().abs().sum()) for p in model.parameters() if p.ndim == 1)
    diff = runs[l1][0] - runs[0.0][0]
    assert diff == pytest.approx(l1 * weights, abs=3e-6)  # history rounds losses to 6 decimals
    assert l1 * biases > 30e-6  # including the biases would be visibly wrong


def test_l1_shrinks_the_weights(digits):
    sums = {}
    for l1 in (0.0, 0.01):
        tr = make_trainer(digits, lr=0.01, l1=l1, weight_decay=0.0, epochs=2)
        tr.fit()
        sums[l1] = sum(float(p.detach().abs().sum()) for p in tr.model.parameters() if p.ndim > 1)
    assert sums[0.01] < 0.8 * sums[0.0], sums


# ------------------------------------------------------------------------------------------------ losses


def smoothing_floor(eps: float, k: int) -> float:
    """The least cross-entropy against label-smoothed targets: the entropy of the target distribution."""
    hi, lo = 1 - eps + eps / k, eps / k
    return -(hi * math.log(hi) + (k - 1) * lo * math.log(lo))


def test_label_smoothing_floor():
    eps, k = 0.2, 10
    loss = build_loss("cross_entropy", label_smoothing=eps)
    y = torch.tensor([3])
    confident = torch.full((1, k), -20.0)
    confident[0, 3] = 20.0  # a perfectly confident, correct prediction
    floor = smoothing_floor(eps, k)
    assert loss(confident, y).item() >= floor
    assert build_loss("cross_entropy")(confident, y).item() < 1e-12  # without smoothing: no loss at all
    # the floor is reached exactly when the prediction is the smoothed target itself
    target = torch.full((1, k), eps / k)
    target[0, 3] += 1 - eps
    assert loss(target.log(), y).item() == pytest.approx(floor, rel=1e-6)
    for _ in range(20):
        assert loss(torch.randn(1, k) * 5, y).item() >= floor - 1e-6


def test_label_smoothing_in_training_and_unsmoothed_validation(digits):
    eps = 0.2
    floor = smoothing_floor(eps, 10)
    plain = make_trainer(digits, "linear", optimizer="adam", lr=3e-3, epochs=2)
    plain.fit()
    smooth = make_trainer(digits, "linear", optimizer="adam", lr=3e-3, epochs=2, label_smoothing=eps)
    history = smooth.fit().history
    assert plain.state.history[-1]["train_loss"] < floor  # confident enough for the floor to matter
    assert all(row["train_loss"] >= floor for row in history), (floor, history)
    # validation loss is plain cross-entropy, so it can (and does) go below the floor
    x, y = _val_batch(smooth)
    with torch.no_grad():
        val = nn.functional.cross_entropy(smooth.model.eval()(x).double(), y).item()
    assert history[-1]["val_loss"] == pytest.approx(val, abs=2e-6) and val < floor


def _val_batch(tr: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*tr.loader(tr.data.val), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_hinge_and_squared_error_by_hand():
    s = torch.tensor([[0.5, 1.0, 0.2], [2.0, 1.5, -3.0]], requires_grad=True)
    y = torch.tensor([0, 1])
    # hinge, margin 1: row 0: (1.0-0.5+1) + (0.2-0.5+1) = 2.2; row 1: (2.0-1.5+1) + max(0, -3.5) = 1.5
    h = MulticlassHinge()(s, y)
    assert h.item() == pytest.approx((2.2 + 1.5) / 2)
    h.backward()
    # d/ds: +1 for every violating class, minus their count at the true class; mean over 2 rows
    torch.testing.assert_close(s.grad, torch.tensor([[-2.0, 1.0, 1.0], [1.0, -1.0, 0.0]]) / 2)
    assert MulticlassHinge(margin=0.0)(torch.tensor([[3.0, 1.0]]), torch.tensor([0])).item() == 0.0
    # squared error against one-hot targets, summed over classes (not averaged, unlike nn.MSELoss)
    se = SquaredError()(s.detach(), y)
    row0 = (0.5 - 1) ** 2 + 1.0**2 + 0.2**2  # 1.29
    row1 = 2.0**2 + (1.5 - 1) ** 2 + 3.0**2  # 13.25
    assert se.item() == pytest.approx((row0 + row1) / 2)
    assert isinstance(build_loss("hinge"), MulticlassHinge) and isinstance(build_loss("squared_error"), SquaredError)


def _hinge_np(s: np.ndarray, y: np.ndarray) -> float:
    m = np.maximum(0.0, s - s[np.arange(len(y)), y][:, None] + 1.0)
    m[np.arange(len(y)), y] = 0.0
    return float(m.sum(1).mean())


def _squared_np(s: np.ndarray, y: np.ndarray) -> float:
    return float(((s - np.eye(s.shape[1])[y]) ** 2).sum(1).mean())


@pytest.mark.parametrize("loss, by_hand", [("hinge", _hinge_np), ("squared_error", _squared_np)])
def test_training_with_hinge_and_squared_error_records_that_loss(digits, loss, by_hand):
    tr = make_trainer(digits, "linear", loss=loss, optimizer="adam", lr=1e-3)
    row = tr.fit().history[0]
    x, y = _val_batch(tr)
    with torch.no_grad():
        scores = tr.model.eval()(x).double().numpy()
    assert row["val_loss"] == pytest.approx(by_hand(scores, y.numpy()), abs=2e-6)
    assert row["val_acc"] > 0.5  # and the model learned from it (chance: 0.1)


# ----------------------------------------------------------------------------------- gradient clipping


def test_grad_clip_bounds_the_norm_the_optimizer_steps_with(digits):
    bound = 0.05
    norms = {}
    for clip in (0.0, bound):
        tr = make_trainer(digits, "lenet5", grad_clip=clip)
        with optimizer_steps() as steps:
            tr.fit()
        norms[clip] = [s["grad_norm"] for s in steps]
    assert max(norms[0.0]) > 4 * bound  # unclipped gradients are larger: the bound does bite
    assert max(norms[bound]) <= bound * (1 + 1e-5), max(norms[bound])
    # a norm above the bound is scaled down to the bound, not zeroed
    assert min(norms[bound]) > 0.5 * bound


# --------------------------------------------------------------------------- mixed precision, memory format


def _watch_forward(tr: Trainer) -> list[dict]:
    """Inside the forward pass: autocast state and the dtype and layout of the second convolution's input."""
    seen: list[dict] = []
    conv2 = tr.model.features[3]
    assert isinstance(conv2, nn.Conv2d) and conv2.in_channels == 6

    def hook(module, args) -> None:
        x = args[0]
        seen.append({"autocast": torch.is_autocast_enabled("cpu"), "autocast_dtype": torch.get_autocast_dtype("cpu"),
                     "dtype": x.dtype, "channels_last": x.is_contiguous(memory_format=torch.channels_last),
                     "contiguous": x.is_contiguous()})  # fmt: skip

    conv2.register_forward_pre_hook(hook)
    return seen


@pytest.mark.parametrize("amp", ["on", "off", "auto"])
def test_amp_runs_the_forward_in_bfloat16_on_the_cpu(digits, amp):
    tr = make_trainer(digits, "lenet5", amp=amp, batch_size=256)
    seen = _watch_forward(tr)
    row = tr.fit().history[0]
    assert len(seen) == 5 + 1  # 5 training batches, 1 validation batch (evaluation takes 1024 small images at once)
    if amp == "on":  # CPU autocast supports bfloat16; fp16 loss scaling is not needed for it
        assert tr.amp == torch.bfloat16 and not tr.scaler.is_enabled()
        assert all(s["autocast"] and s["autocast_dtype"] == torch.bfloat16 and s["dtype"] == torch.bfloat16
                   for s in seen), seen  # fmt: skip
    else:  # auto: only on CUDA
        assert tr.amp is None
        assert all(not s["autocast"] and s["dtype"] == torch.float32 for s in seen), seen
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])


@pytest.mark.parametrize("setting", ["on", "off", "auto"])
def test_channels_last_puts_weights_and_activations_in_nhwc(digits, setting):
    tr = make_trainer(digits, "lenet5", channels_last=setting, batch_size=256)
    seen = _watch_forward(tr)
    tr.fit()
    kernel = tr.model.features[3].weight  # 16 x 6 x 5 x 5: the two layouts differ
    on = setting == "on"  # auto: only on CUDA
    assert tr.channels_last is on and tr.train_loader.channels_last is on
    assert kernel.is_contiguous(memory_format=torch.channels_last) is on and kernel.is_contiguous() is not on
    assert seen and all(s["channels_last"] is on and s["contiguous"] is not on for s in seen), seen
    # a model without convolutions is left alone
    assert make_trainer(digits, "linear", channels_last="on").channels_last is False


# ----------------------------------------------------------------------------------------------- device


def test_device_cpu_is_honoured_even_when_cuda_is_available(tmp_path, monkeypatch, capsys):
    from cnnkit.cli import main

    # Pretend a GPU is there: "auto" would pick it (and fail on this machine); "--device cpu" must not.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda"
    assert select_device("cpu") == torch.device("cpu")
    rc = main(["train", "--device", "cpu", "--model", "linear", "--epochs", "1", "--augment", "none",
               "--runs-dir", str(tmp_path), "--name", "cpu", "--quiet"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    import json

    run = tmp_path / "cpu"
    assert json.loads((run / "summary.json").read_text())["device"] == "cpu"
    assert yaml.safe_load((run / "config.yaml").read_text())["device"] == "cpu"


def test_device_cuda_without_a_gpu_is_refused(tmp_path, monkeypatch, capsys):
    from cnnkit.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["train", "--device", "cuda", "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "--device cuda" in err and "no CUDA GPU" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # no silent fallback to the CPU, and no run folder


def test_deterministic_kernels_without_loading_the_compiler():
    """--deterministic sets torch's flag; the compiler's config (1-2 s to import) only when compiling."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from cnnkit.engine.device import set_determinism\n"
        "set_determinism(True, torch.device('cpu'))\n"
        "assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "assert 'torch._inductor.config' not in sys.modules\n"
        "set_determinism(False, torch.device('cpu'))\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "set_determinism(True, torch.device('cpu'), compiled=True)\n"
        "import torch._inductor.config as c\n"
        "assert c.deterministic and torch.are_deterministic_algorithms_enabled()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
