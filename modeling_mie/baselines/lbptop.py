"""LBP-TOP: uniform local binary patterns on three orthogonal planes of a face volume, per block.

Zhao & Pietikäinen, "Dynamic texture recognition using local binary patterns with an application
to facial expressions" (TPAMI 2007), as the MEGC 2019 baseline used it on micro-expression clips:
a grey face-crop volume (T, H, W) is described, at every voxel whose neighbours all lie inside the
volume, by three LBP codes: one in the XY plane (appearance), one in XT (horizontal motion) and
one in YT (vertical motion). The codes of each plane are counted per block of a spatial (and
optionally temporal) grid into uniform-pattern histograms, which are concatenated.

What the paper fixes:
    - the sampling points of each plane (LBP-TOP_{P_XY, P_XT, P_YT, R_X, R_Y, R_T}): P points on
      a circle (XY) or an ellipse (XT: radii R_X, R_T; YT: R_Y, R_T) around the centre, the p-th
      at angle 2*pi*p/P (offsets in `plane_offsets`);
    - the binary code: bit p is set when the p-th sample is >= the centre (Ojala et al. 2002);
    - uniform patterns: codes with at most two 0/1 transitions around the circle each get a bin,
      all others share one (59 bins for P = 8);
    - the feature: per block, the three planes' histograms concatenated, blocks concatenated.

What we chose where the paper leaves it open:
    - sampling points off the pixel grid are bilinearly interpolated, as in Ojala et al.'s
      circular LBP; offsets within 1e-9 of an integer are snapped to it, so P = 8, R = 1 reads
      the four axis neighbours exactly and interpolates only the diagonals. The comparison is made
      on the difference to the centre (sum of weights x (neighbour - centre)), so a flat area
      compares as exactly equal (bit 1) whatever the rounding of the weights;
    - codes are computed once over the whole volume at every voxel at least ceil(R) from each
      border (per axis), then assigned to the block that holds the voxel; block edges split the
      full extent with integer floors (`block_edges`), so border voxels without a code only thin
      the outer blocks;
    - each block's histogram of each plane is divided by its count (sums to 1): blocks and clips
      of different sizes and lengths give comparable features;
    - uniform bins are ordered by increasing code value, the shared non-uniform bin last;
    - the time radius is not shrunk for short clips: a volume needs at least 2 * ceil(R_T) + 1
      frames, and a shorter one is refused with `MieInputError` (a smaller `time_radius` is the
      caller's decision, not a silent one). Micro-expression clips at 100-200 fps span tens of
      frames from onset to offset, so R_T = 1 compares frames 5-10 ms apart; larger R_T reaches
      further in time.

Defaults: P = 8 in every plane, R_X = R_Y = R_T = 1, a 5 x 5 spatial grid and one temporal block:
25 blocks x 3 planes x 59 bins = 4425 values.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import MieInputError

PLANES = ("xy", "xt", "yt")
#: Offsets closer than this to an integer are read from that pixel without interpolation.
_SNAP = 1e-9


def _check_neighbors(neighbors) -> tuple[int, int, int]:
    values = (neighbors,) * 3 if np.isscalar(neighbors) else tuple(neighbors)
    if len(values) != 3:
        raise MieInputError(f"neighbors must be one count or three (XY, XT, YT); got {neighbors!r}.")
    out = []
    for p in values:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 3 <= p <= 16:
            raise MieInputError(f"The number of LBP neighbours must be an integer from 3 to 16; got {p!r}.")
        out.append(int(p))
    return tuple(out)


def _check_radius(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise MieInputError(f"{name} must be a positive number of pixels (frames for time); got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise MieInputError(f"{name} must be a positive number of pixels (frames for time); got {value!r}.")
    return float(value)


def check_grid(grid, name: str = "grid") -> tuple[int, int]:
    """`grid` as (rows, columns) of blocks; an int n means n x n."""
    values = (grid, grid) if np.isscalar(grid) else tuple(grid)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise MieInputError(f"{name} must be a positive integer or (rows, columns) of them; got {grid!r}.")
    return int(values[0]), int(values[1])


def _check_time_blocks(time_blocks) -> int:
    if isinstance(time_blocks, bool) or not isinstance(time_blocks, (int, np.integer)) or time_blocks < 1:
        raise MieInputError(f"time_blocks must be a positive integer; got {time_blocks!r}.")
    return int(time_blocks)


def block_edges(length: int, blocks: int) -> np.ndarray:
    """(blocks + 1,) int edges splitting 0..length into `blocks` parts that differ by at most one."""
    return (np.arange(blocks + 1) * int(length)) // int(blocks)


@lru_cache(maxsize=None)
def uniform_lbp_table(neighbors: int = 8) -> np.ndarray:
    """(2 ** P,) int16: the histogram bin of every P-bit code.

    Uniform codes (at most two 0/1 transitions around the circle, P * (P - 1) + 2 of them) get
    bins 0, 1, ... in increasing code order; every other code gets the last bin, P * (P - 1) + 2.
    For P = 8: 58 uniform codes, 59 bins.
    """
    p = _check_neighbors(neighbors)[0]
    codes = np.arange(1 << p)
    rotated = ((codes >> 1) | ((codes & 1) << (p - 1)))  # the circle's next bit under each bit
    transitions = np.array([bin(v).count("1") for v in (codes ^ rotated).tolist()])
    table = np.full(1 << p, p * (p - 1) + 2, np.int16)
    uniform = transitions <= 2
    table[uniform] = np.arange(int(uniform.sum()))
    table.flags.writeable = False  # shared by every caller (lru_cache)
    return table


def num_bins(neighbors: int = 8) -> int:
    """Histogram bins of uniform LBP with P neighbours: P * (P - 1) + 3 (59 for P = 8)."""
    p = _check_neighbors(neighbors)[0]
    return p * (p - 1) + 3


def plane_offsets(plane: str, neighbors: int = 8, radius: float = 1.0, time_radius: float = 1.0) -> np.ndarray:
    """(P, 3) float (dt, dy, dx) offsets of the sampling points of `plane`, in the order of the
    code's bits (bit p is neighbour p). x is the column (to the right), y the row (down), t the
    frame (later). With theta_p = 2 * pi * p / P (Zhao & Pietikäinen 2007, section 3):

        XY: dx = -R_X sin(theta_p), dy =  R_Y cos(theta_p)
        XT: dx = -R_X sin(theta_p), dt = -R_T cos(theta_p)
        YT: dy = -R_Y sin(theta_p), dt = -R_T cos(theta_p)

    Swapping x and y in a volume therefore turns its XT codes into YT codes exactly.
    """
    if plane not in PLANES:
        raise MieInputError(f"plane must be one of {', '.join(PLANES)}; got {plane!r}.")
    p = _check_neighbors(neighbors)[0]
    theta = 2.0 * np.pi * np.arange(p) / p
    sin, cos = np.sin(theta), np.cos(theta)
    out = np.zeros((p, 3))
    if plane == "xy":
        out[:, 2], out[:, 1] = -radius * sin, radius * cos
    elif plane == "xt":
        out[:, 2], out[:, 0] = -radius * sin, -time_radius * cos
    else:
        out[:, 1], out[:, 0] = -radius * sin, -time_radius * cos
    snapped = np.round(out)
    close = np.abs(out - snapped) < _SNAP
    out[close] = snapped[close]
    return out + 0.0  # -0.0 -> 0.0


def _margins(radius: float, time_radius: float) -> tuple[int, int, int]:
    """(t, y, x) voxels at each border that have no code: every plane shares the same centres."""
    space = math.ceil(radius - _SNAP)
    return math.ceil(time_radius - _SNAP), space, space


def _as_volume(volume) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise MieInputError(
            f"LBP-TOP needs a grey volume (frames, height, width); got an array of shape {volume.shape}. "
            "Convert colour frames to grey first (see modeling_mie.baselines.grey_face_volume)."
        )
    if not (np.issubdtype(volume.dtype, np.integer) or np.issubdtype(volume.dtype, np.floating)):
        raise MieInputError(f"The volume must hold numbers (uint8 grey levels); got dtype {volume.dtype}.")
    if np.issubdtype(volume.dtype, np.floating) and not np.isfinite(volume).all():
        raise MieInputError("The volume holds NaN or infinite values; pass finite grey levels.")
    return volume


def _check_size(volume: np.ndarray, margins: tuple[int, int, int], time_radius: float, radius: float) -> None:
    t, h, w = volume.shape
    mt, my, mx = margins
    if t < 2 * mt + 1:
        raise MieInputError(
            f"LBP-TOP with time radius {time_radius:g} needs at least {2 * mt + 1} frames (each centre frame "
            f"with {mt} before and after); the volume has {t}. Give the clip from onset to offset, or a "
            "smaller time_radius."
        )
    if min(h, w) < 2 * max(my, mx) + 1:
        raise MieInputError(
            f"LBP-TOP with radius {radius:g} needs frames of at least {2 * my + 1} x {2 * mx + 1} pixels; "
            f"the volume's are {w} x {h}. Crop a larger face."
        )


def _plane_codes(volume: np.ndarray, offsets: np.ndarray, margins: tuple[int, int, int]) -> np.ndarray:
    """(T', H', W') uint32 codes at the centres (the volume without `margins` at each border)."""
    t, h, w = volume.shape
    mt, my, mx = margins
    # a view of the volume shifted by (st, sy, sx) over the centres
    def shifted(st: int, sy: int, sx: int) -> np.ndarray:
        return volume[mt + st : t - mt + st, my + sy : h - my + sy, mx + sx : w - mx + sx]

    centre = shifted(0, 0, 0).astype(np.float32)
    codes = np.zeros(centre.shape, np.uint32)
    diff = np.empty_like(centre)
    for bit, offset in enumerate(offsets):
        # bilinear (trilinear in general) weights: one or two pixels per axis
        terms = [((0, 0, 0), 1.0)]
        for axis, d in enumerate(offset):
            low = math.floor(d)
            frac = d - low
            split = [(low, 1.0 - frac), (low + 1, frac)] if frac > _SNAP else [(low, 1.0)]
            terms = [
                (tuple(s + (k if a == axis else 0) for a, s in enumerate(shift)), weight * wk)
                for shift, weight in terms
                for k, wk in split
                if wk > _SNAP
            ]
        # the difference to the centre, as the weighted sum of each pixel's difference: exact
        # zero on flat areas, where the weights' rounding would otherwise decide the bit
        diff.fill(0.0)
        for shift, weight in terms:
            diff += np.float32(weight) * (shifted(*shift).astype(np.float32) - centre)
        codes |= (diff >= 0).astype(np.uint32) << np.uint32(bit)
    return codes


def lbp_codes(volume, plane: str, neighbors: int = 8, radius: float = 1.0, time_radius: float = 1.0) -> np.ndarray:
    """LBP codes of one plane at every centre voxel of `volume`.

    Args:
        volume: (T, H, W) grey levels (uint8 or float).
        plane: "xy", "xt" or "yt".
        neighbors: P, the sampling points on the circle / ellipse.
        radius: R_X = R_Y, pixels.
        time_radius: R_T, frames.

    Returns:
        (T - 2 mt, H - 2 my, W - 2 mx) uint32 codes, with m = ceil(R) per axis (`_margins`): code
        [i, j, k] belongs to voxel (mt + i, my + j, mx + k).
    """
    radius = _check_radius("radius", radius)
    time_radius = _check_radius("time_radius", time_radius)
    volume = _as_volume(volume)
    margins = _margins(radius, time_radius)
    _check_size(volume, margins, time_radius, radius)
    return _plane_codes(volume, plane_offsets(plane, neighbors, radius, time_radius), margins)


def lbp_top(
    volume,
    neighbors=8,
    radius: float = 1.0,
    time_radius: float = 1.0,
    grid=(5, 5),
    time_blocks: int = 1,
) -> np.ndarray:
    """The LBP-TOP feature of a grey face volume.

    Args:
        volume: (T, H, W) grey levels, uint8 (or float); T >= 2 * ceil(time_radius) + 1.
        neighbors: P for all planes, or (P_XY, P_XT, P_YT); 3 to 16.
        radius: R_X = R_Y in pixels.
        time_radius: R_T in frames.
        grid: spatial blocks, n (n x n) or (rows, columns).
        time_blocks: temporal blocks.

    Returns:
        (time_blocks * rows * columns * sum of the planes' bins,) float32: for each block, in
        (t, row, column) order, the XY, XT and YT uniform histograms (`num_bins` each), each
        summing to 1.

    Raises:
        MieInputError: a volume that is not 3-D, too short for `time_radius`, too small for
            `radius`, or with a block that holds no code (a grid too fine for the volume).
    """
    counts = _check_neighbors(neighbors)
    radius = _check_radius("radius", radius)
    time_radius = _check_radius("time_radius", time_radius)
    rows, cols = check_grid(grid)
    time_blocks = _check_time_blocks(time_blocks)
    volume = _as_volume(volume)
    margins = _margins(radius, time_radius)
    _check_size(volume, margins, time_radius, radius)
    t, h, w = volume.shape
    mt, my, mx = margins

    # block of every centre: searchsorted on the edges of the full extent
    def block_of(length: int, blocks: int, margin: int) -> np.ndarray:
        centres = np.arange(margin, length - margin)
        return np.searchsorted(block_edges(length, blocks), centres, side="right") - 1

    bt, by, bx = block_of(t, time_blocks, mt), block_of(h, rows, my), block_of(w, cols, mx)
    num_blocks = time_blocks * rows * cols
    block = (bt[:, None, None] * rows + by[None, :, None]) * cols + bx[None, None, :]  # (T', H', W')
    per_block = np.bincount(block.ravel(), minlength=num_blocks)
    if (per_block == 0).any():
        raise MieInputError(
            f"A {time_blocks} x {rows} x {cols} block grid is too fine for a {t} x {h} x {w} volume with "
            f"radii ({radius:g}, {time_radius:g}): some blocks hold no LBP code. Use fewer blocks or a larger crop."
        )
    parts = []
    for plane, p in zip(PLANES, counts):
        codes = _plane_codes(volume, plane_offsets(plane, p, radius, time_radius), margins)
        bins = num_bins(p)
        index = block * bins + uniform_lbp_table(p)[codes]
        hist = np.bincount(index.ravel(), minlength=num_blocks * bins).reshape(num_blocks, bins)
        parts.append(hist / per_block[:, None])
    return np.concatenate(parts, axis=1).astype(np.float32).ravel()


def lbp_top_size(neighbors=8, grid=(5, 5), time_blocks: int = 1) -> int:
    """Length of the `lbp_top` vector for these settings."""
    rows, cols = check_grid(grid)
    return _check_time_blocks(time_blocks) * rows * cols * sum(num_bins(p) for p in _check_neighbors(neighbors))


__all__ = [
    "PLANES",
    "block_edges",
    "lbp_codes",
    "lbp_top",
    "lbp_top_size",
    "num_bins",
    "plane_offsets",
    "uniform_lbp_table",
]
