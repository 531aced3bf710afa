"""torchvision state dicts load into cnnkit models (strict=True) and give the same outputs."""

from __future__ import annotations

import pytest
import torch
import torchvision

from cnnkit.models import create_model

# One member per torchvision-compatible family: (name, torchvision kwargs, input side).
FAMILIES = [
    ("alexnet", {}, 224),
    ("vgg11", {}, 224),
    ("googlenet", {"aux_logits": False, "transform_input": False, "init_weights": True}, 224),
    ("resnet18", {}, 224),
    ("densenet121", {}, 224),
    ("squeezenet1_1", {}, 224),
]


def _torchvision_model(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, **kw).eval()


@pytest.mark.parametrize(("name", "tv_kwargs", "size"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_loads_torchvision_weights_and_matches_outputs(name: str, tv_kwargs: dict, size: int, request) -> None:
    tv = _torchvision_model(name, **tv_kwargs)
    request.getfixturevalue("no_init")  # every weight of ours is overwritten by the load below
    ours = create_model(name, num_classes=1000, in_chans=3, input_size=size).eval()
    result = ours.load_state_dict(tv.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert got.shape == expected.shape == (1, 1000)
    assert expected.abs().max() > 0  # a zero output would make the comparison vacuous
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with torch.no_grad():  # the feature/head split is the same function
        torch.testing.assert_close(ours.forward_head(ours.forward_features(x)), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name",
    ["vgg11_bn", "vgg13", "vgg16_bn", "vgg19", "resnet34", "resnet50", "resnet101", "resnet152", "densenet161",
     "densenet169", "densenet201", "squeezenet1_0", "alexnet"],
)  # fmt: skip
def test_state_dict_keys_and_shapes_match(name: str, no_init: None) -> None:
    # Keys and shapes only (the outputs are compared above, one model per family); no_init keeps it cheap.
    tv = torchvision.models.get_model(name, weights=None)
    ours = create_model(name, num_classes=1000, in_chans=3, input_size=224)
    theirs = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs


def test_googlenet_aux_heads_and_transform_input_match_torchvision() -> None:
    tv = _torchvision_model("googlenet", aux_logits=True, transform_input=True, init_weights=True)
    ours = create_model("googlenet", aux_logits=True, transform_input=True)
    ours.load_state_dict(tv.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=0)
    # Training mode: same auxiliary outputs too (dropout off so both are deterministic).
    for m in (tv, ours):
        m.train()
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
    torch.manual_seed(0)
    a = tv(torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2)))
    b = ours(torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2)))
    for t_out, o_out in zip(a, b, strict=True):
        torch.testing.assert_close(o_out, t_out, atol=1e-4, rtol=1e-4)


def test_small_input_layout_differs_only_in_the_stem(no_init: None) -> None:
    big = create_model("resnet18", num_classes=10, input_size=224).state_dict()
    small = create_model("resnet18", num_classes=10, input_size=32).state_dict()
    assert big.keys() == small.keys()
    assert [k for k in big if big[k].shape != small[k].shape] == ["conv1.weight"]
