"""Face landmarks with MediaPipe FaceLandmarker: model file resolution, 478 points, dlib-68 view."""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MieInputError

logger = logging.getLogger(__name__)

FACE_LANDMARKER_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
    "face_landmarker.task"
)
FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_LANDMARKER_ENV = "MIE_FACE_LANDMARKER"
FACE_LANDMARKER_FILENAME = "face_landmarker.task"

# MediaPipe face-mesh index of each dlib-68 point (mean error 2.3 px on a 512 px portrait),
# because the paper's geometry is defined on dlib points and MediaPipe gives 478 others.
MEDIAPIPE_TO_DLIB68 = np.array(
    # jaw 0-16
    [162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389]
    # brows 17-26
    + [71, 63, 105, 66, 107, 336, 296, 334, 293, 301]
    # nose 27-35
    + [168, 197, 5, 4, 75, 97, 2, 326, 305]
    # eyes 36-47
    + [33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380]
    # mouth 48-67
    + [61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87],
    dtype=np.int64,
)

# Landmark detection works on a downscaled copy of very large frames (SAMM is 2040 x 1088): the
# face landmarker runs its own 192/256 px networks, so more pixels only cost decoding time.
DEFAULT_DETECT_MAX_SIDE = 1024

# Landmarkers still open at interpreter exit: MediaPipe's own __del__ then runs after its C
# bindings are torn down and prints a traceback. Closing them in an atexit hook (which runs
# first) keeps long-lived owners such as a processor in a web app quiet.
_OPEN_LANDMARKERS: "weakref.WeakSet[MieFaceLandmarker]" = weakref.WeakSet()


@atexit.register
def _close_open_landmarkers() -> None:
    for landmarker in list(_OPEN_LANDMARKERS):
        try:
            landmarker.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def user_cache_dir() -> Path:
    """Folder where mie keeps downloaded assets: `$XDG_CACHE_HOME/mie` or `~/.cache/mie`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mie"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: dict[tuple[str, int, int], bool] = {}


def _verified(path: Path) -> bool:
    """Whether `path` holds the expected model; hashed once per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256(path) == FACE_LANDMARKER_SHA256
    return _VERIFIED[key]


def _offline() -> bool:
    return any(os.environ.get(k, "").strip() not in ("", "0", "false", "False") for k in ("MIE_OFFLINE", "HF_HUB_OFFLINE"))


def _how_to_provide() -> str:
    return (
        f"Download {FACE_LANDMARKER_URL} (sha256 {FACE_LANDMARKER_SHA256}) on a machine with "
        f"internet access and either set {FACE_LANDMARKER_ENV}=/path/to/{FACE_LANDMARKER_FILENAME} "
        f"or copy it to {user_cache_dir() / FACE_LANDMARKER_FILENAME}."
    )


def resolve_face_landmarker_model(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Find MediaPipe's `face_landmarker.task`, downloading it only as a last resort.

    Order: the explicit `path` -> the `MIE_FACE_LANDMARKER` environment variable -> the user
    cache (`user_cache_dir()`) -> a download from Google's official URL into the user cache,
    verified against its sha256. No download is tried when `download=False` or when
    `MIE_OFFLINE` / `HF_HUB_OFFLINE` is set.

    Raises:
        MieInputError: the file given is missing or is not the expected model, or no file was
            found and it could not be downloaded; the message says how to provide it.
    """
    for source, candidate in (("the path given", path), (FACE_LANDMARKER_ENV, os.environ.get(FACE_LANDMARKER_ENV))):
        if candidate:
            candidate = Path(candidate).expanduser()
            if not candidate.is_file():
                raise MieInputError(
                    f"The face landmarker model from {source} does not exist: {candidate}. " + _how_to_provide()
                )
            if not _verified(candidate):
                # A caller's own file may be a newer model on purpose: say so, do not refuse.
                logger.warning(
                    "%s (from %s) is not the face landmarker model mie was tested with (sha256 %s).",
                    candidate, source, FACE_LANDMARKER_SHA256,
                )
            return candidate

    cached = user_cache_dir() / FACE_LANDMARKER_FILENAME
    if cached.is_file():
        if _verified(cached):
            return cached
        logger.warning("Ignoring %s: its sha256 is not %s.", cached, FACE_LANDMARKER_SHA256)
    if not download or _offline():
        raise MieInputError(
            f"MediaPipe's face landmarker model is needed to find faces, and none was found "
            f"({FACE_LANDMARKER_ENV} is not set, {cached} does not exist) while downloads are off. "
            + _how_to_provide()
        )
    return _download(cached)


def _download(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading the face landmarker model from %s", FACE_LANDMARKER_URL)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        with urllib.request.urlopen(FACE_LANDMARKER_URL, timeout=30) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        digest = _sha256(Path(tmp))
        if digest != FACE_LANDMARKER_SHA256:
            raise MieInputError(
                f"The downloaded face landmarker model has sha256 {digest}, expected "
                f"{FACE_LANDMARKER_SHA256}; refusing to use it. " + _how_to_provide()
            )
        os.replace(tmp, target)
    except OSError as err:  # no network, DNS failure, disk full
        raise MieInputError(
            f"Could not download the face landmarker model ({err}). " + _how_to_provide()
        ) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any frame as a C-contiguous (height, width, 3) uint8 RGB array.

    Accepts (H, W) or (H, W, 1) grey, (H, W, 3) RGB and (H, W, 4) RGBA (alpha dropped), in uint8,
    uint16 (scaled by 1/257), bool, or float in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise MieInputError(
            f"A frame must be (height, width), (height, width, 1), (height, width, 3) or "
            f"(height, width, 4); got shape {image.shape}."
        )
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 + 32767) // 65535
    elif image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255)
    else:
        raise MieInputError(
            f"Frames must be uint8, uint16, bool or float in [0, 1]; got dtype {image.dtype}."
        )
    image = image.astype(np.uint8, copy=False)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


@dataclass
class FaceLandmarks:
    """The landmarks of one face in one image, in pixels of that image.

    Attributes:
        points: (478, 2) float32 x, y of MediaPipe's face mesh.
        image_size: (width, height) of the image the points refer to.
        num_faces: faces found in the image; when more than one, this is the largest.
        frame_index: index of the frame in its clip the landmarks came from (0 for images).
        notes: remarks for the caller (e.g. several faces).
        pose: (4, 4) float32 MediaPipe facial transformation matrix (canonical face model ->
            camera), or None where it was not asked for. `head_angles` reads it.
    """

    points: np.ndarray
    image_size: tuple[int, int]
    num_faces: int = 1
    frame_index: int = 0
    notes: list[str] = field(default_factory=list)
    pose: np.ndarray | None = None

    @property
    def dlib68(self) -> np.ndarray:
        """(68, 2) float32: the dlib-68 equivalents of the MediaPipe points."""
        return self.points[MEDIAPIPE_TO_DLIB68]

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) extent of all points."""
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def area(self) -> float:
        """Area of `box`, px^2: how the largest of several faces is chosen."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    def scaled(self, factor: float) -> "FaceLandmarks":
        w, h = self.image_size
        return FaceLandmarks(
            points=(self.points * factor).astype(np.float32),
            image_size=(int(round(w * factor)), int(round(h * factor))),
            num_faces=self.num_faces,
            frame_index=self.frame_index,
            notes=list(self.notes),
            pose=self.pose,
        )


def head_angles(pose: np.ndarray | None) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a MediaPipe facial transformation matrix; NaN without one.

    The matrix maps the canonical face model (x to the face's left as seen, y up, z out of the
    face towards the camera) into camera space (y up, z towards the viewer), so a face looking
    straight into the camera has the identity rotation. Yaw: the face turned towards the image
    right (+) or left (-); pitch: up (+) or down (-); roll: in-plane rotation, counter-clockwise
    as seen (+). The rotation part is normalised first (the matrix also carries scale).
    """
    if pose is None:
        return np.full(3, np.nan, np.float32)
    rotation = np.asarray(pose, np.float64)[:3, :3]
    rotation = rotation / np.linalg.norm(rotation, axis=0, keepdims=True)
    fx, fy, fz = rotation[:, 2]  # where the face looks
    yaw = math.degrees(math.atan2(fx, fz))
    pitch = math.degrees(math.atan2(fy, math.hypot(fx, fz)))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return np.array([yaw, pitch, roll], np.float32)


def turn_between(pose_a: np.ndarray | None, pose_b: np.ndarray | None = None) -> float:
    """Out-of-plane angle in degrees between where two faces look (`pose_b` None: the camera axis).

    In-plane roll does not count: a similarity transform undoes it, a turn it cannot.
    """
    if pose_a is None:
        return float("nan")

    def forward(pose):
        rotation = np.asarray(pose, np.float64)[:3, :3]
        axis = rotation[:, 2]
        return axis / max(np.linalg.norm(axis), 1e-12)

    other = np.array([0.0, 0.0, 1.0]) if pose_b is None else forward(pose_b)
    return math.degrees(math.acos(float(np.clip(forward(pose_a) @ other, -1.0, 1.0))))


RUNNING_MODES = ("image", "video")


class MieFaceLandmarker:
    """MediaPipe FaceLandmarker returning every face of an image, or the largest.

    Two running modes: `"image"` (each call independent; safe to call on frames in any order)
    and `"video"` (MediaPipe tracks the face from the previous call and skips its detector while
    tracking holds; calls need strictly increasing timestamps, so use one instance per clip and
    never share it between threads).

    Use as a context manager (or call `close()`): MediaPipe prints an error at interpreter exit
    for landmarkers that were never closed, and one collected inside a reference cycle hangs
    (see `shared_landmarker`, which long-lived owners use instead).

    Args:
        model_path: `face_landmarker.task`; resolved with `resolve_face_landmarker_model`.
        max_faces: faces to look for; the largest is kept by `detect` and the count reported.
        min_confidence: MediaPipe's face detection, presence and tracking thresholds.
        detect_max_side: frames larger than this are downscaled for detection; the points are
            returned in full-resolution pixels.
        running_mode: `"image"` or `"video"`.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        max_faces: int = 4,
        min_confidence: float = 0.5,
        detect_max_side: int = DEFAULT_DETECT_MAX_SIDE,
        running_mode: str = "image",
    ):
        if running_mode not in RUNNING_MODES:
            raise ValueError(f"running_mode must be one of {list(RUNNING_MODES)}, got {running_mode!r}.")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as err:  # pragma: no cover - mediapipe is a core dependency
            raise ImportError(
                "Face landmarks need mediapipe >= 1.2: pip install 'mediapipe>=1.2'. "
                "Alternatively pass landmarks or boxes to the processor yourself."
            ) from err
        self._mp = mp
        self.model_path = resolve_face_landmarker_model(model_path)
        self.max_faces = int(max_faces)
        self.detect_max_side = int(detect_max_side)
        self.running_mode = running_mode
        self._last_timestamp = -1
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO if running_mode == "video" else vision.RunningMode.IMAGE,
            num_faces=self.max_faces,
            min_face_detection_confidence=float(min_confidence),
            min_face_presence_confidence=float(min_confidence),
            min_tracking_confidence=float(min_confidence),
            # the head pose: how far a face is turned from the camera and from its reference frame
            output_facial_transformation_matrixes=True,
        )
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
            _OPEN_LANDMARKERS.add(self)
        except (RuntimeError, ValueError) as err:
            raise MieInputError(
                f"MediaPipe could not load the face landmarker model {self.model_path} ({err}). "
                + _how_to_provide()
            ) from err

    def detect_faces(self, image: np.ndarray, frame_index: int = 0, timestamp_ms: int | None = None) -> list[FaceLandmarks]:
        """Every face in `image` (any layout `to_rgb_uint8` accepts), largest first.

        In video mode `timestamp_ms` (the frame's time in the clip) is required and must grow
        from call to call.
        """
        if self._landmarker is None:
            raise RuntimeError("This MieFaceLandmarker was closed; create a new one.")
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        factor = 1.0
        if max(height, width) > self.detect_max_side:
            try:
                import cv2
            except ImportError as err:  # pragma: no cover - mediapipe requires OpenCV
                raise ImportError("Downscaling large frames needs OpenCV: pip install opencv-contrib-python") from err

            factor = self.detect_max_side / max(height, width)
            rgb = cv2.resize(
                rgb,
                (max(1, round(width * factor)), max(1, round(height * factor))),
                interpolation=cv2.INTER_AREA,
            )
        small_h, small_w = rgb.shape[:2]
        # MediaPipe rejects grey and float images, and a GRAY8 failure leaves the landmarker
        # broken: only ever hand it contiguous uint8 SRGB.
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.running_mode == "video":
            if timestamp_ms is None:
                raise ValueError("A video-mode landmarker needs the frame's timestamp_ms.")
            timestamp_ms = max(int(timestamp_ms), self._last_timestamp + 1)  # strictly increasing
            self._last_timestamp = timestamp_ms
            result = self._landmarker.detect_for_video(mp_image, timestamp_ms)
        else:
            result = self._landmarker.detect(mp_image)
        matrices = list(getattr(result, "facial_transformation_matrixes", None) or [])
        faces = []
        for i, face in enumerate(result.face_landmarks or []):
            points = np.array([(p.x * small_w, p.y * small_h) for p in face], dtype=np.float32) / factor
            pose = np.asarray(matrices[i], np.float32).reshape(4, 4) if i < len(matrices) else None
            faces.append(
                FaceLandmarks(points=points.astype(np.float32), image_size=(width, height), frame_index=frame_index, pose=pose)
            )
        faces.sort(key=lambda f: -f.area)
        for f in faces:
            f.num_faces = len(faces)
        return faces

    def detect(self, image: np.ndarray, frame_index: int = 0, timestamp_ms: int | None = None) -> FaceLandmarks | None:
        """Landmarks of the largest face in `image` (any layout `to_rgb_uint8` accepts), or None."""
        faces = self.detect_faces(image, frame_index, timestamp_ms)
        if not faces:
            return None
        best = faces[0]
        if len(faces) > 1:
            best.notes.append(f"{len(faces)} faces found; the largest was used.")
        return best

    def close(self) -> None:
        if getattr(self, "_landmarker", None) is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "MieFaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # a landmarker left open prints an error at exit
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# MediaPipe 1.2 runs every call of a landmarker, close() included, on a worker thread of its own.
# When the garbage collector finalises a landmarker inside a reference cycle, it has already let
# that worker stop, and close() (MediaPipe's own __del__ calls it too) waits forever: a process
# hung at exit that way in this project's tests. Objects that live long and may end up in a cycle
# (a processor held by an exception's traceback) therefore never own a landmarker: they borrow the
# process's shared one for their model file, which no cycle holds and the atexit hook closes.
_SHARED: dict[str, tuple["MieFaceLandmarker", threading.Lock]] = {}
_SHARED_GUARD = threading.Lock()


def shared_landmarker(model_path: str | os.PathLike | None = None) -> tuple["MieFaceLandmarker", threading.Lock]:
    """The process's image-mode landmarker for `model_path` (resolved with
    `resolve_face_landmarker_model`; created on first use) and the lock to hold while using it."""
    resolved = str(resolve_face_landmarker_model(model_path))
    with _SHARED_GUARD:
        entry = _SHARED.get(resolved)
        if entry is None or entry[0]._landmarker is None:
            entry = (MieFaceLandmarker(resolved), threading.Lock())
            _SHARED[resolved] = entry
        return entry


def release_shared_landmarker(model_path: str | os.PathLike | None = None) -> None:
    """Close the shared landmarker of `model_path` (the next `shared_landmarker` call makes a new one)."""
    try:
        resolved = str(resolve_face_landmarker_model(model_path, download=False))
    except MieInputError:
        return  # nothing was ever made for a model that cannot be found
    with _SHARED_GUARD:
        entry = _SHARED.pop(resolved, None)
    if entry is not None:
        landmarker, lock = entry
        with lock:
            landmarker.close()


def detect_landmarks(image: np.ndarray, model_path: str | os.PathLike | None = None) -> FaceLandmarks | None:
    """One-shot helper: landmarks of the largest face in one image, or None if there is no face."""
    with MieFaceLandmarker(model_path) as landmarker:
        return landmarker.detect(image)


__all__ = [
    "FACE_LANDMARKER_ENV",
    "FACE_LANDMARKER_SHA256",
    "FACE_LANDMARKER_URL",
    "MEDIAPIPE_TO_DLIB68",
    "FaceLandmarks",
    "MieFaceLandmarker",
    "RUNNING_MODES",
    "detect_landmarks",
    "head_angles",
    "release_shared_landmarker",
    "resolve_face_landmarker_model",
    "shared_landmarker",
    "to_rgb_uint8",
    "turn_between",
    "user_cache_dir",
]
