"""Seconds per LOSO fold (stage 1, features, stage 2) for the fast and paper presets.

The data is shaped like the MEGC 2019 composite: 442 clips of 68 subjects, clip lengths drawn
like the real databases' onset..offset spans (SMIC 100 fps: 11-58 frames; CASME II and SAMM
200 fps: 25-140 and 30-130 frames), crops at each preset's size. The pixels are random: the
timings do not depend on them. One fold trains on every subject but one.

The fast preset's fold is run in full. The paper preset's stage 1 (100 epochs over every
frame) and stage 2 (60 epochs) would take hours here, so they are timed on a measured slice
and scaled: stage 1 by the frames of one epoch over the frames timed, times 100 epochs;
stage 2 by one full epoch, times 60. Extrapolated figures are marked.

Last line: `fold_s_fast=<x> fold_s_paper=<y>`.

Usage: python bench/train.py [--threads N] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from modeling_mie import MieConfig, MieForVideoClassification
from modeling_mie.training import (
    TRAINING_PRESETS,
    ClipTensors,
    extract_features,
    stage1_frame_indices,
    train_stage1_cnn,
    train_stage2_temporal,
)

# (database, subjects, clips, lowest and highest onset..offset length in frames)
COMPOSITE_SHAPE = [("smic", 16, 164, 11, 58), ("casme2", 24, 145, 25, 140), ("samm", 28, 133, 30, 130)]


def composite_like_clips(config: MieConfig, seed: int) -> list[ClipTensors]:
    rng = np.random.default_rng(seed)
    h, w = config.crop_size
    clips = []
    for database, subjects, count, low, high in COMPOSITE_SHAPE:
        owners = np.sort(rng.integers(0, subjects, size=count))
        for i, owner in enumerate(owners):
            length = int(rng.integers(low, high + 1))
            crops = torch.from_numpy(
                rng.integers(0, 256, size=(length, config.num_regions, config.num_channels, h, w), dtype=np.uint8)
            )
            label = int(rng.integers(0, 3))
            clips.append(
                ClipTensors(
                    crops, label, config.region_labels(label), f"{database}/{owner}", database,
                    f"{database}_{i}", str(owner), onset=0, apex=length // 2, offset=length - 1,
                )
            )
    return clips


def time_fold(preset: str, seed: int) -> dict:
    config = MieConfig.from_preset(preset)
    schedule = TRAINING_PRESETS[preset]
    clips = composite_like_clips(config, seed)
    held_out = clips[0].subject
    train = [c for c in clips if c.subject != held_out]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = MieForVideoClassification(config)
    epoch_frames = sum(len(stage1_frame_indices(c, schedule)) for c in train)
    result = {"preset": preset, "train_clips": len(train), "stage1_frames_per_epoch": epoch_frames}

    if preset == "fast":
        report = train_stage1_cnn(model, train, schedule, generator)
        result["stage1_s"] = report.seconds
        start = time.perf_counter()
        features = extract_features(model, clips, schedule.num_frames)
        result["features_s"] = time.perf_counter() - start
        report = train_stage2_temporal(model, features[1:], train, schedule, generator)
        result["stage2_s"] = report.seconds
        result["extrapolated"] = False
    else:
        # stage 1: one epoch over a slice of clips, scaled to every frame and 100 epochs
        slice_clips, frames = [], 0
        for clip in train:
            slice_clips.append(clip)
            frames += len(stage1_frame_indices(clip, schedule))
            if frames >= 1024:
                break
        report = train_stage1_cnn(model, slice_clips, schedule.updated(stage1_epochs=1), generator)
        result["stage1_s"] = report.seconds * epoch_frames / frames * schedule.stage1_epochs
        start = time.perf_counter()
        features = extract_features(model, clips, schedule.num_frames)
        result["features_s"] = time.perf_counter() - start
        train_features = [f for f, c in zip(features, clips) if c.subject != held_out]
        report = train_stage2_temporal(model, train_features, train, schedule.updated(stage2_epochs=1), generator)
        result["stage2_s"] = report.seconds * schedule.stage2_epochs
        result["extrapolated"] = True
    result["fold_s"] = result["stage1_s"] + result["features_s"] + result["stage2_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"composite-shaped data: 442 clips, 68 subjects; {torch.get_num_threads()} threads")
    results = {}
    for preset in ("fast", "paper"):
        r = time_fold(preset, args.seed)
        results[preset] = r
        mark = " (stage 1 and stage 2 extrapolated from a measured slice)" if r["extrapolated"] else ""
        print(
            f"{preset:5s}: stage1 {r['stage1_s']:8.1f} s  features {r['features_s']:6.1f} s  "
            f"stage2 {r['stage2_s']:7.1f} s  fold {r['fold_s']:8.1f} s  "
            f"({r['train_clips']} training clips, {r['stage1_frames_per_epoch']} stage-1 frames/epoch){mark}"
        )
    fast = results["fast"]["fold_s"]
    print(f"68 folds, fast preset: {68 * fast / 3600:.2f} h in one process")
    print(f"fold_s_fast={fast:.1f} fold_s_paper={results['paper']['fold_s']:.1f}")


if __name__ == "__main__":
    main()
