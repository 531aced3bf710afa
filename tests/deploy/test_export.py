"""``cnnkit export``: ONNX and TorchScript files that agree with PyTorch on the run's test split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.cli import main
from cnnkit.deploy import export_run, load_exported, read_metadata

CASES = [pytest.param(m, f, marks=[pytest.mark.slow] if m != "lenet5" else [], id=f"{m}-{f}")
         for m in ("lenet5", "resnet20", "mobilenet_v1") for f in ("onnx", "torchscript")]  # fmt: skip


@pytest.mark.parametrize(("model", "fmt"), CASES)
def test_export_matches_pytorch_on_the_test_split(deploy_runs, tmp_path, model, fmt):
    run = deploy_runs(model)
    r = export_run(run, fmt, tmp_path / f"m.{fmt}", dynamic_batch=True)
    assert r.n > 100  # the whole recorded test split, not a sample
    assert r.max_abs_diff < 1e-4
    assert r.agreement == 1.0
    assert r.acc_export == r.acc_torch
    meta = read_metadata(r.path)
    sidecar = json.loads((run / "best.json").read_text())
    assert meta["classes"] == sidecar["classes"] and meta["input_size"] == sidecar["input_size"]
    assert meta["mean"] == sidecar["mean"] and meta["std"] == sidecar["std"]
    assert meta["cnnkit_version"] and meta["input_dtype"] == "uint8"


def test_onnx_file_stands_alone(lenet_run, tmp_path):
    """onnxruntime alone (no cnnkit) runs the file on raw uint8 pixels; static graphs take one image."""
    import onnx
    import onnxruntime as ort

    from cnnkit.deploy.export import split_images
    from cnnkit.evaluate.runner import predict_logits
    from cnnkit.run import load_run

    run = load_run(lenet_run)
    images, _ = split_images(run, "test", 7)
    ref = predict_logits(run, images).numpy()
    dyn = export_run(lenet_run, "onnx", tmp_path / "dyn.onnx", dynamic_batch=True, verify=False).path
    sess = ort.InferenceSession(str(dyn), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "image" and inp.type == "tensor(uint8)"
    out = sess.run(None, {"image": images.numpy()})[0]
    assert out.shape == (7, 10) and np.abs(out - ref).max() < 1e-4
    props = {p.key: p.value for p in onnx.load(str(dyn)).metadata_props}
    assert json.loads(props["classes"]) == run.classes
    static = export_run(lenet_run, "onnx", tmp_path / "static.onnx", verify=False).path
    shape = ort.InferenceSession(str(static), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    assert shape == [1, 1, 32, 32]
    ex = load_exported(static)  # cnnkit's runner feeds a static graph one image at a time
    assert np.abs(ex.logits(images) - ref).max() < 1e-4


def test_cli_export_prints_the_check_and_never_replaces_a_foreign_file(lenet_run, capsys):
    default = lenet_run / "export" / "model.pt"
    assert main(["export", str(lenet_run), "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {default}" in out and "top-1 agreement 100.00%" in out and "max abs diff" in out
    assert main(["export", str(lenet_run), "--format", "torchscript"]) == 0  # its own export: replaced
    capsys.readouterr()
    default.unlink()
    default.write_bytes(b"my notes")  # a user's file where the default output would go
    assert main(["export", str(lenet_run), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "is not a cnnkit export" in err and "hint:" in err and "Traceback" not in err
    assert default.read_bytes() == b"my notes"
    assert main(["export", str(lenet_run), "--format", "torchscript", "--overwrite", "--no-verify"]) == 0
    assert read_metadata(default) is not None


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_quantized_onnx_reports_the_accuracy_change(lenet_run, tmp_path, capsys, mode):
    out = tmp_path / f"q-{mode}.onnx"
    assert main(["export", str(lenet_run), "--quantize", mode, "-o", str(out), "--dynamic-batch"]) == 0
    text = capsys.readouterr().out
    assert "quantized: int8" in text and "points)" in text
    fp32 = export_run(lenet_run, "onnx", tmp_path / "f.onnx", dynamic_batch=True, verify=False)
    assert out.stat().st_size < fp32.size_bytes / 2  # int8 weights
    assert read_metadata(out)["quantize"] == mode


def test_bad_export_options_are_one_line_errors(lenet_run, tmp_path, capsys):
    assert main(["export", str(lenet_run), "--format", "torchscript", "--opset", "17"]) == 2
    assert "--opset is for ONNX" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(lenet_run), "-o", str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err
    assert main(["export", str(lenet_run), "-o", str(lenet_run / "best.safetensors")]) == 2  # the weights
    assert "input of this command" in capsys.readouterr().err
