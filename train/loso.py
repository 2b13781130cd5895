"""Leave-one-subject-out training and MEGC 2019 evaluation of the region CNN + LSTM, and a Hub-ready model.

    python train/loso.py --dataset casme2=/data/CASME2 --dataset samm=/data/SAMM \\
        --dataset smic=/data/SMIC --megc2019 --output-dir runs/megc2019 [--preset fast|paper]
        [--folds casme2/sub01 ...] [--workers N | --ray ADDRESS] [--resume] [--seed N]
        [--device auto|cpu|cuda[:N]] [--precision auto|fp32|tf32|bf16] [--compile [reduce-overhead]]
        [--stack-folds auto|K] [--cnn-kernels auto|cudnn|triton]
        [--push-to-hub ORG/NAME]

    python train/loso.py --dataset synthetic=data/synthetic --output-dir runs/synthetic

    python train/loso.py --method lbptop|biwoof|offapexnet|ststnet|dual_inception ... [--report-leakage]
        [--seeds 0 1 2]

`--method` runs one of the seed paper's compared methods (`modeling_mie.baselines`) instead of the
project's model (aouayeb), over the same loaders, cache and folds. `--report-leakage` keeps each
fold's per-epoch predictions of its held-out clips, only to report what a best-epoch-per-subject
protocol would have claimed. `--seeds 0 1 2` runs one LOSO per seed (in OUTPUT/seed-N) and writes
mean +- std over seeds and 95 % bootstrap intervals over subjects in OUTPUT/results.md|json.

One fold per subject: both stages (region CNNs on single frames with region labels, then the
region LSTMs and the fusion on the frozen CNN features) are fit on the other subjects only, and
the held-out subject's clips are predicted once at the end. UF1 and UAR are computed on the
predictions pooled over all folds, for the whole set and each database. Then one model is
trained on every subject and written as a Hub-ready folder (weights, config, processor, code,
model card with the LOSO figures). Killing the run loses at most the folds in progress:
`--resume` continues it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

# The command runs from a checkout without installation too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_mie.baselines.methods import METHODS, SVM_METHODS
from modeling_mie.errors import MieInputError
from modeling_mie.files import write_json_atomically

METHOD_NAMES = ("aouayeb", *METHODS)  # the project's model, then the compared methods

SCHEDULE_HELP = {
    "stage1_epochs": "epochs of stage 1 (region CNNs)",
    "stage1_batch_size": "frames per stage-1 batch",
    "stage1_lr": "stage-1 Adam learning rate",
    "stage1_frames": "frames per clip for stage 1, around the apex (0: every frame)",
    "stage1_window": "half-width in frames of the stage-1 window around the apex",
    "stage1_neutral_onset": "also train stage 1 on each onset frame labelled 'not me' (true/false)",
    "stage2_epochs": "epochs of stage 2 (region LSTMs + fusion)",
    "stage2_batch_size": "clips per stage-2 batch",
    "stage2_lr": "stage-2 Adam learning rate",
    "num_frames": "frames per clip for stage 2 and prediction, evenly spaced (0: every frame)",
    "finetune_epochs": "epochs of an optional end-to-end fine-tune after stage 2 (0: none)",
    "finetune_lr": "fine-tune Adam learning rate",
    "weight_decay": "Adam weight decay in every stage",
}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv=None) -> argparse.Namespace:
    from modeling_mie.configuration_mie import PRESETS
    from modeling_mie.devices import CNN_KERNELS
    from modeling_mie.training import COMPILE_MODES, TrainingSchedule

    parser = argparse.ArgumentParser(
        prog="python train/loso.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH", required=True,
                      help="a database root: casme2=, samm=, smic= (repeat), or synthetic= (a folder made by "
                      "python -m modeling_mie.synthetic)")
    data.add_argument("--megc2019", action="store_true",
                      help="use the official MEGC 2019 composite list (442 clips) instead of each workbook's labels")
    data.add_argument("--cache-dir", type=Path, default=None,
                      help="region-crop cache (default: $XDG_CACHE_HOME/mie/regions); shared between runs")
    data.add_argument("--max-frames", type=int, default=None,
                      help="store at most this many frames per clip in the cache (default: every frame)")
    data.add_argument("--no-action-units", action="store_true",
                      help="stage-1 region labels from the config's region table only, not the clips' own AUs")

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", type=Path, required=True, help="where folds, results and the model go")
    run.add_argument("--preset", choices=sorted(PRESETS), default="fast",
                     help="model sizes and training schedule: fast (CPU) or paper (the paper's); for the CNN "
                     "baselines, paper runs their papers' schedules and any other value the CPU ones")
    run.add_argument("--folds", nargs="+", default=None, metavar="SUBJECT",
                     help="run only these folds (subject keys such as casme2/sub01 or samm/006)")
    run.add_argument("--workers", type=int, default=1, help="folds run in parallel in local processes")
    run.add_argument("--threads", type=int, default=None, help="torch threads per fold (default: cores / workers)")
    run.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                     help="where folds train: auto (default) takes CUDA when PyTorch sees a GPU, else the CPU; "
                     "with --workers, folds share the GPU (or spread over the GPUs with plain 'cuda')")
    run.add_argument("--precision", default="auto", metavar="auto|fp32|tf32|bf16",
                     help="auto (default): bf16 autocast of the region CNNs on a GPU that has it, fp32 elsewhere; "
                     "fp32 is plain float32 (TF32 off on CUDA); see docs/training.md, Devices and precision")
    run.add_argument("--compile", nargs="?", const="default", default="off", choices=COMPILE_MODES,
                     help="compile stage 1's training steps with torch.compile (off by default; 'reduce-overhead' also "
                     "replays them as CUDA graphs); each fold process compiles once (tens of seconds), results differ "
                     "from eager ones in rounding only; see docs/training.md, Devices and precision")
    run.add_argument("--cnn-kernels", default="auto", choices=CNN_KERNELS,
                     help="what runs the region CNN's convolutions on CUDA: auto (default: the project's choice for "
                     "CUDA, devices.CUDA_CONV_KERNEL), cudnn (cuDNN's convolutions and PyTorch's pooling), or triton "
                     "(fused Triton kernels for conv1, conv2 and the inception block; CUDA only); results differ in "
                     "rounding only; see docs/training.md, Fused layers")
    run.add_argument("--stack-folds", default="auto", metavar="auto|K",
                     help="train stage 1 of K folds at once as one stacked model: each fold trains as it would alone, "
                     "in fewer, larger steps, for GPUs that one fold's small steps leave idle; results equal to "
                     "rounding. auto (default): groups of up to 17 on CUDA (68 folds: 4 of 17), 1 (fold by fold) on "
                     "the CPU and for the compared methods; see docs/training.md, Several folds in one model")
    run.add_argument("--ray", metavar="ADDRESS", default=None,
                     help="run folds on a Ray cluster (ADDRESS, or 'local' to start one here); needs modeling_mie[ray] "
                     "and a file system shared by all nodes for --output-dir and --cache-dir")
    run.add_argument("--resume", action="store_true", help="continue a run in --output-dir, skipping finished folds")
    run.add_argument("--seed", type=int, default=0, help="seed of every random choice (results are repeatable on CPU)")
    run.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                     help="one LOSO run per seed in OUTPUT/seed-N, then mean +- std and bootstrap intervals over "
                     "them in OUTPUT/results.md (the final model, if any, is trained with the first seed)")
    run.add_argument("--method", default="aouayeb", choices=METHOD_NAMES,
                     help="aouayeb (default): the project's region CNN + LSTM; or a compared method of the seed "
                     "paper's Table 2, see docs/baselines.md (--preset paper gives the CNNs their papers' schedules; the "
                     "schedule and model flags apply to aouayeb only)")
    run.add_argument("--report-leakage", action="store_true",
                     help="keep every fold's per-epoch predictions of its held-out clips and report the score a "
                     "best-epoch-per-subject protocol would have claimed beside the honest one (never used to choose)")
    run.add_argument("--final", dest="final", action="store_true", default=True,
                     help="after the folds, train one model on every subject and write a Hub-ready folder (default)")
    run.add_argument("--no-final", dest="final", action="store_false", help="skip the final model")
    run.add_argument("--push-to-hub", metavar="ORG/NAME", default=None, help="upload the final model folder to the Hub")
    run.add_argument("--hub-token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    run.add_argument("--private", action="store_true", help="create the Hub repository as private")

    sched = parser.add_argument_group("training schedule (defaults from --preset)")
    for f in fields(TrainingSchedule):
        kind = _bool if f.type in ("bool", bool) else (float if f.type in ("float", float) else int)
        sched.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None,
                           help=SCHEDULE_HELP.get(f.name, f.name))
    model = parser.add_argument_group("model (defaults from --preset)")
    model.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any MieConfig field, VALUE as JSON (e.g. --set crop_scale=0.75 "
                       "--set num_channels=3 --set focal_gamma=1)")
    args = parser.parse_args(argv)
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds: give each seed once")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.ray and args.workers > 1:
        parser.error("--ray and --workers are alternatives: Ray places the folds itself")
    if args.stack_folds != "auto":
        try:
            args.stack_folds = int(args.stack_folds)
        except ValueError:
            parser.error(f"--stack-folds {args.stack_folds}: give auto or a whole number of folds (1 trains fold by fold)")
        if args.stack_folds < 1:
            parser.error("--stack-folds must be >= 1 (1 trains fold by fold), or auto")
    if args.stack_folds not in ("auto", 1) and args.method != "aouayeb":
        parser.error(f"--stack-folds is for the project's model; --method {args.method} trains its folds one by one")
    return args


def build_config(args):
    from modeling_mie import MieConfig

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise MieInputError(f"--set takes KEY=VALUE, got {item!r}.")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    try:
        return MieConfig.from_preset(args.preset, **overrides)
    except (ValueError, TypeError) as err:
        raise MieInputError(f"--set: {err}") from err


def build_schedule(args):
    from modeling_mie.training import TRAINING_PRESETS, TrainingSchedule

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainingSchedule)}
    return TRAINING_PRESETS[args.preset].updated(**overrides)


def main(args) -> int:
    from modeling_mie.devices import check_cnn_kernels, describe_device, resolve_device, resolve_precision
    from modeling_mie.landmarks import user_cache_dir
    from modeling_mie.loso import parse_dataset_specs, prepare_data
    from modeling_mie.stacked import auto_stack_folds

    start = time.time()
    output_dir = args.output_dir.expanduser().resolve()
    # checked first: a wrong --device is a one-line error before any data is read
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    check_cnn_kernels(args.cnn_kernels, device)
    if args.method != "aouayeb":
        # the compared CNNs are small and train in float32 wherever they run; the SVMs on the CPU
        if args.precision not in ("auto", "fp32"):
            raise MieInputError(
                f"--precision {args.precision} is for the project's model; --method {args.method} trains in fp32 "
                "(leave --precision out)."
            )
        precision = "fp32"
        if args.cnn_kernels != "auto":
            raise MieInputError(f"--cnn-kernels is for the project's model; --method {args.method} runs its own "
                                "layers (leave --cnn-kernels out).")
        if args.method in SVM_METHODS:
            device = resolve_device("cpu")
    datasets = parse_dataset_specs(args.dataset)
    config = build_config(args)
    schedule = build_schedule(args)
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // args.workers)
    cache_dir = (args.cache_dir or user_cache_dir() / "regions").expanduser()

    seeds_text = f"seeds {' '.join(map(str, args.seeds))}" if args.seeds else f"seed {args.seed}"
    what = f"preset {args.preset}" if args.method == "aouayeb" else f"method {args.method}"
    print(f"mie LOSO | {what} | {seeds_text} | output {output_dir}")
    print(f"  data: {', '.join(f'{k}={v}' for k, v in datasets.items())}{' (MEGC 2019 list)' if args.megc2019 else ''}")
    print(f"  cropping regions into the cache {cache_dir} (done once per geometry) ...")
    data = prepare_data(datasets, args.megc2019, config, cache_dir, num_proc=max(args.workers, 1), max_frames=args.max_frames)
    subjects = data.subjects
    folds = subjects
    if args.folds:
        unknown = sorted(set(args.folds) - set(subjects))
        if unknown:
            raise MieInputError(
                f"--folds {' '.join(unknown)}: no such subject in the data. Subjects are keys such as "
                f"{', '.join(subjects[:4])} ..."
            )
        folds = [s for s in subjects if s in set(args.folds)]
    if args.stack_folds == "auto":
        args.stack_folds = auto_stack_folds(len(folds), device) if args.method == "aouayeb" else 1
    device_text = describe_device(device, precision) + f"; {threads} CPU threads per fold"
    if args.compile != "off":
        device_text += f"; stage 1 compiled ({args.compile})"
    if args.cnn_kernels != "auto" and device.type == "cuda":
        device_text += f"; region CNN on {args.cnn_kernels} kernels"
    if args.stack_folds > 1:
        device_text += f"; stage 1 of {args.stack_folds} folds at once (stacked)"
    if device.type == "cuda" and args.workers > 1:
        device_text += f"; {args.workers} fold processes share {'the GPUs' if str(device) == 'cuda' else str(device)}"
    runner = f"Ray at {args.ray}" if args.ray else f"{args.workers} local process{'es' if args.workers > 1 else ''}"
    print(f"  {data.description}")
    print(f"  {len(data.rows)} clips, {len(subjects)} subjects; {len(folds)} folds on {runner}; device {device_text}")
    for db, counts in data.summary.get("databases", {}).items():
        print(f"    {db}: {counts}")
    if data.missing:
        print(f"  WARNING: {len(data.missing)} listed clips are not on disk (see results.json: missing_clips)")
    if data.failed:
        print(f"  WARNING: {len(data.failed)} clips could not be cropped and are left out (results.json: failed_clips)")
    if args.method == "aouayeb":
        print(f"  schedule: {json.dumps(asdict(schedule))}")

    inputs = None
    if args.method != "aouayeb":
        from modeling_mie.baselines.methods import DESCRIPTIONS, prepare_inputs

        inputs_dir = cache_dir / "baselines"
        print(f"  method {args.method}: {DESCRIPTIONS[args.method]}")
        inputs = prepare_inputs(data.rows, args.method, inputs_dir, workers=args.workers)
        inputs["folder"] = str(inputs_dir)
        print(
            f"  inputs in {inputs_dir} ({inputs['computed']} computed now); apex estimated for "
            f"{inputs['apex_estimated']} clips, moved off the onset for {inputs['apex_moved']}"
        )
    seeds = args.seeds or [args.seed]
    runs = {}
    for i, seed in enumerate(seeds):
        seed_dir = output_dir / f"seed-{seed}" if args.seeds else output_dir
        if args.seeds:
            print(f"\n== seed {seed} ({i + 1} of {len(seeds)}): {seed_dir}")
        runs[seed] = run_seed(
            args, seed, seed_dir, data, config, schedule, folds, threads, device, precision, inputs,
            final=args.final and i == 0 and args.method == "aouayeb",
        )
    if args.seeds:
        from modeling_mie.loso_report import seeds_markdown, seeds_summary

        label_names = [config.id2label[i] for i in range(config.num_labels)]
        summary = seeds_summary(runs, len(label_names))
        summary.update({"method": args.method, "data": data.description, "fold_keys": folds,
                        "runs": {str(s): str(output_dir / f"seed-{s}") for s in seeds}})
        if args.method == "aouayeb":
            summary["preset"] = args.preset
        write_json_atomically(output_dir / "results.json", summary, default=str)
        text = seeds_markdown(summary, title=f"LOSO of {args.method} over seeds {', '.join(map(str, seeds))}")
        (output_dir / "results.md").write_text(f"{text}\nData: {data.description}\n", encoding="utf-8")
        print()
        print(text)
        print(f"results over seeds: {output_dir / 'results.md'}, {output_dir / 'results.json'}")
    print(f"done in {time.time() - start:.0f} s")
    return 0


def run_seed(args, seed, output_dir, data, config, schedule, folds, threads, device, precision, inputs, final) -> list:
    """One LOSO run with one seed in `output_dir` (resumable); returns its fold records."""
    from tqdm.auto import tqdm

    from modeling_mie.devices import describe_device
    from modeling_mie.loso import (
        FoldSpec,
        check_or_write_run,
        collect_results,
        fold_file,
        run_folds,
        run_identity,
        summarise_run,
    )
    from modeling_mie.metrics import format_scores_table

    baseline = args.method != "aouayeb"
    identity = run_identity(
        config, schedule, data.rows, seed, not args.no_action_units, precision, method=args.method,
        report_epochs=args.report_leakage, preset=args.preset,
    )
    check_or_write_run(output_dir, identity, args.resume)
    used = {
        "method": args.method,
        "seed": seed,
        "report_leakage": args.report_leakage,
        "command": [sys.executable, *sys.argv],
        "data": data.description,
    }
    if baseline:
        from modeling_mie.baselines.methods import method_identity

        used["method_settings"] = method_identity(args.method, args.preset)
        used["inputs"] = inputs
        used["device"] = describe_device(device, precision)
    else:
        used.update({
            "model_config": config.to_dict(),
            "schedule": asdict(schedule),
            "preset": args.preset,
            "device": describe_device(device, precision),
            "precision": precision,
            "compile": args.compile,
            "cnn_kernels": args.cnn_kernels,
            "stack_folds": args.stack_folds,
        })
    write_json_atomically(output_dir / "config_used.json", used, default=str)

    todo = [k for k in folds if not fold_file(output_dir, k).is_file()]
    if len(todo) < len(folds):
        print(f"  resuming: {len(folds) - len(todo)} folds already finished")
    fold_schedule = asdict(schedule)
    if baseline:  # a CNN's own schedule; the SVMs have none
        fold_schedule = used["method_settings"].get("schedule", {})
    specs = [
        FoldSpec(
            key=k, output_dir=str(output_dir), cache_path=inputs["folder"] if baseline else data.cache_path,
            rows=data.rows, config=config.to_dict(), schedule=fold_schedule, seed=seed, threads=threads,
            use_action_units=not args.no_action_units, show_progress=args.workers == 1 and not args.ray and not baseline,
            device=str(device), precision=precision, report_epochs=args.report_leakage,
            method=args.method, compile="off" if baseline else args.compile, cnn_kernels=args.cnn_kernels,
        )
        for k in todo
    ]
    bar = tqdm(total=len(folds), initial=len(folds) - len(todo), desc="folds", unit="fold")

    def on_done(result):
        acc = sum(p["label"] == p["prediction"] for p in result["predictions"]) / result["test_clips"]
        bar.set_postfix_str(f"{result['fold']}: {acc:.2f} acc, {result['seconds']['total']:.0f} s")
        bar.update(1)

    try:
        run_folds(specs, workers=args.workers, ray_address=args.ray, on_done=on_done, stack=args.stack_folds)
    finally:
        bar.close()

    results = collect_results(output_dir, folds)
    extra = {
        "method": args.method,
        "data": data.description,
        "seed": seed,
        "summary": data.summary,
        "missing_clips": data.missing,
        "failed_clips": data.failed,
        "fold_keys": folds,
    }
    if baseline:
        from modeling_mie.baselines.methods import DESCRIPTIONS

        extra.update({"method_description": DESCRIPTIONS[args.method], "inputs": inputs,
                      "method_settings": used["method_settings"]})
    else:
        extra.update({"preset": args.preset, "device": describe_device(device, precision), "precision": precision,
                      "schedule": asdict(schedule)})
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    summary = summarise_run(output_dir, results, label_names, extra)
    print()
    print(format_scores_table(summary["scores"], title=f"LOSO of {args.method}, {len(results)} folds, {summary['clips']} clips"))
    cal = summary.get("calibration")
    if cal:
        print(f"calibration: ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} with temperature scaling (T {cal['temperature']:.3f})")
    leak = summary.get("leakage")
    if leak:
        gap = leak["gap"]["full"]
        print(
            f"leakage: best epoch per subject would claim UF1 {leak['scores']['full']['uf1']:.4f} "
            f"({gap['uf1']:+.4f}), UAR {leak['scores']['full']['uar']:.4f} ({gap['uar']:+.4f})"
        )
    print(f"results: {output_dir / 'results.md'}, {output_dir / 'results.json'}, {output_dir / 'predictions.log'}")

    if final:
        model_dir = train_final_model(args, config, schedule, data, summary, output_dir, threads, device, precision)
        print(f"final model: {model_dir}")
        if args.push_to_hub:
            from modeling_mie.hub import push_folder_to_hub

            url = push_folder_to_hub(model_dir, args.push_to_hub, token=args.hub_token, private=args.private)
            print(f"pushed to the Hub: {url}")
    return results


def train_final_model(args, config, schedule, data, summary, output_dir: Path, threads: int, device, precision) -> Path:
    """One model on every subject: the published checkpoint (the LOSO figures describe how the
    method generalises to new people; this model is trained with the same settings on all)."""
    import torch

    from modeling_mie.devices import cnn_kernels
    from modeling_mie.hub import render_model_card, validate_model_folder
    from modeling_mie.loso import MODEL_DIR, load_clip_tensors, trained_motion_peak
    from modeling_mie.processing_mie import MieProcessor
    from modeling_mie.training import fold_seed, train_model

    model_dir = output_dir / MODEL_DIR
    if args.resume and (model_dir / "model.safetensors").is_file() and (model_dir / "README.md").is_file():
        print("  final model already trained (resume)")
        return model_dir
    torch.set_num_threads(threads)
    clips = load_clip_tensors(data.cache_path, data.rows, config, not args.no_action_units)
    print(f"  training the final model on all {len(clips)} clips of {len(data.subjects)} subjects ...")
    with cnn_kernels(args.cnn_kernels):
        outcome = train_model(config, clips, schedule, fold_seed(args.seed, "final"), device=device,
                              precision=precision, compile=args.compile)
    # calibrated confidence: the temperature fitted on the run's out-of-fold predictions
    outcome.model.config.temperature = round(float(summary["calibration"]["temperature"]), 4)
    # how far the training clips moved (flow models): the app's "large movement" check compares with it
    outcome.model.config.trained_motion_peak = trained_motion_peak(data.rows)
    tmp_dir = output_dir / f".{MODEL_DIR}.partial"
    if tmp_dir.exists():
        import shutil

        shutil.rmtree(tmp_dir)
    outcome.model.save_pretrained(tmp_dir)
    # the processor asks for frames the way training chose them (evenly spaced, num_frames)
    sampling = {"frame_sampling": "uniform", "num_frames": schedule.num_frames} if schedule.num_frames > 0 else {}
    MieProcessor.from_config(outcome.model.config, **sampling).save_pretrained(tmp_dir)
    model_id = args.push_to_hub or str(model_dir)  # what `from_pretrained` takes in the card's snippets
    card = render_model_card(
        summary["scores"],
        model_id=model_id,
        data_description=data.description,
        protocol=(
            f"Leave-one-subject-out over {len(data.subjects)} subjects: both stages fit on the other subjects only; "
            "UF1 and UAR on the predictions pooled over all folds (MEGC 2019). Command: `"
            + " ".join(["python", "train/loso.py", *sys.argv[1:]])
            + "`."
        ),
        preset=args.preset,
        config=outcome.model.config,
        training=asdict(schedule),
        limitations=_limitations(data, outcome.model.config),
        synthetic=data.synthetic,
        calibration=summary.get("calibration"),
    )
    (tmp_dir / "README.md").write_text(card, encoding="utf-8")
    problems = validate_model_folder(tmp_dir)
    if problems:
        raise MieInputError("The final model folder is incomplete: " + "; ".join(problems))
    if model_dir.exists():
        import shutil

        shutil.rmtree(model_dir)
    os.replace(tmp_dir, model_dir)
    return model_dir


def _limitations(data, config) -> str:
    if config.align:
        boxes = (
            "The model sees six boxes fixed on the first usable frame, cut from every frame after aligning it onto "
            "that one (rotation, shift and scale in the image plane); a head turned beyond "
            f"{config.max_head_turn:g} degrees is not read, and a hand over the mouth or a cheek that leaves the eye "
            "corners and nose bridge visible is not detected. "
        )
    else:
        boxes = (
            "The model sees six fixed boxes from landmarks found on the first usable frame, cut from unaligned "
            "frames: large head movement during a clip moves the face out of its boxes. "
        )
    text = (
        "Micro-expression databases are small (hundreds of clips from a few dozen people, mostly young adults "
        "filmed in a lab under controlled light) and posed against a neutral baseline; expect lower accuracy on "
        "other people, cameras, lighting and spontaneous behaviour. " + boxes
        + "Three classes only (negative, positive, surprise)."
    )
    if data.missing:
        text += f" {len(data.missing)} clips of the list were missing on disk and are not in the evaluation."
    return text


def cli(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main(args)
    except MieInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished folds are kept in {args.output_dir}; run the same command with --resume to continue.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(cli())
