"""Loading weights into cnnkit models: files (``.pth``/``.pt``/``.safetensors``) and torchvision's
pretrained ImageNet weights.

Pickled checkpoints are always read with ``torch.load(..., weights_only=True)``: a ``.pth`` file can
otherwise run arbitrary code when loaded. Every failure (missing file, corrupt file, keys or shapes
that do not fit the model) raises :class:`~cnnkit.errors.CheckpointError` naming what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from ..errors import CheckpointError, suggest

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile add these
_SHOW = 5  # how many offending keys an error message lists


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys it left at their initial values and keys it ignored."""

    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # classifier keys dropped by skip_classifier


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.pth``/``.pt`` (raw, or wrapped under "state_dict"/"model") or ``.safetensors``."""
    path = Path(path)
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise CheckpointError(f"weights file {str(path)!r} {where}",
                              hint="pass the path of a .pth, .pt or .safetensors file")  # fmt: skip
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {e}",
                                  hint="the file is corrupt or truncated; copy or export it again") from e  # fmt: skip
    elif suffix in PICKLE_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle, zip and EOF errors all mean "not a readable checkpoint"
            refused = refused_global(e)
            if refused:  # a pickled object (possibly a payload): say so, never relay torch's "retry unsafely"
                raise CheckpointError(
                    f"{str(path)!r} holds objects cnnkit refuses to unpickle (it asks to run {refused})",
                    hint="weights are loaded with weights_only=True because a pickled object can run code; "
                    "only plain tensors load (torch.save(model.state_dict(), path) or .safetensors). Do not "
                    "load this file some other way unless you trust where it came from",
                ) from e
            raise CheckpointError(
                f"cannot read {str(path)!r} as a PyTorch checkpoint: {type(e).__name__}: {load_error_reason(e)}",
                hint="the file is corrupt or truncated, or holds pickled Python objects that weights_only loading "
                "refuses; save plain tensors with torch.save(model.state_dict(), path)",
            ) from e
    else:
        raise CheckpointError(f"unknown weights format {path.suffix!r} for {str(path)!r}",
                              hint="use .pth, .pt or .safetensors")  # fmt: skip
    return _unwrap(obj, path)


def refused_global(e: BaseException) -> str | None:
    """The callable or class ``torch.load(..., weights_only=True)`` refused to unpickle (``"posix.system"``),
    or None when ``e`` is some other failure (a corrupt or truncated file).

    Fix (issue 18): PyTorch's own message for a refused pickle starts "Weights only load failed. This
    file can still be loaded ..." and advises retrying with ``weights_only=False``, which would run the
    payload. Callers report the refused object in cnnkit's words instead.
    """
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
    return m.group(1) if m else None


def load_error_reason(e: BaseException) -> str:
    """One line saying why ``torch.load`` failed: the weights-only unpickler's own reason (e.g.
    "Unsupported operand 149") rather than PyTorch's preamble advising ``weights_only=False``."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1]
        return next((ln.strip() for ln in detail.splitlines() if ln.strip()), "refused by weights_only loading")
    return text.splitlines()[0] if text else type(e).__name__


def _unwrap(obj: object, path: Path | str) -> dict[str, torch.Tensor]:
    # Training checkpoints often nest the weights beside optimizer state and epoch counters.
    # A model's own state dict never maps these names to a dict, so finding one means a wrapper.
    for _ in range(2):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{str(path)!r} holds no state dict (found {type(obj).__name__})",
                              hint="expected a dict of tensors, or one under a 'state_dict' or 'model' key")  # fmt: skip
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{str(path)!r} holds no tensors (keys: {', '.join(map(str, bad[:_SHOW]))})")
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _classifier_prefixes(model: nn.Module) -> list[str]:
    info = getattr(model, "info", None)
    path = getattr(info, "classifier", None)
    if not path:
        return []
    prefixes = [path + "."]
    # GoogLeNet's auxiliary heads end in class-count layers too.
    prefixes += [f"{aux}.fc2." for aux in ("aux1", "aux2") if hasattr(model, aux)]
    return prefixes


def load_state_dict_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    strict: bool = True,
    skip_classifier: bool = False,
    source: str = "state dict",
) -> LoadReport:
    """Load ``state`` into ``model`` after checking keys and shapes; see :func:`load_weights`."""
    own = model.state_dict()
    report = LoadReport()
    state = dict(state)
    if skip_classifier:
        prefixes = _classifier_prefixes(model)
        if not prefixes:
            raise CheckpointError("skip_classifier needs a cnnkit model (its info names the classifier layer)")
        for k in list(state):
            if k.startswith(tuple(prefixes)):
                report.skipped.append(k)
                del state[k]
        own_kept = {k: v for k, v in own.items() if not k.startswith(tuple(prefixes))}
    else:
        own_kept = own
    # BatchNorm's step counter is absent from older checkpoints and never matters for inference.
    report.missing = [k for k in own_kept if k not in state and not k.endswith("num_batches_tracked")]
    report.unexpected = [k for k in state if k not in own]
    report.mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if strict and (report.missing or report.unexpected or report.mismatched):
        err = CheckpointError(_mismatch_message(model, source, report, own), hint=_mismatch_hint(model, report))
        err.classifier_only = _classifier_only(model, report)  # callers word their own hint for that case
        raise err
    good = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(good, strict=False)
    report.loaded = len(good)
    return report


def _mismatch_message(model: nn.Module, source: str, r: LoadReport, own: Mapping[str, torch.Tensor]) -> str:
    name = getattr(getattr(model, "info", None), "name", type(model).__name__)
    # One line (the CLI prints the message as a single error line): the parts joined with "; ".
    parts = []
    for title, keys in (("shape mismatches", r.mismatched), ("missing keys (in the model, not the file)",
                        r.missing), ("unexpected keys (in the file, not the model)", r.unexpected)):  # fmt: skip
        if keys:
            more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
            parts.append(f"{len(keys)} {title}: " + ", ".join(keys[:_SHOW]) + more)
    if r.unexpected and r.missing:
        parts.append(f"e.g. for {r.unexpected[0]!r} the model has: " + suggest(r.unexpected[0], own))
    return f"weights from {source} do not fit model {name!r}: " + "; ".join(parts)


def _classifier_only(model: nn.Module, r: LoadReport) -> bool:
    """Whether only the classifier's shapes differ (the same network trained for another class count)."""
    prefixes = tuple(_classifier_prefixes(model))
    return bool(prefixes and r.mismatched and all(m.startswith(prefixes) for m in r.mismatched))


def _mismatch_hint(model: nn.Module, r: LoadReport) -> str:
    if _classifier_only(model, r):
        return ("only the classifier differs: was it trained with a different --num-classes? Build the model with "
                "that number of classes, or load the backbone alone with skip_classifier=True")
    if r.mismatched:
        return ("the layer shapes differ: check --model, --in-chans (1 for grey, 3 for colour) and the input size "
                "(below 64 px models use a small-image stem)")
    return "the file was saved from a different architecture; check --model and its options"


def load_weights(model: nn.Module, path: str | Path, strict: bool = True, skip_classifier: bool = False) -> LoadReport:
    """Load a ``.pth``/``.pt``/``.safetensors`` file into ``model``.

    ``strict`` (default) demands every key and shape to match; ``skip_classifier=True`` leaves the final
    layer at its fresh initialisation so a backbone trained on another class count can be fine-tuned.
    With ``strict=False``, keys that fit are loaded and the rest is reported in the returned
    :class:`LoadReport`.
    """
    state = read_state_dict(path)
    return load_state_dict_checked(model, state, strict=strict, skip_classifier=skip_classifier, source=str(path))


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save ``model.state_dict()`` as ``.safetensors`` or ``.pth`` (by suffix)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    elif path.suffix.lower() in PICKLE_SUFFIXES:
        torch.save(state, path)
    else:
        raise CheckpointError(f"unknown weights format {path.suffix!r}", hint="use .safetensors or .pth")
    return path


# ---- torchvision's pretrained ImageNet weights ----

# Our names -> torchvision weight enums. IMAGENET1K_V1 is the original paper-era training recipe.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "alexnet": "AlexNet_Weights.IMAGENET1K_V1",
    "googlenet": "GoogLeNet_Weights.IMAGENET1K_V1",
    "squeezenet1_0": "SqueezeNet1_0_Weights.IMAGENET1K_V1",
    "squeezenet1_1": "SqueezeNet1_1_Weights.IMAGENET1K_V1",
    **{f"vgg{d}{bn}": f"VGG{d}{bn.upper()}_Weights.IMAGENET1K_V1" for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{f"resnet{d}": f"ResNet{d}_Weights.IMAGENET1K_V1" for d in (18, 34, 50, 101, 152)},
    **{f"densenet{d}": f"DenseNet{d}_Weights.IMAGENET1K_V1" for d in (121, 161, 169, 201)},
}

# Old DenseNet checkpoints name layers "norm.1" where the modules are now "norm1".
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def pretrained_url(name: str) -> tuple[str, str]:
    """``(url, file name)`` of torchvision's ImageNet weights for our model ``name``."""
    if name not in TORCHVISION_WEIGHTS:
        raise CheckpointError(
            f"no pretrained weights for {name!r}",
            hint="torchvision publishes weights for: " + ", ".join(sorted(TORCHVISION_WEIGHTS))
            + " (others start from random initialisation)",
        )
    from torchvision.models import get_weight

    url = get_weight(TORCHVISION_WEIGHTS[name]).url
    return url, url.rsplit("/", 1)[-1]


def pretrained_weights(name: str, progress: bool = False) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict for our model ``name`` (downloaded once into the torch hub cache).

    Offline, raises :class:`CheckpointError` with the URL and file name to fetch elsewhere and pass
    with ``--weights PATH``.
    """
    url, filename = pretrained_url(name)
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=progress, weights_only=True,
                                                   file_name=filename, check_hash=True)  # fmt: skip
    except (URLError, OSError) as e:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
        raise CheckpointError(
            f"cannot download pretrained weights for {name!r} from {url} ({e})",
            hint=f"on a machine with internet access download {url} (file {filename!r}), copy it here and pass "
            f"--weights PATH/{filename} (or put it at {cache}, where it is found automatically)",
        ) from e
    except Exception as e:
        refused = refused_global(e)  # a pickled object in the cached file: report it, not torch's advice
        reason = f"it holds objects cnnkit refuses to unpickle (it asks to run {refused})" if refused else load_error_reason(e)
        raise CheckpointError(f"the downloaded weights for {name!r} are unreadable: {reason}",
                              hint=f"delete the cached copy of {filename} and retry") from e  # fmt: skip
    return _fix_torchvision_keys(dict(state))


def _fix_torchvision_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    fixed = {}
    for k, v in state.items():
        m = _DENSENET_KEY.match(k)
        fixed[m.group(1) + m.group(2) if m else k] = v
    return fixed


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a first-layer kernel trained on RGB to ``in_chans`` channels.

    Grey: sum the colour kernels (a grey pixel is R = G = B, so the response is unchanged). Other counts:
    repeat the RGB kernels and rescale so the output keeps its magnitude.
    """
    c = weight.shape[1]
    if in_chans == c:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // c)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (c / in_chans)


def load_pretrained(model: nn.Module, name: str | None = None, skip_classifier: bool | None = None) -> LoadReport:
    """Load torchvision's ImageNet weights into a cnnkit model built at ImageNet layout (>= 64 px).

    ``skip_classifier=None`` keeps the ImageNet classifier only when the model has 1000 classes. A grey
    model (``in_chans=1``) gets the first convolution summed over RGB. GoogLeNet's auxiliary heads are
    dropped when the model has none; note the ported GoogLeNet weights expect ``transform_input=True``.
    """
    info = getattr(model, "info", None)
    name = name or getattr(info, "name", None)
    if not name:
        raise CheckpointError("load_pretrained needs a cnnkit model or an explicit name")
    state = pretrained_weights(name)
    own = model.state_dict()
    for k in [k for k in state if k.startswith(("aux1.", "aux2.")) and k not in own]:
        del state[k]
    first = next((k for k, v in state.items() if v.dim() == 4), None)  # the first convolution's kernel
    if first in own and own[first].dim() == 4 and own[first].shape[1] != state[first].shape[1]:
        state[first] = adapt_input_conv(state[first], own[first].shape[1])
    if skip_classifier is None:
        skip_classifier = getattr(info, "num_classes", 1000) != 1000
    return load_state_dict_checked(model, state, strict=True, skip_classifier=skip_classifier,
                                   source=f"torchvision's {name} ImageNet weights")  # fmt: skip
