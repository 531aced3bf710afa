"""Feature extraction: a CNN as a fixed feature extractor (the lecture's "feature extraction for image
classification and retrieval": forward pass, activations of a higher conv or FC layer, optional PCA or
product quantisation, then an external classifier or a nearest-neighbour search).

Any named layer is read with a forward hook; the forward pass stops right after it (the layers above
are not computed). Convolutional maps are globally average-pooled (``pool="avg"``, one value per
channel), average-pooled over a grid of regions (``avg:G``; ``auto`` picks one when ``--pca``/``--pq``
need more numbers than the layer has channels), max-pooled, or flattened. The default layer is the input of the final classifier layer:
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

from ..data import DatasetSplits, ImageData, Normalize, TensorLoader
from ..data.loader import pixel_batches, pixels_of
from ..errors import ConfigError, DataError
from ..models import create_model, get_submodule
from ..run import LoadedRun
from .feature_file import check_arrays, read_npz

POOLS = ("auto", "avg", "max", "flatten")
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
        d = read_npz(p, hint)
        missing = {"features", "labels", "split", "ids", "classes"} - set(d)
        if missing:
            raise DataError(f"{str(p)!r} is not a cnnkit feature file (missing {', '.join(sorted(missing))})", hint=hint)
        meta = check_arrays(d, repr(str(p)), SPLITS)
        pq = {k: v for k, v in d.items() if k.startswith("pq_")} or None
        return cls(d["features"], d["labels"], d["split"], d["ids"], [str(c) for c in d["classes"]],
                   meta, d.get("codes"), pq)  # fmt: skip


def npz_path(path: str | Path) -> Path:
    """Where :meth:`FeatureSet.save` writes ``path``: with ``.npz`` appended unless it already ends so."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    return path


class _Stop(Exception):
    """Raised by the hook once the wanted layer has run: the rest of the forward pass is skipped."""


def layer_names(model: nn.Module) -> list[str]:
    """Names a ``--layer`` may take (every submodule)."""
    return [n for n, _ in model.named_modules() if n]


def _check_pool(pool: str) -> None:
    grid = pool.partition(":")[2] if pool.startswith("avg:") else None
    if pool not in POOLS and not (grid and grid.isdigit() and int(grid) >= 1):
        raise ConfigError(f"--pool {pool!r} is not allowed", hint="use " + ", ".join(POOLS))


@torch.no_grad()
def _capture(model: nn.Module, x: torch.Tensor, layer: str | None) -> torch.Tensor:
    """The raw output of ``layer`` (default: the input of the classifier) for a normalised batch."""
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
    return captured[0].float()


def layer_activations(model: nn.Module, x: torch.Tensor, layer: str | None = None, pool: str = "avg") -> torch.Tensor:
    """Activations of ``layer`` (default: the classifier's input) for a normalised batch, as N x D.

    ``pool`` turns a conv map into a vector: ``avg`` / ``max`` over all positions (one number per
    channel), ``avg:G`` averaged over a G x G grid of regions (C x G x G numbers), ``flatten`` keeps
    every value; ``auto`` here is ``avg`` (:func:`extract_features` resolves it from the reduction).
    """
    _check_pool(pool)
    a = _capture(model, x, layer)
    if a.ndim == 4:
        if pool in ("avg", "auto"):
            a = a.mean((2, 3))
        elif pool == "max":
            a = a.amax((2, 3))
        elif pool.startswith("avg:"):
            a = nn.functional.adaptive_avg_pool2d(a, int(pool[4:]))
    elif a.ndim == 3 and pool != "flatten":  # token sequences (N x L x C): pool over tokens
        a = a.amax(1) if pool == "max" else a.mean(1)
    return a.flatten(1)


def auto_pool(model: nn.Module, image: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
              layer: str | None, need: int) -> str:  # fmt: skip
    """What ``--pool auto`` means for ``layer`` (probed with one uint8 ``image``): one average per channel,
    unless a reduction needs more.

    ``need`` is how many numbers per image the reduction asks for (twice ``--pca K``, or ``--pq M``
    sub-vectors of two values): a conv map with fewer channels is average-pooled over the smallest
    G x G grid of regions that gives that many (spatial-pyramid style), or flattened when no grid is
    enough. LeNet-5's last conv block (16 x 5 x 5) with ``--pca 32`` becomes ``avg:2`` (64 numbers).
    """
    device = next(model.parameters()).device
    was = model.training
    a = _capture(model.eval(), Normalize(mean, std)(image[:1]).to(device), layer)
    model.train(was)
    if a.ndim != 4 or a.shape[1] >= need:
        return "avg"
    c, h, w = a.shape[1:]
    grid = next((g for g in range(2, min(h, w) + 1) if c * g * g >= need), None)
    return f"avg:{grid}" if grid is not None else "flatten"


def _split_data(data: str | DatasetSplits | None, base: dict[str, Any] | None = None, channels: int | None = None,
                **options: Any) -> DatasetSplits:  # fmt: skip
    """``data`` as given, or loaded as ``cnnkit train`` would (split, seed, size: :func:`data_config`)."""
    if isinstance(data, DatasetSplits):
        return data
    from ..engine.train import data_config, load_data_for

    return load_data_for(data_config(data, base, **options), channels=channels)


def resolve_source(
    source: Any, data: str | DatasetSplits | None = None, input_size: int | None = None,
    weights: str | Path | None = None, device: str = "auto",
) -> tuple[nn.Module | None, DatasetSplits, tuple[float, ...], tuple[float, ...], str]:  # fmt: skip
    """``(model or None for pixels, data, mean, std, description)`` for a run folder, model name or module.

    The data is the run's own (its recorded split) unless ``data`` names other data, which is then
    split and sized as the run was; for a model name it is sized as ``cnnkit train`` would size it.
    """
    from ..engine.device import select_device
    from ..resolve import run_or_model

    dev = select_device(device)
    if isinstance(source, nn.Module):
        c, h, _ = source.info.input_size
        ds = _split_data(data, channels=c, input_size=h)
        return source.to(dev).eval(), ds, ds.mean, ds.std, f"module {type(source).__name__}"
    if source == "pixels":
        if data is None:
            raise ConfigError("raw-pixel features need --data")
        if isinstance(data, DatasetSplits):
            ds = data
        else:  # no model to fit: the images' own size unless --input-size asks for another
            from ..engine.train import data_config, load_data_for

            ds = load_data_for(data_config(data).replace(input_size=input_size))
        return None, ds, ds.mean, ds.std, "raw pixels"
    if not isinstance(source, (str, Path, LoadedRun)):
        raise ConfigError(f"cannot extract features with {type(source).__name__}",
                          hint="pass a run folder, a model name, an nn.Module or 'pixels'")  # fmt: skip
    run = run_or_model(source, dev)
    if isinstance(run, LoadedRun):
        if data is None:
            from ..evaluate import run_data

            ds = run_data(run)  # the run's own split, checked against split.json
        else:
            c, h, _ = run.meta.input_size
            ds = _split_data(data, run.config, channels=c, source=str(run.path / "config.yaml"), input_size=h)
        return run.model, ds, tuple(run.meta.mean), tuple(run.meta.std), f"run {run.path}"
    # A model name: randomly initialised unless weights are given (random conv features are a baseline).
    ds = _split_data(data, model=run, input_size=input_size)
    c, h, w = ds.image_shape
    model = create_model(run, num_classes=ds.num_classes, in_chans=c, input_size=(h, w))
    desc = f"{run} (random initialisation)"
    if weights is not None:
        from ..models.weights import load_weights

        load_weights(model, weights, strict=False, skip_classifier=True)
        desc = f"{run} with weights {Path(weights).name}"
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
    pool: str = "auto",
    splits: tuple[str, ...] | list[str] = SPLITS,
    pca: int | None = None,
    pq: int | None = None,
    pq_bits: int = 8,
    weights: str | Path | None = None,
    input_size: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "auto",
) -> FeatureSet:
    """Features of every image of ``data`` (default: the run's own data and split) from ``layer``.

    ``source`` is a run folder, a :class:`~cnnkit.run.LoadedRun`, a registered model name (randomly
    initialised, or ``weights=FILE``), an ``nn.Module`` with ``.info``, or ``"pixels"`` (raw pixels,
    the baseline). ``pca=K`` projects on the first K principal components and ``pq=M`` replaces each
    vector by its product-quantisation reconstruction (M sub-vectors, ``2**pq_bits`` centroids each,
    codes in :attr:`FeatureSet.codes`); both are fitted on the training rows only. ``pool="auto"``
    averages a conv map per channel, over a grid of regions when the reduction needs more numbers
    (:func:`auto_pool`); ``meta["pool"]`` records what was used.
    """
    _check_pool(pool)
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
        if pool == "auto" and model is not None:
            first = pixels_of(part, [0])
            pool = auto_pool(model, first, mean, std, layer, 2 * max(pca or 0, pq or 0))
        # Batch by batch: a streamed split (files, shards) is never decoded whole, only the features are kept.
        rows = [features_of(model, x8, mean, std, layer, pool, batch_size) for x8, _ in pixel_batches(part, batch_size)]
        feats.append(np.concatenate(rows))
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
