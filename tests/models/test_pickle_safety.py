"""A malicious pickle never runs, whichever command loads it.

Every route that reads a pickled file (``--weights FILE.pth`` of train/features/finetune/
style-transfer, ``train --resume`` reading ``checkpoint.pt``, ``finetune --pretrained`` reading torch
hub's cache) gets a real payload: an object whose ``__reduce__`` makes unpickling call ``exec``,
which creates a marker file. Each test first proves the payload is live (``torch.load`` with
``weights_only=False`` creates the marker), then runs the command in-process and checks that

* the marker was never created (the assertion that fails if any route used ``weights_only=False``),
* the command failed with exit code 2 and one cnnkit error line naming the refused object
  (``exec``, which only PyTorch's weights-only unpickler reports), without a traceback and
  without relaying PyTorch's advice to retry unsafely.
"""

from __future__ import annotations

import builtins
import contextlib
import pickle
import re
from pathlib import Path

import pytest
import torch

from cnnkit.cli import main
from cnnkit.errors import CheckpointError
from cnnkit.models import create_model
from cnnkit.models.weights import PICKLE_SUFFIXES, load_weights

# cnnkit's refusal (read_state_dict, RunDir.load_checkpoint, style transfer, the hub cache) names the
# callable PyTorch's weights-only unpickler refused ("Unsupported global: GLOBAL exec"): only that
# refusal knows the payload calls exec, so the message cannot come from any other failure.
REFUSAL = re.compile(r"refuses to unpickle \(it asks to run (?:builtins\.)?exec\)")


class _Payload:
    """Unpickling this runs ``exec("open(marker, 'w').close()")``: arbitrary code on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PWNED"


def _poison(path: Path, obj: dict, marker: Path, raw_pickle: int | None = None) -> Path:
    """Write ``obj`` plus the payload to ``path`` (torch.save, or plain pickle with that protocol) and
    prove the file is live: loading it unsafely creates the marker (removed again afterwards)."""
    obj = {**obj, "zz_payload": _Payload(marker)}
    if raw_pickle is None:
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=raw_pickle))
    assert not marker.exists()
    # What every route must never do. A plain pickle is no torch checkpoint: torch fails after unpickling it.
    with contextlib.suppress(Exception):
        torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists(), "the payload did not run: the test would prove nothing"
    marker.unlink()
    return path


def _lenet5_state() -> dict[str, torch.Tensor]:
    return create_model("lenet5", num_classes=10, in_chans=1, input_size=32).state_dict()


def _assert_refused(capsys, rc: int, marker: Path) -> str:
    err = capsys.readouterr().err
    assert not marker.exists(), "the pickled payload ran"
    assert rc == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert REFUSAL.search(err), err
    # PyTorch's message says the file "can still be loaded" with weights_only=False: never relay that.
    assert "can still be loaded" not in err and "weights_only=False" not in err, err
    return err


# ---------------------------------------------------------------- the load functions themselves


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
@pytest.mark.parametrize("raw_pickle", [None, 2, 4], ids=["torch.save", "pickle-2", "pickle-4"])
def test_load_weights_never_runs_a_payload(tmp_path, marker, suffix, raw_pickle):
    # torch.save: a real state dict plus the payload. A plain pickle of tensors would be refused at
    # torch.storage._load_from_bytes before reaching the payload, so plain pickles carry plain data.
    state = dict(_lenet5_state()) if raw_pickle is None else {"fc.weight": [[0.5]]}
    path = _poison(tmp_path / f"evil{suffix}", state, marker, raw_pickle)
    model = create_model("lenet5", num_classes=10, in_chans=1, input_size=32)
    with pytest.raises(CheckpointError) as e:
        load_weights(model, path)
    assert not marker.exists()
    msg = str(e.value)
    # Protocol 4 fails on its FRAME opcode before reaching the global: still refused, named differently.
    assert REFUSAL.search(msg) if raw_pickle != 4 else "Unsupported operand" in msg, msg
    assert "can still be loaded" not in msg and "weights_only=False" not in msg, msg


# ---------------------------------------------------------------- every command that loads a pickle


def test_train_weights_refuses_a_payload(tmp_path, marker, capsys):
    path = _poison(tmp_path / "evil.pth", dict(_lenet5_state()), marker)
    argv = ["train", "--weights", str(path), "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--name", "w"]
    rc = main(argv)
    _assert_refused(capsys, rc, marker)
    assert not (tmp_path / "runs" / "w").exists()


def test_train_resume_refuses_a_poisoned_checkpoint(tmp_path, marker, capsys):
    import cnnkit

    run = cnnkit.train(model="linear", epochs=1, augment="none", name="r", runs_dir=str(tmp_path), quiet=True).run_dir
    ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    _poison(run / "checkpoint.pt", ck, marker)
    metrics = (run / "metrics.csv").read_text()
    rc = main(["train", "--resume", str(run), "--epochs", "2"])
    _assert_refused(capsys, rc, marker)
    assert (run / "metrics.csv").read_text() == metrics  # nothing trained or rewritten


def test_features_weights_refuses_a_payload(tmp_path, marker, capsys):
    path = _poison(tmp_path / "evil.pth", dict(_lenet5_state()), marker)
    out = tmp_path / "f.npz"
    rc = main(["features", "lenet5", "--weights", str(path), "--data", "digits", "-o", str(out)])
    _assert_refused(capsys, rc, marker)
    assert not out.exists()


def test_style_transfer_weights_refuses_a_payload(tmp_path, marker, capsys):
    from PIL import Image

    for name in ("content.png", "style.png"):
        Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / name)
    path = _poison(tmp_path / "evil.pt", {"features.0.weight": torch.zeros(64, 3, 3, 3)}, marker)
    out = tmp_path / "styled.png"
    rc = main(["style-transfer", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "--model", "vgg11",
               "--weights", str(path), "--steps", "1", "--size", "16", "-o", str(out)])  # fmt: skip
    _assert_refused(capsys, rc, marker)
    assert not out.exists()


def test_finetune_weights_refuses_a_payload(tmp_path, marker, capsys):
    path = _poison(tmp_path / "evil.pth", dict(_lenet5_state()), marker)
    runs = tmp_path / "runs"
    rc = main(["finetune", "--weights", str(path), "--model", "lenet5", "--data", "digits", "--epochs", "1",
               "--runs-dir", str(runs), "--name", "ft"])  # fmt: skip
    _assert_refused(capsys, rc, marker)
    assert not (runs / "ft").exists()


def test_finetune_pretrained_refuses_a_poisoned_hub_cache(tmp_path, marker, capsys, monkeypatch):
    # Offline, the README says a downloaded file put in torch hub's cache "is found automatically":
    # that file is a pickle too.
    from cnnkit.models.weights import pretrained_url

    _, filename = pretrained_url("squeezenet1_1")
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    _poison(hub / "checkpoints" / filename, {"features.0.weight": torch.zeros(64, 3, 3, 3)}, marker)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    runs = tmp_path / "runs"
    rc = main(["finetune", "--pretrained", "--model", "squeezenet1_1", "--data", "digits", "--epochs", "1",
               "--runs-dir", str(runs), "--name", "ft"])  # fmt: skip
    _assert_refused(capsys, rc, marker)
    assert not (runs / "ft").exists()
