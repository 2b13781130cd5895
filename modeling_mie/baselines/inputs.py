"""The baselines' input: a clip's grey face crops at one fixed size, from a face box or landmarks.

The hand-crafted and flow baselines read a face crop, not the six regions of the project's model:
LBP-TOP the whole onset -> offset volume, Bi-WOOF / OFF-ApexNet / STSTNet the onset and apex
frames. `grey_face_volume` cuts the same face box out of each frame that is needed (frames given
as paths are decoded one at a time, so a SAMM clip of 2040 x 1088 frames never sits in memory
whole) and resizes it to `size`.

The face box comes from the caller: (x0, y0, x1, y1) pixels, or landmarks (a `FaceLandmarks`,
MediaPipe's 478 points or dlib's 68), turned into the project's face box (brow ends, brow tops,
chin: `regions.face_box_from_landmarks` with the config's default points). Nothing is detected
here; use `modeling_mie.landmarks` to find landmarks on a frame first.

Choice: the box is stretched to `size` (no letterbox), so every block of the baselines' grids
holds face, and a block covers the same part of every face whatever its aspect ratio. Parts of
the box outside the frame are black. Resampling is `regions.crop_regions`' antialiased bilinear resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..configuration_mie import DEFAULT_FACE_BOX_LANDMARKS
from ..errors import MieInputError
from ..landmarks import MEDIAPIPE_TO_DLIB68, FaceLandmarks
from ..regions import crop_regions, face_box_from_landmarks, round_boxes
from ..video import VideoLimits, as_frame_stack, open_clip

#: (height, width) of the crops: the size the LBP-TOP and Bi-WOOF baselines are run at here.
DEFAULT_CROP_SIZE = (128, 128)
#: Smallest side, in frame pixels, of the part of a face box inside the frame.
MIN_FACE_SIDE = 8
SPANS = ("onset_offset", "onset_apex")


@dataclass
class FaceVolume:
    """Grey face crops of one clip.

    Attributes:
        volume: (T, height, width) uint8 grey crops, in clip order.
        frame_indices: (T,) int positions in the clip of the frames in `volume`.
        onset: position of the onset frame in `volume` (0).
        apex: position of the apex frame in `volume`.
        face_box: (4,) float x0, y0, x1, y1 of the box cut, frame pixels.
    """

    volume: np.ndarray
    frame_indices: np.ndarray
    onset: int
    apex: int
    face_box: np.ndarray


def face_box_of(face_box=None, landmarks=None) -> np.ndarray:
    """(4,) float x0, y0, x1, y1: `face_box` as given, or the project's face box of `landmarks`
    (a `FaceLandmarks`, (478, 2) MediaPipe points or (68, 2) dlib points, frame pixels)."""
    if (face_box is None) == (landmarks is None):
        raise MieInputError("Give either a face box (x0, y0, x1, y1) or landmarks, not both and not neither.")
    if landmarks is not None:
        if isinstance(landmarks, FaceLandmarks):
            dlib68 = landmarks.dlib68
        else:
            points = np.asarray(landmarks, np.float64)
            if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in (68, 478):
                raise MieInputError(
                    f"landmarks must be (68, 2) dlib or (478, 2) MediaPipe points; got shape {points.shape}."
                )
            dlib68 = points[MEDIAPIPE_TO_DLIB68] if points.shape[0] == 478 else points
        face_box = face_box_from_landmarks(dlib68, DEFAULT_FACE_BOX_LANDMARKS)
    box = np.asarray(face_box, np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise MieInputError(f"A face box must be four finite numbers x0, y0, x1, y1; got {face_box!r}.")
    if box[2] - box[0] < MIN_FACE_SIDE or box[3] - box[1] < MIN_FACE_SIDE:
        raise MieInputError(
            f"The face box {box.round(1).tolist()} is empty or smaller than {MIN_FACE_SIDE} x {MIN_FACE_SIDE} "
            "pixels (x1 must exceed x0 and y1 exceed y0); check the box or the landmarks."
        )
    return box


def _index(name: str, value, num_frames: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MieInputError(f"{name} must be a frame position (an integer); got {value!r}.")
    if not 0 <= value < num_frames:
        raise MieInputError(
            f"{name} {int(value)} is outside the clip, which has {num_frames} frames (positions 0 to "
            f"{num_frames - 1}). Positions count the clip's frames from 0 (the loaders' *_index columns)."
        )
    return int(value)


def _check_size(size) -> tuple[int, int]:
    values = (size, size) if np.isscalar(size) else tuple(size)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 8 for v in values):
        raise MieInputError(f"size must be an integer >= 8 or (height, width) of them; got {size!r}.")
    return int(values[0]), int(values[1])


def grey_face_volume(
    frames,
    onset_index: int,
    apex_index: int,
    offset_index: int | None = None,
    face_box=None,
    landmarks=None,
    size=DEFAULT_CROP_SIZE,
    span: str = "onset_offset",
    limits: VideoLimits | dict | None = None,
) -> FaceVolume:
    """Grey face crops of a clip at a fixed size.

    Args:
        frames: the clip: a list of frame paths (a loader row's `frames`) or images, or a
            (T, H, W[, C]) uint8 array (RGB when C = 3).
        onset_index, apex_index, offset_index: positions in `frames` (a row's `*_index`);
            offset None means the last frame. onset <= apex <= offset.
        face_box: (x0, y0, x1, y1) in frame pixels; or
        landmarks: `FaceLandmarks`, (478, 2) or (68, 2) points in frame pixels.
        size: (height, width) of the crops, or one int for a square.
        span: "onset_offset" (every frame from onset to offset: LBP-TOP) or "onset_apex" (the two
            frames only: Bi-WOOF and the flow CNNs; then apex must differ from onset).
        limits: `VideoLimits` for decoding (defaults as `read_clip`).

    Returns:
        `FaceVolume` with the (T, height, width) uint8 crops.

    Raises:
        MieInputError: fewer than two frames, positions outside the clip or out of order, a face
            box that is empty or lies outside the frames, unreadable frames.
    """
    if span not in SPANS:
        raise MieInputError(f"span must be one of {', '.join(SPANS)}; got {span!r}.")
    height, width = _check_size(size)
    box = face_box_of(face_box, landmarks)
    if isinstance(frames, (list, tuple)):
        num_frames = len(frames)
    else:
        frames = as_frame_stack(frames)
        num_frames = frames.shape[0]
    if num_frames < 2:
        raise MieInputError(
            f"The clip has {num_frames} frame(s); the baselines need at least an onset and an apex frame."
        )
    onset = _index("onset_index", onset_index, num_frames)
    apex = _index("apex_index", apex_index, num_frames)
    offset = num_frames - 1 if offset_index is None else _index("offset_index", offset_index, num_frames)
    if not onset <= apex <= offset:
        raise MieInputError(
            f"Expected onset <= apex <= offset; got onset {onset}, apex {apex}, offset {offset}."
        )
    if span == "onset_apex":
        if apex == onset:
            raise MieInputError(
                f"The apex is the onset frame ({onset}): there is no onset -> apex motion to measure. "
                "Use an annotated or estimated apex after the onset."
            )
        indices, apex_position = np.array([onset, apex]), 1
    else:
        indices, apex_position = np.arange(onset, offset + 1), apex - onset
    source = [frames[i] for i in indices] if isinstance(frames, (list, tuple)) else frames[indices]

    pixel_box = round_boxes(box[None])  # (1, 4) int, end exclusive
    x0, y0, x1, y1 = pixel_box[0].tolist()
    volume = np.empty((len(indices), height, width), np.uint8)
    with open_clip(source, limits) as reader:
        frame_w, frame_h = reader.frame_size
        seen_w = min(x1, frame_w) - max(x0, 0)
        seen_h = min(y1, frame_h) - max(y0, 0)
        if seen_w < MIN_FACE_SIDE or seen_h < MIN_FACE_SIDE:
            raise MieInputError(
                f"The face box {box.round(1).tolist()} leaves less than {MIN_FACE_SIDE} x {MIN_FACE_SIDE} pixels "
                f"inside the {frame_w} x {frame_h} frames: the crop would be empty. Check that the box or "
                "landmarks belong to this clip."
            )
        order = "bgr" if reader.channel_order == "bgr" else "rgb"
        count = 0
        for frame in reader.iter_frames():
            if count >= len(indices):
                break
            crop = crop_regions(frame[None], pixel_box, [(height, width)], (height, width), 1, order)
            volume[count] = crop[0, 0, 0]  # (T'=1, R=1, C=1, h, w)
            count += 1
    if count != len(indices):  # pragma: no cover - a list reader yields every item or raises
        raise MieInputError(f"Read {count} of the clip's {len(indices)} selected frames.")
    return FaceVolume(volume=volume, frame_indices=indices, onset=0, apex=int(apex_position), face_box=box)


__all__ = ["DEFAULT_CROP_SIZE", "FaceVolume", "MIN_FACE_SIDE", "SPANS", "face_box_of", "grey_face_volume"]
