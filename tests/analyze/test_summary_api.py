"""The summary object: depth folding, totals, batch and dtype, exports, inputs it accepts, errors."""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnkit
from cnnkit.analyze import ModelSummary, compare_arch, summary
from cnnkit.errors import CheckpointError, ConfigError, ModelError
from cnnkit.models import create_model


@pytest.fixture(scope="module")
def resnet18() -> ModelSummary:
    return summary("resnet18")


def _sums(s: ModelSummary) -> tuple[int, int, int]:
    return sum(r.params for r in s.rows), sum(r.macs for r in s.rows), sum(r.act_elems for r in s.rows)


@pytest.mark.parametrize("depth", [None, 0, 1, 2, 3])
def test_rows_add_up_to_the_totals_at_every_depth(depth):
    s = summary("resnet18", depth=depth)
    t = s.totals
    assert _sums(s) == (t.params, t.macs, t.activations)
    if depth == 0:
        assert [r.name for r in s.rows] == ["input", "(model)"]
    if depth == 1:
        assert [r.name for r in s.rows] == ["input", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                                            "layer4", "avgpool", "fc"]  # fmt: skip
        assert s.row("layer2").folded and s.row("layer2").output_shape == (128, 28, 28)
        assert s.row("layer2").rf == summary("resnet18").row("layer2.1.relu (2)").rf


def test_shared_relu_calls_get_their_own_rows(resnet18):
    # torchvision's BasicBlock calls one ReLU module twice.
    names = [r.name for r in resnet18.rows]
    assert "layer1.0.relu" in names and "layer1.0.relu (2)" in names


def test_functional_layers_in_a_forward_get_rows():
    # DenseNet pools with F.adaptive_avg_pool2d in forward_head (no module): still a row, still counted.
    s = summary("densenet121")
    row = s.row("adaptive_avg_pool2d()")
    assert (
        row.type == "F.adaptive_avg_pool2d" and row.output_shape == (1024, 1, 1) and row.rf.kind == "global"
    )
    assert _sums(s)[1] == s.totals.macs


def test_batch_dtype_and_memory_figures(resnet18):
    s = summary("resnet18", batch=8, dtype="float16")
    t, t1 = s.totals, resnet18.totals
    assert t.macs == t1.macs and t.activations == t1.activations  # per image, whatever the batch
    d = t.to_dict()
    assert d["macs_batch"] == 8 * t.macs and d["flops_batch"] == 16 * t.macs
    assert t.bytes_per_element == 2 and t.act_bytes == t1.act_bytes // 2
    assert d["act_bytes_forward_batch"] == 8 * t.act_bytes
    assert t.train_bytes_batch == t.param_bytes + t.grad_bytes + 8 * 2 * t.act_bytes
    assert s.dtype == "float16" and "batch of 8" in str(s)


def test_frozen_parameters_are_reported_and_have_no_gradient_memory():
    model = create_model("lenet5")
    for p in model.features.parameters():
        p.requires_grad_(False)
    s = summary(model)
    frozen = sum(p.numel() for p in model.features.parameters())
    assert s.totals.frozen == frozen and s.totals.trainable == s.totals.params - frozen
    assert s.totals.grad_bytes == 4 * s.totals.trainable
    assert s.row("features.0").frozen == 156 and s.row("features.0").trainable == 0
    assert "frozen" in str(s)


def test_exports(resnet18):
    d = json.loads(resnet18.to_json())
    assert d["model"] == "resnet18" and d["input_size"] == [3, 224, 224]
    assert d["totals"]["params"] == 11_689_512 and len(d["rows"]) == len(resnet18.rows)
    assert d["rows"][1]["rf"] == {"kind": "local", "size": [7, 7], "jump": [2, 2], "start": [0, 0]}
    rows = list(csv.DictReader(io.StringIO(resnet18.to_csv())))
    assert rows[-1]["name"] == "TOTAL" and int(rows[-1]["macs"]) == resnet18.totals.macs
    assert (
        rows[1]["name"] == "conv1" and rows[1]["rf_h"] == "7" and rows[1]["note"].startswith("(224-7+6)/2+1")
    )
    md = resnet18.to_markdown()
    assert "| layer | type | output |" in md and "| conv1 | Conv2d | 64x112x112 |" in md
    text = str(resnet18)
    assert "layer4.1.conv2" in text and "11,689,512" in text and "global" in text


def test_default_input_and_classes_come_from_the_registry():
    small = summary("lenet5")
    assert small.input_size == (1, 32, 32) and small.rows[-1].output_shape == (10,)  # digits: 10 classes
    assert summary("vgg16", depth=1).rows[-1].output_shape == (1000,)
    assert summary("resnet20", num_classes=100).rows[-1].output_shape == (100,)
    assert summary("resnet18", input_size="3x96x128").input_size == (3, 96, 128)
    assert summary("resnet18", input_size=160).input_size == (3, 160, 160)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("resnet20", {}), ("googlenet", {"input_size": 16}), ("densenet121", {"input_size": 16}),
     ("mobilenet_v1", {"input_size": 32}), ("se_resnet18", {"input_size": 16}), ("squeezenet1_1", {"input_size": 64}),
     ("alexnet", {"input_size": 32, "original": True, "split_gpus": True})],
)  # fmt: skip
def test_meta_device_pass_equals_a_real_cpu_pass(name, kwargs):
    # By name, the model is built and run on the meta device (shapes only); a module runs for real.
    size = kwargs.pop("input_size", None)
    real = summary(create_model(name, num_classes=10, input_size=size, **kwargs))
    if kwargs:  # summary() builds by name without extra arguments: compare module vs module on meta
        with torch.device("meta"):
            meta = summary(create_model(name, num_classes=10, input_size=size, **kwargs))
    else:
        meta = summary(name, input_size=size, num_classes=10)

    def key(s: ModelSummary) -> list[tuple]:
        return [(r.name, r.output_shape, r.params, r.macs, r.act_elems, r.rf, r.note) for r in s.rows]

    assert key(meta) == key(real)
    assert meta.totals == real.totals


def test_lenet5_classic_custom_layers():
    # Custom layers (subsampling with trainable coefficients, a partially connected conv, RBF units).
    model = create_model("lenet5", classic=True)
    s = summary(model)
    assert s.totals.params == 60_000 + 2 * 16 + 2 * 6 - 44  # the docstring's table, S2/S4 included
    assert s.row("features.c3").kind == "conv" and s.row("features.s2").kind == "pool"
    assert s.row("features.c5").rf.size == (32, 32)  # C5's units see the whole (padded) 32x32 input


def test_run_folder(tmp_path):
    from cnnkit.run import WeightsMeta, save_weights

    model = create_model("lenet5", num_classes=3, input_size=(28, 28))
    meta = WeightsMeta(model="lenet5", model_args={}, num_classes=3, classes=["a", "b", "c"], input_size=[1, 28, 28],
                       mean=[0.5], std=[0.5])  # fmt: skip
    save_weights(model, tmp_path / "best.safetensors", meta)
    s = summary(tmp_path)
    assert s.input_size == (1, 28, 28) and s.rows[-1].output_shape == (3,)
    assert s.model.startswith("lenet5") and s.totals.params == sum(p.numel() for p in model.parameters())
    with pytest.raises(ConfigError, match="num-classes"):
        summary(tmp_path, num_classes=10)


def test_errors_name_the_bad_value(tmp_path):
    with pytest.raises(ModelError, match="resnet"):
        summary("resnet19")
    with pytest.raises(ConfigError, match="3xax4"):
        summary("resnet18", input_size="3xax4")
    with pytest.raises(ConfigError, match="dtype"):
        summary("resnet18", dtype="float8")
    with pytest.raises(ConfigError, match="batch"):
        summary("resnet18", batch=0)
    with pytest.raises(ModelError, match="does not run on a 3x8x8 input"):
        summary("alexnet", input_size=(3, 8, 8), num_classes=10)
    with pytest.raises(CheckpointError):
        summary(tmp_path)  # a folder without weights
    with pytest.raises(ConfigError, match="input size"):
        summary(nn.Sequential(nn.Conv2d(1, 1, 3)))  # a plain module does not know its input


def test_public_api_and_compare():
    assert cnnkit.summary is summary
    c = compare_arch(["lenet5", "resnet20"])
    d = c.to_dict()
    assert [m["model"] for m in d["models"]] == ["lenet5", "resnet20"]
    assert d["models"][1]["RF of final features"]["size"] == [81, 81]
    assert "parameters" in str(c) and c.to_csv().startswith("metric,lenet5,resnet20")


class FunctionalOps(nn.Module):
    """Operations written between modules, in the forms the meta-device shortcuts must get right."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        g = torch.sigmoid(self.gate(F.adaptive_avg_pool2d(y, 1)))
        z = torch.cat([y * g, 1 + y, y - y.mean((2, 3), keepdim=True)], dim=-3)  # broadcasting, reflected ops
        z.relu_()
        z += torch.cat((y, y, y), 1)
        z = F.max_pool2d(z, 3, 2, padding=1) + F.avg_pool2d(z, 3, 2, padding=1, ceil_mode=True)
        return F.linear(torch.flatten(z, 1), torch.ones(5, z[0].numel()))


def test_functional_ops_on_meta_match_the_cpu():
    model = FunctionalOps()
    real = summary(model, input_size=(3, 15, 15))
    meta = summary(copy.deepcopy(model).to("meta"), input_size=(3, 15, 15))
    assert [(r.name, r.output_shape, r.macs, r.rf) for r in meta.rows] == [
        (r.name, r.output_shape, r.macs, r.rf) for r in real.rows
    ]
    assert real.rows[-1].name == "linear()" and real.rows[-1].output_shape == (5,)
