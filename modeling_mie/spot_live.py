"""Spotting on a live stream (the app's Live tab): frames arrive one at a time from a webcam.

The motion is measured as `modeling_mie.spot` measures it in a long video file (the same cells,
regions, segments and robust z-scores, `spot.find_intervals` for the intervals), but the face is
followed by its own video-mode MediaPipe landmarker and rigid-landmark similarity per frame, the
segments are shorter (an interval is reported a few seconds after it ends), and the z-scores use
only the last seconds of the stream. docs/spotting.md describes both.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace

import numpy as np

from .errors import MieInputError
from .spot import (
    Interval,
    MotionTrace,
    SegmentMotion,
    SpotSettings,
    _Geometry,
    find_intervals,
)

logger = logging.getLogger(__name__)


class LiveSpotter:
    """Spotting on a live stream (a webcam), one frame at a time, for one session.

    Each frame's face is found by its own video-mode MediaPipe landmarker (one per session) and
    mapped onto the first face seen by a similarity fitted on the rigid landmarks (the eye corners
    and the nose); the motion is measured as in `measure_motion`, with shorter segments
    (`segment_s`, so an interval is reported at most that long after it ends) and the robust
    z-scores over the last `history_s` seconds. Frames of the last `keep_s` seconds are kept
    (downscaled to `max_side`) so that a finished interval can be classified.

    Args:
        processor: a `MieProcessor` (regions, face options).
        settings: `SpotSettings`; `segment_s` defaults to 4 s here.
        recogniser: (frames (T, H, W, 3) uint8 RGB, fps) -> {label: probability}, or None.
        fps: the stream's nominal frame rate (the segment length in frames; times come from the
            frames' own timestamps).
    """

    def __init__(self, processor, settings: SpotSettings | None = None, recogniser=None, fps: float = 10.0,
                 history_s: float = 60.0, keep_s: float = 6.0, max_side: int = 640):
        from .landmarks import MieFaceLandmarker

        self.processor = processor
        self.settings = settings or SpotSettings(segment_s=4.0)
        self.recogniser = recogniser
        self.fps = float(fps)
        self.history_s = history_s
        self.keep_s = keep_s
        self.max_side = max_side
        self._landmarker = MieFaceLandmarker(
            processor._face_landmarker_path, detect_max_side=processor.detect_max_side, running_mode="video"
        )
        self._geometry = None
        self._motion = None
        self._reference_rigid = None
        self._times: list[float] = []
        self._present: list[bool] = []
        self._frames: deque = deque()  # (j, t, frame) of the last keep_s seconds
        self._start: float | None = None  # time of the first frame pushed
        self._t0 = 0.0  # time of the first frame with the face (the reference)
        self._last_ms = -1
        self.intervals: list[Interval] = []
        self.first_frame: np.ndarray | None = None  # as received (to check the orientation)
        self.status = "Waiting for a face."

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def _fit(self, face) -> np.ndarray:
        from .tracking import fit_similarity_robust, mesh_rigid_points

        matrix, _, _ = fit_similarity_robust(mesh_rigid_points(face, 478), self._reference_rigid, noise=0.3)
        return matrix

    def push(self, frame: np.ndarray, t: float) -> list[Interval]:
        """Add one RGB frame taken at `t` seconds; returns the intervals that finished with it."""
        from .regions import face_box_from_landmarks, region_boxes_from_face_box
        from .tracking import mesh_rigid_points

        if self._landmarker is None:
            raise RuntimeError("This LiveSpotter was closed.")
        frame = np.asarray(frame)
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = frame[:, :, :3]
        scale = self.max_side / max(frame.shape[:2])
        if scale < 1:
            import cv2

            frame = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        frame = np.ascontiguousarray(frame)
        if self.first_frame is None:
            self.first_frame = frame.copy()
        if self._start is None:
            self._start = t
        ms = max(int(round((t - self._start) * 1000)), self._last_ms + 1)
        self._last_ms = ms
        faces = self._landmarker.detect_faces(frame, timestamp_ms=ms)
        face = faces[0] if faces else None
        if self._geometry is None:
            if face is None:
                self.status = "Waiting for a face: none in view."
                return []
            box = face_box_from_landmarks(face.dlib68, self.processor.face_box_landmarks)
            if min(box[2] - box[0], box[3] - box[1]) < self.processor.min_face_size:
                self.status = "Waiting for a face: the face is too small; come closer."
                return []
            exact = region_boxes_from_face_box(box, self.processor.regions, self.processor.canvas_size)
            from .tracking import RigidRegistration

            self._geometry = _Geometry(self.processor, face.dlib68, exact)
            self._reference_rigid = mesh_rigid_points(face, 478)
            self._registration = RigidRegistration(frame, face.points, "rgb")
            segment = max(8, int(round(self.settings.segment_s * self.fps)))
            self._motion = SegmentMotion(self._geometry.flow, self._geometry.cells, segment, self.settings.cell_fraction)
            self._t0 = t
        j = len(self._times)
        usable = face is not None
        canvas = None
        if usable:
            # the landmarks' fit, refined on the rigid skin (landmarks jitter by a pixel or so,
            # which the flow would read as movement)
            transform, _, ok = self._registration.register(frame, self._fit(face))
            usable = bool(ok)
            canvas = self._geometry.flow.canvas(frame, transform) if usable else None
        self._motion.add(j, canvas)
        self._times.append(t)
        self._present.append(usable)
        self._frames.append((j, t, frame))
        while self._frames and t - self._frames[0][1] > self.keep_s:
            self._frames.popleft()
        self.status = "Following the face." if usable else "The face is not in view."
        return self._report()

    def _report(self) -> list[Interval]:
        """Intervals over the frames whose motion is final, not reported before."""
        motion = self._motion
        n = len(self._times)
        final = n - motion.length  # frames before this are past both their segments
        if final < motion.length:
            return []
        times = np.asarray(self._times)
        first = int(np.searchsorted(times, times[final - 1] - self.history_s))
        px = motion.motion.data[first:final].copy()
        eye_drop = motion.eye_drop.data[first:final].copy()
        span = times[final - 1] - times[first]
        rate = (final - first - 1) / span if span > 0 else self.fps
        trace = MotionTrace(
            video="live", fps=rate, stride=1, num_frames=final - first, indices=np.arange(final - first),
            present=np.asarray(self._present[first:final]), region_px=px, turn=np.zeros(final - first, np.float32),
            region_names=[r["name"] for r in self.processor.regions], eye_drop=eye_drop,
            eye_height=self._geometry.eye_height, eye_regions=self._geometry.eye_regions,
        )
        done = self.intervals[-1].offset if self.intervals else -1
        new = []
        for interval in find_intervals(trace, replace(self.settings, max_turn_change=float("inf"))):
            onset, offset = interval.onset + first, interval.offset + first
            if onset <= done or offset >= final - 1:  # reported already, or still going on
                continue
            interval.onset, interval.apex, interval.offset = onset, interval.apex + first, offset
            self._recognise(interval)
            new.append(interval)
        self.intervals.extend(new)
        return new

    def _recognise(self, interval: Interval) -> None:
        if self.recogniser is None:
            return
        frames = [f for j, _, f in self._frames if interval.onset <= j <= interval.offset]
        if len(frames) < 2:
            return
        times = self._times
        fps = (len(frames) - 1) / max(times[interval.offset] - times[interval.onset], 1e-3)
        try:
            interval.probabilities = dict(self.recogniser(np.stack(frames), fps))
        except MieInputError as err:
            logger.info("live interval not recognised: %s", err)
            return
        interval.label = max(interval.probabilities, key=interval.probabilities.get)

    def time_of(self, j: int) -> float:
        """Seconds from the first face to analysed frame `j`."""
        return self._times[j] - self._t0

    def recent(self, seconds: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
        """(times s, (n, R) motion px) of the last `seconds`, NaN where not final yet."""
        if self._motion is None or not self._times:
            return np.zeros(0), np.zeros((0, len(self.processor.regions)))
        times = np.asarray(self._times) - self._t0
        first = int(np.searchsorted(times, times[-1] - seconds))
        data = self._motion.motion.data[first : len(times)]
        return times[first:], np.asarray(data, np.float64)


__all__ = ["LiveSpotter"]
