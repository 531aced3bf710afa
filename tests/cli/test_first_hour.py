"""The first hour with cnnkit: typos get a suggestion, closed pipes end quietly, files are never lost.

Covers issue 17's acceptance tests for the command line: over every subcommand a misspelt choice
prints one line with a suggestion and exits 2; output into a closed pipe ends without a traceback;
commands with a default output name, run twice next to a file of that name, never modify it; files
are created with the user's umask (0644 under 022) and run folders 0755.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _typo(word: str) -> str:
    """A plausible misspelling: the last letter doubled (``adam`` -> ``adamm``)."""
    return word + word[-1]


# Options checked after parsing (their values come from a registry the parser does not hold).
LATE_CHOICES = {
    "filter": [["photo.png", "--kernel", "sobel_x"], ["photo.png", "--boundary", "mirror"]],
    "baseline": [["--features", "hog"], ["--classifier", "svm"]],
}


def _choice_cases() -> list[tuple[str, list[str], str]]:
    cases = []
    for name, p in _subcommands().items():
        for a in p._actions:
            if a.choices and a.option_strings:
                good = str(next(c for c in a.choices if len(str(c)) >= 3))
                cases.append((name, [a.option_strings[-1], _typo(good)], good))
        for args in LATE_CHOICES.get(name, []):
            cases.append((name, args[:-1] + [_typo(args[-1])], args[-1]))
    return cases


CHOICE_CASES = _choice_cases()


def test_every_subcommand_with_choices_is_covered():
    covered = {name for name, _, _ in CHOICE_CASES}
    # Commands with no option that takes one of a fixed set of values: nothing to misspell.
    without = set(_subcommands()) - covered
    assert without <= {"models", "datasets", "inspect", "filter-bank"}, without
    assert len(covered) >= 20


@pytest.mark.parametrize(
    ("command", "args", "meant"), CHOICE_CASES, ids=[f"{c}{a[-2]}" for c, a, _ in CHOICE_CASES]
)
def test_misspelt_choice_gets_one_line_and_a_suggestion(command, args, meant, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if command == "filter":
        Image.new("L", (16, 16)).save("photo.png")
    code = main([command, *args])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and not out
    assert len(lines) <= 2, err  # one line; a late check adds its hint on a second
    assert f"'{meant}'" in err and "did you mean" in err, err


def _closed_stdout() -> io.TextIOWrapper:
    r, w = os.pipe()
    os.close(r)  # nobody will read: every write fails with EPIPE, as under `| head -1` after head exits
    return io.TextIOWrapper(os.fdopen(w, "wb", buffering=0), write_through=True)


@pytest.mark.parametrize("argv", [["models", "--no-params"], ["datasets"], ["summary", "vgg16"], ["--help"]]
                         + [[name, "--help"] for name in sorted(_subcommands())])  # fmt: skip
def test_output_into_a_closed_pipe_ends_quietly(argv, monkeypatch, capsys):
    stdout = _closed_stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        code = main(argv)
    finally:
        with contextlib.suppress(OSError):
            stdout.close()
    err = capsys.readouterr().err
    assert code in (0, 141), (code, err)
    assert "Traceback" not in err and "error" not in err, err



def test_piped_model_list_has_no_padding(capsys):
    """`cnnkit models > file`: lines end at their text, not padded with spaces to the table width."""
    assert main(["models", "--no-params"]) == 0  # under pytest stdout is not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 20 and lines[0].startswith("name")
    assert not [line for line in lines if line.endswith(" ")]


def test_every_command_that_takes_tta_takes_the_same_view_sets():
    """What `train --tta` records (flip+shift) can be reproduced by `eval` and `predict`; crops only there."""
    from cnnkit.config import TTA, TTA_MODES

    parser = build_parser()
    for mode in TTA_MODES:
        assert parser.parse_args(["eval", "RUN", "--tta", mode]).tta == mode
        assert parser.parse_args(["predict", "RUN", "x.png", "--tta", mode]).tta == mode
    assert set(TTA) - {"none"} <= set(TTA_MODES)

@pytest.mark.slow
def test_closed_pipe_in_a_real_shell_pipeline(tmp_path):
    """`cnnkit summary vgg16 | head -1`: the real thing, exit status and stderr as a shell sees them."""
    cnnkit = Path(sys.executable).with_name("cnnkit")
    proc = subprocess.run(["bash", "-c", f"'{cnnkit}' summary vgg16 --input 3x224x224 | head -1; "
                           'echo "status ${PIPESTATUS[0]}" >&2'], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] in ("status 0", "status 141")


# ---------------------------------------------------------------- never lose a user's file
def _pictures(folder: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    Image.fromarray(np.uint8(d.images[0] * 15.9)).resize((32, 32)).save(folder / "digit.png")
    yy, xx = np.mgrid[0:32, 0:32] / 32
    Image.fromarray(np.uint8(255 * np.stack([yy, xx, 1 - yy], -1))).save(folder / "content.png")
    Image.fromarray(np.uint8(255 * np.stack([xx, 1 - xx, yy], -1))).save(folder / "style.png")


# command line, default output name. Small settings: this checks files, not results.
DEFAULT_OUTPUTS = [
    (["show-batch", "digits", "--n", "4"], "batch.png"),
    (["filter", "digit.png", "--kernel", "sobel_x"], "digit_sobel_x.png"),
    (["filter-bank", "digit.png"], "filter_bank.png"),
    (["features", "pixels", "--data", "digits"], "features.npz"),
    (["retrieve", "--features", "pixels", "--index", "digits", "--show", "2"], "retrieval.png"),
    (["explain", "RUN", "digit.png"], "explain.png"),
    (["filters", "RUN"], "filters.png"),
    (["feature-maps", "RUN", "digit.png", "--layer", "features.0"], "maps.png"),
    (["top-activations", "RUN", "--layer", "features.0", "--unit", "0", "-k", "2"], "top.png"),
    (["dream", "RUN", "--class", "3", "--steps", "2"], "dream.png"),
    (["style-transfer", "content.png", "style.png", "--steps", "1", "--size", "32"], "styled.png"),
    (["fool", "RUN", "digit.png"], "fool.png"),
    (["robustness", "RUN", "--eps", "0,0.1", "--limit", "20"], "robustness.png"),
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    """A LeNet-5 run of one epoch of four batches: these tests check files, not what was learnt."""
    import cnnkit

    old = os.environ.get("CNNKIT_MAX_BATCHES")
    os.environ["CNNKIT_MAX_BATCHES"] = "4"
    try:
        return cnnkit.train(
            name="quick", runs_dir=str(tmp_path_factory.mktemp("runs")), epochs=1, quiet=True
        ).run_dir
    finally:
        if old is None:
            del os.environ["CNNKIT_MAX_BATCHES"]
        else:
            os.environ["CNNKIT_MAX_BATCHES"] = old


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "default"), DEFAULT_OUTPUTS, ids=[a[0] for a, _ in DEFAULT_OUTPUTS])
def test_default_output_never_replaces_a_file(argv, default, quick_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _pictures(tmp_path)
    argv = [str(quick_run) if a == "RUN" else a for a in argv]
    help_text = "\n".join(ln for ln in _subcommands()[argv[0]].format_help().splitlines())
    assert default in help_text.replace("\n", " ").replace("  ", " ") or argv[0] == "filter", help_text
    mine = tmp_path / default
    mine.write_bytes(b"the user's own file, not cnnkit's")
    inputs = {p: p.read_bytes() for p in tmp_path.glob("*.png")}
    before = set(tmp_path.iterdir())
    for attempt in (1, 2):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 0, (attempt, err)
    assert mine.read_bytes() == b"the user's own file, not cnnkit's"
    assert all(p.read_bytes() == b for p, b in inputs.items()), "an input was modified"
    made = set(tmp_path.iterdir()) - before
    stem, suffix = Path(default).stem, Path(default).suffix
    assert {f"{stem}-2{suffix}", f"{stem}-3{suffix}"} <= {p.name for p in made}, sorted(p.name for p in made)


def test_style_transfer_default_is_not_the_style_image():
    help_text = " ".join(_subcommands()["style-transfer"].format_help().split())
    assert "default styled.png" in help_text


# ---------------------------------------------------------------- file modes follow the umask
@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_writes_follow_the_umask(tmp_path, umask022):
    from cnnkit.io import atomic_write_json, atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    assert _mode(tmp_path / "a.txt") == 0o644 and _mode(tmp_path / "b.json") == 0o644
    os.umask(0o077)  # a private umask is honoured too
    atomic_write_text(tmp_path / "c.txt", "x")
    assert _mode(tmp_path / "c.txt") == 0o600


@pytest.mark.slow
def test_run_folder_files_are_0644_and_folders_0755(tmp_path, umask022, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNKIT_MAX_BATCHES", "2")
    assert main(["train", "--epochs", "1", "--name", "m", "--quiet"]) == 0
    assert main(["eval", "runs/m"]) == 0
    Image.new("L", (16, 16)).save("photo.png")
    assert main(["filter-bank", "photo.png", "-o", "bank.png"]) == 0
    capsys.readouterr()
    files = [p for p in Path("runs").rglob("*") if p.is_file()] + [Path("bank.png")]
    folders = [Path("runs")] + [p for p in Path("runs").rglob("*") if p.is_dir()]
    assert len(files) > 10
    assert {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o644} == {}
    assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o755} == {}
