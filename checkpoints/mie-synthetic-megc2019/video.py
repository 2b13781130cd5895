"""Reading clips (video files, frame folders, image lists, in-memory frames) within size limits."""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import MieInputError

logger = logging.getLogger(__name__)

# Extensions read as single images (frames); any other file is handed to OpenCV as a video, so
# containers not listed here still work when OpenCV's FFmpeg decodes them.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm", ".jp2"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv"}
)

_HOW_TO_CONVERT = (
    "Convert it to an mp4 or a folder of images (e.g. `ffmpeg -i clip.ext frames/%05d.png`) and try again."
)


@dataclass
class VideoLimits:
    """Limits on what a clip may cost before mie refuses it with a `MieInputError`.

    The defaults fit micro-expression clips (well under a second at 100-200 fps in the
    databases; a few seconds in the app) with a wide margin; raise them for longer recordings.

    Attributes:
        max_file_bytes: largest video or image file, in bytes (default 1 GiB).
        max_frames: most frames in one clip (default 3000: 15 s at 200 fps).
        max_duration_s: longest clip in seconds, where the frame rate is known (default 60).
        max_frame_pixels: most pixels in one frame, width * height (default 36 M, above 8K UHD).
        max_clip_bytes: most decoded bytes `read_clip` may hold for a whole clip, frames x
            height x width x channels (default 4 GiB). `MieProcessor` keeps only the face area of
            each frame, so it is bounded by the other limits instead.
    """

    max_file_bytes: int = 1 << 30
    max_frames: int = 3000
    max_duration_s: float = 60.0
    max_frame_pixels: int = 36_000_000
    max_clip_bytes: int = 4 << 30

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"VideoLimits.{f.name} must be a positive number, got {value!r}.")

    @classmethod
    def coerce(cls, limits: "VideoLimits | dict | None") -> "VideoLimits":
        """`limits` as a `VideoLimits`: None gives the defaults, a dict overrides some fields."""
        if limits is None:
            return cls()
        if isinstance(limits, cls):
            return limits
        if isinstance(limits, dict):
            unknown = set(limits) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(
                    f"Unknown VideoLimits fields {sorted(unknown)}; allowed values are "
                    f"{[f.name for f in fields(cls)]}."
                )
            return cls(**limits)
        raise TypeError(f"limits must be a VideoLimits, a dict or None, got {type(limits).__name__}.")

    def to_dict(self) -> dict:
        return asdict(self)

    # -- checks shared by every reader ------------------------------------------------------
    def check_frame_size(self, width: int, height: int, source: str) -> None:
        if width <= 0 or height <= 0:
            raise MieInputError(f"{source} has frames of size {width} x {height}; it holds no picture.")
        if width * height > self.max_frame_pixels:
            raise MieInputError(
                f"{source} has frames of {width} x {height} pixels ({width * height / 1e6:.0f} MP), above "
                f"the limit of {self.max_frame_pixels / 1e6:.0f} MP (VideoLimits.max_frame_pixels). "
                "Downscale the clip (the face needs only a few hundred pixels) or raise the limit."
            )

    def check_num_frames(self, num_frames: int, source: str, fps: float | None = None) -> None:
        if num_frames > self.max_frames:
            raise MieInputError(
                f"{source} is too long: {num_frames} frames or more, above the limit of {self.max_frames} "
                "(VideoLimits.max_frames). Trim the clip to the expression or raise the limit."
            )
        if fps and num_frames / fps > self.max_duration_s:
            raise MieInputError(
                f"{source} is too long: {num_frames / fps:.1f} s or more at {fps:g} fps, above the limit of "
                f"{self.max_duration_s:g} s (VideoLimits.max_duration_s). Trim the clip to the expression "
                "or raise the limit."
            )

    def check_file(self, path: Path) -> None:
        size = path.stat().st_size
        if size == 0:
            raise MieInputError(f"{path} is an empty file (0 bytes). Upload or point to the real clip.")
        if size > self.max_file_bytes:
            raise MieInputError(
                f"{path} is {size / 2**20:.0f} MiB, above the limit of {self.max_file_bytes / 2**20:.0f} MiB "
                "(VideoLimits.max_file_bytes). Trim or re-encode the clip, or raise the limit."
            )


@dataclass
class Clip:
    """A whole clip in memory.

    Attributes:
        frames: (frames, height, width, channels) uint8; channels is 3 (RGB) or 1 (grey, kept
            grey so that greyscale databases such as SAMM cost a third of the memory).
        fps: frames per second, or None where unknown (frame folders, arrays).
        source: where the clip came from (a path, or a description of the array).
        notes: things a caller may want to know (e.g. a video shorter than its header said).
    """

    frames: np.ndarray
    fps: float | None = None
    source: str = "<frames>"
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def duration_s(self) -> float | None:
        return self.num_frames / self.fps if self.fps else None

    def __len__(self) -> int:
        return self.num_frames


# ------------------------------------------------------------------------------- pixel formats
def _require_cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - OpenCV comes with mediapipe
        raise ImportError(
            "Reading video files and image folders needs OpenCV: pip install opencv-contrib-python"
        ) from err
    return cv2


def frames_to_uint8(frames: np.ndarray) -> np.ndarray:
    """Scale any supported dtype to uint8: uint16 by 255/65535, bool to 0/255, float in [0, 1].

    Shapes are kept; uint8 input is returned as is (no copy).
    """
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == np.uint16:
        # rounded 65535 -> 255 scaling; 16-bit frames come from scientific cameras and TIFF stacks
        return ((frames.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if frames.dtype == bool:
        return frames.astype(np.uint8) * 255
    if np.issubdtype(frames.dtype, np.floating):
        return np.clip(np.nan_to_num(frames) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise MieInputError(
        f"Frames must be uint8, uint16, bool or float in [0, 1]; got dtype {frames.dtype}. "
        "Convert them to uint8 first."
    )


def as_frame_stack(array: Any) -> np.ndarray:
    """An in-memory clip or frame as (frames, height, width, channels) uint8, channels 1 or 3.

    Accepted layouts (numpy arrays or torch tensors, RGB order):
    (H, W) one grey frame; (H, W, C) one frame when C is 1, 3 or 4, otherwise (T, H, W) grey
    frames; (T, H, W, C) with C in 1, 3, 4; (T, C, H, W) channels-first (what `datasets` gives
    with `with_format("torch")`) when C is 1, 3 or 4 and the last axis is not. Alpha is dropped;
    uint16 / float / bool are scaled to uint8. uint8 RGB input is returned without a copy.
    """
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch tensor, without importing torch
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    shape = array.shape
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None] if shape[-1] in (1, 3, 4) else array[..., None]
    elif array.ndim == 4:
        if shape[-1] not in (1, 3, 4):
            if shape[1] in (1, 3, 4):
                array = array.transpose(0, 2, 3, 1)
            else:
                raise MieInputError(
                    f"Cannot tell the channel axis of frames of shape {shape}: expected (frames, height, "
                    "width, channels) or (frames, channels, height, width) with 1, 3 or 4 channels."
                )
    else:
        raise MieInputError(
            f"A clip must be a (frames, height, width[, channels]) array; got shape {shape}. "
            "For a batch, pass a list of clips."
        )
    if array.shape[0] == 0 or min(array.shape[1:3]) == 0:
        raise MieInputError(f"The clip holds no pixels (shape {shape}); pass at least one non-empty frame.")
    if array.shape[-1] == 4:
        array = array[..., :3]
    return frames_to_uint8(array)


def _pil_to_array(image) -> np.ndarray:
    # palette, CMYK, LA, 1-bit ... -> a mode numpy understands directly
    if image.mode not in ("L", "RGB", "RGBA", "I;16", "I;16B", "I;16L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    array = np.asarray(image)
    if array.dtype.kind == "u" and array.dtype != np.uint8:
        array = array.astype(np.uint16)
    return array


def _is_pil_image(obj) -> bool:
    return hasattr(obj, "getbands") and hasattr(obj, "mode") and hasattr(obj, "size")


def is_image_path(obj) -> bool:
    """Whether `obj` is a str / PathLike naming a file with an image extension."""
    return isinstance(obj, (str, os.PathLike)) and Path(obj).suffix.lower() in IMAGE_EXTENSIONS


_NUMBER = re.compile(r"(\d+)")


def frame_sort_key(name: str) -> tuple:
    """Sort key that orders file names by the integers in them: img2 < img10 < img100.

    The databases store clips as numbered images without zero padding (CASME II `img46.jpg`,
    SAMM `006_1_0123.jpg`, SMIC `image0123456.bmp`); plain string order would put 10 before 2.
    """
    parts = _NUMBER.split(name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p != "")


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder, ordered by the integers in their names."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: frame_sort_key(p.name))


# ------------------------------------------------------------------------------- readers
class ClipReader:
    """One clip, decoded frame by frame so that a caller can keep only what it needs.

    Attributes:
        source: the path, or a description of the in-memory frames.
        fps: frames per second, or None where unknown.
        frame_size: (width, height) in pixels.
        num_frames: frame count announced before decoding (a video header may be wrong; None
            where unknown). After iterating, `frames_read` holds the true count.
        channel_order: order of the channels of the yielded frames: "rgb", "bgr" (OpenCV's
            order, kept so that decoding costs no conversion) or "grey".
        array: the whole clip as (T, H, W, C) uint8 when it is already in memory, else None.
        notes: remarks collected while reading (e.g. a truncated video).
    """

    source: str = "<frames>"
    fps: float | None = None
    frame_size: tuple[int, int] = (0, 0)
    num_frames: int | None = None
    channel_order: str = "rgb"
    array: np.ndarray | None = None
    exact_count: bool = True  # False for video files, whose headers may be wrong

    def __init__(self, limits: VideoLimits):
        self.limits = limits
        self.notes: list[str] = []
        self.frames_read = 0

    @property
    def channels(self) -> int:
        return 1 if self.channel_order == "grey" else 3

    def iter_frames(self, reuse_buffer: bool = False) -> Iterator[np.ndarray]:
        """Yield (height, width, channels) uint8 frames in `channel_order`.

        With `reuse_buffer=True` a video reader decodes every frame into the same array (no
        allocation per frame): the caller must copy what it keeps before the next frame.
        """
        raise NotImplementedError

    def __iter__(self):
        return self.iter_frames()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ArrayReader(ClipReader):
    def __init__(self, frames: np.ndarray, limits: VideoLimits, fps: float | None, source: str):
        super().__init__(limits)
        self.array = frames
        self.source = source
        self.fps = fps
        self.num_frames = int(frames.shape[0])
        self.frame_size = (int(frames.shape[2]), int(frames.shape[1]))
        self.channel_order = "grey" if frames.shape[3] == 1 else "rgb"
        limits.check_frame_size(*self.frame_size, source)
        limits.check_num_frames(self.num_frames, source, fps)

    def iter_frames(self, reuse_buffer: bool = False):
        for frame in self.array:
            self.frames_read += 1
            yield frame


class _FrameListReader(ClipReader):
    """Frames given one by one: arrays, PIL images or image files, read in the given order."""

    def __init__(self, items: list, limits: VideoLimits, fps: float | None, source: str):
        super().__init__(limits)
        self.items = list(items)
        self.source = source
        self.fps = fps
        self.num_frames = len(self.items)
        limits.check_num_frames(self.num_frames, source, fps)
        first = self._load(0)
        self.frame_size = (int(first.shape[1]), int(first.shape[0]))
        self._first = first
        if first.shape[2] == 1:
            self.channel_order = "grey"
        else:
            self.channel_order = "bgr" if isinstance(self.items[0], (str, os.PathLike)) else "rgb"

    def _describe(self, i: int) -> str:
        item = self.items[i]
        return str(item) if isinstance(item, (str, os.PathLike)) else f"frame {i} of {self.source}"

    def _load(self, i: int) -> np.ndarray:
        item = self.items[i]
        if isinstance(item, (str, os.PathLike)):
            # checked per file just before decoding: a huge image is refused from its header
            _check_image_file(Path(item), self.limits)
            image = _read_image_file(Path(item))
            self.limits.check_frame_size(image.shape[1], image.shape[0], str(item))
            return image
        if _is_pil_image(item):
            item = _pil_to_array(item)
        stack = as_frame_stack(item)
        self.limits.check_frame_size(stack.shape[2], stack.shape[1], self._describe(i))
        if stack.shape[0] != 1:
            raise MieInputError(
                f"Item {i} of {self.source} holds {stack.shape[0]} frames; a list of frames takes one "
                "frame per item. For a batch of clips, pass a list of clips (4-D arrays, paths or lists)."
            )
        return stack[0]

    def _convert(self, frame: np.ndarray, order: str) -> np.ndarray:
        """Bring `frame` (in `order`) to the clip's channel order and uint8."""
        frame = frames_to_uint8(frame)
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = frame[:, :, :3]
        grey = frame.ndim == 2 or frame.shape[2] == 1
        if self.channel_order == "grey":
            if grey:
                return frame.reshape(frame.shape[0], frame.shape[1], 1)
            cv2 = _require_cv2()
            code = cv2.COLOR_BGR2GRAY if order == "bgr" else cv2.COLOR_RGB2GRAY
            return cv2.cvtColor(np.ascontiguousarray(frame), code)[:, :, None]
        if grey:
            return np.repeat(frame.reshape(frame.shape[0], frame.shape[1], 1), 3, axis=2)
        if order != self.channel_order:
            return frame[:, :, ::-1]
        return frame

    def iter_frames(self, reuse_buffer: bool = False):
        for i in range(len(self.items)):
            raw = self._first if i == 0 else self._load(i)
            order = "bgr" if isinstance(self.items[i], (str, os.PathLike)) else "rgb"
            if raw.ndim == 3 and raw.shape[2] == 1:
                order = "grey"
            if (raw.shape[1], raw.shape[0]) != self.frame_size:
                raise MieInputError(
                    f"{self._describe(i)} is {raw.shape[1]} x {raw.shape[0]} pixels but the clip's first "
                    f"frame is {self.frame_size[0]} x {self.frame_size[1]}; all frames of a clip must have "
                    "the same size."
                )
            self.frames_read += 1
            yield self._convert(raw, order)


def _check_image_file(path: Path, limits: VideoLimits) -> None:
    if not path.exists():
        raise MieInputError(f"The image {path} does not exist. Check the path.")
    if not path.is_file():
        raise MieInputError(f"{path} is not a file; expected an image.")
    limits.check_file(path)
    # Read the size from the header before decoding, so that a decompression bomb is refused
    # without allocating it. PIL is optional here: without it, OpenCV's own limit applies.
    try:
        from PIL import Image
    except ImportError:
        return
    with warnings.catch_warnings():
        # our own limit below replaces PIL's decompression-bomb warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Image.DecompressionBombError as err:
            raise MieInputError(
                f"{path} has far too many pixels ({err}); the limit is "
                f"{limits.max_frame_pixels / 1e6:.0f} MP (VideoLimits.max_frame_pixels). Downscale it."
            ) from err
        except Exception:  # noqa: BLE001 - unreadable headers are reported when OpenCV decodes
            return
    limits.check_frame_size(width, height, str(path))


def _read_image_file(path: Path) -> np.ndarray:
    """One image file as uint8 (H, W, 3) in BGR order or (H, W, 1) grey; 16-bit scaled down."""
    cv2 = _require_cv2()
    # ANYDEPTH keeps 16-bit data, ANYCOLOR keeps grey images grey; unlike IMREAD_UNCHANGED
    # this applies the EXIF orientation and drops alpha.
    image = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise MieInputError(
            f"{path} could not be decoded as an image (corrupt, truncated, or a format OpenCV cannot "
            "read). Re-export it as PNG or JPEG."
        )
    image = frames_to_uint8(image)
    if image.ndim == 2:
        image = image[:, :, None]
    return image


class _VideoFileReader(ClipReader):
    def __init__(self, path: Path, limits: VideoLimits):
        super().__init__(limits)
        cv2 = _require_cv2()
        self._cv2 = cv2
        self.source = str(path)
        self.channel_order = "bgr"
        self.exact_count = False
        limits.check_file(path)
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise MieInputError(
                f"{path} could not be opened as a video: it is not a video, it is truncated or corrupt, "
                f"or its format is one OpenCV cannot decode. {_HOW_TO_CONVERT}"
            )
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        # containers without a rate report 0; some report absurd values (90000: a time base)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 10000 else None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.num_frames = int(count) if math.isfinite(count) and count > 0 else None
        self.frame_size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        try:
            if self.frame_size != (0, 0):
                limits.check_frame_size(*self.frame_size, self.source)
            if self.num_frames:
                limits.check_num_frames(self.num_frames, self.source, self.fps)
        except MieInputError:
            self.close()
            raise

    def iter_frames(self, reuse_buffer: bool = False):
        if self._cap is None:
            raise RuntimeError("This ClipReader was closed or already read; open the clip again.")
        cap, limits, buffer = self._cap, self.limits, None
        try:
            while True:
                ok, frame = cap.read(buffer) if reuse_buffer and buffer is not None else cap.read()
                if not ok or frame is None:
                    break
                if self.frames_read == 0:
                    self.frame_size = (int(frame.shape[1]), int(frame.shape[0]))
                    limits.check_frame_size(*self.frame_size, self.source)
                if reuse_buffer:
                    buffer = frame
                if frame.ndim == 2:
                    frame = frame[:, :, None]
                    self.channel_order = "grey"
                self.frames_read += 1
                limits.check_num_frames(self.frames_read, self.source, self.fps)
                yield frame
        finally:
            self.close()
        if self.frames_read == 0:
            raise MieInputError(
                f"{self.source} holds zero decodable frames (empty, truncated or corrupt video). "
                f"{_HOW_TO_CONVERT}"
            )
        if self.num_frames and self.frames_read < self.num_frames:
            note = (
                f"{self.source}: decoded {self.frames_read} of the {self.num_frames} frames its header "
                "announces (truncated or damaged file); the decoded frames were used."
            )
            logger.warning(note)
            self.notes.append(note)

    def close(self) -> None:
        if getattr(self, "_cap", None) is not None:
            self._cap.release()
            self._cap = None


def open_clip(
    source: Any,
    limits: VideoLimits | dict | None = None,
    fps: float | None = None,
) -> ClipReader:
    """Open a clip for reading frame by frame.

    Args:
        source: one of
            - a video file path (anything OpenCV decodes: mp4, avi, mov, mkv, webm, ...);
            - a folder of frame images, ordered by the integer in each file name
              (`frame_sort_key`);
            - a single image file path (a clip of one frame);
            - a list of image paths, arrays or PIL images (frames, in the given order);
            - an array or tensor of frames (see `as_frame_stack` for the layouts), RGB order;
            - a `Clip`.
        limits: `VideoLimits` (or a dict of its fields) checked before and while decoding.
        fps: frame rate for sources that do not carry one (folders, arrays); a video file's
            own rate wins.

    Raises:
        MieInputError: the source is missing, empty, unreadable, not a video, too large, or
            too long; the message says what to do.
    """
    limits = VideoLimits.coerce(limits)
    if isinstance(source, Clip):
        return _ArrayReader(as_frame_stack(source.frames), limits, source.fps or fps, source.source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.exists():
            raise MieInputError(f"{path} does not exist. Check the path of the clip.")
        if path.is_dir():
            files = list_frame_files(path)
            if not files:
                raise MieInputError(
                    f"The folder {path} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                    "point to a folder of frames or to a video file."
                )
            return _FrameListReader(files, limits, fps, str(path))
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return _FrameListReader([path], limits, fps, str(path))
        return _VideoFileReader(path, limits)
    if isinstance(source, (list, tuple)):
        if len(source) == 0:
            raise MieInputError("The clip is an empty list; pass at least one frame.")
        return _FrameListReader(list(source), limits, fps, f"<list of {len(source)} frames>")
    if _is_pil_image(source):
        return _FrameListReader([source], limits, fps, "<image>")
    if isinstance(source, np.ndarray) or hasattr(source, "__array__") or hasattr(source, "detach"):
        frames = as_frame_stack(source)
        return _ArrayReader(frames, limits, fps, f"<array {tuple(frames.shape)}>")
    raise MieInputError(
        f"Cannot read a clip from a {type(source).__name__}; pass a video path, a folder of frames, "
        "a list of images or an array of frames."
    )


def read_clip(
    source: Any,
    limits: VideoLimits | dict | None = None,
    fps: float | None = None,
) -> Clip:
    """Read a whole clip into memory as RGB (or grey) uint8 frames.

    Takes the same sources as `open_clip`. Frames come back as (frames, height, width, 3) RGB,
    or (frames, height, width, 1) when the source is greyscale; fps where the source has one.

    Raises:
        MieInputError: as `open_clip`, plus zero frames, mixed frame sizes, or a decoded clip
            larger than `VideoLimits.max_clip_bytes`.
    """
    with open_clip(source, limits, fps) as reader:
        if reader.array is not None:
            frames = reader.array
            _check_clip_bytes(frames.shape[0], frames.shape[1:], reader)
        else:
            frames = _collect(reader)
    return Clip(frames=frames, fps=reader.fps, source=reader.source, notes=list(reader.notes))


def _check_clip_bytes(num_frames: int, frame_shape, reader: ClipReader) -> None:
    total = int(num_frames) * int(np.prod(frame_shape))
    if total > reader.limits.max_clip_bytes:
        raise MieInputError(
            f"{reader.source} needs {total / 2**30:.1f} GiB decoded, above the limit of "
            f"{reader.limits.max_clip_bytes / 2**30:.1f} GiB (VideoLimits.max_clip_bytes). Use MieProcessor "
            "(it keeps only the face area), trim or downscale the clip, or raise the limit."
        )


def _collect(reader: ClipReader) -> np.ndarray:
    """All frames of a reader as one (T, H, W, C) RGB / grey array, growing a buffer by doubling."""
    buffer = None
    count = 0
    for frame in reader.iter_frames(reuse_buffer=True):
        if buffer is None:
            capacity = min(reader.num_frames or 64, reader.limits.max_frames)
            _check_clip_bytes(capacity, frame.shape, reader)
            buffer = np.empty((capacity, *frame.shape), np.uint8)
        elif count == buffer.shape[0]:
            _check_clip_bytes(count * 2, frame.shape, reader)
            buffer = np.concatenate([buffer, np.empty_like(buffer)])
        if reader.channel_order == "bgr":
            # BGR -> RGB within the copy that is made anyway; OpenCV's SIMD conversion is ~20x
            # faster than numpy's negative-stride copy
            _require_cv2().cvtColor(frame, _require_cv2().COLOR_BGR2RGB, dst=buffer[count])
        else:
            buffer[count] = frame
        count += 1
    if count == 0:
        raise MieInputError(f"{reader.source} holds zero frames. {_HOW_TO_CONVERT}")
    return buffer[:count]


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Clip",
    "ClipReader",
    "VideoLimits",
    "as_frame_stack",
    "frame_sort_key",
    "frames_to_uint8",
    "is_image_path",
    "list_frame_files",
    "open_clip",
    "read_clip",
]
