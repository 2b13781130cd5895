"""Long test videos of a synthetic face: one rendered stretch with a micro-expression and a blink,
written once or repeated to any length."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

#: Frames of the rendered stretch (30 fps): the micro-expression's movement runs over frames
#: 120-130 (0.33 s), a blink starts at frame 180.
STRETCH_FRAMES = 240
MICRO = (120, 130)
BLINK_START = 180


def render_stretch(expression: bool = True, frames: int = STRETCH_FRAMES) -> np.ndarray:
    """(frames, 480, 640, 3) uint8 RGB: a CASME II-like subject of the head-motion plan, 30 fps."""
    from modeling_mie.synthetic import load_base_faces
    from modeling_mie.synthetic_faces import render_synthetic_clip
    from modeling_mie.synthetic_plan import plan_synthetic_dataset

    plan = plan_synthetic_dataset("megc2019", 0, head_motion=True)
    clip = [c for c in plan.clips if c.database == "casme2" and c.label is not None][3]
    long = dataclasses.replace(
        clip, fps=30, num_frames=frames, motion=(float(MICRO[0]), MICRO[0] + 4.0, float(MICRO[1]), 0.0),
        blink=(float(BLINK_START), 3, 5, 0.95),
    )
    rendered, _ = render_synthetic_clip(plan, long, load_base_faces(), expression=expression)
    return rendered


def write_video(path: Path, stretch: np.ndarray, repeats: int = 1, fps: float = 30.0, size=None) -> Path:
    """`stretch` written `repeats` times one after the other as an MJPG .avi (OpenCV writes it
    without ffmpeg), optionally resized to `size` (width, height)."""
    import cv2

    height, width = stretch.shape[1:3]
    if size is not None:
        width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        for _ in range(repeats):
            for frame in stretch:
                if size is not None:
                    frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
