"""Feature extraction: a CNN as a fixed feature extractor (the lecture's "feature extraction for image
classification and retrieval": forward pass, activations of a higher conv or FC layer, optional PCA or
product quantisation, then an external classifier or a nearest-neighbour search).

Any named layer is read with a forward hook; the forward pass stops right after it (the layers above
are not computed). Convolutional maps are globally average-pooled (``pool="avg"``, one value per
channel), max-pooled, or flattened. The default layer is the input of the final classifier layer:
the "penultimate" features the classifier itself sees.

The result is a :class:`FeatureSet`: one row per image with its label, split and id, saved as ``.npz``.
PCA and product quantisation are fitted on the *training* rows only (no peeking at test images).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import DatasetSplits, ImageData, Normalize, TensorLoader, load_dataset
from ..errors import ConfigError, DataError
from ..models import create_model, get_submodule
from ..run import LoadedRun, RunDir, load_run

POOLS = ("avg", "max", "flatten")
SPLITS = ("train", "val", "test")


@dataclass
class FeatureSet:
    """Features of a dataset's images: ``features`` N x D with ``labels``, ``split`` and ``ids`` per row."""

    features: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ids: np.ndarray
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # layer, pooling, source, pca/pq details
    codes: np.ndarray | None = None  # product-quantisation codes (N x M) when --pq was used
    pq_state: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def part(self, *splits: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of the rows in ``splits``."""
        mask = np.isin(self.split, splits)
        return self.features[mask], self.labels[mask]

    def mask(self, *splits: str) -> np.ndarray:
        return np.isin(self.split, splits)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (plain arrays and JSON text: loads with ``allow_pickle=False``)."""
        from ..io import atomic_write

        path = npz_path(path)
        arrays: dict[str, np.ndarray] = {
            "features": self.features.astype(np.float32), "labels": self.labels.astype(np.int64),
            "split": self.split.astype(str), "ids": self.ids.astype(str), "classes": np.array(self.classes, dtype=str),
            "meta": np.array(json.dumps(self.meta)),
        }  # fmt: skip
        if self.codes is not None:
            arrays["codes"] = self.codes
        if self.pq_state:
            arrays.update(self.pq_state)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        atomic_write(path, write)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureSet:
        """Read an ``.npz`` written by :meth:`save`, checking every array (never unpickling anything)."""
        p = Path(path)
        hint = "write one with `cnnkit features ... -o FILE.npz`"
        if p.is_dir():
            raise DataError(f"feature file {str(p)!r} is a folder", hint=hint)
        if not p.is_file():
            raise DataError(f"feature file {str(p)!r} does not exist", hint=hint)
        d = _read_npz(p, hint)
        missing = {"features", "labels", "split", "ids", "classes"} - set(d)
        if missing:
            raise DataError(f"{str(p)!r} is not a cnnkit feature file (missing {', '.join(sorted(missing))})", hint=hint)
        meta = _check_arrays(d, repr(str(p)))
        pq = {k: v for k, v in d.items() if k.startswith("pq_")} or None
        return cls(d["features"], d["labels"], d["split"], d["ids"], [str(c) for c in d["classes"]],
                   meta, d.get("codes"), pq)  # fmt: skip


def npz_path(path: str | Path) -> Path:
    """Where :meth:`FeatureSet.save` writes ``path``: with ``.npz`` appended unless it already ends so."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    return path


def _read_npz(p: Path, hint: str) -> dict[str, Any]:
    """Every member of the ``.npz`` at ``p`` (``allow_pickle=False``), or a DataError saying what is wrong."""
    try:
        z = np.load(p, allow_pickle=False)
    except ValueError as e:
        # numpy's words for "neither .npz nor .npy" suggest unpickling it: that would run the file's code.
        if "pickle" in str(e).lower():
            raise DataError(f"{str(p)!r} is not an .npz feature file", hint=hint) from None
        raise DataError(f"cannot read {str(p)!r} as a feature file: {e}", hint=hint) from None
    except Exception as e:  # zipfile, zlib and the OS raise several types for a damaged archive
        raise DataError(f"cannot read {str(p)!r} as a feature file ({type(e).__name__}: {e})", hint=hint) from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy array
        raise DataError(f"{str(p)!r} holds a single .npy array, not an .npz feature file", hint=hint)
    d: dict[str, Any] = {}
    with z:
        for k in z.files:
            try:
                d[k] = z[k]
            except ValueError as e:
                if "pickle" in str(e).lower() or "object arrays" in str(e).lower():
                    raise DataError(f"{str(p)!r}: array {k!r} holds pickled Python objects, which cnnkit never loads",
                                    hint=hint) from None  # fmt: skip
                raise DataError(f"{str(p)!r}: array {k!r} is damaged ({e})", hint=hint) from None
            except Exception as e:  # a corrupt member: bad CRC, truncated deflate stream, ...
                raise DataError(f"{str(p)!r}: array {k!r} is damaged ({type(e).__name__}: {e})", hint=hint) from None
    return d


def _check_arrays(d: dict[str, Any], where: str) -> dict[str, Any]:
    """Check the arrays of a feature file agree with each other; return its metadata.

    A hand-edited or foreign ``.npz`` fails here with the array and the problem named, instead of deep
    inside scikit-learn (or, worse, fitting on misaligned labels).
    """
    def bad(msg: str) -> DataError:
        return DataError(f"{where}: {msg}", hint="re-extract it with `cnnkit features`")

    for k, v in d.items():
        if not isinstance(v, np.ndarray):  # a zip member that is not an .npy array comes back as bytes
            raise bad(f"member {k!r} is not a NumPy array")
    x, y, split, ids, classes = (d[k] for k in ("features", "labels", "split", "ids", "classes"))
    if x.ndim != 2 or x.shape[1] < 1 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise bad(f"'features' must be a 2-D numeric array (N x D), got {x.ndim}-D {x.dtype}")
    if not np.isfinite(x).all():
        raise bad("'features' holds NaN or infinite values")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise bad(f"'labels' must be a 1-D integer array, got {y.ndim}-D {y.dtype}")
    for name, a in (("split", split), ("ids", ids), ("classes", classes)):
        if a.ndim != 1 or a.dtype.kind not in "US":
            raise bad(f"{name!r} must be a 1-D array of strings, got {a.ndim}-D {a.dtype}")
    lengths = {"features": len(x), "labels": len(y), "split": len(split), "ids": len(ids)}
    if len(set(lengths.values())) != 1:
        raise bad("arrays disagree in length: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    if len(classes) < 1:
        raise bad("'classes' is empty")
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise bad(f"labels run from {y.min()} to {y.max()} but there are {len(classes)} classes")
    unknown = set(split.astype(str).tolist()) - set(SPLITS)
    if unknown:
        raise bad(f"unknown split name(s) {', '.join(sorted(unknown))} (expected train, val, test)")
    codes = d.get("codes")
    if codes is not None and (codes.ndim != 2 or len(codes) != len(x) or not np.issubdtype(codes.dtype, np.integer)):
        raise bad(f"'codes' must be an integer array with one row per vector, got shape {codes.shape} {codes.dtype}")
    if "meta" not in d:
        return {}
    try:
        meta = json.loads(str(d["meta"]))
    except (json.JSONDecodeError, UnicodeError) as e:
        raise bad(f"'meta' is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise bad("'meta' is not a JSON object")
    return meta


class _Stop(Exception):
    """Raised by the hook once the wanted layer has run: the rest of the forward pass is skipped."""


def layer_names(model: nn.Module) -> list[str]:
    """Names a ``--layer`` may take (every submodule)."""
    return [n for n, _ in model.named_modules() if n]


@torch.no_grad()
def layer_activations(
    model: nn.Module, x: torch.Tensor, layer: str | None = None, pool: str = "avg"
) -> torch.Tensor:
    """Activations of ``layer`` (default: the classifier's input) for a normalised batch, as N x D."""
    if pool not in POOLS:
        raise ConfigError(f"--pool {pool!r} is not allowed", hint="use " + ", ".join(POOLS))
    captured: list[torch.Tensor] = []
    if layer is None:
        module = get_submodule(model, model.info.classifier)

        def pre_hook(_m: nn.Module, inputs: tuple[Any, ...]) -> None:
            captured.append(inputs[0])
            raise _Stop

        handle = module.register_forward_pre_hook(pre_hook)
    else:
        module = get_submodule(model, layer)

        def hook(_m: nn.Module, _inputs: Any, out: Any) -> None:
            captured.append(out[0] if isinstance(out, (tuple, list)) else out)
            raise _Stop

        handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ConfigError(f"layer {layer!r} did not run in the forward pass",
                          hint="pick a layer of the main path (`cnnkit features --list-layers`)")  # fmt: skip
    a = captured[0].float()
    if a.ndim == 4:
        if pool == "avg":
            a = a.mean((2, 3))
        elif pool == "max":
            a = a.amax((2, 3))
    elif a.ndim == 3 and pool != "flatten":  # token sequences (N x L x C): pool over tokens
        a = a.mean(1) if pool == "avg" else a.amax(1)
    return a.flatten(1)


def _as_run(source: Any, device: torch.device) -> LoadedRun | None:
    if isinstance(source, LoadedRun):
        return source
    # A path (an existing folder, or anything with a slash) is a run folder; a bare word is a model name.
    if isinstance(source, Path) or (isinstance(source, str) and (Path(source).is_dir() or "/" in source)):
        RunDir(source).check_exists()  # a clear "run folder does not exist" rather than "unknown model"
        return load_run(source, device=device)
    return None


def _load_for(data: str | DatasetSplits, input_size: tuple[int, int], channels: int, cfg: dict[str, Any] | None
              ) -> DatasetSplits:  # fmt: skip
    if isinstance(data, DatasetSplits):
        return data
    cfg = cfg or {}
    return load_dataset(data, input_size=input_size, channels=channels, val_split=cfg.get("val_split", 0.15),
                        test_split=cfg.get("test_split", 0.15), seed=cfg.get("seed", 0),
                        root=cfg.get("data_root"))  # fmt: skip


def resolve_source(
    source: Any, data: str | DatasetSplits | None = None, input_size: int | None = None,
    weights: str | Path | None = None, device: str = "cpu",
) -> tuple[nn.Module | None, DatasetSplits, tuple[float, ...], tuple[float, ...], str]:  # fmt: skip
    """``(model or None for pixels, data, mean, std, description)`` for a run folder, model name or module."""
    from ..engine.device import select_device

    dev = select_device(device)
    run = _as_run(source, dev)
    if run is not None:
        c, h, w = run.meta.input_size
        if data is None:
            from ..evaluate import run_data

            ds = run_data(run)  # the run's own split, checked against split.json
        else:
            ds = _load_for(data, (h, w), c, run.config)
        return run.model, ds, tuple(run.meta.mean), tuple(run.meta.std), f"run {run.path}"
    if source == "pixels":
        if data is None:
            raise ConfigError("raw-pixel features need --data")
        size = input_size
        ds = data if isinstance(data, DatasetSplits) else load_dataset(data, input_size=size)
        return None, ds, ds.mean, ds.std, "raw pixels"
    if isinstance(source, nn.Module):
        info = source.info
        ds = _load_for(data if data is not None else "digits", tuple(info.input_size[1:]), info.input_size[0], None)
        return source.to(dev).eval(), ds, ds.mean, ds.std, f"module {type(source).__name__}"
    if not isinstance(source, str):
        raise ConfigError(f"cannot extract features with {type(source).__name__}",
                          hint="pass a run folder, a model name, an nn.Module or 'pixels'")  # fmt: skip
    # A model name: randomly initialised unless weights are given (random conv features are a baseline).
    from ..models import model_entry

    entry = model_entry(source) if ":" not in source else None
    size = input_size or (entry.default_input[1] if entry else 224)
    ds = data if isinstance(data, DatasetSplits) else load_dataset(data or "digits", input_size=size)
    c, h, w = ds.image_shape
    model = create_model(source, num_classes=ds.num_classes, in_chans=c, input_size=(h, w))
    desc = f"{source} (random initialisation)"
    if weights is not None:
        from ..models.weights import load_weights

        load_weights(model, weights, strict=False, skip_classifier=True)
        desc = f"{source} with weights {Path(weights).name}"
    return model.to(dev).eval(), ds, ds.mean, ds.std, desc


@torch.no_grad()
def features_of(
    model: nn.Module | None, images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
    layer: str | None = None, pool: str = "avg", batch_size: int = 256,
) -> np.ndarray:  # fmt: skip
    """N x D features of uint8 images (``model=None``: the raw pixels scaled to [0, 1])."""
    if model is None:
        return images.float().div(255.0).flatten(1).numpy()
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    labels = torch.zeros(len(images), dtype=torch.long)
    loader = TensorLoader(ImageData(images, labels, [""] * len(images)), batch_size, Normalize(mean, std), device=device)
    out = [layer_activations(model, x, layer, pool).cpu() for x, _ in loader]
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def extract_features(
    source: Any,
    data: str | DatasetSplits | None = None,
    *,
    layer: str | None = None,
    pool: str = "avg",
    splits: tuple[str, ...] | list[str] = SPLITS,
    pca: int | None = None,
    pq: int | None = None,
    pq_bits: int = 8,
    weights: str | Path | None = None,
    input_size: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
) -> FeatureSet:
    """Features of every image of ``data`` (default: the run's own data and split) from ``layer``.

    ``source`` is a run folder, a :class:`~cnnkit.run.LoadedRun`, a registered model name (randomly
    initialised, or ``weights=FILE``), an ``nn.Module`` with ``.info``, or ``"pixels"`` (raw pixels,
    the baseline). ``pca=K`` projects on the first K principal components and ``pq=M`` replaces each
    vector by its product-quantisation reconstruction (M sub-vectors, ``2**pq_bits`` centroids each,
    codes in :attr:`FeatureSet.codes`); both are fitted on the training rows only.
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(f"unknown split {bad[0] if bad else '(none)'!r}", hint="use train, val and/or test")
    model, ds, mean, std, desc = resolve_source(source, data, input_size, weights, device)
    if model is None and layer is not None:
        raise ConfigError("--layer does not apply to raw-pixel features")
    feats, labels, split_col, ids = [], [], [], []
    for s in splits:
        part = ds.split(s)
        if not len(part):
            continue
        feats.append(features_of(model, part.images, mean, std, layer, pool, batch_size))
        labels.append(part.labels.numpy())
        split_col += [s] * len(part)
        ids += list(part.ids)
    if not feats:
        raise DataError(f"the splits {', '.join(splits)} of {ds.name!r} are empty")
    x = np.concatenate(feats).astype(np.float32)
    fs = FeatureSet(x, np.concatenate(labels), np.array(split_col), np.array(ids), list(ds.classes))
    if model is None:
        where, how = "pixels", "none"
    else:
        where, how = layer or f"{model.info.classifier} (input)", pool
    fs.meta = {"source": desc, "data": ds.name, "layer": where, "pool": how, "dim": int(x.shape[1])}
    if pca is not None:
        reduce_pca(fs, pca, seed)
    if pq is not None:
        quantize(fs, pq, pq_bits, seed)
    return fs


def _fit_rows(fs: FeatureSet) -> np.ndarray:
    x = fs.features[fs.mask("train")]
    if not len(x):
        raise ConfigError("PCA and PQ are fitted on the train split, which is not among the extracted splits",
                          hint="extract the train split too (--splits train,test)")  # fmt: skip
    return x


def reduce_pca(fs: FeatureSet, k: int, seed: int = 0) -> FeatureSet:
    """Project ``fs`` in place on the first ``k`` principal components of its training rows."""
    from sklearn.decomposition import PCA

    x = _fit_rows(fs)
    limit = min(x.shape)
    if not 1 <= k <= limit:
        raise ConfigError(f"--pca {k} is out of range for {x.shape[0]} training vectors of dimension {x.shape[1]}",
                          hint=f"use 1 <= K <= {limit}")  # fmt: skip
    p = PCA(n_components=k, random_state=seed).fit(x)
    fs.features = p.transform(fs.features).astype(np.float32)
    fs.meta["pca"] = {"components": k, "explained_variance": round(float(p.explained_variance_ratio_.sum()), 6)}
    return fs


def quantize(fs: FeatureSet, m: int, bits: int = 8, seed: int = 0) -> FeatureSet:
    """Product-quantise ``fs`` in place: codes in ``fs.codes``, features replaced by their reconstruction."""
    from .pq import ProductQuantizer

    x = _fit_rows(fs)
    pq = ProductQuantizer(m, bits, seed).fit(x)
    fs.codes = pq.encode(fs.features)
    approx = pq.decode(fs.codes)
    err = float(((approx - fs.features) ** 2).sum(1).mean() / max((fs.features**2).sum(1).mean(), 1e-12))
    fs.features = approx.astype(np.float32)
    fs.pq_state = pq.state()
    k = pq.codebooks[0].shape[0]
    fs.meta["pq"] = {"subvectors": m, "centroids": k, "bytes_per_vector": m * (1 if bits <= 8 else 2),
                     "relative_error": round(err, 6)}  # fmt: skip
    return fs
