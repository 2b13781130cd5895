"""Pictures of the six face regions: boxes and names on a frame, optionally coloured by a score."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import MieInputError
from .landmarks import to_rgb_uint8

logger = logging.getLogger(__name__)

# One colour per region (RGB), far apart in hue and readable on skin, for pictures without
# scores. More regions than colours cycle through the list.
REGION_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 200, 255),  # left eye: sky blue
    (255, 160, 0),  # right eye: orange
    (80, 220, 80),  # nose: green
    (255, 80, 200),  # left cheek: pink
    (160, 110, 255),  # right cheek: violet
    (255, 235, 60),  # mouth: yellow
)


def _require_cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - OpenCV comes with mediapipe
        raise ImportError("Drawing regions needs OpenCV: pip install opencv-contrib-python") from err
    return cv2


def score_colors(
    scores: Sequence[float], vmin: float | None = None, vmax: float | None = None
) -> list[tuple[int, int, int]]:
    """RGB colours for scores on OpenCV's perceptually uniform "inferno" map (dark = low).

    Scores are scaled linearly from `vmin` (default min(0, scores)) to `vmax` (default the
    largest score, or 1 when all are <= 0). NaN scores get grey.
    """
    cv2 = _require_cv2()
    values = np.asarray(scores, np.float64)
    finite = values[np.isfinite(values)]
    if vmin is not None:
        lo = float(vmin)
    else:
        lo = min(0.0, float(finite.min())) if finite.size else 0.0
    if vmax is not None:
        hi = float(vmax)
    else:
        hi = float(finite.max()) if finite.size and finite.max() > lo else lo + 1.0
    span = hi - lo if hi > lo else 1.0
    # keep away from the near-black bottom of the map so that low scores still show on a face
    level = 0.15 + 0.85 * np.clip((np.nan_to_num(values, nan=lo) - lo) / span, 0.0, 1.0)
    lut = cv2.applyColorMap(np.round(level * 255).astype(np.uint8)[None, :], cv2.COLORMAP_INFERNO)[0]
    colors = [tuple(int(c) for c in bgr[::-1]) for bgr in lut]
    return [(128, 128, 128) if not np.isfinite(v) else c for v, c in zip(values, colors)]


def draw_regions(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    names: Sequence[str] | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
    *,
    fill_alpha: float | None = None,
    thickness: int | None = None,
    landmarks: np.ndarray | None = None,
    margin: float | None = None,
    min_side: int = 320,
) -> np.ndarray:
    """Draw region boxes with their names (and scores) on a copy of a face image.

    Args:
        image: one frame, (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4); uint8, uint16 or
            float in [0, 1].
        boxes: (regions, 4) x0, y0, x1, y1 in pixels of `image` (the processor's
            `region_boxes`); parts outside the image are clipped.
        names: one label per box (e.g. `processor.region_names`); default "0", "1", ...
        scores: optional per-region values (e.g. contribution to the prediction); each box is
            then filled with its score's colour (`score_colors`) and the label shows the value.
        colors: RGB colour per box, overriding both the fixed palette and the score colours.
        fill_alpha: opacity of the box fill, 0-1; default 0.35 with scores, 0 without.
        thickness: outline width in pixels of the output picture; default scales with size.
        landmarks: optional (N, 2) points in `image` pixels, drawn as small dots.
        margin: if given, the picture is cut to the union of the boxes widened by this fraction
            of its width / height on every side (0.5 shows the face and a little around it),
            so that a small face in a large frame is readable; default: the whole image.
        min_side: small images are upscaled (nearest-neighbour, so pixels stay honest) until
            their shorter side reaches this, so that the names stay legible.

    Returns:
        (H', W', 3) uint8 RGB: the image (or its `margin` cut), upscaled by an integer factor
        when its shorter side is below `min_side`; H' = H and W' = W otherwise.
    """
    cv2 = _require_cv2()
    picture = np.array(to_rgb_uint8(image), copy=True)  # never draw on the caller's frame
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise MieInputError(f"boxes must be (regions, 4) x0, y0, x1, y1; got shape {boxes.shape}.")
    count = len(boxes)
    names = [str(i) for i in range(count)] if names is None else [str(n) for n in names]
    if len(names) != count:
        raise MieInputError(f"{count} boxes but {len(names)} names; give one name per box.")
    if scores is not None:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != count:
            raise MieInputError(f"{count} boxes but {len(scores)} scores; give one score per box.")
    if colors is None:
        if scores is not None:
            colors = score_colors(scores)
        else:
            colors = [REGION_COLORS[i % len(REGION_COLORS)] for i in range(count)]
    elif len(colors) != count:
        raise MieInputError(f"{count} boxes but {len(colors)} colours; give one colour per box.")
    if fill_alpha is None:
        fill_alpha = 0.35 if scores is not None else 0.0

    if margin is not None:
        # cut to the boxes (+ margin) and shift every coordinate into the cut
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
        pad_x, pad_y = (x1 - x0) * float(margin), (y1 - y0) * float(margin)
        cx0 = int(np.clip(np.floor(x0 - pad_x), 0, picture.shape[1] - 1))
        cy0 = int(np.clip(np.floor(y0 - pad_y), 0, picture.shape[0] - 1))
        cx1 = int(np.clip(np.ceil(x1 + pad_x), cx0 + 1, picture.shape[1]))
        cy1 = int(np.clip(np.ceil(y1 + pad_y), cy0 + 1, picture.shape[0]))
        picture = np.ascontiguousarray(picture[cy0:cy1, cx0:cx1])
        boxes = boxes - np.array([cx0, cy0, cx0, cy0], np.float64)
        if landmarks is not None:
            landmarks = np.asarray(landmarks, np.float64)[:, :2] - np.array([cx0, cy0], np.float64)
    factor = max(1, int(np.ceil(min_side / max(1, min(picture.shape[:2])))))
    if factor > 1:
        picture = cv2.resize(picture, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    height, width = picture.shape[:2]
    scaled = np.round(boxes * factor).astype(np.int64)
    scaled[:, [0, 2]] = np.clip(scaled[:, [0, 2]], 0, width - 1)
    scaled[:, [1, 3]] = np.clip(scaled[:, [1, 3]], 0, height - 1)
    thickness = thickness or max(1, round(min(height, width) / 250))
    font_scale = max(0.35, min(height, width) / 900)

    if fill_alpha > 0:
        overlay = picture.copy()
        for (x0, y0, x1, y1), color in zip(scaled.tolist(), colors):
            cv2.rectangle(overlay, (x0, y0), (x1, y1), tuple(int(c) for c in color), thickness=-1)
        picture = cv2.addWeighted(overlay, float(fill_alpha), picture, 1.0 - float(fill_alpha), 0.0)
    if landmarks is not None:
        radius = max(1, thickness)
        for x, y in np.round(np.asarray(landmarks, np.float64)[:, :2] * factor).astype(np.int64).tolist():
            if 0 <= x < width and 0 <= y < height:
                cv2.circle(picture, (x, y), radius, (255, 255, 255), thickness=-1, lineType=cv2.LINE_AA)
    for i, ((x0, y0, x1, y1), color) in enumerate(zip(scaled.tolist(), colors)):
        color = tuple(int(c) for c in color)
        cv2.rectangle(picture, (x0, y0), (x1, y1), color, thickness=thickness, lineType=cv2.LINE_AA)
        label = names[i] if scores is None else f"{names[i]} {scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        # label on a filled tab above the box, or inside it when the box touches the top
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else min(y0 + th + base + 2, height - 1)
        tx = int(np.clip(x0, 0, max(0, width - tw - 2)))
        cv2.rectangle(picture, (tx, ty - th - base), (tx + tw + 2, ty + 1), color, thickness=-1)
        ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(picture, label, (tx + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, 1, cv2.LINE_AA)
    return np.ascontiguousarray(picture)


def flow_to_rgb(flow: np.ndarray, scale: float | None = None) -> np.ndarray:
    """(h, w, 2) flow (u, v) -> (h, w, 3) uint8 RGB in the usual optical-flow colour code: the
    hue is the direction (right red, down yellow-green, left cyan, up violet), the saturation the
    length over `scale` (default: the field's largest length), white where nothing moves."""
    cv2 = _require_cv2()
    flow = np.asarray(flow, np.float32)
    length = np.hypot(flow[..., 0], flow[..., 1])
    scale = float(length.max()) if scale is None else float(scale)
    angle = (np.degrees(np.arctan2(flow[..., 1], flow[..., 0])) % 360.0) / 2.0  # OpenCV hue: 0-180
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = np.round(angle).astype(np.uint8) % 180
    hsv[..., 1] = np.clip(255.0 * length / scale, 0, 255).astype(np.uint8) if scale > 0 else 0
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB (or grey) image as PNG, creating the folder; returns the path."""
    cv2 = _require_cv2()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = to_rgb_uint8(image)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write {path}; check that the folder is writable and the name ends in .png.")
    return path


__all__ = ["REGION_COLORS", "draw_regions", "flow_to_rgb", "save_png", "score_colors"]
