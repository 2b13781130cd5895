"""Onset -> apex TV-L1 optical flow and optical strain of a face crop (cached), and Bi-WOOF features.

Flow. OFF-ApexNet (Gan et al. 2019), STSTNet (Liong et al. 2019) and Bi-WOOF (Liong et al. 2018)
all read the TV-L1 optical flow (Zach, Pock & Bischof 2007) from the onset frame to the apex
frame of a face crop. Here it is OpenCV's Dual TV-L1 (`cv2.optflow.DualTVL1OpticalFlow_create`,
opencv-contrib) with the settings in `TVL1_SETTINGS`: the papers name the method, not its
parameters, so these are OpenCV's defaults written out (so that the cache key, and the flow, do
not change if a later OpenCV changes its defaults). Flow is in pixels of the crop, u to the right
and v down, and maps onset pixels to where they are at the apex.

Cache. TV-L1 costs about 0.4 s for a 128 x 128 pair on one CPU thread; LOSO reads every clip's flow
once per method and seed, so `onset_apex_flow(cache_dir=...)` keeps each flow in
`<cache_dir>/<key>.npy`, the key a SHA-256 of the two frames' bytes and shapes, the settings and
the OpenCV version. A file is written under a temporary name and renamed, so concurrent workers
and a killed run leave either a whole file or none; an unreadable file is computed again.

Optical strain. The papers (Shreve et al.'s definition, used by Liong et al.) take the strain
tensor of the flow field, eps = 1/2 (grad(u, v) + grad(u, v)^T), whose components are
eps_xx = du/dx, eps_yy = dv/dy, eps_xy = eps_yx = 1/2 (du/dy + dv/dx), and its magnitude
|eps| = sqrt(eps_xx^2 + eps_yy^2 + eps_xy^2 + eps_yx^2). The derivatives are central differences
(one-sided at the border: `numpy.gradient`), per pixel of the crop. A translation has zero strain,
a rotation too; a stretch u = k x has strain k.

Bi-WOOF (Liong, See, Wong & Phan, "Less is more: micro-expression recognition from video using
apex frame", Signal Processing: Image Communication 2018): from the onset -> apex flow only, the
face is divided into a grid of blocks; in each block an orientation histogram of the flow, each
pixel voting for its direction's bin with its flow magnitude (the local weight), is multiplied by
the block's mean optical strain magnitude (the global weight); the blocks' histograms are
concatenated. The paper's grid depends on the database (5 x 5 for CASME II); 8 bins here by
default. Our choices where the description left room:
    - orientation theta = atan2(v, u) in image coordinates (y down), and the C bins are centred
      on the directions 2 pi c / C: bin 0 is "to the right", bin C/4 "down", bin C/2 "left";
    - a block's histogram is the sum of the magnitudes divided by the block's pixel count (a mean),
      so the values do not grow with the crop's resolution; no further normalisation (the
      classifier wrapper standardises features on the training rows);
    - block edges split the crop with integer floors (`block_edges`), as for LBP-TOP.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MieInputError
from ..files import write_atomically
from .lbptop import block_edges, check_grid

logger = logging.getLogger(__name__)

#: Dual TV-L1 settings (OpenCV's names, as `set<Name>` on the object): OpenCV's defaults, which the
#: papers do not contradict (they name TV-L1, not its parameters).
TVL1_SETTINGS = {
    "Tau": 0.25,  # time step of the numerical scheme
    "Lambda": 0.15,  # weight of the data term against the smoothness (TV) term
    "Theta": 0.3,  # coupling of the two sub-problems
    "ScalesNumber": 5,  # pyramid levels
    "WarpingsNumber": 5,  # warps per level
    "Epsilon": 0.01,  # stopping threshold
    "InnerIterations": 30,
    "OuterIterations": 10,
    "ScaleStep": 0.8,  # pyramid downscale factor
    "Gamma": 0.0,  # illumination-variation term off
    "MedianFiltering": 5,  # median filter on the flow between warps, pixels
}
#: Part of every cache key: bumped when what a cached flow means changes.
FLOW_CACHE_VERSION = "1"
#: Smallest side of a frame TV-L1 is asked to run on, pixels.
MIN_FLOW_SIDE = 8


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - OpenCV is a core dependency
        raise ImportError("TV-L1 flow needs opencv-contrib-python: pip install opencv-contrib-python") from err
    if not hasattr(cv2, "optflow"):  # pragma: no cover - a plain opencv-python shadows contrib
        raise ImportError(
            "cv2.optflow is missing: TV-L1 comes with opencv-contrib-python; uninstall opencv-python and "
            "install opencv-contrib-python."
        )
    return cv2


def tvl1_settings(settings: dict | None = None) -> dict:
    """`TVL1_SETTINGS` updated with `settings`; unknown names are refused."""
    out = dict(TVL1_SETTINGS)
    for name, value in (settings or {}).items():
        if name not in TVL1_SETTINGS:
            raise MieInputError(f"Unknown TV-L1 setting {name!r}; the settings are {', '.join(TVL1_SETTINGS)}.")
        kind = type(TVL1_SETTINGS[name])
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise MieInputError(f"TV-L1 setting {name} must be a number; got {value!r}.")
        if kind is int and value != int(value):
            raise MieInputError(f"TV-L1 setting {name} must be an integer; got {value!r}.")
        out[name] = kind(value)
    return out


def _check_pair(onset, apex) -> tuple[np.ndarray, np.ndarray]:
    frames = []
    for name, frame in (("onset", onset), ("apex", apex)):
        frame = np.asarray(frame)
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise MieInputError(
                f"The {name} frame must be a grey (height, width) uint8 face crop; got shape {frame.shape}, "
                f"dtype {frame.dtype}. Use modeling_mie.baselines.grey_face_volume to make one."
            )
        if min(frame.shape) < MIN_FLOW_SIDE:
            raise MieInputError(
                f"The {name} crop is {frame.shape[1]} x {frame.shape[0]} pixels; TV-L1 needs at least "
                f"{MIN_FLOW_SIDE} x {MIN_FLOW_SIDE}. Crop a larger face."
            )
        frames.append(np.ascontiguousarray(frame))
    if frames[0].shape != frames[1].shape:
        raise MieInputError(
            f"The onset crop is {frames[0].shape} and the apex crop {frames[1].shape}; both must have the same size."
        )
    return frames[0], frames[1]


def tvl1_flow(onset, apex, settings: dict | None = None) -> np.ndarray:
    """(H, W, 2) float32 TV-L1 flow (u right, v down, pixels) from `onset` to `apex`, both grey
    (H, W) uint8, computed now (no cache)."""
    onset, apex = _check_pair(onset, apex)
    settings = tvl1_settings(settings)
    cv2 = _cv2()
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for name, value in settings.items():
        getattr(tvl1, f"set{name}")(value)
    return tvl1.calc(onset, apex, None).astype(np.float32, copy=False)


def flow_cache_key(onset, apex, settings: dict | None = None) -> str:
    """SHA-256 hex key of a flow: both frames' shapes and bytes, the TV-L1 settings, OpenCV's version."""
    onset, apex = _check_pair(onset, apex)
    digest = hashlib.sha256()
    header = {
        "version": FLOW_CACHE_VERSION,
        "method": "tvl1",
        "settings": tvl1_settings(settings),
        "opencv": _cv2().__version__,
        "shape": list(onset.shape),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(onset.tobytes())
    digest.update(apex.tobytes())
    return digest.hexdigest()


def optical_strain(flow) -> np.ndarray:
    """(H, W) float32 optical strain magnitude of a (H, W, 2) flow field (pixels of the crop):
    sqrt(eps_xx^2 + eps_yy^2 + 2 eps_xy^2), derivatives by central differences."""
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2 or min(flow.shape[:2]) < 2:
        raise MieInputError(f"A flow field must be (height, width, 2) with both sides >= 2; got {flow.shape}.")
    du_dy, du_dx = np.gradient(flow[..., 0])
    dv_dy, dv_dx = np.gradient(flow[..., 1])
    e_xy = 0.5 * (du_dy + dv_dx)  # = e_yx
    return np.sqrt(du_dx**2 + dv_dy**2 + 2.0 * e_xy**2).astype(np.float32)


@dataclass
class OnsetApexFlow:
    """The motion of one clip from its onset to its apex frame.

    Attributes:
        flow: (H, W, 2) float32 TV-L1 flow, u (right) and v (down), pixels of the crop.
        strain: (H, W) float32 optical strain magnitude of `flow`.
        key: the cache key (`flow_cache_key`).
        from_cache: True when the flow was read from the cache rather than computed.
    """

    flow: np.ndarray
    strain: np.ndarray
    key: str
    from_cache: bool = False


def _read_cached(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        flow = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("Cached flow %s is unreadable (%s); computing it again.", path, err)
        return None
    if flow.shape != (*shape, 2) or flow.dtype != np.float32:
        logger.warning("Cached flow %s has shape %s %s, not %s float32; computing it again.", path, flow.shape, flow.dtype, (*shape, 2))
        return None
    return flow


def save_array_atomically(path: Path, array: np.ndarray) -> None:
    """Save `array` as .npy at `path` so that a reader (another fold process) sees the whole file
    or none (`files.write_atomically`); the flow cache and `methods`' inputs."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a handle: np.save would add ".npy" to a name without it
            np.save(fh, array, allow_pickle=False)

    write_atomically(path, write)


def onset_apex_flow(
    onset, apex, settings: dict | None = None, cache_dir: str | os.PathLike | None = None
) -> OnsetApexFlow:
    """TV-L1 flow and optical strain from the onset crop to the apex crop, computed once per clip.

    Args:
        onset: (H, W) uint8 grey onset face crop.
        apex: (H, W) uint8 grey apex face crop, same size.
        settings: TV-L1 settings to change (names of `TVL1_SETTINGS`).
        cache_dir: folder of cached flows; None computes without caching.

    Returns:
        `OnsetApexFlow` with the flow, its strain and the cache key.
    """
    key = flow_cache_key(onset, apex, settings)
    onset, apex = _check_pair(onset, apex)
    path = Path(cache_dir) / f"{key}.npy" if cache_dir is not None else None
    flow = _read_cached(path, onset.shape) if path is not None else None
    from_cache = flow is not None
    if flow is None:
        flow = tvl1_flow(onset, apex, settings)
        if path is not None:
            save_array_atomically(path, flow)
    return OnsetApexFlow(flow=flow, strain=optical_strain(flow), key=key, from_cache=from_cache)


def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise MieInputError(f"bins must be an integer >= 2; got {bins!r}.")
    return int(bins)


def orientation_bins(flow, bins: int = 8) -> np.ndarray:
    """(H, W) int bin of each pixel's flow direction: bin c is centred on angle 2 pi c / bins of
    atan2(v, u) (image coordinates, y down: bin 0 right, bins/4 down, bins/2 left)."""
    bins = _check_bins(bins)
    flow = np.asarray(flow)
    theta = np.arctan2(flow[..., 1], flow[..., 0])  # (-pi, pi]
    width = 2.0 * np.pi / bins
    return np.floor((theta + width / 2.0) / width).astype(np.int64) % bins


def biwoof_features(flow, strain=None, grid=(5, 5), bins: int = 8) -> np.ndarray:
    """Bi-WOOF of one onset -> apex flow field.

    Args:
        flow: (H, W, 2) flow, pixels (u right, v down).
        strain: (H, W) optical strain magnitude; None computes it from `flow`.
        grid: blocks, n (n x n) or (rows, columns).
        bins: orientation bins.

    Returns:
        (rows * columns * bins,) float32: block by block (row-major), the block's mean optical
        strain times its magnitude-weighted orientation histogram (sum of the magnitudes in each
        bin / the block's pixel count).
    """
    rows, cols = check_grid(grid)
    bins = _check_bins(bins)
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise MieInputError(f"A flow field must be (height, width, 2); got {flow.shape}.")
    h, w = flow.shape[:2]
    if h < rows or w < cols:
        raise MieInputError(f"A {rows} x {cols} grid needs a flow field of at least that many pixels; got {w} x {h}.")
    strain = optical_strain(flow) if strain is None else np.asarray(strain, np.float32)
    if strain.shape != (h, w):
        raise MieInputError(f"strain must be (height, width) = {(h, w)} like the flow; got {strain.shape}.")
    if not (np.isfinite(flow).all() and np.isfinite(strain).all()):
        raise MieInputError("The flow or strain holds NaN or infinite values.")
    by = np.searchsorted(block_edges(h, rows), np.arange(h), side="right") - 1
    bx = np.searchsorted(block_edges(w, cols), np.arange(w), side="right") - 1
    block = by[:, None] * cols + bx[None, :]  # (H, W)
    pixels = np.bincount(block.ravel(), minlength=rows * cols).astype(np.float64)
    magnitude = np.hypot(flow[..., 0], flow[..., 1]).astype(np.float64)
    local = np.bincount(
        (block * bins + orientation_bins(flow, bins)).ravel(), weights=magnitude.ravel(), minlength=rows * cols * bins
    ).reshape(rows * cols, bins) / pixels[:, None]
    global_weight = np.bincount(block.ravel(), weights=strain.astype(np.float64).ravel(), minlength=rows * cols) / pixels
    return (local * global_weight[:, None]).astype(np.float32).ravel()


def biwoof(
    onset,
    apex,
    grid=(5, 5),
    bins: int = 8,
    settings: dict | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Bi-WOOF features of a clip from its grey onset and apex face crops ((H, W) uint8 each):
    `onset_apex_flow` then `biwoof_features`. Returns (rows * columns * bins,) float32."""
    motion = onset_apex_flow(onset, apex, settings=settings, cache_dir=cache_dir)
    return biwoof_features(motion.flow, motion.strain, grid=grid, bins=bins)


__all__ = [
    "FLOW_CACHE_VERSION",
    "TVL1_SETTINGS",
    "OnsetApexFlow",
    "biwoof",
    "biwoof_features",
    "flow_cache_key",
    "onset_apex_flow",
    "optical_strain",
    "orientation_bins",
    "save_array_atomically",
    "tvl1_flow",
    "tvl1_settings",
]
