"""The compared methods as LOSO methods: their inputs computed once per clip, and one fold of each.

`python train/loso.py --method NAME` runs a method of the seed paper's Table 2 over exactly the
data, folds and output files of the project's own model (`modeling_mie.loso`):

| name | input | classifier |
|---|---|---|
| lbptop | LBP-TOP of the onset -> offset face volume (5 x 5 blocks, P 8, R 1: 4425 values) | linear SVM |
| biwoof | Bi-WOOF of the onset -> apex TV-L1 flow (5 x 5 blocks, 8 bins: 200 values) | linear SVM |
| offapexnet | onset -> apex TV-L1 flow, u and v, 28 x 28 | OFF-ApexNet (two-stream CNN) |
| ststnet | onset -> apex flow u, v and optical strain, 28 x 28 | STSTNet (three shallow streams) |
| dual_inception | onset -> apex flow u and v, 28 x 28 | Dual-Inception (two Inception streams) |

Inputs. Every method reads the grey face crop (`inputs.grey_face_volume`, 128 x 128) cut by the
face box of the landmarks the region cache found on the clip's first usable frame (the same
landmarks as the project's model; the frames are those the cache kept), and the annotated onset,
apex and offset. A clip without an annotated apex (SMIC) uses the project's estimated apex (the
loader's `apex_index`, `apex_source` "estimated"); the run counts them (`apex_estimated` in
results.json). An apex on the onset frame has no onset -> apex motion: the middle frame between
onset and offset is used instead, and counted (`apex_moved`). An onset -> offset volume shorter
than the 3 frames LBP-TOP needs repeats its last frame.

Each clip's input is stored once in `<cache>/baselines/<kind>/<key>.npy` (kind "lbptop": the
feature vector; "flow": the (128, 128, 2) TV-L1 flow), the key a digest of the clip's region-cache
key, its onset / apex / offset and the input settings; files are written atomically, so parallel
preparation and a killed run are safe, and later runs, seeds and methods reuse them (Bi-WOOF and
the three CNNs share the flow).

Folds. A fold fits on the other subjects' clips only: the SVM's standardisation and weights, the
CNN's weights. The SVMs have nothing trained over epochs (no leakage report); the CNNs train a
fixed number of epochs and predict after the last, and with `report_epochs` also after each epoch,
only for the leakage report.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import MieInputError

#: Bumped when what a stored input means changes.
INPUT_VERSION = "1"
CROP_SIZE = (128, 128)
SVM_METHODS = ("lbptop", "biwoof")
CNN_METHODS = ("offapexnet", "ststnet", "dual_inception")
METHODS = SVM_METHODS + CNN_METHODS
DESCRIPTIONS = {
    "lbptop": "LBP-TOP (5 x 5 blocks, P 8, R 1, onset -> offset face volume) + linear SVM; the MEGC 2019 baseline",
    "biwoof": "Bi-WOOF (onset -> apex TV-L1 flow, 5 x 5 blocks, 8 bins) + linear SVM (Liong et al. 2018)",
    "offapexnet": "OFF-ApexNet on onset -> apex TV-L1 flow (Gan et al. 2019)",
    "ststnet": "STSTNet on onset -> apex TV-L1 flow and optical strain (Liong et al. 2019)",
    "dual_inception": "Dual-Inception on onset -> apex TV-L1 flow (Zhou et al. 2019)",
}


def check_method(name: str) -> str:
    if name not in METHODS:
        raise MieInputError(f"Unknown method {name!r}; the baselines are {', '.join(METHODS)} (or aouayeb, the project's model).")
    return name


def input_kind(method: str) -> str:
    return "lbptop" if check_method(method) == "lbptop" else "flow"


def flow_schedule(method: str, preset: str = "fast"):
    """The `FlowNetSchedule` of a CNN baseline: the papers' with preset "paper", the CPU one otherwise."""
    from .flownets import FAST_SCHEDULES, PAPER_SCHEDULES

    return (PAPER_SCHEDULES if preset == "paper" else FAST_SCHEDULES)[check_method(method)]


def method_identity(method: str, preset: str = "fast") -> dict:
    """What makes two runs of a baseline the same (part of `loso.run_identity`)."""
    from .flowfeatures import TVL1_SETTINGS

    identity = {"name": check_method(method), "inputs": INPUT_VERSION, "crop": list(CROP_SIZE)}
    if input_kind(method) == "flow":
        identity["tvl1"] = TVL1_SETTINGS
    if method in SVM_METHODS:
        from .svm import DEFAULT_C

        identity["svm"] = {"C": DEFAULT_C, "class_weight": None, "standardize": True}
    else:
        from dataclasses import asdict

        identity["schedule"] = asdict(flow_schedule(method, preset))
    return identity


# ---------------------------------------------------------------------------- inputs
def clip_positions(row: dict) -> tuple[int, int, int, bool]:
    """(onset, apex, offset, apex moved) positions among the row's stored frames."""
    onset, apex, offset = int(row["onset_index"]), int(row["apex_index"]), int(row["offset_index"])
    last = len(row["frames"]) - 1
    offset = min(max(offset, onset), last)
    moved = False
    if apex <= onset or apex > offset:
        apex, moved = min(max(onset + 1, (onset + offset) // 2), last), True
    if apex <= onset:
        raise MieInputError(
            f"{row['subject']}/{row['clip']}: the clip has no frame after its onset; the baselines need an onset "
            "and a later apex frame."
        )
    return onset, apex, offset, moved


def input_key(row: dict, kind: str) -> str:
    onset, apex, offset, _ = clip_positions(row)
    text = json.dumps([INPUT_VERSION, kind, row["cache_key"], onset, apex, offset, list(CROP_SIZE)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def input_path(folder: str | os.PathLike, row: dict, kind: str) -> Path:
    return Path(folder) / kind / f"{input_key(row, kind)}.npy"


def compute_input(row: dict, kind: str) -> np.ndarray:
    """One clip's input: the LBP-TOP vector or the (128, 128, 2) onset -> apex TV-L1 flow."""
    from .flowfeatures import tvl1_flow
    from .inputs import grey_face_volume
    from .lbptop import lbp_top

    onset, apex, offset, _ = clip_positions(row)
    landmarks = np.asarray(row["landmarks_dlib68"], np.float64)
    if kind == "lbptop":
        clip = grey_face_volume(row["frames"], onset, apex, offset, landmarks=landmarks, size=CROP_SIZE)
        volume = clip.volume
        if len(volume) < 3:  # LBP-TOP with R_T = 1 needs a frame before and after a centre
            volume = np.concatenate([volume, np.repeat(volume[-1:], 3 - len(volume), 0)])
        return lbp_top(volume)
    clip = grey_face_volume(row["frames"], onset, apex, offset, landmarks=landmarks, size=CROP_SIZE, span="onset_apex")
    return tvl1_flow(clip.volume[0], clip.volume[1])


def _prepare_one(job: tuple[dict, str, str]) -> str:
    import cv2

    cv2.setNumThreads(1)
    row, kind, folder = job
    path = input_path(folder, row, kind)
    if not path.is_file():
        from .flowfeatures import save_array_atomically

        save_array_atomically(path, np.asarray(compute_input(row, kind), np.float32))
    return row["cache_key"]


def prepare_inputs(rows: list[dict], method: str, folder: str | os.PathLike, workers: int = 1, progress: bool = True) -> dict:
    """Compute and store every clip's input for `method` (those stored already are kept).
    Returns counts: clips, computed, estimated and moved apexes, seconds."""
    from tqdm.auto import tqdm

    kind = input_kind(method)
    folder = Path(folder)
    todo = [r for r in rows if not input_path(folder, r, kind).is_file()]
    start = time.perf_counter()
    jobs = [(r, kind, str(folder)) for r in todo]
    bar = tqdm(total=len(jobs), desc=f"{kind} inputs", unit="clip", disable=not progress or not jobs)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for _ in pool.map(_prepare_one, jobs, chunksize=4):
                bar.update(1)
    else:
        for job in jobs:
            _prepare_one(job)
            bar.update(1)
    bar.close()
    return {
        "kind": kind,
        "clips": len(rows),
        "computed": len(todo),
        "seconds": time.perf_counter() - start,
        "apex_estimated": sum(bool(r.get("apex_estimated")) for r in rows),
        "apex_moved": sum(clip_positions(r)[3] for r in rows),
    }


_INPUTS: dict[tuple, np.ndarray] = {}


def load_inputs(folder: str | os.PathLike, rows: list[dict], method: str) -> np.ndarray:
    """(clips, ...) the method's model inputs, in `rows` order (kept per process): LBP-TOP rows,
    Bi-WOOF rows (from the flow), or (clips, 3, 28, 28) CNN inputs (from the flow)."""
    key = (str(folder), method, tuple(r["cache_key"] for r in rows))
    if key not in _INPUTS:
        _INPUTS.clear()
        kind = input_kind(method)
        arrays = []
        for r in rows:
            path = input_path(folder, r, kind)
            if not path.is_file():
                raise MieInputError(f"The {kind} input of {r['subject']}/{r['clip']} is not in {folder}; run prepare_inputs first.")
            arrays.append(np.load(path, allow_pickle=False))
        if method == "biwoof":
            from .flowfeatures import biwoof_features

            arrays = [biwoof_features(a) for a in arrays]
        elif method in CNN_METHODS:
            from .flownets import flow_net_input

            arrays = [flow_net_input(a) for a in arrays]
        _INPUTS[key] = np.stack(arrays).astype(np.float32)
    return _INPUTS[key]


# ---------------------------------------------------------------------------- one fold
def run_baseline_fold(spec) -> dict:
    """One LOSO fold of a baseline (`spec` a `loso.FoldSpec` whose `cache_path` is the inputs
    folder): fit on every subject but `spec.key`, predict that subject's clips; the fold record
    in the format of the project's model's folds."""
    import torch

    from ..devices import describe_device, resolve_device
    from ..training import fold_seed

    start = time.perf_counter()
    torch.set_num_threads(max(1, spec.threads))
    method = check_method(spec.method)
    rows = spec.rows
    inputs = load_inputs(spec.cache_path, rows, method)
    labels = np.array([int(r["label"]) for r in rows])
    test = np.array([r["subject"] == spec.key for r in rows])
    if not test.any():
        raise MieInputError(f"Fold {spec.key}: no clip of this subject in the data.")
    loaded = time.perf_counter() - start
    seed = fold_seed(spec.seed, spec.key)
    extra: dict = {}
    probabilities = None
    device = "cpu"  # the SVMs are scikit-learn's; the CNNs train on spec.device
    if method in SVM_METHODS:
        from .svm import LinearSVM

        svm = LinearSVM().fit(inputs[~test], labels[~test])
        predictions = svm.predict(inputs[test])
        scores = svm.decision_function(inputs[test])
        extra["decision_scores"] = np.round(scores, 5).tolist()
        losses: list[float] = []
    else:
        from .flownets import FlowNetSchedule, train_flow_net

        settings = dict(spec.schedule)
        settings["betas"] = tuple(settings.get("betas", (0.9, 0.999)))
        where = resolve_device(spec.device)
        outcome = train_flow_net(
            method, inputs[~test], labels[~test], inputs[test], seed=seed, schedule=FlowNetSchedule(**settings),
            report_epochs=spec.report_epochs, device=where,
        )
        device = describe_device(where, "fp32")
        extra["schedule"] = spec.schedule
        probabilities = np.asarray(outcome.probabilities)
        predictions = probabilities.argmax(1)
        losses = [float(x) for x in outcome.losses]
        if spec.report_epochs:
            from ..loso import rounded_epochs

            extra["epoch_probabilities"] = rounded_epochs(outcome.epoch_probabilities)
    test_rows = [r for r, t in zip(rows, test) if t]
    train_subjects = sorted({r["subject"] for r, t in zip(rows, test) if not t})
    return {
        "fold": spec.key,
        "method": method,
        "database": test_rows[0]["database"],
        "list_subject": test_rows[0]["megc_subject"] or test_rows[0]["subject"].split("/", 1)[-1],
        "seed": seed,
        "device": device,
        "train_clips": int((~test).sum()),
        "test_clips": int(test.sum()),
        "train_subjects": train_subjects,
        "losses": {"train": losses},
        "seconds": {"inputs": loaded, "fit_predict": time.perf_counter() - start - loaded, "total": time.perf_counter() - start},
        "predictions": [
            {
                "clip": r["megc_filename"] or r["clip"],
                "label": int(r["label"]),
                "prediction": int(p),
                "probabilities": None if probabilities is None else [round(float(x), 6) for x in probabilities[i]],
                # where the apex frame came from: annotated, or estimated (flagged) / moved off the onset
                "apex": "moved" if clip_positions(r)[3] else ("estimated" if r.get("apex_estimated") else "annotated"),
            }
            for i, (r, p) in enumerate(zip(test_rows, predictions))
        ],
        **extra,
    }


__all__ = [
    "CNN_METHODS",
    "DESCRIPTIONS",
    "METHODS",
    "SVM_METHODS",
    "check_method",
    "clip_positions",
    "compute_input",
    "flow_schedule",
    "input_kind",
    "load_inputs",
    "method_identity",
    "prepare_inputs",
    "run_baseline_fold",
]
