"""Example clips for the app and its benchmark: synthetic micro-expressions written as VP8 WebM.

The app's `examples/` folder holds one short clip per class (negative, positive, surprise), made
by the synthetic generator (`modeling_mie.synthetic`) from the public-domain photos. They are
written as VP8 WebM because that is what Chromium plays: MPEG-4 part 2 ("mp4v"), the only mp4
codec OpenCV's wheels can write, shows "Video not playable" in the browser.

Choices, and why:
- The plan is the megc2019 profile with seed 2019, not the default seed 0 of
  `python -m modeling_mie.synthetic` that the bundled checkpoint's data is made with, so the
  examples are clips (and subject identities) that model has not trained on.
- CASME II-like clips (200 fps colour), the expression only (`nuisances=False`: no sensor noise,
  drift, flicker or blink): the clean movement is what a visitor should see, and fresh noise in
  every frame is what VP8 spends most bytes on (a noisy 54-frame clip is 1.6x the size).
- A square around the face, 1.5 face widths wide, resized to 224 px: the face stays about 150 px
  wide (inside the generator's 105-300 px range) and each clip stays near 100 KB.

Command (writes the committed clips). The same library versions give the same decoded frames;
the files differ in a few header bytes, because the WebM muxer writes a random segment UID::

    python -m modeling_mie.examples --out examples
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

EXAMPLE_PROFILE = "megc2019"
EXAMPLE_SEED = 2019
EXAMPLE_DATABASE = "casme2"
EXAMPLE_SIZE = 224
# Clips this long (frames at 200 fps: 0.2-0.3 s) are typical micro-expressions and stay small.
EXAMPLE_FRAMES = (40, 60)
CLASS_NAMES = ("negative", "positive", "surprise")


def _require_cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - OpenCV comes with mediapipe
        raise ImportError("Writing example clips needs OpenCV: pip install opencv-contrib-python") from err
    return cv2


def write_webm(frames: np.ndarray, path: str | os.PathLike, fps: float) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as a VP8 WebM file (fourcc VP80) and check it reads back.

    Raises:
        RuntimeError: OpenCV cannot write VP8 here (a build without FFmpeg), or the file written
            does not decode to the same number of frames.
    """
    cv2 = _require_cv2()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB; got {frames.shape} {frames.dtype}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"VP80"), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(
            f"OpenCV cannot write VP8 WebM to {path}: it needs a build with FFmpeg (the opencv wheels have it)."
        )
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    if count != len(frames):
        raise RuntimeError(f"{path} decodes to {count} frames, {len(frames)} were written.")
    return path


def face_square(dlib68: np.ndarray, frame_size: tuple[int, int], scale: float = 1.5) -> tuple[int, int, int]:
    """(x0, y0, side) of a square around the face, `scale` jaw widths wide, moved inside the frame.

    dlib68: (68, 2) px; frame_size: (width, height) px.
    """
    width, height = frame_size
    face_width = float(dlib68[:17, 0].max() - dlib68[:17, 0].min())
    side = int(min(round(scale * face_width), width, height))
    cx, cy = dlib68.mean(axis=0)
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return x0, y0, side


def pick_example_clips(plan) -> dict[str, object]:
    """One clip per class from `plan`: the first CASME II-like clip of each class (plan order)
    with `EXAMPLE_FRAMES` frames and no blink. Deterministic for a given plan."""
    picked = {}
    lo, hi = EXAMPLE_FRAMES
    for clip in plan.clips:
        if clip.database != EXAMPLE_DATABASE or clip.kind != "micro" or clip.label is None:
            continue
        name = CLASS_NAMES[clip.label]
        if name not in picked and lo <= clip.num_frames <= hi and clip.blink is None:
            picked[name] = clip
    missing = [n for n in CLASS_NAMES if n not in picked]
    if missing:
        raise RuntimeError(f"The {plan.profile} plan (seed {plan.seed}) has no suitable clip for {missing}.")
    return {n: picked[n] for n in CLASS_NAMES}


def render_example_frames(plan, clip, faces, size: int | None = EXAMPLE_SIZE, nuisances: bool = False) -> np.ndarray:
    """The frames of one planned clip as (T, size, size, 3) uint8 RGB, cut to a square around the face.

    `size=None` keeps the whole frame at the generator's resolution instead (e.g. 640 x 480).
    """
    cv2 = _require_cv2()
    from .synthetic_faces import render_synthetic_clip

    frames, dlib68 = render_synthetic_clip(plan, clip, faces, nuisances=nuisances)
    if frames.ndim == 3:  # grey subjects (SAMM-like): the browser wants colour
        frames = np.repeat(frames[..., None], 3, axis=3)
    if size is None:
        return frames
    x0, y0, side = face_square(dlib68, (frames.shape[2], frames.shape[1]))
    return np.stack(
        [cv2.resize(f[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA) for f in frames]
    )


def make_example_clips(out_dir: str | os.PathLike = "examples", faces=None) -> list[Path]:
    """Write `<class>.webm` for each class into `out_dir`; returns the paths, class order.

    faces: from `modeling_mie.synthetic.load_base_faces` (detected here when None; needs the face
    landmarker model, see `resolve_face_landmarker_model`).
    """
    from .synthetic import load_base_faces
    from .synthetic_plan import DATABASE_FPS, plan_synthetic_dataset

    plan = plan_synthetic_dataset(EXAMPLE_PROFILE, seed=EXAMPLE_SEED)
    faces = faces or load_base_faces()
    paths = []
    for name, clip in pick_example_clips(plan).items():
        frames = render_example_frames(plan, clip, faces)
        path = write_webm(frames, Path(out_dir) / f"{name}.webm", DATABASE_FPS[clip.database])
        logger.info("%s: %s, %d frames, %d bytes", path, clip.key, len(frames), path.stat().st_size)
        paths.append(path)
    return paths


def make_benchmark_clip(
    path: str | os.PathLike, seconds: float = 1.0, label: str = "positive", faces=None
) -> Path:
    """A full-frame (640 x 480) CASME II-like clip of `seconds` at 200 fps, with the generator's
    noise, drift and flicker: what a high-speed camera records around one micro-expression.

    The planned clip is stretched to the wanted length: the expression keeps its own timing and
    its residual holds to the end.
    """
    from .synthetic import load_base_faces
    from .synthetic_plan import DATABASE_FPS, plan_synthetic_dataset

    plan = plan_synthetic_dataset(EXAMPLE_PROFILE, seed=EXAMPLE_SEED)
    clip = pick_example_clips(plan)[label]
    fps = DATABASE_FPS[clip.database]
    clip = dataclasses.replace(clip, num_frames=max(2, int(round(seconds * fps))))
    frames = render_example_frames(plan, clip, faces or load_base_faces(), size=None, nuisances=True)
    return write_webm(frames, path, fps)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_mie.examples",
        description="Write the app's example clips (one synthetic micro-expression per class, VP8 WebM).",
    )
    parser.add_argument("--out", default="examples", help="output folder (default: examples)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .errors import MieInputError

    try:
        paths = make_example_clips(args.out)
    except MieInputError as err:
        logger.error("%s", err)
        return 2
    total = sum(p.stat().st_size for p in paths)
    logger.info("%d clips, %.0f KB in total, in %s", len(paths), total / 1024, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "CLASS_NAMES",
    "face_square",
    "make_benchmark_clip",
    "make_example_clips",
    "pick_example_clips",
    "render_example_frames",
    "write_webm",
]
