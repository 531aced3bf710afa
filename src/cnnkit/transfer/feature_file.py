"""Reading a feature file (``cnnkit features -o FILE.npz``) safely: never unpickled, every array checked.

A hand-edited, foreign or damaged ``.npz`` fails here with the array and the problem named, instead of
deep inside scikit-learn, or, worse, fitting on misaligned labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


def read_npz(p: Path, hint: str) -> dict[str, Any]:
    """Every member of the ``.npz`` at ``p`` (``allow_pickle=False``), or a DataError saying what is wrong."""
    try:
        z = np.load(p, allow_pickle=False)
    except ValueError as e:
        # numpy's words for "neither .npz nor .npy" suggest unpickling it: that would run the file's code.
        if "pickle" in str(e).lower():
            raise DataError(f"{str(p)!r} is not an .npz feature file", hint=hint) from None
        raise DataError(f"cannot read {str(p)!r} as a feature file: {e}", hint=hint) from None
    except Exception as e:  # zipfile, zlib and the OS raise several types for a damaged archive
        raise DataError(
            f"cannot read {str(p)!r} as a feature file ({type(e).__name__}: {e})", hint=hint
        ) from None
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
                raise DataError(
                    f"{str(p)!r}: array {k!r} is damaged ({type(e).__name__}: {e})", hint=hint
                ) from None
    return d


def check_arrays(d: dict[str, Any], where: str, splits: tuple[str, ...]) -> dict[str, Any]:
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
    if (
        x.ndim != 2
        or x.shape[1] < 1
        or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer))
    ):
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
    unknown = set(split.astype(str).tolist()) - set(splits)
    if unknown:
        raise bad(f"unknown split name(s) {', '.join(sorted(unknown))} (expected train, val, test)")
    codes = d.get("codes")
    if codes is not None and (
        codes.ndim != 2 or len(codes) != len(x) or not np.issubdtype(codes.dtype, np.integer)
    ):
        raise bad(
            f"'codes' must be an integer array with one row per vector, got shape {codes.shape} {codes.dtype}"
        )
    if "meta" not in d:
        return {}
    try:
        meta = json.loads(str(d["meta"]))
    except (json.JSONDecodeError, UnicodeError) as e:
        raise bad(f"'meta' is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise bad("'meta' is not a JSON object")
    return meta
