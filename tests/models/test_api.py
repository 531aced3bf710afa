"""Registry behaviour, family options, and torchvision/timm models through create_model."""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.models import create_model, list_models
from cnnkit.models.inception import InceptionOutputs, inception_loss

FAMILIES = {"linear", "lenet", "alexnet", "vgg", "inception", "resnet", "densenet", "mobilenet", "squeezenet",
            "stn"}


def test_every_family_is_registered() -> None:
    from cnnkit.models import model_entry

    assert {model_entry(n).family for n in list_models()} == FAMILIES
    for name in ("lenet1", "zfnet", "vgg19_bn", "googlenet", "preact_resnet18", "resnet110", "se_resnet50",
                 "densenet201", "mobilenet_v1", "squeezenet1_1"):  # fmt: skip
        assert name in list_models()


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelError) as e:
        create_model("resnet19")
    assert "resnet18" in str(e.value)
    with pytest.raises(ModelError, match="squeezenet1_1"):
        create_model("squeezenet11")


def test_unknown_argument_lists_the_valid_ones() -> None:
    with pytest.raises(ModelError, match="width_mult"):
        create_model("mobilenet_v1", widthmult=0.5)


def test_googlenet_training_output_plain_by_default_and_aux_on_request() -> None:
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    plain = create_model("googlenet", num_classes=5, input_size=32).train()
    assert isinstance(plain(x), torch.Tensor)
    aux = create_model("googlenet", num_classes=5, input_size=32, aux_logits=True).train()
    out = aux(x)
    assert isinstance(out, InceptionOutputs)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 5)
    inception_loss(out, y).backward()
    assert aux.aux1.fc2.weight.grad is not None and aux.aux2.fc2.weight.grad is not None
    aux.eval()
    assert isinstance(aux(x), torch.Tensor)  # eval mode never returns the auxiliary outputs
    aux.reset_classifier(3)
    aux.train()
    assert all(t.shape == (2, 3) for t in aux(x))


def test_alexnet_original_has_lrn_and_overlapping_pooling() -> None:
    model = create_model("alexnet", num_classes=10, input_size=224, original=True)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds.count("LocalResponseNorm") == 2
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping: window > stride
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [96, 256, 384, 384, 256]


def test_zfnet_first_layer_is_7x7_stride_2() -> None:
    conv = create_model("zfnet", num_classes=10, input_size=224).features[0]
    assert conv.kernel_size == (7, 7) and conv.stride == (2, 2)


def test_resnet_dilation_keeps_resolution(no_init: None) -> None:
    plain = create_model("resnet18", num_classes=10, input_size=224).eval()
    dilated = create_model("resnet18", num_classes=10, input_size=224, dilation=True).eval()
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        assert plain.forward_features(x).shape[-1] == 7
        assert dilated.forward_features(x).shape[-1] == 28  # output stride 8 instead of 32
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in dilated.parameters())


def test_vgg_pooling_choices_and_cifar_head() -> None:
    for pool in ("max", "avg", "lp"):
        model = create_model("vgg11", num_classes=10, in_chans=1, input_size=28, pool=pool)
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model.info.classifier == "classifier.0"
    with pytest.raises(ModelError, match="pooling"):
        create_model("vgg11", num_classes=10, input_size=28, pool="median")


def test_resnet_shortcut_validation() -> None:
    with pytest.raises(ModelError, match="shortcut"):
        create_model("resnet20", num_classes=10, shortcut="C")


def test_preact_resnet_blocks_start_with_batchnorm() -> None:
    model = create_model("preact_resnet18", num_classes=10, input_size=32)
    first = next(iter(model.layer2[0].children()))
    assert isinstance(first, nn.BatchNorm2d)


# ---- torchvision: and timm: names ----


def test_torchvision_model_through_create_model() -> None:
    model = create_model("torchvision:resnet18", num_classes=10)
    assert model.info.classifier == "fc" and model.info.input_size == (3, 224, 224)
    assert model.info.name == "torchvision:resnet18"
    # Attributes, not a wrapper: the state dict keeps torchvision's keys.
    assert model.state_dict().keys() == torchvision.models.resnet18(num_classes=10).state_dict().keys()
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 2, 2)
        torch.testing.assert_close(model.forward_head(feats), model(x))
    model.reset_classifier(4)
    assert model(x).shape == (2, 4) and model.info.num_classes == 4


@pytest.mark.parametrize(("name", "classifier"), [("squeezenet1_1", "classifier.1"), ("mobilenet_v2", "classifier.1"),
                                                  ("googlenet", "fc")])  # fmt: skip
def test_torchvision_grey_inputs_and_classifier_paths(name: str, classifier: str) -> None:
    model = create_model(f"torchvision:{name}", num_classes=3, in_chans=1).eval()
    assert model.info.classifier == classifier
    assert model.info.mean == (0.5,)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
    model.train()
    assert isinstance(model(torch.randn(2, 1, 64, 64)), torch.Tensor)  # googlenet: no aux tuple by default


def test_unknown_torchvision_name() -> None:
    with pytest.raises(ModelError, match="resnet18"):
        create_model("torchvision:resnet19")


def test_timm_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(ModelError, match="pip install timm"):
        create_model("timm:resnet18")


def test_timm_model_when_installed() -> None:
    pytest.importorskip("timm")
    model = create_model("timm:resnet18", num_classes=5, in_chans=1)
    assert model.info.classifier == "fc" and model.info.mean == (0.5,)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)
    model.reset_classifier(3)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3) and model.info.num_classes == 3
