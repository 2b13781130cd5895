"""MieProcessor: a face clip in, the six fixed region crops of every frame out (Aouayeb et al., 2019)."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import time
from typing import Any, TypedDict

import numpy as np
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from .configuration_mie import MieConfig
from .errors import MieInputError
from .flow import FaceFlow, encode_flow, flow_peak, reference_to_canvas
from .landmarks import (
    DEFAULT_DETECT_MAX_SIDE,
    MEDIAPIPE_TO_DLIB68,
    FaceLandmarks,
    MieFaceLandmarker,
    release_shared_landmarker,
    shared_landmarker,
    turn_between,
)
from .regions import aligned_region_crops, crop_regions, face_box_from_landmarks, region_boxes_from_face_box, round_boxes
from .tracking import (
    FaceTracker, NoUsableFace, apply_affine, find_reference, frame_motion, rigid_points, track_report
)
from .video import Clip, VideoLimits, is_image_path, open_clip

logger = logging.getLogger(__name__)

# The processor's copy of the config's region table and front end (alignment, the turn limit);
# `from_pretrained` re-reads them from the folder's config.json so that the two cannot drift
# (see `get_image_processor_dict`).
GEOMETRY_KEYS = (
    "regions", "canvas_size", "crop_scale", "face_box_landmarks", "num_channels", "align", "max_head_turn", "flow"
)
FRAME_SAMPLING_MODES = ("all", "uniform", "interpolate")
_CALL_OPTIONS = (
    "frame_sampling",
    "num_frames",
    "max_frames",
    "do_rescale",
    "rescale_factor",
    "min_frames",
    "min_face_size",
    "detect_max_side",
    "landmark_every",
    "face_search_stride",
    "face_search_checks",
    "video_limits",
)
# transformers' own bookkeeping keys, found in saved preprocessor_config.json files
_BOOKKEEPING_KEYS = {"image_processor_type", "auto_map", "processor_class", "_processor_class"}
# Settings of older mie versions that no longer mean anything, dropped quietly on load:
# landmark_search_frames bounded the face search to the first frames (the whole clip is searched now).
_RETIRED_KEYS = {"landmark_search_frames"}


class MieProcessorKwargs(TypedDict, total=False):
    """Keyword arguments `MieProcessor.from_pretrained(..., **kwargs)` may override."""

    regions: list
    canvas_size: list
    crop_scale: float
    face_box_landmarks: dict
    num_channels: int
    align: bool
    max_head_turn: float
    flow: bool
    frame_sampling: str
    num_frames: int | None
    max_frames: int
    do_rescale: bool
    rescale_factor: float
    min_frames: int
    min_face_size: float
    detect_max_side: int
    landmark_every: int
    face_search_stride: int
    face_search_checks: int
    video_limits: dict
    face_landmarker_path: str  # used, never saved (a local path means nothing on the Hub)


# ------------------------------------------------------------------------------ geometry
def geometry_from_config(config: MieConfig) -> dict:
    """The part of a `MieConfig` the processor needs: regions (name + box), canvas, scale, channels,
    the front end (`align`, `max_head_turn`) and whether the crops are optical flow (`flow`, from
    `input_mode="flow"`; the other input modes are the model's business)."""
    geometry = {key: getattr(config, key) for key in GEOMETRY_KEYS if key != "flow"}
    return _normalise_geometry({**geometry, "flow": config.input_mode == "flow"})


def _normalise_geometry(geometry: dict) -> dict:
    """Geometry in one comparable form (JSON gives lists and float/int mixes). Settings missing
    from an older file take the defaults that keep its behaviour (no alignment)."""
    return {
        "regions": [{"name": str(r["name"]), "box": [int(v) for v in r["box"]]} for r in geometry["regions"]],
        "canvas_size": [int(v) for v in geometry["canvas_size"]],
        "crop_scale": float(geometry["crop_scale"]),
        "face_box_landmarks": {k: [int(i) for i in v] for k, v in sorted(geometry["face_box_landmarks"].items())},
        "num_channels": int(geometry["num_channels"]),
        "align": bool(geometry.get("align", False)),
        "max_head_turn": float(geometry.get("max_head_turn", MieConfig.max_head_turn)),
        "flow": bool(geometry.get("flow", False)),
    }


def as_dlib68(landmarks: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """Caller or detector landmarks as (MediaPipe 478 points or None, dlib-68 points), in pixels.

    Accepts a `FaceLandmarks`, a (478, 2) MediaPipe array or a (68, 2) dlib array (x, y pixels).
    """
    if isinstance(landmarks, FaceLandmarks):
        points = np.asarray(landmarks.points, np.float32)
    else:
        if hasattr(landmarks, "detach"):
            landmarks = landmarks.detach().cpu().numpy()
        points = np.asarray(landmarks, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] < 2 or points.shape[0] not in (478, 68):
        raise MieInputError(
            f"landmarks must be a (478, 2) MediaPipe face mesh or (68, 2) dlib points in pixels; got shape "
            f"{points.shape}."
        )
    points = points[:, :2]
    if not np.isfinite(points).all():
        raise MieInputError("landmarks contain NaN or infinite values; pass finite pixel coordinates.")
    if points.shape[0] == 478:
        return points, points[MEDIAPIPE_TO_DLIB68]
    return None, points


def frame_positions(num_source: int, frame_sampling: str, num_frames: int | None, max_frames: int) -> np.ndarray:
    """Source-frame position of every output frame, (frames_out,) float64.

    "all": every frame, 0..T-1; clips longer than `max_frames` are sampled uniformly down to
    `max_frames` (so a long clip stays bounded instead of failing). "uniform": `num_frames`
    frames spread evenly from the first to the last (rounded to whole frames); clips with fewer
    frames keep all of them (no frame is repeated; `frame_mask` marks the real ones).
    "interpolate": exactly `num_frames` positions evenly from 0 to T-1, fractional positions
    blended linearly between the two neighbouring frames (temporal normalisation to a fixed
    length, as micro-expression work often does with its clips of 10 to 500 frames).
    """
    if frame_sampling == "all":
        if num_source <= max_frames:
            return np.arange(num_source, dtype=np.float64)
        return np.round(np.linspace(0, num_source - 1, max_frames))
    if frame_sampling == "uniform":
        if num_source <= num_frames:
            return np.arange(num_source, dtype=np.float64)
        return np.round(np.linspace(0, num_source - 1, num_frames))
    return np.linspace(0, num_source - 1, num_frames)


class _Rows:
    """A growing (n, *shape) array (uint8 unless told), doubling its capacity as rows are added."""

    def __init__(self, shape: tuple, capacity: int = 64, dtype=np.uint8):
        self._data = np.empty((capacity, *shape), dtype)
        self._count = 0

    def next_row(self) -> np.ndarray:
        if self._count == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._count += 1
        return self._data[self._count - 1]

    def array(self) -> np.ndarray:
        return self._data[: self._count]


# ------------------------------------------------------------------------------ inputs
def _item_kind(item: Any) -> str:
    """'frame' or 'clip' for an element of a list given to the processor (see `MieProcessor`)."""
    if isinstance(item, (Clip, list, tuple)):
        return "clip"
    if isinstance(item, (str, os.PathLike)):
        return "frame" if is_image_path(item) else "clip"
    if hasattr(item, "getbands"):  # PIL image
        return "frame"
    shape = getattr(item, "shape", None)
    if shape is not None:
        if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4)):
            return "frame"
        if len(shape) in (3, 4):
            return "clip"
    return "unknown"


def _split_batch(videos: Any) -> tuple[list, bool]:
    """(clips, is_batch) from whatever the caller passed."""
    if videos is None:
        raise MieInputError("No clip was given; pass a video path, a folder of frames or an array of frames.")
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise MieInputError("An empty list was given; pass at least one clip or frame.")
        kinds = {_item_kind(v) for v in videos}
        if kinds == {"frame"}:
            return [list(videos)], False
        if kinds == {"clip"}:
            return list(videos), True
        raise MieInputError(
            "A list must hold either frames of one clip (images, image paths, (H, W[, C]) arrays) or "
            "clips of a batch (video paths, frame folders, (T, H, W[, C]) arrays, lists of frames); "
            f"got a mix ({sorted(kinds)})."
        )
    shape = getattr(videos, "shape", None)
    if shape is not None and len(shape) == 5:
        return list(videos), True
    return [videos], False


def _per_clip(value: Any, count: int, is_batch: bool, name: str, item_ndim: int) -> list:
    """Spread a per-clip argument (landmarks, boxes, fps) over the clips of a batch."""
    if value is None:
        return [None] * count
    if not is_batch:
        return [value]
    if isinstance(value, (int, float)) and name == "fps":
        return [value] * count
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) == item_ndim + 1:
        value = list(value)
        if len(value) != count:
            raise MieInputError(f"{name} must hold one entry per clip: {count} clips, {len(value)} entries.")
        return value
    raise MieInputError(f"For a batch of {count} clips, pass {name} as a list with one entry per clip.")


# ------------------------------------------------------------------------------ processor
class MieProcessor(BaseImageProcessor):
    r"""
    Turns a face clip into the input of [`MieForVideoClassification`] the way the paper does
    (Aouayeb et al., 2019, section 2): landmarks on the first usable frame, six region boxes
    fixed from them, the same boxes cut out of every frame, each crop resized to its region
    size and padded with black to one common size; and, for footage as people record it, with
    the face followed through the clip (`modeling_mie.tracking`).

    The geometry is the config's region table ([`MieConfig`] `regions`, `canvas_size`,
    `crop_scale`, `face_box_landmarks`, `num_channels`) and its front end (`align`,
    `max_head_turn`): build the processor with `MieProcessor.from_config(config)`.
    `MieProcessor()` uses `MieConfig()` (the paper's geometry, grey crops, no alignment).
    `from_pretrained(folder)` takes them from the folder's config.json when there is one, so a
    checkpoint's processor cannot drift from its model.

    Inputs (`processor(videos, ...)`): one clip, or a list of clips for a batch. A clip is a
    video file (anything OpenCV decodes), a folder of frame images (ordered by the integer in
    the file names), a list of frames (image paths, PIL images or (H, W[, C]) arrays), an
    array / tensor of frames ((T, H, W[, C]) or (T, C, H, W), RGB, uint8 / uint16 / float in
    [0, 1]) or a [`Clip`]. A list of frames is one clip; a list of clips is a batch.

    Where the face is. The whole clip is searched (every `face_search_stride`-th frame, then
    back to the exact first one, at most `face_search_checks` detector calls) for the first
    frame with a usable face: found by MediaPipe's face landmarker in that frame and the next,
    at least `min_face_size` px, turned at most `max_head_turn` degrees from the camera. With
    several faces the largest is taken and followed. That frame is the reference: the boxes are
    fixed on it, the analysis starts there, and frames before it are not read as the face.
    From there a video-mode landmarker checks every `landmark_every`-th frame that the face is
    still there, is the same face and has not turned more than `max_head_turn` degrees from the
    reference; frames where it is lost, turned or has its rigid points hidden (occluded) get
    `face_present` False and `frame_mask` False, so the model does not read them as the face.
    The analysed span ends at the last usable frame.

    Alignment (`align`, on in the `fast` preset). Every frame is mapped onto the reference
    frame by a similarity transform fitted on rigid points (eye corners, nose bridge and tip),
    then the fixed boxes are cut from the aligned frame: head motion is removed and the
    expression's own movement stays inside the boxes. Without it (the `paper` preset) the boxes
    are cut from the frames as they are, and the transform is only reported.

    Callers may pass `landmarks` ((478, 2) MediaPipe or (68, 2) dlib points of the first frame,
    in its pixels) or `boxes` ((regions, 4) x0, y0, x1, y1 pixels); no detector runs then, the
    first frame is the reference, and with landmarks and `align` the frames are still
    registered on the rigid points (without a landmarker, a frame counts as present while they
    register).

    One-frame clips are refused by default (`min_frames=2`): a micro-expression is a
    movement, and one frame gives the temporal model nothing to compare. Set `min_frames=1`
    to crop single photographs (for drawing regions, or stage-1 CNN data).

    Args:
        config ([`MieConfig`], *optional*):
            Take the geometry from this config. Mutually exclusive with the geometry arguments.
        regions (`list[dict]`, *optional*, defaults to `MieConfig().regions`):
            The region table's geometry: `name` and `box` ([x0, y0, x1, y1] canvas pixels).
        canvas_size (`list[int]`, *optional*, defaults to `[240, 280]`):
            Width and height of the canvas the face box is fitted into.
        crop_scale (`float`, *optional*, defaults to 1.0):
            Crop pixels per canvas pixel.
        face_box_landmarks (`dict`, *optional*, defaults to dlib 17 / 26 / 18, 25 / 8):
            dlib-68 indices of the face box sides (`left`, `right`, `top`, `bottom`).
        num_channels (`int`, *optional*, defaults to 1):
            1 for grey crops, 3 for RGB.
        frame_sampling (`str`, *optional*, defaults to `"all"`):
            `"all"` (every frame, at most `max_frames`), `"uniform"` (`num_frames` evenly spread
            frames) or `"interpolate"` (exactly `num_frames`, linearly interpolated); see
            `frame_positions`.
        num_frames (`int`, *optional*):
            Output length for `"uniform"` and `"interpolate"` (required by them).
        max_frames (`int`, *optional*, defaults to 500):
            Cap for `"all"`; longer clips are sampled uniformly down to it. The paper padded
            every clip to 500 frames.
        do_rescale (`bool`, *optional*, defaults to `True`):
            Return float32 `pixel_values` in [0, 1] (times `rescale_factor`). `False` returns
            the uint8 crops, 4x smaller, for preprocessed caches. No mean/std normalisation:
            the model was trained on plain [0, 1] pixels.
        rescale_factor (`float`, *optional*, defaults to 1/255):
            Factor applied when `do_rescale`.
        align (`bool`, *optional*, defaults to the config's):
            Register every frame onto the reference before cutting the boxes (see above).
        max_head_turn (`float`, *optional*, defaults to the config's, 20):
            Out-of-plane turn (degrees) beyond which a face is not usable.
        flow (`bool`, *optional*, defaults to the config's: `input_mode == "flow"`):
            Crops of dense optical flow from the reference frame (u, v, magnitude, divided by the
            clip's peak and stored as uint8 codes; `modeling_mie.flow`) instead of pixels. Needs
            `num_channels=3`. The peak is returned as `motion_peak`.
        min_frames (`int`, *optional*, defaults to 2):
            Fewest usable frames accepted (see the one-frame policy above).
        min_face_size (`float`, *optional*, defaults to 48):
            Smallest accepted face box side in pixels (brow ends to chin); smaller faces would
            be upscaled several times into the canvas and carry no micro-movement.
        detect_max_side (`int`, *optional*, defaults to 1024):
            Frames larger than this are downscaled for landmarking only; crops are cut from the
            full-resolution frames.
        landmark_every (`int`, *optional*, defaults to 6):
            Frames between the landmarker's checks while the face is followed; where two checks
            disagree (the face left or came back between them) every frame between them is
            checked, so losses are still placed to the frame. MediaPipe costs 10-12 ms a frame
            here and the rigid-skin registration about 1.5 ms, so with a check every 6th frame
            (on a thread beside decoding) a 640 x 480 clip runs at about 340 frames/s; every 4th
            frame, MediaPipe bounds it to about 240 (`bench/preprocess.py`).
        face_search_stride (`int`, *optional*, defaults to 4):
            Frames between probes while searching for the first face; after a hit the frames in
            between are checked, so the reference is still the exact first frame with a face.
        face_search_checks (`int`, *optional*, defaults to 300):
            Most detector calls the search may spend (about 3 s here) before it gives up: a long
            clip without a face is refused in bounded time.
        video_limits (`dict`, *optional*):
            Overrides of [`VideoLimits`] (file size, frames, duration, pixels per frame).
        face_landmarker_path (`str`, *optional*):
            MediaPipe's `face_landmarker.task`; by default resolved by
            `resolve_face_landmarker_model` (environment variable, cache, download). Not saved.

    Returns from `__call__`: a [`BatchFeature`] with
        - `pixel_values`: (batch, frames, regions, channels, height, width) float32 in [0, 1]
          (uint8 with `do_rescale=False`); padded frames and frames without a usable face are zero.
        - `frame_mask`: (batch, frames) bool, True for the frames the model reads: real (not
          padding, which comes last) and with the face present.
        - `face_present`: (batch, frames) bool, the tracked face is usable in that frame.
        - `alignment_transform`: (batch, frames, 2, 3) float32 the similarity from each frame's
          pixels to the reference frame's (landmark coordinates: pixel i spans [i, i + 1]); with
          `align` the one the crops were cut with, otherwise the rigid landmarks' fit (reported
          only); NaN where not known.
        - `head_motion`: (batch, frames, 4) float32 how the head moved from the reference frame:
          dx, dy (px, the rigid points' centre), in-plane rotation (deg, counter-clockwise as
          seen) and scale; NaN where not known (padding, face lost).
        - `head_turn`: (batch, frames) float32 out-of-plane turn from the reference, deg (NaN
          where not measured).
        - `alignment_residual`: (batch, frames) float32 RMS distance of the rigid points after
          the similarity fit, reference px (what a similarity cannot explain; NaN where unknown).
        - `face_span`: (batch, 2) int64 first and last source frame analysed (the reference and
          the last usable frame).
        - `face_track`: list of dicts per clip: `summary` (one line, e.g. "face found from 1.2 s;
          head turned up to 14 deg; aligned"), `aligned`, `faces_seen`, `lost` ([first, last,
          why] source-frame runs without a usable face, after the reference), `max_turn`,
          `max_rotation`, `max_shift` (px), `usable_frames`.
        - `region_boxes`: (batch, regions, 4) int64 x0, y0, x1, y1 (end exclusive) in pixels of
          the reference frame: what was cut there (may reach past the frame; that part is black);
          with alignment every frame is cut where these boxes land after the head motion.
        - `face_boxes`: (batch, 4) float32 face box the regions came from (NaN for given boxes).
        - `landmarks`: (batch, 478, 2) float32 pixels (NaN where not known);
          `landmarks_dlib68`: (batch, 68, 2).
        - `landmark_frame`: (batch,) int64 the reference frame the landmarks came from (-1: given).
        - `num_faces`: (batch,) int64 most faces seen in one frame of the clip (-1: landmarks/boxes given).
        - `motion_peak`: (batch,) float32 with `flow`, the clip's flow peak in canvas px (the
          largest per-frame 99.5th percentile of the magnitude in the regions) that its flow was
          divided by; NaN without `flow`.
        - `fps`: (batch,) float32 (NaN where unknown); `num_source_frames`: (batch,) int64;
          `image_sizes`: (batch, 2) int64 width, height of the source frames.
        - `frame_positions`: (batch, frames) float32 source frame of every output frame
          (fractional when interpolated; -1 for padding).
        - `landmark_source`: list of "detector" / "landmarks" / "boxes";
          `notes`: list of str (e.g. several faces found; a truncated video).

    Raises:
        MieInputError: for every problem with the input (missing, empty, unreadable or too
            large file, zero frames, a too-short clip, no usable face anywhere, too few frames
            with the face, a face too small, bad landmarks or boxes); the message says what to
            do and, where it matters, which part of the clip had a face.

    Example:

    ```python
    >>> from modeling_mie import MieConfig, MieProcessor
    >>> processor = MieProcessor.from_config(MieConfig.from_preset("fast"))
    >>> inputs = processor("clip.mp4", return_tensors="pt")
    >>> inputs["pixel_values"].shape  # (1, frames, 6, 1, 40, 80)
    ```
    """

    model_input_names = ["pixel_values", "frame_mask"]
    valid_kwargs = MieProcessorKwargs

    def __init__(
        self,
        config: MieConfig | None = None,
        *,
        regions: list | None = None,
        canvas_size: list | None = None,
        crop_scale: float | None = None,
        face_box_landmarks: dict | None = None,
        num_channels: int | None = None,
        align: bool | None = None,
        max_head_turn: float | None = None,
        flow: bool | None = None,
        frame_sampling: str = "all",
        num_frames: int | None = None,
        max_frames: int = 500,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        min_frames: int = 2,
        min_face_size: float = 48,
        detect_max_side: int = DEFAULT_DETECT_MAX_SIDE,
        landmark_every: int = 6,
        face_search_stride: int = 4,
        face_search_checks: int = 300,
        video_limits: dict | None = None,
        face_landmarker_path: str | os.PathLike | None = None,
        **kwargs,
    ):
        for key in _RETIRED_KEYS & set(kwargs):
            logger.debug("MieProcessor drops the retired setting %s=%r.", key, kwargs.pop(key))
        unknown = set(kwargs) - _BOOKKEEPING_KEYS
        if unknown:
            # a newer mie may save more settings: keep them (transformers' way), but say so
            logger.warning("MieProcessor ignores unknown settings %s.", sorted(unknown))
        super().__init__(**kwargs)
        given = {
            "regions": regions,
            "canvas_size": canvas_size,
            "crop_scale": crop_scale,
            "face_box_landmarks": face_box_landmarks,
            "num_channels": num_channels,
            "align": align,
            "max_head_turn": max_head_turn,
            "flow": flow,
        }
        given = {k: v for k, v in given.items() if v is not None}
        if config is not None:
            if given:
                raise ValueError(
                    f"Pass either config or geometry arguments, not both (got config and {sorted(given)}); "
                    "the geometry comes from the config's region table."
                )
            geometry = geometry_from_config(config)
        else:
            geometry = {**geometry_from_config(_default_config()), **given}
        geometry = _normalise_geometry(geometry)
        self._geometry = _geometry_config(geometry)  # validates and derives crop sizes
        for key in GEOMETRY_KEYS:
            setattr(self, key, geometry[key])
        self.frame_sampling = frame_sampling
        self.num_frames = num_frames
        self.max_frames = max_frames
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.min_frames = min_frames
        self.min_face_size = min_face_size
        self.detect_max_side = detect_max_side
        self.landmark_every = landmark_every
        self.face_search_stride = face_search_stride
        self.face_search_checks = face_search_checks
        self.video_limits = VideoLimits.coerce(video_limits).to_dict()
        self._validate_options({k: getattr(self, k) for k in _CALL_OPTIONS})
        self._face_landmarker_path = face_landmarker_path

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: MieConfig, **kwargs) -> "MieProcessor":
        """A processor with the geometry of `config` (its region table) and `kwargs` options."""
        return cls(config=config, **kwargs)

    @classmethod
    def get_image_processor_dict(cls, pretrained_model_name_or_path, **kwargs):
        """Read preprocessor_config.json, then take the geometry from config.json beside it.

        The region table lives in the model config; the processor keeps a copy so that it also
        works alone. When both files are present and disagree, config.json wins (the model's
        weights were built for its crop sizes and channels) and a warning names the fields.
        Arguments passed to `from_pretrained` still override both.
        """
        lookup = {
            k: kwargs.get(k)
            for k in ("cache_dir", "force_download", "proxies", "token", "local_files_only", "revision", "subfolder")
            if kwargs.get(k) is not None
        }
        processor_dict, rest = super().get_image_processor_dict(pretrained_model_name_or_path, **kwargs)
        model_config = _read_model_config(pretrained_model_name_or_path, lookup)
        if model_config is not None:
            processor_dict = reconcile_geometry(processor_dict, model_config, str(pretrained_model_name_or_path))
        return processor_dict, rest

    def to_dict(self) -> dict[str, Any]:
        # Private state (the landmarker path, the derived config) is not settings: leave it out
        # of preprocessor_config.json.
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.startswith("_")}
        out["image_processor_type"] = type(self).__name__
        return out

    # -- derived geometry ----------------------------------------------------------------
    @property
    def region_names(self) -> list[str]:
        return [r["name"] for r in self.regions]

    @property
    def region_crop_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each region's crop before padding."""
        return self._geometry.region_crop_sizes

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of every padded crop: the last two axes of `pixel_values`."""
        return self._geometry.crop_size

    def geometry(self) -> dict:
        """The geometry fields, in the form `MieConfig` stores them."""
        return _normalise_geometry({k: getattr(self, k) for k in GEOMETRY_KEYS})

    # -- landmarks -----------------------------------------------------------------------
    def detect_landmarks(self, frame: np.ndarray, frame_index: int = 0, detect_max_side: int | None = None):
        """Landmarks of the largest face in one RGB / grey frame, or None. Thread-safe."""
        landmarker, lock = shared_landmarker(self._face_landmarker_path)
        with lock:
            landmarker.detect_max_side = int(detect_max_side or self.detect_max_side)
            return landmarker.detect(frame, frame_index=frame_index)

    def detect_faces(self, frame: np.ndarray, frame_index: int = 0, detect_max_side: int | None = None) -> list:
        """Landmarks of every face in one RGB / grey frame, largest first. Thread-safe.

        The image-mode landmarker is the process's shared one for this model file
        (`shared_landmarker`): loaded once, never owned by a processor, so a processor caught in
        a reference cycle cannot take MediaPipe down with it.
        """
        landmarker, lock = shared_landmarker(self._face_landmarker_path)
        with lock:
            landmarker.detect_max_side = int(detect_max_side or self.detect_max_side)
            return landmarker.detect_faces(frame, frame_index=frame_index)

    def close(self) -> None:
        """Release the shared MediaPipe landmarker of this processor's model file (it is created
        again when needed, by this or any other processor)."""
        release_shared_landmarker(self._face_landmarker_path)

    # -- options -------------------------------------------------------------------------
    @staticmethod
    def _validate_options(opts: dict) -> None:
        if opts["frame_sampling"] not in FRAME_SAMPLING_MODES:
            raise ValueError(
                f"frame_sampling must be one of {list(FRAME_SAMPLING_MODES)}, got {opts['frame_sampling']!r}."
            )
        if opts["frame_sampling"] != "all" and (
            not isinstance(opts["num_frames"], int) or isinstance(opts["num_frames"], bool) or opts["num_frames"] < 1
        ):
            raise ValueError(
                f"frame_sampling={opts['frame_sampling']!r} needs num_frames, a positive int; got "
                f"{opts['num_frames']!r}."
            )
        for key, low in (
            ("max_frames", 1),
            ("min_frames", 1),
            ("detect_max_side", 16),
            ("landmark_every", 1),
            ("face_search_stride", 1),
            ("face_search_checks", 1),
        ):
            value = opts[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{key} must be an int >= {low}, got {value!r}.")
        if not isinstance(opts["min_face_size"], (int, float)) or opts["min_face_size"] < 0:
            raise ValueError(f"min_face_size must be a number >= 0, got {opts['min_face_size']!r}.")
        if not isinstance(opts["do_rescale"], bool):
            raise ValueError(f"do_rescale must be True or False, got {opts['do_rescale']!r}.")
        if not isinstance(opts["rescale_factor"], (int, float)) or not opts["rescale_factor"] > 0:
            raise ValueError(f"rescale_factor must be a positive number, got {opts['rescale_factor']!r}.")
        VideoLimits.coerce(opts["video_limits"])

    def _options(self, overrides: dict) -> dict:
        bad = set(overrides) - set(_CALL_OPTIONS)
        if bad & set(GEOMETRY_KEYS):
            raise ValueError(
                f"{sorted(bad & set(GEOMETRY_KEYS))} cannot change per call: the geometry belongs to the "
                "model's config. Build another processor with MieProcessor.from_config(config)."
            )
        if bad:
            raise TypeError(f"Unknown arguments {sorted(bad)}; allowed per call: {list(_CALL_OPTIONS)}.")
        opts = {k: overrides.get(k, getattr(self, k)) for k in _CALL_OPTIONS}
        if "video_limits" in overrides and isinstance(overrides["video_limits"], dict):
            opts["video_limits"] = {**self.video_limits, **overrides["video_limits"]}
        self._validate_options(opts)
        opts["video_limits"] = VideoLimits.coerce(opts["video_limits"])
        return opts

    # -- main entry ------------------------------------------------------------------------
    def __call__(self, videos=None, *args, **kwargs) -> BatchFeature:
        return self.preprocess(videos, *args, **kwargs)

    def preprocess(
        self,
        videos: Any = None,
        landmarks: Any = None,
        boxes: Any = None,
        fps: float | list | None = None,
        return_tensors: str | None = None,
        images: Any = None,
        **kwargs,
    ) -> BatchFeature:
        """Crop the regions of one clip or a batch of clips; see the class docstring.

        Args:
            videos: a clip or a list of clips (`images=` is accepted as an alias).
            landmarks: per clip, (478, 2) / (68, 2) pixels or a `FaceLandmarks` (a list for a
                batch, None entries for "detect").
            boxes: per clip, (regions, 4) x0, y0, x1, y1 pixels (a list for a batch).
            fps: frame rate for clips that carry none (folders, arrays); a number or a list.
            return_tensors: "pt", "np" or None (numpy arrays).
            **kwargs: per-call overrides of the options (`frame_sampling`, `num_frames`,
                `max_frames`, `do_rescale`, `rescale_factor`, `min_frames`, `min_face_size`,
                `detect_max_side`, `landmark_every`, `face_search_stride`,
                `face_search_checks`, `video_limits`).
        """
        if videos is None:
            videos = images
        opts = self._options(kwargs)
        clips, is_batch = _split_batch(videos)
        count = len(clips)
        per_landmarks = _per_clip(landmarks, count, is_batch, "landmarks", 2)
        per_boxes = _per_clip(boxes, count, is_batch, "boxes", 2)
        per_fps = _per_clip(fps, count, is_batch, "fps", 0)
        results = []
        for i, clip in enumerate(clips):
            if per_landmarks[i] is not None and per_boxes[i] is not None:
                raise MieInputError("Pass landmarks or boxes for a clip, not both.")
            try:
                results.append(self._process_clip(clip, per_landmarks[i], per_boxes[i], per_fps[i], opts))
            except MieInputError as err:
                if is_batch:
                    raise MieInputError(f"Clip {i} of the batch: {err}") from err
                raise
        return BatchFeature(data=self._assemble(results, opts), tensor_type=return_tensors)

    # -- one clip --------------------------------------------------------------------------
    def _process_clip(self, clip, landmarks, boxes, fps, opts) -> dict:
        """Read one clip, find and follow its face, and crop it; returns its crops and provenance
        (see `_assemble`)."""
        started = time.perf_counter()
        reader = open_clip(clip, opts["video_limits"], fps)
        with reader:
            if reader.exact_count and reader.num_frames < opts["min_frames"]:
                raise self._too_short(reader.source, reader.num_frames, opts)
            info = {"source": reader.source, "notes": [], "fps": reader.fps, "channel_order": reader.channel_order}
            given = self._given_geometry(landmarks, boxes, info)
            frames = enumerate(reader.iter_frames(reuse_buffer=True))
            if given is None:
                given, frames = self._find_reference(frames, reader.channel_order, opts, info)
            else:
                given["frame"] = -1
            self._finish_geometry(given, reader.frame_size, opts, info)
            followed = self._follow(frames, given, reader.frame_size, reader.channel_order, opts, info)
            notes = list(reader.notes)
        result = self._sample(followed, opts, info)
        result.update(fps=reader.fps, image_size=reader.frame_size, notes=notes + info["notes"])
        logger.debug(
            "%s: %d frames followed and cropped in %.1f ms", info["source"], followed["count"],
            1e3 * (time.perf_counter() - started),
        )
        return result

    def _too_short(self, source: str, count: int, opts: dict) -> MieInputError:
        return MieInputError(
            f"{source} has {count} frame(s); at least {opts['min_frames']} are needed, since a "
            "micro-expression is a movement across frames. Pass a longer clip, or set min_frames=1 "
            "to crop a single image anyway."
        )

    def _given_geometry(self, landmarks, boxes, info: dict):
        """Caller-supplied landmarks / boxes, checked for shape; None when the detector must run."""
        if boxes is not None:
            if hasattr(boxes, "detach"):
                boxes = boxes.detach().cpu().numpy()
            boxes = np.asarray(boxes, np.float64)
            expected = (len(self.regions), 4)
            if boxes.shape != expected:
                raise MieInputError(
                    f"boxes must be (regions, 4) = {expected} x0, y0, x1, y1 pixels (regions: "
                    f"{self.region_names}); got shape {boxes.shape}."
                )
            if not np.isfinite(boxes).all() or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
                raise MieInputError(
                    "boxes must be finite with x1 > x0 and y1 > y0 (x0, y0, x1, y1 in pixels); got "
                    f"{boxes.tolist()}."
                )
            return {"kind": "boxes", "boxes": boxes}
        if landmarks is not None:
            points, dlib68 = as_dlib68(landmarks)
            pose = landmarks.pose if isinstance(landmarks, FaceLandmarks) else None
            return {"kind": "landmarks", "points": points, "dlib68": dlib68, "faces": -1, "notes": [], "pose": pose}
        return None

    # -- finding the face ------------------------------------------------------------------
    def _usable_faces(self, index: int, frame: np.ndarray, channel_order: str, opts: dict):
        """(usable faces of one frame, largest first; why none is usable) for `find_reference`."""
        rgb = frame[:, :, ::-1] if (frame.ndim == 3 and frame.shape[2] == 3 and channel_order == "bgr") else frame
        faces = self.detect_faces(rgb, frame_index=index, detect_max_side=opts["detect_max_side"])
        if not faces:
            return [], "no face"
        usable, why = [], ""
        for face in faces:
            box = face_box_from_landmarks(face.dlib68, self.face_box_landmarks)
            width, height = box[2] - box[0], box[3] - box[1]
            turn = turn_between(face.pose)
            if min(width, height) < opts["min_face_size"]:
                why = why or f"small:{width:.0f}x{height:.0f}"
            elif turn > self.max_head_turn:
                why = why or f"turned:{turn:.0f}"
            else:
                usable.append(face)
        for face in usable:
            face.num_faces = len(faces)
        return usable, why

    def _find_reference(self, frames, channel_order: str, opts: dict, info: dict):
        """The detector's reference face (the first usable one) and the frames from it on."""
        try:
            reference, rest = find_reference(
                frames,
                lambda i, f: self._usable_faces(i, f, channel_order, opts),
                stride=opts["face_search_stride"],
                max_checks=opts["face_search_checks"],
            )
        except NoUsableFace as err:
            raise self._no_usable_face(err, info, opts) from None
        face = reference.face
        notes = [f"{face.num_faces} faces found; the largest was used."] if face.num_faces > 1 else []
        given = {
            "kind": "detector",
            "points": face.points,
            "dlib68": face.dlib68,
            "frame": reference.index,
            "faces": face.num_faces,
            "notes": notes,
            "pose": face.pose,
        }
        return given, rest

    def _no_usable_face(self, err: NoUsableFace, info: dict, opts: dict) -> MieInputError:
        source, fps = info["source"], info["fps"]
        frames = err.last_index + 1
        duration = f" ({frames / fps:.1f} s)" if fps else ""
        where = f"the first {frames} frame(s){duration}" if err.budget_spent else f"any of the {frames} frame(s){duration}"
        small = [r for r in err.reasons if r.startswith("small:")]
        turned = [r for r in err.reasons if r.startswith("turned:")]
        if small and not turned:
            size = small[0].split(":", 1)[1].replace("x", " x ")
            return MieInputError(
                f"The face in {source} is only {size} pixels (brow ends to chin) in {where} searched; at least "
                f"{opts['min_face_size']:g} are needed for meaningful region crops. Use a closer or "
                "higher-resolution clip, or lower min_face_size."
            )
        if turned and not small:
            angle = turned[0].split(":", 1)[1]
            return MieInputError(
                f"The face in {source} is turned away from the camera (by {angle} deg or more, the limit is "
                f"max_head_turn={self.max_head_turn:g}) in {where} searched. Use a clip in which the face looks "
                "towards the camera."
            )
        if "a face in one frame only" in err.reasons:
            return MieInputError(
                f"A face showed in {source} in one frame at a time only ({where} searched): not a face that stays "
                "for an expression (a poster, a title, a face passing by). Use a clip in which one face stays in "
                "view, looking at the camera."
            )
        dark = " (they are black or nearly black)" if err.brightness < 10 else ""
        budget = (
            f" The search stopped after {err.searched} detector calls (face_search_checks); trim the clip to "
            "where the face is." if err.budget_spent else ""
        )
        return MieInputError(
            f"No face was found in {where} of {source}{dark}.{budget} Use a clip in which one face looks at the "
            "camera, well lit and unobstructed; or pass landmarks= or boxes= to the processor yourself."
        )

    def _finish_geometry(self, given: dict, frame_size: tuple[int, int], opts: dict, info: dict) -> None:
        """Region boxes (and provenance) from the detector's or the caller's landmarks / boxes."""
        width, height = frame_size
        nan = np.float32("nan")
        if given["kind"] == "boxes":
            region_boxes = given["boxes"]
            info.update(
                face_box=np.full(4, nan, np.float32),
                points=None,
                dlib68=None,
                landmark_frame=-1,
                num_faces=-1,
                landmark_source="boxes",
            )
        else:
            dlib68 = given["dlib68"]
            if given["kind"] == "landmarks" and width > 4 and height > 4 and np.abs(dlib68).max() <= 1.5:
                raise MieInputError(
                    "The landmarks look normalised to [0, 1]; pass pixel coordinates (multiply x by the "
                    f"frame width {width} and y by the height {height})."
                )
            face_box = face_box_from_landmarks(dlib68, self.face_box_landmarks)
            face_w, face_h = face_box[2] - face_box[0], face_box[3] - face_box[1]
            where = f"frame {given['frame']}" if given["frame"] >= 0 else "the given landmarks"
            if face_w <= 0 or face_h <= 0:
                raise MieInputError(
                    f"The face box from {where} of {info['source']} is empty ({face_box.round(1).tolist()}): "
                    "the landmarks are not a face seen from the front in dlib / MediaPipe order."
                )
            if min(face_w, face_h) < opts["min_face_size"]:
                raise MieInputError(
                    f"The face in {where} of {info['source']} is only {face_w:.0f} x {face_h:.0f} pixels "
                    f"(brow ends to chin); at least {opts['min_face_size']:g} are needed for meaningful "
                    "region crops. Use a closer or higher-resolution clip, or lower min_face_size."
                )
            region_boxes = region_boxes_from_face_box(face_box, self.regions, self.canvas_size)
            info.update(
                face_box=face_box.astype(np.float32),
                points=given["points"],
                dlib68=dlib68,
                landmark_frame=int(given["frame"]),
                num_faces=int(given["faces"]),
                landmark_source=given["kind"],
            )
            info["notes"].extend(given["notes"])
        rounded = round_boxes(region_boxes)
        inside = (rounded[:, 0] < width) & (rounded[:, 2] > 0)
        inside &= (rounded[:, 1] < height) & (rounded[:, 3] > 0)
        if not inside.any():
            raise MieInputError(
                f"All region boxes {rounded.tolist()} lie outside the {width} x {height} frames of "
                f"{info['source']}; check that landmarks / boxes are in pixels of these frames."
            )
        if not inside.all():
            names = [n for n, ok in zip(self.region_names, inside) if not ok]
            info["notes"].append(f"Regions {names} lie outside the frame; their crops are black.")
        info["region_boxes"] = rounded
        info["region_boxes_exact"] = np.asarray(region_boxes, np.float64)

    # -- following the face ----------------------------------------------------------------
    def _follow(self, frames, given: dict, frame_size, channel_order: str, opts: dict, info: dict) -> dict:
        """Decode from the reference frame to the end, following the face; keep what cropping needs.

        With alignment, each frame's six regions are cut right away from the frame registered
        onto the reference (`aligned_region_crops`): only the crops are kept. Without it, only
        the union of the boxes is copied out of each decoded frame (cut later by
        `crop_regions`), so a long or high-resolution clip costs memory for its face area only.

        Returns:
            {"first": reference frame index, "count": frames read, "crops" or "stack"/"offset",
             "records": per-frame `FrameTrack` (None where nothing is tracked), "aligned", "faces"}.
        """
        first = next(frames, None)
        if first is None:
            raise MieInputError(f"{info['source']} has no frame from the reference on; pass a longer clip.")
        first_index, first_frame = first
        frames = itertools.chain([first], frames)
        align = self.align and given["kind"] != "boxes"
        if self.align and not align:
            info["notes"].append("Not aligned: boxes were given, and alignment needs landmarks.")
        landmarker = tracker = None
        try:
            if given["kind"] == "detector" or align:
                if given["kind"] == "detector":
                    landmarker = MieFaceLandmarker(
                        self._face_landmarker_path, detect_max_side=opts["detect_max_side"], running_mode="video"
                    )
                points = given["points"] if given["points"] is not None else given["dlib68"]
                check = None
                if landmarker is not None:
                    def check(index, rgb):  # frames where the keyframes around them disagree
                        return self.detect_faces(rgb, frame_index=index, detect_max_side=opts["detect_max_side"])
                tracker = FaceTracker(
                    first_frame, points, given.get("pose"), landmarker, check=check,
                    align=align, landmark_every=opts["landmark_every"], max_head_turn=self.max_head_turn,
                    fps=info["fps"], channel_order=channel_order,
                )
                followed = tracker.run(frames)
            else:
                followed = ((index, frame, None) for index, frame in frames)
            if self.flow:
                out = self._collect_flow(followed, info, channel_order, align)
            elif align:
                out = self._collect_aligned(followed, info, channel_order)
            else:
                out = self._collect_union(followed, frame_size, info)
            if tracker is not None:
                tracker.finish()
        finally:
            if landmarker is not None:
                landmarker.close()
        out.update(first=first_index, aligned=align, faces=tracker.max_faces if tracker else 0)
        return out

    def _collect_aligned(self, followed, info: dict, channel_order: str) -> dict:
        boxes = info["region_boxes_exact"]
        crops = _Rows((len(self.regions), self.num_channels, *self.crop_size))
        records = []
        for _, frame, record in followed:
            row = crops.next_row()
            if record.present:
                aligned_region_crops(
                    frame, record.transform, boxes, self.region_crop_sizes, self.num_channels, channel_order, out=row
                )
            else:
                row[:] = 0
            records.append(record)
        return {"crops": crops.array(), "records": records, "count": len(records)}

    def _collect_flow(self, followed, info: dict, channel_order: str, align: bool) -> dict:
        """Flow crops: each frame's face canvas (registered onto the reference when aligning)
        against the reference's, by DIS flow; divided by the clip's peak once all are read."""
        canvas_boxes = np.array([r["box"] for r in self.regions], np.float64)
        to_canvas = reference_to_canvas(info["region_boxes_exact"], canvas_boxes)
        bridge = None  # the nose bridge (dlib 27, 28), centre of the rigid patch
        if info["dlib68"] is not None:
            bridge = apply_affine(to_canvas, np.asarray(info["dlib68"], np.float64)[[27, 28]]).mean(axis=0)
        flow = FaceFlow(self.canvas_size, to_canvas, canvas_boxes, self.region_crop_sizes, bridge, channel_order)
        crops = _Rows((len(self.regions), 3, *self.crop_size), dtype=np.float16)
        records, present, row32 = [], [], None
        for _, frame, record in followed:
            usable = record is None or record.present
            transform = record.transform if (align and record is not None) else None
            if usable:
                row32 = flow.crops(flow.field(frame, transform), out=row32)
                crops.next_row()[:] = row32
            else:
                crops.next_row()[:] = 0
            records.append(record)
            present.append(usable)
        raw = crops.array()
        peak = flow_peak(raw, np.array(present, bool), flow.region_mask()) if len(raw) else 0.0
        return {
            "crops": encode_flow(raw, peak),
            "motion_peak": peak,
            "records": records if records and records[0] is not None else None,
            "count": len(records),
        }

    def _collect_union(self, followed, frame_size, info: dict) -> dict:
        width, height = frame_size
        rb = info["region_boxes"]
        x0, y0 = max(int(rb[:, 0].min()), 0), max(int(rb[:, 1].min()), 0)
        x1, y1 = min(int(rb[:, 2].max()), width), min(int(rb[:, 3].max()), height)
        stack, records = None, []
        for _, frame, record in followed:
            if stack is None:
                stack = _Rows((y1 - y0, x1 - x0, frame.shape[2]))
            stack.next_row()[:] = frame[y0:y1, x0:x1]
            records.append(record)
        return {
            "stack": stack.array(),
            "offset": (x0, y0),
            "records": records if records and records[0] is not None else None,
            "count": len(records),
        }

    # -- sampling and cropping ---------------------------------------------------------------
    def _sample(self, followed: dict, opts: dict, info: dict) -> dict:
        """Choose the output frames over the face's span, crop them, and summarise the track."""
        first, count, records = followed["first"], followed["count"], followed["records"]
        present = np.ones(count, bool) if records is None else np.array([r.present for r in records])
        num_source = first + count
        if num_source < opts["min_frames"]:
            raise self._too_short(info["source"], num_source, opts)
        span = int(np.flatnonzero(present).max()) + 1 if present.any() else 1
        usable = int(present[:span].sum())
        if usable < opts["min_frames"]:
            raise self._too_few_usable(info, first, present, records, opts)
        local = frame_positions(span, opts["frame_sampling"], opts["num_frames"], opts["max_frames"])
        if opts["frame_sampling"] == "all" and span > opts["max_frames"]:
            info["notes"].append(
                f"{span} frames, above max_frames={opts['max_frames']}: sampled uniformly to {opts['max_frames']}."
            )
        low = np.floor(local).astype(np.int64)
        high = np.minimum(low + 1, span - 1)
        interpolate = opts["frame_sampling"] == "interpolate"
        # a blended frame needs the face in both frames it blends (an exact position, only in its own)
        face_present = present[low] & (present[high] | (local == low)) if interpolate else present[low]
        crop = self._cropper(followed, info)
        if interpolate:
            needed, inverse = np.unique(np.concatenate([low, high]), return_inverse=True)
            crops = crop(needed).astype(np.float32)
            weight = (local - low).astype(np.float32)[:, None, None, None, None]
            a, b = crops[inverse[: len(low)]], crops[inverse[len(low) :]]
            crops = a + (b - a) * weight  # (T', R, C, H, W) float in [0, 255]
        else:
            crops = crop(low)
        crops[~face_present] = 0
        faces = max(info["num_faces"], followed["faces"])
        centre = self._rigid_centre(info)
        track = track_report(records, first, first + count - 1, info["fps"], followed["aligned"], faces, centre)
        track["usable_frames"] = int(present[:span].sum())
        transform, motion, turn, residual = frame_motion(records, low, len(low), centre)
        return {
            "crops": crops,
            "positions": first + local,
            "face_present": face_present,
            "alignment_transform": transform,
            "head_motion": motion,
            "head_turn": turn,
            "alignment_residual": residual,
            "face_span": (first, first + span - 1),
            "face_track": track,
            "region_boxes": info["region_boxes"],
            "face_box": info["face_box"],
            "points": info["points"],
            "dlib68": info["dlib68"],
            "landmark_frame": info["landmark_frame"],
            "num_faces": max(info["num_faces"], followed["faces"]) if info["num_faces"] >= 0 else -1,
            "landmark_source": info["landmark_source"],
            "num_source_frames": num_source,
            "motion_peak": followed.get("motion_peak", float("nan")),
        }

    def _cropper(self, followed: dict, info: dict):
        """indices into the followed frames -> their (n, R, C, H, W) uint8 crops."""
        if "crops" in followed:
            return lambda indices: followed["crops"][indices]  # cut frame by frame while following
        x, y = followed["offset"]
        boxes = info["region_boxes"] - np.array([x, y, x, y])
        stack, count = followed["stack"], followed["count"]

        def crop(indices: np.ndarray) -> np.ndarray:
            every = len(indices) == count and bool((indices == np.arange(count)).all())
            return crop_regions(
                stack, boxes, self.region_crop_sizes, self.crop_size, self.num_channels, info["channel_order"],
                frame_indices=None if every else indices,
            )

        return crop

    @staticmethod
    def _rigid_centre(info: dict) -> np.ndarray | None:
        """Centre of the reference face's rigid points, px (None for given boxes)."""
        points = info["points"] if info["points"] is not None else info["dlib68"]
        return None if points is None else rigid_points(np.asarray(points, np.float64)).mean(axis=0)

    def _too_few_usable(self, info: dict, first: int, present: np.ndarray, records, opts: dict) -> MieInputError:
        fps = info["fps"]

        def when(index: int) -> str:
            return f"frame {index}" + (f" ({index / fps:.2f} s)" if fps else "")

        usable = np.flatnonzero(present)
        whys = sorted({r.why for r in records or [] if not r.present})
        where = (
            f"only in {len(usable)} frame(s), from {when(first + int(usable.min()))} to {when(first + int(usable.max()))}"
            if len(usable) else "nowhere"
        )
        return MieInputError(
            f"The face in {info['source']} is usable {where} (elsewhere: {', '.join(whys) or 'no face'}); at least "
            f"{opts['min_frames']} frames are needed. Use a clip in which the face stays in view, facing the camera "
            "and unobstructed, for the length of the expression."
        )

    # -- batch -----------------------------------------------------------------------------
    def _assemble(self, results: list[dict], opts: dict) -> dict:
        batch = len(results)
        length = max(len(r["positions"]) for r in results)
        regions, (crop_h, crop_w) = len(self.regions), self.crop_size
        shape = (batch, length, regions, self.num_channels, crop_h, crop_w)
        if opts["do_rescale"]:
            pixel_values = np.zeros(shape, np.float32)
            for i, r in enumerate(results):
                # one pass: uint8 -> float32 and the scaling together
                target = pixel_values[i, : len(r["crops"])]
                np.multiply(r["crops"], np.float32(opts["rescale_factor"]), out=target, casting="unsafe")
        else:
            pixel_values = np.zeros(shape, np.uint8)
            for i, r in enumerate(results):
                crops = r["crops"]
                if crops.dtype != np.uint8:  # interpolated frames
                    crops = np.clip(crops + 0.5, 0, 255).astype(np.uint8)
                pixel_values[i, : len(crops)] = crops
        face_present = np.zeros((batch, length), bool)
        positions = np.full((batch, length), -1.0, np.float32)
        nan = np.float32("nan")
        transform = np.full((batch, length, 2, 3), nan, np.float32)
        motion = np.full((batch, length, 4), nan, np.float32)
        turn = np.full((batch, length), nan, np.float32)
        residual = np.full((batch, length), nan, np.float32)
        points = np.full((batch, 478, 2), nan, np.float32)
        dlib68 = np.full((batch, 68, 2), nan, np.float32)
        for i, r in enumerate(results):
            n = len(r["positions"])
            face_present[i, :n] = r["face_present"]
            positions[i, :n] = r["positions"]
            transform[i, :n] = r["alignment_transform"]
            motion[i, :n] = r["head_motion"]
            turn[i, :n] = r["head_turn"]
            residual[i, :n] = r["alignment_residual"]
            if r["points"] is not None:
                points[i] = r["points"]
            if r["dlib68"] is not None:
                dlib68[i] = r["dlib68"]
        return {
            "pixel_values": pixel_values,
            # the model reads real frames with the face present; padding and lost frames are skipped
            "frame_mask": face_present.copy(),
            "face_present": face_present,
            "alignment_transform": transform,
            "head_motion": motion,
            "head_turn": turn,
            "alignment_residual": residual,
            "face_span": np.array([r["face_span"] for r in results], np.int64),
            "face_track": [r["face_track"] for r in results],
            "region_boxes": np.stack([r["region_boxes"] for r in results]).astype(np.int64),
            "face_boxes": np.stack([r["face_box"] for r in results]).astype(np.float32),
            "landmarks": points,
            "landmarks_dlib68": dlib68,
            "landmark_frame": np.array([r["landmark_frame"] for r in results], np.int64),
            "num_faces": np.array([r["num_faces"] for r in results], np.int64),
            "fps": np.array([r["fps"] if r["fps"] else nan for r in results], np.float32),
            "num_source_frames": np.array([r["num_source_frames"] for r in results], np.int64),
            # flow crops: each clip's motion peak (canvas px) its flow was divided by; NaN otherwise
            "motion_peak": np.array([r["motion_peak"] for r in results], np.float32),
            "image_sizes": np.array([r["image_size"] for r in results], np.int64),
            "frame_positions": positions,
            "landmark_source": [r["landmark_source"] for r in results],
            "notes": ["; ".join(r["notes"]) for r in results],
        }


# ------------------------------------------------------------------------------ helpers
_DEFAULT_CONFIG: MieConfig | None = None


def _default_config() -> MieConfig:
    global _DEFAULT_CONFIG
    if _DEFAULT_CONFIG is None:
        _DEFAULT_CONFIG = MieConfig()
    return _DEFAULT_CONFIG


def _geometry_config(geometry: dict) -> MieConfig:
    """A MieConfig holding only `geometry`, so its validation and crop-size rules are reused."""
    try:
        return MieConfig(
            regions=[{**r, "emotions": []} for r in geometry["regions"]],
            canvas_size=geometry["canvas_size"],
            crop_scale=geometry["crop_scale"],
            face_box_landmarks=geometry["face_box_landmarks"],
            num_channels=geometry["num_channels"],
            align=geometry["align"],
            max_head_turn=geometry["max_head_turn"],
            input_mode="flow" if geometry["flow"] else "frames",
        )
    except (TypeError, KeyError) as err:
        raise ValueError(f"Invalid processor geometry {geometry}: {err}") from err


def _read_model_config(path, lookup: dict) -> dict | None:
    """The mie config.json beside a preprocessor_config.json (local folder, file or Hub repo)."""
    path_str = str(path)
    candidate = None
    if os.path.isdir(path_str):
        candidate = os.path.join(path_str, lookup.get("subfolder", "") or "", "config.json")
    elif os.path.isfile(path_str):
        candidate = os.path.join(os.path.dirname(path_str), "config.json")
    else:
        try:
            from transformers.utils import cached_file

            candidate = cached_file(
                path_str,
                "config.json",
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                _raise_exceptions_for_gated_repo=False,
                **lookup,
            )
        except OSError:
            candidate = None
    if not candidate or not os.path.isfile(candidate):
        return None
    try:
        with open(candidate, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if data.get("model_type") == MieConfig.model_type else None


def reconcile_geometry(processor_dict: dict, model_config: dict, where: str = "") -> dict:
    """`processor_dict` with its geometry taken from a mie `model_config` dict (config.json).

    Fields that differ are logged as a warning; fields missing from the processor settings
    (a hand-written preprocessor_config.json) are filled in silently.
    """
    config = MieConfig.from_dict(dict(model_config))
    wanted = _normalise_geometry(geometry_from_config(config))
    out = dict(processor_dict)
    differing = []
    for key in GEOMETRY_KEYS:
        if key in out:
            try:
                have = _normalise_geometry({**wanted, key: out[key]})[key]
            except (KeyError, TypeError, ValueError):
                have = out[key]
            if have != wanted[key]:
                differing.append(key)
        out[key] = copy.deepcopy(wanted[key])
    if differing:
        logger.warning(
            "preprocessor_config.json in %s disagrees with config.json on %s; using config.json's values "
            "(the model was built for them).",
            where or "the model folder",
            differing,
        )
    return out


__all__ = [
    "FRAME_SAMPLING_MODES",
    "GEOMETRY_KEYS",
    "MieProcessor",
    "as_dlib68",
    "crop_regions",
    "face_box_from_landmarks",
    "frame_positions",
    "geometry_from_config",
    "reconcile_geometry",
    "region_boxes_from_face_box",
    "round_boxes",
]
