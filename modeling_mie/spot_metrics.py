"""Spotting metrics for long videos: interval IoU, the MEGC spotting F1 (micro, macro, overall) and STRS.

Intervals are `(onset, offset)` pairs of 0-based frame indices with BOTH ends included, so an
interval lasts `offset - onset + 1` frames (the databases' annotations are 1-based: subtract 1
from both ends first, as SOFTNet does). Ground truth and predictions are tables with one row per
interval: a pandas DataFrame or any sequence of dicts. pandas is never imported here; a DataFrame
is read through its `to_dict("records")`.

Two metrics, two matching rules (docs/spotting.md, ../shared/SPOTTING.md section 4):

- `evaluate_spotting`: the MEGC spotting metric [HE20]. Per video and kind, a prediction is a
  true positive when it is paired with a ground-truth interval of its kind at IoU >= 0.5, and
  the pairing is one-to-one, so a second hit on an already counted interval is a false positive.
- `evaluate_strs`: STRS (genbing99/STRS-Metric), spot-then-recognise. Spotting there pairs a
  prediction with EVERY still-unmatched interval it hits, and the recognition step is scored on
  those pairs only.

Both default to the honest reading of the protocol; `official_quirks` and `original_quirks`
reproduce the reference scorers' arithmetic where it departs from it (documented per function).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MieInputError

if TYPE_CHECKING:  # only for the annotations: a DataFrame is read without importing pandas
    import pandas as pd

    IntervalTable = pd.DataFrame | Sequence[Mapping[str, Any]]

KINDS: tuple[str, ...] = ("micro", "macro")

# Length classes of the official MEGC2020 baseline scorer (HeyingGithub/Baseline-project-for-
# MEGC2020_spotting, evaluation_all_p.py): predictions shorter than the micro minimum are dropped
# before scoring, and each class is scored on the predictions inside its range. Lengths are in
# frames, both ends included; None = no upper bound. CAS(ME)^2 runs at 30 fps, SAMM at 200 fps.
OFFICIAL_LENGTH_CLASSES: dict[str, dict[str, tuple[int, int | None]]] = {
    "cas": {"micro": (7, 16), "macro": (17, None)},
    "samm": {"micro": (47, 105), "macro": (106, None)},
}


# --------------------------------------------------------------------------------------- counts
@dataclass(frozen=True)
class SpotCounts:
    """Interval counts of one scoring group (a kind, a video, or everything pooled).

    Precision is `tp / (tp + fp)` and recall `tp / (tp + fn)`; under the one-to-one MEGC matching
    `tp + fp == n_pred` and `tp + fn == n_gt`, so they are HE20's A/N and A/M. Under STRS's
    matching one prediction can make several true positives, so `tp + fp` may exceed `n_pred`.
    Each ratio is 0 when its denominator is 0; the counts show why.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    n_gt: int = 0
    n_pred: int = 0

    def __add__(self, other: SpotCounts) -> SpotCounts:
        return SpotCounts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.n_gt + other.n_gt,
            self.n_pred + other.n_pred,
        )

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "n_gt": self.n_gt,
            "n_pred": self.n_pred,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class SpotMatch:
    """One true-positive pair of `evaluate_spotting`.

    `video` is the grouping key: the `video` value, or `(subject, video)` when the tables have a
    `subject` column. `gt_index` and `pred_index` are 0-based row positions in the tables as
    given (for a DataFrame, positions as in `.iloc`, not index labels).
    """

    video: Hashable
    kind: str
    gt_index: int
    pred_index: int
    iou: float


def _counts_table(rows: Iterable[tuple[str, SpotCounts]], first: str) -> str:
    lines = [f"{first:<8} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>9} {'recall':>7} {'F1':>7}"]
    for name, c in rows:
        lines.append(f"{name:<8} {c.tp:>5d} {c.fp:>5d} {c.fn:>5d} {c.precision:>9.4f} {c.recall:>7.4f} {c.f1:>7.4f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SpottingResult:
    """What `evaluate_spotting` found.

    Fields:
        micro, macro: counts summed over all videos for that kind.
        overall: both kinds pooled (HE20: (A1+A2)/(M1+M2) and (A1+A2)/(N1+N2)); the ranking score
            is `overall.f1`, which is not the mean of the two per-kind F1 values.
        matches: the true-positive pairs, video by video in order of first appearance.
        per_video: counts keyed by (video key, kind) for every video and kind with at least one
            interval, for finding where the errors are.
        iou_threshold, official_quirks: the settings that produced these numbers.
    """

    micro: SpotCounts
    macro: SpotCounts
    overall: SpotCounts
    matches: tuple[SpotMatch, ...]
    per_video: dict[tuple[Hashable, str], SpotCounts]
    iou_threshold: float
    official_quirks: bool

    def table(self) -> str:
        """Rows micro / macro / overall; columns TP FP FN precision recall F1 (plain text)."""
        return _counts_table((("micro", self.micro), ("macro", self.macro), ("overall", self.overall)), "kind")

    def to_dict(self) -> dict[str, Any]:
        """Counts and scores per kind and overall, plus the settings (JSON-serialisable; the
        matched pairs are left out because video keys need not be strings)."""
        return {
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
            "overall": self.overall.to_dict(),
            "iou_threshold": self.iou_threshold,
            "official_quirks": self.official_quirks,
        }


# ------------------------------------------------------------------------------------------ IoU
def _iou_matrix(
    gt_on: np.ndarray, gt_off: np.ndarray, pred_on: np.ndarray, pred_off: np.ndarray, official_quirks: bool
) -> np.ndarray:
    """IoU of every ground-truth interval with every prediction: (n_gt, n_pred) float64."""
    gt_on, gt_off = gt_on[:, None], gt_off[:, None]  # (n_gt, 1)
    pred_on, pred_off = pred_on[None, :], pred_off[None, :]  # (1, n_pred)
    span = np.minimum(gt_off, pred_off) - np.maximum(gt_on, pred_on)  # (n_gt, n_pred), frames - 1
    if official_quirks:
        # result_helper.calc_iou: the +1 sits outside the max, so disjoint intervals share 1 frame.
        inter = np.maximum(0, span) + 1
    else:
        inter = np.maximum(0, span + 1)
    union = (gt_off - gt_on + 1) + (pred_off - pred_on + 1) - inter
    iou = inter / union
    if official_quirks:
        # calc_iou also returns 0 whenever either interval has end <= start (one-frame intervals).
        iou = np.where((gt_off <= gt_on) | (pred_off <= pred_on), 0.0, iou)
    return iou


def interval_iou(a: Sequence[int], b: Sequence[int], *, official_quirks: bool = False) -> float:
    """Intersection over union of two `(onset, offset)` intervals of inclusive frame indices.

    intersection = max(0, min(offsets) - max(onsets) + 1), union = len(a) + len(b) - intersection,
    len = offset - onset + 1. So [10, 19] and [15, 24] share frames 15..19: 5 / 15.

    Args:
        a, b: `(onset, offset)` with `onset <= offset`, whole frame numbers.
        official_quirks: reproduce the official MEGC2020 scorer (result_helper.calc_iou): the
            intersection is `max(0, min(offsets) - max(onsets)) + 1`, so two DISJOINT intervals
            still share one frame ([0, 4] and [6, 10] get 1/9 instead of 0), and the IoU is 0
            whenever either interval has offset <= onset (a one-frame interval scores 0 even
            against itself). Neither changes a decision at the 0.5 threshold for intervals of
            two frames or more, but both change IoU values and lower thresholds.

    Raises:
        MieInputError: an interval is not two whole frame numbers with onset <= offset.
    """
    a_on, a_off = _interval_pair(a, "a")
    b_on, b_off = _interval_pair(b, "b")
    iou = _iou_matrix(np.array([a_on]), np.array([a_off]), np.array([b_on]), np.array([b_off]), official_quirks)
    return float(iou[0, 0])


def _interval_pair(value: Sequence[int], name: str) -> tuple[int, int]:
    try:
        onset, offset = value
    except (TypeError, ValueError):
        raise MieInputError(
            f"Interval {name} must be an (onset, offset) pair of frame indices, got {value!r}."
        ) from None
    onset = _frame_index(onset, f"interval {name} onset")
    offset = _frame_index(offset, f"interval {name} offset")
    if onset > offset:
        raise MieInputError(
            f"Interval {name} = ({onset}, {offset}) has its onset after its offset; give (first frame, last frame)."
        )
    return onset, offset


# ------------------------------------------------------------------------------ length classes
def kind_by_length(length_frames: int, fps: float, *, max_micro_s: float = 0.5) -> str:
    """'micro' when the interval lasts at most `max_micro_s` seconds, else 'macro'.

    Duration = length_frames / fps with length_frames = offset - onset + 1. The 0.5 s bound is the
    usual ME definition [HE20]; it makes 15 frames at 30 fps and 100 frames at 200 fps micro. The
    official MEGC2020 scorer used fixed frame ranges instead: `official_kind_by_length`.
    Note that annotated MEs can be longer (ten CAS(ME)^2 MEs exceed 15 frames): classify ground
    truth by its type column, and use this for predictions that carry no kind.

    Raises:
        MieInputError: the length is not a whole number >= 1, or fps / max_micro_s is not > 0.
    """
    length = _frame_index(length_frames, "length_frames")
    if length < 1:
        raise MieInputError(f"length_frames must be at least 1 (offset - onset + 1), got {length}.")
    for name, value in (("fps", fps), ("max_micro_s", max_micro_s)):
        if not _is_real(value) or not value > 0:
            raise MieInputError(f"{name} must be a positive number, got {value!r}.")
    return "micro" if length / fps <= max_micro_s else "macro"


def official_kind_by_length(length_frames: int, database: str) -> str | None:
    """The kind the official MEGC2020 scorer gives a prediction of this length, or None.

    CAS(ME)^2 ('cas'): micro 7-16 frames, macro >= 17. SAMM Long Videos ('samm'): micro 47-105,
    macro >= 106 (`OFFICIAL_LENGTH_CLASSES`). Shorter predictions fall in no class: the official
    scorer drops them (None here). Reproduces the scorer; for 30 fps, 16 frames is micro here but
    macro under `kind_by_length` (0.53 s > 0.5 s).

    Raises:
        MieInputError: unknown database name, or a length that is not a whole number >= 1.
    """
    if database not in OFFICIAL_LENGTH_CLASSES:
        raise MieInputError(
            f"No official length classes for database {database!r}; choose one of "
            f"{sorted(OFFICIAL_LENGTH_CLASSES)}, or use kind_by_length(length, fps) for other data."
        )
    length = _frame_index(length_frames, "length_frames")
    if length < 1:
        raise MieInputError(f"length_frames must be at least 1 (offset - onset + 1), got {length}.")
    for kind, (low, high) in OFFICIAL_LENGTH_CLASSES[database].items():
        if length >= low and (high is None or length <= high):
            return kind
    return None


# ------------------------------------------------------------------------------- reading tables
@dataclass(frozen=True)
class _Row:
    """One validated interval: its row position in the table, its video key and its label
    (kind for spotting, emotion for STRS)."""

    position: int
    subject: Hashable | None
    video: Hashable
    onset: int
    offset: int
    label: Hashable


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(np.isnan(value))  # float or numpy NaN
    except TypeError:  # not a float (str, tuple, ...), or pandas.NA / NaT
        return type(value).__name__ in ("NAType", "NaTType")


def _frame_index(value: Any, what: str) -> int:
    """A whole frame number from an int, a float like 12.0 or a numpy scalar."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise MieInputError(f"{what} must be a whole frame number, got {value!r}.")
    if float(value) != int(value):
        raise MieInputError(
            f"{what} is {value!r}, not a whole frame number; round the annotation first "
            "(SAMM's workbook has fractional frames: the MEGC baseline rounds them, SOFTNet truncates)."
        )
    return int(value)


def _records(table: Any, name: str) -> tuple[list[Mapping[str, Any]], bool | None]:
    """The rows of a DataFrame or a sequence of mappings, and whether they carry `subject`
    (None for an empty table given as a list, which says nothing about its columns)."""
    if hasattr(table, "columns") and hasattr(table, "to_dict"):  # a pandas DataFrame
        records = table.to_dict("records")
        # An empty frame without the column (e.g. pd.DataFrame()) says nothing about subjects.
        return records, True if "subject" in table.columns else (False if records else None)
    if isinstance(table, (Mapping, str, bytes)) or not isinstance(table, Iterable):
        raise MieInputError(
            f"{name} must be a pandas DataFrame or a sequence of dicts (one per interval), got a "
            f"{type(table).__name__}."
        )
    records = list(table)
    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise MieInputError(
                f"{name} row {position} is a {type(record).__name__}, not a dict; give each interval as a "
                "dict such as {'video': ..., 'onset': ..., 'offset': ...}."
            )
    with_subject = sum("subject" in record for record in records)
    if 0 < with_subject < len(records):
        raise MieInputError(
            f"{name}: {with_subject} of {len(records)} rows have a 'subject' and the others do not; "
            "give it in every row or in none."
        )
    return records, (with_subject > 0 if records else None)


def _read_rows(
    table: Any, name: str, label: str, allowed: Sequence[str] | None, label_hint: str = ""
) -> tuple[list[_Row], bool | None]:
    records, has_subject = _records(table, name)
    required = ("video", "onset", "offset", label)
    rows = []
    for position, record in enumerate(records):
        missing = [key for key in required if key not in record]
        if missing:
            raise MieInputError(
                f"{name} has no column {', '.join(repr(m) for m in missing)} (row {position} has "
                f"{sorted(map(str, record))}); every interval needs {', '.join(required)}."
            )
        where = f"{name} row {position}"
        subject = record["subject"] if has_subject else None
        for key, value in (("video", record["video"]), ("subject", subject), (label, record[label])):
            if key == "subject" and not has_subject:
                continue
            if _is_missing(value):
                raise MieInputError(f"{where}: {key} is missing; fill it in or drop the row.")
            try:
                hash(value)
            except TypeError:
                raise MieInputError(
                    f"{where}: {key} {value!r} cannot be used as an id; give a string or number."
                ) from None
        onset = _frame_index(record["onset"], f"{where}: onset")
        offset = _frame_index(record["offset"], f"{where}: offset")
        if onset < 0:
            raise MieInputError(
                f"{where}: onset {onset} is negative; frames are 0-based indices (subtract 1 from 1-based annotations)."
            )
        if onset > offset:
            raise MieInputError(
                f"{where} (video {record['video']!r}): onset {onset} is after offset {offset}; an interval runs from "
                "its first to its last frame, both included. Swap them or fix the annotation."
            )
        value = record[label]
        if allowed is not None:
            if value not in allowed:
                raise MieInputError(
                    f"{where}: {label} {value!r} is not one of {', '.join(repr(a) for a in allowed)}.{label_hint}"
                )
            value = allowed[list(allowed).index(value)]  # the plain str, not a numpy.str_
        rows.append(_Row(position, subject, record["video"], onset, offset, value))
    return rows, has_subject


def _read_pair(
    ground_truth: Any, predictions: Any, label: str, allowed: Sequence[str] | None = None, label_hint: str = ""
) -> tuple[list[_Row], list[_Row], bool]:
    """Both tables, and whether videos are keyed by (subject, video)."""
    gt, gt_subject = _read_rows(ground_truth, "ground_truth", label, allowed, label_hint)
    pred, pred_subject = _read_rows(predictions, "predictions", label, allowed, label_hint)
    if {gt_subject, pred_subject} == {True, False}:
        has, lacks = ("ground_truth", "predictions") if gt_subject else ("predictions", "ground_truth")
        raise MieInputError(
            f"{has} has a 'subject' column and {lacks} has none; give it in both (video names such as "
            "CASME II's EP01_01 repeat across subjects) or in neither."
        )
    return gt, pred, bool(gt_subject or pred_subject)


def _key(row: _Row, by_subject: bool) -> Hashable:
    return (row.subject, row.video) if by_subject else row.video


def _check_threshold(iou_threshold: float) -> None:
    if not _is_real(iou_threshold) or not 0 < iou_threshold <= 1:
        raise MieInputError(f"iou_threshold must be a number in (0, 1], got {iou_threshold!r} (MEGC uses 0.5).")


def _iou_of(gts: Sequence[_Row], preds: Sequence[_Row], official_quirks: bool) -> np.ndarray:
    """(n_gt, n_pred) IoU of two lists of rows."""
    return _iou_matrix(
        np.array([r.onset for r in gts], dtype=np.int64),
        np.array([r.offset for r in gts], dtype=np.int64),
        np.array([r.onset for r in preds], dtype=np.int64),
        np.array([r.offset for r in preds], dtype=np.int64),
        official_quirks,
    )


# ------------------------------------------------------------------------------ MEGC spotting
_KIND_HINT = (
    " Map the database's labels first (CAS(ME)^2 'micro-expression' and SAMM 'Micro - 1/2' -> 'micro';"
    " 'macro-expression' and 'Macro' -> 'macro'), or give predictions a kind with kind_by_length()."
)


def _maximum_matching(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(gt, prediction) pairs of a maximum one-to-one matching among pairs with IoU >= threshold.

    First greedy by descending IoU (ties: lower GT, then lower prediction index), then Kuhn's
    augmenting paths from every prediction left unmatched. The result therefore IS the greedy
    matching whenever that is already maximum, and otherwise has more pairs: greedy can give a
    prediction its best GT although that GT was another prediction's only hit.
    """
    n_gt, n_pred = iou.shape
    gt_of = [-1] * n_pred  # prediction -> matched GT
    pred_of = [-1] * n_gt  # GT -> matched prediction
    candidates = sorted(
        ((-float(iou[g, p]), g, p) for g, p in zip(*np.nonzero(iou >= threshold))),
    )
    options: list[list[int]] = [[] for _ in range(n_pred)]  # prediction -> its GTs, best first
    for _, g, p in candidates:
        g, p = int(g), int(p)
        options[p].append(g)
        if gt_of[p] < 0 and pred_of[g] < 0:
            gt_of[p], pred_of[g] = g, p

    def augment(p: int, seen: set[int]) -> bool:
        # Depth is bounded by the number of matched GTs in one video and kind (tens at most).
        for g in options[p]:
            if g in seen:
                continue
            seen.add(g)
            if pred_of[g] < 0 or augment(pred_of[g], seen):
                gt_of[p], pred_of[g] = g, p
                return True
        return False

    for p in range(n_pred):
        if gt_of[p] < 0 and options[p]:
            augment(p, set())
    return sorted((g, p) for g, p in enumerate(pred_of) if p >= 0)


def evaluate_spotting(
    ground_truth: IntervalTable,
    predictions: IntervalTable,
    *,
    iou_threshold: float = 0.5,
    official_quirks: bool = False,
) -> SpottingResult:
    """The MEGC spotting metric [HE20]: TP / FP / FN and F1 for micro, macro and both pooled.

    Per video and per kind (m ground-truth intervals, n predictions), a = the number of pairs
    (ground truth, prediction) of the same kind with IoU >= `iou_threshold` in a maximum one-to-one
    matching; FP = n - a, FN = m - a. So two predictions on one interval make one TP and one FP,
    and one prediction that straddles two intervals makes one TP and one FN. Counts are summed over
    videos per kind, and `overall` pools both kinds; recall = A/M, precision = A/N, F1 = 2PR/(P+R).

    The matching is greedy by descending IoU, completed by augmenting paths so that a is the largest
    possible (see `_maximum_matching`). The official MEGC2020 scorer counts a = the number of GTs
    hit at least once instead; that is the same unless one prediction would have to serve two GTs
    (possible only for adjacent or overlapping GTs of one kind), which it counts twice.

    Every video in either table is scored: predictions in a video without ground truth of their
    kind are false positives. SOFTNet's scorer skips videos that hold no interval of the kind
    scored, which undercounts false positives (SoftNet-SpotME issue #3).

    Args:
        ground_truth, predictions: a DataFrame or a sequence of dicts with `video` (any hashable
            id), `onset`, `offset` (0-based inclusive frame indices) and `kind` ('micro' or
            'macro'). Other columns are ignored. With a `subject` column in both, a video is
            identified by (subject, video), since video names repeat across subjects.
        iou_threshold: a prediction hits an interval when their IoU is at least this (MEGC: 0.5).
        official_quirks: compute IoU as the official MEGC2020 scorer does (`interval_iou`).

    Returns:
        SpottingResult with per-kind and pooled counts, the matched pairs and per-video counts.

    Raises:
        MieInputError: a column is missing, a frame number is not whole or negative, an onset
            comes after its offset, a kind is not 'micro' / 'macro', or the threshold is not in (0, 1].
    """
    _check_threshold(iou_threshold)
    gt, pred, by_subject = _read_pair(ground_truth, predictions, "kind", KINDS, _KIND_HINT)
    groups: dict[tuple[Hashable, str], tuple[list[_Row], list[_Row]]] = {}
    for rows, side in ((gt, 0), (pred, 1)):
        for row in rows:
            groups.setdefault((_key(row, by_subject), row.label), ([], []))[side].append(row)

    totals = {kind: SpotCounts() for kind in KINDS}
    per_video: dict[tuple[Hashable, str], SpotCounts] = {}
    matches: list[SpotMatch] = []
    for (video, kind), (gts, preds) in groups.items():
        iou = _iou_of(gts, preds, official_quirks)
        pairs = _maximum_matching(iou, iou_threshold)
        a = len(pairs)
        counts = SpotCounts(tp=a, fp=len(preds) - a, fn=len(gts) - a, n_gt=len(gts), n_pred=len(preds))
        per_video[(video, kind)] = counts
        totals[kind] += counts
        matches.extend(SpotMatch(video, kind, gts[g].position, preds[p].position, float(iou[g, p])) for g, p in pairs)
    return SpottingResult(
        micro=totals["micro"],
        macro=totals["macro"],
        overall=totals["micro"] + totals["macro"],
        matches=tuple(matches),
        per_video=per_video,
        iou_threshold=float(iou_threshold),
        official_quirks=official_quirks,
    )


# ------------------------------------------------------------------------------------------ STRS
@dataclass(frozen=True)
class StrsPair:
    """One spotting true positive of `evaluate_strs`: the pair the recognition step is scored on.

    `video` is the grouping key (see `SpotMatch`); indices are 0-based row positions as given.
    """

    video: Hashable
    gt_index: int
    pred_index: int
    iou: float
    gt_emotion: Hashable
    pred_emotion: Hashable


@dataclass(frozen=True)
class ClassScores:
    """Recognition counts and scores of one emotion class over the spotted pairs.

    tp: pairs with this ground-truth and predicted emotion; fp: predicted this, truth another;
    fn: truth this, predicted another. precision, recall, f1: from those counts, 0 when undefined
    (and 0 where `original_quirks` reproduces the reference code's single-label quirk).
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class StrsResult:
    """What `evaluate_strs` found.

    Fields:
        spotting: TP (spotted pairs), FP, FN, and the numbers of intervals scored.
        classes: the emotion classes the recognition step is scored on, in order.
        per_class: `ClassScores` per class.
        mean_precision, mean_recall: P-bar and R-bar, the unweighted means over `classes`.
        f1_analysis: 2 * P-bar * R-bar / (P-bar + R-bar).
        uf1: mean per-class F1. uar: mean per-class recall (= mean_recall). strs_metric.py prints
            `mean_precision` under the name "UAR analysis"; here each is named for what it is.
        strs: f1_spot * f1_analysis.
        pairs: the spotted pairs, video by video.
        iou_threshold, original_quirks: the settings that produced these numbers.
    """

    spotting: SpotCounts
    classes: tuple[Hashable, ...]
    per_class: dict[Hashable, ClassScores]
    mean_precision: float
    mean_recall: float
    f1_analysis: float
    uf1: float
    uar: float
    strs: float
    pairs: tuple[StrsPair, ...]
    iou_threshold: float
    original_quirks: bool

    @property
    def f1_spot(self) -> float:
        return self.spotting.f1

    @property
    def n_analysed(self) -> int:
        """Spotted pairs whose ground-truth emotion is one of `classes` (the recognition sample)."""
        return sum(pair.gt_emotion in self.classes for pair in self.pairs)

    def table(self) -> str:
        """Spotting counts, the per-class recognition scores and the summary, as plain text."""
        lines = [_counts_table((("spot", self.spotting),), "step"), ""]
        lines.append(f"{'class':<12} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>9} {'recall':>7} {'F1':>7}")
        for name in self.classes:
            c = self.per_class[name]
            lines.append(
                f"{name!s:<12} {c.tp:>5d} {c.fp:>5d} {c.fn:>5d} {c.precision:>9.4f} {c.recall:>7.4f} {c.f1:>7.4f}"
            )
        lines += [
            "",
            f"pairs analysed            {self.n_analysed} of {len(self.pairs)}",
            f"F1 spot                   {self.f1_spot:.4f}",
            f"mean precision            {self.mean_precision:.4f}  (strs_metric.py prints this as 'UAR')",
            f"mean recall (UAR)         {self.mean_recall:.4f}",
            f"F1 analysis               {self.f1_analysis:.4f}",
            f"UF1                       {self.uf1:.4f}",
            f"STRS                      {self.strs:.4f}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Scores, spotting counts and per-class scores (class names as strings)."""
        return {
            "strs": self.strs,
            "spotting": self.spotting.to_dict(),
            "f1_spot": self.f1_spot,
            "classes": [str(c) for c in self.classes],
            "per_class": {str(k): asdict(v) for k, v in self.per_class.items()},
            "mean_precision": self.mean_precision,
            "mean_recall": self.mean_recall,
            "f1_analysis": self.f1_analysis,
            "uf1": self.uf1,
            "uar": self.uar,
            "n_analysed": self.n_analysed,
            "iou_threshold": self.iou_threshold,
            "original_quirks": self.original_quirks,
        }


def _sorted_labels(labels: Iterable[Hashable]) -> tuple[Hashable, ...]:
    unique = set(labels)
    try:
        return tuple(sorted(unique))
    except TypeError:  # mixed types: order by their text
        return tuple(sorted(unique, key=repr))


def _mean(values: Sequence[float]) -> float:
    """Unweighted mean; 0 for no classes (empty ground truth and `classes=None`)."""
    return float(np.mean(values)) if values else 0.0


def _class_scores(pairs: Sequence[StrsPair], emotion: Hashable, original_quirks: bool) -> ClassScores:
    tp = sum(p.gt_emotion == emotion and p.pred_emotion == emotion for p in pairs)
    fp = sum(p.gt_emotion != emotion and p.pred_emotion == emotion for p in pairs)
    fn = sum(p.gt_emotion == emotion and p.pred_emotion != emotion for p in pairs)
    if original_quirks and pairs and tp == len(pairs):
        # strs_metric.py unpacks sklearn's confusion_matrix(gt, pred).ravel() into four counts; when
        # every pair is this class on both sides the matrix is 1x1, the unpacking fails and the
        # bare `except` scores the class 0 although it is perfectly recognised.
        return ClassScores(tp, fp, fn, 0.0, 0.0, 0.0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassScores(tp, fp, fn, precision, recall, f1)


def evaluate_strs(
    ground_truth: IntervalTable,
    predictions: IntervalTable,
    *,
    classes: Sequence[Hashable] | None = None,
    iou_threshold: float = 0.5,
    original_quirks: bool = False,
) -> StrsResult:
    """Spot-then-recognise score (STRS, genbing99/STRS-Metric): F1_spot x F1_analysis.

    Spotting runs over all expressions together (no micro / macro split). Per video, predictions
    are taken in the order given, and each becomes a true positive with EVERY ground-truth interval
    of that video that is still unmatched and has IoU >= `iou_threshold` (inclusive frames); ground
    truth is scanned in the order given. Unlike the one-to-one MEGC matching of
    `evaluate_spotting`, one prediction that straddles two intervals makes two true positives (and
    the result can depend on the order of the rows). A prediction with no match is a false
    positive, an unmatched interval a false negative; F1_spot = 2PR/(P+R) with P = TP/(TP+FP) and
    R = TP/(TP+FN).

    Recognition is scored on the spotted pairs only, restricted to pairs whose ground-truth
    emotion is in `classes`. Per class: TP = pairs with this emotion on both sides, FP = predicted
    this but truth another, FN = truth this but predicted another (a prediction outside `classes`
    only costs recall). P-bar and R-bar are the means of per-class precision and recall;
    F1_analysis = 2 P-bar R-bar / (P-bar + R-bar) (0 when both are 0); UF1 = mean per-class F1;
    UAR = mean per-class recall. STRS = F1_spot x F1_analysis.

    The reference code departs from this in ways `original_quirks=True` reproduces:
    - it loops over the subjects that appear in the PREDICTIONS and, within each, over the videos
      with ground truth: ground truth of a subject without predictions makes no false negatives,
      and predictions in videos without ground truth are ignored instead of counted as false
      positives (by default every ground-truth interval and every prediction is scored);
    - a class that is the ground-truth AND predicted emotion of every analysed pair scores
      precision = recall = F1 = 0 (its 1x1 confusion matrix fails to unpack);
    - F1_analysis is NaN (and so STRS) when P-bar + R-bar = 0, where this returns 0.

    Args:
        ground_truth, predictions: a DataFrame or a sequence of dicts with `video`, `onset`,
            `offset` (0-based inclusive frame indices) and `emotion` (any hashable label; compared
            with ==). Other columns (`kind`, scores) are ignored. With a `subject` column in both,
            a video is identified by (subject, video); `original_quirks` needs it.
        classes: the emotions the recognition step is scored on. None: every emotion in the ground
            truth (as strs_metric.py's default), sorted, so a class that is never spotted still
            counts, with precision and recall 0.
        iou_threshold: a prediction hits an interval when their IoU is at least this (0.5).
        original_quirks: reproduce strs_metric.py's arithmetic (above).

    Returns:
        StrsResult with the spotting counts, per-class scores, F1_analysis, UF1, UAR and STRS.

    Raises:
        MieInputError: a column is missing, a frame number is not whole or negative, an onset comes
            after its offset, `classes` is empty, the threshold is not in (0, 1], or
            `original_quirks` without subjects.
    """
    _check_threshold(iou_threshold)
    gt, pred, by_subject = _read_pair(ground_truth, predictions, "emotion")
    if classes is None:
        scored_classes = _sorted_labels(row.label for row in gt)
    else:
        scored_classes = tuple(dict.fromkeys(classes))
        if not scored_classes:
            raise MieInputError("classes is empty; give the emotions to score, or None for those in the ground truth.")

    if original_quirks:
        if (gt or pred) and not by_subject:
            raise MieInputError(
                "original_quirks=True reproduces strs_metric.py's loop over the subjects of the predictions "
                "and needs a 'subject' column in both tables."
            )
        subjects = {row.subject for row in pred}
        gt = [row for row in gt if row.subject in subjects]
        gt_videos = {_key(row, by_subject) for row in gt}
        pred = [row for row in pred if _key(row, by_subject) in gt_videos]

    videos: dict[Hashable, tuple[list[_Row], list[_Row]]] = {}
    for rows, side in ((gt, 0), (pred, 1)):
        for row in rows:
            videos.setdefault(_key(row, by_subject), ([], []))[side].append(row)

    pairs: list[StrsPair] = []
    fp = fn = 0
    for video, (gts, preds) in videos.items():
        iou = _iou_of(gts, preds, False)  # strs_metric.py counts inclusive frames, without the MEGC2020 quirk
        taken = [False] * len(gts)
        for p, prediction in enumerate(preds):
            hit = False
            for g, truth in enumerate(gts):
                if not taken[g] and iou[g, p] >= iou_threshold:
                    taken[g] = hit = True
                    pairs.append(
                        StrsPair(
                            video, truth.position, prediction.position, float(iou[g, p]), truth.label, prediction.label
                        )
                    )
            fp += not hit
        fn += taken.count(False)
    spotting = SpotCounts(tp=len(pairs), fp=fp, fn=fn, n_gt=len(gt), n_pred=len(pred))

    analysed = [pair for pair in pairs if pair.gt_emotion in scored_classes]
    per_class = {c: _class_scores(analysed, c, original_quirks) for c in scored_classes}
    mean_precision = _mean([s.precision for s in per_class.values()])
    mean_recall = _mean([s.recall for s in per_class.values()])
    if mean_precision + mean_recall:
        f1_analysis = 2 * mean_precision * mean_recall / (mean_precision + mean_recall)
    else:
        f1_analysis = math.nan if original_quirks else 0.0
    return StrsResult(
        spotting=spotting,
        classes=scored_classes,
        per_class=per_class,
        mean_precision=mean_precision,
        mean_recall=mean_recall,
        f1_analysis=f1_analysis,
        uf1=_mean([s.f1 for s in per_class.values()]),
        uar=mean_recall,
        strs=spotting.f1 * f1_analysis,
        pairs=tuple(pairs),
        iou_threshold=float(iou_threshold),
        original_quirks=original_quirks,
    )


__all__ = [
    "KINDS",
    "OFFICIAL_LENGTH_CLASSES",
    "ClassScores",
    "SpotCounts",
    "SpotMatch",
    "SpottingResult",
    "StrsPair",
    "StrsResult",
    "evaluate_spotting",
    "evaluate_strs",
    "interval_iou",
    "kind_by_length",
    "official_kind_by_length",
]
