"""MEGC 2019 metrics against hand-computed values, and the challenge log format."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from modeling_mie import MieInputError
from modeling_mie.metrics import (
    ClipPrediction,
    confusion_matrix,
    main,
    megc_scores,
    per_fold_accuracy,
    read_megc_log,
    uar,
    uf1,
    write_megc_log,
)

# Two folds, worked by hand below. Fold casme2/sub01: gt 0 0 0 1, pred 0 0 1 1.
# Fold samm/6: gt 2 1 0, pred 2 2 0.
PREDICTIONS = [
    ClipPrediction("casme2", "sub01", "EP01_01", 0, 0),
    ClipPrediction("casme2", "sub01", "EP01_02", 0, 0),
    ClipPrediction("casme2", "sub01", "EP01_03", 0, 1),
    ClipPrediction("casme2", "sub01", "EP01_04", 1, 1),
    ClipPrediction("samm", "6", "006_1_2", 2, 2),
    ClipPrediction("samm", "6", "006_1_3", 1, 2),
    ClipPrediction("samm", "6", "006_1_4", 0, 0),
]


def test_pooled_scores_match_the_hand_computed_example():
    y_true = [p.label for p in PREDICTIONS]
    y_pred = [p.prediction for p in PREDICTIONS]
    # pooled counts: class 0 TP 3 FP 0 FN 1 -> F1 6/7; class 1 TP 1 FP 1 FN 1 -> 1/2;
    # class 2 TP 1 FP 1 FN 0 -> 2/3.  Recalls 3/4, 1/2, 1.
    assert uf1(y_true, y_pred) == pytest.approx((6 / 7 + 1 / 2 + 2 / 3) / 3)  # 0.674603
    assert uar(y_true, y_pred) == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)  # 0.75
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), [[3, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_pooled_uf1_is_not_the_mean_of_per_fold_f1():
    scores = megc_scores(PREDICTIONS)
    # casme2 alone: class 0 F1 4/5, class 1 2/3, class 2 absent and never predicted -> 0.
    assert scores["casme2"]["uf1"] == pytest.approx((4 / 5 + 2 / 3 + 0) / 3)  # 0.488889
    # samm alone: class 0 F1 1, class 1 0, class 2 2/3.
    assert scores["samm"]["uf1"] == pytest.approx((1 + 0 + 2 / 3) / 3)  # 0.555556
    per_fold_mean = (scores["casme2"]["uf1"] + scores["samm"]["uf1"]) / 2  # 0.522222
    assert scores["full"]["uf1"] == pytest.approx(0.674603, abs=1e-6)
    assert abs(scores["full"]["uf1"] - per_fold_mean) > 0.15
    assert scores["full"]["clips"] == 7 and scores["full"]["subjects"] == 2
    assert scores["samm"]["uar"] == pytest.approx((1 + 0 + 1) / 3)


def test_full_label_set_is_scored_even_when_a_subset_lacks_a_class():
    # only class 0 present and always right: 3 classes scored -> 1/3, not 1
    assert uf1([0, 0], [0, 0]) == pytest.approx(1 / 3)
    assert uf1([0, 0], [0, 0], num_classes=1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside"):
        uf1([0, 3], [0, 0])


def test_per_fold_accuracy():
    acc = per_fold_accuracy(PREDICTIONS)
    assert acc == {("casme2", "sub01"): pytest.approx(0.75), ("samm", "6"): pytest.approx(2 / 3)}


def test_log_round_trip_and_format(tmp_path):
    path = tmp_path / "run.log"
    write_megc_log(path, PREDICTIONS)
    lines = path.read_text().splitlines()
    assert lines[0] == "casme2 sub01" and lines[1] == "EP01_01 0 0" and lines[5] == "samm 6"
    assert read_megc_log(path) == PREDICTIONS


@pytest.mark.parametrize(
    "text, message",
    [
        ("EP01 0 1\n", "before any"),
        ("casme2 sub01\nEP01 zero 1\n", "integer"),
        ("casme2 sub01\nEP01 0 1 7\n", "expected"),
        ("casme2 sub01\n", "no clip lines"),
    ],
)
def test_bad_logs_give_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.log"
    path.write_text(text)
    with pytest.raises(MieInputError, match=message):
        read_megc_log(path)
    with pytest.raises(MieInputError, match="No MEGC log"):
        read_megc_log(tmp_path / "missing.log")


def test_command_scores_any_log(tmp_path, capsys):
    path = tmp_path / "other-method.log"
    write_megc_log(path, PREDICTIONS)
    assert main([str(path), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["full"]["uf1"] == pytest.approx(0.674603, abs=1e-6)
    assert set(scores) == {"full", "casme2", "samm"}
    # as a module, with a table, and a clean error (no traceback) for a bad file
    proc = subprocess.run([sys.executable, "-m", "modeling_mie.metrics", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "| full | 7 | 2 | 0.6746 | 0.7500 |" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "modeling_mie.metrics", str(tmp_path / "nope")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "No MEGC log" in proc.stderr
