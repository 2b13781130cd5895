"""Spot micro- and macro-expressions in long videos, then recognise them (spot-then-recognise).

    python -m modeling_mie.spot VIDEO [VIDEO ...] --output-dir DIR [--model PATH_OR_HUB_ID]

writes `DIR/<video file stem>.csv` with one row per spotted interval:
`onset_frame,apex_frame,offset_frame,onset_s,apex_s,offset_s,kind,label,score` (frames are
0-based indices of the decoded frames; `kind` is `micro` or `macro`; `label` the recognition
model's class; `score` the spotting confidence, 0.5 at the detection threshold). `spot_video`
returns the same rows, and more columns, as a pandas DataFrame.

The method is training-free, in the family of the optical-flow baselines of the MEGC spotting
challenges (docs/spotting.md):

1. The video is read as a stream (a file, or a folder of numbered frames as SAMM Long Videos
   keeps them at 200 fps), at about `analysis_fps` frames a second: every `stride`-th frame.
2. The face is found and followed as for a short clip (`tracking.FaceTracker`: the rigid-skin
   registration onto the reference face, MediaPipe every few frames); each frame's face is
   warped onto the region canvas of the recognition model (240 x 280 px), so head motion in
   the image plane is gone before any flow is computed.
3. Sliding reference: the video is cut into segments of `segment_s` seconds that overlap by
   half; every frame's canvas is compared by DIS optical flow with the first canvas of each of
   the two segments it lies in, and the median flow of the nose bridge (head motion that the
   registration left) is removed. The flow is averaged over cells of 20 x 20 canvas px; the
   eye openings are left out, so that blinks do not count.
4. Per segment, each cell's median displacement over the segment is its neutral position: the
   distance from it is how far that part of the face moved away from rest (an expression
   shorter than half the segment never moves the median). Per region: the mean of its most
   moved quarter of cells, and per frame the smaller of its two segments' values (one bad
   reference cannot invent a movement).
5. Per region and video, the motion is turned into a robust z-score (median and MAD over the
   video); frames whose strongest region exceeds `z_on` and `min_motion_px` start an interval,
   which extends while the strongest region stays above `z_off`; intervals closer than
   `merge_s` are merged. Onset, apex (the strongest frame) and offset come from it; an interval
   of at most `micro_max_s` (0.5 s) is `micro`, a longer one `macro`. Intervals during which the
   head turned out of the image plane by more than `max_turn_change` degrees are dropped (a
   turn moves the whole face in ways no registration in the image plane undoes).
6. Each interval's frames (up to the model's frame count, onset first) are read again and
   classified by the recognition model, as the app does for a clip.

Memory is flat in the video's length: frames are decoded one at a time, two segments of small
per-cell vectors are held, and per analysed frame only a handful of numbers are kept.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import logging
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .errors import MieInputError

logger = logging.getLogger(__name__)

#: The columns of the CSV `python -m modeling_mie.spot` writes, in order.
CSV_COLUMNS = ("onset_frame", "apex_frame", "offset_frame", "onset_s", "apex_s", "offset_s", "kind", "label", "score")
#: Side of the square cells the flow is averaged over, canvas px (the region boxes of the
#: bundled model are multiples of it).
CELL = 20
#: The eye openings, grown by this factor about their centres (and by at least a third of the
#: eye's width), are left out of the flow: a blink moves the lids, nothing else.
_EYE_GROW = 1.8


@dataclass
class SpotSettings:
    """How `spot_video` reads motion and turns it into intervals (times in seconds).

    Attributes:
        analysis_fps: frames analysed per second of video (every round(fps / analysis_fps)-th
            frame; a 30 fps video is read whole, SAMM's 200 fps every 7th frame).
        segment_s: length of the sliding-reference segments (overlapping by half). Longer than
            twice the longest macro-expression (4 s), so that the median is the rest position.
        cell_fraction: share of each region's most moved cells averaged into its motion.
        smooth_s: moving-average window of the per-region motion.
        z_on, z_off: robust z-scores (over the video) that start an interval and that keep it going.
        min_motion_px: canvas px the strongest region must move for an interval to start
            (the face canvas is 240 px wide: 1 px is about 0.4 % of the face's width).
        blink_fraction: both eye openings moving down by this share of their height (from rest)
            is a blink: for those frames, and `blink_pad_s` around them, the regions that hold
            the eyes are not read.
            A blink drags the skin around the eyes along: during it (and `blink_pad_s` after), the
            other regions count only where they move more than `blink_spill` times the eye
            regions' largest motion in that blink.
        merge_s: intervals closer than this are one.
        min_s: shorter intervals are dropped (noise).
        micro_max_s: the longest micro-expression (MEGC: 0.5 s); longer intervals are `macro`.
        max_s: longer intervals are dropped (not an expression: talking, a change of posture).
        max_turn_change: degrees the head may turn out of the image plane during an interval.
        landmark_every: analysed frames between MediaPipe's checks of the face.
        max_head_turn: degrees from the reference pose beyond which the face counts as lost.
    """

    analysis_fps: float = 30.0
    segment_s: float = 8.0
    cell_fraction: float = 0.25
    smooth_s: float = 0.1
    z_on: float = 8.0
    z_off: float = 2.5
    min_motion_px: float = 0.2
    blink_fraction: float = 0.04
    blink_pad_s: float = 0.1
    blink_spill: float = 0.25
    merge_s: float = 0.15
    min_s: float = 0.1
    micro_max_s: float = 0.5
    max_s: float = 6.0
    max_turn_change: float = 6.0
    landmark_every: int = 6
    max_head_turn: float = 25.0

    def stride(self, fps: float) -> int:
        return max(1, int(round(fps / self.analysis_fps)))


# ----------------------------------------------------------------------------- reading
class LongVideo:
    """A long video read as a stream: a video file, or a folder of numbered frames.

    Frames come out in RGB (or grey, (H, W)) uint8. `frames(stride)` decodes in order and
    yields every `stride`-th frame; `read(indices)` gets a few frames back for recognition.

    Args:
        source: a video file or a folder of numbered image files (sorted by the numbers in
            their names, as `video.list_frame_files` does).
        fps: frame rate; required for frame folders (they carry none), overrides a file's.
    """

    def __init__(self, source, fps: float | None = None):
        import cv2

        from .video import list_frame_files

        self.path = Path(source).expanduser()
        self.files: list[Path] | None = None
        self._cv2 = cv2
        if self.path.is_dir():
            self.files = list_frame_files(self.path)
            if not self.files:
                raise MieInputError(f"{self.path} holds no image files (jpg, png, bmp, ...); pass a video file or a folder of frames.")
            if fps is None:
                raise MieInputError(f"{self.path} is a folder of frames, which carries no frame rate: pass fps (--fps), e.g. 200 for SAMM Long Videos, 30 for CAS(ME)^2.")
            self.num_frames: int | None = len(self.files)
            first = self._imread(self.files[0])
            self.frame_size = (first.shape[1], first.shape[0])
            self.fps = float(fps)
        elif self.path.is_file():
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                cap.release()
                raise MieInputError(
                    f"{self.path} could not be opened as a video (not a video, truncated, or a format OpenCV cannot "
                    "decode). Convert it to MP4 (H.264), or pass a folder of frames."
                )
            rate = cap.get(cv2.CAP_PROP_FPS)
            count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.frame_size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            cap.release()
            known = float(rate) if math.isfinite(rate) and 0 < rate <= 10000 else None
            if fps is None and known is None:
                raise MieInputError(f"{self.path} does not say its frame rate; pass fps (--fps).")
            self.fps = float(fps) if fps is not None else known
            self.num_frames = int(count) if math.isfinite(count) and count > 0 else None
        else:
            raise MieInputError(f"{self.path} does not exist; pass a video file or a folder of frames.")
        if not self.fps > 0:
            raise MieInputError(f"The frame rate of {self.path} must be positive, got {self.fps}.")

    @property
    def name(self) -> str:
        return self.path.stem if self.files is None else self.path.name

    def _imread(self, path: Path) -> np.ndarray:
        from .video import _read_image_file

        image = _read_image_file(path)  # BGR (H, W, 3) or grey (H, W, 1); MieInputError if undecodable
        return image[:, :, 0] if image.shape[2] == 1 else self._cv2.cvtColor(image, self._cv2.COLOR_BGR2RGB)

    def frames(self, stride: int = 1, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) for every `stride`-th frame from `start`, decoded one at a time."""
        if self.files is not None:
            for index in range(start, len(self.files), stride):
                yield index, self._imread(self.files[index])
            return
        cv2 = self._cv2
        cap = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            while True:
                if index < start or (index - start) % stride:
                    if not cap.grab():
                        break
                else:
                    ok, frame = cap.read()
                    if not ok or frame is None:
                        break
                    yield index, (cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame)
                index += 1
            self.num_frames = index  # the header may be wrong: what decodes is what counts
        finally:
            cap.release()

    def read(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """The frames at `indices` (any order), decoded again; missing ones (past the end) are absent."""
        wanted = sorted(set(int(i) for i in indices))
        if not wanted:
            return {}
        if self.files is not None:
            return {i: self._imread(self.files[i]) for i in wanted if 0 <= i < len(self.files)}
        cv2 = self._cv2
        out: dict[int, np.ndarray] = {}
        cap = cv2.VideoCapture(str(self.path))
        try:
            position = 0
            for target in wanted:
                if target - position > 300:  # far ahead: seek instead of decoding every frame between
                    cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                    got = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
                    position = got if got <= target else 0
                    if position == 0:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                while position < target:
                    if not cap.grab():
                        return out
                    position += 1
                ok, frame = cap.read()
                if not ok or frame is None:
                    return out
                position += 1
                out[target] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame
        finally:
            cap.release()
        return out


    def interval(self, onset: int, offset: int, count: int) -> tuple[np.ndarray | None, float]:
        """Up to `count` frames evenly spread from `onset` to `offset` (both included), stacked, and
        the frame rate they stand for; (None, 0) when fewer than two could be read."""
        positions = np.unique(np.round(np.linspace(onset, offset, count)).astype(int))
        got = self.read(positions.tolist())
        frames = [got[i] for i in positions if i in got]
        if len(frames) < 2:
            return None, 0.0
        return np.stack(frames), self.fps * (len(frames) - 1) / max(offset - onset, 1)


# ----------------------------------------------------------------------------- motion
@dataclass
class MotionTrace:
    """What the motion pass measured, per analysed frame.

    Attributes:
        video: the source's name; fps: its frame rate; stride: frames per analysed frame.
        num_frames: decoded frames in the video.
        indices: (N,) source frame index of each analysed frame.
        present: (N,) bool, the face was usable there.
        region_px: (N, R) float32, each region's displacement from rest, canvas px (NaN where
            not measured: no face, or not yet in two segments' reach).
        turn: (N,) float32, out-of-plane head angle (yaw/pitch change from the reference), deg.
        region_names: the R regions.
        face: one line on where the face was found and lost.
        eye_drop: (N, 2) float32, how far each eye opening moved down from rest, canvas px
            (a closing lid: a blink).
        eye_height: the reference face's eye opening, canvas px.
        eye_regions: indices of the regions that hold an eye opening.
    """

    video: str
    fps: float
    stride: int
    num_frames: int
    indices: np.ndarray
    present: np.ndarray
    region_px: np.ndarray
    turn: np.ndarray
    region_names: list[str]
    face: str = ""
    eye_drop: np.ndarray | None = None
    eye_height: float = float("nan")
    eye_regions: tuple = ()

    @property
    def times(self) -> np.ndarray:
        return self.indices / self.fps


class _Grow:
    """A growing (n, *shape) array, doubled when full."""

    def __init__(self, shape: tuple = (), dtype=np.float32, fill=np.nan):
        self.data = np.full((1024, *shape), fill, dtype)
        self.fill = fill
        self.n = 0

    def ensure(self, n: int) -> None:
        if n > len(self.data):
            bigger = np.full((max(n, 2 * len(self.data)), *self.data.shape[1:]), self.fill, self.data.dtype)
            bigger[: len(self.data)] = self.data
            self.data = bigger
        self.n = max(self.n, n)

    def array(self) -> np.ndarray:
        return self.data[: self.n].copy()


class _Cells:
    """Masked cell means of a canvas flow field, each region's cells, and the eye openings' mean flow."""

    def __init__(self, width: int, height: int, region_boxes: np.ndarray, mask: np.ndarray, eyes: list[np.ndarray] | None = None):
        self.gw, self.gh = width // CELL, height // CELL
        self.w, self.h = self.gw * CELL, self.gh * CELL
        m = mask[: self.h, : self.w].astype(np.float32)
        self.mask = m[:, :, None]
        weight = m.reshape(self.gh, CELL, self.gw, CELL).sum(axis=(1, 3)).reshape(-1)
        self.valid = weight >= 0.25 * CELL * CELL  # a cell mostly masked (the eye) is left out
        self.weight = np.where(self.valid, weight, 1.0)[:, None]
        centres_x = (np.arange(self.gw) + 0.5) * CELL
        centres_y = (np.arange(self.gh) + 0.5) * CELL
        cx, cy = np.meshgrid(centres_x, centres_y)
        cx, cy = cx.reshape(-1), cy.reshape(-1)
        self.region_cells = []
        for x0, y0, x1, y1 in np.asarray(region_boxes, np.float64):
            inside = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1) & self.valid
            self.region_cells.append(np.flatnonzero(inside))
        # the eye openings (bounding boxes of the dlib eye contours): where a blink shows
        self.eye_boxes = []
        for contour in eyes or []:
            x0, y0 = np.floor(contour.min(axis=0)).astype(int)
            x1, y1 = np.ceil(contour.max(axis=0)).astype(int) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if x1 > x0 and y1 > y0:
                self.eye_boxes.append((slice(y0, y1), slice(x0, x1)))

    def eye_flow(self, flow: np.ndarray) -> np.ndarray:
        """(eyes, 2) mean flow over each eye opening."""
        if not self.eye_boxes:
            return np.zeros((0, 2), np.float32)
        return np.stack([flow[box].reshape(-1, 2).mean(axis=0) for box in self.eye_boxes]).astype(np.float32)

    def means(self, flow: np.ndarray) -> np.ndarray:
        """(cells, 2) float32 mean flow per cell (masked pixels left out)."""
        import cv2

        part = flow[: self.h, : self.w] * self.mask
        # INTER_AREA on an exact multiple averages each cell: the masked sum / cell area
        sums = cv2.resize(part, (self.gw, self.gh), interpolation=cv2.INTER_AREA).reshape(-1, 2)
        return (sums * np.float32(CELL * CELL) / self.weight).astype(np.float32)

    def region_motion(self, moved: np.ndarray, fraction: float) -> np.ndarray:
        """(n, cells) displacement from rest -> (n, R) mean of each region's most moved cells."""
        out = np.full((moved.shape[0], len(self.region_cells)), np.nan, np.float32)
        for r, cells in enumerate(self.region_cells):
            if len(cells) == 0:
                continue
            values = np.sort(moved[:, cells], axis=1)[:, ::-1]
            keep = max(1, int(math.ceil(fraction * len(cells))))
            out[:, r] = values[:, :keep].mean(axis=1)
        return out


class _Segment:
    def __init__(self, start: int, length: int):
        self.start = start
        self.length = length
        self.reference: np.ndarray | None = None
        self.rows: list[int] = []
        self.cells: list[np.ndarray] = []
        self.eyes: list[np.ndarray] = []

    @property
    def end(self) -> int:  # last analysed frame of the segment
        return self.start + self.length - 1


class SegmentMotion:
    """Displacement from rest per region, against sliding references (steps 3-4 of the module).

    Feed analysed frames in order with `add(j, canvas)` (None where the face is not usable);
    `finish()` returns the (N, R) per-region motion.
    """

    def __init__(self, flow, cells: _Cells, segment: int, fraction: float):
        self.flow = flow
        self.cells = cells
        self.length = max(4, int(segment))
        self.half = max(2, self.length // 2)
        self.fraction = fraction
        self.segments: list[_Segment] = []
        self.motion = _Grow((len(cells.region_cells),))
        self.eyes = max(len(cells.eye_boxes), 1)
        self.eye_drop = _Grow((self.eyes,))

    def add(self, j: int, canvas: np.ndarray | None) -> None:
        self.motion.ensure(j + 1)
        self.eye_drop.ensure(j + 1)
        if j % self.half == 0:
            self.segments.append(_Segment(j, self.length))
        for seg in self.segments:
            if canvas is None:
                continue
            if seg.reference is None:
                seg.reference = canvas  # the first usable frame of the segment
                flow = None
            else:
                flow = self.flow.between(seg.reference, canvas)
            seg.rows.append(j)
            seg.cells.append(np.zeros((len(self.cells.weight), 2), np.float32) if flow is None else self.cells.means(flow))
            seg.eyes.append(np.zeros((len(self.cells.eye_boxes), 2), np.float32) if flow is None else self.cells.eye_flow(flow))
        done = [s for s in self.segments if s.end <= j]
        for seg in done:
            self._close(seg)
        self.segments = [s for s in self.segments if s.end > j]

    def _close(self, seg: _Segment) -> None:
        if len(seg.rows) < max(4, self.half // 4):
            return  # too few frames for a rest position; the other segment covers them
        vectors = np.stack(seg.cells)  # (n, cells, 2)
        rest = np.median(vectors, axis=0)
        moved = np.linalg.norm(vectors - rest, axis=2)
        motion = self.cells.region_motion(moved, self.fraction)
        rows = np.asarray(seg.rows)
        self.motion.data[rows] = np.fmin(self.motion.data[rows], motion)
        if self.cells.eye_boxes:
            eyes = np.stack(seg.eyes)  # (n, eyes, 2)
            drop = eyes[:, :, 1] - np.median(eyes[:, :, 1], axis=0)  # downward (closing) displacement
            self.eye_drop.data[rows] = np.fmin(self.eye_drop.data[rows], drop)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, R) region motion px and (N, eyes) downward displacement of the eye openings, px."""
        for seg in self.segments:
            self._close(seg)
        self.segments = []
        return self.motion.array(), self.eye_drop.array()


def eye_mask(width: int, height: int, eyes_canvas: Sequence[np.ndarray]) -> np.ndarray:
    """(height, width) bool, False over the eye openings (each dlib eye contour, grown)."""
    import cv2

    mask = np.ones((height, width), np.uint8)
    for contour in eyes_canvas:
        pts = np.asarray(contour, np.float64)
        centre = pts.mean(axis=0)
        eye_width = float(np.ptp(pts[:, 0]))
        grown = centre + _EYE_GROW * (pts - centre)
        # at least a third of the eye's width around it, so thin (closed) eyes are covered too
        spread = np.maximum(np.abs(grown - centre), eye_width / 3)
        grown = centre + np.sign(grown - centre + 1e-9) * spread
        hull = cv2.convexHull(np.round(grown).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 0)
    return mask.astype(bool)


class _Geometry:
    """The canvas, flow, cells and eye masks of one reference face (dlib-68 points, region boxes in px)."""

    def __init__(self, processor, dlib68, region_boxes_exact, channel_order: str = "rgb"):
        from .flow import FaceFlow, reference_to_canvas
        from .tracking import apply_affine

        canvas_boxes = np.array([r["box"] for r in processor.regions], np.float64)
        width, height = (int(v) for v in processor.canvas_size)
        to_canvas = reference_to_canvas(region_boxes_exact, canvas_boxes)
        dlib = np.asarray(dlib68, np.float64)
        bridge = apply_affine(to_canvas, dlib[[27, 28]]).mean(axis=0)
        self.flow = FaceFlow((width, height), to_canvas, canvas_boxes, processor.region_crop_sizes, bridge, channel_order)
        eyes = [apply_affine(to_canvas, dlib[36:42]), apply_affine(to_canvas, dlib[42:48])]
        self.cells = _Cells(width, height, canvas_boxes, eye_mask(width, height, eyes), eyes)
        eye_height = float(np.mean([np.linalg.norm(dlib[a] - dlib[b]) for a, b in ((37, 41), (38, 40), (43, 47), (44, 46))]))
        self.eye_height = eye_height * float(np.sqrt(abs(np.linalg.det(to_canvas[:, :2]))))
        self.eye_regions = tuple(r for r, box in enumerate(canvas_boxes) if any(_overlaps(box, e) for e in eyes))


def measure_motion(
    video: LongVideo,
    processor,
    settings: SpotSettings | None = None,
    progress: bool = True,
    on_frame: Callable[[int, int], None] | None = None,
) -> MotionTrace:
    """Step 1-4 of the module docstring: the per-region motion of a long video.

    Args:
        video: the source (`LongVideo`).
        processor: a `MieProcessor` (its region table and face options; its flow settings).
        settings: `SpotSettings`.
        progress: show a tqdm bar with ETA.
        on_frame: called with (frames done, total or 0) after each analysed frame.

    Raises:
        MieInputError: no usable face anywhere in the video.
    """
    from .landmarks import MieFaceLandmarker
    from .tracking import FaceTracker

    settings = settings or SpotSettings()
    stride = settings.stride(video.fps)
    afps = video.fps / stride
    opts = processor._options({"face_search_checks": 10**9, "face_search_stride": max(1, int(round(afps / 4)))})
    channel_order = "rgb"
    info = {"source": str(video.path), "notes": [], "fps": afps, "channel_order": channel_order}
    total = (video.num_frames + stride - 1) // stride if video.num_frames else 0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total or None, desc=f"Spotting {video.name}", unit="frame", unit_scale=stride, leave=False)

    analysed = ((j, frame) for j, (_, frame) in enumerate(video.frames(stride)))
    try:
        given, frames = processor._find_reference(analysed, channel_order, opts, info)
    except MieInputError as err:
        if bar is not None:
            bar.close()
        # the processor's advice is for clips (landmarks=, boxes=); keep what it found, say what spotting needs
        found = str(err).split(" Use a clip")[0].split(" Use a closer")[0]
        raise MieInputError(
            f"{found} Spotting searched the whole video and needs one face that looks at the camera, well lit, "
            "unobstructed and large enough, for at least part of it."
        ) from None
    processor._finish_geometry(given, video.frame_size, opts, info)
    first = given["frame"]

    regions = processor.regions
    geometry = _Geometry(processor, info["dlib68"], info["region_boxes_exact"], channel_order)
    flow, cells = geometry.flow, geometry.cells
    segment = max(8, int(round(settings.segment_s * afps)))
    motion = SegmentMotion(flow, cells, segment, settings.cell_fraction)
    present = _Grow((), np.bool_, False)
    turn = _Grow(())

    landmarker = MieFaceLandmarker(processor._face_landmarker_path, detect_max_side=opts["detect_max_side"], running_mode="video")

    def check(index, rgb):
        return processor.detect_faces(rgb, frame_index=index, detect_max_side=opts["detect_max_side"])

    frames = iter(frames)
    head = next(frames, None)
    if head is None:
        landmarker.close()
        raise MieInputError(f"{video.path} has no frame from the face on.")
    tracker = FaceTracker(
        head[1], given["points"], given.get("pose"), landmarker, check=check, align=True,
        landmark_every=settings.landmark_every, max_head_turn=settings.max_head_turn, fps=afps,
        channel_order=channel_order, keep_records=False,
    )
    count = first
    # The flows and cell means of frame j run on a worker thread (OpenCV and numpy release the
    # GIL) while this one decodes and registers the next frames: two cores, two stages.
    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pending: deque = deque()
    try:
        if bar is not None:
            bar.update(first)
        for j, frame, record in tracker.run(itertools.chain([head], frames)):
            present.ensure(j + 1)
            turn.ensure(j + 1)
            usable = bool(record.present)
            present.data[j] = usable
            turn.data[j] = record.turn
            pending.append(worker.submit(motion.add, j, flow.canvas(frame, record.transform) if usable else None))
            while len(pending) > 4:
                pending.popleft().result()
            count = j + 1
            if bar is not None:
                bar.update(1)
            if on_frame is not None:
                on_frame(count, total)
        while pending:
            pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        worker.shutdown(wait=True)
        landmarker.close()
        if bar is not None:
            bar.close()
    region_px, eye_drop = motion.finish()
    n = count
    region_px = _pad(region_px, n)
    eye_drop = _pad(eye_drop, n)
    present_arr = _pad(present.array(), n, False)
    turn_arr = _pad(turn.array(), n)
    indices = np.arange(n, dtype=np.int64) * stride
    num_frames = video.num_frames or (int(indices[-1]) + 1 if n else 0)
    lost = n - first - int(present_arr[first:].sum())
    face = f"face from {first / afps:.2f} s" if first else "face from the first frame"
    if lost:
        face += f"; not usable in {lost} of {n - first} analysed frames"
    return MotionTrace(
        video=video.name, fps=video.fps, stride=stride, num_frames=num_frames, indices=indices,
        present=present_arr, region_px=region_px, turn=turn_arr,
        region_names=[r["name"] for r in regions], face=face, eye_drop=eye_drop, eye_height=geometry.eye_height,
        eye_regions=geometry.eye_regions,
    )


def _overlaps(box, contour: np.ndarray) -> bool:
    x0, y0, x1, y1 = box
    cx, cy = contour.mean(axis=0)
    return bool(x0 <= cx < x1 and y0 <= cy < y1)


def blink_frames(trace: MotionTrace, settings: SpotSettings) -> np.ndarray:
    """(N,) bool: both eye openings moved down past `blink_fraction` of their height, padded."""
    n = len(trace.indices)
    if trace.eye_drop is None or trace.eye_drop.shape[1] < 2 or not math.isfinite(trace.eye_height):
        return np.zeros(n, bool)
    threshold = settings.blink_fraction * trace.eye_height
    closed = np.nan_to_num(trace.eye_drop, nan=-np.inf).min(axis=1) >= threshold
    pad = int(round(settings.blink_pad_s * trace.fps / trace.stride))
    if pad and closed.any():
        closed = np.convolve(closed.astype(np.int64), np.ones(2 * pad + 1, np.int64), mode="same") > 0
    return closed


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True in a 1-d bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _pad(array: np.ndarray, n: int, fill=np.nan) -> np.ndarray:
    if len(array) >= n:
        return array[:n]
    out = np.full((n, *array.shape[1:]), fill, array.dtype)
    out[: len(array)] = array
    return out


# ----------------------------------------------------------------------------- intervals
@dataclass
class Interval:
    """One spotted interval, in source frames (0-based, inclusive)."""

    onset: int
    apex: int
    offset: int
    kind: str
    score: float
    peak_z: float
    peak_px: float
    region: str
    label: str = ""
    probabilities: dict = field(default_factory=dict)


def _moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware centred moving average along axis 0."""
    if window <= 1:
        return x.copy()
    valid = np.isfinite(x)
    filled = np.where(valid, x, 0.0)
    kernel = np.ones(window) / window
    num = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, filled)
    den = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, valid.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out


def robust_z(trace: MotionTrace, settings: SpotSettings) -> tuple[np.ndarray, np.ndarray]:
    """(N, R) smoothed region motion px and its robust z-score per region over the video."""
    afps = trace.fps / trace.stride
    px = _moving_mean(trace.region_px.astype(np.float64), max(1, int(round(settings.smooth_s * afps))))
    with np.errstate(all="ignore"):
        median = np.nanmedian(px, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(px - median), axis=0)
    sigma = np.maximum(np.nan_to_num(mad, nan=1.0), 0.02)  # a still, noiseless region: 0.02 px
    z = (px - np.nan_to_num(median)) / sigma
    return px, z


def find_intervals(trace: MotionTrace, settings: SpotSettings | None = None) -> list[Interval]:
    """Step 5 of the module docstring: intervals from the motion trace (no labels yet)."""
    settings = settings or SpotSettings()
    n = len(trace.indices)
    if n == 0:
        return []
    afps = trace.fps / trace.stride
    px, z = robust_z(trace, settings)
    blinks = blink_frames(trace, settings)
    if trace.eye_regions and blinks.any():
        eyes = list(trace.eye_regions)
        others = [r for r in range(px.shape[1]) if r not in eyes]
        tail = int(round(settings.blink_pad_s * afps))
        for a, b in _runs(blinks):
            with np.errstate(all="ignore"):
                eye_peak = float(np.nan_to_num(np.nanmax(px[a : b + 1][:, eyes]), nan=0.0))
            stop = min(b + 1 + tail, n)
            spilled = px[a:stop][:, others] < settings.blink_spill * eye_peak
            block = z[a:stop][:, others]
            block[spilled] = np.nan
            z[a:stop, others] = block
        z[np.ix_(blinks, eyes)] = np.nan
        px[np.ix_(blinks, eyes)] = np.nan
    with np.errstate(all="ignore"):
        strongest = np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=1)
    strongest[~np.isfinite(strongest)] = -np.inf
    strong_px = np.nanmax(np.where(np.isfinite(px), px, -np.inf), axis=1)
    start = (strongest >= settings.z_on) & (strong_px >= settings.min_motion_px) & trace.present
    keep = (strongest >= settings.z_off) & trace.present
    runs = []
    j = 0
    while j < n:
        if not start[j]:
            j += 1
            continue
        a = j
        while a > 0 and keep[a - 1]:
            a -= 1
        b = j
        while b + 1 < n and keep[b + 1]:
            b += 1
        runs.append([a, b])
        j = b + 1
    merged: list[list[int]] = []
    gap = int(round(settings.merge_s * afps))
    for a, b in runs:
        if merged and a - merged[-1][1] - 1 <= gap and trace.present[merged[-1][1] : a + 1].all():
            merged[-1][1] = b
        else:
            merged.append([a, b])
    out = []
    stride = trace.stride
    for a, b in merged:
        onset, offset = int(trace.indices[a]), min(int(trace.indices[b]) + stride - 1, trace.num_frames - 1)
        duration = (offset - onset + 1) / trace.fps
        if duration < settings.min_s or duration > settings.max_s:
            logger.debug("%s: frames %d-%d dropped: %.2f s long", trace.video, onset, offset, duration)
            continue
        turns = trace.turn[a : b + 1]
        turns = turns[np.isfinite(turns)]
        if len(turns) and float(turns.max() - turns.min()) > settings.max_turn_change:
            logger.debug("%s: frames %d-%d dropped: the head turned %.1f deg", trace.video, onset, offset, float(turns.max() - turns.min()))
            continue
        peak = a + int(np.argmax(strongest[a : b + 1]))
        peak_z = float(strongest[peak])
        region = int(np.nanargmax(np.where(np.isfinite(z[peak]), z[peak], -np.inf)))
        out.append(Interval(
            onset=onset,
            apex=int(trace.indices[peak]),
            offset=offset,
            kind="micro" if duration <= settings.micro_max_s else "macro",
            score=float(peak_z / (peak_z + settings.z_on)),
            peak_z=peak_z,
            peak_px=float(px[peak, region]),
            region=trace.region_names[region],
        ))
    return out


# ----------------------------------------------------------------------------- recognition
def recognise(intervals: list[Interval], video: LongVideo, model, processor, classify=None) -> None:
    """Step 6: label each interval with the model (in place): its frames from the onset on,
    up to the processor's frame count, evenly spread to the offset.

    Args:
        model: a `MieForVideoClassification` (its `logits` carry the calibration temperature).
        classify: instead of `model`, (pixel_values, frame_mask) -> (labels,) probabilities,
            with `model` then only giving the label names (e.g. an `OnnxMieModel`).
    """
    import torch

    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if classify is None:
        def classify(pixel_values, frame_mask):
            with torch.no_grad():
                logits = model(pixel_values=pixel_values, frame_mask=frame_mask).logits[0]
            return torch.softmax(logits, -1).tolist()

    count = int(getattr(processor, "num_frames", None) or 32)
    for interval in intervals:
        frames, rate = video.interval(interval.onset, interval.offset, count)
        if frames is None:
            continue
        stack = frames if frames.ndim == 4 else np.repeat(frames[..., None], 3, axis=3)
        try:
            inputs = processor(stack, return_tensors="pt", fps=rate)
        except MieInputError as err:
            logger.info("%s: interval %d-%d not recognised (%s)", video.name, interval.onset, interval.offset, err)
            continue
        probs = [float(p) for p in classify(inputs["pixel_values"], inputs["frame_mask"])]
        interval.probabilities = dict(zip(names, probs))
        interval.label = names[int(np.argmax(probs))]


def load_recogniser(model_id):
    """(model, processor) from a folder or Hub id, or MieInputError saying what to pass."""
    from .modeling_mie import MieForVideoClassification
    from .processing_mie import MieProcessor

    try:
        model = MieForVideoClassification.from_pretrained(str(model_id)).eval()
        processor = MieProcessor.from_pretrained(str(model_id))
    except (OSError, ValueError) as err:
        raise MieInputError(f"Could not load a mie model from {model_id!r} ({err}); pass --model with a model folder or Hub id.") from err
    return model, processor


# ----------------------------------------------------------------------------- API
def spot_video(
    video,
    model=None,
    *,
    fps: float | None = None,
    settings: SpotSettings | None = None,
    recognise_intervals: bool = True,
    processor=None,
    progress: bool = True,
    return_trace: bool = False,
    classify=None,
    on_frame: Callable[[int, int], None] | None = None,
):
    """Spot micro- and macro-expressions in a long video and recognise them.

    Args:
        video: a video file or a folder of numbered frames (then `fps` is required).
        model: a model folder or Hub id (default: the bundled checkpoint), or a loaded
            `MieForVideoClassification`; None with `recognise_intervals=False` needs no model.
        fps: frame rate (frame folders; overrides a file's).
        settings: `SpotSettings`.
        recognise_intervals: label each interval with the model.
        processor: a `MieProcessor` (default: the model's, or the default one).
        progress: tqdm progress bar.
        return_trace: also return the `MotionTrace` (for plots).
        classify: (pixel_values, frame_mask) -> probabilities, used instead of calling `model`
            (which then only names the labels); see `recognise`.
        on_frame: called with (analysed frames done, total or 0) during the motion pass.

    Returns:
        A pandas DataFrame, one row per interval in time order, with the CSV columns
        (`CSV_COLUMNS`) and `peak_px` (canvas px the strongest region moved), `region` (which),
        `peak_z` and one `p_<class>` column per class. With `return_trace`, (frame, trace).
    """
    import pandas as pd

    settings = settings or SpotSettings()
    source = video if isinstance(video, LongVideo) else LongVideo(video, fps)
    if recognise_intervals and (model is None or isinstance(model, (str, Path))):
        from .app_support import resolve_model

        model, loaded_processor = load_recogniser(resolve_model(model))
        processor = processor or loaded_processor
    if processor is None:
        from .processing_mie import MieProcessor

        processor = MieProcessor()
    trace = measure_motion(source, processor, settings, progress, on_frame)
    intervals = find_intervals(trace, settings)
    if recognise_intervals and model is not None:
        recognise(intervals, source, model, processor, classify)
    rows = []
    for it in intervals:
        row = {
            "onset_frame": it.onset,
            "apex_frame": it.apex,
            "offset_frame": it.offset,
            "onset_s": round(it.onset / source.fps, 4),
            "apex_s": round(it.apex / source.fps, 4),
            "offset_s": round(it.offset / source.fps, 4),
            "kind": it.kind,
            "label": it.label,
            "score": round(it.score, 4),
            "peak_px": round(it.peak_px, 3),
            "peak_z": round(it.peak_z, 2),
            "region": it.region,
        }
        row.update({f"p_{k}": round(v, 4) for k, v in it.probabilities.items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(CSV_COLUMNS) + ["peak_px", "peak_z", "region"] if not rows else None)
    frame.attrs.update(video=source.name, fps=source.fps, num_frames=trace.num_frames, face=trace.face)
    return (frame, trace) if return_trace else frame


def write_csv(frame, path: Path) -> Path:
    """The CSV columns of `spot_video`'s frame to `path` (written whole, then renamed)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".partial")
    frame.loc[:, list(CSV_COLUMNS)].to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_mie.spot",
        description="Spot micro- and macro-expressions in long videos and recognise them; one CSV per video.",
    )
    parser.add_argument("videos", nargs="+", help="video files, or folders of numbered frames (then --fps)")
    parser.add_argument("--output-dir", required=True, help="folder for <video stem>.csv")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled checkpoint)")
    parser.add_argument("--no-recognise", action="store_true", help="spot only; the label column stays empty")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of frame folders (SAMM Long Videos: 200)")
    parser.add_argument("--analysis-fps", type=float, default=SpotSettings.analysis_fps, help="frames analysed per second")
    parser.add_argument("--z-on", type=float, default=SpotSettings.z_on, help="robust z-score that starts an interval")
    parser.add_argument("--min-motion-px", type=float, default=SpotSettings.min_motion_px, help="canvas px an interval's region must move")
    parser.add_argument("--overwrite", action="store_true", help="spot videos whose CSV exists again (default: skip them, so a stopped run resumes)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    out = Path(args.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"error: cannot create --output-dir {out}: {err}", file=sys.stderr)
        return 2
    settings = SpotSettings(analysis_fps=args.analysis_fps, z_on=args.z_on, min_motion_px=args.min_motion_px)
    model = processor = None
    failures = 0
    for item in args.videos:
        path = Path(item)
        target = out / f"{path.stem if path.is_file() else path.name}.csv"
        if target.exists() and not args.overwrite:
            print(f"{target} exists: skipped (--overwrite to spot again)")
            continue
        try:
            if model is None and not args.no_recognise:
                from .app_support import resolve_model

                model, processor = load_recogniser(resolve_model(args.model))
            started = time.perf_counter()
            frame = spot_video(
                path, model, fps=args.fps, settings=settings, recognise_intervals=not args.no_recognise,
                processor=processor, progress=not args.quiet,
            )
            write_csv(frame, target)
        except MieInputError as err:
            print(f"error: {item}: {err}", file=sys.stderr)
            failures += 1
            continue
        seconds = time.perf_counter() - started
        kinds = frame["kind"].value_counts().to_dict() if len(frame) else {}
        print(
            f"{target}: {len(frame)} interval(s) ({kinds.get('micro', 0)} micro, {kinds.get('macro', 0)} macro); "
            f"{frame.attrs['num_frames']} frames in {seconds:.1f} s ({frame.attrs['num_frames'] / max(seconds, 1e-9):.0f} frames/s); "
            f"{frame.attrs['face']}"
        )
    return 1 if failures else 0


__all__ = [
    "CSV_COLUMNS",
    "Interval",
    "LongVideo",
    "MotionTrace",
    "SegmentMotion",
    "SpotSettings",
    "find_intervals",
    "measure_motion",
    "recognise",
    "spot_video",
    "write_csv",
]

if __name__ == "__main__":
    raise SystemExit(main())
