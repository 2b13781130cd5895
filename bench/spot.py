"""Speed and memory of the whole spot-then-recognise pass on a 640 x 480, 30 fps video.

    python bench/spot.py [--seconds 60 180] [--threads 2]

Renders a synthetic long video of each length (CAS(ME)^2 style: 640 x 480, 30 fps, head motion,
blinks, micro- and macro-expressions; kept in .cache/bench/ for the next run) as an MJPG .avi,
then runs `modeling_mie.spot.spot_video` with the bundled model on it in a fresh process per
length, and prints per length:

    frames_per_s         spotting and recognition, end to end (model loading excluded)
    decode_frames_per_s  decoding the same file alone (the reference, same run)
    ratio_to_decode      frames_per_s / decode_frames_per_s
    x_real_time          frames_per_s / 30
    peak_rss_mb          the child process's peak resident memory

Goals: frames_per_s >= 90 (3x real time) on two cores; peak_rss_mb the same at both lengths
(the video is streamed: memory must not grow with its length).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"


def make_video(seconds: float, seed: int = 7) -> Path:
    """A synthetic 640 x 480, 30 fps long video of `seconds` (cached)."""
    import cv2

    from modeling_mie.synthetic_long_plan import plan_long_videos, render_long_video

    path = CACHE / f"spot_{int(seconds)}s_seed{seed}.avi"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    plan = plan_long_videos(["casme_sq"], subjects=1, videos_per_subject=1, seconds=float(seconds), seed=seed, blink_video=False)
    video = plan.videos[0]
    tmp = path.with_suffix(".partial.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    started = time.perf_counter()
    for frame in render_long_video(plan, video):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    tmp.replace(path)
    print(f"# rendered {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def child(video: str, threads: int) -> dict:
    """Run in a fresh process: decode alone, then the whole pass; return the figures."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    from modeling_mie.app_support import BUNDLED_MODEL
    from modeling_mie.spot import load_recogniser, spot_video

    cap = cv2.VideoCapture(video)
    started, frames = time.perf_counter(), 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    decode = frames / (time.perf_counter() - started)
    model, processor = load_recogniser(REPO / BUNDLED_MODEL)
    started = time.perf_counter()
    table = spot_video(video, model, processor=processor, progress=False)
    seconds = time.perf_counter() - started
    return {
        "frames": frames,
        "intervals": len(table),
        "seconds": round(seconds, 2),
        "frames_per_s": round(frames / seconds, 1),
        "decode_frames_per_s": round(decode, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 180.0], help="video lengths (default 60 180)")
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (default 2: the machine's cores)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads)))
        return 0
    os.environ.setdefault("MIE_FACE_LANDMARKER", str(REPO.parent / "shared" / "assets" / "face_landmarker.task"))
    rows = []
    for seconds in args.seconds:
        video = make_video(seconds)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(video), "--threads", str(args.threads)],
            capture_output=True, text=True, check=True, cwd=REPO,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        figures["ratio_to_decode"] = round(figures["frames_per_s"] / figures["decode_frames_per_s"], 3)
        figures["x_real_time"] = round(figures["frames_per_s"] / 30.0, 2)
        rows.append((seconds, figures))
        print(f"video_s={seconds:g} " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    if len(rows) > 1:
        (s0, a), (s1, b) = rows[0], rows[-1]
        print(f"peak_rss_ratio_{s1:g}s_vs_{s0:g}s={b['peak_rss_mb'] / a['peak_rss_mb']:.3f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
