"""Benchmark: a 640x480 face clip file through decode + face search + following + crops + tensors.

Writes a clip of NASA's public-domain astronaut portrait whose head moves (in-plane rotation up
to 6 deg, translation up to 24 px, scale up to 5 %, on slow waves) to a temporary mp4, builds
one `MieProcessor` per setting (the fast preset with `align` on, the same with it off, and the
flow preset: aligned, DIS optical flow crops; landmarker loaded and warmed up once, as in the app
or a cache build), then times whole `processor(path, return_tensors="pt")` calls, alternating
the settings so that all see the same machine load. Prints one line per repetition and, last:

    frames_per_s_align=<a> frames_per_s_no_align=<b> align_cost=<a/b> clip_ms_align=<ms> landmark_every=<k>
    frames_per_s_flow=<f> flow_ms_per_frame=<ms>

frames_per_s is the clip's frames over the median time of the whole pipeline; clip_ms_align
that median for the aligned run; flow_ms_per_frame what the flow preset adds to the aligned grey
crops, per frame. Targets: frames_per_s_align >= 250 and a 200-frame clip ready in under 1 s
(the real-footage issue); flow adds at most 5 ms per frame (the motion-input issue); on this
project's 2-core machine.

Usage: python bench/preprocess.py [--frames 200] [--repeats 5] [--landmark-every 4] [--rgb]
"""

from __future__ import annotations

import argparse
import math
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
    """A `frames`-long clip of the astronaut's face (about 200 px brow-to-chin) with a moving head."""
    import cv2
    import skimage.data

    face = skimage.data.astronaut()[45:235, 130:320]  # the head with some margin, 190 x 190
    face = cv2.resize(face, (400, 400), interpolation=cv2.INTER_CUBIC)
    still = np.zeros((height, width, 3), np.uint8)
    still[40:440, 120:520] = face
    centre = (320.0, 240.0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here.")
    for i in range(frames):
        t = i / fps
        angle = 6 * math.sin(2 * math.pi * 0.4 * t)
        scale = 1 + 0.05 * math.sin(2 * math.pi * 0.25 * t + 1)
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        matrix[:, 2] += (24 * math.sin(2 * math.pi * 0.3 * t), 12 * math.sin(2 * math.pi * 0.5 * t + 2))
        frame = cv2.warpAffine(still, matrix, (width, height), flags=cv2.INTER_LINEAR)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--landmark-every", type=int, default=None, help="processor landmark_every (default: its own)")
    parser.add_argument("--rgb", action="store_true", help="3-channel crops instead of grey")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from modeling_mie import MieConfig, MieProcessor

    if args.threads:
        torch.set_num_threads(args.threads)
    options = {} if args.landmark_every is None else {"landmark_every": args.landmark_every}
    processors = {
        name: MieProcessor.from_config(MieConfig.from_preset("fast", align=align, num_channels=3 if args.rgb else 1), **options)
        for name, align in (("align", True), ("no_align", False))
    }
    processors["flow"] = MieProcessor.from_config(MieConfig.from_preset("flow"), **options)
    every = processors["align"].landmark_every

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_clip(path, args.frames)
        print(f"clip: {path.name} {args.frames} frames 640x480 mp4v, {path.stat().st_size / 1e6:.1f} MB, moving head")
        for name, processor in processors.items():
            start = time.perf_counter()
            out = processor(str(path), return_tensors="pt")  # loads MediaPipe, warms caches
            track = out["face_track"][0]
            print(
                f"{name}: first call (incl. landmarker load) {1e3 * (time.perf_counter() - start):.0f} ms; "
                f"pixel_values {tuple(out['pixel_values'].shape)}, {int(out['face_present'].sum())} frames with the "
                f"face; {track['summary']}"
            )
        totals: dict[str, list[float]] = {name: [] for name in processors}
        for rep in range(args.repeats):
            line = []
            for name, processor in processors.items():
                start = time.perf_counter()
                processor(str(path), return_tensors="pt")
                total = time.perf_counter() - start
                totals[name].append(total)
                line.append(f"{name} {1e3 * total:.0f} ms ({args.frames / total:.0f} frames/s)")
            print(f"run {rep}: " + ", ".join(line))
        for processor in processors.values():
            processor.close()

    median = {name: statistics.median(values) for name, values in totals.items()}
    fps_align, fps_plain = args.frames / median["align"], args.frames / median["no_align"]
    print(
        f"frames_per_s_align={fps_align:.0f} frames_per_s_no_align={fps_plain:.0f} "
        f"align_cost={median['align'] / median['no_align']:.2f} clip_ms_align={1e3 * median['align']:.0f} "
        f"landmark_every={every}"
    )
    print(
        f"frames_per_s_flow={args.frames / median['flow']:.0f} "
        f"flow_ms_per_frame={1e3 * (median['flow'] - median['align']) / args.frames:.2f}"
    )


if __name__ == "__main__":
    main()
