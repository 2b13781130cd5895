"""Benchmark: clips per second through the preprocessed region-crop cache build (2 processes).

Writes a CASME II-like tree in the real layout (`CASME2_RAW_selected/subNN/EPxx_yyf/imgN.jpg` and
the coding workbook) of realistic clips: 640 x 480 colour JPG frames of NASA's public-domain
astronaut portrait (face about 250 px wide, brows to chin), drifting by a pixel or two between frames
so that MediaPipe really landmarks a face. Loads it with `load_casme2`, then times
`build_region_cache(..., num_proc=2)` from an empty cache (worker start-up included: that is
what a user waits for), and once more on the finished cache (the resume / no-op path).
Prints a line per phase and, last, `clips_per_s=<x>`.

Usage: python bench/data.py [--clips 32] [--frames 60] [--num-proc 2] [--preset paper|fast] [--start-method forkserver|spawn|fork]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fixture-tree writers of the loader tests
os.environ.setdefault("MIE_FACE_LANDMARKER", str(REPO.parent / "shared" / "assets" / "face_landmarker.task"))


def write_tree(root: Path, clips: int, frames: int) -> Path:
    import fixtures_datasets as fx

    specs = []
    for i in range(clips):
        subject, episode = 1 + i % 8, 1 + i // 8
        start = 40 + 7 * i
        emotion = ("disgust", "happiness", "surprise", "repression")[i % 4]
        specs.append(
            fx.Clip(subject, f"EP{episode:02d}_{i:02d}f", range(start, start + frames), emotion, start, start + frames // 2, start + frames - 1, "4+L10")
        )
    fx.write_casme2(root, specs, image=fx.face_frames(640, 480, face_height=440))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (CASME II clips average about 67)")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--preset", choices=("paper", "fast"), default="paper")
    parser.add_argument("--start-method", default=None, help="multiprocessing start method of the workers (default: the cache's)")
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from modeling_mie import MieConfig, MieProcessor, load_casme2
    from modeling_mie.cache import build_region_cache

    work = args.keep or Path(tempfile.mkdtemp(prefix="mie-bench-data-"))
    try:
        started = time.perf_counter()
        write_tree(work / "CASME2", args.clips, args.frames)
        print(f"tree: {args.clips} clips x {args.frames} frames of 640x480 JPG written in {time.perf_counter() - started:.1f} s")
        dataset = load_casme2(work / "CASME2", cache_dir=work / "hf")
        processor = MieProcessor.from_config(MieConfig.from_preset(args.preset))
        cache_dir = work / "regions"

        started = time.perf_counter()
        extra = {"start_method": args.start_method} if args.start_method else {}
        cached = build_region_cache(dataset, processor, cache_dir, num_proc=args.num_proc, progress=False, **extra)
        build_s = time.perf_counter() - started
        assert len(cached) == args.clips and not cached.failed_clips, cached.failed_clips
        shape = cached[0]["pixel_values"].shape
        print(
            f"build: {args.clips} clips ({args.clips * args.frames} frames) with num_proc={args.num_proc} in "
            f"{build_s:.2f} s -> {args.clips / build_s:.2f} clips/s, {args.clips * args.frames / build_s:.0f} frames/s; "
            f"pixel_values per clip {shape} uint8"
        )
        started = time.perf_counter()
        build_region_cache(dataset, processor, cache_dir, num_proc=args.num_proc, progress=False)
        print(f"reopen (all clips cached, nothing cropped): {time.perf_counter() - started:.2f} s")
        print(f"clips_per_s={args.clips / build_s:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
