"""Fine-tuning: sources (run, torchvision state dict), unfreezing, resuming, and clear errors."""

from __future__ import annotations

import csv
import json
import socket

import pytest
import torch
import torchvision

from cnnkit.errors import CheckpointError, ConfigError
from cnnkit.run import read_weights
from cnnkit.transfer import finetune

SMALL = {"classes": [5, 6, 7, 8, 9], "per_class": 6, "val_per_class": 2, "batch_size": 10, "augment": "none",
         "quiet": True}  # fmt: skip


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(fh)]


def test_unfreezing_trains_the_backbone_at_the_lower_rate(source_04, runs_dir):
    src = read_weights(source_04 / "best.safetensors")[0]
    r = finetune(from_run=source_04, unfreeze_after=1, backbone_lr_mult=0.1, name="unfreeze", runs_dir=runs_dir,
                 epochs=2, **SMALL)  # fmt: skip
    after = read_weights(r.run_dir / "last.safetensors")[0]
    assert not torch.equal(src["features.0.weight"], after["features.0.weight"])  # trained in epoch 2
    log = (r.run_dir / "log.txt").read_text()
    assert "epoch 2: unfroze 2,572 parameters" in log and "0.1 x the learning rate" in log


def test_resuming_a_finetune_run_replays_it_exactly(source_04, runs_dir):
    # Straight 3 epochs (unfreezing after 1) versus 1 epoch, resumed to 2 (crosses the unfreeze), resumed to 3.
    # A constant learning rate, so stopping at epoch 1 of 1 is the same as at epoch 1 of 3.
    kw = {"from_run": source_04, "unfreeze_after": 1, "runs_dir": runs_dir, "scheduler": "constant", **SMALL}
    straight = finetune(name="straight", epochs=3, **kw)
    part = finetune(name="parts", epochs=1, **kw)
    finetune(resume=part.run_dir, epochs=2, quiet=True)
    resumed = finetune(resume=part.run_dir, epochs=3, quiet=True)
    assert _rows(resumed.run_dir) == _rows(straight.run_dir)
    a = read_weights(straight.run_dir / "last.safetensors")[0]
    b = read_weights(resumed.run_dir / "last.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["finetune"]["source"] == str(source_04)


def test_torchvision_state_dict_fine_tunes_offline_with_grey_input(tmp_path, runs_dir, monkeypatch):
    """torchvision resnet18 (RGB, 1000 classes) -> our resnet18 on 1-channel digits, through --weights."""
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18_random.pth"
    torch.save(tv.state_dict(), path)

    def no_network(*a, **k):
        raise AssertionError("fine-tuning from a local file must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    # small_input=False keeps torchvision's 7x7 stride-2 stem at 32 px, so every weight has a place.
    r = finetune(weights=path, model="resnet18", model_args={"small_input": False}, input_size=32,
                 unfreeze_after="never", name="tv", runs_dir=runs_dir, epochs=1, **SMALL)  # fmt: skip
    ft = json.loads((r.run_dir / "finetune.json").read_text())
    assert ft["input_conv"].startswith("conv1.weight: 3 -> 1 input channels")
    state = read_weights(r.run_dir / "last.safetensors")[0]
    ref = tv.state_dict()
    # Grey pixel g = R = G = B, so summing the RGB kernels keeps every response: exactly what we stored.
    assert torch.allclose(state["conv1.weight"], ref["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(state["layer4.1.conv2.weight"], ref["layer4.1.conv2.weight"])  # frozen, untouched
    assert state["fc.weight"].shape == (5, 512)
    side = json.loads((r.run_dir / "best.json").read_text())
    assert side["source"].startswith("fine-tuned from weights file resnet18_random.pth (sha256 ")


def test_bad_sources_and_options_fail_before_any_training(source_04, tmp_path, runs_dir):
    with pytest.raises(ConfigError, match="exactly one source"):
        finetune(runs_dir=runs_dir, **SMALL)
    with pytest.raises(ConfigError, match="exactly one source"):
        finetune(from_run=source_04, pretrained=True, model="resnet18", runs_dir=runs_dir, **SMALL)
    with pytest.raises(ConfigError, match="need --model"):
        finetune(weights=tmp_path / "x.pth", runs_dir=runs_dir, **SMALL)
    with pytest.raises(CheckpointError, match="does not exist"):
        finetune(weights=tmp_path / "x.pth", model="lenet5", runs_dir=runs_dir, **SMALL)
    with pytest.raises(ConfigError, match="holds a 'lenet5'"):
        finetune(from_run=source_04, model="resnet20", runs_dir=runs_dir, **SMALL)
    with pytest.raises(ConfigError, match="not a freeze policy"):
        finetune(from_run=source_04, freeze="most", runs_dir=runs_dir, **SMALL)
    with pytest.raises(ConfigError, match="unfreeze-after"):
        finetune(from_run=source_04, unfreeze_after="soon", runs_dir=runs_dir, **SMALL)
    with pytest.raises(CheckpointError, match="no pretrained weights for 'lenet5'"):
        finetune(pretrained=True, model="lenet5", runs_dir=runs_dir, **SMALL)
    # A weights file from another architecture is refused by the strict load, naming the keys.
    torch.save({"fc.weight": torch.zeros(3, 4)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="do not fit model 'lenet5'"):
        finetune(weights=tmp_path / "other.pth", model="lenet5", runs_dir=runs_dir, name="bad", **SMALL)
    assert not (tmp_path / "runs" / "bad").exists()  # a rejected run leaves no folder
    with pytest.raises(CheckpointError, match="not a fine-tune run"):
        finetune(resume=source_04)


def test_pretrained_uses_torchvision_weights_and_their_normalisation(runs_dir, monkeypatch):
    """--pretrained, with the download replaced by a local random state dict (no network in tests)."""
    import cnnkit.models.weights as w
    from cnnkit.models.registry import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    asked = []
    monkeypatch.setattr(w, "pretrained_weights", lambda name, progress=False: asked.append(name) or dict(state))
    r = finetune(pretrained=True, model="resnet18", model_args={"small_input": False}, input_size=32,
                 unfreeze_after="never", name="pre", runs_dir=runs_dir, epochs=1, **SMALL)  # fmt: skip
    assert asked == ["resnet18"]
    side = json.loads((r.run_dir / "best.json").read_text())
    assert side["source"] == "fine-tuned from torchvision's ResNet18_Weights.IMAGENET1K_V1 weights"
    # Grey inputs scaled as the summed-RGB first layer expects: the channel average of ImageNet's statistics.
    assert side["mean"] == pytest.approx([sum(IMAGENET_MEAN) / 3]) and side["std"] == pytest.approx([sum(IMAGENET_STD) / 3])
