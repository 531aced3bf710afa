"""The run folder: the contract between training and everything after it.

``runs/<name>/`` holds ``config.yaml``, ``metrics.csv``, ``split.json``, ``best.safetensors`` and
``last.safetensors`` (each with a ``.json`` sidecar saying how to rebuild and feed the model),
``checkpoint.pt`` (resumable training state), ``curves.png``, ``summary.json`` and ``log.txt``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ._run_methods import RunMethods
from .errors import CheckpointError, RunExistsError
from .io import atomic_write, atomic_write_json, atomic_write_text
from .lock import RunLock  # noqa: F401  (re-exported: the run folder API)

WEIGHTS_FORMAT = "cnnkit-weights/1"
RUN_MARKER = ".cnnkit-run"  # written into every run folder cnnkit creates


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is recognisably a cnnkit run (so ``--overwrite`` may replace it)."""
    p = Path(path)
    return (p / RUN_MARKER).is_file() or ((p / "config.yaml").is_file() and (p / "split.json").is_file())


@dataclass
class WeightsMeta:
    """The JSON sidecar of a weights file: everything needed to rebuild and feed the model."""

    model: str
    model_args: dict[str, Any]
    num_classes: int
    classes: list[str]
    input_size: list[int]  # [C, H, W]
    mean: list[float]
    std: list[float]
    epoch: int = 0
    metric: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    source: str = ""  # where the weights came from (trained here, fine-tuned from, ...)
    format: str = WEIGHTS_FORMAT

    @property
    def channels(self) -> int:
        return int(self.input_size[0])

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["channels"] = self.channels
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> WeightsMeta:
        if d.get("format") != WEIGHTS_FORMAT:
            raise CheckpointError(f"{where}: not a cnnkit weights sidecar (format {d.get('format')!r})")
        return record_from_dict(cls, d, where, "sidecar", "restore the file from the run folder it came from")

    def _problem(self) -> str | None:
        """What is wrong with the values (a hand-edited or damaged sidecar), or None."""

        def nums(v: Any, n: int) -> bool:
            return isinstance(v, list) and len(v) == n and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)  # fmt: skip

        if not isinstance(self.model, str) or not self.model:
            return "'model' must be a model name"
        if not isinstance(self.model_args, dict):
            return "'model_args' must be a mapping"
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 1:
            return f"'num_classes' must be a positive integer, not {self.num_classes!r}"
        if not isinstance(self.classes, list) or len(self.classes) != self.num_classes or not all(
                isinstance(c, str) for c in self.classes):  # fmt: skip
            return f"'classes' must list {self.num_classes} class names"
        if not nums(self.input_size, 3) or not all(isinstance(x, int) and 1 <= x <= 4096 for x in self.input_size):
            return f"'input_size' must be [channels, height, width], not {self.input_size!r}"
        c = self.input_size[0]
        if not nums(self.mean, c) or not nums(self.std, c) or not all(x > 0 for x in self.std):
            return f"'mean' and 'std' must hold {c} numbers each (std > 0)"
        return None


R = TypeVar("R")


def record_from_dict(cls: type[R], d: dict[str, Any], where: str, what: str, hint: str) -> R:
    """A dataclass record read from JSON (weights sidecar, fine-tune record), checked before use.

    Required keys must be present, and the record's own ``_problem()`` must find nothing wrong with
    the values (types, lengths, ranges): a hand-edited file fails here, naming the file, not later.
    """
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    missing = [k for k, f in fields.items() if k not in d
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        raise CheckpointError(f"{where}: incomplete {what} (no {', '.join(missing)})", hint=hint)
    record = cls(**{k: v for k, v in d.items() if k in fields})
    problem = record._problem()  # type: ignore[attr-defined]
    if problem:
        raise CheckpointError(f"{where}: damaged {what}: {problem}", hint=hint)
    return record


def save_weights(model: nn.Module, path: str | Path, meta: WeightsMeta) -> None:
    """Write ``path`` (safetensors) and ``path.json`` atomically; the metadata also goes inside the file."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta_json = json.dumps(meta.to_dict())
    atomic_write(path, lambda p: save_file(state, p, metadata={"cnnkit": meta_json}))
    atomic_write_json(path.with_suffix(".json"), meta.to_dict())


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Load a safetensors weights file and its sidecar (or the metadata embedded in the file)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"weights file {str(path)!r} is a folder", hint="restore the file from a copy")
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    try:
        state = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            embedded = (fh.metadata() or {}).get("cnnkit")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"weights file {str(path)!r} is corrupt or not a safetensors file ({e})",
            hint="re-run training or copy the file again",
        ) from e
    side = path.with_suffix(".json")
    if side.is_file():
        d, where = read_json(side, "weights sidecar"), str(side)
    elif embedded:
        try:
            d, where = json.loads(embedded), str(path)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"the metadata inside {str(path)!r} is not valid JSON ({e})") from None
    else:
        raise CheckpointError(f"{str(path)!r} has no sidecar {side.name} saying which model it belongs to")
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: not a cnnkit weights sidecar (not a JSON object)")
    return state, WeightsMeta.from_dict(d, where)


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file cnnkit wrote, with a one-line error naming the file if it is damaged."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} {str(p)!r} is damaged (not valid JSON: {e})",
                              hint="restore it from a copy, or re-run the command that wrote it") from None


def build_from_meta(meta: WeightsMeta, state: dict[str, torch.Tensor] | None = None, where: str = "") -> nn.Module:
    """Rebuild the model a sidecar describes and load ``state`` into it (strict)."""
    from .models import create_model

    def build() -> nn.Module:
        try:
            return create_model(
                meta.model, num_classes=meta.num_classes, in_chans=meta.channels,
                input_size=tuple(meta.input_size[1:]), **meta.model_args,
            )  # fmt: skip
        except (TypeError, ValueError) as e:  # model_args the builder does not take
            raise CheckpointError(f"the sidecar of {where!r} describes a model that cannot be built: {e}") from None

    if state is not None:
        # Compare shapes on the meta device first: a hand-edited sidecar (input_size 4096) would
        # otherwise allocate gigabytes for layers that cannot fit the weights anyway.
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build().state_dict().items()}
        wrong = [k for k, v in state.items() if k in shapes and tuple(v.shape) != shapes[k]]
        if wrong or set(shapes) != set(state):
            detail = f"{wrong[0]}: file {tuple(state[wrong[0]].shape)} vs model {shapes[wrong[0]]}" if wrong else (
                f"{len(set(shapes) ^ set(state))} parameter names differ")  # fmt: skip
            raise CheckpointError(f"weights {where!r} do not fit model {meta.model!r} ({detail})",
                                  hint="the weights file and its sidecar disagree; was the file replaced by another run's?")  # fmt: skip
    model = build()
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[:4]
            raise CheckpointError(
                f"weights {where!r} do not fit model {meta.model!r}: " + " ".join(first),
                hint="the weights file and its sidecar disagree; was the file replaced by another run's?",
            ) from e
    return model


@dataclass(repr=False)  # RunMethods' short repr, not one that prints the whole network
class LoadedRun(RunMethods):
    """A trained model with what the run folder says about it (``predict``/``explain``/``evaluate``: RunMethods)."""

    path: Path
    model: nn.Module
    meta: WeightsMeta
    config: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return self.meta.classes


def load_run(path: str | Path, which: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run folder's ``best`` (or ``last``) weights into a fresh model, in eval mode."""
    run = RunDir(path)
    run.check_exists()
    wpath = run.path / f"{which}.safetensors"
    state, meta = read_weights(wpath)
    model = build_from_meta(meta, state, where=str(wpath)).to(device).eval()
    return LoadedRun(run.path, model, meta, run.read_config())


class RunDir:
    """Paths and writers of one run folder. Only the main process (rank 0) writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._replaces: Path | None = None  # the run this one will replace once it has a checkpoint

    @staticmethod
    def new_name(model: str, data: str) -> str:
        """``20261130-042523-lenet5-digits``; a class subset adds its classes (``...-digits-5-6-7-8-9``)."""
        from urllib.parse import parse_qsl

        body, _, query = data.partition("?")  # a subset: spec's options are not part of a readable name
        where = body.rpartition(":")[2].rstrip("/\\")
        label = Path(where).name or where
        classes = dict(parse_qsl(query)).get("classes")
        if classes:
            label += "-" + classes
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40].strip("-") or "data"
        return f"{datetime.now():%Y%m%d-%H%M%S}-{model.replace(':', '-')}-{safe}"

    # files
    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.csv")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    summary = property(lambda self: self.path / "summary.json")
    split = property(lambda self: self.path / "split.json")
    curves = property(lambda self: self.path / "curves.png")
    log = property(lambda self: self.path / "log.txt")

    def weights(self, which: str) -> Path:
        return self.path / f"{which}.safetensors"

    def check_exists(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{str(self.path)!r} is a file, not a run folder",
                                  hint="pass the folder that holds it (the one `cnnkit train` printed)")  # fmt: skip
        if not self.path.is_dir():
            raise CheckpointError(f"run folder {str(self.path)!r} does not exist", hint="pass the folder `cnnkit train` printed")
        if not self.weights("best").is_file() and not self.weights("last").is_file():
            raise CheckpointError(f"{str(self.path)!r} holds no weights (best.safetensors)", hint="is it a cnnkit run folder?")

    def create(self, overwrite: bool = False) -> None:
        """Make the folder, or stage a replacement of an existing run (``overwrite``).

        A new run's folder is made with ``mkdir`` (never ``exist_ok``), so two processes cannot both
        create it. With ``overwrite`` the old run is not touched now: the new run is written into a
        hidden sibling folder and swapped in by :meth:`save_checkpoint` once its first complete
        checkpoint exists, so a replacement that fails early leaves the old run as it was.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunExistsError(f"{str(self.path)!r} exists and is not a folder", hint="pick another --name")
        if self.path.is_dir() and any(self.path.iterdir()):
            if not overwrite:
                raise RunExistsError(
                    f"run folder {str(self.path)!r} already exists",
                    hint="pick another --name, continue it with --resume, or replace it with --overwrite",
                )
            if not is_run_folder(self.path):
                raise RunExistsError(
                    f"{str(self.path)!r} is not a cnnkit run folder (no config.yaml and split.json), so "
                    "--overwrite will not delete it",
                    hint="pick another --name or --runs-dir; move the folder away yourself if you meant it",
                )
            self._replaces = self.path
            self.path = self.path.parent / f".{self.path.name}.new-{os.getpid()}"
            if self.path.exists():
                shutil.rmtree(self.path)  # our own leftover from a killed process with the same pid
            self.path.mkdir()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.path.mkdir()
            except FileExistsError:  # an empty folder (or one made just now by another process)
                if any(self.path.iterdir()):
                    raise RunExistsError(f"run folder {str(self.path)!r} was just created by another process",
                                         hint="pick another --name") from None  # fmt: skip
        (self.path / RUN_MARKER).write_text(f"cnnkit run folder; created by pid {os.getpid()}\n")

    @property
    def staged(self) -> bool:
        """True while this run is a replacement that has not yet been swapped in."""
        return self._replaces is not None

    def _swap_in(self) -> None:
        """Put a staged replacement in place of the old run (rename, rename, then delete the old one)."""
        target = self._replaces
        assert target is not None
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(self.path, target)
        self.path, self._replaces = target, None
        shutil.rmtree(old, ignore_errors=True)

    def discard_staged(self) -> None:
        """Remove an unfinished replacement; the run it would have replaced is left untouched."""
        if self._replaces is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path, self._replaces = self._replaces, None

    def read_config(self) -> dict[str, Any]:
        import yaml

        if not self.config.is_file():
            return {}
        try:
            d = yaml.safe_load(self.config.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{str(self.config)!r} is damaged (not valid YAML: {first})",
                                  hint="restore it from a copy; it records how the run was trained") from None
        if not isinstance(d, dict):
            raise CheckpointError(f"{str(self.config)!r} is damaged (not a mapping of option: value)",
                                  hint="restore it from a copy; it records how the run was trained")
        return d

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.metrics, buf.getvalue())

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics.is_file():
            return []
        with open(self.metrics, newline="") as fh:
            return list(csv.DictReader(fh))

    def read_summary(self) -> dict[str, Any]:
        if not self.summary.is_file():
            return {}
        d = read_json(self.summary, "run summary")
        if not isinstance(d, dict):
            raise CheckpointError(f"run summary {str(self.summary)!r} is damaged (not a JSON object)")
        return d

    def read_split(self) -> dict[str, Any]:
        """``split.json``: the dataset, classes and train/val/test membership (empty if absent)."""
        if not self.split.is_file():
            return {}
        d = read_json(self.split, "split file")
        ok = isinstance(d, dict) and all(isinstance(d.get(s, []), list) for s in ("train", "val", "test"))
        if not ok:
            raise CheckpointError(f"split file {str(self.split)!r} is damaged (expected train/val/test lists)",
                                  hint="restore it from a copy; it records which images were held out")  # fmt: skip
        return d

    def append_log(self, line: str) -> None:
        with open(self.log, "a") as fh:
            fh.write(line.rstrip("\n") + "\n")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write(self.checkpoint, lambda p: torch.save(state, p))
        if self._replaces is not None:  # the replacement is now complete enough to resume: swap it in
            self._swap_in()

    def load_checkpoint(self) -> dict[str, Any]:
        """The resumable state; never unpickles arbitrary objects (``weights_only=True``)."""
        if not self.checkpoint.is_file():
            trained = [w.name for w in (self.weights("best"), self.weights("last")) if w.is_file()]
            if trained:  # the weights are there: never advise a flag that would delete them
                raise CheckpointError(
                    f"{str(self.path)!r} has no checkpoint.pt, so it cannot be continued; its trained weights "
                    f"({', '.join(trained)}) are intact",
                    hint="use the run as it is (cnnkit eval/predict), or train longer in a new run with another --name",
                )
            raise CheckpointError(
                f"{str(self.path)!r} has no checkpoint.pt to resume from: no epoch finished",
                hint="start it again with --overwrite (it holds no trained weights)",
            )
        try:
            ck = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a damaged zip or a refused pickle
            from .models.weights import refused_global

            g = refused_global(e)
            if g is not None:
                # Never repeat PyTorch's advice to retry with weights_only=False: that runs the payload.
                raise CheckpointError(
                    f"checkpoint {str(self.checkpoint)!r} holds objects cnnkit refuses to unpickle (it asks to run {g})",
                    hint="it is not a checkpoint cnnkit wrote, or it was tampered with; do not load it",
                ) from None
            raise CheckpointError(
                f"checkpoint {str(self.checkpoint)!r} is corrupt or not a PyTorch checkpoint ({type(e).__name__})",
                hint="restore it from a copy, or use the run's weights as they are (cnnkit eval/predict)",
            ) from None
        if not isinstance(ck, dict) or ck.get("format") != "cnnkit-checkpoint/1":
            raise CheckpointError(f"{str(self.checkpoint)!r} is not a cnnkit checkpoint",
                                  hint="was it replaced by another file?")  # fmt: skip
        return ck

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)
