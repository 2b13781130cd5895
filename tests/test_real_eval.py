"""The real-expression evaluation set and the command that scores a model on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification, MieInputError, MieProcessor
from modeling_mie.real_eval import COLUMNS, DEFAULT_SET, main, read_segments, score
from modeling_mie.real_footage import REAL_FOOTAGE


def test_the_set_names_real_recordings_and_frames_they_have(real_videos):
    segments = read_segments(DEFAULT_SET, labels=["negative", "positive", "surprise"])
    assert len(segments) >= 5 and len({s.expression for s in segments}) >= 3
    assert {s.label for s in segments} >= {"negative", "positive"}
    for seg in segments:
        assert seg.video in REAL_FOOTAGE and seg.reason
        capture = cv2.VideoCapture(str(real_videos / seg.video))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        assert seg.offset_frame < count, (seg.video, seg.offset_frame, count)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("single_face.mp4,40,10,60,positive,x,why", "0 <= onset <= apex <= offset"),
        ("single_face.mp4,0,10,six,positive,x,why", "whole numbers"),
        ("single_face.mp4,0,10,20,joy,x,why", "not one of the model's labels"),
    ],
)
def test_a_bad_row_is_a_clear_error(tmp_path, row, message):
    path = tmp_path / "set.csv"
    path.write_text(",".join(COLUMNS) + "\n" + row + "\n")
    with pytest.raises(MieInputError, match=message):
        read_segments(path, labels=["negative", "positive", "surprise"])
    path.write_text("video,label\nsingle_face.mp4,positive\n")
    with pytest.raises(MieInputError, match="lacks the column"):
        read_segments(path)


def _saved_model(folder, preset: str = "fast"):
    config = MieConfig.from_preset(preset)
    torch.manual_seed(0)
    MieForVideoClassification(config).save_pretrained(folder)
    MieProcessor.from_config(config, frame_sampling="uniform", num_frames=8).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("preset", ["fast", "flow"])
def test_scoring_reports_every_segment_and_the_accuracies(tmp_path, real_videos, preset):
    model = _saved_model(tmp_path / "model", preset)
    path = tmp_path / "set.csv"
    path.write_text(
        ",".join(COLUMNS) + "\n"
        "single_face.mp4,0,20,30,positive,smile,a\n"
        "single_face.mp4,30,40,50,negative,smile,b\n"
        "WolfgangLanger_Pexels.mp4,0,10,20,negative,cry,c\n"
    )
    result = score(model, read_segments(path), real_videos)
    rows = result["segments"]
    assert len(rows) == 3
    for row in rows:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert row["predicted"] == max(row["probabilities"], key=row["probabilities"].get)
        assert row["correct"] == (row["predicted"] == row["label"])
        assert (row["motion_peak"] is not None) == (preset == "flow")
    assert result["accuracy_segments"] == pytest.approx(np.mean([r["correct"] for r in rows]))
    smile = np.mean([r["correct"] for r in rows[:2]])
    assert result["accuracy_expressions"] == pytest.approx((smile + rows[2]["correct"]) / 2)
    assert result["num_expressions"] == 2


def test_a_flow_model_calls_a_real_smile_a_large_movement_and_the_card_records_it(tmp_path, real_videos, capsys):
    model = _saved_model(tmp_path / "model", "flow")
    path = tmp_path / "set.csv"
    path.write_text(",".join(COLUMNS) + "\n" "single_face.mp4,0,40,71,positive,smile,a broad smile\n")
    # unknown training motion: the verdict can only come from the probabilities
    row = score(model, read_segments(path), real_videos)["segments"][0]
    assert row["verdict"] in ("class", "uncertain") and row["motion_peak"] > 10
    config = MieConfig.from_pretrained(model)
    config.trained_motion_peak = 2.0  # as a model trained on micro-expressions of a few px records it
    config.save_pretrained(model)
    card = tmp_path / "model" / "README.md"
    card.write_text("# a model\n\n## Evaluation\n\nLOSO table\n\n## Data\n\nsynthetic\n")
    args = ["--model", model, "--csv", str(path), "--footage", str(real_videos), "--card"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "the app says: large movement" in out
    text = card.read_text()
    assert "1 of 1 segments right" in text or "0 of 1 segments right" in text
    assert "calls 1 of them a large movement" in text and text.index("LOSO table") < text.index("real_eval") < text.index("## Data")
    assert main(args) == 0  # again: the paragraph is replaced, not repeated
    assert card.read_text().count("mie-evaluation:real-expressions -->") == 2  # its opening and closing fence
    (tmp_path / "bare").mkdir()
    _saved_model(tmp_path / "bare", "flow")
    assert main(["--model", str(tmp_path / "bare"), "--csv", str(path), "--footage", str(real_videos), "--card"]) == 2
    assert "has no model card" in capsys.readouterr().err


def test_the_command_says_what_is_wrong(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--csv", str(tmp_path / "none.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
