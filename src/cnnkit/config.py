"""Typed training configuration: defaults, YAML in/out, validation with clear messages.

Every field of :class:`TrainConfig` is also a ``cnnkit train`` flag (``--batch-size`` for
``batch_size``) and a key of ``--config file.yaml``; flags override the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from . import registries
from .errors import ConfigError, suggest

# Optimisers, schedules and losses are registries (cnnkit.registries), filled by cnnkit.engine and by
# anyone who registers more: the choices below are live views, so a new entry is accepted at once.
OPTIMIZERS = registries.OPTIMIZERS
# The learning rate each optimiser gets when neither the user nor the model's recipe sets one (each
# optimiser declares it: sgd 0.05, adam/adamw 1e-3, ...); a live name -> lr mapping.
DEFAULT_LR = registries.OPTIMIZERS.view("default_lr")
SCHEDULERS = registries.SCHEDULES
LOSSES = registries.LOSSES
DEVICES = ("auto", "cpu", "cuda", "mps")
TRISTATE = ("auto", "on", "off")
# Test-time view sets (cnnkit.data.views makes them): `eval` and `predict` take any; training scores its
# final test split with the first two (AlexNet's crops need the uint8 images, which the training loader
# has already normalised).
TTA_MODES = ("flip", "flip+shift", "crops")
TTA = ("none", *TTA_MODES[:2])
MONITOR = ("val_loss", "val_acc")


# The general recipe: what an option left unset gets when the model's recipe does not set it either (the
# one place these defaults live; `cnnkit train --help` shows them). Each choice and its measured effect
# is in docs/recipe.md (benchmarks/recipe.py, benchmarks/peers.py).
GENERAL_RECIPE: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 64,
    "weight_decay": 5e-4,
    "scheduler": "cosine",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "tta": "none",
}


def _auto(help: str, choices: Collection[str] | None = None, **kw: Any) -> Any:
    """A field the model's recipe may set: ``None`` until resolved; ``{name}`` in ``help`` is the general default."""
    return _f(None, help.format(**GENERAL_RECIPE), choices, auto=True, **kw)


def _f(default: Any, help: str, choices: Collection[str] | None = None, **kw: Any) -> Any:
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
    weights: str | None = _f(None, "start a new run from these weights: a .safetensors or .pt state dict of the same "
                             "model and classes, e.g. another run's best.safetensors (`cnnkit finetune --weights` for "
                             "data with other classes)", metavar="FILE")
    data: str = _f("digits", "dataset name, folder:PATH, csv:FILE, or a class subset of any of them: "
                   "'subset:digits?classes=0,1,2,3,4' (`cnnkit datasets` lists the names)")
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
    epochs: int | None = _auto("number of training epochs (default: the model's recipe, else {epochs})",
                              lo=1, hi=1_000_000)
    time_budget: float | None = _f(None, "train for about this many seconds instead of a number of epochs: a few "
                                   "steps are timed first, then the epoch count (and the schedule) is fixed to "
                                   "fit and recorded in config.yaml", lo_open=0.0, hi=1e7, metavar="SECONDS")
    # How `epochs` was chosen when cnnkit chose it (--time-budget); a record cnnkit writes, not an option.
    epochs_reason: str | None = _f(None, argparse.SUPPRESS)
    batch_size: int | None = _auto("mini-batch size, with torchrun the global batch split over the processes "
                                  "(default: the model's recipe, else {batch_size})", lo=1, hi=65536)
    # optimiser
    optimizer: str | None = _f(None, "optimiser (default: the model's recipe, else sgd)", OPTIMIZERS, auto=True)
    lr: float | None = _f(None, "learning rate (default: the model's recipe, else the optimiser's own, e.g. 0.05 "
                          "for sgd and 0.001 for adam); find: run the range test of `cnnkit lr-find` first and "
                          "train with its suggestion", lo_open=0.0, hi=10.0, auto=True, words=("find",))
    # Where `lr` came from when `--lr find` chose it ("lr-find chose 0.0546: ..."): a record, like augment_reason.
    lr_reason: str | None = _f(None, argparse.SUPPRESS)
    momentum: float = _f(0.9, "SGD momentum", lo=0.0, hi_open=1.0)
    nesterov: bool = _f(True, "Nesterov momentum (SGD)")
    weight_decay: float | None = _auto("L2 weight decay (default: the model's recipe, else {weight_decay:g})", lo=0.0)
    l1: float = _f(0.0, "L1 penalty on the weights, added to the loss", lo=0.0)
    # learning-rate schedule
    scheduler: str | None = _auto("learning-rate schedule, per step (default: the model's recipe, else {scheduler})",
                                 SCHEDULERS)
    warmup_epochs: float | None = _auto("linear warmup from lr/100 over this many epochs (default: the model's recipe, "
                                       "e.g. 1 for batch-norm VGG and ImageNet ResNets, else {warmup_epochs:g})", lo=0.0)
    step_size: int = _f(10, "step schedule: epochs between decays", lo=1)
    gamma: float = _f(0.1, "step and plateau schedules: decay factor", lo_open=0.0, hi_open=1.0)
    plateau_patience: int = _f(3, "plateau schedule: epochs without improvement before decaying", lo=0)
    # loss
    loss: str = _f("cross_entropy", "loss function", LOSSES)
    label_smoothing: float | None = _auto("cross-entropy label smoothing (default: the model's recipe, else {label_smoothing:g})",
                                         lo=0.0, hi_open=1.0)
    # regularisation and stopping
    augment: str = _f("auto", "augmentation: auto (chosen from the training images: no flips where a probe tells "
                      "them from their mirror images, shifts for the image size, colour jitter for colour images), "
                      "none, or a list like 'translate=2,rotate=10,flip'")
    # Why `augment` is what it is ("auto chose SPEC: ..."): a record cnnkit writes, not an option. Its help
    # is argparse.SUPPRESS, so `cnnkit train --help` does not list it as a flag.
    augment_reason: str | None = _f(None, argparse.SUPPRESS)
    early_stopping: int = _f(0, "stop after this many epochs without improvement of --monitor (0: off)", lo=0)
    monitor: str = _f("val_loss", "validation metric for best checkpoint, plateau and early stopping", MONITOR)
    grad_clip: float = _f(0.0, "clip the gradient norm to this value (0: off)", lo=0.0)
    tta: str | None = _auto("test-time augmentation of the final test score, recorded beside the plain score: none, "
                            "flip, or flip+shift (6 views) (default: the model's recipe, else {tta})", TTA)
    # machine
    device: str = _f("auto", "where to train", DEVICES)
    amp: str = _f("auto", "mixed precision (auto: on for CUDA)", TRISTATE)
    channels_last: str = _f("auto", "channels-last memory format (auto: on for CUDA conv nets)", TRISTATE)
    compile: str = _f("auto", "torch.compile the training step (auto: on for CUDA, falling back with a note where "
                      "it fails)", TRISTATE)
    workers: int = _f(0, "data loader worker processes for streamed data", lo=0, hi=256)
    shuffle_buffer: int = _f(0, "shards:DIR data: 0 reads samples by offset in an exact shuffle; N > 0 reads the "
                             "shards in sequence through a shuffle buffer of N samples (slow random reads)",
                             lo=0, hi=10_000_000)  # fmt: skip
    sync_bn: bool = _f(False, "with torchrun: batch-norm statistics over the global batch (SyncBatchNorm)")
    seed: int = _f(0, "random seed (splits, initialisation, shuffling, augmentation)", lo=0, hi=2**32 - 1)
    deterministic: bool = _f(True, "use deterministic algorithms (same seed, same numbers)")
    # run folder
    name: str | None = _f(None, "run name (default: the time, model and data, e.g. 20261130-145503-lenet5-digits)")
    runs_dir: str = _f("runs", "folder holding the runs")
    logger: str = _f("none", "extra training log besides metrics.csv: tensorboard writes RUN/tensorboard/ (needs "
                     'pip install "cnnkit[tensorboard]")', ("none", "tensorboard"))

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
        if self.weights is not None and not self.weights.strip():  # an empty value must not mean "no weights"
            raise ConfigError("--weights must not be empty", hint="e.g. --weights runs/demo/best.safetensors")
        reserved = sorted(set(self.model_args) & {"num_classes", "in_chans", "input_size"})
        if reserved:  # the data decides these; passing them twice would fail deep inside the model builder
            raise ConfigError(f"--model-args cannot set {', '.join(reserved)}",
                              hint="the data sets the classes and channels; use --input-size for the size")  # fmt: skip
        if ":" not in self.model:  # registered models: argument names and types checked before any work
            from .models.registry import check_model_args

            check_model_args(self.model, self.model_args)
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
            if not isinstance(k, str):  # `1: 2` in a YAML file
                raise ConfigError(f"{source}: option names must be text, got {k!r}", hint=suggest(str(k), known))
            key = k.replace("-", "_")
            if key not in known:
                raise ConfigError(f"{source}: unknown key {k!r}", hint=suggest(key, known))
            kw[key] = _coerce(known[key], v, source)
        try:
            return cls(**kw).validate()
        except ConfigError as e:
            if source == "config":  # flags and API keywords: the message already names the option
                raise
            # A file's value (a run's config.yaml, a --config recipe): say which file holds it.
            raise ConfigError(f"{source}: {e.message}", hint=e.hint) from None

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

    def with_defaults(self, recipe: dict[str, Any] | None = None) -> TrainConfig:
        """Every unset (``None``) recipe field filled: from the model's ``recipe``, else :data:`GENERAL_RECIPE`.

        The optimiser and learning rate go together (:func:`optimizer_and_lr`). Used by
        :func:`cnnkit.engine.train.resolve_config`, and by the engine for a config built by hand.
        """
        recipe = recipe or {}
        upd: dict[str, Any] = {}
        if self.optimizer is None or self.lr is None:
            upd["optimizer"], upd["lr"] = optimizer_and_lr(self.optimizer, self.lr, recipe)
        for name, general in GENERAL_RECIPE.items():
            if getattr(self, name) is None:
                upd[name] = recipe.get(name, general)
        # dataclasses.replace, not self.replace: filling in defaults validates nothing anew (resolve_config
        # validates the finished config; a hand-built one meets the registries' own errors).
        return dataclasses.replace(self, **upd) if upd else self

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice is an error.

    Plain ``safe_load`` keeps the last of two ``epochs:`` lines silently, so the run would not be
    the one the file seems to describe.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolve ``<<`` merges first: overriding a merged key is allowed
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key (a list): the constructor reports it
                dup = False
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)  # fmt: skip
        return super().construct_mapping(node, deep=deep)


def yaml_problem(e: yaml.YAMLError) -> str:
    """One line for a YAML error: the problem and where (PyYAML's own text spans several lines)."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return where + " ".join(str(e.problem or e.context or type(e).__name__).split())
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return first


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that also refuses duplicate keys; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def config_mapping(config: TrainConfig | dict[str, Any] | str | Path | None) -> dict[str, Any]:
    """Options given as a :class:`TrainConfig`, a mapping or a YAML file, as a plain dict (train, finetune)."""
    if isinstance(config, TrainConfig):
        return config.to_dict()
    if isinstance(config, (str, Path)):
        return load_yaml(config)
    return dict(config or {})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a one-line error naming the file when it is missing or malformed."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a folder", hint="pass a .yaml file of option: value lines")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist", hint="pass a .yaml file of option: value lines")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text (is it a YAML file?)",
                          hint="save it as UTF-8 text with option: value lines") from None  # fmt: skip
    try:
        d = parse_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML ({yaml_problem(e)})",
                          hint="write one option: value per line, e.g. epochs: 5") from None  # fmt: skip
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of option: value, not a {type(d).__name__}",
                          hint="write one option: value per line, e.g. epochs: 5")  # fmt: skip
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
            # Only a real boolean or 0/1: bool([1]) or bool("x") would silently mean True.
            if isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)):
                return bool(v)
            raise ValueError
        if isinstance(v, bool):  # YAML's `epochs: true` is not the number 1
            raise ValueError
        if t is int:
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            if not isinstance(v, (int, float, str)):
                raise ValueError
            return int(v)
        if t is float:
            if not isinstance(v, (int, float, str)):
                raise ValueError
            return float(v)
        if t is dict:
            if isinstance(v, str):
                try:
                    v = parse_yaml(v) or {}
                except yaml.YAMLError as e:
                    raise ConfigError(f"{source}: {f.name} is not a valid YAML mapping ({yaml_problem(e)})",
                                      hint="e.g. --model-args '{act: tanh}'") from None  # fmt: skip
            if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
                raise ValueError
            return v
        if not isinstance(v, (str, int, float)):  # str([...]) would become a name like "['lenet5']"
            raise ValueError
        return str(v)
    except (TypeError, ValueError, OverflowError):
        kind = {"dict": "a mapping", "str": "text"}.get(t.__name__, t.__name__)
        raise ConfigError(f"{source}: {f.name} must be {kind}, got {v!r}"[:300]) from None


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
