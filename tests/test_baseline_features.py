"""The baselines' features (modeling_mie.baselines): LBP-TOP codes and histograms checked by hand,
TV-L1 flow of known motions, optical strain against its analytic value, Bi-WOOF's block and bin,
the flow cache, the linear SVM on separable data, the face-crop input and its errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from modeling_mie import MieInputError
from modeling_mie.baselines import (
    LinearSVM,
    biwoof,
    biwoof_features,
    flow_cache_key,
    grey_face_volume,
    lbp_codes,
    lbp_top,
    lbp_top_size,
    onset_apex_flow,
    optical_strain,
    plane_offsets,
    tvl1_flow,
    uniform_lbp_table,
)
from modeling_mie.baselines import flowfeatures

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


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` with what was at x moved to x + flow (flow smooth and small)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    return cv2.remap(image, xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_CUBIC)


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


# ------------------------------------------------------------------------------ flow and strain
@pytest.fixture(scope="module")
def shifted_pair():
    """A 128 x 128 texture and the same texture moved 2 px right and 1 px down."""
    big = _texture(128, seed=0, pad=16)
    onset = big[16:144, 16:144]
    apex = big[15:143, 14:142]  # apex(x, y) = onset(x - 2, y - 1)
    return onset, apex


def test_tvl1_recovers_a_known_shift(shifted_pair):
    flow = tvl1_flow(*shifted_pair)
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8]
    np.testing.assert_allclose(np.median(inner.reshape(-1, 2), axis=0), [2.0, 1.0], atol=0.05)
    error = np.hypot(inner[..., 0] - 2.0, inner[..., 1] - 1.0)
    assert np.percentile(error, 95) < 0.2


def test_optical_strain_of_analytic_fields():
    y, x = np.mgrid[0:40, 0:50].astype(np.float64)
    k, m, s, w = 0.03, -0.02, 0.05, 0.04
    cases = {
        "translation": (np.full_like(x, 2.0), np.full_like(x, -1.0), 0.0),
        "stretch": (k * x, m * y, np.hypot(k, m)),  # eps_xx = k, eps_yy = m
        "shear": (s * y, 0 * x, s / np.sqrt(2)),  # eps_xy = eps_yx = s / 2
        "rotation": (-w * y, w * x, 0.0),  # antisymmetric gradient: no strain
    }
    for name, (u, v, expected) in cases.items():
        strain = optical_strain(np.stack([u, v], axis=-1))
        np.testing.assert_allclose(strain, expected, atol=1e-6, err_msg=name)


def test_optical_strain_of_tvl1_flow_translation_and_stretch(shifted_pair):
    translation = optical_strain(tvl1_flow(*shifted_pair))[8:-8, 8:-8]
    assert np.median(translation) < 0.005
    onset = shifted_pair[0]
    k, cx = 0.04, 63.5
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    stretched = cv2.remap(onset, (cx + (xx - cx) / (1 + k)).astype(np.float32), yy, cv2.INTER_CUBIC)
    flow = tvl1_flow(onset, stretched)  # u = k (x - cx): strain k everywhere
    strain = optical_strain(flow)[16:-16, 16:-16]
    assert np.median(strain) == pytest.approx(k, rel=0.15)
    assert np.mean(strain) == pytest.approx(k, rel=0.15)


# -------------------------------------------------------------------------------------- Bi-WOOF
def test_biwoof_weight_sits_in_the_moving_block_and_its_direction_bin():
    # 100 x 100 field, 5 x 5 blocks of 20 px: motion down-left (u = -1, v = +1, angle 135 deg in
    # image coordinates = bin 3 of 8) in block (row 1, column 3) only
    flow = np.zeros((100, 100, 2), np.float32)
    flow[20:40, 60:80] = [-1.0, 1.0]
    feature = biwoof_features(flow, grid=5, bins=8).reshape(25, 8)
    assert np.count_nonzero(feature) == 1
    assert feature[1 * 5 + 3, 3] > 0
    # local weight x global weight: the mean magnitude (sqrt 2) times the block's mean strain
    strain = optical_strain(flow)
    assert feature[8, 3] == pytest.approx(np.sqrt(2) * strain[20:40, 60:80].mean(), rel=1e-5)


def test_biwoof_of_tvl1_flow_finds_a_local_movement():
    onset = _texture(128, seed=5)
    # a smooth 2 px bump moving down-left, centred in block (row 2, column 3) of a 5 x 5 grid
    # (rows 51-76, columns 76-102)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    bump = np.exp(-((xx - 89) ** 2 + (yy - 63) ** 2) / (2 * 4.0**2))
    move = np.stack([-1.5 * bump, 1.5 * bump], axis=-1)
    apex = _warp(onset, move)
    feature = biwoof(onset, apex, grid=5, bins=8).reshape(25, 8)
    totals = feature.sum(axis=1)
    assert int(np.argmax(totals)) == 2 * 5 + 3
    assert totals[13] > 0.6 * totals.sum()
    assert int(np.argmax(feature[13])) == 3 and feature[13, 3] > 0.5 * totals[13]


def test_flow_cache_computes_each_pair_once(tmp_path, shifted_pair, monkeypatch):
    onset, apex = shifted_pair
    first = onset_apex_flow(onset, apex, cache_dir=tmp_path)
    assert not first.from_cache
    assert [p.name for p in tmp_path.iterdir()] == [f"{first.key}.npy"]

    def no_flow(*args, **kwargs):
        raise AssertionError("TV-L1 ran although the flow was cached")

    monkeypatch.setattr(flowfeatures, "tvl1_flow", no_flow)
    second = onset_apex_flow(onset, apex, cache_dir=tmp_path)
    assert second.from_cache and second.key == first.key
    np.testing.assert_array_equal(second.flow, first.flow)
    np.testing.assert_array_equal(second.strain, first.strain)
    # other frames or other settings are other keys; an unknown setting is refused
    assert flow_cache_key(onset, apex, {"Lambda": 0.3}) != first.key
    assert flow_cache_key(apex, onset) != first.key
    with pytest.raises(MieInputError, match="Unknown TV-L1 setting 'lambda'"):
        flow_cache_key(onset, apex, {"lambda": 0.3})
    # a damaged file is computed again and replaced
    monkeypatch.undo()
    (tmp_path / f"{first.key}.npy").write_bytes(b"not a numpy file")
    third = onset_apex_flow(onset, apex, cache_dir=tmp_path)
    assert not third.from_cache
    np.testing.assert_allclose(np.load(tmp_path / f"{first.key}.npy"), first.flow, atol=1e-5)


# -------------------------------------------------------------------------------------- the SVM
def test_linear_svm_learns_separable_rows_and_standardises_on_training_rows_only():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 40)) * 3
    labels = np.repeat(np.arange(3), 20)
    rows = centres[labels] + rng.normal(0, 1, (60, 40))
    rows[:, 0] *= 1000.0  # one feature on another scale: standardisation must tame it
    train, test = np.arange(60) % 3 != 0, np.arange(60) % 3 == 0
    svm = LinearSVM(class_weight="balanced").fit(rows[train], labels[train])
    accuracy = (svm.predict(rows[test]) == labels[test]).mean()
    assert accuracy >= 0.9  # chance is 1/3
    scaler = svm.pipeline[0]
    np.testing.assert_allclose(scaler.mean_, rows[train].mean(axis=0))
    assert svm.decision_function(rows[test]).shape == (int(test.sum()), 3)
    with pytest.raises(MieInputError, match="40 features"):
        svm.predict(rows[test][:, :10])
    with pytest.raises(MieInputError, match="at least two classes"):
        LinearSVM().fit(rows[:5], np.zeros(5, int))
    bad = rows.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MieInputError, match="NaN"):
        LinearSVM().fit(bad, labels)


# ------------------------------------------------------------------------------ inputs and errors
def test_grey_face_volume_from_arrays_and_paths(tmp_path):
    frames = np.zeros((5, 60, 80, 3), np.uint8)
    frames[:, 10:50, 20:60] = (255, 0, 0)  # a red face box: grey 0.299 * 255 = 76 (blue would be 29)
    frames[3, 10:30, 20:60] = (255, 255, 255)  # the apex frame's upper half is white
    box = (20, 10, 60, 50)
    clip = grey_face_volume(frames, 1, 3, 4, face_box=box, size=32)
    assert clip.volume.shape == (4, 32, 32) and clip.volume.dtype == np.uint8
    np.testing.assert_array_equal(clip.frame_indices, [1, 2, 3, 4])
    assert clip.apex == 2
    assert abs(int(np.median(clip.volume[0])) - 76) <= 1
    assert clip.volume[clip.apex, :14].min() >= 250 and abs(int(clip.volume[clip.apex, 18:].mean()) - 76) <= 1
    # the same clip as image files (OpenCV reads BGR): the same crops
    paths = []
    for i, frame in enumerate(frames):
        paths.append(str(tmp_path / f"img{i}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    pair = grey_face_volume(paths, 1, 3, face_box=box, size=32, span="onset_apex")
    np.testing.assert_array_equal(pair.frame_indices, [1, 3])
    assert pair.apex == 1
    np.testing.assert_array_equal(pair.volume, clip.volume[[0, 2]])
    # landmarks: dlib 17 / 26 are the brow ends, 18 / 25 the brow tops, 8 the chin
    dlib68 = np.full((68, 2), 40.0)
    dlib68[17], dlib68[26], dlib68[18], dlib68[25], dlib68[8] = (20, 30), (60, 30), (25, 12), (55, 10), (40, 50)
    by_landmarks = grey_face_volume(frames, 1, 3, 4, landmarks=dlib68, size=32)
    np.testing.assert_array_equal(by_landmarks.face_box, box)


def test_bad_input_is_a_mie_input_error_that_says_what_is_wrong():
    frames = np.full((5, 60, 80), 100, np.uint8)
    box = (20, 10, 60, 50)
    with pytest.raises(MieInputError, match="1 frame"):
        grey_face_volume(frames[:1], 0, 0, face_box=box)
    with pytest.raises(MieInputError, match="apex_index 7 is outside the clip, which has 5 frames"):
        grey_face_volume(frames, 0, 7, face_box=box)
    with pytest.raises(MieInputError, match="onset <= apex <= offset"):
        grey_face_volume(frames, 3, 1, face_box=box)
    with pytest.raises(MieInputError, match="apex is the onset frame"):
        grey_face_volume(frames, 2, 2, face_box=box, span="onset_apex")
    with pytest.raises(MieInputError, match="empty or smaller than 8 x 8"):
        grey_face_volume(frames, 0, 2, face_box=(30, 10, 30, 50))
    with pytest.raises(MieInputError, match="crop would be empty"):
        grey_face_volume(frames, 0, 2, face_box=(200, 150, 260, 210))
    with pytest.raises(MieInputError, match="either a face box"):
        grey_face_volume(frames, 0, 2)
    with pytest.raises(MieInputError, match="at least 3 frames"):
        lbp_top(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(MieInputError, match="at least 9 frames"):
        lbp_top(np.zeros((8, 32, 32), np.uint8), time_radius=4)
    with pytest.raises(MieInputError, match="too fine"):
        lbp_top(np.zeros((3, 12, 12), np.uint8), grid=11)
    with pytest.raises(MieInputError, match="grey volume"):
        lbp_top(np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(MieInputError, match="same size"):
        tvl1_flow(np.zeros((32, 32), np.uint8), np.zeros((32, 40), np.uint8))
    with pytest.raises(MieInputError, match="uint8"):
        tvl1_flow(np.zeros((32, 32)), np.zeros((32, 32)))
