"""The run folder: the contract between training and everything after it.

``runs/<name>/`` holds ``config.yaml``, ``metrics.csv``, ``split.json``, ``best.safetensors`` and
``last.safetensors`` (each with a ``.json`` sidecar saying how to rebuild and feed the model),
``checkpoint.pt`` (resumable training state), ``curves.png``, ``summary.json`` and ``log.txt``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, RunExistsError
from .io import atomic_write, atomic_write_json, atomic_write_text

WEIGHTS_FORMAT = "cnnkit-weights/1"


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
        keys = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in d.items() if k in keys})
        except TypeError as e:
            raise CheckpointError(f"{where}: incomplete sidecar: {e}") from e


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
        try:
            d = json.loads(side.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"sidecar {str(side)!r} is not valid JSON: {e}") from e
    elif embedded:
        d = json.loads(embedded)
    else:
        raise CheckpointError(f"{str(path)!r} has no sidecar {side.name} saying which model it belongs to")
    return state, WeightsMeta.from_dict(d, str(side))


def build_from_meta(meta: WeightsMeta, state: dict[str, torch.Tensor] | None = None, where: str = "") -> nn.Module:
    """Rebuild the model a sidecar describes and load ``state`` into it (strict)."""
    from .models import create_model

    model = create_model(
        meta.model, num_classes=meta.num_classes, in_chans=meta.channels,
        input_size=tuple(meta.input_size[1:]), **meta.model_args,
    )  # fmt: skip
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


@dataclass
class LoadedRun:
    """A trained model with what the run folder says about it."""

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

    @staticmethod
    def new_name(model: str, data: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in data.split(":")[-1].rstrip("/"))
        return f"{datetime.now():%Y%m%d-%H%M%S}-{model.replace(':', '-')}-{safe[-24:]}"

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
        if not self.path.is_dir():
            raise CheckpointError(f"run folder {str(self.path)!r} does not exist", hint="pass the folder `cnnkit train` printed")
        if not self.weights("best").is_file() and not self.weights("last").is_file():
            raise CheckpointError(f"{str(self.path)!r} holds no weights (best.safetensors)", hint="is it a cnnkit run folder?")

    def create(self, overwrite: bool = False) -> None:
        """Make the folder; an existing non-empty one is refused unless ``overwrite``."""
        if self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise RunExistsError(
                    f"run folder {str(self.path)!r} already exists",
                    hint="pick another --name, continue it with --resume, or replace it with --overwrite",
                )
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def read_config(self) -> dict[str, Any]:
        import yaml

        if not self.config.is_file():
            return {}
        return yaml.safe_load(self.config.read_text()) or {}

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
        return json.loads(self.summary.read_text()) if self.summary.is_file() else {}

    def append_log(self, line: str) -> None:
        with open(self.log, "a") as fh:
            fh.write(line.rstrip("\n") + "\n")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write(self.checkpoint, lambda p: torch.save(state, p))

    def load_checkpoint(self) -> dict[str, Any]:
        """The resumable state; never unpickles arbitrary objects (``weights_only=True``)."""
        if not self.checkpoint.is_file():
            raise CheckpointError(
                f"{str(self.path)!r} has no checkpoint.pt to resume from",
                hint="the run finished before any epoch completed; start it again with --overwrite",
            )
        try:
            return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a damaged zip/pickle
            raise CheckpointError(f"checkpoint {str(self.checkpoint)!r} is corrupt or unsafe to load: {e}") from e

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)
