"""The live spotter (`modeling_mie.spot_live`, the app's Live tab) fed frame by frame, as the
webcam stream feeds it: at about 10 frames a second, with the frames' own timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from modeling_mie import MieConfig, MieProcessor
from modeling_mie.spot_live import LiveSpotter

FPS = 30.0  # the rendered stretch's rate
EVERY = 3  # the app's stream: about 10 of them a second


@pytest.fixture(scope="module")
def stretches(landmarker_path):
    """The 8 s synthetic stretch (head motion; a micro-expression over frames 120-130, a blink at
    180) with and without the expression, at 320 x 240 as a webcam stream sends it."""
    import cv2
    from long_video_helpers import render_stretch

    def small(frames):
        return np.stack([cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames])

    return {"micro": small(render_stretch(expression=True)), "still": small(render_stretch(expression=False))}


def _stream(frames: np.ndarray, repeats: int, recogniser=None):
    """Push `repeats` loops of `frames` (every EVERY-th frame); returns the spotter and every
    interval as (the loop it began in, onset s within that loop, offset s within it, interval)."""
    live = LiveSpotter(MieProcessor.from_config(MieConfig.from_preset("fast")), recogniser=recogniser,
                       fps=FPS / EVERY)
    found = []
    length = frames.shape[0] / FPS
    try:
        for loop in range(repeats):
            for i in range(0, frames.shape[0], EVERY):
                t = loop * length + i / FPS
                # reported a few seconds after it ends (in the next loop, maybe); onset and
                # offset are pushed frames' indices
                for interval in live.push(frames[i], t):
                    onset, offset = live.time_of(interval.onset), live.time_of(interval.offset)
                    at = int(onset // length)
                    found.append((at, onset - at * length, offset - at * length, interval))
    finally:
        live.close()
    return live, found


def test_each_loops_micro_expression_is_spotted_where_it_is_and_recognised(stretches):
    calls = []

    def recogniser(frames, fps):
        calls.append((frames.shape, fps))
        return {"negative": 0.2, "positive": 0.7, "surprise": 0.1}

    live, found = _stream(stretches["micro"], repeats=3, recogniser=recogniser)
    micro = [(loop, onset, offset) for loop, onset, offset, i in found if i.kind == "micro"]
    assert micro, found
    # the movement runs over 4.0-4.33 s of each loop; a spot elsewhere (the blink at 6 s, the head
    # motion) is a false one
    for loop, onset, offset in micro:
        assert 3.7 <= onset <= 4.4 and 3.9 <= offset <= 4.7, (loop, onset, offset)
    # every loop's, but the last's (still within a segment of the end when the stream stops)
    assert {loop for loop, _, _ in micro} >= {0, 1}, micro
    assert all(i.probabilities == {"negative": 0.2, "positive": 0.7, "surprise": 0.1} and i.label == "positive"
               for *_, i in found if i.kind == "micro")
    assert calls and all(shape[0] >= 2 and shape[-1] == 3 and fps > 0 for shape, fps in calls), calls
    assert live.first_frame.shape == (240, 320, 3)
    times, motion = live.recent(20.0)
    assert motion.shape == (times.shape[0], 6) and times[-1] - times[0] <= 20.0


def test_the_blink_and_head_motion_alone_give_no_micro_expression(stretches):
    _, found = _stream(stretches["still"], repeats=3)
    assert not [i for *_, i in found if i.kind == "micro"], found


def test_a_closed_spotter_refuses_frames(stretches):
    live, _ = _stream(stretches["micro"][:3], repeats=1)
    with pytest.raises(RuntimeError, match="closed"):
        live.push(stretches["micro"][0], 10.0)
    live.close()  # twice is harmless
