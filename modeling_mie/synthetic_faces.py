"""How a synthetic face looks and moves: the public-domain photos and their landmarks, the
identity transform of each subject, the action units as displacement fields, the time courses
(expression, blink, head motion, drift, flicker) and the rendering of a planned clip's frames.

`modeling_mie.synthetic` plans the clips and writes them in the databases' layouts (its module
docstring describes the whole generator); `modeling_mie.synthetic_long` renders long videos with
the same faces, fields and courses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .errors import MieInputError

if TYPE_CHECKING:
    from .synthetic_plan import SyntheticClip, SyntheticPlan, SyntheticSubject

SYNTHETIC_FACES = ("astronaut", "grace_hopper")
_WENDLAND_RADIUS = 2.2  # sigmas


# --------------------------------------------------------------------------- faces
@dataclass
class BaseFace:
    """A public-domain photo and its landmarks. image: (H, W, 3) uint8 RGB; dlib68: (68, 2) px."""

    name: str
    image: np.ndarray
    dlib68: np.ndarray


def _load_photo(name: str) -> np.ndarray:
    if name == "astronaut":
        try:
            import skimage.data
        except ImportError as err:
            raise ImportError("The astronaut face comes with scikit-image: pip install 'modeling_mie[synthetic]'.") from err
        return np.ascontiguousarray(skimage.data.astronaut())
    if name == "grace_hopper":
        try:
            import matplotlib.cbook
        except ImportError as err:
            raise ImportError("The Grace Hopper face comes with matplotlib: pip install 'modeling_mie[synthetic]'.") from err
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
            return np.ascontiguousarray(np.asarray(img.convert("RGB")))
    raise ValueError(f"Unknown face {name!r}; allowed values are {list(SYNTHETIC_FACES)}.")


def load_base_faces(model_path=None) -> dict[str, BaseFace]:
    """The two photos with their dlib-68 landmarks, detected once with MediaPipe.

    Raises:
        MieInputError: the face landmarker model cannot be found, or no face is found in a photo.
    """
    from .landmarks import MieFaceLandmarker

    faces = {}
    with MieFaceLandmarker(model_path) as landmarker:
        for name in SYNTHETIC_FACES:
            image = _load_photo(name)
            found = landmarker.detect(image)
            if found is None:
                raise MieInputError(f"MediaPipe found no face in the {name} photo; check the landmarker model.")
            # rounded so that the last bits of a float do not decide the bytes written
            faces[name] = BaseFace(name, image, np.round(found.dlib68.astype(np.float64), 2))
    return faces


# --------------------------------------------------------------------------- geometry
# dlib-68 index of each point's mirror image (left <-> right), to keep the indices' meaning
# (0 = image-left end of the jaw) after a mirrored identity.
_DLIB_MIRROR = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


@dataclass
class _FaceAxes:
    right: np.ndarray  # unit vector from the image-left eye to the image-right eye
    up: np.ndarray  # unit vector from chin to brows
    mid: np.ndarray  # a point on the facial midline
    width: float  # jaw-to-jaw width, px

    def side(self, p: np.ndarray) -> float:
        """-1 on the image-left half (the subject's right), +1 on the image-right half."""
        return float(np.sign((p - self.mid) @ self.right))


def _axes(d: np.ndarray) -> _FaceAxes:
    right = d[45] - d[36]
    right = right / np.linalg.norm(right)
    up = np.array([right[1], -right[0]])
    mid = d[[27, 30, 33, 51, 57, 8]].mean(axis=0)
    return _FaceAxes(right, up, mid, float(np.linalg.norm(d[16] - d[0])))


def _derived_points(name: str, d: np.ndarray, ax: _FaceAxes) -> list[np.ndarray]:
    """Anchor points that are not landmarks: cheek apples, dimples, chin boss, nose sides."""
    if name == "cheek":  # the cheek apple: below the eye, outside the nose, above the lip corner
        out = []
        for lid, corner in (((40, 41), 48), ((46, 47), 54)):
            lower_lid = d[list(lid)].mean(axis=0)
            p = lower_lid + 0.65 * (d[corner] - lower_lid)
            out.append(p + 0.1 * ax.width * ax.side(p) * ax.right)
        return out
    if name == "corner_cheek":  # where the lip corner is pulled to: up and out
        return [d[i] + ax.width * (0.06 * ax.side(d[i]) * ax.right + 0.03 * ax.up) for i in (48, 54)]
    if name == "below_corner":
        return [d[i] - 0.08 * ax.width * ax.up for i in (48, 54)]
    if name == "dimple":
        return [d[i] + 0.06 * ax.width * ax.side(d[i]) * ax.right for i in (48, 54)]
    if name == "chin_boss":
        return [d[57] + 0.4 * (d[8] - d[57])]
    if name == "nose_side":
        return [0.5 * (d[29] + d[i]) for i in (31, 35)]
    raise KeyError(name)


# How each action unit moves the face: anchors (dlib-68 indices, or a derived point name), a weight,
# the direction in the face's own frame (up, outward; negative = down, inward) and the Gaussian
# width as a fraction of the face width. Each AU's field is normalised to a peak of 1 before the
# clip's amplitude (times `_AU_GAIN`) is applied. FACS descriptions (Ekman & Friesen) in brackets.
ACTION_UNIT_ANCHORS: dict[int, list[tuple]] = {
    # AU1 inner brow raiser [inner brow corners up]
    1: [((21, 22), 1.0, 1.0, 0.0, 0.06), ((20, 23), 0.6, 1.0, 0.0, 0.06)],
    # AU2 outer brow raiser [outer brows up, slightly outward]
    2: [((17, 26), 0.8, 1.0, 0.2, 0.06), ((18, 25), 1.0, 1.0, 0.2, 0.06), ((19, 24), 0.5, 1.0, 0.1, 0.06)],
    # AU4 brow lowerer [brows down and drawn together]
    4: [((21, 22), 1.0, -0.7, -0.7, 0.055), ((20, 23), 0.8, -0.8, -0.4, 0.055), ((19, 24), 0.5, -0.8, -0.1, 0.055)],
    # AU5 upper lid raiser [upper lids up]
    5: [((37, 44), 1.0, 1.0, 0.0, 0.025), ((38, 43), 1.0, 1.0, 0.0, 0.025)],
    # AU6 cheek raiser [cheeks up, lower lids pushed up and narrowed]
    6: [("cheek", 1.0, 1.0, 0.1, 0.07), ((40, 47), 0.5, 1.0, 0.0, 0.025), ((41, 46), 0.5, 1.0, 0.0, 0.025)],
    # AU9 nose wrinkler [nose sides and alae up, bridge skin bunched, inner brows a little down]
    9: [
        ((31, 35), 1.0, 1.0, -0.2, 0.045),
        ("nose_side", 0.8, 1.0, 0.0, 0.045),
        ((29,), 0.4, 1.0, 0.0, 0.04),
        ((21, 22), 0.3, -1.0, 0.0, 0.04),
    ],
    # AU10 upper lip raiser [upper lip up, centre strongest]
    10: [((50, 52), 1.0, 1.0, 0.0, 0.05), ((49, 53), 0.6, 1.0, 0.1, 0.05), ((61, 63), 0.8, 1.0, 0.0, 0.04)],
    # AU12 lip corner puller [corners up and out, the cheek skin above them with them]
    12: [((48, 54), 1.0, 0.6, 0.8, 0.06), ("corner_cheek", 0.6, 0.6, 0.8, 0.06)],
    # AU14 dimpler [corners tightened back (outward in the image), dimple skin drawn in]
    14: [((48, 54), 1.0, 0.15, 0.6, 0.05), ("dimple", 0.5, 0.0, -0.5, 0.04)],
    # AU15 lip corner depressor [corners and the skin below them down, lower lip sides follow]
    15: [((48, 54), 1.0, -1.0, 0.2, 0.05), ("below_corner", 0.8, -1.0, 0.0, 0.06), ((59, 55), 0.4, -1.0, 0.0, 0.04)],
    # AU17 chin raiser [chin boss pushed up, lower lip up]
    17: [("chin_boss", 1.0, 1.0, 0.0, 0.08), ((57,), 0.5, 1.0, 0.0, 0.045), ((56, 58), 0.4, 1.0, 0.0, 0.045)],
    # AU26 jaw drop [lower lip, chin and lower jaw down]
    26: [
        ((57,), 1.0, -1.0, 0.0, 0.05),
        ((66,), 1.0, -1.0, 0.0, 0.03),
        ((8,), 0.6, -1.0, 0.0, 0.08),
        ((7, 9), 0.5, -1.0, 0.0, 0.07),
        ((6, 10), 0.3, -1.0, 0.0, 0.07),
    ],
    # AU45 blink [upper lids down]; scaled by the eye opening, not by the expression amplitude
    45: [((37, 44), 1.0, -1.0, 0.0, 0.025), ((38, 43), 1.0, -1.0, 0.0, 0.025)],
}
# Share of the clip amplitude each AU reaches at intensity 1: small lid movements stay small and a
# jaw drop is the largest.
_AU_GAIN = {1: 1.0, 2: 1.0, 4: 1.0, 5: 0.5, 6: 0.8, 9: 1.0, 10: 1.2, 12: 1.0, 14: 1.0, 15: 1.0, 17: 1.1, 26: 1.3, 45: 1.0}
# Skin that a muscle compresses folds and darkens, skin it stretches goes taut and brighter: the
# shading of a frame is multiplied by 1 + _WRINKLE_GAIN * div(d) (d in px, so div is unitless).
# Without it a smooth chin or cheek (AU17, AU6) would move without any visible change.
_WRINKLE_GAIN = 0.5

# Identity shape warp: (anchors, up, outward, sigma as a fraction of the face width); each term
# moves by coefficient x 3 % of the face width.
_SHAPE_TERMS = (
    ((36, 39, 42, 45), 0.0, 1.0, 0.09),  # eye spacing
    ((17, 19, 21, 22, 24, 26), 1.0, 0.0, 0.08),  # brow height
    ((33, 31, 35), -1.0, 0.0, 0.08),  # nose length
    ((48, 54), 0.0, 1.0, 0.06),  # mouth width
    ((3, 4, 5, 11, 12, 13), 0.0, 1.0, 0.12),  # jaw width
    ((7, 8, 9), -1.0, 0.0, 0.1),  # chin length
)


def _anchors(spec: list[tuple], d: np.ndarray, ax: _FaceAxes, side: str = "") -> list[tuple]:
    """(point (2,), vector (2,), sigma px) of every anchor of an AU; `side` "L"/"R" keeps one side."""
    keep = {"": None, "R": -1.0, "L": 1.0}[side]  # the subject's right is the image's left
    out = []
    for points, weight, up, outward, sigma in spec:
        pts = _derived_points(points, d, ax) if isinstance(points, str) else [d[i] for i in points]
        for p in pts:
            s = ax.side(p)
            if keep is not None and s != keep:
                continue
            out.append((p, weight * (up * ax.up + outward * s * ax.right), sigma * ax.width))
    return out


def _field_at(anchors: list[tuple], points: np.ndarray) -> np.ndarray:
    """Displacement (N, 2) of a Gaussian anchor field at `points` (N, 2)."""
    out = np.zeros_like(points, dtype=np.float64)
    for p, v, sigma in anchors:
        w = np.exp(-((points - p) ** 2).sum(axis=1) / (2 * sigma**2))
        out += w[:, None] * v
    return out


def _field_grid(anchors: list[tuple], size: tuple[int, int], kernel: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """Displacement (dx, dy), each (H, W) float32, of an anchor field over a frame of `size` (w, h).

    `kernel` "gaussian": every Gaussian is evaluated only within 3.5 sigma of its anchor (the rest
    is < 0.3 %). "wendland" (the held-out style): Wendland's C2 function (1 - r/R)^4 (4 r/R + 1),
    zero beyond R = `_WENDLAND_RADIUS` sigma.
    """
    width, height = size
    dx = np.zeros((height, width), np.float32)
    dy = np.zeros((height, width), np.float32)
    for p, v, sigma in anchors:
        r = 3.5 * sigma if kernel == "gaussian" else _WENDLAND_RADIUS * sigma
        x0, x1 = max(0, int(p[0] - r)), min(width, int(p[0] + r) + 1)
        y0, y1 = max(0, int(p[1] - r)), min(height, int(p[1] + r) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        if kernel == "gaussian":
            gx = np.exp(-((np.arange(x0, x1) - p[0]) ** 2) / (2 * sigma**2)).astype(np.float32)
            gy = np.exp(-((np.arange(y0, y1) - p[1]) ** 2) / (2 * sigma**2)).astype(np.float32)
            g = np.outer(gy, gx)
        else:
            yy, xx = np.mgrid[y0:y1, x0:x1]
            q = np.minimum(np.hypot(xx - p[0], yy - p[1]) / r, 1.0)
            g = ((1 - q) ** 4 * (4 * q + 1)).astype(np.float32)
        dx[y0:y1, x0:x1] += np.float32(v[0]) * g
        dy[y0:y1, x0:x1] += np.float32(v[1]) * g
    return dx, dy


def action_unit_field(
    au: int, dlib68: np.ndarray, size: tuple[int, int], peak: float, side: str = "", kernel: str = "gaussian"
) -> tuple[np.ndarray, np.ndarray]:
    """The apex displacement of one action unit on a face.

    Args:
        au: AU number, a key of `ACTION_UNIT_ANCHORS`.
        dlib68: (68, 2) landmarks of the face in the frame, px.
        size: (width, height) of the frame, px.
        peak: largest displacement of the field, px.
        side: "" both sides, "L" / "R" the subject's left / right only.
        kernel: "gaussian" (the training style) or "wendland" (the held-out style; `_field_grid`).

    Returns:
        (dx, dy): (H, W) float32 forward displacement in px (content at x moves to x + d(x)).
    """
    if au not in ACTION_UNIT_ANCHORS:
        raise ValueError(f"No displacement field for AU{au}; implemented AUs are {sorted(ACTION_UNIT_ANCHORS)}.")
    d = np.asarray(dlib68, np.float64)
    dx, dy = _field_grid(_anchors(ACTION_UNIT_ANCHORS[au], d, _axes(d), side), size, kernel)
    norm = float(np.sqrt(dx**2 + dy**2).max())
    if norm == 0:
        return dx, dy
    return dx * np.float32(peak / norm), dy * np.float32(peak / norm)


def expression_field(clip: SyntheticClip, dlib68: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The clip's displacement at the apex: the sum of its AU fields, (dx, dy) each (H, W) float32 px."""
    width, height = size
    dx = np.zeros((height, width), np.float32)
    dy = np.zeros((height, width), np.float32)
    kernel = "wendland" if clip.style == "heldout" else "gaussian"
    for au, side, intensity in clip.action_units:
        fx, fy = action_unit_field(au, dlib68, size, clip.amplitude * _AU_GAIN[au] * intensity, side, kernel)
        dx += fx
        dy += fy
    return dx, dy


def _blink_field(clip: SyntheticClip, d: np.ndarray, size) -> tuple[np.ndarray, np.ndarray]:
    opening = float(np.mean([np.linalg.norm(d[a] - d[b]) for a, b in ((37, 41), (38, 40), (43, 47), (44, 46))]))
    return action_unit_field(45, d, size, clip.blink[3] * opening)


def _raised_cosine(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def expression_course(clip: SyntheticClip) -> np.ndarray:
    """(num_frames,) expression strength per frame: 0 before the start, 1 at the apex, residual at the end.

    Training style: raised cosines up and down. Held-out style: a linear rise and an exponential
    decay (to within 2 % of the residual at the end)."""
    start, apex, end, residual = clip.motion
    t = np.arange(clip.num_frames, dtype=np.float64)
    up = (t - start) / max(apex - start, 1e-6)
    down = (t - apex) / max(end - apex, 1e-6)
    if clip.style == "heldout":
        rise = np.clip(up, 0.0, 1.0)
        fall = residual + (1 - residual) * np.exp(-4.0 * np.clip(down, 0.0, None))
    else:
        rise = _raised_cosine(up)
        fall = residual + (1 - residual) * (1 - _raised_cosine(down))
    course = np.where(t <= apex, rise, fall)
    course[t < start] = 0.0
    return course


def blink_course(clip: SyntheticClip) -> np.ndarray:
    """(num_frames,) eyelid closure per frame (0 open, 1 = the planned closure); zeros without a blink."""
    t = np.arange(clip.num_frames, dtype=np.float64)
    if clip.blink is None:
        return np.zeros_like(t)
    start, closing, opening, _ = clip.blink
    close = _raised_cosine((t - start) / closing)
    reopen = 1 - _raised_cosine((t - start - closing) / opening)
    return np.where(t < start + closing, close, reopen) * (t >= start)


def _slow_wave(t: np.ndarray, f1: float, f2: float, phase1: float, phase2: float) -> np.ndarray:
    """sin(2 pi f1 t + phase1) + 0.5 sin(2 pi f2 t + phase2) at times `t` (s, t[0] = 0), shifted to
    exactly 0 at t[0] and scaled so that its largest |value| over `t` is exactly 1."""
    first = np.sin(2 * np.pi * f1 * t + phase1)
    second = np.sin(2 * np.pi * f2 * t + phase2)
    wave = first - first[0] + 0.5 * (second - second[0])
    return wave / max(np.abs(wave).max(), 1e-9)


def _drift_course(clip: SyntheticClip) -> tuple[np.ndarray, np.ndarray]:
    """(tx, ty) per frame, px: slow head drift from 0 at the first frame, peak |drift| as planned."""
    dx, dy, f1, f2, p1, p2 = clip.drift
    wave = _slow_wave(np.arange(clip.num_frames, dtype=np.float64) / clip.fps, f1, f2, p1, p2)
    return dx * wave, dy * wave


def head_motion_course(clip: SyntheticClip | dict, dlib68: np.ndarray) -> np.ndarray:
    """The clip's rigid head motion as one affine per frame, from still-frame px to moved-frame px.

    A clip with head motion shows in frame t its still frame (expression, blink, drift) warped by
    A_t = course[t]: what the still frame has at x (2,) px appears at A_t[:, :2] @ x + A_t[:, 2].
    A_t is a similarity about the face centre c (the mean of `dlib68`):
    x' = s_t R(theta_t) (x - c) + c + (tx_t, ty_t), with theta in image coordinates (x right, y
    down, so a positive angle turns clockwise on screen). Each of theta (deg), tx, ty (px) and
    s_t - 1 follows its own slow wave (`SyntheticClip.head_motion`): 0 at frame 0, so A_0 is the
    identity and the manifest's `dlib68` are the first frame's landmarks, and exactly its planned
    (signed) peak at the frame where it is largest.

    Args:
        clip: a planned clip, or its record in the manifest (`synthetic.read_synthetic_manifest(root)["clips"]`).
        dlib68: (68, 2) landmarks of the still first frame, px. The generator uses them rounded to
            1/100 px, as the manifest's `dlib68`: with those this is exactly the rendered motion.

    Returns:
        (num_frames, 2, 3) float64 affines; the identity in every frame when the clip has no head motion.

    Raises:
        ValueError: `dlib68` is not (68, 2).
    """
    d = np.asarray(dlib68, np.float64)
    if d.shape != (68, 2):
        raise ValueError(f"dlib68 must be (68, 2) landmarks in px, got shape {d.shape}.")
    get = clip.get if isinstance(clip, dict) else lambda name: getattr(clip, name)
    num_frames, motion = int(get("num_frames")), get("head_motion")
    course = np.zeros((num_frames, 2, 3))
    course[:, 0, 0] = course[:, 1, 1] = 1.0
    if motion is None:
        return course
    t = np.arange(num_frames, dtype=np.float64) / get("fps")
    components = []  # rotation deg, tx px, ty px, scale - 1; each (num_frames,)
    for peak, f1, f2, phase1, phase2 in motion:
        wave = _slow_wave(t, f1, f2, phase1, phase2)
        # turned so that its extreme is +1: the component reaches its signed peak, not minus it
        components.append(peak * (wave * np.sign(wave[np.argmax(np.abs(wave))])))
    theta = np.radians(components[0])
    scale = 1.0 + components[3]
    cos, sin = scale * np.cos(theta), scale * np.sin(theta)
    linear = np.stack([np.stack([cos, -sin], axis=-1), np.stack([sin, cos], axis=-1)], axis=-2)  # (T, 2, 2)
    centre = d.mean(axis=0)
    course[:, :, :2] = linear
    course[:, :, 2] = centre + np.stack([components[1], components[2]], axis=-1) - linear @ centre
    return course


def _flicker_course(clip: SyntheticClip, subject: SyntheticSubject, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(clip.num_frames, dtype=np.float64) / clip.fps
    frequency, phase = clip.flicker
    return 1 + subject.flicker * np.sin(2 * np.pi * frequency * t + phase) + rng.normal(0, 0.001, t.shape)


# --------------------------------------------------------------------------- rendering
def _identity_affine(subject: SyntheticSubject, face: BaseFace, jitter) -> np.ndarray:
    """(2, 3) affine from photo px to frame px: mirror, shear/aspect, roll, scale, position."""
    d = face.dlib68
    centre = d.mean(axis=0)
    scale = subject.face_width / float(np.linalg.norm(d[16] - d[0]))
    theta = math.radians(subject.roll_deg)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    sa = math.sqrt(subject.aspect)
    shape = np.array([[sa, subject.shear], [0.0, 1.0 / sa]])
    mirror = np.diag([-1.0 if subject.mirror else 1.0, 1.0])
    linear = scale * rot @ shape @ mirror
    target = np.array(subject.center) + np.array(jitter[:2])
    return np.hstack([linear, (target - linear @ centre)[:, None]])


def _identity_geometry(subject: SyntheticSubject, clip: SyntheticClip, face: BaseFace):
    """Where the identity transform puts the face: (affine (2, 3), shape-warp anchors, dlib68 (68, 2) px)."""
    affine = _identity_affine(subject, face, clip.jitter)
    d = face.dlib68 @ affine[:, :2].T + affine[:, 2]
    if subject.mirror:
        d = d[_DLIB_MIRROR]
    ax = _axes(d)
    shape_anchors = []
    for coefficient, (points, up, outward, sigma) in zip(subject.shape, _SHAPE_TERMS):
        amount = 0.03 * subject.shape_gain * ax.width * coefficient
        shape_anchors += _anchors([(points, amount, up, outward, sigma)], d, ax)
    # The warp samples the photo at A^-1(x - w(x)); a landmark q therefore lands where
    # p - w(p) = q, found by fixed-point iteration (w is small and smooth).
    p = d.copy()
    for _ in range(4):
        p = d + _field_at(shape_anchors, p)
    return affine, shape_anchors, p


def _render_base(subject: SyntheticSubject, clip: SyntheticClip, face: BaseFace) -> tuple[np.ndarray, np.ndarray]:
    """The subject's neutral frame for one clip and its landmarks.

    Returns:
        image: (H, W, 3) float32 RGB, or (H, W) for grey subjects, in grey levels 0-255.
        dlib68: (68, 2) float64 landmarks in that frame, px.
    """
    import cv2

    width, height = subject.frame_size
    affine, shape_anchors, p = _identity_geometry(subject, clip, face)
    ax = _axes(p)
    wx, wy = _field_grid(shape_anchors, (width, height))
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    inverse = cv2.invertAffineTransform(affine)
    sx, sy = gx - wx, gy - wy
    map_x = (inverse[0, 0] * sx + inverse[0, 1] * sy + inverse[0, 2]).astype(np.float32)
    map_y = (inverse[1, 0] * sx + inverse[1, 1] * sy + inverse[1, 2]).astype(np.float32)
    photo = face.image.astype(np.float32)
    image = cv2.remap(photo, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT_101)
    # Upscaling the small astronaut face (88 px) 3x leaves it soft; a mild unsharp mask brings its
    # edges closer to a camera's, proportionally to the upscale.
    upscale = subject.face_width / float(np.linalg.norm(face.dlib68[16] - face.dlib68[0]))
    if upscale > 1.2:
        blurred = cv2.GaussianBlur(image, (0, 0), 0.6 * upscale)
        image = image + min(0.8, 0.4 * (upscale - 1)) * (image - blurred)
    # the wide variety's skin detail: softer (blur) or crisper (unsharp) than the photo's
    if subject.texture < 0:
        image = cv2.GaussianBlur(image, (0, 0), -subject.texture * 1.2 * subject.face_width / 300.0)
    elif subject.texture > 0:
        blurred = cv2.GaussianBlur(image, (0, 0), subject.face_width / 300.0)
        image = image + subject.texture * (image - blurred)
    # skin tone inside a soft face mask (jaw + brows hull, raised to the forehead)
    hull = np.vstack([p[:17], p[26:16:-1] + 0.25 * ax.width * ax.up])
    mask = np.zeros((height, width), np.float32)
    cv2.fillPoly(mask, [np.round(hull).astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.08 * ax.width)[:, :, None]
    tone = subject.skin_gain * np.array([1 + subject.skin_warmth, 1.0, 1 - subject.skin_warmth], np.float32)
    image = image * (1 + mask * (tone - 1))
    image = image * np.array([1 + subject.white_balance, 1.0, 1 - subject.white_balance], np.float32)
    # lighting: a linear gradient across the face, then brightness and contrast about mid-grey
    direction = np.array([math.cos(subject.light_angle), math.sin(subject.light_angle)])
    centre = p.mean(axis=0)
    gradient = 1 + subject.light_strength * ((gx - centre[0]) * direction[0] + (gy - centre[1]) * direction[1]) / ax.width
    image = image * np.clip(gradient, 0.5, 1.5)[:, :, None]
    image = (image - 128) * subject.contrast + 128 * subject.brightness * clip.jitter[2]
    image = np.clip(image, 0, 255).astype(np.float32)
    if subject.gamma != 1.0:
        image = 255.0 * (image / 255.0) ** np.float32(subject.gamma)
    if subject.grey:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image, p


def _animate(
    clip: SyntheticClip,
    subject: SyntheticSubject,
    base: np.ndarray,
    d: np.ndarray,
    nuisances: bool,
    head_motion: bool = True,
    expression: bool = True,
) -> Iterator[np.ndarray]:
    """The frames of a clip one by one from its neutral frame `base` and landmarks `d` (68, 2):
    (H, W, 3) uint8 RGB, or (H, W) uint8 for grey subjects. With `nuisances=False` no noise,
    drift, flicker or blink; with `head_motion=False` the head stays still even if the clip
    plans a motion; with `expression=False` the action units do not move (course 0).
    """
    import cv2

    width, height = subject.frame_size
    ex, ey = expression_field(clip, d, (width, height))
    shade = np.float32(_WRINKLE_GAIN) * (np.gradient(ex, axis=1) + np.gradient(ey, axis=0))
    if base.ndim == 3:
        shade = shade[:, :, None]
    course = expression_course(clip) if expression else np.zeros(clip.num_frames)
    # from the landmarks as the manifest writes them, so that a reader recomputes it exactly
    moves = head_motion_course(clip, np.round(d, 2)) if head_motion and clip.head_motion is not None else None
    rng = np.random.default_rng(clip.noise_seed)
    if nuisances and clip.blink is not None:
        bx, by = _blink_field(clip, d, (width, height))
        blink = blink_course(clip)
    else:
        bx = by = None
        blink = np.zeros(clip.num_frames)
    tx, ty = _drift_course(clip) if nuisances else (np.zeros(clip.num_frames), np.zeros(clip.num_frames))
    gain = _flicker_course(clip, subject, rng) if nuisances else np.ones(clip.num_frames)
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    for t in range(clip.num_frames):
        # backward map: the pixel at x shows the neutral face at x - d(x)
        map_x = gx - np.float32(course[t]) * ex - np.float32(tx[t])
        map_y = gy - np.float32(course[t]) * ey - np.float32(ty[t])
        if bx is not None and blink[t] > 0:
            map_x -= np.float32(blink[t]) * bx
            map_y -= np.float32(blink[t]) * by
        frame = cv2.remap(base, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        if course[t] > 0:
            frame *= 1 + np.float32(course[t]) * shade
        if moves is not None:
            # The head carries the face's own movement; the camera's flicker and noise stay put.
            frame = cv2.warpAffine(
                frame, moves[t], (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
            )
        if nuisances:
            frame *= np.float32(gain[t])
            frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(subject.noise_sigma)
        yield np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def render_synthetic_clip(
    plan: SyntheticPlan,
    clip: SyntheticClip | str,
    faces: dict[str, BaseFace] | None = None,
    nuisances: bool = True,
    head_motion: bool = True,
    expression: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """All frames of one planned clip in memory, exactly as `synthetic.generate_synthetic_dataset`
    encodes them.

    Args:
        plan: from `synthetic_plan.plan_synthetic_dataset`.
        clip: a clip of the plan or its key ("casme2/sub01/EP02_01f").
        faces: from `load_base_faces` (detected here when None: needs the landmarker model).
        nuisances: False renders without noise, drift, flicker and blink.
        head_motion: False keeps the head still even when the clip plans a head motion.
        expression: False renders without the action units (the head motion and nuisances alone).

    Returns:
        frames: (T, H, W, 3) uint8 RGB, or (T, H, W) for SAMM.
        dlib68: (68, 2) float64 landmarks of the neutral first frame, px; frame t's rigid head
            motion is exactly `head_motion_course(clip, np.round(dlib68, 2))[t]`.
    """
    clip = plan.clip(clip) if isinstance(clip, str) else clip
    faces = faces or load_base_faces()
    subject = plan.subject_of(clip)
    base, d = _render_base(subject, clip, faces[subject.face])
    return np.stack(list(_animate(clip, subject, base, d, nuisances, head_motion, expression))), d


