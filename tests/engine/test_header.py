"""The training header says what a run trains with and where each setting came from; caps and names."""

from __future__ import annotations

import re

import pytest

from cnnkit.config import TrainConfig
from cnnkit.engine.header import base_dataset, capped_resume, epochs_cap, intro_lines, resume_lines
from cnnkit.engine.train import recipe_of, resolve_config
from cnnkit.errors import ConfigError
from cnnkit.run import RunDir


def _intro(config=None, **overrides) -> list[str]:
    from cnnkit.config import config_mapping

    file_opts = config_mapping(config)
    raw = TrainConfig.from_dict({**file_opts, **overrides})
    cfg = resolve_config(raw)
    return intro_lines(config, file_opts, overrides, raw, cfg, recipe_of(cfg.model))


def _line(lines: list[str], what: str) -> str:
    return next(ln for ln in lines if ln.strip().startswith(what))


def test_defaults_say_default_and_that_the_model_has_no_recipe(monkeypatch):
    monkeypatch.delenv("CNNKIT_MAX_EPOCHS", raising=False)
    lines = _intro(name="x", model="lenet1")
    assert re.search(
        r"optimiser +sgd lr 0\.05, Nesterov momentum 0\.9, weight decay 0\.0005 +\[default\]", lines[0]
    )
    assert _line(lines, "schedule").endswith("[default]") and "cosine over 30 epoch(s) of batch 64, no warmup" in lines[1]
    assert _line(lines, "loss").endswith("[default]") and "cross-entropy " in _line(lines, "loss")
    assert _line(lines, "augmentation").endswith("[default for digits]")
    assert any("lenet1 has no training recipe" in ln for ln in lines)


def test_the_default_model_says_which_settings_its_recipe_chose(monkeypatch):
    monkeypatch.delenv("CNNKIT_MAX_EPOCHS", raising=False)
    lines = _intro(name="x")  # lenet5, tuned for time to accuracy (docs/recipe.md)
    assert re.search(r"optimiser +adamw lr 0\.006, weight decay 0\.0005 +\[lenet5's recipe\]", lines[0])
    assert _line(lines, "schedule").endswith("[scheduler: lenet5's recipe; others default]")
    assert "linear over 30 epoch(s) of batch 64" in _line(lines, "schedule")
    assert re.search(r"loss +cross-entropy, label smoothing 0\.1 +\[loss: default, label-smoothing: lenet5's recipe\]",
                     _line(lines, "loss"))  # fmt: skip
    assert not any("no training recipe" in ln for ln in lines)
    lines = _intro(name="x", label_smoothing=0.0, lr=0.01)  # a flag wins over the recipe, and says so
    assert _line(lines, "loss").endswith("[loss: default, label-smoothing: flag]")
    assert "adamw lr 0.01" in lines[0] and lines[0].endswith("[optimizer: lenet5's recipe, lr: flag]")


def test_flags_files_and_recipes_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_MAX_EPOCHS", raising=False)
    lines = _intro(name="x", optimizer="adam")  # lenet5's recipe names adamw: adam gets its own default rate
    assert _line(lines, "optimiser").endswith("[optimizer: flag, lr: default]")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("scheduler: step\nwarmup_epochs: 2\naugment: none\n")
    lines = _intro(str(recipe), name="x")
    assert _line(lines, "schedule").endswith("[scheduler, warmup-epochs: recipe.yaml; others default]") and "2 warmup epoch(s)" in lines[1]
    assert _line(lines, "augmentation").endswith("[recipe.yaml]")
    lines = _intro(name="x", model="vgg11")  # its recipe: Adam 3e-4
    assert _line(lines, "optimiser").endswith("[vgg11's recipe]") and "adam lr 0.0003" in lines[0]
    assert not any("no training recipe" in ln for ln in lines)


def test_subset_data_keeps_its_base_datasets_defaults(monkeypatch):
    monkeypatch.delenv("CNNKIT_MAX_EPOCHS", raising=False)
    assert base_dataset("subset:digits?classes=0,1,2") == "digits" and base_dataset("digits") == "digits"
    cfg = resolve_config(TrainConfig(data="subset:digits?classes=0,1,2", model="resnet18", name="x"))
    plain = resolve_config(TrainConfig(model="resnet18", name="y"))
    assert cfg.input_size == plain.input_size == 32 and cfg.augment == plain.augment  # not 224 px, not flips


def test_epochs_cap_is_applied_recorded_and_checked(monkeypatch):
    monkeypatch.setenv("CNNKIT_MAX_EPOCHS", "2")
    assert resolve_config(TrainConfig(name="x", epochs=30)).epochs == 2
    assert resolve_config(TrainConfig(name="x", epochs=1)).epochs == 1
    assert any("capped at 2 (of 30)" in ln for ln in _intro(name="x"))
    assert capped_resume({"epochs": 60}, {"epochs": 30}) == {"epochs": 32}  # at most 2 more than config.yaml
    assert capped_resume({"epochs": 31}, {"epochs": 30}) == {"epochs": 31}
    monkeypatch.setenv("CNNKIT_MAX_EPOCHS", "0")
    with pytest.raises(ConfigError, match="CNNKIT_MAX_EPOCHS='0' must be a whole number >= 1"):
        epochs_cap()


@pytest.mark.parametrize(
    ("data", "tail"),
    [
        ("digits", "-lenet5-digits"),
        (
            "subset:digits?classes=5,6,7,8,9&per_class=10&val_split=0.15&test_split=0.15&seed=0",
            "-lenet5-digits-5-6-7-8-9",
        ),
        ("folder:~/photos/", "-lenet5-photos"),
        ("csv:labels.csv", "-lenet5-labels-csv"),
    ],
)
def test_default_run_names_are_readable(data, tail):
    name = RunDir.new_name("lenet5", data)
    assert re.fullmatch(r"\d{8}-\d{6}" + re.escape(tail), name), name


def test_a_folder_of_small_images_gets_the_small_input_size(tmp_path, monkeypatch):
    """Like registered CIFAR/MNIST, a folder of 8-63 px images trains at 32 px, not upsampled to 224."""
    from PIL import Image

    monkeypatch.delenv("CNNKIT_MAX_EPOCHS", raising=False)
    for side, folder in ((32, "small"), (96, "large")):
        for cls in ("a", "b"):
            (tmp_path / folder / cls).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (side, side), (i * 40, 0, 0)).save(tmp_path / folder / cls / f"{i}.png")
    small = resolve_config(TrainConfig(data=f"folder:{tmp_path / 'small'}", model="resnet18", name="x"))
    large = resolve_config(TrainConfig(data=f"folder:{tmp_path / 'large'}", model="resnet18", name="y"))
    assert (small.input_size, large.input_size) == (32, 224)
    assert resolve_config(TrainConfig(data=f"folder:{tmp_path / 'small'}", name="z")).input_size == 32  # lenet5's own
    # A missing folder is left to the data loader's one-line error, not guessed at here.
    assert resolve_config(TrainConfig(data=f"folder:{tmp_path / 'nope'}", model="resnet18", name="w")).input_size == 224


def test_a_resume_that_changes_the_length_says_the_schedule_is_replanned():
    cfg = TrainConfig.from_dict({"epochs": 20, "scheduler": "cosine"})
    same = resume_lines("runs/r", 15, cfg, 20, 5.46e-4)
    assert same == ["resuming runs/r: 15 epoch(s) done, training epochs 16-20"]
    longer = resume_lines("runs/r", 15, TrainConfig.from_dict({"epochs": 30, "scheduler": "cosine"}), 20, 7.32e-3)
    assert longer[1] == "  (the cosine schedule is re-planned over 30 epochs instead of 20: epoch 16 starts at lr 0.00732)"
