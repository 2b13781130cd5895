"""Leave-one-subject-out runs: data, folds (local processes or Ray), resumable results, final model."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .configuration_mie import MieConfig
from .errors import MieInputError
from .files import write_atomically, write_json_atomically, write_text_atomically
from .metrics import (
    ClipPrediction,
    confusion_matrix,
    format_scores_table,
    megc_scores,
    per_fold_accuracy,
    write_megc_log,
)
from .training import (
    TRAINING_PRESETS,
    ClipTensors,
    TrainingSchedule,
    fold_seed,
    train_model,
)

logger = logging.getLogger(__name__)

DATASET_NAMES = ("casme2", "samm", "smic", "synthetic")
RUN_FILE = "run.json"
FOLDS_DIR = "folds"
MODEL_DIR = "model"


# ---------------------------------------------------------------------------- data
@dataclass
class LosoData:
    """The clips of a run, cropped, and what they are."""

    rows: list[dict]  # loader rows (labels, subjects, clip ids, stored frame indices)
    cache_path: str  # the region-crop cache folder the crops come from
    description: str  # a sentence for the banner and the model card
    summary: dict  # counts per database and class
    missing: list[dict] = field(default_factory=list)  # listed clips not found on disk
    failed: list[dict] = field(default_factory=list)  # clips the processor could not crop
    synthetic: bool = False

    @property
    def subjects(self) -> list[str]:
        return sorted({r["subject"] for r in self.rows})


def parse_dataset_specs(specs: Sequence[str]) -> dict[str, Path]:
    """`["casme2=/data/CASME2", ...]` -> {"casme2": Path(...)}; clear errors for bad specs."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip().lower()
        if not sep or not path:
            raise MieInputError(f"--dataset takes NAME=PATH (e.g. casme2=/data/CASME2); got {spec!r}.")
        if name not in DATASET_NAMES:
            raise MieInputError(f"Unknown dataset {name!r} in --dataset {spec}; allowed names are {list(DATASET_NAMES)}.")
        if name in out:
            raise MieInputError(f"--dataset {name}= is given twice; give each database once.")
        path = Path(path).expanduser()
        if not path.exists():
            raise MieInputError(f"--dataset {name}={path}: the folder does not exist. Give the root of your copy.")
        out[name] = path
    if not out:
        raise MieInputError("Give at least one --dataset NAME=PATH (casme2, samm, smic or synthetic).")
    if "synthetic" in out and len(out) > 1:
        raise MieInputError("--dataset synthetic=PATH cannot be mixed with real databases; run them separately.")
    return out


def load_rows(datasets: dict[str, Path], megc2019: bool):
    """Loader rows with a 3-class label, a description and missing clips."""
    from . import data as mie_data
    from . import megc2019 as mie_megc2019

    if "synthetic" in datasets:
        root = datasets["synthetic"]
        ground_truth = root / "combined_3class_gt.csv"
        if not ground_truth.is_file():
            raise MieInputError(
                f"{root} is not a synthetic dataset folder (no combined_3class_gt.csv); make one with "
                "`python -m modeling_mie.synthetic --out DIR --profile megc2019`."
            )
        ds = mie_megc2019.load_megc2019(
            casme2=root / "CASME2", samm=root / "SAMM", smic=root / "SMIC", ground_truth=ground_truth
        )
        description = (
            f"synthetic micro-expression clips made by `modeling_mie.synthetic` from two public-domain "
            f"photos, in the SMIC / CASME II / SAMM layouts ({root.name})"
        )
        return ds, description, list(getattr(ds, "missing_clips", [])), True
    if megc2019:
        ds = mie_megc2019.load_megc2019(
            casme2=datasets.get("casme2"), samm=datasets.get("samm"), smic=datasets.get("smic")
        )
        names = " + ".join(n for n in ("smic", "casme2", "samm") if n in datasets)
        description = f"MEGC 2019 composite, official 3-class list ({names})"
        return ds, description, list(getattr(ds, "missing_clips", [])), False
    from datasets import concatenate_datasets

    loaders = {"casme2": mie_data.load_casme2, "samm": mie_data.load_samm, "smic": mie_data.load_smic}
    parts = [loaders[name](path) for name, path in datasets.items()]
    ds = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    ds = ds.filter(lambda label: label >= 0, input_columns="label")
    names = " + ".join(datasets)
    description = f"{names}, emotions mapped to negative / positive / surprise (MEGC 2019 mapping of each workbook)"
    return ds, description, [], False


def prepare_data(
    datasets: dict[str, Path],
    megc2019: bool,
    config: MieConfig,
    cache_dir: Path,
    num_proc: int = 1,
    max_frames: int | None = None,
) -> LosoData:
    """Load the databases, crop every clip once into the region cache, and describe the data."""
    from . import data as mie_data
    from .cache import build_region_cache
    from .processing_mie import MieProcessor

    ds, description, missing, synthetic = load_rows(datasets, megc2019)
    if len(ds) == 0:
        raise MieInputError(f"No labelled clips found in {', '.join(map(str, datasets.values()))}.")
    processor = MieProcessor.from_config(config)
    cache = build_region_cache(ds, processor, cache_dir, num_proc=num_proc, max_frames=max_frames, progress=True)
    failed = list(getattr(cache, "failed_clips", []))
    rows = [dict(r) for r in cache.remove_columns(["pixel_values"]).with_format(None)]
    summary = mie_data.summarize_clips(cache.remove_columns(["pixel_values"]))
    return LosoData(rows, str(cache.cache_path), description, summary, missing, failed, synthetic)


_CLIP_CACHE: dict[tuple, list[ClipTensors]] = {}


def trained_motion_peak(rows: Sequence[dict]) -> float | None:
    """The 99th percentile of the rows' motion peaks (canvas px; flow caches store one per clip),
    rounded to 1/1000 px: what a flow model trained on them has seen move. None without peaks."""
    peaks = np.array([r.get("motion_peak", np.nan) for r in rows], np.float64)
    peaks = peaks[np.isfinite(peaks)]
    return round(float(np.percentile(peaks, 99)), 3) if len(peaks) else None


def load_clip_tensors(cache_path: str, rows: Sequence[dict], config: MieConfig, use_action_units: bool = True) -> list[ClipTensors]:
    """The cached crops of `rows` as `ClipTensors` (kept per process: folds of one worker share them)."""
    from .cache import read_cached_crops
    from .data import clip_region_labels

    key = (cache_path, tuple(r["cache_key"] for r in rows), use_action_units)
    if key not in _CLIP_CACHE:
        _CLIP_CACHE.clear()
        crops = read_cached_crops(cache_path, [r["cache_key"] for r in rows])
        _CLIP_CACHE[key] = [
            ClipTensors(
                crops=torch.from_numpy(c),
                label=int(r["label"]),
                region_labels=clip_region_labels(r, config, use_action_units=use_action_units),
                subject=r["subject"],
                database=r["database"],
                clip_id=r["megc_filename"] or r["clip"],
                list_subject=r["megc_subject"] or r["subject"].split("/", 1)[-1],
                onset=int(r["onset_index"]),
                apex=int(r["apex_index"]),
                offset=int(r["offset_index"]),
            )
            for r, c in zip(rows, crops)
        ]
    return _CLIP_CACHE[key]


# ---------------------------------------------------------------------------- folds
@dataclass
class FoldSpec:
    """Everything a worker needs to run one fold (picklable, no tensors)."""

    key: str  # the held-out subject key, e.g. "casme2/sub01"
    output_dir: str
    cache_path: str
    rows: list[dict]
    config: dict
    schedule: dict
    seed: int
    threads: int
    use_action_units: bool = True
    show_progress: bool = False
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N" (resolved by the command; `modeling_mie.devices`)
    precision: str = "fp32"  # "fp32", "tf32" or "bf16"
    compile: str = "off"  # stage 1's steps: "off", "default" or "reduce-overhead" (`training.COMPILE_MODES`)
    cnn_kernels: str = "auto"  # the region CNN's kernels on CUDA: "auto", "cudnn" or "triton" (`devices.CNN_KERNELS`)
    # keep the held-out clips' probabilities after every epoch, only to report leakage (`loso_report`)
    report_epochs: bool = False
    # "aouayeb" (the project's model) or a baseline of `modeling_mie.baselines.methods.METHODS`
    method: str = "aouayeb"


def fold_file(output_dir: Path, key: str) -> Path:
    return Path(output_dir) / FOLDS_DIR / (key.replace("/", "__") + ".json")


def run_fold(spec: FoldSpec) -> dict:
    """Train on every subject but `spec.key`, predict that subject's clips, write the fold file.

    The file is written atomically at the end: a fold killed midway leaves nothing, and a
    finished fold is never redone by `--resume`. A baseline method's fold is run by
    `modeling_mie.baselines.methods.run_baseline_fold` and written the same way.
    """
    return run_fold_group([spec])[0]


def run_fold_group(specs: Sequence[FoldSpec]) -> list[dict]:
    """`run_fold` for several folds of one run; with more than one, their stage 1 trains as one
    stacked model (`modeling_mie.stacked`: each fold as it would train alone, in fewer, larger
    steps) and the rest fold by fold. Each fold's file is written as soon as it is finished."""
    from .devices import cnn_kernels, describe_device, resolve_device

    if not specs:
        return []
    spec = specs[0]
    if spec.method != "aouayeb":
        from .baselines.methods import run_baseline_fold

        return [_write_fold(s, run_baseline_fold(s)) for s in specs]

    torch.set_num_threads(max(1, spec.threads))
    device = resolve_device(spec.device)
    config = MieConfig.from_dict(spec.config)
    schedule = TrainingSchedule(**spec.schedule)
    clips = load_clip_tensors(spec.cache_path, spec.rows, config, spec.use_action_units)
    folds = []
    for s in specs:
        test = [c for c in clips if c.subject == s.key]
        if not test:
            raise MieInputError(f"Fold {s.key}: no clip of this subject in the data.")
        folds.append(([c for c in clips if c.subject != s.key], test, fold_seed(s.seed, s.key)))
    label = spec.key if len(specs) == 1 else f"{spec.key} +{len(specs) - 1} stacked"
    progress = _stage_bars(label) if spec.show_progress else None
    device_text = describe_device(device, spec.precision)
    results: list[dict] = []

    def finished(i: int, outcome) -> None:  # write each fold's file as soon as it is done
        s, (train, test, _) = specs[i], folds[i]
        results.append(_write_fold(s, _fold_record(s, train, test, outcome, schedule, device_text, specs, start)))

    start = time.perf_counter()
    try:
        # the region CNN's kernels on CUDA, as the run asked (the CPU always runs PyTorch's)
        with cnn_kernels(spec.cnn_kernels):
            if len(specs) == 1:
                finished(0, train_model(
                    config, folds[0][0], schedule, folds[0][2], progress, test_clips=folds[0][1],
                    device=device, precision=spec.precision, report_epochs=spec.report_epochs, compile=spec.compile,
                ))
            else:
                from .stacked import train_folds

                train_folds(
                    config, folds, schedule, progress, device=device, precision=spec.precision,
                    report_epochs=spec.report_epochs, compile=spec.compile, on_outcome=finished,
                )
    finally:
        if progress is not None:
            progress.close()
    return results


def _fold_record(spec, train, test, outcome, schedule, device_text, group, start) -> dict:
    """A finished fold of the project's model as its fold file records it (`start`: when its
    group began, `time.perf_counter()`)."""
    from .devices import describe_cnn_kernels, resolve_device

    predictions = outcome.probabilities.argmax(1).tolist()
    stacked = len(group) > 1
    own = outcome.features_seconds + outcome.stage2.seconds + outcome.finetune.seconds
    result = {
        "fold": spec.key,
        "method": "aouayeb",
        "database": test[0].database,
        "list_subject": test[0].list_subject,
        "seed": fold_seed(spec.seed, spec.key),
        "device": device_text,
        "cnn_kernels": describe_cnn_kernels(spec.cnn_kernels, resolve_device(spec.device)),
        "train_clips": len(train),
        "test_clips": len(test),
        # the proof of an honest fold: the subjects whose clips each stage read
        "stage1_subjects": outcome.stage1.subjects,
        "stage2_subjects": outcome.stage2.subjects,
        "finetune_subjects": outcome.finetune.subjects if schedule.finetune_epochs > 0 else [],
        "focal_alpha": outcome.focal_alpha,
        "losses": {
            "stage1_cnn": outcome.stage1.losses,
            "stage2_temporal": outcome.stage2.losses,
            "finetune": outcome.finetune.losses,
        },
        "seconds": {
            # stacked: the whole group's stage 1, which this fold shared
            "stage1_cnn": outcome.stage1.seconds,
            "features": outcome.features_seconds,
            "stage2_temporal": outcome.stage2.seconds,
            "finetune": outcome.finetune.seconds,
            # stacked: this fold's share of stage 1 and its own stages
            "total": outcome.stage1.seconds / len(group) + own if stacked else time.perf_counter() - start,
        },
        "predictions": [
            {
                "clip": c.clip_id,
                "label": c.label,
                "prediction": int(p),
                "probabilities": [round(float(x), 6) for x in probs],
            }
            for c, p, probs in zip(test, predictions, outcome.probabilities)
        ],
    }
    if stacked:
        # the folds whose stage 1 trained together, in one stacked model (modeling_mie.stacked)
        result["stage1_stacked_with"] = [s.key for s in group]
    if outcome.epoch_probabilities is not None:
        result["epoch_probabilities"] = rounded_epochs(outcome.epoch_probabilities)
    return result


def _write_fold(spec: FoldSpec, result: dict) -> dict:
    """Write a fold's record and its MEGC log (atomically) where `--resume` looks for them."""
    path = fold_file(Path(spec.output_dir), spec.key)
    write_json_atomically(path, result)
    write_megc_log(path.with_suffix(".log"), _fold_predictions(result))
    return result


def rounded_epochs(probabilities) -> list:
    """(epochs, clips, classes) probabilities as nested lists rounded to 5 decimals (fold files)."""
    return np.round(np.asarray(probabilities, np.float64), 5).tolist()


class _stage_bars:
    """tqdm bars per stage of one fold (epochs, with ETA)."""

    def __init__(self, key: str):
        self.key = key
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, step: int, total: int, info: dict) -> None:
        from tqdm.auto import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"  {self.key} {stage}", unit="epoch", leave=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _fold_predictions(result: dict) -> list[ClipPrediction]:
    return [
        ClipPrediction(result["database"], result["list_subject"], p["clip"], p["label"], p["prediction"])
        for p in result["predictions"]
    ]


def run_folds(
    specs: Sequence[FoldSpec],
    workers: int = 1,
    ray_address: str | None = None,
    on_done: Callable[[dict], None] | None = None,
    stack: int = 1,
) -> list[dict]:
    """Run folds in this process, in `workers` local processes, or as Ray tasks.

    With `stack` > 1, consecutive folds go in groups of up to `stack` whose stage 1 trains as one
    stacked model (`run_fold_group`); a group is one task. Each fold writes its own file, so
    every path gives the same outputs; results come back in the order of `specs`.
    """
    if not specs:
        return []
    if stack < 1:
        raise ValueError(f"stack must be at least 1, got {stack}.")
    results: dict[str, dict] = {}
    groups = [list(specs[i : i + stack]) for i in range(0, len(specs), stack)]

    def done(group_results):
        for result in group_results:
            results[result["fold"]] = result
            if on_done is not None:
                on_done(result)

    if ray_address:
        _run_with_ray(groups, ray_address, done)
    elif workers <= 1:
        for group in groups:
            done(run_fold_group(group))
    else:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        groups = spread_over_gpus(groups)
        # spawn: a fresh interpreter per worker, safe with torch's and MediaPipe's threads (and
        # the only start method CUDA allows in a child)
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            pending = {pool.submit(run_fold_group, group) for group in groups}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    done(future.result())
    return [results[s.key] for s in specs]


def spread_over_gpus(groups: Sequence[Sequence[FoldSpec]]) -> list[list[FoldSpec]]:
    """Groups of folds (`run_fold_group`) for local worker processes: with `device` "cuda" (no
    index) and several GPUs visible, group i goes to cuda:(i mod GPUs); otherwise unchanged.
    Workers on one GPU share it: each process holds its own CUDA context (a few hundred MB) and
    its folds' clips (`devices.stage_tensor` moves them whole only while they fit a share of the
    free memory)."""
    from dataclasses import replace

    groups = [list(g) for g in groups]
    first = groups[0][0] if groups and groups[0] else None
    if first is None or first.device != "cuda" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return groups
    count = torch.cuda.device_count()
    return [[replace(spec, device=f"cuda:{i % count}") for spec in group] for i, group in enumerate(groups)]


def _run_with_ray(
    groups: Sequence[Sequence[FoldSpec]], address: str, done: Callable[[list[dict]], None]
) -> None:
    try:
        import ray
    except ImportError as err:
        raise MieInputError(
            "--ray needs Ray: pip install 'modeling_mie[ray]' (or 'ray>=2.30') on this machine and every node."
        ) from err
    from dataclasses import replace

    started_here = not ray.is_initialized()
    if started_here:
        # "local" starts a Ray instance on this machine; any other value is a cluster address
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        remote = ray.remote(run_fold_group)
        # a CUDA group asks Ray for a whole GPU; Ray then sets CUDA_VISIBLE_DEVICES, so its folds
        # use "cuda" (its one visible GPU), never an index chosen here
        gpus = lambda s: 1 if s.device.startswith("cuda") else 0
        refs = [
            remote.options(num_cpus=max(1, g[0].threads), num_gpus=gpus(g[0])).remote(
                [replace(s, device="cuda") for s in g] if gpus(g[0]) else list(g)
            )
            for g in groups
        ]
        pending = list(refs)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                done(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------------------- results
def collect_results(output_dir: Path, fold_keys: Sequence[str]) -> list[dict]:
    out = []
    for key in fold_keys:
        path = fold_file(output_dir, key)
        if path.is_file():
            out.append(json.loads(path.read_text()))
    return out


def summarise_run(output_dir: Path, folds: Sequence[dict], label_names: Sequence[str], extra: dict) -> dict:
    """Write results.json, results.md, predictions.log (MEGC format), confusion_matrix.png and
    reliability.png (calibration of the out-of-fold probabilities, `modeling_mie.calibration`)."""
    from .calibration import loso_calibration, plot_reliability, summary_for_json
    from .loso_report import bootstrap_intervals, leakage_summary

    output_dir = Path(output_dir)
    predictions = [p for f in folds for p in _fold_predictions(f)]
    num_classes = len(label_names)
    scores = megc_scores(predictions, num_classes)
    matrix = confusion_matrix([p.label for p in predictions], [p.prediction for p in predictions], num_classes)
    accuracy = per_fold_accuracy(predictions)
    seconds = {k: float(sum(f["seconds"][k] for f in folds)) for k in folds[0]["seconds"]}
    results = {
        "scores": scores,
        "labels": list(label_names),
        "confusion_matrix": matrix.tolist(),
        "per_fold_accuracy": {f"{db}/{subject}": acc for (db, subject), acc in accuracy.items()},
        "folds": len(folds),
        "clips": len(predictions),
        "seconds": seconds,
        **extra,
    }
    results["bootstrap"] = bootstrap_intervals([folds], num_classes)
    leakage = leakage_summary(folds, num_classes)
    if leakage is not None:
        results["leakage"] = leakage
    # an SVM gives votes, not probabilities: nothing to calibrate
    calibration = None
    if all(p.get("probabilities") is not None for f in folds for p in f["predictions"]):
        calibration = loso_calibration(folds)
        results["calibration"] = summary_for_json(calibration)
    write_json_atomically(output_dir / "results.json", results)
    write_megc_log(output_dir / "predictions.log", predictions)
    write_text_atomically(output_dir / "results.md", results_markdown(results))
    method = extra.get("method", "aouayeb")
    if method == "aouayeb" and extra.get("preset"):
        method = f"aouayeb, {extra['preset']} preset"
    title = f"{method}: {extra.get('data', '')}"  # the method always: runs of several sit side by side
    plot_confusion_matrix(matrix, label_names, output_dir / "confusion_matrix.png", title=title)
    if calibration is not None:
        plot_reliability(calibration, output_dir / "reliability.png", title="Out-of-fold probabilities of the LOSO run")
    return results


def results_markdown(results: dict) -> str:
    lines = [
        "# LOSO results",
        "",
        f"{results['folds']} folds (one per subject), {results['clips']} clips; UF1 and UAR on the predictions "
        "pooled over all folds (MEGC 2019), per database on its share of the same run.",
        "",
    ]
    if results.get("data"):
        lines += [f"Data: {results['data']}", ""]
    if results.get("method", "aouayeb") != "aouayeb":
        lines += [f"Method: `{results['method']}` ({results.get('method_description', '')})", ""]
    elif results.get("preset"):
        lines += [f"Preset: `{results['preset']}`", ""]
    lines.append(format_scores_table(results["scores"]))
    boot = results.get("bootstrap")
    if boot:
        lines += [
            "",
            f"95 % intervals, bootstrap over subjects ({boot['draws']} draws; `modeling_mie.loso_report`):",
            "",
            "| data | UF1 95 % | UAR 95 % |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {name} | {ci['uf1'][0]:.3f}-{ci['uf1'][1]:.3f} | {ci['uar'][0]:.3f}-{ci['uar'][1]:.3f} |"
            for name, ci in boot["scopes"].items()
        ]
    leak = results.get("leakage")
    if leak:
        lines += [
            "",
            f"Leakage report (`--report-leakage`): keeping the {leak['protocol']} among the {leak['epochs']} "
            "epochs, the run would have claimed (reported only; the scores above use the last epoch):",
            "",
            "| data | UF1 claimed | gap | UAR claimed | gap |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {s['uf1']:.4f} | {leak['gap'][name]['uf1']:+.4f} | {s['uar']:.4f} | "
            f"{leak['gap'][name]['uar']:+.4f} |"
            for name, s in leak["scores"].items()
        ]
        lines.append(f"\nMedian best epoch: {leak['best_epoch_median']:g} of {leak['epochs']}.")
    labels = results["labels"]
    lines += ["", "Confusion matrix (rows: ground truth, columns: prediction)", ""]
    lines.append("| | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for name, row in zip(labels, results["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    cal = results.get("calibration")
    if cal:
        lines += [
            "",
            f"Calibration of the out-of-fold probabilities ({cal['num_bins']} bins): ECE {cal['ece_before']:.4f} as "
            f"trained; {cal['ece_after']:.4f} after temperature scaling, each subject's temperature fitted on the "
            f"other subjects' predictions only. Temperature fitted on all of them (the final model's): "
            f"{cal['temperature']:.3f}. Reliability diagram: reliability.png.",
        ]
    accs = results["per_fold_accuracy"]
    lines += ["", "Per-fold accuracy (diagnosis only; never used to pick anything)", "", "| fold | accuracy |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in sorted(accs.items())]
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.55 else "black", fontsize=9)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    import textwrap

    subtitle = textwrap.shorten(title, 110, placeholder=" ...") if title else ""
    ax.set_title("\n".join(["LOSO confusion matrix", *textwrap.wrap(subtitle, 55)]), fontsize=8)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


# ---------------------------------------------------------------------------- run identity
def run_identity(
    config: MieConfig,
    schedule: TrainingSchedule,
    rows: Sequence[dict],
    seed: int,
    use_action_units: bool,
    precision: str = "fp32",
    method: str = "aouayeb",
    report_epochs: bool = False,
    preset: str = "fast",
) -> dict:
    """What makes two runs the same: resuming is refused when any of it changed.

    The device is not part of it (a run started on the CPU may go on on a GPU: fp32 folds
    differ only by rounding), nor is `--compile` (compiled steps compute what eager ones do, in
    another order of rounding, with dropout drawn from another random stream as on a GPU); a precision other than fp32 is, so bf16 and fp32 folds never mix.
    fp32 adds nothing, so runs made before devices existed still resume.
    """
    clips = sorted(f"{r['subject']}|{r['clip']}|{r['label']}|{r['cache_key']}" for r in rows)
    identity = {
        "config": _digest(config.to_dict()),
        "schedule": asdict(schedule),
        "clips": _digest(clips),
        "seed": seed,
        "use_action_units": use_action_units,
    }
    if precision != "fp32":
        identity["precision"] = precision
    # added only when used, so runs made before them still resume
    if method != "aouayeb":
        from .baselines.methods import method_identity

        identity["method"] = method_identity(method, preset)
        del identity["config"], identity["schedule"], identity["use_action_units"]
    if report_epochs:
        identity["report_epochs"] = True
    return identity


def check_or_write_run(output_dir: Path, identity: dict, resume: bool) -> int:
    """Create the run file, or check it matches when resuming. Returns the finished folds."""
    output_dir = Path(output_dir)
    path = output_dir / RUN_FILE
    identity = json.loads(json.dumps(identity, default=str))  # as the file stores it (tuples become lists)
    finished = sorted((output_dir / FOLDS_DIR).glob("*.json")) if (output_dir / FOLDS_DIR).is_dir() else []
    if path.is_file():
        saved = json.loads(path.read_text())
        if not resume:
            raise MieInputError(
                f"{output_dir} already holds a run ({len(finished)} finished folds). Pass --resume to continue it, "
                "or choose another --output-dir."
            )
        if saved["identity"] != identity:
            changed = sorted(k for k in {*identity, *saved["identity"]} if saved["identity"].get(k) != identity.get(k))
            raise MieInputError(
                f"--resume: the run in {output_dir} was made with other settings ({', '.join(changed)} differ). "
                "Resume with the same data, preset, flags and seed, or choose another --output-dir."
            )
        return len(finished)
    if finished and not resume:
        raise MieInputError(f"{output_dir} holds fold files but no {RUN_FILE}; choose an empty --output-dir.")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / FOLDS_DIR).mkdir(exist_ok=True)
    write_json_atomically(path, {"identity": identity, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return 0


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


__all__ = [
    "TRAINING_PRESETS",
    "FoldSpec",
    "LosoData",
    "check_or_write_run",
    "collect_results",
    "fold_file",
    "load_clip_tensors",
    "parse_dataset_specs",
    "prepare_data",
    "run_fold",
    "run_folds",
    "run_identity",
    "spread_over_gpus",
    "summarise_run",
]
