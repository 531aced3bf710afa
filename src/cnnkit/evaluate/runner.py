"""Evaluate a saved run (or an ensemble of runs, with optional test-time augmentation) on its split.

``evaluate_run`` is ``cnnkit.evaluate``: it predicts the recorded test (or validation) split, computes
every metric of :mod:`cnnkit.evaluate.metrics` and writes them with the figures and a one-page HTML
report to ``RUN_DIR/eval/<split>/`` (``eval/<split>-tta-crops/``, ``eval/<split>-ensemble3/`` ... for
the variants, so a TTA or ensemble evaluation never overwrites the plain one).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data import Normalize, TensorLoader
from ..data.loader import pixel_batches, pixels_of
from ..errors import CheckpointError, ConfigError, DataError
from ..io import atomic_write_json, atomic_write_text, check_output_dir, check_output_file
from ..run import LoadedRun, RunDir, load_run
from .result import EvalResult, describe


def run_data(run: LoadedRun, data: str | None = None):
    """The dataset a run was trained on, split exactly as recorded in ``split.json``."""
    from ..engine.train import load_data_for

    cfg = TrainConfig.from_dict(run.config, source=str(run.path / "config.yaml"))
    if data is not None:
        cfg = cfg.replace(data=data)
    ds = load_data_for(cfg)
    split_file = RunDir(run.path).split
    saved = RunDir(run.path).read_split() if data is None else {}
    if saved:
        for s in ("train", "val", "test"):
            if saved.get(s) != list(ds.split(s).ids):
                raise CheckpointError(
                    f"the {s} split of {cfg.data!r} no longer matches {str(split_file)!r}",
                    hint="the dataset changed since training; pass --data to evaluate on other data",
                )
    if ds.classes != run.classes:
        raise CheckpointError(
            f"dataset classes {ds.classes[:5]}... differ from the model's {run.classes[:5]}...",
            hint="evaluate on data with the same classes as the training set",
        )
    return ds


@torch.no_grad()
def predict_logits(run: LoadedRun, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits for uint8 images already at the model's input size (``N x C x H x W``)."""
    from ..data import ImageData

    device = next(run.model.parameters()).device
    norm = Normalize(run.meta.mean, run.meta.std)
    labels = torch.zeros(len(images), dtype=torch.long)
    loader = TensorLoader(ImageData(images, labels, [""] * len(images)), batch_size, norm, device=device)
    outs = [run.model(x).float().cpu() for x, _ in loader]
    return torch.cat(outs) if outs else torch.zeros(0, run.meta.num_classes)


def split_probs(runs: Sequence[LoadedRun], part: Any, tta: str | None = None, batch_size: int = 512) -> torch.Tensor:
    """Class probabilities (float64 ``N x K``) of every image of a split, averaged over runs and TTA views.

    The split is read batch by batch (:func:`~cnnkit.data.loader.pixel_batches`): a streamed split
    (files, shards) is never decoded whole, so memory holds the batches in flight and the N x K output.
    """
    from .tta import check_ensemble, ensemble_probs

    check_ensemble(runs)
    out = torch.zeros(len(part), len(runs[0].classes), dtype=torch.float64)
    for x8, idx in pixel_batches(part, batch_size):
        out[idx] = ensemble_probs(runs, x8, tta)
    return out


def out_name(split: str, tta: str | None, n_models: int) -> str:
    """Folder name under ``eval/`` for a split and evaluation variant (``test``, ``test-tta-flip-ensemble2``)."""
    name = split
    if tta:
        name += f"-tta-{tta}"
    if n_models > 1:
        name += f"-ensemble{n_models}"
    return name


def _check_not_trained_on(member: LoadedRun, ids: list[str], split: str, primary: LoadedRun) -> None:
    """An ensemble member must not have trained on (or, for a test score, chosen its epoch with) the images it is scored on."""
    split_file = RunDir(member.path).split
    if split == "train" or not split_file.is_file():
        return  # scoring on training images is a diagnostic: every member has seen them
    saved = RunDir(member.path).read_split()
    seen = set(saved.get("train", [])) | (set(saved.get("val", [])) if split == "test" else set())
    overlap = seen.intersection(ids)
    if overlap:
        raise CheckpointError(
            f"run {str(member.path)!r} was trained or validated on {len(overlap)} of the {len(ids)} {split} images "
            f"of {str(primary.path)!r} (e.g. {sorted(overlap)[0]!r})",
            hint="ensemble runs trained with the same data, split fractions and --seed, so their splits agree",
        )


def _check_distinct(run_dirs: Sequence[str | Path]) -> None:
    """An ensemble of a run with itself would report "ensemble of 2" for what is one model."""
    seen: set[Path] = set()
    for r in run_dirs:
        key = Path(r).resolve()  # the same folder spelt two ways (runs/a, ./runs/a/) is still one run
        if key in seen:
            raise ConfigError(f"run {str(r)!r} is given twice (RUN_DIR and --ensemble must be different runs)",
                              hint="list each run once")  # fmt: skip
        seen.add(key)


OUTPUT_FILES = ("metrics.json", "per_class.csv", "predictions.csv", "confusion.csv", "confusion.png",
                "pr_curves.png", "reliability.png", "top_losses.png")  # fmt: skip


def _check_outputs(out: Path, report: bool) -> None:
    """The evaluation folder and every file written into it can be written (checked before any work).

    The place is fixed (``RUN_DIR/eval/<variant>/``), so a file or folder in the way is named with
    the advice to move it, not to pick another output.
    """
    hint = "move it away: cnnkit eval writes its results to RUN_DIR/eval/<split>/"
    for q in (out.parent, out):
        if q.exists() and not q.is_dir():
            raise ConfigError(f"cannot write the evaluation to {str(out)!r}: {str(q)!r} is a file", hint=hint)
    for f in OUTPUT_FILES + (("report.html",) if report else ()):
        if (out / f).is_dir():
            raise ConfigError(f"cannot write {str(out / f)!r}: a folder of that name is in the way", hint=hint)
    check_output_dir(out, "the evaluation folder")
    for f in OUTPUT_FILES + (("report.html",) if report else ()):
        check_output_file(out / f, option="the evaluation file")


def _jsonable(o: Any) -> Any:
    """NaN/inf become null: strict JSON has no NaN, and a missing value reads better than a fake one."""
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    return o


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def evaluate_run(
    run_dir: str | Path | LoadedRun,
    split: str = "test",
    data: str | None = None,
    device: str | None = None,
    write: bool = True,
    tta: str | None = None,
    ensemble: Sequence[str | Path] = (),
    report: bool = True,
    n_top_losses: int = 16,
) -> EvalResult:
    """Evaluate a run's best weights (or a run already loaded) on ``split`` and return the metrics.

    The result is an :class:`~cnnkit.evaluate.result.EvalResult`: the metrics dict, with attribute
    access, ``to_dict()``/``to_frame()`` and a notebook display. ``device`` defaults to the CPU for a
    run folder and to where a loaded run's model already is.

    ``tta`` is ``None``, ``"flip"``, ``"flip+shift"`` or ``"crops"`` (see :func:`~cnnkit.evaluate.tta.tta_views`);
    ``ensemble`` lists more run folders whose probabilities are averaged with this run's (they must
    predict the same classes). With ``write`` the metrics, CSVs, figures and (with ``report``)
    ``report.html`` go to ``RUN_DIR/eval/<split>[-variant]/``; ``metrics["out_dir"]`` says where.

    The top level keeps ``n``, ``acc``, ``top5``, ``error``, ``top5_error`` and ``loss`` (the log
    loss of the averaged probabilities); see :func:`~cnnkit.evaluate.metrics.classification_metrics`
    for the rest.
    """
    from ..engine.device import select_device
    from .complexity import counted_by, model_cost, per_unit
    from .metrics import classification_metrics, top_losses
    from .tta import TTA_MODES, check_ensemble, view_count

    if tta is not None and tta not in TTA_MODES and tta != "none":
        raise ConfigError(f"unknown test-time augmentation {tta!r}", hint="use " + " or ".join(TTA_MODES))
    tta = None if tta == "none" else tta
    if isinstance(run_dir, LoadedRun):  # a run loaded in a notebook: evaluated where its model is
        _check_distinct([run_dir.path, *ensemble])
        run = run_dir if device is None else run_dir.to(select_device(device))
        run.model.eval()  # as load_run leaves it: dropout off, batch norm on its running statistics
        dev = run.device
    else:
        _check_distinct([run_dir, *ensemble])
        dev = select_device(device or "cpu")
        run = load_run(run_dir, device=dev)
    runs = [run] + [load_run(r, device=dev) for r in ensemble]
    check_ensemble(runs)
    name = out_name(split, tta, len(runs))
    out = Path(run.path) / "eval" / name
    if write:  # before any work: an evaluation that cannot be saved should not run for minutes first
        _check_outputs(out, report)
    ds = run_data(run, data)
    part = ds.split(split)
    if len(part) == 0:
        raise DataError(f"the {split} split of {ds.name!r} has no images", hint="evaluate another --split")
    if data is None:
        for member in runs[1:]:
            _check_not_trained_on(member, list(part.ids), split, run)

    probs = split_probs(runs, part, tta).numpy()
    y = part.labels.numpy()
    classes = run.classes
    m = classification_metrics(probs, y, classes)

    # Cost of one prediction: every model of the ensemble runs on every TTA view.
    n_views = view_count(tta)
    costs = [model_cost(r.model, r.meta.input_size) for r in runs]
    params = sum(c["params"] for c in costs)
    macs = sum(c["macs"] for c in costs) * n_views
    worst = top_losses(probs, y, n_top_losses)
    pred = probs.argmax(1)
    top_rows = [
        {"index": int(i), "id": part.ids[i], "true": classes[y[i]], "pred": classes[pred[i]],
         "p_pred": float(probs[i, pred[i]]), "p_true": float(probs[i, y[i]]),
         "loss": float(-np.log(max(probs[i, y[i]], np.finfo(np.float64).eps)))}
        for i in worst
    ]  # fmt: skip
    metrics: dict[str, Any] = {
        "split": split,
        "run": str(run.path),
        "model": run.meta.model,
        "dataset": data or run.meta.dataset or run.config.get("data", ""),
        "tta": tta,
        "views": n_views,
        "ensemble": [str(r.path) for r in runs[1:]],
        **m,
        "params": params,
        "macs": macs,
        "macs_counted_by": counted_by(),
        "acc_per_mparam": per_unit(m["acc"], params, 1e6),
        "acc_per_gmac": per_unit(m["acc"], macs, 1e9),
        "top_losses": [{k: v for k, v in r.items() if k != "index"} for r in top_rows],
        "classes": classes,
        "out_dir": str(out),
    }
    metrics = _jsonable(metrics)
    if write:
        _write_outputs(out, run, runs, metrics, probs, y, part, top_rows, report)
    return EvalResult(metrics, written=write)


def _write_outputs(out: Path, run: LoadedRun, runs: list[LoadedRun], metrics: dict[str, Any], probs: np.ndarray,
                   y: np.ndarray, part: Any, top_rows: list[dict[str, Any]], report: bool) -> None:  # fmt: skip
    """metrics.json, per_class.csv, predictions.csv, confusion.csv, the figures and report.html."""
    from .metrics import calibration, confusion_matrix, pr_curve
    from .plots import plot_confusion, plot_pr_curves, plot_reliability, plot_top_losses

    classes = run.classes
    k = len(classes)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    cols = ["class", "precision", "recall", "specificity", "f1", "support", "ap", "roc_auc", "tp", "fp", "fn", "tn"]
    atomic_write_text(out / "per_class.csv", _csv_text(cols, [[r[c] for c in cols] for r in metrics["per_class"]]))
    pred = probs.argmax(1)
    atomic_write_text(out / "predictions.csv", _csv_text(
        ["id", "true", "pred", "correct", "p_pred", "p_true"] + [f"p_{c}" for c in classes],
        [[part.ids[i], classes[y[i]], classes[pred[i]], int(pred[i] == y[i]), f"{probs[i, pred[i]]:.6g}",
          f"{probs[i, y[i]]:.6g}"] + [f"{v:.6g}" for v in probs[i]] for i in range(len(y))],
    ))  # fmt: skip
    cm = confusion_matrix(y, pred, k)
    atomic_write_text(out / "confusion.csv", _csv_text(["true \\ pred", *classes],
                                                       [[classes[i], *cm[i].tolist()] for i in range(k)]))  # fmt: skip
    what = _describe(metrics)
    plot_confusion(cm, classes, out / "confusion.png", title=what)
    curves = [pr_curve(y == c, probs[:, c])[:2] for c in range(k)]
    ap = [np.nan if r["ap"] is None else r["ap"] for r in metrics["per_class"]]
    plot_pr_curves(curves, ap, classes, out / "pr_curves.png", title=what)
    plot_reliability(calibration(probs, y), out / "reliability.png", title=what)
    imgs = list(pixels_of(part, [r["index"] for r in top_rows]).numpy())
    plot_top_losses(imgs, top_rows, out / "top_losses.png", title=what)
    if report:
        from .report import write_report

        write_report(out, run, runs, metrics)


def _describe(metrics: dict[str, Any]) -> str:
    """Figure titles say which model, data split and variant they show."""
    return describe(metrics)
