"""The app's logic without its UI: load a model once, then classify and explain one uploaded clip.

`app.py` (Gradio) is a thin layer over `MieDemo`: everything here is plain Python and numpy, so
it can be tested, benchmarked and reused without a browser. A user's mistake (no video, an
empty or unreadable file, no face, too large, too long) always raises `MieInputError` with a
sentence a person can act on; the app shows it as `gr.Error`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import MieInputError
from .video import IMAGE_EXTENSIONS, VideoLimits

if TYPE_CHECKING:  # pandas is imported where a table is made, not at import
    import pandas as pd

logger = logging.getLogger(__name__)

# Environment variable naming the model (a local folder or a Hub repo id) when `--model` is not
# given; the bundled checkpoint is the default.
MODEL_ENV = "MIE_MODEL"
BUNDLED_MODEL = Path("checkpoints") / "mie-synthetic-megc2019"

# The model card tag `modeling_mie.hub.render_model_card` writes for models trained on the
# synthetic clips; the warning sentence it puts at the top of such cards is the fallback.
SYNTHETIC_TAG = "synthetic-data"
_SYNTHETIC_SENTENCE = re.compile(r"trained on\s+\W*synthetic", re.IGNORECASE)

# The activity plot's series for the stretches of a clip the model did not read as the face.
NO_FACE_SERIES = "no usable face (not read)"

# Below this probability of its most probable class the app answers "uncertain" (the
# probabilities of a calibrated model say how often it is right: below 0.6 it is wrong at least
# 40 % of the time). Above `LARGE_MOTION_FACTOR` times the motion the model was trained on
# (`MieConfig.trained_motion_peak`, flow models) it answers "large movement" instead of a class.
UNCERTAIN_BELOW = 0.6
LARGE_MOTION_FACTOR = 3.0

SYNTHETIC_WARNING = (
    "It was trained on synthetic clips (two public-domain photos animated with small, "
    "action-unit-like movements), so it is not a real micro-expression recogniser: its answers "
    "on real faces mean nothing."
)


# ------------------------------------------------------------------------------ limits
@dataclass(frozen=True)
class AppLimits:
    """What one upload may cost. Over a hard limit the clip is refused with a message; a long clip
    under the limits is sampled down to `model_frames` instead of refused.

    Attributes:
        max_file_mb: largest upload in MB (10^6 bytes); also given to Gradio's `launch`.
        max_duration_s: longest clip in seconds (a micro-expression lasts under 0.5 s; a few
            seconds around it is plenty).
        max_frames: most frames decoded (5 s at 200 fps). The processor keeps the face area of
            every decoded frame until it samples them, about 0.3 MB per frame for a 640 x 480
            clip or 0.6 MB at 1080p, so this bounds one request's memory (with the frame size).
        max_frame_pixels: most pixels per frame (1080p; 4K phone videos are asked to be
            exported smaller: the face needs a few hundred pixels, not thousands).
        model_frames: frames given to the model and the explanation, spread evenly over the clip;
            None lets the checkpoint decide (`MieDemo.sampling`).
        max_model_frames: cap on the frames given to the model when the checkpoint takes every
            frame; bounds the time of one answer (Grad-CAM runs over all of them).
        max_long_file_mb, max_long_duration_s: the long-video tab's limits (spotting streams the
            video, so memory does not grow with its length; time does, about a third of the
            video's duration on two cores).
    """

    max_file_mb: float = 20.0
    max_duration_s: float = 10.0
    max_frames: int = 1000
    max_frame_pixels: int = 1920 * 1080
    model_frames: int | None = None
    max_model_frames: int = 64
    max_long_file_mb: float = 500.0
    max_long_duration_s: float = 900.0

    def __post_init__(self):
        for name in (
            "max_file_mb", "max_duration_s", "max_frames", "max_frame_pixels", "max_model_frames", "max_long_file_mb",
            "max_long_duration_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"AppLimits.{name} must be a positive number, got {value!r}.")
        if self.model_frames is not None and (not isinstance(self.model_frames, int) or self.model_frames < 2):
            raise ValueError(f"AppLimits.model_frames must be None or an int >= 2, got {self.model_frames!r}.")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)

    def video_limits(self) -> VideoLimits:
        """The processor's own limits: the backstop for headers that lie about length."""
        return VideoLimits(
            max_file_bytes=self.max_file_bytes,
            max_frames=int(self.max_frames),
            max_duration_s=float(self.max_duration_s),
            max_frame_pixels=int(self.max_frame_pixels),
        )

    @property
    def upload_bytes(self) -> int:
        """The largest upload the server takes (the long-video tab's, or the clip tab's if larger)."""
        return int(max(self.max_file_mb, self.max_long_file_mb) * 1_000_000)

    def describe(self) -> str:
        """One line for people: "clips up to 20 MB and 10 s"."""
        return f"clips up to {self.max_file_mb:g} MB and {self.max_duration_s:g} s"

    def describe_long(self) -> str:
        """One line for people: "videos up to 500 MB and 15 min"."""
        minutes = self.max_long_duration_s / 60
        return f"videos up to {self.max_long_file_mb:g} MB and {minutes:g} min"


# ------------------------------------------------------------------------------ results
@dataclass
class MieDemoResult:
    """Everything the app shows for one clip.

    Attributes:
        probabilities: {label: probability}, summing to 1.
        predicted: the most probable label.
        annotated_frame: (H, W, 3) uint8 RGB, the frame the regions were fixed on (the first
            with a face), cut to the face, boxes coloured by `region_importance`.
        heatmaps: one (image (h, w, 3) uint8 RGB, caption) per region: Grad-CAM over that
            region's own crop (no padding) at its peak frame, upscaled for display; empty when
            the model ran with ONNX Runtime (`MieDemo(onnx=...)`), which has no gradients.
        region_names: the model's region names, in order.
        region_importance: (regions,) share of the evidence per region, summing to 1; NaN with
            ONNX Runtime.
        times_s: (frames,) time of every frame sampled for the model, seconds from the clip
            start (source frame index where the frame rate is unknown).
        region_activity: (frames, regions) in [0, 1], how far each region's CNN feature moved
            from the first frame the model read; NaN rows for frames it did not read (no usable
            face there).
        summary: one sentence: the answer and what was read.
        verdict: "class" (a confident class), "uncertain" (no class reaches the threshold) or
            "large movement" (far more motion than the model was trained on: a macro-expression).
        motion_peak: the clip's motion peak, canvas px (flow models; NaN otherwise).
        face: one line on the face track, e.g. "face found from 1.20 s; head turned up to 14 deg;
            aligned".
        face_lost: [(start s, end s, why)] stretches of the clip without a usable face after it was
            found (frame indices where the frame rate is unknown); greyed in the activity plot.
        provenance: which model answered, and whether it was trained on synthetic data.
        notes: remarks about the input (e.g. the clip was sampled, several faces).
        timings: seconds per stage: check, preprocess, explain, render, total.
    """

    probabilities: dict[str, float]
    predicted: str
    annotated_frame: np.ndarray
    heatmaps: list[tuple[np.ndarray, str]]
    region_names: list[str]
    region_importance: np.ndarray
    times_s: np.ndarray
    region_activity: np.ndarray
    summary: str
    provenance: str
    verdict: str = "class"
    motion_peak: float = float("nan")
    face: str = ""
    face_lost: list[tuple[float, float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def activity_columns(self, time_column: str = "time (s)") -> dict[str, list]:
        """The activity plot's data in long form: {time_column, "region", "activity"} lists, one
        row per (frame read by the model, region), ready for `pandas.DataFrame` and
        `gr.LinePlot`; then the stretches without a usable face as one `NO_FACE_SERIES` series
        that outlines each stretch as a box over the full height (joined along the baseline)."""
        names = [pretty_region(n) for n in self.region_names]
        read = ~np.isnan(self.region_activity).any(axis=1)
        times = self.times_s[read].astype(np.float64)
        activity = self.region_activity[read]
        columns = {
            time_column: np.repeat(times, len(names)).round(4).tolist(),
            "region": names * len(times),
            "activity": activity.reshape(-1).round(4).tolist(),
        }
        for start, end, _ in self.face_lost:
            _add_box(columns, time_column, "activity", NO_FACE_SERIES, start, end, 1.0, pad=1e-4)
        return columns


SPOTTED_SERIES = {"micro": "spotted micro-expression", "macro": "spotted macro-expression"}
# Canvas px (the face is 240 px wide): a still face's strongest region is typically under
# STILL_FACE_PX from rest (synthetic and real still faces: 0.1-0.3); a face whose typical motion is
# over BUSY_FACE_PX is moving all the time (talking, laughing), which the spotter is not made for.
STILL_FACE_PX = 0.5
BUSY_FACE_PX = 2.0


@dataclass
class SpotDemoResult:
    """What the long-video tab shows: the spotted intervals and the motion timeline.

    Attributes:
        rows: one dict per interval (`modeling_mie.spot.spot_video`'s columns).
        timeline: long-form columns {"time (s)", "region", "motion (px)"}: each region's
            displacement from rest over the video (at most `TIMELINE_POINTS` points per region,
            the largest value of each stretch), then each interval as a box in its kind's series.
        summary: one paragraph for people.
        video, name: the server-side path and the name to show; fps: its frame rate.
        seconds: how long spotting took.
    """

    rows: list[dict]
    timeline: dict[str, list]
    summary: str
    video: str
    name: str
    fps: float
    seconds: float = 0.0

    def table(self) -> pd.DataFrame:
        """The intervals as the app lists them."""
        import pandas as pd

        columns = ["#", "start (s)", "end (s)", "kind", "class", "probability", "score", "region"]
        records = []
        for i, row in enumerate(self.rows):
            probs = {k[2:]: v for k, v in row.items() if k.startswith("p_")}
            records.append([
                i + 1, row["onset_s"], row["offset_s"], row["kind"], row["label"] or "-",
                round(max(probs.values()), 3) if probs else None, row["score"], pretty_region(row["region"]),
            ])
        return pd.DataFrame(records, columns=columns)


TIMELINE_POINTS = 1500


def spot_timeline(trace, rows: list[dict], time_column: str = "time (s)", value_column: str = "motion (px)") -> dict:
    """Long-form plot columns of a `MotionTrace` and its intervals (see `SpotDemoResult.timeline`)."""
    from .spot import _runs

    px = np.asarray(trace.region_px, np.float64)
    times = np.asarray(trace.times, np.float64)
    n = len(times)
    step = max(1, int(math.ceil(n / TIMELINE_POINTS)))
    columns: dict[str, list] = {time_column: [], "region": [], value_column: []}
    peak = 0.0
    for start in range(0, n, step):
        block = px[start : start + step]
        with np.errstate(all="ignore"):
            values = np.nanmax(block, axis=0) if np.isfinite(block).any() else np.full(px.shape[1], np.nan)
        for r, name in enumerate(trace.region_names):
            if np.isfinite(values[r]):
                columns[time_column].append(round(float(times[start]), 3))
                columns["region"].append(pretty_region(name))
                columns[value_column].append(round(float(values[r]), 3))
                peak = max(peak, float(values[r]))
    top = max(peak, 0.5)
    present = np.asarray(trace.present, bool)
    seen = np.flatnonzero(present)
    if len(seen):  # stretches without a usable face after it was first found, as grey boxes
        lost = ~present
        lost[: seen[0]] = False
        for a, last in _runs(lost):
            _add_box(columns, time_column, value_column, NO_FACE_SERIES, times[a], times[min(last + 1, n - 1)], top)
    for row in rows:
        _add_box(columns, time_column, value_column, SPOTTED_SERIES[row["kind"]], row["onset_s"], row["offset_s"], top)
    return columns


def _add_box(columns: dict, time_column: str, value_column: str, series: str, start, end, top: float, pad: float = 1e-3):
    """A box over [start, end] in long-form plot columns: up at the start, across at `top`, down
    at the end; the tiny `pad` keeps the points in order when the plot sorts them by time."""
    for t, value in ((start - pad, 0.0), (start, top), (end, top), (end + pad, 0.0)):
        columns[time_column].append(round(float(t), 4))
        columns["region"].append(series)
        columns[value_column].append(round(value, 3))


def pretty_region(name: str) -> str:
    """"left_eye" -> "left eye"."""
    return name.replace("_", " ")


# ------------------------------------------------------------------------------ model choice
def resolve_model(model: str | os.PathLike | None = None, default: str | os.PathLike | None = None) -> str:
    """The model to load: `model` (the --model flag), else $MIE_MODEL, else `default` (the bundled
    checkpoint, `BUNDLED_MODEL` relative to the working directory when not given)."""
    for candidate in (model, os.environ.get(MODEL_ENV), default, BUNDLED_MODEL):
        if candidate:
            return str(candidate)
    raise AssertionError("unreachable")


# What huggingface_hub accepts as a repo id: "name" or "org/name".
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _is_missing_folder(model: str) -> bool:
    """True when `model` names a local folder that is not there (rather than a Hub repo id)."""
    local = Path(model).expanduser()
    if local.is_dir():
        return False
    if local.exists() or not _REPO_ID.match(model):
        return True  # a file, or a path a repo id cannot be (absolute, ./, ~, several levels)
    # "checkpoints/name" is also a valid repo id: the bundled default is a folder, never a repo
    return Path(model) == BUNDLED_MODEL or model.startswith(f"{BUNDLED_MODEL.parts[0]}/")


def read_model_card(model: str) -> str | None:
    """README.md of a local model folder or a Hub repo (from the cache or the Hub), or None."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        card = folder / "README.md"
        return card.read_text(encoding="utf-8") if card.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(model, "README.md")).read_text(encoding="utf-8")
    except Exception as err:  # noqa: BLE001 - no card (offline, private, none) only weakens provenance
        logger.info("No model card for %s: %s", model, err)
        return None


def card_says_synthetic(card: str | None, config=None) -> bool:
    """True when the model card (tag `synthetic-data`, or its warning sentence) or the config says
    the model was trained on synthetic clips."""
    if config is not None and bool(getattr(config, "synthetic", False)):
        return True
    if not card:
        return False
    front = card.split("---", 2)[1] if card.startswith("---") and card.count("---") >= 2 else ""
    if re.search(rf"^\s*-\s*{re.escape(SYNTHETIC_TAG)}\s*$", front, re.MULTILINE):
        return True
    return bool(_SYNTHETIC_SENTENCE.search(card))


# ------------------------------------------------------------------------------ the demo
class MieDemo:
    """A model and its processor, loaded once, and `predict(video_path)` for the app.

    Thread-safe: the processor guards its face landmarker, and model calls are serialised (two
    at once would only split the same cores and both finish later). Decoding and cropping of
    concurrent requests still overlap.

    Args:
        model: local folder or Hub repo id (see `resolve_model`).
        limits: `AppLimits`.
        device: torch device for the model.
        face_landmarker_path: MediaPipe's face_landmarker.task (default: resolved by
            `modeling_mie.resolve_face_landmarker_model`).
        display_name: how the provenance line names the model (default `model`); e.g. a path
            relative to the repository rather than the server's absolute path.
        warm_up: create the face landmarker and run the model once now, so that a missing
            landmarker model fails at start (not on every upload) and the first visitor does not
            wait for MediaPipe's and torch's first-call set-up.
        uncertain_below: below this probability of the top class the answer is "uncertain".
        large_motion_factor: a clip moving more than this times the model's
            `trained_motion_peak` gets "large movement" instead of a class.
        onnx: an .onnx file written by `python -m modeling_mie.export`, run with ONNX Runtime
            instead of the PyTorch model (`model` is then ignored: the file carries the config,
            the processor settings and the model card). The answer, the face track and each
            region's activity are the same; Grad-CAM heatmaps and the regions' shares of the
            evidence need gradients, so they are not shown (`MieDemoResult.heatmaps` is empty,
            `region_importance` NaN).
        onnx_threads: ONNX Runtime's threads (None: its default, one per physical core).

    Raises:
        MieInputError: the model cannot be loaded (the message says what to give instead).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        limits: AppLimits | None = None,
        device: str = "cpu",
        face_landmarker_path=None,
        display_name: str | None = None,
        warm_up: bool = True,
        uncertain_below: float = UNCERTAIN_BELOW,
        large_motion_factor: float = LARGE_MOTION_FACTOR,
        onnx: str | os.PathLike | None = None,
        onnx_threads: int | None = None,
    ):
        from .modeling_mie import MieForVideoClassification
        from .processing_mie import MieProcessor

        if not 0 < uncertain_below <= 1:
            raise ValueError(f"uncertain_below must be in (0, 1], got {uncertain_below!r}.")
        if not large_motion_factor > 0:
            raise ValueError(f"large_motion_factor must be positive, got {large_motion_factor!r}.")
        self.uncertain_below = float(uncertain_below)
        self.large_motion_factor = float(large_motion_factor)
        self.onnx = onnx is not None
        self.model_id = str(onnx if self.onnx else model)
        self.display_name = display_name or self.model_id
        self.limits = limits or AppLimits()
        local = Path(self.model_id).expanduser()
        started = time.perf_counter()
        if self.onnx:
            from .onnx_runtime import OnnxMieModel

            self.model = OnnxMieModel(self.model_id, num_threads=onnx_threads)  # MieInputError if unusable
            self.processor = self.model.processor(face_landmarker_path=face_landmarker_path)
            self.is_local = True
            self.card = self.model.model_card
            frames = self.limits.model_frames
            if frames is not None and frames > self.model.num_frames:
                raise MieInputError(
                    f"--model-frames {frames} is more than the {self.model.num_frames} frames {Path(self.model_id).name} "
                    f"takes; give at most {self.model.num_frames}, or export it again with --frames {frames}."
                )
        elif _is_missing_folder(self.model_id):
            raise MieInputError(
                f"The model folder {self.model_id} does not exist. Pass --model with a folder that holds "
                f"config.json and model.safetensors, or a Hub repo id such as org/name (or set {MODEL_ENV})."
            )
        else:
            try:
                self.model = MieForVideoClassification.from_pretrained(self.model_id).to(device).eval()
                self.processor = MieProcessor.from_pretrained(self.model_id, face_landmarker_path=face_landmarker_path)
            except (OSError, ValueError) as err:
                raise MieInputError(
                    f"Could not load a mie model from {self.model_id!r} ({err}). Pass --model with a local folder "
                    f"written by train/loso.py or a Hub repo id of a mie model (or set {MODEL_ENV})."
                ) from err
            self.is_local = local.is_dir()
            self.card = read_model_card(self.model_id)
        self.synthetic = card_says_synthetic(self.card, self.model.config)
        self.sampling = self._choose_sampling()
        self._model_lock = threading.Lock()
        if warm_up:
            self._warm_up()
        logger.info(
            "Loaded %s in %.1f s (%s; frames: %s)", self.model_id, time.perf_counter() - started,
            "synthetic" if self.synthetic else "real data or unknown", self.sampling,
        )

    # -- construction helpers ------------------------------------------------------------
    def _warm_up(self) -> None:
        from .explain import explain_clip

        self.processor.detect_landmarks(np.zeros((64, 64, 3), np.uint8))  # MieInputError if the .task is missing
        config = self.model.config
        blank = torch.zeros(1, 2, config.num_regions, config.num_channels, *config.crop_size)
        with self._model_lock:
            if self.onnx:
                self.model(blank.numpy())
            else:
                explain_clip(self.model, blank)

    def _choose_sampling(self) -> dict:
        """How frames are chosen for the model, most specific first: the app's `model_frames`;
        the processor's own fixed-length sampling (train/loso.py saves the training's evenly
        spaced `num_frames` there, so a model is asked the way it was trained); otherwise every
        frame up to `max_model_frames`."""
        limits, proc = self.limits, self.processor
        if limits.model_frames is not None:
            return {"frame_sampling": "uniform", "num_frames": limits.model_frames, "max_frames": limits.model_frames}
        if proc.frame_sampling in ("uniform", "interpolate") and proc.num_frames:
            n = min(int(proc.num_frames), limits.max_model_frames)
            return {"frame_sampling": proc.frame_sampling, "num_frames": n, "max_frames": n}
        return {"frame_sampling": "all", "num_frames": None, "max_frames": int(limits.max_model_frames)}

    @property
    def label_names(self) -> list[str]:
        config = self.model.config
        return [config.id2label[i] for i in range(config.num_labels)]

    @property
    def provenance(self) -> str:
        """One line (Markdown) saying which model answers and what it was trained on."""
        name = self.display_name
        where = f"the local folder `{name}`" if self.is_local else f"the Hugging Face Hub repo `{name}`"
        if self.onnx:
            source = f" (exported from `{self.model.source}`)" if self.model.source else ""
            where = f"the ONNX file `{name}`{source}, run with ONNX Runtime"
        line = f"Answered by the model in {where}."
        if self.synthetic:
            line += " " + SYNTHETIC_WARNING
        elif self.card is None:
            line += " It has no model card, so what it was trained on is unknown."
        return line

    def close(self) -> None:
        """Release the face landmarker (MediaPipe); the model needs nothing."""
        self.processor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- input checks ----------------------------------------------------------------------
    def check_upload(self, video_path, long: bool = False) -> tuple[Path, str, dict]:
        """Refuse what cannot be a usable clip before any decoding; returns (path, display name,
        header facts {fps, frames, width, height}). `long`: the long-video tab's limits.

        Raises:
            MieInputError: nothing given, missing, empty, too large, a picture, not a video, or
                (from the header) too long.
        """
        what = "video" if long else "clip"
        if video_path is None or (isinstance(video_path, str) and not video_path.strip()):
            if long:
                raise MieInputError("No video was given. Upload a video of one face (up to a few minutes), then press Spot.")
            raise MieInputError(
                "No clip was given. Upload a short video of one face (or record one with the webcam), "
                "or click one of the examples, then press Analyse."
            )
        if isinstance(video_path, dict):  # a FileData-like dict from an API caller
            video_path = video_path.get("path") or video_path.get("video", {}).get("path")
        path = Path(str(video_path))
        name = f'"{path.name}"'
        if not path.is_file():
            raise MieInputError(f"The upload {name} did not arrive as a file. Upload it again.")
        size = path.stat().st_size
        if size == 0:
            raise MieInputError(f"{name} is empty (0 bytes). Upload the video file again, or record a new clip.")
        limits = self.limits
        max_bytes = int(limits.max_long_file_mb * 1_000_000) if long else limits.max_file_bytes
        if size > max_bytes:
            if long:
                raise MieInputError(
                    f"{name} is {size / 1e6:.1f} MB; this demo takes {limits.describe_long()}. Export it at a lower "
                    "resolution or bit rate (640 x 480 is plenty for a face), or cut it into parts."
                )
            raise MieInputError(
                f"{name} is {size / 1e6:.1f} MB; this demo takes {limits.describe()}. Trim the video to the "
                "moment of the expression (a micro-expression lasts under half a second) or lower its resolution, "
                "or use the Long video tab."
            )
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise MieInputError(
                f"{name} is a still image. A micro-expression is a movement, so upload a video {what} "
                "(mp4, webm, avi, mov) of a face instead."
            )
        header = _video_header(path)
        if header is None:
            raise MieInputError(
                f"{name} is not a video this demo can read: it may be another kind of file, or a damaged or "
                "truncated video. Upload an mp4 or webm video of a face."
            )
        fps, frames = header["fps"], header["frames"]
        if header["width"] * header["height"] > limits.max_frame_pixels:
            raise MieInputError(
                f"{name} has {header['width']} x {header['height']} pixel frames, above this demo's limit of "
                f"{limits.max_frame_pixels / 1e6:.1f} megapixels. Export it at a lower resolution (720p is plenty)."
            )
        if long:
            if fps and frames and frames / fps > limits.max_long_duration_s:
                raise MieInputError(
                    f"{name} lasts {frames / fps / 60:.1f} min; this demo takes {limits.describe_long()}. Cut it into "
                    "parts, or run `python -m modeling_mie.spot` on it, which has no length limit."
                )
            if not fps:
                raise MieInputError(f"{name} does not say its frame rate, which spotting needs for durations. Re-export it as MP4.")
            return path, name, header
        if fps and frames and frames / fps > limits.max_duration_s:
            raise MieInputError(
                f"{name} lasts {frames / fps:.1f} s; this demo takes {limits.describe()}. Trim the video to the "
                "few seconds around the expression, or use the Long video tab, which finds the expressions in it."
            )
        if frames and frames > limits.max_frames:
            raise MieInputError(
                f"{name} has {frames} frames; this demo reads at most {limits.max_frames}. Trim the video to the "
                "few seconds around the expression, or use the Long video tab."
            )
        return path, name, header

    # -- the one entry point -----------------------------------------------------------------
    def predict(self, video_path) -> MieDemoResult:
        """Classify one clip and explain the answer.

        Args:
            video_path: path of an uploaded video file (str or Path).

        Returns:
            `MieDemoResult`.

        Raises:
            MieInputError: for every problem with the clip; the message is meant for people.
        """
        timings = {}
        t0 = time.perf_counter()
        path, name, header = self.check_upload(video_path)
        t1 = time.perf_counter()
        timings["check"] = t1 - t0
        try:
            inputs = self.processor(
                str(path), return_tensors="pt", video_limits=self.limits.video_limits(), **self.sampling
            )
        except MieInputError as err:
            raise MieInputError(_for_people(str(err), path, name)) from err
        t2 = time.perf_counter()
        timings["preprocess"] = t2 - t1

        from .explain import explain_clip

        with self._model_lock:
            if self.onnx:
                explanation = onnx_explanation(self.model(inputs["pixel_values"], inputs["frame_mask"]), self.model.config)
            else:
                explanation = explain_clip(self.model, inputs["pixel_values"], inputs["frame_mask"])
        t3 = time.perf_counter()
        timings["explain"] = t3 - t2

        result = self._render(path, name, inputs, explanation)
        t4 = time.perf_counter()
        timings["render"] = t4 - t3
        timings["total"] = t4 - t0
        result.timings = timings
        logger.info("%s: %s in %.2f s (%s)", name, result.predicted, timings["total"],
                    ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if k != "total"))
        return result

    # -- long videos ---------------------------------------------------------------------------
    def classify(self, pixel_values, frame_mask) -> list[float]:
        """Calibrated probabilities of one clip's crops (the model under its lock)."""
        with self._model_lock:
            if self.onnx:
                return [float(p) for p in self.model(pixel_values, frame_mask).probabilities[0]]
            with torch.no_grad():
                logits = self.model(pixel_values=pixel_values, frame_mask=frame_mask).logits[0]
            return torch.softmax(logits, -1).tolist()

    def recognise_frames(self, frames: np.ndarray, fps: float) -> dict[str, float]:
        """{label: probability} of a short stack of RGB frames (a live interval)."""
        inputs = self.processor(frames, return_tensors="pt", fps=fps, **self.sampling)
        return dict(zip(self.label_names, self.classify(inputs["pixel_values"], inputs["frame_mask"])))

    def live_session(self, fps: float = 10.0):
        """A `LiveSpotter` for one webcam session (its own landmarker; close it when done)."""
        from .spot_live import LiveSpotter

        live = LiveSpotter(self.processor, recogniser=self.recognise_frames, fps=fps)
        self.last_live = live  # the newest session, for tests and debugging
        return live

    def spot(self, video_path, on_frame=None) -> "SpotDemoResult":
        """Spot the expressions of a long video and recognise each (`modeling_mie.spot`).

        Args:
            video_path: path of an uploaded video file.
            on_frame: progress callback (analysed frames done, total or 0).

        Raises:
            MieInputError: for every problem with the video; the message is meant for people.
        """
        from .spot import SpotSettings, spot_video

        started = time.perf_counter()
        path, name, header = self.check_upload(video_path, long=True)
        try:
            frame, trace = spot_video(
                path, self.model, fps=header["fps"], settings=SpotSettings(), processor=self.processor,
                progress=False, return_trace=True, classify=self.classify, on_frame=on_frame,
            )
        except MieInputError as err:
            raise MieInputError(_for_people(str(err), path, name)) from err
        seconds = time.perf_counter() - started
        rows = frame.to_dict("records")
        duration = trace.num_frames / trace.fps
        kinds = {k: sum(r["kind"] == k for r in rows) for k in ("micro", "macro")}
        with np.errstate(all="ignore"):
            strongest = np.nanmax(trace.region_px, axis=1)
        typical = float(np.nanmedian(strongest)) if np.isfinite(strongest).any() else float("nan")
        if rows:
            found = f"**{len(rows)} interval(s)** spotted: {kinds['micro']} micro, {kinds['macro']} macro"
        elif math.isfinite(typical) and typical > BUSY_FACE_PX:
            found = (
                f"**No expression spotted, but this face hardly rests**: its most moving region is typically "
                f"{typical:.1f} px from rest (a still face: under {STILL_FACE_PX:g} px), so no movement stands out. The "
                "spotter looks for brief movements of a face that is otherwise still (someone watching, listening); "
                "a face that talks or laughs throughout is moving all the time"
            )
        else:
            found = "**No expression spotted**: no region moved clearly above the face's own stillness"
        summary = (
            f"{found}. {duration:.1f} s at {trace.fps:.4g} fps, analysed in {seconds:.1f} s. "
            f"{trace.face[0].upper() + trace.face[1:]}."
        )
        if rows:
            summary += " Choose an interval in the table to see its class and heatmaps."
        return SpotDemoResult(
            rows=rows, timeline=spot_timeline(trace, rows), summary=summary, video=str(path), name=name,
            fps=trace.fps, seconds=seconds,
        )

    def predict_interval(self, spotted: "SpotDemoResult", number: int) -> MieDemoResult:
        """Classify and explain interval `number` (0-based) of a spotted video, as `predict` does
        a clip: its frames from onset to offset (evenly sampled down to `max_frames`)."""
        from .spot import LongVideo

        if not 0 <= number < len(spotted.rows):
            raise MieInputError(f"There is no interval {number + 1}; choose one of the {len(spotted.rows)} in the table.")
        row = spotted.rows[number]
        onset, offset = int(row["onset_frame"]), int(row["offset_frame"])
        path = Path(spotted.video)
        try:
            frames, rate = LongVideo(path, spotted.fps).interval(onset, offset, min(offset - onset + 1, int(self.limits.max_frames)))
        except MieInputError as err:
            raise MieInputError(_for_people(str(err), path, spotted.name)) from err
        if frames is None:
            raise MieInputError(f"{spotted.name} no longer holds frames {onset}-{offset}; spot the video again.")
        try:
            inputs = self.processor(frames, return_tensors="pt", fps=rate, **self.sampling)
        except MieInputError as err:
            raise MieInputError(_for_people(str(err), path, spotted.name)) from err
        from .explain import explain_clip

        with self._model_lock:
            if self.onnx:
                explanation = onnx_explanation(self.model(inputs["pixel_values"], inputs["frame_mask"]), self.model.config)
            else:
                explanation = explain_clip(self.model, inputs["pixel_values"], inputs["frame_mask"])
        result = self._render(path, spotted.name, inputs, explanation, frames=frames, time_offset=onset / spotted.fps)
        result.summary = (
            f"Interval {number + 1} ({row['kind']}, {row['onset_s']:.2f}-{row['offset_s']:.2f} s): " + result.summary
        )
        return result

    # -- pictures ------------------------------------------------------------------------------
    def _render(
        self, path: Path, name: str, inputs, explanation, frames: np.ndarray | None = None, time_offset: float = 0.0
    ) -> MieDemoResult:
        from .explain import overlay_heatmap
        from .flow import decode_flow
        from .visualize import draw_regions, flow_to_rgb, score_colors

        config = self.model.config
        names = list(explanation.region_names)
        importance = np.asarray(explanation.region_importance, np.float64)
        positions = inputs["frame_positions"][0].numpy().astype(np.float64)  # every sampled frame
        read = int(inputs["frame_mask"][0].sum())  # those with the face, which the model read
        fps = float(inputs["fps"][0])
        has_fps = math.isfinite(fps) and fps > 0
        times = positions / fps + time_offset if has_fps else positions
        source_frames = int(inputs["num_source_frames"][0])
        track = inputs["face_track"][0]

        def clock(index: float) -> float:
            return index / fps + time_offset if has_fps else float(index)

        lost = [(clock(a), clock(b + 1), why) for a, b, why in track["lost"]]

        # the frame the boxes were fixed on, with the regions coloured by their share
        landmark_frame = max(int(inputs["landmark_frame"][0]), 0)
        frame = frames[landmark_frame] if frames is not None else _read_frame(path, landmark_frame)
        if frame.ndim == 2 or frame.shape[2] == 1:
            frame = np.repeat(frame.reshape(frame.shape[0], frame.shape[1], 1), 3, axis=2)
        boxes = inputs["region_boxes"][0].numpy()
        # labels in percent (draw_regions would print the raw score); min_side keeps them legible
        if self.onnx:  # no shares without gradients: the boxes in their own colours, named
            labels = [pretty_region(n) for n in names]
            annotated = draw_regions(frame, boxes, labels, fill_alpha=0.2, margin=0.35, min_side=640)
        else:
            labels = [f"{pretty_region(n)} {share:.0%}" for n, share in zip(names, importance)]
            annotated = draw_regions(
                frame, boxes, labels, colors=score_colors(importance), fill_alpha=0.35, margin=0.35, min_side=640
            )

        # one heatmap per region, over the region's own crop (the padding cut off) at its peak frame
        pixel_values = inputs["pixel_values"][0]  # (frames, regions, channels, H, W)
        sizes = config.region_crop_sizes
        factor = max(1, int(round(320 / max(w for _, w in sizes))))  # largest crop about 320 px wide
        heatmaps = []
        for r, region in enumerate(names if not self.onnx else []):
            h, w = sizes[r]
            peak = int(explanation.peak_frames[r])
            crop = pixel_values[peak, r, :, :h, :w].permute(1, 2, 0).numpy()  # (h, w, C) in [0, 1]
            if config.input_mode == "flow":  # u, v, magnitude codes -> a colour picture of the flow
                crop = flow_to_rgb(decode_flow(crop)[..., :2], scale=1.0)  # flow is stored divided by its peak
            else:
                crop = np.clip(crop * 255.0 + 0.5, 0, 255).astype(np.uint8)
            crop = _upscale(crop, factor, smooth=True)
            heat = _upscale(explanation.heatmaps[r, :h, :w].astype(np.float32), factor, smooth=True)
            when = f"{times[peak]:.2f} s" if has_fps else f"frame {int(positions[peak])}"
            caption = f"{pretty_region(region)} {importance[r]:.0%}, {when}"  # ~25 characters fit a tile
            heatmaps.append((overlay_heatmap(crop, np.clip(heat, 0, 1)), caption))

        probabilities = {k: float(v) for k, v in explanation.probabilities_dict().items()}
        predicted = explanation.label_names[explanation.predicted]
        duration = f"{source_frames / fps:.2f} s at {fps:.4g} fps" if has_fps else "frame rate unknown"
        peak_value = inputs.get("motion_peak")
        motion_peak = float(peak_value[0]) if peak_value is not None else float("nan")
        verdict, headline = answer_verdict(
            probabilities, motion_peak, getattr(config, "trained_motion_peak", None),
            self.uncertain_below, self.large_motion_factor,
        )
        if self.onnx:
            evidence = ""
        else:
            top = max(range(len(names)), key=lambda i: importance[i])
            evidence = f"; most evidence from the **{pretty_region(names[top])}** ({importance[top]:.0%})"
        summary = (
            f"{headline}{evidence}. Read {source_frames} frames ({duration}); the model saw {read} of them."
        )
        face = track["summary"][0].upper() + track["summary"][1:] + "."
        notes = [n for n in str(inputs["notes"][0]).split("; ") if n]
        sampled = len(positions)
        span = int(inputs["face_span"][0][1]) - int(inputs["face_span"][0][0]) + 1
        if sampled < span:
            notes.append(f"The {span} frames with the face were sampled evenly down to {sampled} for the model.")
        if read < sampled:
            notes.append(f"{sampled - read} of the {sampled} sampled frames had no usable face; the model skipped them.")
        if self.onnx:
            notes.append(
                "Run with ONNX Runtime: the regions' shares of the evidence and the Grad-CAM heatmaps need the "
                "PyTorch model (start the app with --model instead of --onnx to see them)."
            )
        return MieDemoResult(
            probabilities=probabilities,
            predicted=predicted,
            annotated_frame=annotated,
            heatmaps=heatmaps,
            region_names=names,
            region_importance=importance.astype(np.float32),
            times_s=times.astype(np.float32),
            region_activity=np.asarray(explanation.region_activity, np.float32),
            summary=summary,
            provenance=self.provenance,
            verdict=verdict,
            motion_peak=motion_peak,
            face=face,
            face_lost=lost,
            notes=[_strip_path(n, path, name) for n in notes],
        )


# ------------------------------------------------------------------------------ helpers
def answer_verdict(
    probabilities: dict[str, float],
    motion_peak: float,
    trained_motion_peak: float | None,
    uncertain_below: float = UNCERTAIN_BELOW,
    large_motion_factor: float = LARGE_MOTION_FACTOR,
) -> tuple[str, str]:
    """What the app answers, as (verdict, Markdown headline).

    "large movement" when the clip moved more than `large_motion_factor` times the training
    clips' motion (both known: flow models); else "uncertain" when the top probability is below
    `uncertain_below`; else "class". The headline always names the most probable class.
    """
    predicted = max(probabilities, key=probabilities.get)
    p = probabilities[predicted]
    if trained_motion_peak and math.isfinite(motion_peak) and motion_peak > large_motion_factor * trained_motion_peak:
        ratio = motion_peak / trained_motion_peak
        return "large movement", (
            f"**Large movement: this looks like a macro-expression**, not a micro-expression: the face moved "
            f"{ratio:.0f}x more than the clips the model learned from. Nearest class: {predicted} ({p:.0%}), "
            "which means little this far outside its training"
        )
    if p < uncertain_below:
        ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
        spread = ", ".join(f"{k} {v:.0%}" for k, v in ranked)
        return "uncertain", f"**Uncertain**: no class reaches {uncertain_below:.0%} ({spread})"
    return "class", f"**{predicted}** ({p:.0%})"


def onnx_explanation(out, config):
    """A `MieExplanation` from an ONNX Runtime answer (`OnnxMieOutput` of one clip): the
    probabilities and each region's activity over time, computed as `explain_clip` computes them
    from the region features; no Grad-CAM (`heatmaps` empty) and no shares (`region_importance` NaN)."""
    from .explain import MieExplanation

    features = out.region_features[0]  # (frames, R, F), zero where not read
    real = np.flatnonzero(out.frame_mask[0])
    moved = np.linalg.norm(features[real] - features[real[:1]], axis=-1)  # (T, R) from the first real frame
    peak = float(moved.max())
    timeline = np.full(features.shape[:2], np.nan, np.float32)
    timeline[real] = moved / peak if peak > 0 else 0.0
    regions = config.num_regions
    predicted = int(out.probabilities[0].argmax())
    return MieExplanation(
        probabilities=out.probabilities[0],
        label_names=list(out.label_names),
        predicted=predicted,
        target=predicted,
        region_names=config.region_names,
        region_importance=np.full(regions, np.nan, np.float32),
        heatmaps=np.zeros((0, *config.crop_size), np.float32),
        peak_frames=real[moved.argmax(axis=0)],
        region_activity=timeline,
    )


def _video_header(path: Path) -> dict | None:
    """fps, frame count and size from the container header, or None when OpenCV cannot open it
    or decode its first frame (a renamed text file opens on some backends, then yields nothing)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return {
            # containers without a rate report 0, some a time base (1000, 90000): not a frame rate
            "fps": float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None,
            "frames": int(count) if math.isfinite(count) and 0 < count < 1e9 else None,
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
        }
    finally:
        cap.release()


def _read_frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` of a video file as (H, W, 3) uint8 RGB (decoding from the start: the index is
    small, the first frame with a face, and seeking in VP8 / H.264 is not frame-exact)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        frame = None
        for _ in range(index + 1):
            ok, frame = cap.read()
            if not ok:
                raise MieInputError(f"{path.name} ended before frame {index}; upload it again.")
    finally:
        cap.release()
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _upscale(image: np.ndarray, factor: int, smooth: bool) -> np.ndarray:
    import cv2

    if factor <= 1:
        return image
    squeeze = image.ndim == 3 and image.shape[2] == 1
    out = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC if smooth else cv2.INTER_NEAREST)
    return out[:, :, None] if squeeze and out.ndim == 2 else out


def _strip_path(message: str, path: Path, name: str) -> str:
    """The server-side temporary path means nothing to the person who uploaded: show the name."""
    return message.replace(str(path), name)


# Developer advice in package messages that a person using the app cannot follow, and what the
# app says instead.
_APP_WORDING = (
    (re.compile(r"; or pass landmarks= or boxes= to the processor yourself\."), "."),
    (re.compile(r",? or (raise|lower) the limit\.?"), "."),
    (re.compile(r" \(VideoLimits\.\w+\)"), ""),
    (re.compile(r",? or lower min_face_size\.?"), "."),
    (re.compile(r",? or set min_frames=1 to crop a single image anyway\.?"), "."),
)


def _for_people(message: str, path: Path, name: str) -> str:
    message = _strip_path(message, path, name)
    for pattern, replacement in _APP_WORDING:
        message = pattern.sub(replacement, message)
    return re.sub(r"\.\.+", ".", message)


__all__ = [
    "SPOTTED_SERIES",
    "SpotDemoResult",
    "spot_timeline",
    "AppLimits",
    "BUNDLED_MODEL",
    "MODEL_ENV",
    "NO_FACE_SERIES",
    "MieDemo",
    "MieDemoResult",
    "answer_verdict",
    "card_says_synthetic",
    "onnx_explanation",
    "pretty_region",
    "read_model_card",
    "resolve_model",
]
