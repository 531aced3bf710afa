"""Freezing is real: frozen weights and batch-norm statistics are bit-identical after fine-tuning."""

from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.errors import ConfigError
from cnnkit.run import read_weights
from cnnkit.transfer import FreezePolicy, apply_freeze, finetune, frozen_bn_eval
from cnnkit.transfer.freeze import weight_layers

DATA = {"classes": list(range(10)), "per_class": 10, "val_per_class": 2}


@pytest.fixture(scope="module")
def bn_source(tmp_path_factory):
    """A resnet20 state dict (10 classes) whose batch-norm statistics are far from their defaults."""
    torch.manual_seed(0)
    model = cnnkit.create_model("resnet20", num_classes=10, in_chans=1, input_size=32)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("src") / "resnet20.pth"
    torch.save(model.state_dict(), path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def _finetune(bn_source, runs_dir, name, freeze):
    path, _ = bn_source
    r = finetune(weights=path, model="resnet20", freeze=freeze, unfreeze_after="never", name=name, runs_dir=runs_dir,
                 epochs=1, batch_size=32, augment="none", quiet=True, **DATA)  # fmt: skip
    return r, read_weights(r.run_dir / "last.safetensors")[0]


def test_all_conv_leaves_every_frozen_tensor_bit_identical(bn_source, runs_dir):
    _, before = bn_source
    r, after = _finetune(bn_source, runs_dir, "frozen", "all-conv")
    body = [k for k in before if not k.startswith("fc.")]
    assert any("running_mean" in k for k in body)
    for k in body:  # weights, biases, running means/vars and batch counters alike
        assert torch.equal(before[k], after[k]), k
    assert after["fc.weight"].shape == (10, 64)  # new head for the 10 selected classes
    # The head did train (otherwise "unchanged" above would prove nothing).
    reset = cnnkit.create_model("resnet20", num_classes=10, in_chans=1, input_size=32)
    assert not torch.equal(after["fc.weight"], reset.fc.weight.detach())
    assert r.summary["finetune"]["freeze_report"]["frozen_params"] == sum(before[k].numel() for k in body
                                                                         if "running" not in k and "num_batches" not in k)


def test_lower_n_freezes_only_the_lower_layers_and_their_batch_norm(bn_source, runs_dir):
    _, before = bn_source
    _, after = _finetune(bn_source, runs_dir, "lower", "lower:3")  # conv1, layer1.0.conv1, layer1.0.conv2 (+ BN)
    frozen = ("conv1.", "bn1.", "layer1.0.conv1.", "layer1.0.bn1.", "layer1.0.conv2.", "layer1.0.bn2.")
    for k in before:
        if k.startswith(frozen):
            assert torch.equal(before[k], after[k]), k
    # Above them, training in train mode moves weights and running statistics: the check can fail.
    assert not torch.equal(before["layer3.2.conv2.weight"], after["layer3.2.conv2.weight"])
    assert not torch.equal(before["layer1.1.bn1.running_mean"], after["layer1.1.bn1.running_mean"])


def test_frozen_bn_eval_keeps_only_frozen_norm_layers_in_eval_mode():
    model = cnnkit.create_model("vgg11_bn", num_classes=3, in_chans=1, input_size=32)
    apply_freeze(model, "lower:2")
    frozen_bn_eval(model)
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.training for _, m in bns[:2]] == [False, False]
    assert all(m.training for _, m in bns[2:]) and model.training


def test_policies_parse_and_refuse_nonsense():
    assert str(FreezePolicy.parse("LOWER:2")) == "lower:2"
    for bad in ("lower:0", "lower:x", "top:3", "conv"):
        with pytest.raises(ConfigError):
            FreezePolicy.parse(bad)
    model = cnnkit.create_model("lenet5", num_classes=5)
    assert [n for n, _ in weight_layers(model)] == ["features.0", "features.3", "classifier.1", "classifier.3",
                                                    "classifier.5"]  # fmt: skip
    with pytest.raises(ConfigError, match="would freeze every layer"):
        apply_freeze(model, "lower:5")
    report = apply_freeze(model, "all-conv")  # LeNet-5: the two convolutions; the three FC layers train
    assert report.frozen_layers == ["features.0", "features.3"] and report.frozen_params == 156 + 2416
