"""Shared fixtures: a trained digits run (made once per session), small helpers; parallel-run settings."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# The tests run in parallel (pytest-xdist, see pytest_cmdline_main below). Each worker uses ONE thread:
# with two workers on two cores, two OpenMP threads per worker oversubscribe the cores and the threads
# spin waiting for each other (the tiny models here got 5-20x slower). Set in os.environ before any
# test runs, so the `cnnkit ...` subprocesses and torchrun the tests start inherit it too.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # BLAS may already be loaded (NumPy), past reading the variables above

# The thread count the README's and the tests' quoted numbers of the default run were computed with
# ("as CI computes it": 2 threads, 98.52%, FGSM 61.11%, ECE 0.073). Floating-point reductions split
# differently on one thread and train different weights (98.89% there).
README_THREADS = 2
# At most this many workers by default: every worker builds the session fixtures it needs once.
MAX_WORKERS = 4
# The longest test files (--durations, both workers on one core: the README walkthrough ~340 s alone,
# then 175, 110, 105, 85, 65, 40, 40, 40, 30 s), handed out first so that no worker idles at the end
# while the other runs one of them. Only speed depends on this list: a stale entry is harmless, and
# files not listed follow in xdist's usual order (most tests first).
LONGEST_FILES = [
    "tests/test_readme.py",
    "tests/engine/test_train_models.py",
    "tests/models/test_all_models.py",
    "tests/engine/test_distributed.py",
    "tests/transfer/test_bounded_memory.py",
    "tests/cli/test_run_safety.py",
    "tests/deploy/test_export.py",
    "tests/engine/test_lr_find.py",
    "tests/engine/test_resume.py",
    "tests/cli/test_first_hour.py",
]


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns these options into workers
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Plain ``pytest`` runs in parallel: one worker per CPU (at most MAX_WORKERS), each file on one worker.

    Set here rather than in pyproject's addopts so that ``pytest -p no:xdist`` (xdist's ``-n`` option
    unknown) still runs serially; ``-n 0`` does too, and an explicit ``-n N`` / ``--dist`` wins (``-n N``
    alone gets ``--dist loadfile`` too). ``loadfile``: module fixtures (trained runs) are built once,
    not on every worker that runs a test of the file. One CPU: serial, in this process.
    """
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    if config.option.numprocesses is None:
        if config.getoption("usepdb", False) or config.option.collectonly:
            return
        config.option.numprocesses = "logical"  # the CPUs this process may use (affinity respected)
        if config.hook.pytest_xdist_auto_num_workers(config=config) < 2:
            config.option.numprocesses = 0  # one CPU: a worker process would only add its start-up
        config.option.maxprocesses = config.option.maxprocesses or MAX_WORKERS
    if config.option.numprocesses and config.option.dist == "no" and not config.option.distload:
        config.option.dist = "loadfile"
        config.option.loadscopereorder = False  # keep the file order of pytest_collection_modifyitems


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by fixture), so this order is final
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist's workers the files run longest first (LONGEST_FILES, then those with the most tests),
    each file's tests in their usual order: the scheduler hands out files in this order."""
    if not XDIST_WORKER:
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    rank = {f: i for i, f in enumerate(LONGEST_FILES)}
    order = sorted(files, key=lambda f: (rank.get(f, len(rank)), -len(files[f])))  # stable: ties keep order
    items[:] = [item for f in order for item in files[f]]


@pytest.fixture(scope="session", autouse=True)
def _session_cnnkit_cache(tmp_path_factory) -> Iterator[None]:
    """The decoded-image cache and the remembered mirror probes go to this worker's temporary folder,
    not ~/.cache/cnnkit: parallel workers then never see each other's entries appear mid-test, and the
    tests leave the user's cache alone. An explicit $CNNKIT_CACHE is kept. Subprocesses inherit it."""
    if os.environ.get("CNNKIT_CACHE"):
        yield
        return
    os.environ["CNNKIT_CACHE"] = str(tmp_path_factory.getbasetemp() / "cnnkit-cache")
    try:
        yield
    finally:
        os.environ.pop("CNNKIT_CACHE", None)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``n`` intra-op threads inside the block, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder) -> path inside folder``, made once per test session and copied to each worker.

    Serially this is ``build(mktemp(name))``. Under xdist the first worker to ask builds in the
    session's shared temporary folder while holding a file lock (the others wait, which frees the
    cores for the build); every worker then gets its own copy, so tests that write into a run folder
    see only their own worker's writes, as in a serial run.
    """
    mine = tmp_path_factory.mktemp(name)
    if not XDIST_WORKER:
        return build(mine)
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"  # popen-gwN's parent: per session
    done = shared / "built-path.txt"
    with FileLock(str(shared) + ".lock"):
        if not done.exists():
            if shared.exists():  # a worker whose build failed left a partial folder
                shutil.rmtree(shared)
            (shared / "tree").mkdir(parents=True)
            made = build(shared / "tree")
            done.write_text(str(made.relative_to(shared / "tree")))
    shutil.copytree(shared / "tree", mine, dirs_exist_ok=True)
    # A run folder records where it was made (config.yaml's runs_dir, summary.json, log.txt): point the
    # copy at itself, so a replay or resume of it writes into this worker's folder, as serially.
    for f in mine.rglob("*"):
        if f.suffix in (".yaml", ".json", ".txt", ".csv") and f.is_file():
            text = f.read_text()
            if str(shared / "tree") in text:
                f.write_text(text.replace(str(shared / "tree"), str(mine)))
    return mine / done.read_text()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """LeNet-5 trained on digits with the default recipe (the README's command, ~10 s), on the README's
    thread count so the quoted numbers the tests check are reproduced exactly."""
    import cnnkit

    def build(runs: Path) -> Path:
        with torch_threads(README_THREADS):
            return cnnkit.train(name="lenet5-digits", runs_dir=str(runs), quiet=True).run_dir

    return build_once(tmp_path_factory, "runs", build)


@pytest.fixture
def runs_dir(tmp_path) -> str:
    return str(tmp_path / "runs")


@pytest.fixture
def http_dir(tmp_path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server on 127.0.0.1 serving a folder: (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
