"""``cnnkit.finetune``: start from trained weights, replace the classifier, train with frozen layers.

The recipe (fastai's ``fine_tune``, and the lectures' "take a pretrained net and retrain the last
layers"):

1. build the architecture for the *source's* class count and load its weights strictly (every key and
   shape must fit, so a wrong ``--model`` fails loudly instead of silently training from scratch);
2. replace the classifier by a fresh one for the new classes (:func:`~cnnkit.models.reset_classifier`);
3. freeze part of the network (:mod:`cnnkit.transfer.freeze`; default ``all-conv``) and train the rest,
   with batch norm in frozen parts kept in eval mode;
4. after ``unfreeze_after`` epochs unfreeze everything and go on training, the formerly frozen
   parameters at ``backbone_lr_mult`` x the learning rate (default 0.1).

Everything goes through :func:`cnnkit.train`: ``model_fn`` builds the model and returns it as a
:class:`~cnnkit.engine.train.ModelSetup` with its learning-rate multipliers and normalisation;
callbacks (:class:`~cnnkit.transfer.freeze.UnfreezeAt`, :class:`~cnnkit.transfer.freeze.FrozenBatchNorm`,
the record below) do the rest; ``command="finetune"`` makes ``cnnkit train --resume`` point here. A
fine-tune run is an ordinary run folder (``cnnkit eval``/``predict`` work on it) plus
``finetune.json``: the options, so ``resume`` rebuilds the same model and unfreezing schedule, and
where the weights came from (also in the weights' sidecar ``source`` and in ``summary.json``).

Weights from RGB models fed grey images (torchvision's ImageNet ResNet on digits): the first
convolution's kernels are summed over the three colour channels (timm's ``adapt_input_conv``), which
gives exactly the RGB network's response to a grey image R = G = B, instead of tripling the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig, config_mapping
from ..data import DatasetSplits
from ..engine import TrainResult, train
from ..engine.callbacks import Callback
from ..engine.train import ModelSetup, recipe_of, register_run_file
from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_json
from ..models import create_model, reset_classifier
from ..run import RunDir, read_weights
from .freeze import FreezePolicy, FreezeReport, FrozenBatchNorm, UnfreezeAt, apply_freeze
from .subset import subset_spec

FINETUNE_FILE = "finetune.json"
FORMAT = "cnnkit-finetune/1"
COMMAND = "finetune"  # the cnnkit command that continues a fine-tune run
register_run_file(FINETUNE_FILE, COMMAND)  # runs made before resume.json recorded the command


@dataclass
class FinetuneOptions:
    """What ``finetune.json`` records: enough to rebuild the model and schedule on ``resume``."""

    source_kind: str  # "run", "weights" or "pretrained"
    source: str  # run folder, weights file or model name
    description: str  # human-readable provenance (also the weights' sidecar ``source``)
    freeze: str = "all-conv"
    unfreeze_after: int | None = None  # epochs trained frozen; None: never unfreeze
    backbone_lr_mult: float = 0.1
    source_classes: list[str] | None = None
    source_sha256: str | None = None
    input_conv: str | None = None  # how a first-layer channel mismatch was bridged
    mean: list[float] | None = None  # the normalisation the source weights were trained with
    std: list[float] | None = None
    freeze_report: dict[str, Any] | None = None
    format: str = FORMAT

    @classmethod
    def read(cls, run_dir: str | Path) -> FinetuneOptions:
        p = Path(run_dir) / FINETUNE_FILE
        if not p.is_file():
            raise CheckpointError(f"{str(run_dir)!r} has no {FINETUNE_FILE}: it is not a fine-tune run",
                                  hint="continue an ordinary run with `cnnkit train --resume`")  # fmt: skip
        from ..run import read_json, record_from_dict

        d = read_json(p, "fine-tune record")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise CheckpointError(f"{str(p)!r} is not a cnnkit fine-tune record (format {got!r})",
                                  hint="restore it from a copy; it records how the fine-tune run was set up")  # fmt: skip
        return record_from_dict(cls, d, str(p), "fine-tune record",
                                "restore it from a copy; it records how the fine-tune run was set up")

    def _problem(self) -> str | None:
        """What is wrong with a read record's values (hand-edited or damaged), or None."""
        if self.source_kind not in ("run", "weights", "pretrained"):
            return f"source_kind {self.source_kind!r} is not run, weights or pretrained"
        for key in ("source", "description", "freeze"):
            if not isinstance(getattr(self, key), str):
                return f"{key} must be text"
        u = self.unfreeze_after
        if u is not None and (not isinstance(u, int) or isinstance(u, bool) or u < 0):
            return f"unfreeze_after must be a number of epochs >= 0 or null, got {u!r}"
        m = self.backbone_lr_mult
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not 0 < m <= 10:
            return f"backbone_lr_mult must be a number in (0, 10], got {m!r}"
        for key in ("mean", "std"):
            v = getattr(self, key)
            if v is not None and not (isinstance(v, list) and v and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):  # fmt: skip
                return f"{key} must be a list of numbers"
        try:
            FreezePolicy.parse(self.freeze)
        except ConfigError as e:
            return f"freeze: {e.message}"
        return None

    def write(self, run_dir: str | Path) -> None:
        atomic_write_json(Path(run_dir) / FINETUNE_FILE, asdict(self))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _source_state(opts: FinetuneOptions, model_name: str) -> dict[str, torch.Tensor]:
    """The source weights as a state dict (read when the model is built, never kept in the options)."""
    from ..models.weights import pretrained_weights, read_state_dict

    if opts.source_kind == "run":
        state, meta = read_weights(_run_weights(opts.source))
        if meta.model != model_name:
            raise ConfigError(f"run {opts.source!r} holds a {meta.model!r}, but --model is {model_name!r}",
                              hint=f"drop --model (it defaults to the source run's) or use --model {meta.model}")  # fmt: skip
        return state
    if opts.source_kind == "weights":
        return read_state_dict(opts.source)
    return pretrained_weights(model_name)


def _classifier_outputs(state: dict[str, torch.Tensor], classifier: str) -> int | None:
    """The class count a state dict's classifier was trained for (rows of its weight or prototypes)."""
    keys = [k for k in state if k.startswith(classifier + ".") and state[k].ndim >= 1]
    weight = next((k for k in keys if k.endswith(".weight") or k.endswith(".prototypes")), keys[0] if keys else None)
    return int(state[weight].shape[0]) if weight else None


def _adapt_first_conv(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Bridge a channel mismatch in the first convolution (RGB weights, grey data or the reverse)."""
    from ..models.weights import adapt_input_conv

    own = model.state_dict()
    first = next((k for k, v in state.items() if v.ndim == 4), None)
    if first is None or first not in own:
        return None
    have, want = state[first].shape, own[first].shape
    if have[1] == want[1] or have[0] != want[0] or have[2:] != want[2:]:
        return None  # same channels, or a different layer altogether (the strict load will say so)
    state[first] = adapt_input_conv(state[first], int(want[1]))
    how = "summed over the colour channels" if want[1] == 1 else "repeated over the channels and rescaled"
    return f"{first}: {have[1]} -> {want[1]} input channels ({how})"


def build_finetune_model(
    cfg: TrainConfig, data: DatasetSplits, opts: FinetuneOptions, log: Callable[[str], None] | None = None,
    load_source: bool = True,
) -> tuple[ModelSetup, FreezeReport]:  # fmt: skip
    """The model a fine-tune run trains: source weights, a new classifier, the freeze policy applied.

    Returned as a :class:`~cnnkit.engine.train.ModelSetup` for :func:`cnnkit.train`: its ``lr_mults``
    give the backbone multiplier to every parameter the policy freezes (under ``none``: every
    pretrained parameter), so they train more gently once unfrozen; its ``mean``/``std`` are the
    source's normalisation. With ``load_source=False`` (resuming) the weights come from the run's
    checkpoint instead, so the source need not exist any more.
    """
    from ..models.weights import load_state_dict_checked

    c, h, w = data.image_shape
    k = data.num_classes
    if load_source:
        state = dict(_source_state(opts, cfg.model))
        probe = create_model(cfg.model, num_classes=k, in_chans=c, input_size=(h, w), **cfg.model_args)
        n_src = _classifier_outputs(state, probe.info.classifier) or k
        model = probe if n_src == k else create_model(cfg.model, num_classes=n_src, in_chans=c, input_size=(h, w),
                                                      **cfg.model_args)  # fmt: skip
        opts.input_conv = _adapt_first_conv(model, state)
        where = {"run": f"run {opts.source!r}", "weights": repr(opts.source)}.get(
            opts.source_kind, f"torchvision's {opts.source} ImageNet weights")  # named as the user gave them
        load_state_dict_checked(model, state, strict=True, source=where)
        reset_classifier(model, k)  # fresh, seeded (cnnkit.train seeds before calling model_fn)
    else:
        model = create_model(cfg.model, num_classes=k, in_chans=c, input_size=(h, w), **cfg.model_args)
    report = apply_freeze(model, opts.freeze)
    if report.frozen:
        backbone = report.frozen
    else:
        head = model.info.classifier + "."
        backbone = [n for n, _ in model.named_parameters() if not n.startswith(head)]
    # Full parameter names work as prefixes for param_groups' startswith match.
    lr_mults = dict.fromkeys(backbone, opts.backbone_lr_mult)
    opts.freeze_report = report.to_dict()
    if log is not None:
        if opts.input_conv:
            log(f"first convolution adapted: {opts.input_conv}")
        log(report.line())
        if opts.unfreeze_after is not None and report.frozen:
            log(f"unfreezing after {opts.unfreeze_after} epoch(s); the unfrozen layers then train at "
                f"{opts.backbone_lr_mult:g} x the learning rate")  # fmt: skip
    mean, std = _source_normalisation(data, opts)
    return ModelSetup(model, lr_mults=lr_mults, mean=mean, std=std), report


def _source_normalisation(data: DatasetSplits, opts: FinetuneOptions) -> tuple[list[float] | None, list[float] | None]:
    """Feed the network inputs scaled as during its pretraining (fastai does the same with ImageNet stats).

    Frozen layers cannot adapt to a new input scale, so the source's mean/std replace the new data's
    (``None``: keep the data's). Grey data with RGB statistics (summed first-layer kernels) takes the
    channel average.
    """
    if not opts.mean or not opts.std:
        return None, None
    c = data.image_shape[0]
    mean, std = list(opts.mean), list(opts.std)
    if len(mean) != c:
        if c != 1:
            return None, None  # no sensible mapping; keep the data's own statistics
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    return mean, std


class _RecordOptions(Callback):
    """Writes ``finetune.json`` when training starts: the run folder exists by then (``train`` makes it)."""

    def __init__(self, opts: FinetuneOptions) -> None:
        self.opts = opts

    def on_fit_start(self, trainer: Any) -> None:
        run = trainer.run
        if run is not None and not (run.path / FINETUNE_FILE).is_file():
            self.opts.write(run.path)


def _describe(kind: str, source: str, model: str) -> tuple[str, list[str] | None, str | None, Any]:
    """Provenance text, source class names, file hash and normalisation, checked before training starts."""
    if kind == "run":
        _, meta = read_weights(_run_weights(source))
        return (f"fine-tuned from run {source} ({meta.model} on {meta.dataset}, {meta.num_classes} classes, "
                f"epoch {meta.epoch})", list(meta.classes), None, (meta.mean, meta.std))  # fmt: skip
    if kind == "weights":
        p = Path(source)
        if not p.is_file():
            raise CheckpointError(f"weights file {source!r} does not exist", hint="pass a .pth, .pt or .safetensors file")
        digest = _sha256(p)
        # A bare state dict does not say how its inputs were scaled: the new data's statistics are used.
        return f"fine-tuned from weights file {p.name} (sha256 {digest[:12]})", None, digest, (None, None)
    from ..models.weights import TORCHVISION_WEIGHTS

    if model not in TORCHVISION_WEIGHTS:
        raise CheckpointError(f"no pretrained weights for {model!r}",
                              hint="torchvision publishes weights for: " + ", ".join(sorted(TORCHVISION_WEIGHTS)))  # fmt: skip
    from ..models.registry import IMAGENET_MEAN, IMAGENET_STD

    return (f"fine-tuned from torchvision's {TORCHVISION_WEIGHTS[model]} weights", None, None,
            (list(IMAGENET_MEAN), list(IMAGENET_STD)))  # fmt: skip


def finetune(
    config: TrainConfig | dict[str, Any] | str | Path | None = None,
    *,
    from_run: str | Path | None = None,
    weights: str | Path | None = None,
    pretrained: bool = False,
    freeze: str = "all-conv",
    unfreeze_after: int | str | None = "auto",
    backbone_lr_mult: float = 0.1,
    classes: list[str | int] | str | None = None,
    per_class: int | None = None,
    val_per_class: int | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune trained weights on new data; returns :func:`cnnkit.train`'s :class:`TrainResult`.

    Give exactly one source: ``from_run`` (a cnnkit run folder; ``model``, ``model_args`` and
    ``input_size`` default to the run's), ``weights`` (a ``.pth``/``.safetensors`` state dict, with
    ``model=``) or ``pretrained=True`` (torchvision's ImageNet weights for ``model``; needs the
    network or a cached file). ``freeze`` is ``all-conv``, ``lower:N`` or ``none``;
    ``unfreeze_after`` is the number of frozen epochs before everything trains (``"auto"``: a fifth
    of the epochs, at least 1; ``None``/``"never"``: stay frozen, i.e. train the head only), after
    which the frozen layers train at ``backbone_lr_mult`` x the learning rate. ``classes`` /
    ``per_class`` / ``val_per_class`` select a subset of the data (:mod:`cnnkit.transfer.subset`).
    Every other keyword is a :class:`~cnnkit.config.TrainConfig` field, as for :func:`cnnkit.train`.

    ``resume=RUN_DIR`` continues an interrupted fine-tune run (``epochs`` may be raised).
    """
    log = (lambda s: None) if quiet else print
    if resume is not None:
        fixed = {"from_run": from_run, "weights": weights, "pretrained": pretrained, "classes": classes,
                 "per_class": per_class, "val_per_class": val_per_class, "config": config}  # fmt: skip
        if any(v not in (None, False) for v in fixed.values()) or (freeze, unfreeze_after, backbone_lr_mult) != (
            "all-conv", "auto", 0.1
        ):
            raise ConfigError("--resume continues a fine-tune run with its own options (finetune.json)",
                              hint="pass only --resume RUN_DIR (and --epochs to train longer)")  # fmt: skip
        opts = FinetuneOptions.read(resume)

        def resume_fn(cfg: TrainConfig, data: DatasetSplits) -> ModelSetup:
            return build_finetune_model(cfg, data, opts, load_source=False)[0]

        result = train(resume=resume, quiet=quiet, model_fn=resume_fn, callbacks=_callbacks(opts),
                       source=opts.description, command=COMMAND, **overrides)  # fmt: skip
        _record_summary(result, opts)
        return result

    given = [k for k, v in (("from_run", from_run), ("weights", weights), ("pretrained", pretrained)) if v]
    if len(given) != 1:
        raise ConfigError(
            "fine-tuning needs exactly one source of weights" + (f", got {' and '.join(given)}" if given else ""),
            hint="pass --from RUN_DIR, --weights FILE or --pretrained",
        )
    base = {**config_mapping(config), **overrides}
    if from_run is not None:
        _, meta = read_weights(_run_weights(from_run))
        base.setdefault("model", meta.model)
        base.setdefault("model_args", meta.model_args)
        base.setdefault("input_size", int(meta.input_size[1]))
    elif "model" not in base:
        raise ConfigError("--weights and --pretrained need --model NAME", hint="the architecture the weights belong to")
    if isinstance(base.get("lr"), str) and base["lr"].strip().lower() == "find":
        raise ConfigError("--lr find is for cnnkit train; cnnkit finetune takes a number",
                          hint="fine-tuning starts from trained weights: try --lr 0.01 (SGD) or 1e-4 (Adam/AdamW)")  # fmt: skip
    cfg = TrainConfig.from_dict(base)  # validates every field before any work
    if classes is not None or per_class is not None or val_per_class is not None:
        if isinstance(classes, str):
            classes = [c for c in classes.split(",") if c.strip()]
        cfg = cfg.replace(data=subset_spec(cfg.data, classes, per_class, val_per_class, cfg.val_split,
                                           cfg.test_split, cfg.seed, cfg.data_root))  # fmt: skip
    # `--augment auto` is resolved by the engine from the (subset's) training images, as for `cnnkit train`.

    kind = "run" if from_run is not None else "weights" if weights is not None else "pretrained"
    source = str(from_run if from_run is not None else weights if weights is not None else cfg.model)
    description, src_classes, digest, (mean, std) = _describe(kind, source, cfg.model)
    unfreeze_after = _unfreeze_epoch(unfreeze_after, cfg.with_defaults(recipe_of(cfg.model)).epochs)
    policy = FreezePolicy.parse(freeze)
    if not 0 < backbone_lr_mult <= 10:  # also refuses NaN; above 10x the backbone would diverge, not fine-tune
        raise ConfigError(f"--backbone-lr-mult must be > 0 and <= 10, got {backbone_lr_mult:g}",
                          hint="a multiplier of the learning rate for the unfrozen layers, e.g. 0.1")  # fmt: skip
    opts = FinetuneOptions(kind, source, description, str(policy), unfreeze_after, float(backbone_lr_mult),
                           src_classes, digest, mean=mean, std=std)  # fmt: skip

    def model_fn(c: TrainConfig, data: DatasetSplits) -> ModelSetup:
        log(description)
        return build_finetune_model(c, data, opts, log=log)[0]

    result = train(cfg, overwrite=overwrite, quiet=quiet, model_fn=model_fn, callbacks=_callbacks(opts),
                   source=description, command=COMMAND)  # fmt: skip
    opts.write(result.run_dir)  # again: now with the freeze report and input-conv note
    _record_summary(result, opts)
    return result


def _unfreeze_epoch(value: int | str | None, epochs: int) -> int | None:
    """``auto`` -> a fifth of the epochs (at least 1; never for a 1-epoch run), ``never`` -> None, else an int."""
    if value is None or str(value).lower() in ("never", "none"):
        return None
    if str(value).lower() == "auto":
        return max(1, round(epochs / 5)) if epochs > 1 else None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ConfigError(f"--unfreeze-after {value!r} must be a number of epochs >= 0, auto or never")
    return n


def _run_weights(run_dir: str | Path) -> Path:
    run = RunDir(run_dir)
    run.check_exists()
    return run.weights("best") if run.weights("best").is_file() else run.weights("last")


def _callbacks(opts: FinetuneOptions) -> list[Callback]:
    cbs: list[Callback] = [_RecordOptions(opts), FrozenBatchNorm()]
    if opts.unfreeze_after is not None and opts.freeze != "none":
        # Every parameter: apply_freeze left only the policy's frozen ones frozen, so exactly those change.
        cbs.append(UnfreezeAt(opts.unfreeze_after, None, opts.backbone_lr_mult))
    return cbs


def _record_summary(result: TrainResult, opts: FinetuneOptions) -> None:
    """Add the fine-tune provenance to ``summary.json`` (the engine writes the rest)."""
    run = RunDir(result.run_dir)
    summary = run.read_summary()
    summary["finetune"] = {k: v for k, v in asdict(opts).items() if k != "format"}
    run.write_summary(summary)
    result.summary = summary
