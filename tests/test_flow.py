"""The motion input (config `input_mode="flow"`): DIS optical flow of the aligned face canvas,
known displacements recovered, residual head motion removed, amplitude divided out, and what
the processor and the model make of it on synthetic and real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification, MieProcessor
from modeling_mie.flow import (
    CODE_SCALE,
    PEAK_FLOOR,
    ZERO_CODE,
    FaceFlow,
    decode_flow,
    encode_flow,
    flow_peak,
    reference_to_canvas,
)
from modeling_mie.regions import region_boxes_from_face_box

CANVAS = (240, 280)


def _bump(shape, cx, cy, sigma, dx, dy):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma))
    return np.stack([dx * g, dy * g], axis=-1)


def _moved(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` with what was at x moved to x + flow (flow smooth and small)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    return cv2.remap(image, xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def face_canvas(astronaut) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(astronaut[45:235, 130:320]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, CANVAS, interpolation=cv2.INTER_CUBIC)


def _canvas_flow(rigid_point=None) -> FaceFlow:
    config = MieConfig.from_preset("flow")
    boxes = np.array([r["box"] for r in config.regions])
    return FaceFlow(CANVAS, np.array([[1.0, 0, 0], [0, 1.0, 0]]), boxes, config.region_crop_sizes, rigid_point, "rgb")


def test_the_canvas_map_is_the_one_the_boxes_were_made_with():
    config = MieConfig()
    face_box = np.array([150.0, 90.0, 410.0, 400.0])
    frame_boxes = region_boxes_from_face_box(face_box, config.regions, config.canvas_size)
    to_canvas = reference_to_canvas(frame_boxes, np.array([r["box"] for r in config.regions]))
    assert to_canvas[0, 0] == pytest.approx(to_canvas[1, 1])  # one scale: the face box is "contained"
    corners = np.c_[frame_boxes[:, :2], np.ones(len(frame_boxes))] @ to_canvas.T
    np.testing.assert_allclose(corners, [r["box"][:2] for r in config.regions], atol=1e-9)


def test_a_known_local_movement_is_recovered_and_the_head_shift_removed(face_canvas):
    # both mouth corners pulled and both brows raised by 1.5-1.8 px (a micro-expression's size on
    # this canvas), on a head that also shifted by (1.3, -0.7) px, with sensor noise; the nose
    # bridge patch at (120, 100) has only the shift
    truth = (
        _bump(face_canvas.shape, 92, 148, 12, 1.5, -1.0)
        + _bump(face_canvas.shape, 142, 148, 12, -1.5, -1.0)
        + _bump(face_canvas.shape, 88, 75, 12, 0.0, -1.5)
        + _bump(face_canvas.shape, 150, 75, 12, 0.0, -1.5)
    )
    shift = np.array([1.3, -0.7], np.float32)
    noise = np.random.default_rng(0).normal(0, 1.5, face_canvas.shape)
    frame = np.clip(_moved(face_canvas, truth + shift) + noise, 0, 255).astype(np.uint8)
    flow = _canvas_flow(rigid_point=np.array([120.0, 100.0]))
    assert np.abs(flow.field(face_canvas[..., None], None)).max() == 0  # the first frame is the reference
    field = flow.field(frame[..., None], None)
    moving = np.hypot(*truth.transpose(2, 0, 1)) > 0.5
    error = np.hypot(*(field - truth).transpose(2, 0, 1))
    assert error[moving].mean() < 0.35, error[moving].mean()
    assert error[~moving][20:-20].mean() < 0.45, error[~moving][20:-20].mean()  # the shift is gone
    plain = _canvas_flow().field(face_canvas[..., None], None)
    assert np.abs(plain).max() == 0
    unremoved = _canvas_flow()
    unremoved.field(face_canvas[..., None], None)
    still = np.median(unremoved.field(frame[..., None], None)[~moving].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(still, shift, atol=0.25)  # without the patch the shift stays


def test_the_crops_hold_each_regions_flow_and_magnitude(face_canvas):
    flow = _canvas_flow()
    field = np.zeros((CANVAS[1], CANVAS[0], 2), np.float32)
    field[..., 0], field[..., 1] = 3.0, -4.0
    crops = flow.crops(field)
    mask = flow.region_mask()
    assert crops.shape == (6, 3, *MieConfig.from_preset("flow").crop_size)
    for r in range(6):
        np.testing.assert_allclose(crops[r, 0][mask[r]], 3.0, atol=1e-5)
        np.testing.assert_allclose(crops[r, 2][mask[r]], 5.0, atol=1e-5)
        assert (crops[r][:, ~mask[r]] == 0).all()  # padding holds no flow


def test_amplitude_is_divided_out_and_the_codes_decode_back():
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1.0, (5, 6, 3, 8, 16)).astype(np.float32)
    raw[:, :, 2] = np.hypot(raw[:, :, 0], raw[:, :, 1])
    mask = np.ones((6, 8, 16), bool)
    present = np.ones(5, bool)
    peak = flow_peak(raw, present, mask)
    codes = encode_flow(raw, peak)
    assert codes.dtype == np.uint8
    decoded = decode_flow(codes.astype(np.float32) / 255)
    np.testing.assert_allclose(decoded, np.clip(raw / peak, -1, 1), atol=0.5 / CODE_SCALE + 1e-6)
    # the same movement twice as large: the same input
    double = encode_flow(2 * raw, flow_peak(2 * raw, present, mask))
    assert np.abs(double.astype(int) - codes.astype(int)).max() <= 1
    # a face that does not move is not blown up to full scale: noise stays small
    quiet = 0.01 * raw
    assert flow_peak(quiet, present, mask) < PEAK_FLOOR
    quiet_codes = encode_flow(quiet, flow_peak(quiet, present, mask))
    np.testing.assert_allclose(decode_flow(quiet_codes / 255.0), quiet / PEAK_FLOOR, atol=0.5 / CODE_SCALE + 1e-6)
    assert np.abs(quiet_codes.astype(int) - ZERO_CODE).max() < 0.25 * CODE_SCALE
    # frames without the face do not set the peak
    spiky = raw.copy()
    spiky[2] *= 100
    absent = present.copy()
    absent[2] = False
    assert flow_peak(spiky, absent, mask) == pytest.approx(flow_peak(np.delete(raw, 2, 0), present[:4], mask))


def test_flow_needs_three_channels_and_travels_with_the_processor(tmp_path):
    with pytest.raises(ValueError, match="num_channels=3"):
        MieConfig(input_mode="flow")
    config = MieConfig.from_preset("flow")
    assert config.input_mode == "flow" and config.num_channels == 3 and config.align
    processor = MieProcessor.from_config(config)
    assert processor.flow is True and MieProcessor.from_config(MieConfig.from_preset("fast")).flow is False
    config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert MieProcessor.from_pretrained(tmp_path).flow is True


# ------------------------------------------------------------------------------ synthetic faces
@pytest.fixture(scope="module")
def smiling_clip(landmarker_path):
    """A CASME II-like positive clip (AU12 family) of the head-motion plan: moving with the
    expression, and the same head motion without it."""
    from modeling_mie.synthetic import (
        load_base_faces,
    )
    from modeling_mie.synthetic_faces import (
        render_synthetic_clip,
    )
    from modeling_mie.synthetic_plan import (
        plan_synthetic_dataset,
    )

    plan = plan_synthetic_dataset("megc2019", 0, head_motion=True)
    clip = max(
        (c for c in plan.clips if c.database == "casme2" and c.label == 1 and 30 <= c.num_frames <= 60),
        key=lambda c: abs(c.head_motion[0][0]),
    )
    faces = load_base_faces()
    moving, _ = render_synthetic_clip(plan, clip, faces, nuisances=False)
    head_only, _ = render_synthetic_clip(plan, clip, faces, nuisances=False, expression=False)
    return {"clip": clip, "moving": moving, "head_only": head_only}


def _raw_flow(out) -> np.ndarray:
    """Flow in canvas px, (frames, regions, 3, h, w), from a processor's uint8 output."""
    return decode_flow(out["pixel_values"][0].astype(np.float32) / 255) * max(float(out["motion_peak"][0]), PEAK_FLOOR)


def test_on_a_moving_head_the_flow_is_the_expression_not_the_head(smiling_clip):
    processor = MieProcessor.from_config(MieConfig.from_preset("flow"))
    out = processor(smiling_clip["moving"], do_rescale=False)
    assert out["pixel_values"].shape[2:4] == (6, 3) and out["face_present"].all()
    head = processor(smiling_clip["head_only"], do_rescale=False)
    expression_energy = (_raw_flow(out)[:, :, :2] ** 2).sum()
    head_energy = (_raw_flow(head)[:, :, :2] ** 2).sum()
    # the head turns by up to 10 deg and shifts by up to 30 px; aligned, what is left is small
    assert expression_energy / head_energy > 5, (expression_energy, head_energy)
    assert 0.3 < float(out["motion_peak"][0]) < 10  # a micro-expression: a few canvas px at most
    # it moves where the clip's action units act (cheeks and mouth for the positive AUs)
    names = processor.region_names
    energy = (_raw_flow(out)[:, :, 2] ** 2).sum(axis=(0, 2, 3))
    acting = {r["name"] for r in MieConfig().regions if set(r["action_units"]) & {au for au, _, _ in smiling_clip["clip"].action_units}}
    assert acting, smiling_clip["clip"].action_units
    best = names[int(np.argmax(energy / np.array([h * w for h, w in processor.region_crop_sizes])))]
    assert best in acting, (best, acting, energy)


def test_the_model_reads_the_flow_crops(smiling_clip):
    config = MieConfig.from_preset("flow")
    torch.manual_seed(0)
    model = MieForVideoClassification(config).eval()
    out = MieProcessor.from_config(config)(smiling_clip["moving"][:20], return_tensors="pt")
    with torch.no_grad():
        logits = model(pixel_values=out["pixel_values"], frame_mask=out["frame_mask"]).logits
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()
    seen = decode_flow(out["pixel_values"])
    assert seen.min() >= -1.0 - 1e-6 and seen.max() <= 1.0 + 1e-6


# ------------------------------------------------------------------------------ a real smile
def test_a_real_smile_moves_the_mouth_and_cheeks_not_the_eyes(real_video):
    processor = MieProcessor.from_config(MieConfig.from_preset("flow"))
    out = processor(str(real_video("single_face.mp4")), do_rescale=False)
    flow = _raw_flow(out)
    area = np.array([h * w for h, w in processor.region_crop_sizes], np.float64)
    mean_magnitude = flow[:, :, 2].sum(axis=(0, 2, 3)) / area / len(flow)
    by_name = dict(zip(processor.region_names, mean_magnitude))
    lower = min(by_name["mouth"], by_name["left_cheek"], by_name["right_cheek"])
    upper = max(by_name["left_eye"], by_name["right_eye"])
    assert lower > 2 * upper, by_name
    # the cheeks rise: negative v (image y points down) at the smile's peak
    peak = int(np.argmax(flow[:, :, 2].mean(axis=(1, 2, 3))))
    cheeks = [processor.region_names.index(n) for n in ("left_cheek", "right_cheek")]
    assert flow[peak, cheeks, 1].mean() < 0
    # a broad real smile is far above a micro-expression's amplitude
    assert float(out["motion_peak"][0]) > 10
