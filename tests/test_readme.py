"""The README's commands work as written: every fenced ```bash block runs, in order, in a fresh folder.

The only help the harness gives is ``CNNKIT_MAX_EPOCHS=1`` and ``CNNKIT_MAX_BATCHES=2`` (cnnkit caps
every training run at that many epochs and batches per epoch, prints the caps, and config.yaml records
the epochs) so the walkthrough fits in CI; the README's text is run
exactly as a reader would paste it. Blocks that cannot run here (downloads, several machines) use
another fence language (```console) and say why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number) of every fenced block of ``text``, in order."""
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def bash_blocks() -> list[tuple[str, int]]:
    return [(body, line) for lang, body, line in fenced_blocks(README.read_text()) if lang == "bash"]


def test_fence_parser_sees_languages_and_bodies():
    text = "a\n```bash\necho 1\n```\n\n```console\n$ x\n```\n```python\nprint()\n```\n"
    assert fenced_blocks(text) == [
        ("bash", "echo 1\n", 2),
        ("console", "$ x\n", 6),
        ("python", "print()\n", 9),
    ]


def test_readme_has_bash_blocks():
    blocks = bash_blocks()
    assert len(blocks) >= 8, "the README should show its commands in ```bash blocks"
    installs = [line for b, line in blocks if re.search(r"^\s*pip install", b, re.M)]
    assert not installs, f"installing is not part of the walkthrough run (README.md lines {installs})"


@pytest.mark.slow
def test_every_readme_bash_block_runs_in_order(tmp_path):
    env = {
        **os.environ,
        # The only shortening: one epoch of two batches per training run (printed; epochs in config.yaml).
        "CNNKIT_MAX_EPOCHS": "1",
        "CNNKIT_MAX_BATCHES": "2",
        "CNNKIT_CACHE": str(tmp_path / ".cache"),
        "MPLBACKEND": "Agg",
        "COLUMNS": "100",
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }
    env.pop("CNNKIT_DEBUG", None)
    work = tmp_path / "fresh"
    work.mkdir()
    for body, line in bash_blocks():
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=work, env=env, capture_output=True,
                              text=True, timeout=1800)  # fmt: skip
        assert proc.returncode == 0, (
            f"README.md block at line {line} failed (exit {proc.returncode}):\n{body}\n"
            f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}"
        )
        assert "Traceback" not in proc.stderr, (
            f"README.md block at line {line} printed a traceback:\n{proc.stderr}"
        )
    # The cap is part of the record, so nobody mistakes a 1-epoch CI run for the documented one
    # (a resumed run may add one more epoch: `--resume RUN --epochs N` is capped at one epoch more).
    import yaml

    configs = list((work / "runs").glob("*/config.yaml"))
    assert configs
    assert all(yaml.safe_load(c.read_text())["epochs"] <= 2 for c in configs)
    logs = [c.with_name("log.txt").read_text() for c in configs]
    assert all("CNNKIT_MAX_BATCHES" in log for log in logs)
