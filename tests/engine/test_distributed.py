"""Data-parallel training with torchrun (gloo on CPU): the same numbers as one process, and failures that end.

Each test starts real ``torchrun`` processes, so they are slow (process start-up dominates).
"""

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

from cnnkit.run import read_weights

pytestmark = pytest.mark.slow

# 1797 digits: 270 test, 247 val, 1280 train = 20 batches of 64, so neither run pads or drops a sample.
EXACT_SPLIT = ["--val-split", "0.137451", "--test-split", "0.15"]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("CNNKIT_MAX_EPOCHS", None)
    return env


def _torchrun(nproc: int, *args: str) -> list[str]:
    # --standalone: a local rendezvous on a free port, as a user on one machine would start it.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "cnnkit", *args]  # fmt: skip


def _cnnkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnkit", *args]


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_take_the_same_steps_as_one(tmp_path):
    # LeNet-5 with tanh and average pooling: with ReLU and max pooling a float rounding difference of
    # 1e-8 can flip which input of a near tie wins, and one step then moves a weight by ~1e-5 in any
    # two differently batched runs, distributed or not; a smooth network shows DDP's own agreement.
    common = ["train", "--model", "lenet5", "--model-args", "{act: tanh, pool: avg}", "--epochs", "1",
              "--batch-size", "64", "--augment", "none", "--device", "cpu", *EXACT_SPLIT]  # fmt: skip
    _run(_cnnkit(*common, "--name", "one"), tmp_path)
    r = _run(_torchrun(2, *common, "--name", "two"), tmp_path)
    assert "data-parallel over 2 processes (gloo): global batch 64 = 32 per process" in r.stdout
    assert r.stdout.count("run saved to") == 1  # rank 0 alone reports
    one, _ = read_weights(tmp_path / "runs/one/last.safetensors")
    two, _ = read_weights(tmp_path / "runs/two/last.safetensors")
    assert one.keys() == two.keys()
    diff = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
    assert diff < 1e-5, diff  # 20 identical steps: gradients averaged over 2 x 32 = the mean over 64

    # The validation accuracy the 2-process run recorded is a single-process evaluation of its weights.
    import cnnkit
    from cnnkit.config import TrainConfig
    from cnnkit.engine.train import load_data_for

    run = cnnkit.load_run(tmp_path / "runs/two", which="last")
    cfg = TrainConfig.from_dict(run.config)
    data = load_data_for(cfg)
    norm = (torch.tensor(run.meta.mean)[:, None, None], torch.tensor(run.meta.std)[:, None, None])
    with torch.no_grad():
        x = (data.val.images.float() / 255 - norm[0]) / norm[1]
        acc = float((run.model(x).argmax(1) == data.val.labels).float().mean())
    recorded = float(_rows(tmp_path / "runs/two")[0]["val_acc"])
    assert recorded == pytest.approx(acc, abs=1e-6)
    summary = (tmp_path / "runs/two/summary.json").read_text()
    assert '"processes": 2' in summary and '"batch_per_process": 32' in summary


def test_full_two_process_run_matches_one_process_accuracy(tmp_path):
    common = ["train", "--epochs", "8", "--batch-size", "64", "--device", "cpu"]
    _run(_cnnkit(*common, "--name", "one"), tmp_path)
    _run(_torchrun(2, *common, "--name", "two"), tmp_path)
    import json

    acc = {
        n: json.loads((tmp_path / f"runs/{n}/summary.json").read_text())["test"]["acc"]
        for n in ("one", "two")
    }
    assert abs(acc["one"] - acc["two"]) <= 0.015, acc
    run = tmp_path / "runs/two"
    assert len(_rows(run)) == 8  # one row per epoch: written once, by rank 0
    log = (run / "log.txt").read_text()
    assert log.count("training lenet5") == 1 and log.count("run saved to") == 1
    for f in (
        "config.yaml",
        "split.json",
        "best.safetensors",
        "last.safetensors",
        "checkpoint.pt",
        "summary.json",
    ):
        assert (run / f).is_file(), f
    assert not [p.name for p in (tmp_path / "runs").iterdir() if p.name.startswith(".") and "new" in p.name]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _rank_of(pid: int) -> int:
    """A torchrun worker's rank, from its environment (the order of the agent's children is not the ranks')."""
    env = dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v)
    return int(env["RANK"])


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="finds worker processes through /proc (Linux)"
)
def test_a_killed_process_ends_the_run_and_it_resumes_with_one(tmp_path):
    cmd = _torchrun(2, "train", "--epochs", "400", "--device", "cpu", "--name", "k")
    cmd[3:3] = [
        "--log-dir",
        str(tmp_path / "logs"),
        "--redirects",
        "3",
    ]  # each rank's output in its own files
    p = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    run = tmp_path / "runs/k"
    try:
        deadline = time.monotonic() + 180
        while not ((run / "metrics.csv").is_file() and len(_rows(run)) >= 2):
            assert p.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.2)
        workers = _children(p.pid)
        assert len(workers) == 2, workers
        # Rank 1 dies mid-epoch, without a word; rank 0, whose logs are read below, survives it.
        os.kill(next(w for w in workers if _rank_of(w) == 1), signal.SIGKILL)
        t0 = time.monotonic()
        out, _ = p.communicate(timeout=60)  # every other process ends within a bounded time
        ended = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    assert ended < 60
    # The surviving rank says why it stopped and what was kept, without a traceback (torchrun's agent
    # then prints its own summary of the failed processes).
    (err0,) = [f for f in (tmp_path / "logs").rglob("stderr.log") if f.parent.name == "0"]
    ours = (
        err0.read_text()
        + next(f for f in (tmp_path / "logs").rglob("stdout.log") if f.parent.name == "0").read_text()
    )
    assert "error: another process of this distributed run" in ours, f"rank 0's stderr: {err0.read_text()[-3000:]!r}; torchrun: {out[-2000:]!r}"
    assert "continue with: cnnkit train --resume" in ours
    assert "Traceback" not in ours, ours[-3000:]
    done = len(_rows(run))
    assert done >= 2
    # The last complete checkpoint is valid: one process continues it to the end.
    r = _run(_cnnkit("train", "--resume", str(run), "--epochs", str(done + 2), "--device", "cpu"), tmp_path)
    assert f"{done} epoch(s) done" in r.stdout
    assert len(_rows(run)) == done + 2


def test_sigterm_stops_training_once_and_never_cuts_the_error_report(monkeypatch):
    """torchrun's SIGTERM becomes PeerStopped; once training has failed, later SIGTERMs are ignored
    until the process has printed its error (the default action would kill it without a word)."""
    from cnnkit.engine import distributed

    monkeypatch.setattr(distributed, "current", lambda: distributed.World(0, 2, 0, "gloo"))
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(distributed.PeerStopped), distributed.stop_on_sigterm():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises at the next bytecode
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)  # a second stop while the error is reported: ignored
        signal.signal(signal.SIGTERM, before)
        with distributed.stop_on_sigterm():  # a run that ends normally gets the old handler back
            assert signal.getsignal(signal.SIGTERM) not in (before, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGTERM) == before
    finally:
        signal.signal(signal.SIGTERM, before)
