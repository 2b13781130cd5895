"""Calibrated confidence: temperature scaling fitted on out-of-fold LOSO predictions.

A model trained to near-zero loss on its training subjects says "99 %" about nearly everything;
on a new subject it is right less often than that. Temperature scaling (Guo et al., 2017) divides
the logits by one number T > 0 fitted to minimise the negative log-likelihood of held-out
predictions; the class ranking (and so UF1 / UAR) does not change, only how sure the model says
it is. Here the held-out predictions are the LOSO run's out-of-fold ones: each clip predicted by
the fold model that never saw its subject.

- `expected_calibration_error`: ECE with equal-width confidence bins (15 by default).
- `fit_temperature`: the T of least NLL (log-spaced search, then golden section; deterministic).
- `loso_calibration`: ECE before; ECE after with T fitted, for each subject, on the OTHER
  subjects' out-of-fold predictions only (so the figure is not fitted on what it measures); and T
  fitted on all of them, the one a final model trained on every subject stores
  (`MieConfig.temperature`).
- `plot_reliability`: the reliability diagram (accuracy against confidence per bin) before and after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NUM_BINS = 15
_PROB_FLOOR = 1e-6  # fold files store probabilities to 6 decimals


def logits_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Logits (up to a per-row constant, which softmax ignores) of stored probabilities."""
    return np.log(np.clip(np.asarray(probabilities, np.float64), _PROB_FLOOR, 1.0))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: Sequence[int], num_bins: int = NUM_BINS) -> float:
    """Sum over equal-width confidence bins of (share of clips) x |accuracy - mean confidence|."""
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(labels)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        inside = bins == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(logits: np.ndarray, labels: Sequence[int], low: float = 0.05, high: float = 50.0) -> float:
    """The temperature in [low, high] with the least mean negative log-likelihood."""
    y = np.asarray(labels, np.int64)
    grid = np.exp(np.linspace(math.log(low), math.log(high), 61))
    values = [_nll(logits, y, t) for t in grid]
    i = int(np.argmin(values))
    a, b = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(60):  # golden section on log T inside the best grid cell
        c, d = b - golden * (b - a), a + golden * (b - a)
        if _nll(logits, y, math.exp(c)) <= _nll(logits, y, math.exp(d)):
            b = d
        else:
            a = c
    return float(math.exp((a + b) / 2))


def loso_calibration(folds: Sequence[dict], num_bins: int = NUM_BINS) -> dict:
    """Calibration of a LOSO run from its fold records (`folds/*.json`: predictions with
    probabilities). Returns ECE before / after (after: each subject's T fitted on the other
    subjects' out-of-fold predictions), the temperature fitted on all of them, and the
    probabilities before / after (for `plot_reliability`)."""
    rows = [(p["probabilities"], int(p["label"]), fold["fold"]) for fold in folds for p in fold["predictions"]]
    if not rows:
        raise ValueError("No out-of-fold predictions to calibrate on.")
    probabilities, labels, owner = (np.array(column) for column in zip(*rows))
    logits = logits_from_probabilities(probabilities)
    before = softmax(logits)
    after = np.empty_like(before)
    per_subject = {}
    for subject in sorted(set(owner)):
        mine = owner == subject
        t = fit_temperature(logits[~mine], labels[~mine]) if (~mine).any() else 1.0
        per_subject[str(subject)] = t
        after[mine] = softmax(logits[mine], t)
    temperature = fit_temperature(logits, labels)
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(before, labels, num_bins),
        "ece_after": expected_calibration_error(after, labels, num_bins),
        "nll_before": _nll(logits, labels, 1.0),
        "nll_after": float(-np.log(np.clip(after[np.arange(len(labels)), labels], 1e-12, 1)).mean()),
        "num_bins": num_bins,
        "clips": len(labels),
        "temperature_per_subject": per_subject,
        "probabilities_before": before,
        "probabilities_after": after,
        "labels": labels,
    }


def plot_reliability(result: dict, path: str | Path, title: str = "") -> None:
    """Reliability diagram: per confidence bin, accuracy (bars) against the diagonal, before
    and after temperature scaling, with each bin's share of clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = result["num_bins"]
    edges = np.linspace(0, 1, bins + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, key, name, ece in (
        (axes[0], "probabilities_before", "before", result["ece_before"]),
        (axes[1], "probabilities_after", "after (T fitted per subject on the others)", result["ece_after"]),
    ):
        p = result[key]
        confidence, correct = p.max(1), p.argmax(1) == result["labels"]
        index = np.minimum((confidence * bins).astype(int), bins - 1)
        accuracy = [correct[index == b].mean() if (index == b).any() else 0.0 for b in range(bins)]
        share = [float((index == b).mean()) for b in range(bins)]
        ax.bar(edges[:-1], accuracy, width=1 / bins, align="edge", color="#4c78a8", edgecolor="white", label="accuracy")
        ax.plot([0, 1], [0, 1], color="#444", lw=1, ls="--", label="perfect calibration")
        for b in range(bins):
            if share[b] > 0:
                ax.text(edges[b] + 0.5 / bins, 0.02, f"{100 * share[b]:.0f}%", ha="center", fontsize=6, rotation=90)
        ax.set_title(f"{name}: ECE {ece:.3f}", fontsize=9)
        ax.set_xlabel("confidence (top probability)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy in the bin")
    axes[0].legend(loc="upper left", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_for_json(result: dict) -> dict:
    """The JSON-friendly part of `loso_calibration` output (no probability arrays)."""
    keep = ("temperature", "ece_before", "ece_after", "nll_before", "nll_after", "num_bins", "clips", "temperature_per_subject")
    return {k: result[k] for k in keep}


__all__ = [
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probabilities",
    "loso_calibration",
    "plot_reliability",
    "softmax",
    "summary_for_json",
]
