"""Harness for the bad-input suites (tests/cli/test_fuzz_*.py; importable as ``cnnkit_fuzz``).

Each case runs the real command line in-process (``cnnkit.cli.main``), so hundreds of cases cost
seconds. A case passes when the command fails cleanly: a non-zero exit code, an ``error:`` line
(plus at most a ``hint:`` line) on stderr, no traceback, no "internal error" (the CLI's fallback
for exceptions that are not a user mistake), and no file outside the command's own output changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnnkit.cli import main


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoded-image cache and the data root live outside ~/.cache and outside the case folders.

    Autouse in every suite that imports it (``from cnnkit_fuzz import private_dirs``).
    """
    base = tmp_path_factory.mktemp("fuzz-env")
    monkeypatch.setenv("CNNKIT_CACHE", str(base / "decoded-cache"))
    monkeypatch.setenv("CNNKIT_DATA", str(base / "no-data-root"))


@dataclass
class Case:
    """One bad input: the arguments (``{run}``, ``{tmp}`` are filled in), an optional setup, what the message names."""

    id: str
    argv: list[str]
    setup: Callable[[Path], None] | None = None  # gets the case's folder; damages files, makes inputs
    expect: str | None = None  # a substring the error message must contain (case-insensitive)
    may_write: tuple[str, ...] = ()  # files/folders (relative to the case folder) the command may create
    code: int | None = None  # exact exit code, when it matters
    extra: dict = field(default_factory=dict)


def bad_values(argv: list[str], option: str, name: str | None = None, expect: str | None = None,
               setup: Callable[[Path], None] | None = None, **values: str | tuple[str, str]) -> list[Case]:  # fmt: skip
    """One case per ``label=VALUE``: ``ARGV OPTION VALUE`` must fail naming ``expect`` (default: the option).

    A value may be ``(VALUE, EXPECT)`` when its message names something else. The case ids are
    ``NAME-label`` (``NAME``: the option without its dashes; underscores in labels become dashes), so
    a table of refused values reads as one line per option: ``bad_values(["train"], "--lr", zero="0")``.
    """
    name = name or option.lstrip("-")
    cases = []
    for label, v in values.items():
        value, text = v if isinstance(v, tuple) else (v, expect or option)
        cases.append(Case(f"{name}-{label.replace('_', '-')}", [*argv, option, value], setup, expect=text))
    return cases


def write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    """A ``Case.setup`` that writes ``data`` to ``rel`` inside the case folder (parents made)."""

    def setup(folder: Path) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)

    return setup


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` with its size and content hash (folders as size -1)."""
    out: dict[str, tuple[int, str]] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink() or not p.is_file():
            out[rel] = (-1, "")
            continue
        try:
            data = p.read_bytes()
        except OSError:
            out[rel] = (-2, "")
            continue
        out[rel] = (len(data), hashlib.sha1(data).hexdigest())
    return out


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``cnnkit ARGV`` in-process in ``cwd``; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def check_clean_failure(case: Case, code: int, out: str, err: str) -> None:
    """The assertions every bad input must pass (see the module docstring)."""
    text = out + err
    assert code != 0, f"{case.id}: exit code 0 for a bad input\n{text}"
    if case.code is not None:
        assert code == case.code, f"{case.id}: exit code {code}, expected {case.code}\n{text}"
    assert "Traceback" not in text, f"{case.id}: traceback\n{text}"
    assert "internal error" not in err, f"{case.id}: not handled as a user error\n{err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error:" in ln]
    assert len(errs) == 1, f"{case.id}: expected one error line, got\n{err}"
    others = [ln for ln in lines if ln not in errs and not ln.strip().startswith("hint:")
              and not ln.startswith("warning:")]  # fmt: skip
    assert not others, f"{case.id}: stray lines on stderr\n{err}"
    if case.expect:
        assert case.expect.lower() in err.lower(), f"{case.id}: message does not mention {case.expect!r}\n{err}"


def run_case(case: Case, folder: Path, run_dir: Path | None = None) -> tuple[int, str, str]:
    """Lay out ``folder`` (a copy of ``run_dir`` at ``folder/run`` if given), run the case, check it."""
    folder.mkdir(parents=True, exist_ok=True)
    if run_dir is not None and not (folder / "run").exists():
        shutil.copytree(run_dir, folder / "run", ignore=shutil.ignore_patterns("eval", "*.lock"))
    if case.setup is not None:
        case.setup(folder)
    argv = [a.format(run=str(folder / "run"), tmp=str(folder)) for a in case.argv]
    before = snapshot(folder)
    code, out, err = run(argv, folder)
    check_clean_failure(case, code, out, err)
    after = snapshot(folder)
    allowed = tuple(case.may_write)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)
                     and not any(k == a or k.startswith(a.rstrip("/") + "/") for a in allowed))  # fmt: skip
    assert not changed, f"{case.id}: files changed by a failed command: {changed}\n{err}"
    return code, out, err
