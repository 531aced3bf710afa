"""Model recipes: options the user leaves unset take the model's recommended values, and only those."""

from __future__ import annotations

import pytest

from cnnkit.config import DEFAULT_LR, TrainConfig
from cnnkit.engine.train import recipe_of, resolve_config
from cnnkit.models import list_models, model_entry


def _resolved(**kw) -> TrainConfig:
    return resolve_config(TrainConfig.from_dict({"name": "r", **kw}))


@pytest.mark.parametrize("name", list_models())
def test_every_recipe_names_auto_options_with_valid_values(name: str) -> None:
    recipe = model_entry(name).recipe
    assert set(recipe) <= set(TrainConfig.auto_fields()), recipe
    TrainConfig.from_dict(recipe)  # values pass the same validation as flags


def test_unset_options_take_the_recipe_and_config_records_them() -> None:
    cfg = _resolved(model="vgg11_bn")
    assert (cfg.optimizer, cfg.lr, cfg.warmup_epochs) == ("sgd", DEFAULT_LR["sgd"], 1.0)
    plain = _resolved(model="vgg11")
    assert (plain.optimizer, plain.lr, plain.warmup_epochs) == ("adam", recipe_of("vgg11")["lr"], 0.0)
    # Models without a recipe keep the general defaults (config.GENERAL_RECIPE).
    assert recipe_of("lenet1") == {} and recipe_of("torchvision:resnet18") == {}
    base = _resolved(model="lenet1")
    assert (base.optimizer, base.lr, base.warmup_epochs, base.scheduler, base.label_smoothing, base.epochs,
            base.batch_size, base.weight_decay) == ("sgd", 0.05, 0.0, "cosine", 0.0, 30, 64, 5e-4)  # fmt: skip
    # The default model's recipe, tuned for time to accuracy (docs/recipe.md); the rest stays general.
    lenet = _resolved(model="lenet5")
    assert (lenet.optimizer, lenet.lr, lenet.scheduler, lenet.label_smoothing) == ("adamw", 6e-3, "linear", 0.1)
    assert (lenet.epochs, lenet.batch_size, lenet.weight_decay) == (30, 64, 5e-4)


def test_user_values_win_over_the_recipe() -> None:
    cfg = _resolved(model="vgg11_bn", warmup_epochs=0, lr=0.01)
    assert (cfg.warmup_epochs, cfg.lr) == (0.0, 0.01)
    # A recipe's lr belongs to its optimiser: switching to SGD gives SGD's default rate, not Adam's 3e-4.
    assert _resolved(model="vgg11", optimizer="sgd").lr == DEFAULT_LR["sgd"]
    assert _resolved(model="vgg11", optimizer="adam").lr == recipe_of("vgg11")["lr"]
    # Without a recipe, Adam gets Adam's default rate rather than SGD's 0.05.
    assert _resolved(model="lenet1", optimizer="adamw").lr == DEFAULT_LR["adamw"]
    # Every recipe field is taken from the flag when given: epochs, batch, schedule, smoothing, decay.
    mine = _resolved(model="lenet5", epochs=3, batch_size=32, scheduler="step", label_smoothing=0.0, weight_decay=0.0)
    assert (mine.epochs, mine.batch_size, mine.scheduler, mine.label_smoothing, mine.weight_decay) == (
        3, 32, "step", 0.0, 0.0)  # fmt: skip


def test_resolved_config_round_trips_through_yaml(tmp_path) -> None:
    cfg = _resolved(model="resnet18")
    cfg.to_yaml(tmp_path / "c.yaml")
    again = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert again == cfg and again.warmup_epochs == 1.0
