"""Seconds per LOSO fold (stage 1, features, stage 2) for the fast and paper presets.

The data is shaped like the MEGC 2019 composite: 442 clips of 68 subjects, clip lengths drawn
like the real databases' onset..offset spans (SMIC 100 fps: 11-58 frames; CASME II and SAMM
200 fps: 25-140 and 30-130 frames), crops at each preset's size. The pixels are random: the
timings do not depend on them. One fold trains on every subject but one.

The fast preset's fold is run in full. The paper preset's stage 1 (100 epochs over every
frame) and stage 2 (60 epochs) would take hours here, so they are timed on a measured slice
and scaled: stage 1 by the frames of one epoch over the frames timed, times 100 epochs;
stage 2 by one full epoch, times 60. Extrapolated figures are marked.

On a GPU (`--device cuda`, with `--precision auto|fp32|tf32|bf16`) the same fold runs there the
way `train/loso.py --device cuda` runs it. `--epochs N` times N full epochs of each stage (every
training frame, every clip) and scales them to the schedule: the first epoch (cuDNN's choice of
kernels, caches warming) once, the median of the others for the rest. `--full` runs the whole
schedule with no extrapolation. Seconds per epoch are printed with each figure.

`--compile [reduce-overhead]` compiles stage 1's steps as `train/loso.py --compile` does; the first
epoch then includes the compilation, printed apart (first epoch minus the median of the others).
`--stack-folds K` (with `--epochs N` or `--full`) trains stage 1 of the first K subjects' folds at once
as `train/loso.py --stack-folds K` does, then extracts all K folds' features in one stacked pass, and
shares both times out over them; stage 2 is the first fold's. `--no-cuda-tuning` runs stage 1 on CUDA without the fused Adam
(`training.CUDA_TUNING`), the path before it, to measure what it gives. `--conv-kernel triton` runs the
region CNN's conv1 and conv2, each with its pooling and ReLU, on CUDA as Triton kernels
(`modeling_mie.fused_conv`) instead of cuDNN's convolutions and PyTorch's pooling and ReLU; `--merged-inception` runs the four inception
branches on CUDA as one zero-padded 7x7 convolution (`MieRegionCNN.merged_inception`); `--inception-kernel
triton` runs the inception block with its ReLU and mean as the tensor-core kernels of
`modeling_mie.fused_inception`.

Last line: `fold_s_fast=<x> fold_s_paper=<y>` (only the presets that ran), then, where epochs were
timed, `stage1_epoch_s_<preset>=<median seconds per stage-1 epoch>`.

Usage: python bench/train.py [--threads N] [--seed 0] [--device cpu|cuda[:N]] [--precision auto|fp32|tf32|bf16]
       [--presets fast paper] [--epochs N | --full] [--compile [reduce-overhead]] [--stack-folds K]
       [--no-cuda-tuning] [--conv-kernel cudnn|triton] [--merged-inception]
       [--inception-kernel cudnn|triton]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

# runs from a checkout without installation too (the GPU check runs it that way)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_mie import MieConfig, MieForVideoClassification, devices, training  # noqa: E402
from modeling_mie.devices import (  # noqa: E402
    describe_device,
    float32_mode,
    prepare_model,
    resolve_device,
    resolve_precision,
)
from modeling_mie.errors import MieInputError  # noqa: E402
from modeling_mie.stacked import stacked_features, start_folds, train_stage1_stacked  # noqa: E402
from modeling_mie.training import (  # noqa: E402
    COMPILE_MODES,
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


class EpochClock:
    """Progress callback that notes when each epoch of each stage ended (the stages synchronise
    with the GPU once per epoch, so the times hold there too)."""

    def __init__(self):
        self.ends: dict[str, list[float]] = {}
        self.starts: dict[str, float] = {}

    def start(self, stage: str) -> None:
        self.starts[stage] = time.perf_counter()
        self.ends[stage] = []

    def __call__(self, stage: str, step: int, total: int, info: dict) -> None:
        self.ends[stage].append(time.perf_counter())

    def epochs(self, stage: str) -> list[float]:
        times = [self.starts[stage], *self.ends[stage]]
        return [b - a for a, b in zip(times, times[1:])]


def scaled(epoch_seconds: list[float], epochs: int) -> float:
    """Seconds of `epochs` epochs from measured ones: the first once, the median of the rest after."""
    first, rest = epoch_seconds[0], epoch_seconds[1:] or epoch_seconds[:1]
    return first + (epochs - 1) * float(np.median(rest))


def time_fold(preset: str, seed: int, device=None, precision: str = "fp32", epochs: int | None = None,
              full: bool = False, compile: str = "off", stack: int = 1) -> dict:
    device = device or torch.device("cpu")
    config = MieConfig.from_preset(preset)
    schedule = TRAINING_PRESETS[preset]
    clips = composite_like_clips(config, seed)
    if stack > 1:
        return _time_stacked(preset, config, schedule, clips, seed, device, precision, epochs, full, compile, stack)
    held_out = clips[0].subject
    train = [c for c in clips if c.subject != held_out]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = prepare_model(MieForVideoClassification(config), device)
    epoch_frames = sum(len(stage1_frame_indices(c, schedule)) for c in train)
    result = {"preset": preset, "train_clips": len(train), "stage1_frames_per_epoch": epoch_frames, "compile": compile}
    with float32_mode(device, precision):
        if full or (preset == "fast" and epochs is None):
            _run_stages(result, model, clips, train, schedule, generator, precision, compile)
            result["extrapolated"] = False
        elif epochs is not None:
            run = schedule.updated(stage1_epochs=min(epochs, schedule.stage1_epochs),
                                   stage2_epochs=min(epochs, schedule.stage2_epochs))
            clock = _run_stages(result, model, clips, train, run, generator, precision, compile)
            result["stage1_s"] = scaled(clock.epochs("stage1_cnn"), schedule.stage1_epochs)
            result["stage2_s"] = scaled(clock.epochs("stage2_temporal"), schedule.stage2_epochs)
            result["extrapolated"] = run.stage1_epochs < schedule.stage1_epochs or run.stage2_epochs < schedule.stage2_epochs
        else:
            _time_paper_slice(result, model, clips, train, schedule, generator, epoch_frames, held_out, precision,
                              compile)
    result["fold_s"] = result["stage1_s"] + result["features_s"] + result["stage2_s"]
    return result


def _time_stacked(preset, config, schedule, clips, seed, device, precision, epochs, full, compile, stack) -> dict:
    """Stage 1 of the first `stack` subjects' folds at once (`train/loso.py --stack-folds`), their
    features in one stacked pass, then stage 2 of the first fold: seconds per fold, stage 1 and
    features shared out over the group (timed by epochs: `main` asks for --epochs or --full)."""
    subjects = list(dict.fromkeys(c.subject for c in clips))[:stack]
    trains = [[c for c in clips if c.subject != s] for s in subjects]
    models, generators, dropout = start_folds(config, [(t, seed + i) for i, t in enumerate(trains)], device)
    run = schedule if full else schedule.updated(stage1_epochs=min(epochs, schedule.stage1_epochs),
                                                 stage2_epochs=min(epochs, schedule.stage2_epochs))
    result = {"preset": preset, "train_clips": len(trains[0]), "compile": compile, "stacked": len(trains),
              "stage1_frames_per_epoch": sum(len(stage1_frame_indices(c, schedule)) for c in trains[0])}
    clock = EpochClock()
    with float32_mode(device, precision):
        clock.start("stage1_cnn")
        report = train_stage1_stacked(models, trains, run, generators, dropout, clock, precision, compile)[0]
        result["stage1_epoch_s"] = clock.epochs("stage1_cnn")  # of the whole group
        group = report.seconds if full else scaled(result["stage1_epoch_s"], schedule.stage1_epochs)
        result["stage1_s"] = group / len(trains)
        # every fold's features of every clip (its training and test clips), in one stacked pass
        start = time.perf_counter()
        features = stacked_features(models, [clips] * len(models), schedule.num_frames, precision)
        result["features_s"] = (time.perf_counter() - start) / len(trains)
        del models[1:], features[1:]
        _time_stage2(result, clock, models[0], features[0], clips, trains[0], run, generators[0], subjects[0])
    if not full:
        result["stage2_s"] = scaled(result["stage2_epoch_s"], schedule.stage2_epochs)
    result["extrapolated"] = not full
    result["fold_s"] = result["stage1_s"] + result["features_s"] + result["stage2_s"]
    return result


def _run_stages(result, model, clips, train, schedule, generator, precision, compile="off") -> EpochClock:
    """Both stages as a fold runs them, timed per epoch; fills stage1_s, features_s, stage2_s."""
    clock = EpochClock()
    clock.start("stage1_cnn")
    report = train_stage1_cnn(model, train, schedule, generator, clock, precision=precision, compile=compile)
    result["stage1_s"] = report.seconds
    result["stage1_epoch_s"] = clock.epochs("stage1_cnn")
    _after_stage1(result, clock, model, clips, train, schedule, generator, precision, clips[0].subject)
    return clock


def _after_stage1(result, clock, model, clips, train, schedule, generator, precision, held_out) -> None:
    """Features of every clip and stage 2 on the training clips, timed; fills features_s, stage2_s."""
    start = time.perf_counter()
    features = extract_features(model, clips, schedule.num_frames, precision=precision)
    result["features_s"] = time.perf_counter() - start
    _time_stage2(result, clock, model, features, clips, train, schedule, generator, held_out)


def _time_stage2(result, clock, model, features, clips, train, schedule, generator, held_out) -> None:
    """Stage 2 on the training clips' features (`features`: every clip's), timed per epoch; fills stage2_s."""
    train_features = [f for f, c in zip(features, clips) if c.subject != held_out]
    clock.start("stage2_temporal")
    report = train_stage2_temporal(model, train_features, train, schedule, generator, clock)
    result["stage2_s"] = report.seconds
    result["stage2_epoch_s"] = clock.epochs("stage2_temporal")


def _time_paper_slice(result, model, clips, train, schedule, generator, epoch_frames, held_out, precision,
                      compile="off") -> None:
    """The CPU default for the paper preset: too slow to run even one full epoch of stage 1 here."""
    # stage 1: one epoch over a slice of clips, scaled to every frame and 100 epochs
    slice_clips, frames = [], 0
    for clip in train:
        slice_clips.append(clip)
        frames += len(stage1_frame_indices(clip, schedule))
        if frames >= 1024:
            break
    report = train_stage1_cnn(model, slice_clips, schedule.updated(stage1_epochs=1), generator, precision=precision,
                              compile=compile)
    result["stage1_s"] = report.seconds * epoch_frames / frames * schedule.stage1_epochs
    start = time.perf_counter()
    features = extract_features(model, clips, schedule.num_frames, precision=precision)
    result["features_s"] = time.perf_counter() - start
    train_features = [f for f, c in zip(features, clips) if c.subject != held_out]
    report = train_stage2_temporal(model, train_features, train, schedule.updated(stage2_epochs=1), generator)
    result["stage2_s"] = report.seconds * schedule.stage2_epochs
    result["extrapolated"] = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on a GPU that has it, else fp32), fp32, tf32, bf16")
    parser.add_argument("--presets", nargs="+", default=["fast", "paper"], choices=sorted(TRAINING_PRESETS))
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--epochs", type=int, default=None,
                     help="time N full epochs of each stage and scale them to the schedule (quick on a GPU)")
    how.add_argument("--full", action="store_true", help="run every preset's whole schedule, nothing extrapolated")
    parser.add_argument("--compile", nargs="?", const="default", default="off", choices=COMPILE_MODES,
                        help="compile stage 1's steps (train/loso.py --compile); 'reduce-overhead' adds CUDA graphs")
    parser.add_argument("--stack-folds", type=int, default=1, metavar="K",
                        help="stage 1 of K folds at once (train/loso.py --stack-folds); needs --epochs or --full")
    parser.add_argument("--no-cuda-tuning", action="store_true",
                        help="Adam without its fused kernel on CUDA (the path before it)")
    parser.add_argument("--conv-kernel", default=devices.CUDA_CONV_KERNEL, choices=devices.CONV_KERNELS,
                        help="what runs the region CNN's conv1 and conv2 with their pooling on CUDA: cuDNN's "
                        "convolutions + pooling + ReLU, or the fused Triton kernels (modeling_mie.fused_conv)")
    parser.add_argument("--inception-kernel", default=devices.CUDA_INCEPTION_KERNEL, choices=devices.INCEPTION_KERNELS,
                        help="what runs the inception block with its ReLU and mean on CUDA: cuDNN's branches, or the "
                        "fused Triton kernels (modeling_mie.fused_inception)")
    parser.add_argument("--merged-inception", action="store_true",
                        help="the four inception branches as one zero-padded 7x7 convolution on CUDA")
    args = parser.parse_args()
    devices.CUDA_CONV_KERNEL = args.conv_kernel
    devices.CUDA_MERGED_INCEPTION = args.merged_inception
    devices.CUDA_INCEPTION_KERNEL = args.inception_kernel
    if args.no_cuda_tuning:
        training.CUDA_TUNING = False
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.stack_folds < 1:
        parser.error("--stack-folds must be >= 1")
    if args.stack_folds > 1 and args.epochs is None and not args.full:
        parser.error("--stack-folds needs --epochs N or --full (the stacked stage 1 is timed by epochs)")
    try:
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        if device.type == "cuda":
            devices.configure_region_cnn(MieForVideoClassification(MieConfig()).region_cnn, device)  # Triton there?
        elif args.conv_kernel != "cudnn" or args.merged_inception or args.inception_kernel != "cudnn":
            raise MieInputError("--conv-kernel, --inception-kernel triton and --merged-inception apply on CUDA only "
                                "(--device cuda)")
    except MieInputError as err:
        raise SystemExit(f"error: {err}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    how = f"compile {args.compile}" + ("" if training.CUDA_TUNING or device.type != "cuda" else ", no CUDA tuning")
    if device.type == "cuda":
        how += (f"; conv1 and conv2 on {args.conv_kernel}; inception on {args.inception_kernel}"
                + ("; inception merged" if args.merged_inception else ""))
    if args.stack_folds > 1:
        how += f"; stage 1 and features of {args.stack_folds} folds stacked, their time shared out per fold"
    print(f"composite-shaped data: 442 clips, 68 subjects; {torch.get_num_threads()} threads; "
          f"device {describe_device(device, precision)}; {how}; torch {torch.__version__}")
    results = {}
    for preset in args.presets:
        r = time_fold(preset, args.seed, device, precision, args.epochs, args.full, args.compile, args.stack_folds)
        results[preset] = r
        if not r["extrapolated"]:
            mark = ""
        elif "stage1_epoch_s" in r:
            mark = f" (scaled from {len(r['stage1_epoch_s'])} + {len(r['stage2_epoch_s'])} measured epochs)"
        else:
            mark = " (stage 1 and stage 2 extrapolated from a measured slice)"
        print(
            f"{preset:5s}: stage1 {r['stage1_s']:8.1f} s  features {r['features_s']:6.1f} s  "
            f"stage2 {r['stage2_s']:7.1f} s  fold {r['fold_s']:8.1f} s  "
            f"({r['train_clips']} training clips, {r['stage1_frames_per_epoch']} stage-1 frames/epoch){mark}"
        )
        if "stage1_epoch_s" in r:
            per = lambda xs: ", ".join(f"{x:.2f}" for x in xs[:6]) + (" ..." if len(xs) > 6 else "")
            group = f" (all {r['stacked']} stacked folds)" if r.get("stacked") else ""
            print(f"       seconds per epoch: stage1{group} [{per(r['stage1_epoch_s'])}]  stage2 [{per(r['stage2_epoch_s'])}]")
            if len(r["stage1_epoch_s"]) > 1:
                first, median = r["stage1_epoch_s"][0], float(np.median(r["stage1_epoch_s"][1:]))
                r["stage1_epoch_median_s"] = median
                print(f"       stage 1: {median:.3f} s per epoch after the first; the first took {first - median:.1f} s "
                      f"more (compilation, warm-up)")
        if r.get("stacked"):
            print(f"       68 folds: {68 * r['fold_s'] / 3600:.2f} h in one process, stage 1 in groups of {r['stacked']} "
                  f"(the group's first-epoch extra shared out like the rest)")
        elif "stage1_epoch_median_s" in r:
            # the folds of one process share its compiled step and cuDNN's choices: the first epoch's
            # extra seconds are paid once, not per fold
            once = r["stage1_epoch_s"][0] - r["stage1_epoch_median_s"]
            print(f"       68 folds: {68 * r['fold_s'] / 3600:.2f} h in one process if each fold paid the first "
                  f"epoch's extra; {(68 * (r['fold_s'] - once) + once) / 3600:.2f} h if only the first fold does")
        else:
            print(f"       68 folds: {68 * r['fold_s'] / 3600:.2f} h in one process")
    print(" ".join([f"fold_s_{p}={r['fold_s']:.1f}" for p, r in results.items()]
                   + [f"stage1_epoch_s_{p}={r['stage1_epoch_median_s']:.3f}" for p, r in results.items()
                      if "stage1_epoch_median_s" in r]))


if __name__ == "__main__":
    main()
