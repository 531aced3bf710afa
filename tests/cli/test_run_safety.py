"""Issue 18: run folders cannot hurt the user.

Every data-loss and path-escape case a hostile tester found is here: odd ``--name`` values (from
the flag and from YAML), ``--overwrite`` of a folder that is not a run, an overwrite that fails
before its first checkpoint, two writers on one run, and messages that must tell the truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cnnkit_fuzz import Case, run, run_case, snapshot

from cnnkit.run import RunLock, is_run_folder

QUICK = ["--epochs", "1", "--augment", "none"]


def _user_files(root: Path) -> None:
    """Files a user keeps next to their runs: what the bad names used to delete."""
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8 not really a jpeg but precious")
    (root / "notes.txt").write_text("my notes\n")
    (root / "runs").mkdir(exist_ok=True)
    (root / "runs" / "keep.txt").write_text("a file inside the runs folder\n")


# --name values that used to escape --runs-dir or wipe it; from the flag and from a YAML recipe.
BAD_NAMES = ["..", ".", "", "   ", "../../x", "a/b", "/abs/folder", "..\\x", ".hidden", "x" * 300]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
@pytest.mark.parametrize("source", ["flag", "yaml"])
def test_bad_run_names_are_refused_and_nothing_is_touched(tmp_path, name, source):
    _user_files(tmp_path)
    if name == "/abs/folder":
        name = str(tmp_path / "photos")  # an absolute path to a user's folder
    if source == "flag":
        argv = ["train", *QUICK, "--runs-dir", "runs", "--name", name, "--overwrite"]
    else:
        (tmp_path / "recipe.yaml").write_text(json.dumps({"name": name, "epochs": 1}))
        argv = ["train", "--config", "recipe.yaml", "--runs-dir", "runs", "--overwrite"]
    run_case(Case(f"name-{source}", argv, expect="--name"), tmp_path)


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    _user_files(tmp_path)
    case = Case("overwrite-photos", ["train", *QUICK, "--runs-dir", ".", "--name", "photos", "--overwrite"],
                expect="not a cnnkit run folder")  # fmt: skip
    run_case(case, tmp_path)
    assert (tmp_path / "photos" / "holiday.jpg").is_file()


def test_overwrite_that_fails_before_its_first_checkpoint_leaves_the_old_run_intact(tmp_path):
    runs = tmp_path / "runs"
    code, _, err = run(["train", *QUICK, "--runs-dir", str(runs), "--name", "x", "--quiet"], tmp_path)
    assert code == 0, err
    before = snapshot(runs)
    # SGD at lr 10 with no warmup diverges in the first epoch: the replacement never gets a checkpoint.
    code, _, err = run(["train", "--epochs", "2", "--optimizer", "sgd", "--lr", "10", "--warmup-epochs", "0",
                        "--augment", "none", "--runs-dir", str(runs), "--name", "x", "--overwrite"], tmp_path)  # fmt: skip
    assert code == 3, err
    assert "was left as it was" in err
    assert snapshot(runs) == before  # same files, same bytes; no staging folder or lock left behind


def test_overwrite_replaces_a_run_only_once_the_new_one_has_a_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    assert run(["train", *QUICK, "--runs-dir", str(runs), "--name", "x", "--seed", "1"], tmp_path)[0] == 0
    (runs / "x" / "eval").mkdir()
    (runs / "x" / "eval" / "old.txt").write_text("from the old run")
    code, _, err = run(["train", *QUICK, "--runs-dir", str(runs), "--name", "x", "--seed", "2", "--overwrite"],
                       tmp_path)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in runs.iterdir()) == ["x"]  # no staging, old copy or lock file left
    cfg = (runs / "x" / "config.yaml").read_text()
    assert "seed: 2" in cfg and not (runs / "x" / "eval").exists()
    assert is_run_folder(runs / "x")
    summary = json.loads((runs / "x" / "summary.json").read_text())
    assert summary["run"] == str(runs / "x")  # the summary names the final folder, not the staging one


def test_a_second_writer_is_refused_while_a_run_is_locked(tmp_path):
    runs = tmp_path / "runs"
    with RunLock(runs / "busy"):
        case = Case("locked", ["train", *QUICK, "--runs-dir", str(runs), "--name", "busy", "--overwrite"],
                    expect="being written by another process")  # fmt: skip
        run_case(case, tmp_path)
    assert not (runs / "busy").exists()
    # Released: now it trains.
    assert run(["train", *QUICK, "--runs-dir", str(runs), "--name", "busy"], tmp_path)[0] == 0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, "the first training ended before the second one started"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_two_simultaneous_writers_one_refused_the_other_complete_and_consistent(tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "cnnkit", "train", "--runs-dir", str(runs), "--name", "same", "--augment", "none"]
    first = subprocess.Popen([*cmd, "--epochs", "4", "--seed", "1"], env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(runs / ".same.lock", first)
        second = subprocess.run([*cmd, "--epochs", "1", "--seed", "2", "--overwrite"], env=_env(),
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2 and "being written by another process" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err
    run_dir = runs / "same"
    cfg = (run_dir / "config.yaml").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "seed: 1" in cfg and "epochs: 4" in cfg  # the first writer's config ...
    assert summary["epochs_run"] == 4 and summary["status"] == "finished"  # ... and its weights and history
    assert len((run_dir / "metrics.csv").read_text().strip().splitlines()) == 1 + 4
    assert json.loads((run_dir / "best.json").read_text())["epoch"] <= 4
    assert sorted(p.name for p in runs.iterdir()) == ["same"]


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_and_the_run_resumes(tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "cnnkit", "train", "--runs-dir", str(runs), "--name", "ctrlc", "--epochs", "30",
           "--augment", "none"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(runs / "ctrlc" / "checkpoint.pt", proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"cnnkit train --resume {runs / 'ctrlc'}" in err
    assert not (runs / ".ctrlc.lock").exists()
    r = subprocess.run([sys.executable, "-m", "cnnkit", "train", "--resume", str(runs / "ctrlc"), "--epochs", "3"],
                       env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_missing_checkpoint_of_a_finished_run_never_advises_overwrite(trained_run, tmp_path):
    def damage(folder: Path) -> None:
        (folder / "run" / "checkpoint.pt").unlink()

    case = Case("no-checkpoint", ["train", "--resume", "{run}"], setup=damage, expect="are intact")
    _, _, err = run_case(case, tmp_path, run_dir=trained_run)
    assert "--overwrite" not in err


def test_a_random_bytes_checkpoint_gives_no_pytorch_advice_to_unpickle(trained_run, tmp_path):
    def damage(folder: Path) -> None:
        (folder / "run" / "checkpoint.pt").write_bytes(os.urandom(4096))

    _, _, err = run_case(Case("random-ck", ["train", "--resume", "{run}"], setup=damage, expect="checkpoint"),
                         tmp_path, run_dir=trained_run)  # fmt: skip
    assert "weights_only" not in err


def test_lock_is_refused_across_processes_and_released_on_exit(tmp_path):
    lock_owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cnnkit.run import RunLock; RunLock(sys.argv[1]).acquire(); "
         "print('locked', flush=True); time.sleep(60)", str(tmp_path / "r")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert lock_owner.stdout is not None and lock_owner.stdout.readline().strip() == "locked"
        with pytest.raises(Exception, match="being written by another process"):
            RunLock(tmp_path / "r").acquire()
    finally:
        lock_owner.kill()
        lock_owner.wait()
    with RunLock(tmp_path / "r"):  # a killed holder never blocks anyone
        pass


def test_a_closed_terminal_output_does_not_end_the_run(tmp_path):
    """``cnnkit train | head -2``: the reader goes away after two lines; the run still finishes and is
    recorded, and its log says where the terminal output stopped (it used to die mid-training, with no
    summary and nothing in the log)."""
    env = {**os.environ, "CNNKIT_MAX_BATCHES": "1", "PYTHONUNBUFFERED": "1"}  # unbuffered: breaks at line 3
    env.pop("CNNKIT_MAX_EPOCHS", None)
    train = f"'{sys.executable}' -m cnnkit train --epochs 3 --augment none --name piped --runs-dir '{tmp_path}'"
    r = subprocess.run(["bash", "-c", f"{train} | head -2; exit ${{PIPESTATUS[0]}}"], env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stdout.splitlines()) == 2
    run_dir = tmp_path / "piped"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    log = (run_dir / "log.txt").read_text()
    assert "the terminal output was closed here" in log and "3/3" in log and "run saved to" in log
