"""Benchmark: a 200-frame 640x480 face clip file through decode + landmarks + crops + tensors.

Writes the clip (NASA's public-domain astronaut portrait, moving a few pixels per frame) to a
temporary mp4, builds one `MieProcessor` (landmarker loaded and warmed up once, as in the app
or a cache build), then times whole `processor(path, return_tensors="pt")` calls. Prints one
line per repetition and, last, `frames_per_s=<x> landmark_ms=<y>`: frames_per_s is the
clip's frames over the median time of the whole pipeline, landmark_ms the median time of the
landmark pass inside it. Target: frames_per_s >= 400 (the clip in under 0.5 s).

Usage: python bench/preprocess.py [--frames 200] [--repeats 5] [--preset paper|fast] [--rgb]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MIE_FACE_LANDMARKER", str(REPO.parent / "shared" / "assets" / "face_landmarker.task"))


def write_clip(path: Path, frames: int, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
    """A `frames`-long clip of the astronaut's face (about 200 px brow-to-chin), drifting slowly."""
    import cv2
    import skimage.data

    face = skimage.data.astronaut()[45:235, 130:320]  # the head with some margin, 190 x 190
    face = cv2.resize(face, (400, 400), interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((height, width, 3), np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here.")
    for i in range(frames):
        dx, dy = int(round(3 * np.sin(i / 9))), int(round(2 * np.cos(i / 13)))
        canvas[:] = 0
        canvas[40 + dy : 440 + dy, 120 + dx : 520 + dx] = face
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", choices=["paper", "fast"], default="paper")
    parser.add_argument("--rgb", action="store_true", help="3-channel crops instead of grey")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from modeling_mie import MieConfig, MieProcessor

    if args.threads:
        torch.set_num_threads(args.threads)
    config = MieConfig.from_preset(args.preset, num_channels=3 if args.rgb else 1)
    processor = MieProcessor.from_config(config)

    # time the landmark pass inside the pipeline by wrapping the processor's detector call
    landmark_times: list[float] = []
    detect = processor.detect_landmarks

    def timed_detect(*a, **k):
        start = time.perf_counter()
        try:
            return detect(*a, **k)
        finally:
            landmark_times.append(time.perf_counter() - start)

    processor.detect_landmarks = timed_detect

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_clip(path, args.frames)
        print(f"clip: {path.name} {args.frames} frames 640x480 mp4v, {path.stat().st_size / 1e6:.1f} MB")

        start = time.perf_counter()
        out = processor(str(path), return_tensors="pt")  # loads MediaPipe, warms caches
        print(f"first call (incl. landmarker load): {1e3 * (time.perf_counter() - start):.0f} ms")
        print(
            f"pixel_values {tuple(out['pixel_values'].shape)} {out['pixel_values'].dtype}, "
            f"landmarks from frame {int(out['landmark_frame'][0])}, "
            f"boxes {out['region_boxes'][0].tolist()}"
        )
        totals, marks = [], []
        for rep in range(args.repeats):
            landmark_times.clear()
            start = time.perf_counter()
            out = processor(str(path), return_tensors="pt")
            total = time.perf_counter() - start
            totals.append(total)
            marks.append(sum(landmark_times))
            print(
                f"run {rep}: {1e3 * total:.0f} ms total, {1e3 * marks[-1]:.1f} ms landmarks, "
                f"{args.frames / total:.0f} frames/s"
            )
        processor.close()

    best = min(totals)
    print(f"best: {args.frames / best:.0f} frames/s ({1e3 * best:.0f} ms)")
    median_total, median_landmarks = statistics.median(totals), statistics.median(marks)
    print(f"frames_per_s={args.frames / median_total:.0f} landmark_ms={1e3 * median_landmarks:.1f}")


if __name__ == "__main__":
    main()
