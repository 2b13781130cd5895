"""MEGC 2019 metrics (UF1, UAR on predictions pooled over LOSO folds) and the challenge log format."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MieInputError
from .files import write_text_atomically

# MEGC 2019 class indices (the official list writes 0, 1, 2).
MEGC_LABELS: tuple[str, ...] = ("negative", "positive", "surprise")


@dataclass(frozen=True)
class ClipPrediction:
    """One clip's ground truth and prediction in a LOSO run.

    `subject` is spelled as the MEGC list spells it (`sub01`, `s01`, `6`); a fold is one
    (database, subject) pair.
    """

    database: str
    subject: str
    filename: str
    label: int
    prediction: int


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> np.ndarray:
    """(num_classes, num_classes) counts; rows are the ground truth, columns the prediction."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}.")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} holds classes outside 0..{num_classes - 1}: {sorted(set(values.tolist()))}.")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and recall per class from pooled counts; 0 where a class has no samples and no
    predictions (the full label set is always scored, so a missing class costs, as in
    scikit-learn's `zero_division=0`). `matrix` is (classes, classes) or a stack of them
    (..., classes, classes), as the bootstrap of `loso_report` scores many draws at once."""
    tp = np.diagonal(matrix, axis1=-2, axis2=-1).astype(float)
    fp = matrix.sum(axis=-2) - tp
    fn = matrix.sum(axis=-1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
    return f1, recall


def uf1(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> float:
    """Unweighted F1: per class F1 = 2TP / (2TP + FP + FN) on the POOLED counts, averaged over
    all `num_classes` classes (MEGC 2019; not the mean of per-fold F1)."""
    return float(_per_class(confusion_matrix(y_true, y_pred, num_classes))[0].mean())


def uar(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> float:
    """Unweighted average recall: per-class recall on the pooled predictions, averaged."""
    return float(_per_class(confusion_matrix(y_true, y_pred, num_classes))[1].mean())


def megc_scores(predictions: Iterable[ClipPrediction], num_classes: int = 3) -> dict:
    """UF1 / UAR / clip count for the whole set (`"full"`) and for each database.

    Every score pools the predictions of all folds; the per-database scores are the same
    formulas on that database's share of the one run (MEGC 2019), always over all classes.
    """
    predictions = list(predictions)
    if not predictions:
        raise ValueError("megc_scores needs at least one prediction.")
    groups = {"full": predictions}
    for db in sorted({p.database for p in predictions}):
        groups[db] = [p for p in predictions if p.database == db]
    scores = {}
    for name, group in groups.items():
        y_true = [p.label for p in group]
        y_pred = [p.prediction for p in group]
        scores[name] = {
            "uf1": uf1(y_true, y_pred, num_classes),
            "uar": uar(y_true, y_pred, num_classes),
            "clips": len(group),
            "subjects": len({(p.database, p.subject) for p in group}),
        }
    return scores


def per_fold_accuracy(predictions: Iterable[ClipPrediction]) -> dict[tuple[str, str], float]:
    """Accuracy of each LOSO fold, keyed by (database, subject): for diagnosis, not for ranking."""
    folds: dict[tuple[str, str], list[bool]] = {}
    for p in predictions:
        folds.setdefault((p.database, p.subject), []).append(p.label == p.prediction)
    return {key: float(np.mean(hits)) for key, hits in folds.items()}


# ---------------------------------------------------------------------------- challenge log format
def write_megc_log(path: str | os.PathLike, predictions: Iterable[ClipPrediction]) -> None:
    """Write the MEGC challenge log: per fold a line `<db> <subject>`, then `<filename> <gt> <pred>`.

    Folds appear in order of first appearance. The file is written atomically.
    """
    folds: dict[tuple[str, str], list[ClipPrediction]] = {}
    for p in predictions:
        for field_name in ("database", "subject", "filename"):
            value = getattr(p, field_name)
            if not value or any(ch.isspace() for ch in str(value)):
                raise ValueError(f"{field_name} must be a non-empty word without spaces, got {value!r}.")
        folds.setdefault((p.database, str(p.subject)), []).append(p)
    lines = []
    for (db, subject), clips in folds.items():
        lines.append(f"{db} {subject}")
        lines.extend(f"{c.filename} {int(c.label)} {int(c.prediction)}" for c in clips)
    write_text_atomically(path, "\n".join(lines) + "\n")


def read_megc_log(path: str | os.PathLike) -> list[ClipPrediction]:
    """Read a MEGC challenge log (ours or another method's) into `ClipPrediction`s.

    Raises:
        MieInputError: the file is missing, or a line is neither `<db> <subject>` nor
            `<filename> <gt> <pred>` with integer classes, or a clip comes before any fold line.
    """
    path = Path(path)
    if not path.is_file():
        raise MieInputError(f"No MEGC log at {path}: give the path of a file written in the challenge log format.")
    out: list[ClipPrediction] = []
    fold: tuple[str, str] | None = None
    with open(path, encoding="utf-8-sig") as fh:
        for number, raw in enumerate(fh, start=1):
            parts = raw.split()
            if not parts:
                continue
            if len(parts) == 2:
                fold = (parts[0], parts[1])
            elif len(parts) == 3:
                if fold is None:
                    raise MieInputError(
                        f"{path}:{number}: clip line {raw.strip()!r} comes before any `<db> <subject>` fold line."
                    )
                try:
                    label, prediction = int(parts[1]), int(parts[2])
                except ValueError:
                    raise MieInputError(
                        f"{path}:{number}: expected `<filename> <gt> <pred>` with integer classes, got {raw.strip()!r}."
                    ) from None
                out.append(ClipPrediction(fold[0], fold[1], parts[0], label, prediction))
            else:
                raise MieInputError(
                    f"{path}:{number}: expected `<db> <subject>` or `<filename> <gt> <pred>`, got {raw.strip()!r}."
                )
    if not out:
        raise MieInputError(f"{path} holds no clip lines; is it a MEGC challenge log?")
    return out


def format_scores_table(scores: dict, title: str | None = None) -> str:
    """A Markdown table of `megc_scores` output: full set first, then each database."""
    names = ["full"] + [k for k in scores if k != "full"]
    lines = [f"### {title}", ""] if title else []
    lines += ["| data | clips | subjects | UF1 | UAR |", "|---|---:|---:|---:|---:|"]
    for name in names:
        s = scores[name]
        lines.append(f"| {name} | {s['clips']} | {s['subjects']} | {s['uf1']:.4f} | {s['uar']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_mie.metrics",
        description="Score a MEGC 2019 challenge log: UF1 and UAR on the predictions pooled over all "
        "folds, for the full set and each database.",
    )
    parser.add_argument("log", help="log file: per fold `<db> <subject>`, then `<filename> <gt> <pred>` lines")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--num-classes", type=int, default=3, help="classes scored (default 3: MEGC 2019)")
    args = parser.parse_args(argv)
    try:
        predictions = read_megc_log(args.log)
        scores = megc_scores(predictions, args.num_classes)
    except (MieInputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        print(format_scores_table(scores, title=f"{args.log}: {len(predictions)} clips"), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "MEGC_LABELS",
    "ClipPrediction",
    "confusion_matrix",
    "format_scores_table",
    "megc_scores",
    "per_fold_accuracy",
    "read_megc_log",
    "uar",
    "uf1",
    "write_megc_log",
]
