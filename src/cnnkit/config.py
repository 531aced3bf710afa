"""Typed training configuration: defaults, YAML in/out, validation with clear messages.

Every field of :class:`TrainConfig` is also a ``cnnkit train`` flag (``--batch-size`` for
``batch_size``) and a key of ``--config file.yaml``; flags override the file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from .errors import ConfigError, suggest

OPTIMIZERS = ("sgd", "adam", "adamw")
# The learning rate each optimiser gets when neither the user nor the model's recipe sets one: Adam's
# step is normalised per parameter, so SGD's 0.05 would be ~50x too large for it.
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
SCHEDULERS = ("constant", "step", "plateau", "cosine", "onecycle")
LOSSES = ("cross_entropy", "hinge", "squared_error")
DEVICES = ("auto", "cpu", "cuda", "mps")
TRISTATE = ("auto", "on", "off")
MONITOR = ("val_loss", "val_acc")


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None, **kw: Any) -> Any:
    meta = {"help": help, "choices": choices, **kw}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder."""

    # what
    model: str = _f("lenet5", "model name (`cnnkit models` lists them)")
    model_args: dict = _f({}, "extra keyword arguments for the model builder (YAML mapping)")
    data: str = _f("digits", "dataset name, folder:PATH or csv:FILE (`cnnkit datasets` lists them)")
    data_root: str | None = _f(None, "where standard datasets live (default: $CNNKIT_DATA or ~/.cache/cnnkit/data)")
    download: bool = _f(False, "download a standard dataset if its files are missing")
    val_split: float = _f(0.15, "fraction held out for validation when the data has no val split", lo=0.0, hi=0.9)
    test_split: float = _f(0.15, "fraction held out for testing when the data has no test split", lo=0.0, hi=0.9)
    input_size: int | None = _f(None, "image side in pixels (default: the model's, at most 32 for 8-32 px datasets "
                                "such as digits and CIFAR)", lo=1, hi=2048)
    strict: bool = _f(False, "folder/CSV data: stop at the first unreadable or non-image file instead of skipping it")
    memory_budget_mb: int = _f(4096, "folder/CSV data: decode into memory up to this size (MB), stream from disk beyond", lo=0)
    cache: bool = _f(True, "folder/CSV data: keep decoded images on disk for the next run ($CNNKIT_CACHE or ~/.cache/cnnkit/decoded)")
    # how long and how big
    epochs: int = _f(30, "number of training epochs", lo=1, hi=1_000_000)
    batch_size: int = _f(64, "mini-batch size", lo=1, hi=65536)
    # optimiser
    optimizer: str | None = _f(None, "optimiser (default: the model's recipe, else sgd)", OPTIMIZERS, auto=True)
    lr: float | None = _f(None, "learning rate (default: the model's recipe, else 0.05 for sgd and 0.001 for "
                          "adam/adamw)", lo_open=0.0, auto=True)
    momentum: float = _f(0.9, "SGD momentum", lo=0.0, hi_open=1.0)
    nesterov: bool = _f(True, "Nesterov momentum (SGD)")
    weight_decay: float = _f(5e-4, "L2 weight decay", lo=0.0)
    l1: float = _f(0.0, "L1 penalty on the weights, added to the loss", lo=0.0)
    # learning-rate schedule
    scheduler: str = _f("cosine", "learning-rate schedule", SCHEDULERS)
    warmup_epochs: float | None = _f(None, "linear warmup from lr/100 over this many epochs (default: the model's "
                                     "recipe, e.g. 1 for batch-norm VGG and ImageNet ResNets, else 0)", lo=0.0, auto=True)
    step_size: int = _f(10, "step schedule: epochs between decays", lo=1)
    gamma: float = _f(0.1, "step and plateau schedules: decay factor", lo_open=0.0, hi_open=1.0)
    plateau_patience: int = _f(3, "plateau schedule: epochs without improvement before decaying", lo=0)
    # loss
    loss: str = _f("cross_entropy", "loss function", LOSSES)
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing", lo=0.0, hi_open=1.0)
    # regularisation and stopping
    augment: str = _f("auto", "augmentation: auto, none, or a list like 'translate=2,rotate=10,flip'")
    early_stopping: int = _f(0, "stop after this many epochs without improvement of --monitor (0: off)", lo=0)
    monitor: str = _f("val_loss", "validation metric for best checkpoint, plateau and early stopping", MONITOR)
    grad_clip: float = _f(0.0, "clip the gradient norm to this value (0: off)", lo=0.0)
    # machine
    device: str = _f("auto", "where to train", DEVICES)
    amp: str = _f("auto", "mixed precision (auto: on for CUDA)", TRISTATE)
    channels_last: str = _f("auto", "channels-last memory format (auto: on for CUDA conv nets)", TRISTATE)
    workers: int = _f(0, "data loader worker processes for streamed data", lo=0, hi=256)
    seed: int = _f(0, "random seed (splits, initialisation, shuffling, augmentation)", lo=0, hi=2**32 - 1)
    deterministic: bool = _f(True, "use deterministic algorithms (same seed, same numbers)")
    # run folder
    name: str | None = _f(None, "run name (default: a timestamp)")
    runs_dir: str = _f("runs", "folder holding the runs")

    # ---------------------------------------------------------------- helpers
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`ConfigError` naming the first bad one."""
        for f in fields(self):
            _check(f, getattr(self, f.name))
        if self.name is not None:
            check_run_name(self.name)
        if not self.runs_dir.strip():
            raise ConfigError("--runs-dir must not be empty", hint="e.g. --runs-dir runs")
        if self.val_split + self.test_split >= 1.0:
            raise ConfigError(
                f"val_split + test_split = {self.val_split + self.test_split:g} leaves no training data",
                hint="use fractions that sum to less than 1, e.g. --val-split 0.15 --test-split 0.15",
            )
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping, rejecting unknown keys and converting types."""
        known = {f.name: f for f in fields(cls)}
        kw = {}
        for k, v in d.items():
            key = k.replace("-", "_")
            if key not in known:
                raise ConfigError(f"{source}: unknown key {k!r}", hint=suggest(key, known))
            kw[key] = _coerce(known[key], v, source)
        return cls(**kw).validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(load_yaml(path), source=str(path))

    def to_yaml(self, path: str | Path) -> None:
        from .io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def auto_fields(cls) -> tuple[str, ...]:
        """Fields a model's recipe fills when the user leaves them unset (``None``)."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("auto"))

    def replace(self, **kw: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **kw})


def check_run_name(name: str) -> str:
    """A run name is one folder name inside --runs-dir: no separators, not empty, not '.' or '..'.

    This is what keeps ``--overwrite`` from reaching outside the runs folder (``--name ..``).
    """
    import os

    bad = ("/", "\\", "\0") + ((os.altsep,) if os.altsep else ())
    if not name.strip() or name in (".", "..") or any(c in name for c in bad) or name.startswith("."):
        raise ConfigError(
            f"--name {name!r} is not a plain folder name",
            hint="use letters, digits, '-' and '_' (no '/', not empty, not starting with '.'); "
            "put runs elsewhere with --runs-dir",
        )
    if len(name.encode()) > 200:
        raise ConfigError(f"--name is {len(name.encode())} bytes long", hint="use at most 200 bytes")
    return name


def as_flags(options: dict[str, Any]) -> str:
    """Config values as the ``cnnkit train`` flags that set them: ``--warmup-epochs 1 --lr 0.0003``."""
    return " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
                    for k, v in options.items())  # fmt: skip


def optimizer_and_lr(optimizer: str | None, lr: float | None, recipe: dict[str, Any] | None = None) -> tuple[str, float]:
    """The optimiser and learning rate to use: the given ones, else the model ``recipe``'s, else defaults.

    A recipe's learning rate belongs to its optimiser: ``--optimizer sgd`` on a model whose recipe is
    Adam gets SGD's default rate, not Adam's.
    """
    recipe = recipe or {}
    name = optimizer or recipe.get("optimizer", "sgd")
    if lr is None:
        same_opt = recipe.get("optimizer", "sgd") == name
        lr = recipe["lr"] if same_opt and "lr" in recipe else DEFAULT_LR[name]
    return name, lr


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of option: value")
    return d


def field_type(f: dataclasses.Field) -> type:
    """The basic type of a field (``int`` for ``int | None``)."""
    t = f.type if not isinstance(f.type, str) else eval(f.type, {"dict": dict})  # annotations are strings
    args = [a for a in get_args(t) if a is not type(None)]
    if get_origin(t) is not None and args:
        return args[0]
    return t


def _coerce(f: dataclasses.Field, v: Any, source: str) -> Any:
    t = field_type(f)
    if v is None:
        return None
    try:
        if t is bool:
            if isinstance(v, str):
                if v.lower() in ("1", "true", "yes", "on"):
                    return True
                if v.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(v)
        if t is int:
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            return int(v)
        if t is float:
            return float(v)
        if t is dict:
            if isinstance(v, str):
                v = yaml.safe_load(v) or {}
            if not isinstance(v, dict):
                raise ValueError
            return v
        return str(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {f.name} must be {t.__name__}, got {v!r}") from None


def _check(f: dataclasses.Field, v: Any) -> None:
    m = f.metadata
    flag = "--" + f.name.replace("_", "-")
    if v is None:
        return
    if m.get("choices") and v not in m["choices"]:
        raise ConfigError(
            f"{flag} {v!r} is not allowed", hint="allowed values: " + ", ".join(m["choices"])
        )
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{flag} must be a finite number, got {v}")
        bounds = [
            ("lo", lambda a, b: a >= b, ">="),
            ("lo_open", lambda a, b: a > b, ">"),
            ("hi", lambda a, b: a <= b, "<="),
            ("hi_open", lambda a, b: a < b, "<"),
        ]
        for key, ok, sym in bounds:
            if key in m and not ok(v, m[key]):
                raise ConfigError(f"{flag} must be {sym} {m[key]:g}, got {v:g}")
