"""Face landmarks with MediaPipe FaceLandmarker: model file resolution, 478 points, dlib-68 view."""

from __future__ import annotations

import atexit
import hashlib
import logging
import weakref
import os
import shutil
import tempfile
import urllib.request
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
    """

    points: np.ndarray
    image_size: tuple[int, int]
    num_faces: int = 1
    frame_index: int = 0
    notes: list[str] = field(default_factory=list)

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

    def scaled(self, factor: float) -> "FaceLandmarks":
        w, h = self.image_size
        return FaceLandmarks(
            points=(self.points * factor).astype(np.float32),
            image_size=(int(round(w * factor)), int(round(h * factor))),
            num_faces=self.num_faces,
            frame_index=self.frame_index,
            notes=list(self.notes),
        )


class MieFaceLandmarker:
    """MediaPipe FaceLandmarker in image mode, returning the largest face of an image.

    Use as a context manager (or call `close()`): MediaPipe prints an error at interpreter exit
    for landmarkers that were never closed.

    Args:
        model_path: `face_landmarker.task`; resolved with `resolve_face_landmarker_model`.
        max_faces: faces to look for; the largest is kept and the count reported.
        min_confidence: MediaPipe's face detection and presence thresholds.
        detect_max_side: frames larger than this are downscaled for detection; the points are
            returned in full-resolution pixels.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        max_faces: int = 4,
        min_confidence: float = 0.5,
        detect_max_side: int = DEFAULT_DETECT_MAX_SIDE,
    ):
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
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=self.max_faces,
            min_face_detection_confidence=float(min_confidence),
            min_face_presence_confidence=float(min_confidence),
        )
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
            _OPEN_LANDMARKERS.add(self)
        except (RuntimeError, ValueError) as err:
            raise MieInputError(
                f"MediaPipe could not load the face landmarker model {self.model_path} ({err}). "
                + _how_to_provide()
            ) from err

    def detect(self, image: np.ndarray, frame_index: int = 0) -> FaceLandmarks | None:
        """Landmarks of the largest face in `image` (any layout `to_rgb_uint8` accepts), or None."""
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
        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        if not result.face_landmarks:
            return None
        faces = [
            np.array([(p.x * small_w, p.y * small_h) for p in face], dtype=np.float32)
            for face in result.face_landmarks
        ]
        areas = [np.prod(f.max(axis=0) - f.min(axis=0)) for f in faces]
        best = int(np.argmax(areas))
        notes = []
        if len(faces) > 1:
            notes.append(f"{len(faces)} faces found; the largest was used.")
        return FaceLandmarks(
            points=(faces[best] / factor).astype(np.float32),
            image_size=(width, height),
            num_faces=len(faces),
            frame_index=frame_index,
            notes=notes,
        )

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
    "detect_landmarks",
    "resolve_face_landmarker_model",
    "to_rgb_uint8",
    "user_cache_dir",
]
