"""MAC and parameter totals agree with fvcore exactly, at 224 px.

fvcore traces the model with TorchScript and counts ATen ops; cnnkit counts torch functions during
a forward pass. Same conventions for conv/linear/batch norm/adaptive pooling, so they agree to the
MAC on these models, as the README's table says ("same as fvcore: yes, exactly").
"""

from __future__ import annotations

import pytest
import torch

from cnnkit.analyze import summary
from cnnkit.models import count_params, create_model

fvcore_nn = pytest.importorskip("fvcore.nn")


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "alexnet", "mobilenet_v1"])
def test_macs_and_params_agree_with_fvcore(name: str):
    ours = summary(name, input_size=224)
    model = create_model(name, num_classes=1000, input_size=224).eval()
    flops = fvcore_nn.FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    theirs = flops.total()  # fvcore's "flops" are MACs (one multiply-add = one)
    assert ours.totals.macs == theirs, (ours.totals.macs, theirs)
    assert ours.totals.params == fvcore_nn.parameter_count(model)[""] == count_params(model)
