"""Which command continues a run, and whether its data is still the data it was trained on (``--resume``).

A run records the ``cnnkit`` command that made it in ``resume.json``, so ``cnnkit train --resume`` can
send a fine-tune run to ``cnnkit finetune --resume`` without the engine knowing fine-tuning exists.
"""

from __future__ import annotations

from ..data import DatasetSplits
from ..errors import CheckpointError
from ..run import RunDir, read_json

RESUME_FILE = "resume.json"  # in the run folder: which command continues the run
RESUME_FORMAT = "cnnkit-resume/1"
# Files that mark a run as another command's, for runs made before resume.json existed; filled by
# the parts that write them (register_run_file), so the engine names no command but its own.
_RUN_FILES: dict[str, str] = {}


def register_run_file(name: str, command: str) -> None:
    """Declare that a run folder holding file ``name`` is continued by ``cnnkit COMMAND --resume``.

    Only for runs made before :func:`train` recorded its ``command`` in ``resume.json``: the record,
    when present, is the answer.
    """
    _RUN_FILES[name] = command


def resume_command(run: RunDir) -> str:
    """The command that continues ``run``: ``resume.json``'s, else a registered run file's, else ``train``."""
    p = run.path / RESUME_FILE
    if not p.is_file():
        return next((c for name, c in _RUN_FILES.items() if (run.path / name).is_file()), "train")
    d = read_json(p, "resume record")
    command = d.get("command") if isinstance(d, dict) else None
    if not isinstance(command, str) or not command or not all(c.isalnum() or c in "-_" for c in command):
        raise CheckpointError(f"resume record {str(p)!r} is damaged (no command name)",
                              hint='restore it, or write {"command": "train"} into it')  # fmt: skip
    return command


def check_split(run: RunDir, data: DatasetSplits) -> None:
    """Refuse to resume when the dataset's split no longer matches ``split.json`` (its files changed)."""
    saved = run.read_split()
    if not saved:
        return
    for s in ("train", "val", "test"):
        if saved.get(s) != list(data.split(s).ids):
            raise CheckpointError(
                f"the {s} split of {data.name!r} differs from the one saved in {str(run.split)!r}",
                hint="the dataset files changed since this run was trained",
            )
