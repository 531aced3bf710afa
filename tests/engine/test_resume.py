"""Acceptance 3: a run killed with SIGKILL mid-epoch resumes to the same result; no partial files."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnkit.io import TMP_PREFIX, atomic_write

# Four epochs: two recorded, a kill inside the third, and at least one more epoch after the resume.
FLAGS = ["--epochs", "4", "--batch-size", "16", "--seed", "3"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnkit", "train", *FLAGS, *args]


def _metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(fh)]


def _all_checkpoints_load(run: Path) -> None:
    for f in run.iterdir():
        if f.suffix == ".safetensors":
            load_file(f)
        elif f.name == "checkpoint.pt":
            torch.load(f, weights_only=True)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(_cli("--runs-dir", str(runs), "--name", "full", "--quiet"), check=True, env=env, timeout=300)

    victim = runs / "victim"
    proc = subprocess.Popen(_cli("--runs-dir", str(runs), "--name", "victim"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    try:
        # Wait until two epochs are recorded, then kill somewhere inside the third.
        while time.time() < deadline:
            if (victim / "metrics.csv").is_file() and len(_metrics(victim / "metrics.csv")) >= 2:
                break
            time.sleep(0.02)
        time.sleep(0.15)
        assert proc.poll() is None, "training finished before it could be killed; make epochs longer"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(_metrics(victim / "metrics.csv"))
    assert 2 <= done < 4
    _all_checkpoints_load(victim)  # whatever the moment of the kill, named files are complete

    r = subprocess.run([sys.executable, "-m", "cnnkit", "train", "--resume", str(victim)], env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"resuming {victim}: {done} epoch(s) done, training epochs {done + 1}-4" in r.stdout
    assert _metrics(victim / "metrics.csv") == _metrics(runs / "full" / "metrics.csv")
    import json

    a = json.loads((victim / "summary.json").read_text())["test"]
    b = json.loads((runs / "full" / "summary.json").read_text())["test"]
    assert a == b
    assert not [p for p in victim.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_atomic_write_never_leaves_partial_files(tmp_path):
    target = tmp_path / "last.safetensors"
    target.write_text("old complete content")

    def crash(p: str) -> None:
        Path(p).write_text("half writ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old complete content"
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
    atomic_write(target, lambda p: Path(p).write_text("new"))
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_resume_removes_stale_temp_files(tmp_path):
    import cnnkit

    # The cleanup is the run folder's, not the model's: the linear model without augmentation is enough.
    r = cnnkit.train(name="r", model="linear", augment="none", runs_dir=str(tmp_path), epochs=1, quiet=True)
    stale = r.run_dir / f"{TMP_PREFIX}checkpoint.pt.abc123"
    stale.write_bytes(b"partial")
    cnnkit.train(resume=r.run_dir, epochs=2, quiet=True)
    assert not stale.exists()
    assert len(_metrics(r.run_dir / "metrics.csv")) == 2


def test_a_resumed_run_marks_its_earlier_epochs_as_they_were_marked(tmp_path):
    """The table a resumed run shows again keeps every "best so far" mark, not only the best epoch's."""
    import cnnkit

    r = cnnkit.train(name="r", model="linear", augment="none", runs_dir=str(tmp_path), epochs=3, quiet=False)
    cnnkit.train(resume=r.run_dir, epochs=4, quiet=False)
    log = (r.run_dir / "log.txt").read_text().splitlines()
    first = [ln.endswith("*") for ln in log if ln.strip().split(" ")[0] in ("1/3", "2/3", "3/3")]
    again = [ln.endswith("*") for ln in log if ln.strip().split(" ")[0] in ("1/4", "2/4", "3/4")]
    assert len(first) == len(again) == 3 and first == again and first[0]
