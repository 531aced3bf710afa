"""airbench94 (issue 13, item 9) on a CPU at tiny size: the patch whitening, the recipe through ``cnnkit.train``,
flags over the recipe, ``--compile`` and ``--tta``, and the GPU benchmark's smoke test.

The images are natural photographs (random 32x32 crops of scikit-image's photos, four classes), so the
whitening meets real patch statistics; the network is narrowed to widths 8/16/16 to train in seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import cnnkit
from cnnkit.config import TrainConfig
from cnnkit.data import Normalize
from cnnkit.data.views import shift, tta_views
from cnnkit.engine import compiled
from cnnkit.engine.callbacks import Callback
from cnnkit.engine.loop import Trainer
from cnnkit.engine.train import load_data_for, resolve_augment, resolve_config
from cnnkit.errors import ConfigError
from cnnkit.models import create_model, model_entry
from cnnkit.models.airbench import CIFAR_MEAN, CIFAR_STD, RECIPE, WHITEN_EPS, AirbenchNet
from cnnkit.run import WeightsMeta, read_weights

from ..data.image_folders import photo_crops, write_photo_folder

NARROW = {"widths": [8, 16, 16]}
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_cifar.py"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photo_folder(tmp_path_factory.mktemp("photos"), per_class=30)


@pytest.fixture(scope="module")
def recipe_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> cnnkit.TrainResult:
    """airbench94 with its whole recipe (10 epochs of one 1024-batch each here), only narrower."""
    runs = tmp_path_factory.mktemp("runs")
    return cnnkit.train(model="airbench94", data=f"folder:{photos}", model_args=NARROW, runs_dir=str(runs),
                        name="ab", cache=False, quiet=True)  # fmt: skip


def _normalised_photos() -> torch.Tensor:
    imgs, _ = photo_crops(per_class=30)
    return Normalize(CIFAR_MEAN, CIFAR_STD)(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous())


def _patch_moments(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Second moments of the first (positive) half of the whitening responses over every patch, and all responses."""
    with torch.no_grad():
        z = model.whiten(x) - model.whiten.bias.view(1, -1, 1, 1)
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    half = z[:, : z.shape[1] // 2]
    return half.T @ half / len(half), z


def _whitened_variances(x: torch.Tensor) -> np.ndarray:
    """l / (l + eps), ascending, for the eigenvalues l of the 2x2-patch covariance, computed independently
    of the model with NumPy's sliding windows."""
    patches = np.lib.stride_tricks.sliding_window_view(x.numpy(), (2, 2), axis=(2, 3))  # N C 31 31 2 2
    patches = patches.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 12).astype(np.float64)
    eig = np.linalg.eigvalsh(patches.T @ patches / len(patches))
    return np.sort(eig / (eig + WHITEN_EPS))


# ---------------------------------------------------------------------------- the whitening layer
def test_whitened_patches_have_identity_covariance() -> None:
    x = _normalised_photos()
    model = create_model("airbench94", num_classes=4, **NARROW)
    model.init_from_data(x, eps=0.0)  # exact whitening
    cov, z = _patch_moments(model, x)
    torch.testing.assert_close(cov, torch.eye(12, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(z[:, 12:], -z[:, :12])  # the second half: the negated filters
    # With airbench's eps the responses stay decorrelated; each direction keeps l / (l + eps) of unit variance.
    model.init_from_data(x)
    cov, _ = _patch_moments(model, x)
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 2e-3, off.abs().max()
    expected = _whitened_variances(x)
    np.testing.assert_allclose(np.sort(torch.diag(cov).numpy()), expected, atol=2e-3)
    assert expected[0] < 0.9  # these photos have flat directions, where eps matters
    assert not model.whiten.weight.requires_grad  # frozen: the whitening is kept as initialised


def test_init_from_data_rejects_other_channels() -> None:
    model = create_model("airbench94", num_classes=4, **NARROW)
    with pytest.raises(cnnkit.errors.ModelError, match="3 x H x W"):
        model.init_from_data(torch.zeros(4, 1, 32, 32))


def test_min_size_and_grey_input() -> None:
    model = create_model("airbench94", num_classes=3, in_chans=1, input_size=9, **NARROW).eval()
    assert model.info.min_size == 9 and model.whiten.out_channels == 8  # 2 x 1 channel x 2 x 2
    assert model(torch.zeros(2, 1, 9, 9)).shape == (2, 3)


# ---------------------------------------------------------------------------- the recipe, end to end
def test_recipe_trains_and_config_records_it(recipe_run: cnnkit.TrainResult) -> None:
    cfg = yaml.safe_load((recipe_run.run_dir / "config.yaml").read_text())
    for key, value in RECIPE.items():
        assert cfg[key] == value, (key, cfg[key], value)
    assert recipe_run.epochs_run == 10 and cfg["compile"] == "auto"
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in recipe_run.history)
    # It learns: the last epoch's training loss is below the first's (label smoothing keeps it above 0).
    assert recipe_run.history[-1]["train_loss"] < recipe_run.history[0]["train_loss"]


def test_training_used_the_data_whitening(recipe_run: cnnkit.TrainResult) -> None:
    """The engine called init_from_data: the saved (frozen) filters whiten the run's own training patches."""
    cfg = resolve_config(TrainConfig.from_yaml(recipe_run.run_dir / "config.yaml"))
    data = load_data_for(cfg)  # the run's split; all its training images (< 5,000) were the sample
    model = create_model("airbench94", num_classes=4, **NARROW)
    model.load_state_dict(read_weights(recipe_run.run_dir / "best.safetensors")[0])
    x = Normalize(data.mean, data.std)(data.train.images)
    cov, _ = _patch_moments(model, x)
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 2e-3, off.abs().max()
    np.testing.assert_allclose(np.sort(torch.diag(cov).numpy()), _whitened_variances(x), atol=2e-3)


def test_whitening_is_set_for_a_new_run_only(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init_from_data runs once when a run starts; a resumed run keeps its checkpoint's filters."""
    calls: list[tuple[int, ...]] = []
    original = AirbenchNet.init_from_data

    def counted(self: AirbenchNet, images: torch.Tensor, eps: float = WHITEN_EPS) -> None:
        calls.append(tuple(images.shape))
        original(self, images, eps)

    monkeypatch.setattr(AirbenchNet, "init_from_data", counted)
    opts = {"model": "airbench94", "data": f"folder:{photos}", "model_args": NARROW, "batch_size": 64,
            "cache": False, "quiet": True}  # fmt: skip
    r = cnnkit.train(runs_dir=str(tmp_path), name="r", epochs=1, **opts)
    assert len(calls) == 1 and calls[0][1:] == (3, 32, 32)  # every training image of the split (< 5,000)
    cnnkit.train(resume=r.run_dir, epochs=2, quiet=True)
    assert len(calls) == 1


def test_tta_score_is_recorded_and_matches_cnnkit_eval(recipe_run: cnnkit.TrainResult) -> None:
    test = recipe_run.summary["test"]
    tta = test["tta"]
    assert tta["views"] == "flip+shift" and tta["n"] == test["n"] > 0
    assert 0.0 <= tta["acc"] <= 1.0 and tta["loss"] > 0
    saved = json.loads((recipe_run.run_dir / "summary.json").read_text())["test"]["tta"]
    assert saved == pytest.approx(tta)
    # cnnkit eval's TTA (views of the uint8 images, normalised afterwards) gives the same numbers as the
    # training loop's (views of the normalised batch): mirror images and reflected shifts commute with it.
    ev = cnnkit.evaluate(recipe_run.run_dir, tta="flip+shift", write=False)
    assert ev["n"] == tta["n"] and ev["acc"] == pytest.approx(tta["acc"])
    assert ev["loss"] == pytest.approx(tta["loss"], rel=1e-3)


@pytest.mark.parametrize(
    ("key", "value"),
    [("epochs", 3), ("batch_size", 64), ("optimizer", "adam"), ("lr", 0.01), ("weight_decay", 0.0),
     ("scheduler", "cosine"), ("warmup_epochs", 0.0), ("label_smoothing", 0.0), ("tta", "none")],
)  # fmt: skip
def test_every_flag_overrides_the_recipe(key: str, value: object) -> None:
    assert set(RECIPE) == {"epochs", "batch_size", "optimizer", "lr", "weight_decay", "scheduler", "warmup_epochs",
                           "label_smoothing", "tta"}  # fmt: skip
    cfg = resolve_config(TrainConfig.from_dict({"model": "airbench94", "name": "r", key: value}))
    assert getattr(cfg, key) == value
    for other, recipe_value in RECIPE.items():  # the rest still from the recipe (lr goes with its optimiser)
        if other != key and not (key == "optimizer" and other == "lr"):
            assert getattr(cfg, other) == recipe_value, other
    assert model_entry("airbench94").recipe == RECIPE


def test_tta_views_of_normalised_batches_equal_normalised_views() -> None:
    imgs = torch.randint(0, 256, (3, 3, 9, 7), dtype=torch.uint8)
    norm = Normalize(CIFAR_MEAN, CIFAR_STD)
    for a, b in zip(tta_views(norm(imgs), "flip+shift"), tta_views(imgs, "flip+shift"), strict=True):
        torch.testing.assert_close(a, norm(b))
    x = torch.randn(2, 3, 6, 5)  # airbench's shifted views: reflect-pad by 1, crop at (0, 0) and (2, 2)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    torch.testing.assert_close(shift(x, 1, 1), padded[..., :6, :5])
    torch.testing.assert_close(shift(x, -1, -1), padded[..., 2:, 2:])
    assert len(tta_views(x, "flip+shift")) == 6


# ---------------------------------------------------------------------------- --compile
def _trainer(photos: Path, **over: object) -> Trainer:
    cfg = resolve_config(TrainConfig.from_dict({"model": "airbench94", "data": f"folder:{photos}", "cache": False,
                                                "model_args": NARROW, "batch_size": 32, "augment": "none", **over}))  # fmt: skip
    data = load_data_for(cfg)
    cfg = resolve_augment(cfg, data)
    c, h, w = data.image_shape
    model = create_model("airbench94", num_classes=data.num_classes, in_chans=c, input_size=(h, w), **NARROW)
    meta = WeightsMeta(model="airbench94", model_args=NARROW, num_classes=data.num_classes, classes=data.classes,
                       input_size=[c, h, w], mean=list(data.mean), std=list(data.std))  # fmt: skip
    return Trainer(model, cfg, data, meta, None, torch.device("cpu"))


def test_compile_auto_and_off_leave_the_cpu_step_uncompiled(photos: Path) -> None:
    assert not compiled.use_compile(torch.device("cpu"), "auto")
    assert compiled.use_compile(torch.device("cuda"), "auto") and compiled.use_compile(
        torch.device("cpu"), "on"
    )
    assert not compiled.use_compile(torch.device("cuda"), "off")
    for setting in ("auto", "off"):
        t = _trainer(photos, compile=setting)
        assert t.net is t.model and not t.compile_pending


def _failing_backend(gm: torch.fx.GraphModule, example_inputs: list) -> None:
    raise RuntimeError("no C++ compiler found (simulated)\nsecond line of a long report")


def test_compile_failure_on_is_one_clear_error(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "BACKEND", _failing_backend)
    t = _trainer(photos, compile="on")
    x, y = next(iter(t.train_loader))
    with pytest.raises(ConfigError) as e:
        t.train_step(x, y)
    assert "--compile on: torch.compile does not work on this machine" in e.value.message
    assert "no C++ compiler found" in e.value.message and "\n" not in e.value.message
    assert "--compile off" in e.value.hint


def test_compile_failure_on_auto_falls_back_with_a_note(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled, "BACKEND", _failing_backend)
    monkeypatch.setattr(
        "cnnkit.engine.loop.use_compile", lambda device, setting: setting != "off"
    )  # as on CUDA
    t = _trainer(photos, compile="auto")
    notes: list[str] = []
    monkeypatch.setattr(t.reporter, "print", notes.append)
    x, y = next(iter(t.train_loader))
    loss, _ = t.train_step(x, y)
    assert torch.isfinite(loss) and t.net is t.model and not t.compile
    assert len(notes) == 1 and notes[0].startswith("note: torch.compile does not work on this machine")
    t.train_step(x, y)  # later steps run plainly, without trying again
    assert len(notes) == 1


@pytest.mark.slow  # Inductor's first compile on one CPU core: ~14 s with a cold cache (airbench94: ~65 s), ~3 s warm
def test_compile_on_trains_on_this_cpu_or_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real torch.compile on the CPU, through cnnkit.train (the smallest model: compiling is the cost here)."""
    import torch._inductor.config as inductor_config

    # One compiler thread: no pool of compiler processes on a shared core.
    monkeypatch.setattr(inductor_config, "compile_threads", 1)
    seen: dict[str, object] = {}

    class Spy(Callback):
        def on_fit_end(self, trainer: Trainer) -> None:
            seen["net"] = type(trainer.net).__name__

    try:
        r = cnnkit.train(model="linear", data="subset:digits?classes=0,1,2", runs_dir=str(tmp_path), epochs=1,
                         batch_size=1024, augment="none", compile="on", quiet=True, callbacks=[Spy()])  # fmt: skip
    except ConfigError as e:  # a machine without a working compiler: the clear line
        assert e.message.startswith("--compile on: torch.compile does not work on this machine")
        return
    assert seen["net"] == "OptimizedModule"  # the compiled step trained the epoch
    assert torch.isfinite(torch.tensor(r.history[0]["train_loss"])) and r.test_accuracy > 0.5
    saved = read_weights(r.run_dir / "best.safetensors")[0]
    assert not any("_orig_mod" in k for k in saved)  # the plain model was saved, not the compiled wrapper


# ---------------------------------------------------------------------------- benchmarks/gpu_cifar.py
def _bench_module():
    spec = importlib.util.spec_from_file_location("gpu_cifar", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_benchmark_tiny_smoke_test(capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench_module().main(["--tiny", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    run = out["runs"][0]
    assert out["tiny"] and len(run["curve"]) == 2 and run["tta"]["views"] == "flip+shift"
    assert 0.0 <= out["final_acc_mean"] <= 1.0 and out["device"].startswith("CPU")


def test_gpu_benchmark_says_when_cifar10_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _bench_module().main(["--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: CIFAR-10 is not in") and "--data-root" in err and "\n" not in err
