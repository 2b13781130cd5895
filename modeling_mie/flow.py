"""Dense optical flow of the face, the motion input of the region CNNs (config `input_mode="flow"`).

Per frame, the face is warped onto the canvas of the region table (the face box fitted into
`canvas_size`, as the region boxes are defined), registered onto the reference frame when the
processor aligns; OpenCV's DIS flow (Kroeger et al., 2016; `DIS_SETTINGS`) runs from the
reference canvas to this frame's canvas; the flow's median over a rigid patch at the nose bridge (the head motion
that alignment left) is subtracted; and each region's part of the flow field is resized to its
crop. The channels are u, v (pixels of the canvas) and their magnitude.

Amplitude: a clip's flow is divided by its peak (`flow_peak`: the largest per-frame 99.5th
percentile of the magnitude over the regions, at least `PEAK_FLOOR` canvas pixels), so the CNNs
read where and in which direction the face moves, not how far: the same action units at twice
the amplitude give the same input. The peak itself is reported (`motion_peak`), for the "large
movement" check of callers.

Storage: normalised flow in [-1, 1] is encoded as uint8 `128 + 127 * value` (magnitude in
[0, 1] the same way), so caches, sampling and batching treat flow crops as they treat grey
crops; `decode_flow` turns `pixel_values` (uint8 / 255) back into flow. One step of the code is
1/127 of the clip's peak.
"""

from __future__ import annotations

import numpy as np

from .regions import visible_part
from .tracking import compose, to_pixel_centres

#: What each of the three channels of a flow crop holds.
FLOW_CHANNELS = ("u", "v", "magnitude")
#: Percentile of a frame's flow magnitude that stands for the frame's motion (robust to a few
#: mismatched pixels), and the smallest peak a clip is divided by, canvas pixels: below it the
#: flow is mostly estimation noise, which must not be blown up to full scale.
PEAK_PERCENTILE = 99.5
PEAK_FLOOR = 0.2
#: uint8 code of zero flow, and code steps per unit of normalised flow.
ZERO_CODE = 128
CODE_SCALE = 127
#: DIS settings. On a 240 x 280 face canvas with four 1-2 px local movements (Gaussian, sigma
#: 12 px, at the mouth corners and brows) and sensor noise (sigma 1.5 grey levels), the mean
#: endpoint error where the face moved was: these settings 0.26 px in 1.5 ms; the same with
#: patches every 4 px 0.23 px in 2.5 ms; OpenCV's MEDIUM preset 0.25 px in 4.7 ms; its FAST
#: preset, whose finest scale is a quarter of the canvas, 0.77 px in 1.3 ms (it smooths a
#: micro-movement away). Finest scale 1 is half the canvas.
DIS_SETTINGS = {
    "FinestScale": 1,
    "PatchSize": 8,
    "PatchStride": 6,
    "GradientDescentIterations": 8,
    "VariationalRefinementIterations": 2,
}
#: Half-size of the rigid patch at the nose bridge, as a share of the canvas width.
_RIGID_PATCH_HALF = 0.05


def _cv2():
    import cv2

    return cv2


def reference_to_canvas(region_boxes: np.ndarray, canvas_boxes: np.ndarray) -> np.ndarray:
    """(2, 3) affine from reference-frame pixels to canvas pixels, fitted per axis (scale and
    offset) on the region boxes as they are in the frame and in the region table.

    Boxes from landmarks are one uniform scale of the table (`region_boxes_from_face_box`), so
    the fit is exact; boxes given by a caller get the scale per axis that fits them best.
    """
    frame = np.asarray(region_boxes, np.float64)
    canvas = np.asarray(canvas_boxes, np.float64)
    out = np.zeros((2, 3))
    for axis, cols in ((0, [0, 2]), (1, [1, 3])):
        x, y = frame[:, cols].ravel(), canvas[:, cols].ravel()
        design = np.stack([x, np.ones_like(x)], axis=1)
        (scale, offset), *_ = np.linalg.lstsq(design, y, rcond=None)
        out[axis, axis], out[axis, 2] = scale, offset
    return out


class FaceFlow:
    """Flow crops of one clip, frame by frame against its reference frame.

    Args:
        canvas_size: (width, height) of the canvas the flow is computed on.
        ref_to_canvas: (2, 3) reference-frame pixels -> canvas pixels (`reference_to_canvas`).
        canvas_boxes: (R, 4) region boxes in canvas pixels (the region table).
        region_sizes: (height, width) of each region's crop.
        rigid_point: canvas (x, y) of the nose bridge, the centre of the patch whose median
            flow is subtracted; None leaves the flow as it is.
        channel_order: "rgb" or "bgr" for 3-channel frames.
    """

    def __init__(
        self,
        canvas_size,
        ref_to_canvas: np.ndarray,
        canvas_boxes: np.ndarray,
        region_sizes: list[tuple[int, int]],
        rigid_point: np.ndarray | None = None,
        channel_order: str = "rgb",
    ):
        cv2 = _cv2()
        self.width, self.height = (int(v) for v in canvas_size)
        self.ref_to_canvas = np.asarray(ref_to_canvas, np.float64)
        self.boxes = np.asarray(canvas_boxes, np.int64)
        self.region_sizes = [tuple(int(v) for v in s) for s in region_sizes]
        self.crop_h = max(h for h, _ in self.region_sizes)
        self.crop_w = max(w for _, w in self.region_sizes)
        self.channel_order = channel_order
        self.patch = None
        if rigid_point is not None:
            half = max(2, round(_RIGID_PATCH_HALF * self.width))
            cx, cy = (round(float(v)) for v in rigid_point)
            x0, y0 = max(cx - half, 0), max(cy - half, 0)
            x1, y1 = min(cx + half, self.width), min(cy + half, self.height)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                self.patch = (slice(y0, y1), slice(x0, x1))
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        for name, value in DIS_SETTINGS.items():
            getattr(self._dis, f"set{name}")(value)
        self._reference: np.ndarray | None = None

    def canvas(self, frame: np.ndarray, transform: np.ndarray | None) -> np.ndarray:
        """The grey (height, width) uint8 canvas of `frame`; `transform` maps the frame onto the
        reference frame (None: the frame is taken as it is, the paper's fixed boxes)."""
        cv2 = _cv2()
        to_canvas = self.ref_to_canvas if transform is None else compose(self.ref_to_canvas, transform)
        seen = visible_part(frame, [to_canvas], [(self.height, self.width)], min_side=2)
        if seen is None:
            return np.zeros((self.height, self.width), np.uint8)
        part, back, _ = seen
        if part.ndim == 3 and part.shape[2] == 3:
            part = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY if self.channel_order == "rgb" else cv2.COLOR_BGR2GRAY)
        else:
            part = np.ascontiguousarray(part.reshape(part.shape[:2]))
        return cv2.warpAffine(
            part, to_pixel_centres(compose(to_canvas, back)), (self.width, self.height),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )

    def field(self, frame: np.ndarray, transform: np.ndarray | None) -> np.ndarray:
        """(height, width, 2) float32 flow from the reference canvas to this frame's, canvas px,
        the rigid patch's median removed. The first frame given becomes the reference."""
        canvas = self.canvas(frame, transform)
        if self._reference is None:
            self._reference = canvas
            return np.zeros((self.height, self.width, 2), np.float32)
        return self.between(self._reference, canvas)

    def between(self, reference: np.ndarray, canvas: np.ndarray) -> np.ndarray:
        """(height, width, 2) float32 flow from one canvas to another (both from `canvas`),
        canvas px, the rigid patch's median removed."""
        flow = self._dis.calc(reference, canvas, None)
        if self.patch is not None:
            flow -= np.median(flow[self.patch].reshape(-1, 2), axis=0)
        return flow

    def crops(self, flow: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The regions of a flow field as (R, 3, crop_h, crop_w) float32 (u, v, magnitude),
        each region in the top-left part of its crop, zero elsewhere."""
        cv2 = _cv2()
        if out is None:
            out = np.zeros((len(self.region_sizes), 3, self.crop_h, self.crop_w), np.float32)
        else:
            out[:] = 0
        for r, ((x0, y0, x1, y1), (h, w)) in enumerate(zip(self.boxes.tolist(), self.region_sizes)):
            part = flow[y0:y1, x0:x1]
            if part.shape[:2] != (h, w):
                shrink = part.shape[0] > h or part.shape[1] > w
                part = cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            out[r, 0, :h, :w] = part[..., 0]
            out[r, 1, :h, :w] = part[..., 1]
            out[r, 2, :h, :w] = np.hypot(part[..., 0], part[..., 1])
        return out

    def region_mask(self) -> np.ndarray:
        """(R, crop_h, crop_w) bool: the part of each crop that holds its region."""
        mask = np.zeros((len(self.region_sizes), self.crop_h, self.crop_w), bool)
        for r, (h, w) in enumerate(self.region_sizes):
            mask[r, :h, :w] = True
        return mask


def flow_peak(crops: np.ndarray, present: np.ndarray, region_mask: np.ndarray) -> float:
    """The clip's motion peak, canvas px: the largest per-frame `PEAK_PERCENTILE` percentile of
    the flow magnitude inside the regions, over the frames where the face is present."""
    frames = np.flatnonzero(present)
    if len(frames) == 0:
        return 0.0
    magnitude = crops[frames, :, 2]  # (n, R, h, w)
    values = magnitude[:, region_mask]  # (n, pixels)
    return float(np.percentile(values, PEAK_PERCENTILE, axis=1).max())


def encode_flow(crops: np.ndarray, peak: float) -> np.ndarray:
    """Raw flow crops (T, R, 3, h, w) -> uint8 codes of the flow divided by max(peak, PEAK_FLOOR)
    (the padding, zero flow, gets the code of zero)."""
    scale = CODE_SCALE / max(float(peak), PEAK_FLOOR)
    codes = np.clip(crops * np.float32(scale), -CODE_SCALE, CODE_SCALE) + np.float32(ZERO_CODE)
    codes = np.floor(codes + 0.5).astype(np.uint8)
    return codes


def decode_flow(pixel_values):
    """`pixel_values` of flow crops (uint8 codes / 255, as the processor rescales them) -> the
    normalised flow, u and v in [-1, 1] and magnitude in [0, 1]. Works on numpy arrays and torch
    tensors alike."""
    return (pixel_values - ZERO_CODE / 255.0) * (255.0 / CODE_SCALE)


__all__ = ["FLOW_CHANNELS", "FaceFlow", "decode_flow", "encode_flow", "flow_peak", "reference_to_canvas"]
