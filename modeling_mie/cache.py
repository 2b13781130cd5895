"""Preprocessed region-crop cache: landmarks and crops of every clip computed once, stored as uint8 Arrow.

Layout under `cache_dir` (one folder per processor geometry + frame selection)::

    regions-<settings key>/
        settings.json            what the key was computed from (readable; written once)
        clips/<clip key>.arrow   one Arrow file per clip: its crops and landmarks (atomic rename)
        failed/<clip key>.json   clips the processor refused (no face, unreadable): the reason

The settings key hashes the processor's geometry and face-finding options (region table,
canvas, crop_scale, channels, face-box landmarks, detector settings), the cache's frame
selection (`span`, `max_frames`) and the storage format. A clip key hashes the settings key and
the clip's selected frames (path, size, mtime), so an edited frame, another selection or
another geometry is a new file, while a new clip list (another database, another ground truth)
reuses every clip already done. A build that is killed keeps every finished clip; running it
again does only the rest. The rows' metadata (labels, subjects, AUs) is NOT stored with the
crops: it is joined from the dataset given at each build, so a relabelled list never meets
stale labels.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import time
from pathlib import Path

import numpy as np

from .errors import MieInputError
from .files import remove_stale_temporaries, write_atomically, write_json_atomically

logger = logging.getLogger(__name__)

# Bumped when what a clip file holds changes; part of the settings key. 2: the processor follows
# the face, and a clip file keeps only the frames where it was usable (`kept_frames`). 3: a clip
# file also keeps its motion peak (flow crops are stored divided by it).
CACHE_FORMAT = "3"

SPANS = ("onset_offset", "clip")

# Processor settings that do not change the stored uint8 crops: leaving them out of the key
# avoids rebuilding a cache because a training processor rescales to [0, 1] or resamples time
# (the cache always stores real frames; temporal sampling happens when training reads it).
_UNKEYED_PROCESSOR_SETTINGS = {
    "do_rescale",
    "rescale_factor",
    "frame_sampling",
    "num_frames",
    "max_frames",
    "min_frames",
    "image_processor_type",
    "processor_class",
    "_processor_class",
    "auto_map",
}

_REQUIRED_COLUMNS = ("frames", "onset_index", "apex_index", "offset_index", "subject", "clip")


def crop_features(num_regions: int, num_channels: int, crop_size: tuple[int, int]):
    """`datasets.Features` of what one clip file stores (besides the rows' metadata).

    Columns:
        pixel_values (Array5D uint8): (frames, regions, channels, height, width) region crops.
        region_boxes (Array2D int32): (regions, 4) x0, y0, x1, y1 pixels of the source frames cut.
        face_box (list[float32], 4): the face box the regions came from, pixels.
        landmarks (Array2D float32): (478, 2) MediaPipe points in pixels (NaN when not detected).
        landmarks_dlib68 (Array2D float32): (68, 2) dlib-68 view of them.
        landmark_frame (int32): index into the selected frames the landmarks came from (the
            reference: the first with a usable face).
        num_faces (int32): most faces the detector saw in one frame.
        motion_peak (float32): flow crops: the clip's motion peak in canvas px, which its flow
            was divided by (`modeling_mie.flow`); NaN for grey crops.
        kept_frames (list[int32]): positions, among the selected frames, of the stored frames:
            those where the processor found the face usable (frames before the face appears,
            after it leaves, or where it is lost, turned or occluded are not stored).
        face_summary (str): the processor's one-line account of the face track.
        processor_notes (str): the processor's notes (e.g. several faces).
        cache_key (str): the clip key (file name in clips/).
    """
    from datasets import Array2D, Array5D, Features, List, Value

    height, width = crop_size
    return Features(
        {
            "pixel_values": Array5D(shape=(None, num_regions, num_channels, height, width), dtype="uint8"),
            "region_boxes": Array2D(shape=(num_regions, 4), dtype="int32"),
            "face_box": List(Value("float32"), length=4),
            "landmarks": Array2D(shape=(478, 2), dtype="float32"),
            "landmarks_dlib68": Array2D(shape=(68, 2), dtype="float32"),
            "landmark_frame": Value("int32"),
            "num_faces": Value("int32"),
            "motion_peak": Value("float32"),
            "kept_frames": List(Value("int32")),
            "face_summary": Value("string"),
            "processor_notes": Value("string"),
            "cache_key": Value("string"),
        }
    )


# ---------------------------------------------------------------------------- frame selection
def select_frames(
    num_frames: int, onset_index: int, apex_index: int, offset_index: int, span: str = "onset_offset", max_frames: int | None = None
) -> list[int]:
    """Indices (into a clip's frames) the cache stores, ascending.

    `span="onset_offset"` keeps onset..offset (what the annotation calls the expression; the
    CASME II and SMIC folders hold exactly that), `"clip"` every frame of the folder. With
    `max_frames`, at most that many, spread evenly, always keeping the first frame of the span
    (the processor finds landmarks from it on, as the paper does on the first frame), the
    onset, the apex and the offset.
    """
    if span not in SPANS:
        raise ValueError(f"span must be one of {list(SPANS)}, got {span!r}.")
    lo, hi = (onset_index, offset_index) if span == "onset_offset" else (0, num_frames - 1)
    if not 0 <= lo <= hi < num_frames:
        raise MieInputError(f"Frame span {lo}..{hi} does not fit a clip of {num_frames} frames.")
    keys = sorted({lo, hi, min(max(onset_index, lo), hi), min(max(apex_index, lo), hi), min(max(offset_index, lo), hi)})
    every = list(range(lo, hi + 1))
    if max_frames is None or len(every) <= max_frames:
        return every
    if max_frames < len(keys):
        raise ValueError(f"max_frames={max_frames} cannot keep the {len(keys)} key frames (first, onset, apex, offset, last).")
    others = [i for i in every if i not in keys]
    need = max_frames - len(keys)
    picked = [others[int(round(j))] for j in np.linspace(0, len(others) - 1, need)] if need > 0 else []
    return sorted(set(keys) | set(picked))


# ---------------------------------------------------------------------------- keys
def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def cache_settings(processor, span: str = "onset_offset", max_frames: int | None = None) -> dict:
    """Everything that decides the stored crops of a clip, as a JSON-able dict (hashed for the key)."""
    if span not in SPANS:
        raise ValueError(f"span must be one of {list(SPANS)}, got {span!r}.")
    if max_frames is not None and (not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 2):
        raise ValueError(f"max_frames must be None (every frame) or an int >= 2, got {max_frames!r}.")
    settings = {k: v for k, v in processor.to_dict().items() if k not in _UNKEYED_PROCESSOR_SETTINGS}
    return {
        "format": CACHE_FORMAT,
        "processor_class": type(processor).__name__,
        "processor": settings,
        "span": span,
        "max_frames": max_frames,
    }


def _clip_key(settings_key: str, paths: list[str]) -> str:
    stats = []
    for p in paths:
        st = os.stat(p)
        stats.append((p, st.st_size, st.st_mtime_ns))
    return _digest([settings_key, stats])[:32]


# ---------------------------------------------------------------------------- workers
_WORKER_PROCESSOR = None


def _init_worker(processor_bytes: bytes) -> None:
    global _WORKER_PROCESSOR
    # num_proc processes share the cores: one thread each, or they oversubscribe them.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    # A fresh copy from bytes: the caller's MediaPipe landmarker (if it made one) must never be
    # shared with another process; MieProcessor's pickling leaves it out.
    _WORKER_PROCESSOR = pickle.loads(processor_bytes)


def _process_clip(task: dict, processor=None) -> dict:
    """Crop one clip and write its file; returns {"key", "status" ok|failed|error, "reason", "seconds"}."""
    from datasets import Features
    from datasets.arrow_writer import ArrowWriter

    processor = processor or _WORKER_PROCESSOR
    started = time.perf_counter()
    key, paths = task["key"], task["paths"]
    out = {"key": key, "status": "ok", "reason": "", "seconds": 0.0}
    try:
        result = processor(
            list(paths), do_rescale=False, frame_sampling="all", max_frames=max(len(paths), 1), min_frames=1
        )
    except MieInputError as exc:
        # The clip's own problem (no face, unreadable frame): recorded, so the build goes on and
        # later builds do not try it again.
        record = {"subject": task["subject"], "clip": task["clip"], "reason": str(exc)}
        write_json_atomically(task["failed_path"], record)
        out.update(status="failed", reason=str(exc))
        return out
    except Exception as exc:  # a bug or a system error: reported, not recorded (retried next build)
        logger.exception("Cropping %s/%s failed", task["subject"], task["clip"])
        out.update(status="error", reason=f"{type(exc).__name__}: {exc}")
        return out
    present = np.asarray(result["face_present"][0], bool)
    positions = np.asarray(result["frame_positions"][0])[present]
    crops = np.asarray(result["pixel_values"][0])[present]
    if len(positions) and (positions.max() >= len(paths) or np.any(positions != np.round(positions))):
        # the cache's bookkeeping assumes whole selected frames
        out.update(status="error", reason=f"the processor returned frame positions {positions.tolist()} for {len(paths)} frames")
        return out
    example = {
        "pixel_values": crops,
        "region_boxes": np.asarray(result["region_boxes"][0], np.int32),
        "face_box": np.asarray(result["face_boxes"][0], np.float32),
        "landmarks": np.asarray(result["landmarks"][0], np.float32),
        "landmarks_dlib68": np.asarray(result["landmarks_dlib68"][0], np.float32),
        "landmark_frame": int(result["landmark_frame"][0]),
        "num_faces": int(result["num_faces"][0]),
        "motion_peak": float(result["motion_peak"][0]),
        "kept_frames": positions.astype(np.int64).tolist(),
        "face_summary": str(result["face_track"][0]["summary"]),
        "processor_notes": str(result["notes"][0]),
        "cache_key": key,
    }
    features = Features.from_dict(task["features"])

    def write(path: Path) -> None:
        with ArrowWriter(features=features, path=str(path)) as writer:
            writer.write(example)
            writer.finalize()

    write_atomically(task["clip_path"], write)
    out["seconds"] = time.perf_counter() - started
    return out


# ---------------------------------------------------------------------------- build
def build_region_cache(
    dataset,
    processor,
    cache_dir,
    *,
    span: str = "onset_offset",
    max_frames: int | None = None,
    num_proc: int = 1,
    retry_failed: bool = False,
    strict: bool = False,
    progress: bool = True,
    start_method: str | None = None,
):
    """Region crops of every clip of `dataset`, computed once and stored as uint8 Arrow.

    Args:
        dataset: rows of a loader (`load_megc2019`, `load_casme2`, ...): needs `frames`,
            `onset_index`, `apex_index`, `offset_index`, `subject`, `clip`.
        processor: a `MieProcessor`; its geometry and face-finding settings are part of the key.
            Its `do_rescale` / `frame_sampling` / `num_frames` are not used (the cache stores
            the real frames as uint8) and do not change the key.
        cache_dir: folder of the cache (created); the build writes into
            `cache_dir/regions-<settings key>/`.
        span: "onset_offset" (default: the annotated expression) or "clip" (every frame of the
            folder).
        max_frames: None stores every frame of the span; N stores at most N, evenly spread,
            keeping first, onset, apex and offset (bounded cost for long SAMM clips).
        num_proc: worker processes (each with its own MediaPipe landmarker, one thread each).
        retry_failed: crop again the clips an earlier build recorded as failed.
        strict: raise `MieInputError` after the build when any clip failed.
        progress: show a progress bar (tqdm) and log a summary.
        start_method: multiprocessing start method of the workers. Default "forkserver" where
            the platform has it, with mie imported once in the server, so workers start at once
            (under load on 2 cores "spawn" spent about 20 s re-importing torch and MediaPipe per
            build); "spawn" elsewhere. Never "fork" by default: the caller may hold threads
            (torch's, MediaPipe's, a web server's) and a forked child deadlocks on any lock one of
            them held at the fork (a test run hung that way). Workers get a pickled copy of the
            processor (never the caller's landmarker) and one thread each.

    Returns:
        `datasets.Dataset`, one row per clip that was cropped, in the order of `dataset`: the
        rows' own columns (with `frames`, `frame_numbers`, `num_frames`, `onset_index`,
        `apex_index`, `offset_index` now referring to the STORED frames, and `frame_indices` the
        positions of the stored frames in the loader's `frames`), plus `crop_features()`.
        Formatted so that `pixel_values` reads as a uint8 numpy array (frames, regions,
        channels, height, width); everything else as Python values. Attributes (read them right
        away: `map`/`filter` drop them): `failed_clips` (list of dicts subject, clip, reason),
        `cache_path` (the settings folder).

    Raises:
        MieInputError: a dataset without the needed columns, a frame file that disappeared, or
            (strict) clips that failed.
    """
    from datasets import Dataset, concatenate_datasets

    missing = [c for c in _REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise MieInputError(
            f"build_region_cache needs the loader columns {list(_REQUIRED_COLUMNS)}; the dataset lacks {missing}. "
            "Pass a dataset from load_megc2019, load_casme2, load_samm or load_smic."
        )
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc must be an int >= 1, got {num_proc!r}.")
    settings = cache_settings(processor, span, max_frames)
    settings_key = _digest(settings)[:16]
    root = Path(cache_dir).expanduser() / f"regions-{settings_key}"
    clips_dir, failed_dir = root / "clips", root / "failed"
    clips_dir.mkdir(parents=True, exist_ok=True)
    failed_dir.mkdir(parents=True, exist_ok=True)
    settings_path = root / "settings.json"
    if not settings_path.exists():
        write_json_atomically(settings_path, settings, sort_keys=True, default=str)
    remove_stale_temporaries(clips_dir)
    remove_stale_temporaries(failed_dir)
    features = crop_features(len(processor.regions), processor.num_channels, processor.crop_size)

    # a dataset that already carries crop columns (e.g. a cache fed back in) gets fresh ones
    stale = [c for c in features if c in dataset.column_names]
    meta = (dataset.remove_columns(stale) if stale else dataset).to_list()
    tasks, plans = [], []
    for row in meta:
        try:
            chosen = select_frames(len(row["frames"]), row["onset_index"], row["apex_index"], row["offset_index"], span, max_frames)
            paths = [row["frames"][i] for i in chosen]
            key = _clip_key(settings_key, paths)
        except FileNotFoundError as exc:
            raise MieInputError(
                f"Frame {exc.filename} of {row['subject']}/{row['clip']} is gone; load the dataset again."
            ) from exc
        clip_path, failed_path = clips_dir / f"{key}.arrow", failed_dir / f"{key}.json"
        plans.append((row, chosen, key, clip_path, failed_path))
        if clip_path.exists() or (failed_path.exists() and not retry_failed):
            continue
        tasks.append(
            {
                "key": key,
                "paths": paths,
                "subject": row["subject"],
                "clip": row["clip"],
                "clip_path": str(clip_path),
                "failed_path": str(failed_path),
                "features": features.to_dict(),
            }
        )
    if tasks:
        logger.info("Region cache %s: %d of %d clips to crop (%d processes).", root, len(tasks), len(plans), num_proc)
        # Load the face landmarker once here: a missing model file is the environment's problem,
        # not every clip's, and must stop the build instead of being recorded as 442 failures.
        processor.detect_landmarks(np.zeros((64, 64, 3), np.uint8))
    errors = _run(tasks, processor, num_proc, progress, start_method)

    parts, kept, failed = [], [], []
    for row, chosen, key, clip_path, failed_path in plans:
        if clip_path.exists():
            part = Dataset.from_file(str(clip_path))
            parts.append(part)
            kept.append(_stored_row(row, [chosen[i] for i in part[0]["kept_frames"]]))
        elif failed_path.exists():
            failed.append({"subject": row["subject"], "clip": row["clip"], **_reason(failed_path)})
        else:
            failed.append({"subject": row["subject"], "clip": row["clip"], "reason": errors.get(key, "not cropped")})
    if failed:
        shown = "; ".join(f"{f['subject']}/{f['clip']}: {f['reason']}" for f in failed[:10])
        more = f"; ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        message = f"Region cache: {len(failed)} of {len(plans)} clips could not be cropped: {shown}{more}"
        if strict:
            raise MieInputError(message + ". Fix or drop these clips, or pass strict=False to go on without them.")
        logger.warning("%s. They are left out; see dataset.failed_clips.", message)
    if not parts:
        raise MieInputError(f"Region cache: none of the {len(plans)} clips could be cropped; see the warnings above.")
    meta_features = _stored_features({k: v for k, v in dataset.features.items() if k not in stale})
    metadata = Dataset.from_list(kept, features=meta_features)
    crops = concatenate_datasets(parts)
    out = concatenate_datasets([metadata, crops], axis=1)
    # datasets' numpy format turns every integer array into int64 (8x the memory) unless told
    # the dtype; only pixel_values is formatted, the rest stays Python values.
    out.set_format("numpy", columns=["pixel_values"], dtype=np.uint8, output_all_columns=True)
    out.failed_clips = failed
    out.cache_path = root
    return out


def read_cached_crops(cache_path, keys) -> list[np.ndarray]:
    """The stored uint8 crops (frames, regions, channels, height, width) of clips by `cache_key`.

    For worker processes that get the cache folder and the keys rather than the dataset (a LOSO
    fold in another process or on another machine with the same file system).
    """
    from datasets import Dataset

    clips_dir = Path(cache_path) / "clips"
    out = []
    for key in keys:
        path = clips_dir / f"{key}.arrow"
        if not path.exists():
            raise MieInputError(f"Region cache {cache_path} has no clip {key}; build the cache again (build_region_cache).")
        ds = Dataset.from_file(str(path))
        ds.set_format("numpy", columns=["pixel_values"], dtype=np.uint8)
        out.append(np.ascontiguousarray(ds[0]["pixel_values"]))
    return out


def _reason(path: Path) -> dict:
    try:
        return {"reason": json.loads(path.read_text())["reason"]}
    except (OSError, ValueError, KeyError):
        return {"reason": f"recorded as failed in {path}"}


def _run(tasks: list[dict], processor, num_proc: int, progress: bool, start_method: str) -> dict[str, str]:
    """Crop `tasks` in this process or in `num_proc` workers; returns {key: reason} of errors."""
    if not tasks:
        return {}
    from tqdm.auto import tqdm

    errors: dict[str, str] = {}
    bar = tqdm(total=len(tasks), desc="Cropping regions", unit="clip", disable=not progress)
    started = time.perf_counter()
    counts = {"ok": 0, "failed": 0, "error": 0}

    def done(result: dict) -> None:
        counts[result["status"]] += 1
        if result["status"] != "ok":
            errors[result["key"]] = result["reason"]
        bar.update(1)

    try:
        if num_proc == 1 or len(tasks) == 1:
            for task in tasks:
                done(_process_clip(task, processor))
        else:
            if start_method is None:
                start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(start_method)
            if start_method == "forkserver":
                # the server imports mie (torch, transformers) once; its children inherit it
                context.set_forkserver_preload([__name__])
            with concurrent.futures.ProcessPoolExecutor(
                max_workers=min(num_proc, len(tasks)),
                mp_context=context,
                initializer=_init_worker,
                initargs=(pickle.dumps(processor),),
            ) as pool:
                for future in concurrent.futures.as_completed([pool.submit(_process_clip, t) for t in tasks]):
                    done(future.result())
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    if progress:
        logger.info(
            "Region cache: %d clips cropped, %d failed, %d errors in %.1f s (%.2f clips/s).",
            counts["ok"], counts["failed"], counts["error"], elapsed, len(tasks) / max(elapsed, 1e-9),
        )
    return errors


def _stored_row(row: dict, chosen: list[int]) -> dict:
    """The loader row with its frame columns narrowed to the stored frames (`chosen`: their
    indices in the loader's frames); onset, apex and offset move to the nearest stored frame."""
    position = {frame: i for i, frame in enumerate(chosen)}

    def nearest(index: int) -> int:
        if index in position:
            return position[index]
        return int(np.argmin([abs(c - index) for c in chosen]))

    out = dict(row)
    out["frames"] = [row["frames"][i] for i in chosen]
    if "frame_numbers" in row:
        out["frame_numbers"] = [row["frame_numbers"][i] for i in chosen]
    out["num_frames"] = len(chosen)
    out["source_num_frames"] = len(row["frames"])
    out["frame_indices"] = list(chosen)
    for key in ("onset_index", "apex_index", "offset_index"):
        out[key] = nearest(row[key])
    return out


def _stored_features(features):
    from datasets import Features, List, Value

    out = dict(features)
    out["num_frames"] = Value("int32")
    out["source_num_frames"] = Value("int32")
    out["frame_indices"] = List(Value("int32"))
    return Features(out)


__all__ = ["CACHE_FORMAT", "build_region_cache", "cache_settings", "crop_features", "read_cached_crops", "select_frames"]
