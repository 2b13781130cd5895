"""The baselines' features (modeling_mie.baselines): LBP-TOP codes and histograms checked by hand."""

from __future__ import annotations

import cv2
import numpy as np

from modeling_mie.baselines import (
    lbp_codes,
    lbp_top,
    lbp_top_size,
    plane_offsets,
    uniform_lbp_table,
)

# Every uniform 8-bit code (at most two 0/1 transitions around the circle), in increasing order:
# bins 0 .. 57; every other code is bin 58.
UNIFORM_8 = [
    0, 1, 2, 3, 4, 6, 7, 8, 12, 14, 15, 16, 24, 28, 30, 31, 32, 48, 56, 60, 62, 63, 64, 96, 112, 120,
    124, 126, 127, 128, 129, 131, 135, 143, 159, 191, 192, 193, 195, 199, 207, 223, 224, 225, 227,
    231, 239, 240, 241, 243, 247, 248, 249, 251, 252, 253, 254, 255,
]


def _texture(size: int, seed: int = 0, sigma: float = 2.0, pad: int = 0) -> np.ndarray:
    """A smooth random grey texture, (size + 2 pad)^2 uint8, full contrast."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (size + 2 * pad, size + 2 * pad)).astype(np.float32), (0, 0), sigma)
    return cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)

# ------------------------------------------------------------------------------------ LBP-TOP
def test_uniform_table_has_58_uniform_codes_in_code_order_and_one_shared_bin():
    table = uniform_lbp_table(8)
    assert table.shape == (256,)
    assert [code for code in range(256) if table[code] < 58] == UNIFORM_8
    np.testing.assert_array_equal(table[UNIFORM_8], np.arange(58))
    # 0b00000101: bits 0 and 2 set, four transitions -> the non-uniform bin
    assert table[5] == 58 and table[0b01010101] == 58
    assert (table == 58).sum() == 256 - 58
    assert uniform_lbp_table(4).max() == 4 * 3 + 2  # P (P - 1) + 3 bins for any P


def test_lbp_code_of_a_hand_checked_patch():
    # Neighbour p sits at dx = -sin(2 pi p / 8), dy = cos(2 pi p / 8) (y down): p0 below, p1
    # below-left, p2 left, p3 above-left, p4 above, p5 above-right, p6 right, p7 below-right.
    # The diagonals are bilinear: with a = sin(45 deg) = 0.7071, a sample mixes the centre, the two
    # axis neighbours and the corner with weights (1-a)^2 = 0.0858, a(1-a) = 0.2071 each, a^2 = 0.5.
    #
    #     10 20 30        p0 below        60 >= 50                                   -> 1
    #     80 50 40        p1 below-left   .0858*50 + .2071*(80 + 60) + .5*70 = 68.3   -> 1
    #     70 60 90        p2 left         80                                         -> 1
    #                     p3 above-left   .0858*50 + .2071*(80 + 20) + .5*10 = 30.0   -> 0
    #                     p4 above        20                                         -> 0
    #                     p5 above-right  .0858*50 + .2071*(20 + 40) + .5*30 = 31.7   -> 0
    #                     p6 right        40                                         -> 0
    #                     p7 below-right  .0858*50 + .2071*(40 + 60) + .5*90 = 70.0   -> 1
    #
    # code = 2^0 + 2^1 + 2^2 + 2^7 = 135: bits 1110 0001 around the circle, two transitions, so
    # uniform; it is the 33rd uniform code (UNIFORM_8), histogram bin 32.
    patch = np.array([[10, 20, 30], [80, 50, 40], [70, 60, 90]], np.uint8)
    volume = np.stack([patch] * 3)  # (3, 3, 3): one centre voxel
    codes = lbp_codes(volume, "xy")
    assert codes.shape == (1, 1, 1)
    assert int(codes[0, 0, 0]) == 135
    assert uniform_lbp_table(8)[135] == 32
    feature = lbp_top(volume, grid=1)  # one block: XY, XT, YT histograms of 59 bins
    xy = feature[:59]
    assert xy[32] == 1.0 and xy.sum() == 1.0


def test_lbp_top_histograms_are_per_block_and_normalised():
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 256, (5, 40, 40)).astype(np.uint8)
    volume[:, :, :21] = 77  # flat: every comparison a tie, all bits 1, code 255
    feature = lbp_top(volume, grid=(1, 2))
    assert feature.shape == (lbp_top_size(8, (1, 2)),) == (2 * 3 * 59,)
    blocks = feature.reshape(2, 3, 59)  # (block, plane, bin)
    np.testing.assert_allclose(blocks.sum(axis=2), 1.0, atol=1e-6)
    # block 0 (centres x = 1..19, neighbours up to x = 20, all flat) holds code 255 = bin 57 only
    np.testing.assert_array_equal(blocks[0, :, 57], 1.0)
    assert blocks[1].max() < 0.5  # the random block is spread over the bins
    assert lbp_top(volume, grid=5).shape == (25 * 3 * 59,)


def test_xt_and_yt_codes_of_a_ramp_moving_right():
    # V = 3 x - y - 6 t: a ramp (brighter to the right, darker downward) moving right by 2 px per
    # frame (3 (x - 2 t) - y). Bilinear sampling is exact on a linear volume, so neighbour p minus
    # the centre is 3 dx - dy - 6 dt, with the offsets of `plane_offsets` (s = sin, c = cos of 45 p deg):
    #   XY: dx = -s, dy = c   ->  -3 s - c : p0..p7 = -1, -2.8, -3, -1.4, 1, 2.8, 3, 1.4
    #       bits 0000 1111 -> 16 + 32 + 64 + 128 = 240
    #   XT: dx = -s, dt = -c  ->  -3 s + 6 c: 6, 2.1, -3, -6.4, -6, -2.1, 3, 6.4
    #       bits 1100 0011 -> 1 + 2 + 64 + 128 = 195
    #   YT: dy = -s, dt = -c  ->   s + 6 c  : 6, 4.9, 1, -3.5, -6, -4.9, -1, 3.5
    #       bits 1110 0001 -> 1 + 2 + 4 + 128 = 135
    # No difference is zero, so no tie decides a bit.
    t, y, x = np.mgrid[0:5, 0:9, 0:11].astype(np.float64)
    moving = 3 * x - y - 6 * t + 100
    for plane, expected in (("xy", 240), ("xt", 195), ("yt", 135)):
        codes = lbp_codes(moving, plane)
        assert codes.shape == (3, 7, 9)
        assert set(np.unique(codes).tolist()) == {expected}, plane
    # the same ramp moving left (+6 t): XT -3 s - 6 c = -6, -6.4, -3, 2.1, 6, 6.4, 3, -2.1 -> 0001 1110 = 120
    assert set(np.unique(lbp_codes(3 * x - y + 6 * t + 100, "xt")).tolist()) == {120}


def test_xt_of_horizontal_motion_is_yt_of_the_same_motion_turned_vertical():
    # texture moving right 1 px per frame; its transpose moves down: XT and YT swap exactly
    image = _texture(40, seed=3)
    volume = np.stack([np.roll(image, k, axis=1) for k in range(6)])
    turned = volume.transpose(0, 2, 1)
    a = lbp_top(volume, grid=1).reshape(3, 59)
    b = lbp_top(turned, grid=1).reshape(3, 59)
    np.testing.assert_array_equal(a[1], b[2])
    np.testing.assert_array_equal(a[2], b[1])
    assert np.abs(a[1] - a[2]).sum() > 0.2  # horizontal motion: XT and YT differ
    offsets = plane_offsets("xt", 8)
    np.testing.assert_array_equal(offsets[[0, 2, 4, 6]], [[-1, 0, 0], [0, 0, -1], [1, 0, 0], [0, 0, 1]])
