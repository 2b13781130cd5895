"""Spotting in long videos (`modeling_mie.spot`): intervals from motion, blinks, the pass on
rendered synthetic videos, the command line and its bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from modeling_mie.errors import MieInputError
from modeling_mie.spot import (
    CSV_COLUMNS,
    LongVideo,
    MotionTrace,
    SpotSettings,
    blink_frames,
    find_intervals,
    main,
    spot_video,
)

REGIONS = ["left_eye", "right_eye", "nose", "left_cheek", "right_cheek", "mouth"]


def _trace(n=300, fps=30.0, stride=1, seed=0, **extra) -> MotionTrace:
    """A motion trace of noise (0.05 +- 0.01 px) to add bumps to."""
    rng = np.random.default_rng(seed)
    px = (0.05 + 0.01 * rng.standard_normal((n, len(REGIONS)))).astype(np.float32)
    return MotionTrace(
        video="test", fps=fps, stride=stride, num_frames=n * stride, indices=np.arange(n) * stride,
        present=np.ones(n, bool), region_px=px, turn=np.zeros(n, np.float32), region_names=list(REGIONS),
        eye_drop=np.zeros((n, 2), np.float32), eye_height=14.0, eye_regions=(0, 1), **extra,
    )


def _bump(trace: MotionTrace, region: int, first: int, last: int, height: float) -> None:
    """A raised-cosine movement in `region` over analysed frames first..last (inclusive)."""
    t = np.arange(first, last + 1)
    trace.region_px[t, region] += height * np.sin(np.pi * (t - first + 0.5) / (last - first + 1)).astype(np.float32)


# ----------------------------------------------------------------------------- intervals
def test_a_short_movement_is_one_micro_interval_and_a_long_one_macro():
    trace = _trace()
    _bump(trace, 5, 50, 59, 0.8)  # 10 frames at 30 fps: 0.33 s
    _bump(trace, 3, 150, 209, 2.0)  # 60 frames: 2 s
    found = find_intervals(trace)
    assert [(i.kind, i.region) for i in found] == [("micro", "mouth"), ("macro", "left_cheek")], found
    micro, macro = found
    # the edges are where the movement leaves the noise, within a few frames of the bump's ends
    assert 48 <= micro.onset <= 52 and 57 <= micro.offset <= 61 and micro.onset <= micro.apex <= micro.offset
    assert abs(micro.apex - 54.5) <= 2
    assert 146 <= macro.onset <= 156 and 203 <= macro.offset <= 213
    assert 0.5 < micro.score < 1 and 0.5 < macro.score < 1


def test_noise_alone_and_a_movement_below_the_floor_give_nothing():
    trace = _trace(seed=1)
    assert find_intervals(trace) == []
    _bump(trace, 5, 100, 110, 0.25)  # 12 noise floors (0.02 px), peaking at 0.3 px
    assert find_intervals(trace, SpotSettings(min_motion_px=0.4)) == []
    assert len(find_intervals(trace, SpotSettings(min_motion_px=0.2))) == 1


def test_frames_are_source_frames_when_every_stride_th_frame_is_analysed():
    trace = _trace(n=200, fps=200.0, stride=7)
    _bump(trace, 2, 80, 88, 1.0)  # 9 analysed frames = 63 source frames = 0.32 s
    (found,) = find_intervals(trace)
    assert found.kind == "micro"
    assert 78 * 7 <= found.onset <= 81 * 7 and 87 * 7 <= found.offset <= 90 * 7 + 6
    assert found.onset % 7 == 0  # an analysed frame


def test_a_blink_hides_the_eye_regions_but_not_an_expression_elsewhere():
    trace = _trace()
    _bump(trace, 0, 100, 106, 0.7)  # both eye regions move with the lids
    _bump(trace, 1, 100, 106, 0.7)
    trace.eye_drop[100:107] = 2.0  # both openings close (14 px high)
    assert blink_frames(trace, SpotSettings())[98:109].all()
    assert find_intervals(trace) == []
    _bump(trace, 5, 99, 108, 0.8)  # a mouth movement at the same time is still found
    (found,) = find_intervals(trace)
    assert found.region == "mouth"
    # one eye closing alone (a wink, or a lid under an expression) is not a blink
    trace = _trace()
    _bump(trace, 0, 100, 106, 0.7)
    trace.eye_drop[100:107, 0] = 2.0
    assert not blink_frames(trace, SpotSettings()).any()
    assert [i.region for i in find_intervals(trace)] == ["left_eye"]


def test_an_interval_while_the_head_turns_or_the_face_is_lost_is_not_reported():
    trace = _trace()
    _bump(trace, 5, 100, 110, 1.0)
    trace.turn[95:115] = np.linspace(0, 12, 20)  # the head turns 12 deg out of the image plane
    assert find_intervals(trace) == []
    trace = _trace()
    _bump(trace, 5, 100, 110, 1.0)
    trace.present[103:106] = False
    trace.region_px[103:106] = np.nan
    found = find_intervals(trace)
    assert all(i.offset < 103 or i.onset > 105 for i in found), found


# ----------------------------------------------------------------------------- synthetic videos
@pytest.fixture(scope="module")
def synthetic_videos(tmp_path_factory, landmarker_path):
    """Two 8 s, 30 fps videos of a synthetic face with head motion: one with a micro-expression
    (frames 120-130) and a blink (frame 180); one with the blink only; and the first as a folder
    of numbered frames, CAS(ME)^2 style."""
    import cv2
    from long_video_helpers import render_stretch, write_video

    folder = tmp_path_factory.mktemp("spot")
    micro = render_stretch(expression=True)
    paths = {
        "micro": write_video(folder / "micro.avi", micro),
        "blinks": write_video(folder / "blinks.avi", render_stretch(expression=False)),
    }
    frames_dir = folder / "frames"
    frames_dir.mkdir()
    for i, frame in enumerate(micro):
        cv2.imwrite(str(frames_dir / f"img{i + 1:03d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    paths["folder"] = frames_dir
    return paths


def test_the_micro_expression_is_spotted_and_the_blink_is_not(synthetic_videos):
    frame = spot_video(synthetic_videos["micro"], recognise_intervals=False, progress=False)
    assert list(frame.columns[: len(CSV_COLUMNS)]) == list(CSV_COLUMNS)
    assert len(frame) == 1, frame
    row = frame.iloc[0]
    truth = (120, 130)
    inter = max(0, min(row.offset_frame, truth[1]) - max(row.onset_frame, truth[0]) + 1)
    union = (row.offset_frame - row.onset_frame + 1) + (truth[1] - truth[0] + 1) - inter
    assert inter / union >= 0.5, row
    assert row.kind == "micro" and row.onset_s == pytest.approx(row.onset_frame / 30, abs=1e-3)
    assert spot_video(synthetic_videos["blinks"], recognise_intervals=False, progress=False).empty


def test_a_frame_folder_needs_its_rate_and_gives_the_same_interval(synthetic_videos):
    with pytest.raises(MieInputError, match="fps"):
        LongVideo(synthetic_videos["folder"])
    frame = spot_video(synthetic_videos["folder"], fps=30, recognise_intervals=False, progress=False)
    assert len(frame) == 1 and 115 <= frame.iloc[0].onset_frame <= 125


def test_frames_read_back_are_the_frames_decoded_in_order(synthetic_videos):
    video = LongVideo(synthetic_videos["micro"])
    streamed = {i: f for i, f in video.frames(stride=5) if i in (0, 5, 235)}
    again = video.read([235, 5, 0, 10_000])
    assert sorted(again) == [0, 5, 235]
    for i in again:
        np.testing.assert_array_equal(again[i], streamed[i])


# ----------------------------------------------------------------------------- command line
def test_the_command_writes_one_csv_per_video_and_resumes(synthetic_videos, tmp_path, capsys):
    out = tmp_path / "spots"
    assert main([str(synthetic_videos["micro"]), "--output-dir", str(out), "--no-recognise", "--quiet"]) == 0
    csv = out / "micro.csv"
    lines = csv.read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and len(lines) == 2
    assert lines[1].split(",")[6] == "micro"
    before = csv.stat().st_mtime_ns
    assert main([str(synthetic_videos["micro"]), "--output-dir", str(out), "--no-recognise", "--quiet"]) == 0
    assert csv.stat().st_mtime_ns == before and "skipped" in capsys.readouterr().out


def test_bad_input_gets_one_clear_line_not_a_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    from long_video_helpers import write_video

    faceless = write_video(tmp_path / "wall.avi", np.full((40, 120, 160, 3), 90, np.uint8))
    result = subprocess.run(
        [sys.executable, "-m", "modeling_mie.spot", str(tmp_path / "missing.mp4"), str(empty), str(not_video), str(faceless),
         "--output-dir", str(tmp_path / "out"), "--no-recognise", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "missing.mp4 does not exist" in result.stderr
    assert "holds no image files" in result.stderr
    assert "could not be opened as a video" in result.stderr
    assert "No face was found" in result.stderr and "Spotting searched the whole video" in result.stderr
    assert "landmarks=" not in result.stderr  # the processor's advice for clips does not apply here
