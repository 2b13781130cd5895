"""The leakage report, the bootstrap over subjects and the seeds summary (modeling_mie.loso_report), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from modeling_mie.loso_report import (
    REPORTED_TABLE2,
    best_epoch_predictions,
    bootstrap_intervals,
    leakage_summary,
    seeds_markdown,
    seeds_summary,
    table2_markdown,
)
from modeling_mie.metrics import uar, uf1


def one_hot(classes, n=3):
    out = np.full((len(classes), n), 0.1)
    out[np.arange(len(classes)), classes] = 0.8
    return out.tolist()


def fold(key, labels, final, epochs=None, database="casme2"):
    record = {
        "fold": key,
        "database": database,
        "list_subject": key.split("/")[-1],
        "predictions": [
            {"clip": f"{key}-{i}", "label": y, "prediction": p, "probabilities": one_hot([p])[0]}
            for i, (y, p) in enumerate(zip(labels, final))
        ],
    }
    if epochs is not None:
        record["epoch_probabilities"] = [one_hot(e) for e in epochs]
    return record


def test_the_best_epoch_is_the_one_with_most_correct_test_clips_the_latest_of_equals():
    # labels 0 1 2; epoch 1: 1 right, epoch 2: 2 right, epoch 3: 2 right, epoch 4 (last): 0 right
    f = fold("casme2/sub01", [0, 1, 2], [1, 2, 0], epochs=[[0, 0, 0], [0, 1, 0], [0, 0, 2], [1, 2, 0]])
    predictions, epoch = best_epoch_predictions(f)
    assert epoch == 3 and predictions == [0, 0, 2]
    assert best_epoch_predictions(fold("casme2/sub02", [0], [0])) is None


def test_leakage_summary_pools_each_folds_best_epoch_and_reports_the_gap():
    a = fold("casme2/sub01", [0, 1, 2], [1, 2, 0], epochs=[[0, 1, 0], [1, 2, 0]])  # best: epoch 1
    b = fold("samm/006", [1, 1], [1, 0], epochs=[[1, 1], [1, 0]], database="samm")  # best: epoch 1
    summary = leakage_summary([a, b], 3)
    honest_true, honest_pred = [0, 1, 2, 1, 1], [1, 2, 0, 1, 0]
    leaky_pred = [0, 1, 0, 1, 1]
    assert summary["scores"]["full"]["uf1"] == pytest.approx(uf1(honest_true, leaky_pred))
    assert summary["gap"]["full"]["uf1"] == pytest.approx(uf1(honest_true, leaky_pred) - uf1(honest_true, honest_pred))
    assert summary["gap"]["full"]["uar"] == pytest.approx(uar(honest_true, leaky_pred) - uar(honest_true, honest_pred))
    assert summary["best_epoch_per_fold"] == {"casme2/sub01": 1, "samm/006": 1}
    assert summary["epochs"] == 2 and set(summary["scores"]) == {"full", "casme2", "samm"}
    # one fold without per-epoch predictions: no report rather than a partial one
    assert leakage_summary([a, fold("samm/007", [0], [0], database="samm")], 3) is None


def test_bootstrap_interval_over_subjects():
    perfect = [fold(f"casme2/sub0{i}", [0, 1, 2], [0, 1, 2]) for i in range(1, 6)]
    ci = bootstrap_intervals([perfect], 3, draws=200)["scopes"]
    assert ci["full"]["uf1"] == [1.0, 1.0] and ci["casme2"]["uar"] == [1.0, 1.0]
    # half the subjects right, half wrong: the interval is wide and holds the pooled score
    mixed = [fold(f"casme2/sub{i:02d}", [0, 1, 2], [0, 1, 2] if i % 2 else [1, 2, 0]) for i in range(1, 21)]
    pooled = uf1([0, 1, 2] * 20, sum(([0, 1, 2] if i % 2 else [1, 2, 0] for i in range(1, 21)), []))
    lo, hi = bootstrap_intervals([mixed], 3, draws=500)["scopes"]["full"]["uf1"]
    assert lo < pooled < hi and hi - lo > 0.2
    # the same seed draws the same subjects: repeatable
    assert bootstrap_intervals([mixed], 3, draws=100) == bootstrap_intervals([mixed], 3, draws=100)
    with pytest.raises(ValueError, match="same folds"):
        bootstrap_intervals([mixed, mixed[1:]], 3)


def test_seeds_summary_mean_and_sample_std_and_table_rows():
    runs = {
        0: [fold("casme2/sub01", [0, 1, 2], [0, 1, 2], epochs=[[0, 1, 2]])],
        1: [fold("casme2/sub01", [0, 1, 2], [0, 1, 1], epochs=[[0, 1, 2]])],
    }
    s = seeds_summary(runs, 3)
    second = uf1([0, 1, 2], [0, 1, 1])
    assert s["honest"]["full"]["uf1"]["per_seed"] == pytest.approx([1.0, second])
    assert s["honest"]["full"]["uf1"]["mean"] == pytest.approx((1 + second) / 2)
    assert s["honest"]["full"]["uf1"]["std"] == pytest.approx(np.std([1.0, second], ddof=1))
    assert s["leaky"]["full"]["uf1"]["mean"] == pytest.approx(1.0)
    text = seeds_markdown(s)
    assert f"{(1 + second) / 2:.4f} ± {np.std([1.0, second], ddof=1):.4f}" in text and "best-epoch" in text
    table = table2_markdown({"ststnet": s}, "tiny")
    assert "| STSTNet |" in table and "*0.735*" in table  # the reported row sits under the measured one
    assert REPORTED_TABLE2["aouayeb"]["full"] == (0.902, 0.902)
