"""What :func:`cnnkit.evaluate` returns: the metrics, readable in a notebook and usable as before.

:class:`EvalResult` is the metrics dict (so ``result["acc"]``, ``json.dumps(result)`` and every
caller written for the dict keep working) with attribute access (``result.acc``,
``result.per_class``), ``to_dict()``, ``to_frame()`` (pandas, if installed), a one-line ``repr``
instead of 5 KB of nested values, and an HTML display for Jupyter.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# The per-class columns shown in the notebook table (all of them are in ``to_frame()``).
_SHOWN = ("precision", "recall", "f1", "support", "ap")


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2%}"


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:.{digits}f}"


class EvalResult(dict):
    """The metrics of one evaluation (see :func:`~cnnkit.evaluate.runner.evaluate_run` for the keys).

    ``written`` says whether the evaluation wrote its files (``out_dir``): only then does the
    notebook display show the confusion matrix from there.
    """

    def __init__(self, metrics: dict[str, Any] | None = None, written: bool = False) -> None:
        super().__init__(metrics or {})
        self.written = written

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no metric {name!r}; the result has: {', '.join(self)}") from None

    def __dir__(self) -> list[str]:  # tab completion in a notebook offers the metrics
        return sorted({*super().__dir__(), *(k for k in self if k.isidentifier())})

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy (the ``acc`` key)."""
        return self["acc"]

    def to_dict(self) -> dict[str, Any]:
        """A plain (deep-copied) dict: JSON-able, safe to change."""
        return copy.deepcopy(dict(self))

    def to_frame(self, what: str = "per_class") -> Any:
        """A pandas DataFrame: ``"per_class"`` (one row per class) or ``"summary"`` (one row of totals)."""
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("EvalResult.to_frame() needs pandas, which is not installed",
                              hint="pip install pandas, or use result.to_dict() / result['per_class']") from None  # fmt: skip
        if what == "per_class":
            return pd.DataFrame(self["per_class"]).set_index("class")
        if what == "summary":
            flat = {k: v for k, v in self.items() if not isinstance(v, (list, dict))}
            return pd.DataFrame([flat])
        raise ConfigError(f"unknown frame {what!r}", hint="use 'per_class' or 'summary'")

    # ---- display
    def _title(self) -> str:
        return describe(self, count=False)

    def _headline(self) -> list[tuple[str, str]]:
        rows = [("images", _num(self.get("n"))), ("accuracy", _pct(self.get("acc")))]
        if len(self.get("classes", [])) > 5:  # top-5 says nothing with 5 classes or fewer
            rows.append(("top-5 accuracy", _pct(self.get("top5"))))
        rows += [("log loss", _num(self.get("loss"))), ("mean AP", _num(self.get("map"))),
                 ("ROC AUC (mean)", _num(self.get("roc_auc"))), ("ECE", _num(self.get("ece")))]  # fmt: skip
        return [(k, v) for k, v in rows if v != "-"]

    def __repr__(self) -> str:
        head = ", ".join(f"{k} {v}" for k, v in self._headline()[:4])
        return f"EvalResult({self._title()}: {head})"

    def _repr_html_(self) -> str:
        from .._html import fields, img, section, table

        parts = [fields(self._headline())]
        per_class = self.get("per_class") or []
        if per_class:
            parts.append(table(["class", *_SHOWN], [[r["class"], *(_num(r.get(c), 3) for c in _SHOWN)]
                                                    for r in per_class],
                               right=[False] + [True] * len(_SHOWN), caption="per class"))  # fmt: skip
        confused = self.get("most_confused") or []
        if confused:
            parts.append(table(["true", "predicted as", "images", "of the class"],
                               [[m["true"], m["pred"], m["count"], _pct(m["rate"])] for m in confused[:5]],
                               right=[False, False, True, True], caption="most confused"))  # fmt: skip
        cm = Path(str(self.get("out_dir", ""))) / "confusion.png"
        if self.written and cm.is_file():  # this evaluation's own figure, never one left by an earlier one
            parts.append(img(cm.read_bytes(), width=720, title=str(cm)))  # two panels: counts and rates
        return section(self._title(), *parts)


def describe(metrics: dict[str, Any], count: bool = True) -> str:
    """Which model, data split and variant an evaluation is of (figure titles, the notebook view)."""
    s = f"{Path(str(metrics.get('run', ''))).name} on {metrics.get('dataset', '')} {metrics.get('split', '')}"
    if count and "n" in metrics:
        s += f" ({metrics['n']} images)"
    if metrics.get("tta"):
        s += f", TTA {metrics['tta']}"
    if metrics.get("ensemble"):
        s += f", ensemble of {len(metrics['ensemble']) + 1}"
    return s
