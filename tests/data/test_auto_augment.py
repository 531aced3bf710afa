"""``--augment auto`` is chosen from the training images: no flips for chiral data, flips for photos."""

from __future__ import annotations

import pytest
import yaml

import cnnkit
from cnnkit.config import TrainConfig
from cnnkit.data import load_dataset
from cnnkit.data.auto_augment import Augment, auto_reason, choose_augment
from cnnkit.engine.train import resolve_config

from .image_folders import write_digit_folder, write_photo_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto-augment")
    return write_digit_folder(root / "digits", per_class=40), write_photo_folder(
        root / "photos", per_class=50
    )


@pytest.mark.slow
def test_digit_folder_gets_no_flips_and_says_why(folders, tmp_path, capsys):
    digits, _ = folders
    result = cnnkit.train(data=f"folder:{digits}", model="linear", epochs=1, input_size=16, batch_size=200,
                          runs_dir=str(tmp_path), name="d", cache=False)  # fmt: skip
    out = capsys.readouterr().out
    cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    aug = Augment.from_spec(cfg["augment"])
    assert not aug.flip and aug.translate >= 1 and aug.rotate > 0, cfg["augment"]
    assert not aug.jitter  # grey images
    assert cfg["augment_reason"].startswith(f"auto chose {cfg['augment']}: no flips: a probe tells the images from "
                                            "their mirror images")  # fmt: skip
    assert "so mirroring changes what they show" in out and f"augmentation  {cfg['augment']}" in out
    # A resumed run keeps the recorded spec (the probe does not run again).
    again = cnnkit.train(resume=result.run_dir, epochs=2, quiet=True)
    cfg2 = yaml.safe_load((again.run_dir / "config.yaml").read_text())
    assert (cfg2["augment"], cfg2["augment_reason"]) == (cfg["augment"], cfg["augment_reason"])


def test_photo_folder_gets_flips_and_colour_jitter(folders):
    _, photos = folders
    data = load_dataset(f"folder:{photos}", cache=False)
    choice = choose_augment(data)
    aug = Augment.from_spec(choice.spec)
    assert aug.flip and aug.jitter > 0 and not aug.rotate, choice
    assert aug.translate == 4  # 1/8 of 32 px
    assert choice.reason.startswith("flips: a probe cannot tell") and "colour jitter" in choice.reason
    assert 0.35 < choice.evidence["mirror_probe_accuracy"] < 0.6


def test_grey_photos_stored_as_rgb_get_no_colour_jitter(folders):
    _, photos = folders
    data = load_dataset(f"folder:{photos}", cache=False)
    grey = data.train.images.float().mean(1, keepdim=True).round().byte().expand(-1, 3, -1, -1).contiguous()
    data.train.images = grey
    choice = choose_augment(data.train)
    assert "flip" in choice.spec and "jitter" not in choice.spec and "no colour jitter" in choice.reason


def test_registered_digits_keep_their_augmentation_at_32_px():
    # The spec the registry used to hard-code for digits, now found from the images themselves.
    data = load_dataset("digits", input_size=32)
    choice = choose_augment(data)
    assert choice.spec == "translate=2,rotate=10,scale=0.1,elastic=1", choice
    assert choice.evidence["chiral"] and choice.evidence["mirror_probe_accuracy"] > 0.7


def test_too_few_images_take_the_safe_choice(folders):
    _, photos = folders
    data = load_dataset(f"folder:{photos}", cache=False)
    choice = choose_augment(data.train.subset(list(range(10))))
    assert "flip" not in choice.spec and "too few" in choice.reason


def test_explicit_augment_wins_and_a_replayed_reason_survives_only_for_its_spec():
    cfg = resolve_config(TrainConfig.from_dict({"name": "r", "augment": "flip,translate=1"}))
    assert cfg.augment == "translate=1,flip" and cfg.augment_reason is None
    assert (
        resolve_config(TrainConfig.from_dict({"name": "r"})).augment == "auto"
    )  # resolved once data is loaded
    recorded = auto_reason("translate=2", "no flips: ...")
    replay = resolve_config(
        TrainConfig.from_dict({"name": "r", "augment": "translate=2", "augment_reason": recorded})
    )
    assert replay.augment_reason == recorded
    changed = resolve_config(
        TrainConfig.from_dict({"name": "r", "augment": "none", "augment_reason": recorded})
    )
    assert changed.augment == "none" and changed.augment_reason is None


def test_augment_reason_is_no_train_flag(capsys):
    from cnnkit.cli import main

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--augment-reason" not in out and "SUPPRESS" not in out and "--augment" in out


def test_the_mirror_probe_runs_once_per_set_of_images(tmp_path, monkeypatch):
    """Remembered in the process and on disk ($CNNKIT_CACHE): the next run on the same data skips it."""
    import torch

    from cnnkit.data import auto_augment as aa

    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(aa, "_remembered", {})
    calls = []
    real = aa.mirror_probe
    monkeypatch.setattr(aa, "mirror_probe", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (60, 1, 12, 12), dtype=torch.uint8, generator=g)
    labels = torch.arange(60) % 3
    first = aa.remembered_mirror_probe(images, labels, seed=0)
    assert first == aa.remembered_mirror_probe(images, labels, seed=0) and len(calls) == 1
    aa._remembered.clear()  # a new process: the file answers
    assert aa.remembered_mirror_probe(images, labels, seed=0) == first and len(calls) == 1
    aa.remembered_mirror_probe(images, labels, seed=1)  # another seed is another probe
    aa.remembered_mirror_probe(images.flip(-1), labels, seed=0)  # other images too
    assert len(calls) == 3
    for f in tmp_path.glob("mirror-probe-*.json"):  # a damaged file is computed again, not trusted
        f.write_text("{not json")
    aa._remembered.clear()
    assert aa.remembered_mirror_probe(images, labels, seed=0) == first and len(calls) == 4


def test_no_cache_keeps_the_probe_answer_out_of_the_cache_folder(tmp_path, monkeypatch):
    import torch

    from cnnkit.data import auto_augment as aa

    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(aa, "_remembered", {})
    images = torch.randint(0, 256, (40, 1, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    aa.remembered_mirror_probe(images, torch.arange(40) % 2, seed=0, disk=False)
    assert not list(tmp_path.iterdir())
