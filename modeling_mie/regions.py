"""Region geometry and cropping: the face box and six boxes from landmarks, and the crops cut from frames."""

from __future__ import annotations

import math

import numpy as np
import torch

from .tracking import apply_affine, compose, invert, to_pixel_centres

# Resampling in `aligned_region_crops`: a frame shrunk by more than 2x is first resized by area
# averaging to twice the crop's scale; then, wherever the crop is smaller than its source, a
# Gaussian of 0.5 crop px (in source px: 0.5 / scale) low-passes it before the bilinear warp, so
# that what a frame looks like does not depend on its sub-pixel position. Without it, a clip whose
# head moves differed from the same clip with a still head by bilinear blur that comes and goes
# with the sub-pixel phase: a faint one-sided AU14 kept only 0.55 of its correlation with the
# still head's onset differences (3.4x their energy); with it 0.68 (2.1x). `bench/alignment.py`.
_PREFILTER_BELOW = 0.5
_PREFILTER_FACTOR = 2.0
_BLUR_CROP_PX = 0.5


def face_box_from_landmarks(dlib68: np.ndarray, face_box_landmarks: dict) -> np.ndarray:
    """(x0, y0, x1, y1) float face box in pixels from dlib-68 points (DESIGN.md section 1).

    Left: smallest x of the `left` points (dlib 17, the outer end of the image-left brow); right:
    largest x of `right` (26); top: smallest y of `top` (the higher of 18 and 25); bottom:
    largest y of `bottom` (8, the chin).
    """
    pts = np.asarray(dlib68, np.float64)
    return np.array(
        [
            pts[face_box_landmarks["left"], 0].min(),
            pts[face_box_landmarks["top"], 1].min(),
            pts[face_box_landmarks["right"], 0].max(),
            pts[face_box_landmarks["bottom"], 1].max(),
        ]
    )


def region_boxes_from_face_box(face_box: np.ndarray, regions: list[dict], canvas_size) -> np.ndarray:
    """Map the canvas rectangles of `regions` back to image pixels: (regions, 4) float x0, y0, x1, y1.

    The face box is fitted into the canvas (width, height) the way the authors' code resized
    the face crop: scaled to fit inside ("contain", aspect ratio kept) and centred, the rest
    black. Centring is our choice where the paper is silent; it is what PIL's `ImageOps.pad`
    and most letterbox resizes do, and it keeps left/right regions mirror images of each
    other. `crop_scale` does not enter: it rescales canvas and rectangles together.
    """
    x0, y0, x1, y1 = (float(v) for v in face_box)
    fw, fh = x1 - x0, y1 - y0
    cw, ch = (float(v) for v in canvas_size)
    scale = min(cw / fw, ch / fh)  # canvas pixels per image pixel
    off_x = (cw - fw * scale) / 2.0
    off_y = (ch - fh * scale) / 2.0
    canvas = np.array([r["box"] for r in regions], np.float64)  # (R, 4) in canvas pixels
    out = np.empty_like(canvas)
    out[:, [0, 2]] = x0 + (canvas[:, [0, 2]] - off_x) / scale
    out[:, [1, 3]] = y0 + (canvas[:, [1, 3]] - off_y) / scale
    return out


def round_boxes(boxes: np.ndarray) -> np.ndarray:
    """Float boxes to the integer pixel boxes that are cut: (R, 4) int64, end exclusive, >= 1 px."""
    boxes = np.floor(np.asarray(boxes, np.float64) + 0.5).astype(np.int64)
    boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0] + 1)
    boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1] + 1)
    return boxes


# ------------------------------------------------------------------------------ cropping
def _require_cv2():
    try:
        import cv2
    except ImportError:  # grey conversion falls back to numpy
        return None
    return cv2


def _convert_channels(patch: np.ndarray, num_channels: int, channel_order: str) -> np.ndarray:
    """(T, h, w, C) uint8 in `channel_order` -> (T, h, w, 1 or 3) uint8 (grey, or RGB)."""
    t, h, w, c = patch.shape
    if c == 1:
        return patch  # grey stays grey; repeated to 3 channels after the resize (3x cheaper)
    cv2 = _require_cv2()
    if num_channels == 1:
        if cv2 is not None:
            code = cv2.COLOR_BGR2GRAY if channel_order == "bgr" else cv2.COLOR_RGB2GRAY
            # one call over the whole clip: the (T * h, w) image is T frames stacked
            return cv2.cvtColor(patch.reshape(t * h, w, 3), code).reshape(t, h, w, 1)
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        if channel_order == "bgr":
            weights = weights[::-1]
        return np.clip(patch @ weights + 0.5, 0, 255).astype(np.uint8)[..., None]
    if channel_order == "bgr":
        if cv2 is not None:
            return cv2.cvtColor(patch.reshape(t * h, w, 3), cv2.COLOR_BGR2RGB).reshape(t, h, w, 3)
        return np.ascontiguousarray(patch[..., ::-1])
    return patch


def crop_regions(
    frames: np.ndarray,
    boxes: np.ndarray,
    region_sizes: list[tuple[int, int]],
    crop_size: tuple[int, int],
    num_channels: int = 1,
    channel_order: str = "rgb",
    frame_indices: np.ndarray | None = None,
) -> np.ndarray:
    """Cut the same boxes out of every frame and bring each region to its crop size.

    Both ways into the processor (landmarks found by the detector, or landmarks / boxes given
    by the caller) end here. Per region there is one array slice over all frames and one
    resize call over the whole (frames, channels, h, w) stack (antialiased bilinear, so
    downscaling does not alias); no Python loop over frames.

    Args:
        frames: (T, H, W, C) uint8, C = 1 (grey) or 3 (in `channel_order`, "rgb" or "bgr").
        boxes: (R, 4) int x0, y0, x1, y1 in `frames` pixels, end exclusive. Parts outside the
            frame are black.
        region_sizes: (height, width) of each region's crop (`MieConfig.region_crop_sizes`).
        crop_size: (height, width) all crops are padded to (`MieConfig.crop_size`).
        num_channels: 1 for grey output, 3 for RGB.
        frame_indices: (T',) int frames to crop, in order; default all.

    Returns:
        (T', R, num_channels, crop_height, crop_width) uint8. Region r fills the top-left
        `region_sizes[r]` of its crop; the rest is black (the paper pads smaller crops with
        black; top-left keeps the pixel <-> crop mapping a plain offset for heatmaps).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 1 or 3) uint8; got {frames.shape} {frames.dtype}.")
    boxes = np.asarray(boxes, np.int64)
    if boxes.shape != (len(region_sizes), 4):
        raise ValueError(f"boxes must be (regions, 4) = {(len(region_sizes), 4)}; got {boxes.shape}.")
    total, height, width, channels = frames.shape
    count = total if frame_indices is None else len(frame_indices)
    crop_h, crop_w = crop_size
    out = np.zeros((count, len(region_sizes), num_channels, crop_h, crop_w), np.uint8)
    for r, ((x0, y0, x1, y1), (out_h, out_w)) in enumerate(zip(boxes.tolist(), region_sizes)):
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if ix0 >= ix1 or iy0 >= iy1:
            continue  # the region lies wholly outside the frame: its crop stays black
        if frame_indices is None:
            part = frames[:, iy0:iy1, ix0:ix1]
        else:
            part = frames[frame_indices, iy0:iy1, ix0:ix1]  # copies only the selected frames' box
        if (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1):
            patch = np.zeros((count, y1 - y0, x1 - x0, channels), np.uint8)
            patch[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = part
        else:
            patch = np.ascontiguousarray(part)
        patch = _convert_channels(patch, num_channels, channel_order)
        if not patch.flags.writeable:  # torch.from_numpy warns on read-only arrays
            patch = patch.copy()
        stack = torch.from_numpy(patch).permute(0, 3, 1, 2)  # (T', c, h, w), channels-last memory
        if stack.shape[-2:] != (out_h, out_w):
            stack = torch.nn.functional.interpolate(
                stack, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False
            )
        out[:, r, :, :out_h, :out_w] = stack.numpy()  # broadcasts grey to 3 channels if asked
    return out


def visible_part(
    frame: np.ndarray, maps: list[np.ndarray], sizes: list[tuple[int, int]], min_side: int = 1
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The part of `frame` that affine warps into outputs of `sizes` see, ready to warp from.

    Args:
        frame: (H, W[, C]) image.
        maps: (2, 3) affines from frame px to each output's px (edge coordinates).
        sizes: (height, width) of each output.
        min_side: a visible part narrower or lower than this counts as nothing.

    Returns:
        None when no output sees the frame; else (part, back, part_scale): the frame's part the
        outputs see, with a 2 px margin for the interpolation, resized with area averaging when
        every map shrinks the frame by more than 2x (so warping it does not alias); `back` maps
        part px to frame px; `part_scale` is output px per px of `part` (the smallest map's).
    """
    import cv2

    corners = np.vstack([
        apply_affine(invert(m), np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64))
        for m, (h, w) in zip(maps, sizes)
    ])
    height, width = frame.shape[:2]
    x0, y0 = (np.floor(corners.min(axis=0)).astype(int) - 2).tolist()
    x1, y1 = (np.ceil(corners.max(axis=0)).astype(int) + 2).tolist()
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < min_side or y1 - y0 < min_side:
        return None
    part = frame[y0:y1, x0:x1]
    back = np.array([[1.0, 0, x0], [0, 1.0, y0]])  # part px -> frame px
    scale = min(math.sqrt(abs(np.linalg.det(m[:, :2]))) for m in maps)
    if scale < _PREFILTER_BELOW and min(part.shape[:2]) > 2:
        factor = _PREFILTER_FACTOR * scale
        new_w, new_h = max(2, int(round(part.shape[1] * factor))), max(2, int(round(part.shape[0] * factor)))
        back = np.array([[part.shape[1] / new_w, 0, x0], [0, part.shape[0] / new_h, y0]])
        part = cv2.resize(part, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return part, back, scale * (x1 - x0) / part.shape[1]


def aligned_region_crops(
    frame: np.ndarray,
    transform: np.ndarray,
    boxes: np.ndarray,
    region_sizes: list[tuple[int, int]],
    num_channels: int = 1,
    channel_order: str = "rgb",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Cut the regions out of one frame registered onto the reference frame.

    Each region is one affine warp from the frame straight into its crop (the head motion, the
    box and the resize together), so a pixel is interpolated once. Where the crop shrinks the
    frame by more than 2x, the part of the frame the regions see is first resized with area
    averaging, as `crop_regions` antialiases.

    Args:
        frame: (H, W, C) uint8, C = 1 or 3 (in `channel_order`).
        transform: (2, 3) similarity from this frame's pixels to the reference frame's.
        boxes: (R, 4) float x0, y0, x1, y1 of the regions in reference-frame pixels.
        region_sizes: (height, width) of each region's crop.
        num_channels: 1 (grey) or 3 (RGB) output channels.
        out: optional (R, C, crop_height, crop_width) uint8 array to fill.

    Returns:
        (R, C, crop_height, crop_width) uint8 with each region in its top-left part, black
        elsewhere and where the region reaches past the frame.
    """
    cv2 = _require_cv2()
    if cv2 is None:  # pragma: no cover - OpenCV comes with mediapipe
        raise ImportError("Aligned crops need OpenCV: pip install opencv-contrib-python")
    crop_h = max(h for h, _ in region_sizes)
    crop_w = max(w for _, w in region_sizes)
    if out is None:
        out = np.zeros((len(region_sizes), num_channels, crop_h, crop_w), np.uint8)
    else:
        out[:] = 0
    maps = []
    for (x0, y0, x1, y1), (h, w) in zip(np.asarray(boxes, np.float64), region_sizes):
        box_to_crop = np.array([[w / (x1 - x0), 0, -x0 * w / (x1 - x0)], [0, h / (y1 - y0), -y0 * h / (y1 - y0)]])
        maps.append(compose(box_to_crop, transform))  # frame px -> crop px
    seen = visible_part(frame, maps, region_sizes, min_side=1)
    if seen is None:
        return out  # every region lies outside the frame
    part, back, part_scale = seen
    if part.ndim == 2:
        part = part[:, :, None]
    part = _convert_channels(np.ascontiguousarray(part)[None], num_channels, channel_order)[0]
    if part_scale < 1:
        part = cv2.GaussianBlur(part, (0, 0), _BLUR_CROP_PX / part_scale).reshape(part.shape)
    for r, (m, (h, w)) in enumerate(zip(maps, region_sizes)):
        warped = cv2.warpAffine(
            part, to_pixel_centres(compose(m, back)), (w, h), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        out[r, :, :h, :w] = warped.reshape(h, w, -1).transpose(2, 0, 1)  # grey broadcasts to 3 channels
    return out


__all__ = [
    "aligned_region_crops",
    "crop_regions",
    "face_box_from_landmarks",
    "region_boxes_from_face_box",
    "round_boxes",
    "visible_part",
]
