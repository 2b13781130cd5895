"""Spotting metrics (interval IoU, MEGC spotting F1, STRS) against hand-computed examples."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from modeling_mie import MieInputError
from modeling_mie.spot_metrics import (
    SpotCounts,
    SpotMatch,
    evaluate_spotting,
    evaluate_strs,
    interval_iou,
    kind_by_length,
    official_kind_by_length,
)


def iv(video, onset, offset, kind="micro", **extra):
    return {"video": video, "onset": onset, "offset": offset, "kind": kind, **extra}


def em(subject, video, onset, offset, emotion):
    return {"subject": subject, "video": video, "onset": onset, "offset": offset, "emotion": emotion}


# ------------------------------------------------------------------------------------------ IoU
def test_iou_counts_both_end_frames():
    # [10,19] and [15,24]: 10 frames each, shared frames 15..19 = 5, union 10 + 10 - 5 = 15.
    assert interval_iou((10, 19), (15, 24)) == pytest.approx(5 / 15)
    # [0,9] holds [2,3]: 2 shared frames over 10.
    assert interval_iou((0, 9), (2, 3)) == pytest.approx(2 / 10)
    # touching at one frame: [0,4] and [4,8] share frame 4; union 5 + 5 - 1 = 9.
    assert interval_iou((0, 4), (4, 8)) == pytest.approx(1 / 9)
    # a one-frame interval against itself is one frame over one frame.
    assert interval_iou((5, 5), (5, 5)) == 1.0


def test_official_quirk_gives_disjoint_intervals_one_frame():
    # Default: [0,4] and [6,10] share nothing -> 0; adjacent [0,4] and [5,9] -> 0 as well.
    assert interval_iou((0, 4), (6, 10)) == 0.0
    assert interval_iou((0, 4), (5, 9)) == 0.0
    # Official scorer: intersection max(0, 4 - 6) + 1 = 1, union 5 + 5 - 1 = 9 -> 1/9; same for the
    # adjacent pair (max(0, 4 - 5) + 1 = 1).
    assert interval_iou((0, 4), (6, 10), official_quirks=True) == pytest.approx(1 / 9)
    assert interval_iou((0, 4), (5, 9), official_quirks=True) == pytest.approx(1 / 9)
    # Official scorer: end <= start (a one-frame interval) -> 0, even against itself.
    assert interval_iou((5, 5), (5, 5), official_quirks=True) == 0.0
    # Overlapping intervals agree: max(0, 19 - 15) + 1 = 5 both ways.
    assert interval_iou((10, 19), (15, 24), official_quirks=True) == pytest.approx(5 / 15)


def test_official_quirk_reaches_the_spotting_score_at_a_low_threshold():
    gt = [iv("v", 0, 4)]
    pred = [iv("v", 6, 10)]
    # IoU 0 by default, 1/9 = 0.111 with the quirk: a hit at threshold 0.1 only with the quirk.
    assert evaluate_spotting(gt, pred, iou_threshold=0.1).micro == SpotCounts(tp=0, fp=1, fn=1, n_gt=1, n_pred=1)
    quirky = evaluate_spotting(gt, pred, iou_threshold=0.1, official_quirks=True)
    assert quirky.micro == SpotCounts(tp=1, fp=0, fn=0, n_gt=1, n_pred=1)
    assert quirky.matches[0].iou == pytest.approx(1 / 9)


# ---------------------------------------------------------------------------------- matching
def test_two_predictions_on_one_interval_make_one_tp_and_one_fp():
    gt = [iv("v", 50, 59)]
    # [52,61]: shared 52..59 = 8, union 50..61 = 12 -> 0.667; [52,60]: 8 / 11 = 0.727. Both hit,
    # the interval counts once: TP 1, FP 1; the better one (prediction 1) is the match.
    pred = [iv("v", 52, 61), iv("v", 52, 60)]
    result = evaluate_spotting(gt, pred)
    assert result.micro == SpotCounts(tp=1, fp=1, fn=0, n_gt=1, n_pred=2)
    assert result.matches == (SpotMatch("v", "micro", 0, 1, pytest.approx(8 / 11)),)
    # precision 1/2, recall 1, F1 = 2 * 0.5 / 1.5 = 2/3
    assert result.micro.f1 == pytest.approx(2 / 3)


def test_one_prediction_across_two_intervals_is_one_tp_and_one_fn():
    # [0,9] against [0,4] and [5,9]: 5 / 10 = 0.5 each, so it hits both, but counts once.
    gt = [iv("v", 0, 4), iv("v", 5, 9)]
    pred = [iv("v", 0, 9)]
    assert interval_iou((0, 9), (0, 4)) == 0.5
    result = evaluate_spotting(gt, pred)
    assert result.micro == SpotCounts(tp=1, fp=0, fn=1, n_gt=2, n_pred=1)
    assert len(result.matches) == 1


def test_matching_is_maximum_where_greedy_by_iou_is_not():
    # G0 = [0,99], G1 = [30,129] (overlapping intervals of one kind).
    # P0 = [5,104]: with G0 95/105 = 0.905, with G1 (30..104 = 75) / (5..129 = 125) = 0.6.
    # P1 = [0,60]: with G0 61/100 = 0.61, with G1 31/130 = 0.24 (no hit).
    # Greedy by IoU gives G0 to P0 first and leaves P1 without a match (1 TP); the maximum
    # matching pairs P0-G1 and P1-G0: 2 TP.
    gt = [iv("v", 0, 99, "macro"), iv("v", 30, 129, "macro")]
    pred = [iv("v", 5, 104, "macro"), iv("v", 0, 60, "macro")]
    result = evaluate_spotting(gt, pred)
    assert result.macro == SpotCounts(tp=2, fp=0, fn=0, n_gt=2, n_pred=2)
    assert {(m.gt_index, m.pred_index) for m in result.matches} == {(0, 1), (1, 0)}
    assert sorted(m.iou for m in result.matches) == pytest.approx([0.6, 0.61])


def test_kinds_are_matched_separately():
    # A macro prediction exactly on a micro interval is no hit for either kind.
    result = evaluate_spotting([iv("v", 10, 20, "micro")], [iv("v", 10, 20, "macro")])
    assert result.micro == SpotCounts(tp=0, fp=0, fn=1, n_gt=1, n_pred=0)
    assert result.macro == SpotCounts(tp=0, fp=1, fn=0, n_gt=0, n_pred=1)


# Three videos, worked by hand:
# v1: GT micro [100,114], GT macro [200,259].
#     pred micro [102,116]: 13 / 17 = 0.765 -> TP.  pred macro [200,250]: 51 / 60 = 0.85 -> TP.
#     pred macro [400,450] -> FP.  pred macro [100,114] lies on the MICRO interval -> FP (macro).
# v2: GT micro [50,59], GT micro [300,314], GT macro [500,589].
#     pred micro [52,61] (0.667) and [52,60] (0.727) on the same interval -> 1 TP + 1 FP;
#     [300,314] is missed -> FN.  pred macro [520,600]: 70 / 101 = 0.693 -> TP.
# v3: no ground truth. pred micro [10,20] -> FP.
# micro: M = 3, N = 4, A = 2 -> TP 2 FP 2 FN 1; P = 1/2, R = 2/3, F1 = 2A/(M+N) = 4/7 = 0.5714
# macro: M = 2, N = 4, A = 2 -> TP 2 FP 2 FN 0; P = 1/2, R = 1,   F1 = 4/6 = 0.6667
# overall: M = 5, N = 8, A = 4 -> P = 1/2, R = 4/5, F1 = 8/13 = 0.6154 (not the mean 0.6190)
GT = [
    iv("v1", 100, 114, "micro"),
    iv("v1", 200, 259, "macro"),
    iv("v2", 50, 59, "micro"),
    iv("v2", 300, 314, "micro"),
    iv("v2", 500, 589, "macro"),
]
PRED = [
    iv("v1", 102, 116, "micro"),
    iv("v1", 200, 250, "macro"),
    iv("v1", 400, 450, "macro"),
    iv("v1", 100, 114, "macro"),
    iv("v2", 52, 61, "micro"),
    iv("v2", 52, 60, "micro"),
    iv("v2", 520, 600, "macro"),
    iv("v3", 10, 20, "micro"),
]


def test_counts_pool_over_videos_and_kinds():
    result = evaluate_spotting(GT, PRED)
    assert result.micro == SpotCounts(tp=2, fp=2, fn=1, n_gt=3, n_pred=4)
    assert result.macro == SpotCounts(tp=2, fp=2, fn=0, n_gt=2, n_pred=4)
    assert result.overall == SpotCounts(tp=4, fp=4, fn=1, n_gt=5, n_pred=8)
    assert (result.micro.precision, result.micro.recall) == pytest.approx((1 / 2, 2 / 3))
    assert result.micro.f1 == pytest.approx(4 / 7)  # 0.5714
    assert (result.macro.precision, result.macro.recall) == pytest.approx((1 / 2, 1.0))
    assert result.macro.f1 == pytest.approx(2 / 3)  # 0.6667
    assert (result.overall.precision, result.overall.recall) == pytest.approx((1 / 2, 4 / 5))
    assert result.overall.f1 == pytest.approx(8 / 13)  # 0.6154
    assert result.overall.f1 != pytest.approx((result.micro.f1 + result.macro.f1) / 2, abs=1e-3)
    # matched pairs: (video, kind, gt row, prediction row), one per TP
    assert sorted((m.video, m.kind, m.gt_index, m.pred_index) for m in result.matches) == [
        ("v1", "macro", 1, 1),
        ("v1", "micro", 0, 0),
        ("v2", "macro", 4, 6),
        ("v2", "micro", 2, 5),
    ]
    assert result.per_video[("v2", "micro")] == SpotCounts(tp=1, fp=1, fn=1, n_gt=2, n_pred=2)


def test_predictions_in_a_video_without_ground_truth_are_false_positives():
    result = evaluate_spotting(GT, PRED)
    assert result.per_video[("v3", "micro")] == SpotCounts(tp=0, fp=1, fn=0, n_gt=0, n_pred=1)
    # Without v3's prediction micro has one FP fewer: it was counted, not skipped as SOFTNet does.
    without_v3 = evaluate_spotting(GT, [p for p in PRED if p["video"] != "v3"])
    assert without_v3.micro.fp == result.micro.fp - 1 == 1


def test_dataframes_give_the_same_result_as_records():
    records = evaluate_spotting(GT, PRED)
    frames = evaluate_spotting(pd.DataFrame(GT), pd.DataFrame(PRED).assign(score=0.9))  # extra column ignored
    assert frames.to_dict() == records.to_dict()
    assert frames.matches == records.matches
    # Whole-number floats (as pandas makes of a column with a NaN elsewhere) are frame numbers too.
    as_float = pd.DataFrame(GT).astype({"onset": float, "offset": float})
    assert evaluate_spotting(as_float, PRED).overall == records.overall


def test_subject_column_keeps_equal_video_names_apart():
    gt = [iv("EP01", 0, 9, subject="s1")]
    pred = [iv("EP01", 0, 9, subject="s2")]
    result = evaluate_spotting(gt, pred)
    assert result.micro == SpotCounts(tp=0, fp=1, fn=1, n_gt=1, n_pred=1)
    assert set(result.per_video) == {(("s1", "EP01"), "micro"), (("s2", "EP01"), "micro")}
    # Without subjects the two rows are the same video and match.
    plain = evaluate_spotting([iv("EP01", 0, 9)], [iv("EP01", 0, 9)])
    assert plain.micro.tp == 1


def test_empty_predictions_score_zero_with_counts_that_say_why():
    result = evaluate_spotting(GT, [])
    assert result.overall == SpotCounts(tp=0, fp=0, fn=5, n_gt=5, n_pred=0)
    assert (result.overall.precision, result.overall.recall, result.overall.f1) == (0.0, 0.0, 0.0)


def test_table_and_dict():
    result = evaluate_spotting(GT, PRED)
    lines = result.table().splitlines()
    assert lines[0].split() == ["kind", "TP", "FP", "FN", "precision", "recall", "F1"]
    assert lines[1].split() == ["micro", "2", "2", "1", "0.5000", "0.6667", "0.5714"]
    assert lines[2].split() == ["macro", "2", "2", "0", "0.5000", "1.0000", "0.6667"]
    assert lines[3].split() == ["overall", "4", "4", "1", "0.5000", "0.8000", "0.6154"]
    data = result.to_dict()
    assert data["overall"]["f1"] == pytest.approx(8 / 13)
    assert data["macro"]["fp"] == 2 and data["iou_threshold"] == 0.5 and data["official_quirks"] is False


# ------------------------------------------------------------------------------ length classes
def test_kind_by_duration():
    # 30 fps: 15 frames = 0.5 s -> micro, 16 frames = 0.533 s -> macro.
    assert kind_by_length(15, 30) == "micro"
    assert kind_by_length(16, 30) == "macro"
    # 200 fps: 100 frames = 0.5 s -> micro, 101 -> macro.
    assert kind_by_length(100, 200) == "micro"
    assert kind_by_length(101, 200) == "macro"
    assert kind_by_length(20, 30, max_micro_s=1.0) == "micro"


def test_official_length_classes():
    # CAS: micro 7-16, macro >= 17, shorter dropped; SAMM: micro 47-105, macro >= 106.
    assert [official_kind_by_length(n, "cas") for n in (6, 7, 16, 17, 400)] == [
        None,
        "micro",
        "micro",
        "macro",
        "macro",
    ]
    assert [official_kind_by_length(n, "samm") for n in (46, 47, 105, 106)] == [None, "micro", "micro", "macro"]
    # 16 frames at 30 fps: micro for the official scorer, macro by the 0.5 s rule.
    assert official_kind_by_length(16, "cas") != kind_by_length(16, 30)


def test_length_class_errors():
    with pytest.raises(MieInputError, match=r"database 'casme3'.*\['cas', 'samm'\]"):
        official_kind_by_length(20, "casme3")
    with pytest.raises(MieInputError, match="at least 1"):
        kind_by_length(0, 30)
    with pytest.raises(MieInputError, match="fps must be a positive number"):
        kind_by_length(10, 0)


# ---------------------------------------------------------------------------------- bad input
def test_missing_column_is_named():
    with pytest.raises(MieInputError, match=r"predictions has no column 'offset'.*needs video, onset, offset, kind"):
        evaluate_spotting(GT, [{"video": "v1", "onset": 3, "kind": "micro"}])
    frame = pd.DataFrame(GT).drop(columns="kind")
    with pytest.raises(MieInputError, match=r"ground_truth has no column 'kind'"):
        evaluate_spotting(frame, PRED)


def test_onset_after_offset_is_refused():
    with pytest.raises(MieInputError, match=r"predictions row 1 \(video 'v1'\): onset 20 is after offset 10.*Swap"):
        evaluate_spotting(GT, [iv("v1", 0, 5), iv("v1", 20, 10)])
    with pytest.raises(MieInputError, match=r"Interval a = \(9, 3\) has its onset after its offset"):
        interval_iou((9, 3), (0, 4))


def test_unknown_kind_lists_the_allowed_ones():
    with pytest.raises(MieInputError, match=r"kind 'Micro - 1/2' is not one of 'micro', 'macro'.*Map the database"):
        evaluate_spotting([iv("v", 0, 9, "Micro - 1/2")], [])


def test_other_bad_values():
    with pytest.raises(MieInputError, match=r"onset is 566.4, not a whole frame number; round"):
        evaluate_spotting([iv("v", 566.4, 600)], [])
    with pytest.raises(MieInputError, match=r"onset -1 is negative; frames are 0-based"):
        evaluate_spotting([iv("v", -1, 6)], [])
    with pytest.raises(MieInputError, match=r"video is missing"):
        evaluate_spotting([iv(float("nan"), 0, 6)], [])
    with pytest.raises(MieInputError, match=r"iou_threshold must be a number in \(0, 1\]"):
        evaluate_spotting(GT, PRED, iou_threshold=0)
    with pytest.raises(MieInputError, match=r"ground_truth has a 'subject' column and predictions has none"):
        evaluate_spotting([iv("v", 0, 9, subject="s1")], [iv("v", 0, 9)])
    with pytest.raises(MieInputError, match=r"must be a pandas DataFrame or a sequence of dicts"):
        evaluate_spotting({"video": ["v"]}, [])


# ------------------------------------------------------------------------------------------ STRS
# Worked by hand (0-based inclusive frames):
# s1/A: GT g0 [0,9] negative, g1 [20,29] positive.  s1/B: GT g2 [0,19] surprise.
# s2/C: GT g3 [10,19] negative (no prediction in subject s2).
# p0 s1/A [0,9] negative:  IoU 1 with g0 -> TP pair (negative, negative).
# p1 s1/A [21,30] negative: with g1 9 / 11 = 0.818 -> TP pair (positive -> negative: wrong emotion).
# p2 s1/A [0,8] negative:  g0 is taken -> FP.
# p3 s1/B [0,9] surprise:  with g2 10 / 20 = 0.5 -> TP pair (surprise, surprise).
# p4 s3/D [0,9] negative:  video without ground truth -> FP.
# Spotting: TP 3, FP 2, FN 1 (g3); P = 3/5, R = 3/4, F1_spot = 2TP/(2TP+FP+FN) = 6/9 = 2/3.
# Classes (GT emotions): negative, positive, surprise. On the three pairs:
#   negative: TP 1, FP 1 (the positive one), FN 0 -> P 1/2, R 1, F1 2/3
#   positive: TP 0, FP 0, FN 1                    -> P 0,   R 0, F1 0
#   surprise: TP 1, FP 0, FN 0                    -> P 1,   R 1, F1 1
# P-bar = 1.5/3 = 1/2, R-bar = 2/3, F1_analysis = 2 (1/2)(2/3) / (1/2 + 2/3) = 4/7 = 0.5714
# UF1 = (2/3 + 0 + 1)/3 = 5/9, UAR = 2/3; STRS = 2/3 * 4/7 = 8/21 = 0.3810.
STRS_GT = [
    em("s1", "A", 0, 9, "negative"),
    em("s1", "A", 20, 29, "positive"),
    em("s1", "B", 0, 19, "surprise"),
    em("s2", "C", 10, 19, "negative"),
]
STRS_PRED = [
    em("s1", "A", 0, 9, "negative"),
    em("s1", "A", 21, 30, "negative"),
    em("s1", "A", 0, 8, "negative"),
    em("s1", "B", 0, 9, "surprise"),
    em("s3", "D", 0, 9, "negative"),
]


def test_strs_hand_computed():
    result = evaluate_strs(STRS_GT, STRS_PRED)
    assert result.spotting == SpotCounts(tp=3, fp=2, fn=1, n_gt=4, n_pred=5)
    assert result.f1_spot == pytest.approx(2 / 3)
    assert result.classes == ("negative", "positive", "surprise")
    negative, positive, surprise = (result.per_class[c] for c in result.classes)
    assert (negative.tp, negative.fp, negative.fn) == (1, 1, 0)
    assert (negative.precision, negative.recall, negative.f1) == pytest.approx((1 / 2, 1, 2 / 3))
    assert (positive.tp, positive.fp, positive.fn, positive.f1) == (0, 0, 1, 0.0)
    assert (surprise.precision, surprise.recall) == (1.0, 1.0)
    assert result.mean_precision == pytest.approx(1 / 2)
    assert result.mean_recall == result.uar == pytest.approx(2 / 3)
    assert result.f1_analysis == pytest.approx(4 / 7)
    assert result.uf1 == pytest.approx(5 / 9)
    assert result.strs == pytest.approx(8 / 21)  # 0.3810
    assert [(p.gt_index, p.pred_index, p.gt_emotion, p.pred_emotion) for p in result.pairs] == [
        (0, 0, "negative", "negative"),
        (1, 1, "positive", "negative"),
        (2, 3, "surprise", "surprise"),
    ]


def test_strs_dataframe_input():
    result = evaluate_strs(pd.DataFrame(STRS_GT), pd.DataFrame(STRS_PRED).assign(kind="micro"))
    assert result.strs == pytest.approx(8 / 21)
    assert result.to_dict() == evaluate_strs(STRS_GT, STRS_PRED).to_dict()


def test_strs_original_quirks_drop_unpredicted_subjects_and_groundless_videos():
    # Subjects come from the predictions (s1, s3): g3 of s2 makes no FN; s3 has no ground truth,
    # so p4 is ignored. TP 3, FP 1 (p2), FN 0: F1_spot = 6 / (6 + 1) = 6/7; the analysis is the
    # same (classes from all GT): STRS = 6/7 * 4/7 = 24/49 = 0.4898.
    result = evaluate_strs(STRS_GT, STRS_PRED, original_quirks=True)
    assert result.spotting == SpotCounts(tp=3, fp=1, fn=0, n_gt=3, n_pred=4)
    assert result.f1_spot == pytest.approx(6 / 7)
    assert result.f1_analysis == pytest.approx(4 / 7)
    assert result.strs == pytest.approx(24 / 49)


def test_strs_original_quirk_zeroes_a_class_that_is_all_pairs():
    # One pair, negative on both sides, classes = (negative,). Honestly P = R = 1 -> F1_analysis 1.
    # strs_metric.py's 1x1 confusion matrix fails to unpack -> P = R = 0 -> F1_analysis 0/0 = NaN.
    gt = [em("s1", "A", 0, 9, "negative")]
    pred = [em("s1", "A", 0, 9, "negative")]
    honest = evaluate_strs(gt, pred)
    assert honest.f1_analysis == 1.0 and honest.strs == 1.0
    quirky = evaluate_strs(gt, pred, original_quirks=True)
    assert quirky.per_class["negative"].precision == 0.0
    assert math.isnan(quirky.f1_analysis) and math.isnan(quirky.strs)


def test_strs_one_prediction_takes_every_interval_it_hits():
    # [0,9] hits [0,4] and [5,9] at 0.5 each: two TP pairs under STRS, one TP + one FN under MEGC.
    gt = [em("s", "v", 0, 4, "negative"), em("s", "v", 5, 9, "surprise")]
    pred = [em("s", "v", 0, 9, "negative")]
    strs = evaluate_strs(gt, pred)
    assert strs.spotting == SpotCounts(tp=2, fp=0, fn=0, n_gt=2, n_pred=1)
    assert [p.gt_index for p in strs.pairs] == [0, 1]
    megc = evaluate_spotting([{**r, "kind": "micro"} for r in gt], [{**r, "kind": "micro"} for r in pred])
    assert megc.micro == SpotCounts(tp=1, fp=0, fn=1, n_gt=2, n_pred=1)


def test_strs_given_classes():
    # Only negative and surprise scored: the positive -> negative pair leaves the analysis.
    # negative: TP 1, FP 0, FN 0; surprise: TP 1 -> P-bar = R-bar = 1, F1_analysis 1, STRS = 2/3.
    result = evaluate_strs(STRS_GT, STRS_PRED, classes=["negative", "surprise"])
    assert result.n_analysed == 2
    assert result.f1_analysis == 1.0
    assert result.strs == pytest.approx(2 / 3)
    # An extra class with no pairs costs: P-bar = R-bar = (1 + 1 + 0)/3 = 2/3 -> F1_analysis 2/3.
    extra = evaluate_strs(STRS_GT, STRS_PRED, classes=["negative", "surprise", "others"])
    assert extra.f1_analysis == pytest.approx(2 / 3)


def test_strs_table_names_the_mean_precision_honestly():
    text = evaluate_strs(STRS_GT, STRS_PRED).table()
    assert "mean precision            0.5000  (strs_metric.py prints this as 'UAR')" in text
    assert "mean recall (UAR)         0.6667" in text
    assert "STRS                      0.3810" in text
    assert text.splitlines()[1].split() == ["spot", "3", "2", "1", "0.6000", "0.7500", "0.6667"]


def test_strs_bad_input():
    with pytest.raises(MieInputError, match=r"ground_truth has no column 'emotion'"):
        evaluate_strs([{"video": "A", "onset": 0, "offset": 9}], STRS_PRED)
    no_subject = [{k: v for k, v in r.items() if k != "subject"} for r in STRS_GT]
    no_subject_pred = [{k: v for k, v in r.items() if k != "subject"} for r in STRS_PRED]
    with pytest.raises(MieInputError, match=r"original_quirks=True .* needs a 'subject' column"):
        evaluate_strs(no_subject, no_subject_pred, original_quirks=True)
    with pytest.raises(MieInputError, match="classes is empty"):
        evaluate_strs(STRS_GT, STRS_PRED, classes=[])
    with pytest.raises(MieInputError, match=r"onset 30 is after offset 21"):
        evaluate_strs(STRS_GT, [em("s1", "A", 30, 21, "negative")])


def test_strs_default_classes_are_all_ground_truth_emotions():
    # Like strs_metric.py, classes=None takes every GT emotion, also one that was never spotted:
    # surprise [50,59] is missed, so classes = (negative, surprise) with surprise P = R = 0:
    # P-bar = R-bar = 1/2 -> F1_analysis 1/2 (classes from the spotted pairs alone would give 1).
    gt = [em("s", "A", 0, 9, "negative"), em("s", "A", 50, 59, "surprise")]
    pred = [em("s", "A", 0, 9, "negative")]
    result = evaluate_strs(gt, pred)
    assert result.classes == ("negative", "surprise")
    assert result.f1_analysis == pytest.approx(1 / 2)
    assert evaluate_strs(gt, pred, classes=["negative"]).f1_analysis == 1.0
