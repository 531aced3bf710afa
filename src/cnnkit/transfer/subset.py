"""Class subsets and few-shot training sets: "digits 5-9 with 10 labelled images per class".

:func:`subset_dataset` filters a :class:`~cnnkit.data.DatasetSplits`: it keeps only the chosen
classes (relabelled ``0..K-1`` in the order given, class names kept), keeps the image ids (so a run's
``split.json`` still names the original images) and draws ``per_class`` training images per class
with a seeded generator. The test split is never thinned: a few-shot model is judged on every
held-out image of its classes.

Because :func:`cnnkit.train` loads its data from the config's ``data`` string (so ``--resume``,
``cnnkit eval`` and ``split.json`` all agree), the same subset is also a dataset *name*: the
``subset:`` prefix source registered here, e.g.::

    subset:digits?classes=5,6,7,8,9&per_class=10&val_per_class=0&test_split=0.5

Keys: ``classes`` (names, or indices when no class has that name), ``per_class`` and
``val_per_class`` (images kept per class in train / val; absent: all), and how the *base* dataset is
split before filtering: ``val_split``, ``test_split``, ``seed`` (defaults 0.15, 0.15, 0, as
``cnnkit train``) and ``root``. The spec is the whole truth: the run's own ``--val-split`` and
``--seed`` do not re-split it (:func:`subset_spec` writes them into the spec for you).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import torch

from ..data import DatasetSplits, ImageData, load_dataset, register_prefix
from ..data.registry import RawDataset
from ..errors import DataError

PREFIX = "subset"
_SPLIT_KEYS = ("val_split", "test_split", "seed", "root", "name")
_KEYS = ("classes", "per_class", "val_per_class", "val_split", "test_split", "seed", "root")


def _resolve_classes(classes: Sequence[str | int], names: list[str]) -> list[int]:
    """Indices of ``classes`` in ``names``: a class is found by name first, then as an integer index."""
    out: list[int] = []
    for c in classes:
        key = str(c).strip()
        if key in names:
            idx = names.index(key)
        elif key.lstrip("-").isdigit() and 0 <= int(key) < len(names):
            idx = int(key)
        else:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise DataError(f"unknown class {key!r}", hint=f"the dataset's classes are: {shown}")
        if idx in out:
            raise DataError(f"class {key!r} is listed twice")
        out.append(idx)
    if not out:
        raise DataError("no classes selected", hint="pass at least two classes, e.g. --classes 5,6,7,8,9")
    if len(out) < 2:  # a one-class classifier is 100% accurate and has learnt nothing
        raise DataError(f"only one class selected ({names[out[0]]!r}): nothing to classify",
                        hint="pass at least two classes, e.g. --classes 5,6,7,8,9")  # fmt: skip
    return out


def _filter(split: ImageData, keep: list[int], names: list[str], per_class: int | None, seed: int,
            what: str) -> ImageData:
    """Images of the ``keep`` classes relabelled by position in ``keep``; ``per_class`` of each at most."""
    gen = torch.Generator().manual_seed(seed)
    chosen: list[torch.Tensor] = []
    for old in keep:
        idx = (split.labels == old).nonzero().flatten()
        if per_class is not None:
            if len(idx) < per_class:
                option = "val_per_class (--val-per-class)" if what == "validation" else "per_class (--per-class)"
                raise DataError(
                    f"{option} {per_class} is more than the {len(idx)} {what} images of class {names[old]!r}",
                    hint="lower the number per class, or give the base dataset a larger split",
                )
            # A seeded draw (not the first N) so the few-shot set is not biased by file order.
            idx = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
        chosen.append(idx)
    index = torch.cat(chosen).sort().values if chosen else torch.zeros(0, dtype=torch.long)
    sub = split.subset(index)
    remap = torch.full((len(names),), -1, dtype=torch.long)
    remap[torch.tensor(keep)] = torch.arange(len(keep))
    # dataclasses.replace keeps the split's own type: in-memory images, or files still to be streamed.
    return dataclasses.replace(sub, labels=remap[sub.labels])


def _train_stats(train: ImageData, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of the new training split (the data layer's helper when it has one: it handles streamed splits)."""
    from ..data import registry

    if hasattr(registry, "train_stats"):
        return registry.train_stats(train, seed)
    from ..data import channel_stats

    return channel_stats(train.images)


def subset_dataset(
    data: DatasetSplits,
    classes: Sequence[str | int] | None = None,
    per_class: int | None = None,
    val_per_class: int | None = None,
    seed: int = 0,
) -> DatasetSplits:
    """Keep ``classes`` (all when ``None``) and ``per_class`` training images of each.

    Labels become ``0..K-1`` in the order ``classes`` lists them and ``classes`` keeps their names;
    ids are kept. ``val_per_class`` thins the validation split the same way (``0`` empties it, for a
    strict budget of labelled images). The test split keeps every image of the chosen classes. The
    mean/std are recomputed on the new training split, as :func:`~cnnkit.data.load_dataset` would.
    """
    _check_counts(per_class, val_per_class)
    keep = list(range(data.num_classes)) if classes is None else _resolve_classes(classes, data.classes)
    # Different streams for train and val so the two draws are independent.
    n = data.classes
    train = _filter(data.train, keep, n, per_class, seed, "training")
    val = _filter(data.val, keep, n, val_per_class, seed + 1, "validation")
    test = _filter(data.test, keep, n, None, seed, "test")
    if len(train) == 0:
        raise DataError("the subset has no training images", hint="use per_class >= 1")
    mean, std = _train_stats(train, seed)
    # The base's class counts and imbalance warnings describe other classes: the data layer redoes them.
    info = {k: v for k, v in data.info.items() if k not in ("class_counts", "imbalance", "warnings")}
    info = {**info, "subset": {"of": data.name, "classes": [data.classes[i] for i in keep],
                                    "per_class": per_class, "val_per_class": val_per_class, "seed": seed}}  # fmt: skip
    return DatasetSplits(data.name, [data.classes[i] for i in keep], train, val, test, mean, std, info)


def _check_counts(per_class: int | None, val_per_class: int | None) -> None:
    """Images per class: at least one to train on; validation may be emptied with 0."""
    if per_class is not None and not 1 <= per_class <= 10**9:
        raise DataError(f"per_class (--per-class) must be >= 1, got {per_class}",
                        hint="the number of training images kept per class")  # fmt: skip
    if val_per_class is not None and not 0 <= val_per_class <= 10**9:
        raise DataError(f"val_per_class (--val-per-class) must be >= 0, got {val_per_class}",
                        hint="the number of validation images kept per class (0: none)")  # fmt: skip


@dataclass(frozen=True)
class SubsetSpec:
    """The parsed form of ``subset:BASE?key=value&...`` (see the module docstring)."""

    base: str
    classes: tuple[str, ...] | None = None
    per_class: int | None = None
    val_per_class: int | None = None
    val_split: float = 0.15
    test_split: float = 0.15
    seed: int = 0
    root: str | None = None

    @classmethod
    def parse(cls, arg: str) -> SubsetSpec:
        """Parse the text after ``subset:`` (the base name may itself hold colons, e.g. ``folder:/x``)."""
        base, sep, query = arg.rpartition("?")
        if not sep:
            base, query = arg, ""
        if not base:
            raise DataError(f"subset spec {arg!r} names no dataset", hint="e.g. subset:digits?classes=5,6,7,8,9")
        kw: dict[str, object] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in _KEYS:
                from ..errors import suggest

                raise DataError(f"unknown subset option {key!r} in {arg!r}", hint=suggest(key, _KEYS))
            try:
                if key == "classes":
                    kw[key] = tuple(c for c in value.split(",") if c.strip())
                elif key in ("per_class", "val_per_class", "seed"):
                    kw[key] = int(value)
                elif key in ("val_split", "test_split"):
                    kw[key] = float(value)
                else:
                    kw[key] = value
            except ValueError:
                raise DataError(f"subset option {key}={value!r} is not a number") from None
        return cls(base, **kw).check()  # type: ignore[arg-type]

    def check(self) -> SubsetSpec:
        """Refuse values that would fail deep in the data layer (or pass silently); returns ``self``."""
        if self.base.startswith(PREFIX + ":"):
            raise DataError("a subset of a subset is not supported", hint="select the classes in one spec")
        _check_counts(self.per_class, self.val_per_class)
        for key in ("val_split", "test_split"):
            v = getattr(self, key)
            if not 0.0 <= v <= 0.9:  # also false for NaN
                raise DataError(f"subset option {key}={v:g} must be between 0 and 0.9")
        if self.val_split + self.test_split >= 1.0:
            raise DataError(f"subset options val_split + test_split = {self.val_split + self.test_split:g} leave "
                            "no training data", hint="use fractions that sum to less than 1")  # fmt: skip
        if not 0 <= self.seed <= 2**32 - 1:
            raise DataError(f"subset option seed={self.seed} must be between 0 and 2**32 - 1")
        if self.classes is not None and not self.classes:
            raise DataError("subset option classes= lists no class", hint="e.g. classes=5,6,7,8,9")
        return self

    def to_name(self) -> str:
        """The dataset name that :func:`~cnnkit.data.load_dataset` (and ``--data``) accepts."""
        q: dict[str, str] = {}
        if self.classes is not None:
            q["classes"] = ",".join(self.classes)
        for k in ("per_class", "val_per_class"):
            if getattr(self, k) is not None:
                q[k] = str(getattr(self, k))
        q.update(val_split=f"{self.val_split:g}", test_split=f"{self.test_split:g}", seed=str(self.seed))
        if self.root:
            q["root"] = self.root
        return f"{PREFIX}:{self.base}?" + urlencode(q, safe=",/", quote_via=quote)

    def load(self, **load_kw: Any) -> DatasetSplits:
        """The base dataset split as the spec says, then filtered.

        ``load_kw`` are further :func:`~cnnkit.data.load_dataset` options (size, channels, streaming),
        passed on when that function takes them; the split options always come from the spec.
        """
        # Only named parameters: load_dataset's **kw goes to the base's own loader, which may not take them.
        accepted = inspect.signature(load_dataset).parameters
        extra = {k: v for k, v in load_kw.items() if k in accepted and k not in _SPLIT_KEYS}
        base = load_dataset(self.base, val_split=self.val_split, test_split=self.test_split, seed=self.seed,
                            root=self.root, **extra)  # fmt: skip
        return subset_dataset(base, self.classes, self.per_class, self.val_per_class, seed=self.seed)


def subset_spec(
    base: str,
    classes: Sequence[str | int] | None = None,
    per_class: int | None = None,
    val_per_class: int | None = None,
    val_split: float = 0.15,
    test_split: float = 0.15,
    seed: int = 0,
    root: str | None = None,
) -> str:
    """A ``subset:`` dataset name for :func:`cnnkit.train` / ``--data`` (see the module docstring)."""
    spec = SubsetSpec(base, tuple(str(c) for c in classes) if classes is not None else None, per_class,
                      val_per_class, val_split, test_split, seed, root)  # fmt: skip
    return spec.check().to_name()


@register_prefix(PREFIX)
def load_subset_source(arg: str, **load_kw: Any) -> RawDataset:
    """The ``subset:`` source: the filtered splits, already train/val/test (so they are not re-split)."""
    spec = SubsetSpec.parse(arg)
    ds = spec.load(**load_kw)
    info = {**ds.info, "source": f"subset of {spec.base}", "split": "as the subset spec says"}
    return RawDataset(list(ds.classes), {"train": ds.train, "val": ds.val, "test": ds.test}, info)
