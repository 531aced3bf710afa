"""Loading weight files and torchvision's pretrained weights (no network)."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torchvision

from cnnkit.errors import CheckpointError
from cnnkit.models import create_model
from cnnkit.models import weights as W


def _model(num_classes: int = 10, seed: int = 0, name: str = "resnet20"):
    torch.manual_seed(seed)
    return create_model(name, num_classes=num_classes, in_chans=1, input_size=32).eval()


def _same_outputs(a, b) -> bool:
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_round_trip(tmp_path, suffix: str) -> None:
    src, dst = _model(seed=0), _model(seed=1)
    assert not _same_outputs(src, dst)
    path = W.save_weights(src, tmp_path / f"w{suffix}")
    report = W.load_weights(dst, path)
    assert report.loaded == len(src.state_dict()) and not report.missing
    assert _same_outputs(src, dst)


@pytest.mark.parametrize("wrap", ["state_dict", "model"])
def test_wrapped_and_prefixed_checkpoints(tmp_path, wrap: str) -> None:
    src, dst = _model(seed=0), _model(seed=1)
    state = {f"module.{k}": v for k, v in src.state_dict().items()}  # as saved from DataParallel
    torch.save({wrap: state, "epoch": 3, "best_acc": torch.tensor(0.9), "optimizer": {"lr": 0.1}}, tmp_path / "ck.pth")
    W.load_weights(dst, tmp_path / "ck.pth")
    assert _same_outputs(src, dst)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        W.load_weights(_model(), tmp_path / "nope.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file(tmp_path, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"\x00garbage, not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="cannot read"):
        W.load_weights(_model(), path)


def test_truncated_file(tmp_path) -> None:
    path = W.save_weights(_model(), tmp_path / "w.pth")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        W.load_weights(_model(), path)


class _Evil:
    pass


def test_pickled_objects_are_refused(tmp_path) -> None:
    torch.save({"weights": _Evil()}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        W.load_weights(_model(), tmp_path / "obj.pth")


def test_class_count_mismatch_explains_and_skip_classifier_loads_backbone(tmp_path) -> None:
    src = _model(num_classes=10)
    path = W.save_weights(src, tmp_path / "ten.safetensors")
    dst = _model(num_classes=3, seed=1)
    with pytest.raises(CheckpointError) as e:
        W.load_weights(dst, path)
    msg = str(e.value)
    assert "fc.weight: file (10, 64) vs model (3, 64)" in msg and "--num-classes" in msg
    report = W.load_weights(dst, path, skip_classifier=True)
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(dst.conv1.weight, src.conv1.weight)
    assert dst(torch.randn(1, 1, 32, 32)).shape == (1, 3)


def test_other_architecture_lists_missing_and_unexpected_keys(tmp_path) -> None:
    path = W.save_weights(_model(name="resnet20"), tmp_path / "r20.pth")
    with pytest.raises(CheckpointError) as e:
        W.load_weights(_model(name="resnet32"), path)
    msg = str(e.value)
    assert "missing keys" in msg and "layer1.3.conv1.weight" in msg
    report = W.load_weights(_model(name="resnet32"), path, strict=False)
    assert report.loaded > 0 and "layer1.3.conv1.weight" in report.missing


def test_unknown_suffix(tmp_path) -> None:
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown weights format"):
        W.load_weights(_model(), tmp_path / "w.npz")


# ---- pretrained weights, with the download mocked ----


def test_offline_download_names_url_and_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url, **kw):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError) as e:
        W.pretrained_weights("resnet18")
    msg = str(e.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "resnet18-f37072fd.pth" in msg and "--weights" in msg


def test_no_pretrained_for_our_own_architectures() -> None:
    with pytest.raises(CheckpointError, match="resnet18"):
        W.pretrained_weights("resnet20")


def test_every_mapped_name_is_a_model_with_a_torchvision_url() -> None:
    from cnnkit.models import list_models

    for name in W.TORCHVISION_WEIGHTS:
        assert name in list_models()
        url, filename = W.pretrained_url(name)
        assert url.startswith("https://") and url.endswith(filename) and filename.endswith(".pth")


def test_load_pretrained_adapts_grey_input_and_new_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    tv_state = torchvision.models.resnet18(weights=None).state_dict()
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: dict(tv_state))
    model = create_model("resnet18", num_classes=10, in_chans=1, input_size=224)
    report = W.load_pretrained(model)
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.conv1.weight, tv_state["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.layer4[1].bn2.running_var, tv_state["layer4.1.bn2.running_var"])


def test_load_pretrained_renames_old_densenet_keys(monkeypatch: pytest.MonkeyPatch, no_init: None) -> None:
    tv_state = torchvision.models.densenet121(weights=None).state_dict()
    # torchvision's published DenseNet files still use the old "norm.1" style names.
    old = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in tv_state.items()}
    assert old.keys() != tv_state.keys()
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: dict(old))
    model = create_model("densenet121", num_classes=1000, input_size=224)
    report = W.load_pretrained(model)
    assert report.loaded == len(tv_state) and not report.skipped
