"""MieProcessor on real faces: regions, fixed boxes, temporal modes, bad input, save/load, remote code."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import cv2
import numpy as np
import pytest
import torch

from modeling_mie import MieConfig, MieInputError, MieProcessor
from modeling_mie.processing_mie import (
    crop_regions,
    face_box_from_landmarks,
    frame_positions,
    geometry_from_config,
    region_boxes_from_face_box,
)
from modeling_mie.visualize import REGION_COLORS, draw_regions, save_png

LEFT_EYE, RIGHT_EYE, NOSE, LEFT_CHEEK, RIGHT_CHEEK, MOUTH = range(6)


@pytest.fixture(scope="session")
def processor(landmarker_path):
    """One processor (one MediaPipe landmarker) for the whole session: loading it costs ~1 s."""
    proc = MieProcessor()
    yield proc
    proc.close()


def _shifted_clip(image: np.ndarray, count: int, step: int = 3) -> np.ndarray:
    """(count, H, W, 3): the photo moved right by `step` px per frame (a head moving)."""
    return np.stack([np.roll(image, k * step, axis=1) for k in range(count)])


@pytest.fixture(scope="session")
def astronaut_clip(astronaut):
    return _shifted_clip(astronaut, 4)


@pytest.fixture(scope="session")
def astronaut_out(processor, astronaut_clip):
    return processor(astronaut_clip)


def _grey(frames_rgb: np.ndarray) -> np.ndarray:
    t, h, w, _ = frames_rgb.shape
    return cv2.cvtColor(np.ascontiguousarray(frames_rgb).reshape(t * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(t, h, w)


def _inside(points: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)


# ------------------------------------------------------------------------- real faces
@pytest.mark.parametrize("face", ["astronaut", "grace_hopper"])
def test_regions_on_real_faces(processor, request, face):
    image = request.getfixturevalue(face)
    out = processor(np.stack([image, image]))
    boxes = out["region_boxes"][0].astype(float)
    dlib = out["landmarks_dlib68"][0]
    height, width = image.shape[:2]
    assert out["landmark_source"] == ["detector"]
    assert out["landmark_frame"][0] == 0 and out["num_faces"][0] == 1
    assert np.isfinite(out["landmarks"][0]).all()
    # all six boxes lie inside the image
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    # eyes above nose above mouth (box centres)
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    assert centre_y[LEFT_EYE] < centre_y[NOSE] < centre_y[MOUTH]
    assert centre_y[RIGHT_EYE] < centre_y[NOSE] < centre_y[LEFT_CHEEK] < centre_y[MOUTH]
    # left/right regions mirror each other about the face box centre (within 2 px)
    face_centre = (out["face_boxes"][0][0] + out["face_boxes"][0][2]) / 2
    for left, right in ((LEFT_EYE, RIGHT_EYE), (LEFT_CHEEK, RIGHT_CHEEK)):
        np.testing.assert_allclose(boxes[left, [1, 3]], boxes[right, [1, 3]], atol=1)
        np.testing.assert_allclose(boxes[left, 2] - boxes[left, 0], boxes[right, 2] - boxes[right, 0], atol=1)
        assert abs((boxes[left, 0] + boxes[right, 2]) / 2 - face_centre) <= 2
    # each eye box holds its eye (dlib 36-41: image-left eye), the nose box the nose tip
    assert _inside(dlib[36:42], boxes[LEFT_EYE]).all() and _inside(dlib[42:48], boxes[RIGHT_EYE]).all()
    assert _inside(dlib[[30, 33]], boxes[NOSE]).all()
    # the mouth box holds every mouth point (lip corners, both lips), and each eye box holds
    # most of its brow, which AU1/AU2 raise (configuration_mie: positions for MediaPipe points)
    assert _inside(dlib[48:68], boxes[MOUTH]).all()
    assert _inside(dlib[17:22], boxes[LEFT_EYE]).sum() >= 4 and _inside(dlib[22:27], boxes[RIGHT_EYE]).sum() >= 4


def test_several_faces_take_the_largest_and_say_so(processor, astronaut, grace_hopper):
    # the astronaut's head enlarged (face ~130 px) beside Grace Hopper (face ~170 px); MediaPipe's
    # short-range detector misses the astronaut at her original ~80 px in a frame this wide
    frame = np.zeros((600, 1024, 3), np.uint8)
    frame[:400, :400] = cv2.resize(astronaut[40:296, 100:356], (400, 400))
    frame[:, 512:] = grace_hopper
    out = processor(np.stack([frame, frame]))
    assert out["num_faces"].tolist() == [2]
    assert "2 faces found; the largest was used" in out["notes"][0]
    assert (out["region_boxes"][0][:, 0] >= 512).all()  # Grace Hopper's half


def test_same_boxes_cut_every_frame(processor, astronaut_clip, astronaut_out):
    boxes = astronaut_out["region_boxes"][0]
    assert astronaut_out["region_boxes"].shape == (1, 6, 4)
    # the crops of every frame are exactly those boxes of that frame, even though the face moves
    expected = crop_regions(astronaut_clip, boxes, processor.region_crop_sizes, processor.crop_size, 1)
    np.testing.assert_array_equal(np.round(astronaut_out["pixel_values"][0] * 255).astype(np.uint8), expected)
    # ... and the head moved, so a re-detected box would have given other pixels
    first, last = expected[0], expected[-1]
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 3
    single = processor(astronaut_clip[:2])
    np.testing.assert_array_equal(single["region_boxes"][0], boxes)


def test_output_layout(processor, astronaut_out, astronaut_clip):
    pv = astronaut_out["pixel_values"]
    assert pv.shape == (1, 4, 6, 1, 80, 160) and pv.dtype == np.float32
    assert 0 <= pv.min() and pv.max() <= 1 and pv.max() > 0.5
    assert astronaut_out["frame_mask"].tolist() == [[True] * 4]
    assert astronaut_out["frame_positions"].tolist() == [[0, 1, 2, 3]]
    assert astronaut_out["num_source_frames"].tolist() == [4]
    assert astronaut_out["image_sizes"].tolist() == [[512, 512]]
    assert np.isnan(astronaut_out["fps"][0])
    # crops smaller than the common size sit top-left, padded with black
    assert processor.region_crop_sizes[LEFT_CHEEK] == (60, 60)
    assert (pv[0, :, LEFT_CHEEK, :, 60:, :] == 0).all() and (pv[0, :, LEFT_CHEEK, :, :, 60:] == 0).all()
    assert pv[0, :, LEFT_CHEEK, :, :60, :60].mean() > 0.1
    tensors = processor(astronaut_clip[:2], return_tensors="pt")
    assert tensors["pixel_values"].dtype == torch.float32 and tensors["frame_mask"].dtype == torch.bool
    assert tensors["landmark_source"] == ["detector"]


def test_uint8_crops_for_caches(processor, astronaut_clip, astronaut_out):
    out = processor(astronaut_clip, do_rescale=False)
    assert out["pixel_values"].dtype == np.uint8
    np.testing.assert_allclose(out["pixel_values"] / 255.0, astronaut_out["pixel_values"], atol=1e-6)


def test_given_landmarks_reproduce_the_detector(astronaut_clip, astronaut_out, tmp_path):
    # a processor whose detector cannot load: given landmarks must not need it
    offline = MieProcessor(face_landmarker_path=tmp_path / "missing.task")
    for landmarks in (astronaut_out["landmarks"][0], astronaut_out["landmarks_dlib68"][0]):
        out = offline(astronaut_clip, landmarks=landmarks)
        np.testing.assert_array_equal(out["region_boxes"], astronaut_out["region_boxes"])
        np.testing.assert_array_equal(out["pixel_values"], astronaut_out["pixel_values"])
        assert out["landmark_source"] == ["landmarks"] and out["landmark_frame"].tolist() == [-1]
    with pytest.raises(MieInputError, match="face landmarker model"):
        offline(astronaut_clip)


def test_given_boxes_are_cut_exactly():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 200, 260, 3), dtype=np.uint8)
    proc = MieProcessor()
    # boxes of exactly the paper's crop sizes: no resize, so crops are plain grey slices
    sizes = proc.region_crop_sizes
    origins = [(0, 0), (100, 0), (0, 90), (130, 90), (200, 90), (60, 150)]
    boxes = np.array([[x, y, x + w, y + h] for (x, y), (h, w) in zip(origins, sizes)])
    boxes[MOUTH] += [60, -10, 60, -10]  # mouth reaches 20 px past the right edge
    out = proc(frames, boxes=boxes, do_rescale=False)
    grey = _grey(frames)
    for r, ((x0, y0, x1, y1), (h, w)) in enumerate(zip(boxes, sizes)):
        inner = min(x1, 260) - x0
        np.testing.assert_array_equal(out["pixel_values"][0, :, r, 0, :h, :inner], grey[:, y0:y1, x0 : x0 + inner])
    # the part of the mouth box beyond the frame is black
    assert (out["pixel_values"][0, :, MOUTH, 0, :, 140:160] == 0).all()
    assert out["landmark_source"] == ["boxes"] and np.isnan(out["face_boxes"]).all()
    assert np.isnan(out["landmarks"]).all()


def test_geometry_follows_the_config(tiny_config):
    frames = np.zeros((2, 50, 60, 3), np.uint8)
    frames[..., 0] = 200  # red
    tiny_config.num_channels = 3
    proc = MieProcessor.from_config(tiny_config)
    boxes = [[0, 0, 30, 20], [5, 10, 25, 30], [5, 30, 40, 45]]
    out = proc(frames, boxes=boxes, return_tensors="pt")
    assert tuple(out["pixel_values"].shape) == (1, 2, 3, 3, *tiny_config.crop_size)
    assert proc.region_crop_sizes == tiny_config.region_crop_sizes
    red = out["pixel_values"][0, 0, 0]
    assert torch.allclose(red[0], torch.tensor(200 / 255)) and red[1:].abs().max() == 0
    with pytest.raises(ValueError, match="either config or geometry"):
        MieProcessor(config=tiny_config, crop_scale=0.5)
    with pytest.raises(ValueError, match="cannot change per call"):
        proc(frames, boxes=boxes, crop_scale=0.5)
    with pytest.raises(TypeError, match="Unknown arguments"):
        proc(frames, boxes=boxes, num_frame=4)


# ------------------------------------------------------------------------- geometry units
def test_contain_fit_maps_canvas_boxes_back():
    regions = MieConfig().regions
    canvas = np.array([r["box"] for r in regions], float)
    # a face box with the canvas's own aspect: a pure shift
    shifted = region_boxes_from_face_box([100, 200, 340, 480], regions, [240, 280])
    np.testing.assert_allclose(shifted, canvas + [100, 200, 100, 200])
    # twice as wide: scale 1/2 and centred vertically (70 canvas px of black above and below)
    wide = region_boxes_from_face_box([0, 0, 480, 280], regions, [240, 280])
    np.testing.assert_allclose(wide[:, 0], canvas[:, 0] * 2)
    np.testing.assert_allclose(wide[:, 1], (canvas[:, 1] - 70) * 2)
    dlib = np.zeros((68, 2))
    dlib[17], dlib[26], dlib[18], dlib[25], dlib[8] = (10, 50), (90, 50), (20, 30), (80, 25), (50, 140)
    np.testing.assert_allclose(face_box_from_landmarks(dlib, MieConfig().face_box_landmarks), [10, 25, 90, 140])


def test_frame_positions():
    assert frame_positions(10, "uniform", 4, 500).tolist() == [0, 3, 6, 9]
    assert frame_positions(3, "uniform", 8, 500).tolist() == [0, 1, 2]
    assert frame_positions(4, "interpolate", 7, 500).tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3]
    assert frame_positions(12, "all", None, 5).tolist() == [0, 3, 6, 8, 11]


# ------------------------------------------------------------------------- temporal modes
def _ramp_clip(count: int) -> np.ndarray:
    """Grey frames whose value is 10 x the frame index."""
    return np.stack([np.full((40, 40), 10 * i, np.uint8) for i in range(count)])


_BOXES = [[0, 0, 20, 16]] * 6


def test_temporal_modes():
    proc = MieProcessor()
    value = lambda out: np.round(out["pixel_values"][0, :, 0, 0, 0, 0] * 255, 3).tolist()  # noqa: E731
    out = proc(_ramp_clip(10), boxes=_BOXES, frame_sampling="uniform", num_frames=4)
    assert value(out) == [0, 30, 60, 90]
    out = proc(_ramp_clip(4), boxes=_BOXES, frame_sampling="interpolate", num_frames=7)
    assert value(out) == [0, 5, 10, 15, 20, 25, 30]
    assert out["frame_positions"][0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3]
    out = proc(_ramp_clip(4), boxes=_BOXES, frame_sampling="interpolate", num_frames=3, do_rescale=False)
    assert out["pixel_values"].dtype == np.uint8 and out["pixel_values"][0, :, 0, 0, 0, 0].tolist() == [0, 15, 30]
    out = proc(_ramp_clip(12), boxes=_BOXES, max_frames=5)
    assert value(out) == [0, 30, 60, 80, 110] and "max_frames=5" in out["notes"][0]
    out = proc(_ramp_clip(5), boxes=_BOXES, frame_sampling="uniform", num_frames=8)
    assert out["frame_mask"].sum() == 5
    with pytest.raises(ValueError, match="allowed|one of"):
        proc(_ramp_clip(5), boxes=_BOXES, frame_sampling="every")
    with pytest.raises(ValueError, match="needs num_frames"):
        MieProcessor(frame_sampling="uniform")


def test_batch_of_clips_is_padded_with_a_mask():
    proc = MieProcessor()
    clips = [_ramp_clip(3), _ramp_clip(5)]
    out = proc(clips, boxes=[_BOXES, _BOXES], fps=[10, 20], return_tensors="pt")
    assert tuple(out["pixel_values"].shape) == (2, 5, 6, 1, 80, 160)
    assert out["frame_mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert out["pixel_values"][0, 3:].abs().max() == 0
    assert out["frame_positions"][0].tolist() == [0, 1, 2, -1, -1]
    assert out["fps"].tolist() == [10, 20]
    with pytest.raises(MieInputError, match="one entry per clip"):
        proc(clips, boxes=[_BOXES])
    with pytest.raises(MieInputError, match="mix"):
        proc([_ramp_clip(3), np.zeros((40, 40, 3), np.uint8)])


# ------------------------------------------------------------------------- other sources
def test_frame_folder_and_array_give_the_same_crops(processor, astronaut_clip, tmp_path):
    for i, frame in enumerate(astronaut_clip[:3]):
        cv2.imwrite(str(tmp_path / f"img{i + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    from_folder = processor(tmp_path, fps=200)
    from_array = processor(astronaut_clip[:3])
    np.testing.assert_array_equal(from_folder["region_boxes"], from_array["region_boxes"])
    np.testing.assert_array_equal(from_folder["pixel_values"], from_array["pixel_values"])
    assert from_folder["fps"].tolist() == [200]
    # colour crops through the streaming (BGR) path match the in-memory (RGB) path too
    rgb = MieProcessor(num_channels=3)
    boxes = from_array["region_boxes"][0]
    np.testing.assert_array_equal(
        rgb(tmp_path, boxes=boxes)["pixel_values"], rgb(astronaut_clip[:3], boxes=boxes)["pixel_values"]
    )


def _write_face_video(path, frames, fps=25.0):
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_file(processor, astronaut_clip, astronaut_out, tmp_path):
    path = _write_face_video(tmp_path / "face.avi", astronaut_clip)
    out = processor(str(path), return_tensors="pt")
    assert out["fps"].tolist() == [25] and out["num_source_frames"].tolist() == [4]
    # JPEG noise moves landmarks by a pixel or two at most
    np.testing.assert_allclose(out["region_boxes"][0].numpy(), astronaut_out["region_boxes"][0], atol=3)
    # a truncated file: the decodable frames are used and a note says so
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    out = processor(path)
    assert 2 <= out["num_source_frames"][0] < 4 and "truncated" in out["notes"][0]


def test_large_frames_are_landmarked_small_and_cut_at_full_resolution(processor, astronaut, astronaut_out):
    big = cv2.resize(astronaut, (3000, 3000), interpolation=cv2.INTER_LINEAR)
    out = processor(np.stack([big, big]))
    assert out["image_sizes"].tolist() == [[3000, 3000]]
    np.testing.assert_allclose(out["region_boxes"][0] * 512 / 3000, astronaut_out["region_boxes"][0], atol=2.5)
    with pytest.raises(MieInputError, match="max_frame_pixels"):
        processor(np.stack([big, big]), video_limits={"max_frame_pixels": 4_000_000})


def test_several_threads_share_one_processor(processor, astronaut_clip, astronaut_out):
    results = [None, None]

    def run(i):
        results[i] = processor(astronaut_clip[:2])["region_boxes"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for boxes in results:
        np.testing.assert_array_equal(boxes, astronaut_out["region_boxes"])


# ------------------------------------------------------------------------- bad input
@pytest.fixture
def bad_files(tmp_path):
    """Files a user may upload by mistake, built here: name -> path."""
    files = {}
    files["empty"] = tmp_path / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "notes.mp4"
    files["text"].write_text("meeting notes, not a video\n" * 30)
    good = tmp_path / "good.mp4"
    writer = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    files["truncated"] = tmp_path / "truncated.mp4"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["zero_frames"] = tmp_path / "zero.avi"
    cv2.VideoWriter(str(files["zero_frames"]), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48)).release()
    files["missing"] = tmp_path / "nowhere.mp4"
    return files


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "empty file"),
        ("text", "not a video"),
        ("truncated", "truncated"),
        ("zero_frames", "zero"),
        ("missing", "does not exist"),
    ],
)
def test_bad_files(processor, bad_files, kind, message):
    with pytest.raises(MieInputError, match=message):
        processor(bad_files[kind])


def test_clip_without_a_face(processor):
    import skimage.data

    coffee = skimage.data.coffee()
    with pytest.raises(MieInputError, match="No face was found in any of the 2 frame") as err:
        processor([coffee, coffee])
    assert "landmarks=" in str(err.value)


def test_black_clip_says_black(processor, tmp_path):
    path = tmp_path / "black.avi"
    _write_face_video(path, np.zeros((12, 120, 160, 3), np.uint8))
    with pytest.raises(MieInputError, match="black") as err:
        processor(path)
    assert "any of the 12 frame(s) (0.5 s)" in str(err.value)


def test_the_whole_clip_is_searched_and_analysed_from_the_face_on(processor, astronaut, tmp_path):
    black = np.zeros_like(astronaut)
    clip = np.stack([black] * 9 + [astronaut] * 4)  # the face appears at frame 9, past a stride of 4
    out = processor(clip)
    assert out["landmark_frame"].tolist() == [9] and out["num_source_frames"].tolist() == [13]
    assert out["face_span"].tolist() == [[9, 12]] and out["frame_positions"].tolist() == [[9, 10, 11, 12]]
    assert out["face_present"].all() and out["frame_mask"].all()
    assert out["face_track"][0]["summary"].startswith("face found from frame 9")
    # the streaming path (files) finds the same frame and gives the same crops
    for i, frame in enumerate(clip):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    streamed = processor(tmp_path)
    assert streamed["landmark_frame"].tolist() == [9]
    np.testing.assert_array_equal(streamed["pixel_values"], out["pixel_values"])
    # a search budget bounds the time a faceless stretch costs, and says so
    with pytest.raises(MieInputError, match="stopped after 2 detector calls") as err:
        processor(clip, face_search_checks=2)
    assert "the first" in str(err.value)


def test_one_frame_policy(processor, astronaut, tmp_path):
    with pytest.raises(MieInputError, match="min_frames=1"):
        processor(astronaut)
    out = processor(astronaut, min_frames=1)
    assert out["frame_mask"].shape == (1, 1)
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    with pytest.raises(MieInputError, match="at least 2"):
        processor(path)
    np.testing.assert_array_equal(processor(path, min_frames=1)["region_boxes"], out["region_boxes"])


def test_face_too_small(processor, astronaut):
    small = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    with pytest.raises(MieInputError, match="min_face_size"):
        processor(np.stack([small, small]))


def test_bad_landmarks_and_boxes(astronaut_clip, astronaut_out):
    proc = MieProcessor()
    normalised = astronaut_out["landmarks"][0] / 512
    with pytest.raises(MieInputError, match="normalised"):
        proc(astronaut_clip, landmarks=normalised)
    with pytest.raises(MieInputError, match=r"\(478, 2\)"):
        proc(astronaut_clip, landmarks=np.zeros((10, 2)))
    with pytest.raises(MieInputError, match=r"\(regions, 4\)"):
        proc(astronaut_clip, boxes=np.zeros((5, 4)))
    with pytest.raises(MieInputError, match="x1 > x0"):
        proc(astronaut_clip, boxes=[[10, 10, 5, 20]] * 6)
    with pytest.raises(MieInputError, match="outside"):
        proc(astronaut_clip, boxes=[[600, 600, 700, 700]] * 6)


# ------------------------------------------------------------------------- save / load
def _save_folder(folder, config, **processor_kwargs):
    config.save_pretrained(folder)
    MieProcessor.from_config(config, **processor_kwargs).save_pretrained(folder)
    return folder


def test_auto_classes_load_the_saved_processor(tmp_path):
    from transformers import AutoImageProcessor, AutoProcessor

    config = MieConfig.from_preset("fast", num_channels=3)
    folder = _save_folder(tmp_path / "model", config, frame_sampling="uniform", num_frames=12)
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert saved["auto_map"] == {"AutoImageProcessor": "processing_mie.MieProcessor"}
    assert not any(key.startswith("_") for key in saved) and "face_landmarker_path" not in saved
    for auto in (AutoImageProcessor, AutoProcessor):
        loaded = auto.from_pretrained(folder)
        assert type(loaded) is MieProcessor
        assert loaded.num_frames == 12 and loaded.frame_sampling == "uniform"
        assert loaded.geometry() == geometry_from_config(config)
        assert loaded.crop_size == config.crop_size
    override = AutoImageProcessor.from_pretrained(folder, num_frames=5, face_landmarker_path="/elsewhere.task")
    assert override.num_frames == 5 and override._face_landmarker_path == "/elsewhere.task"
    assert "elsewhere" not in override.to_json_string()


def test_geometry_cannot_drift_from_the_model_config(tmp_path, caplog):
    config = MieConfig.from_preset("fast", num_channels=3)
    folder = _save_folder(tmp_path / "model", config)
    # a hand-edited (or stale) preprocessor_config.json
    path = folder / "preprocessor_config.json"
    saved = json.loads(path.read_text())
    saved["crop_scale"] = 1.0
    saved["num_channels"] = 1
    saved["regions"][0]["box"] = [0, 0, 120, 100]
    path.write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING, logger="modeling_mie.processing_mie"):
        loaded = MieProcessor.from_pretrained(folder)
    assert "disagrees with config.json" in caplog.text and "crop_scale" in caplog.text
    assert loaded.crop_scale == 0.5 and loaded.num_channels == 3 and loaded.regions[0]["box"] == config.regions[0]["box"]
    frames = np.zeros((2, 300, 300, 3), np.uint8)
    out = loaded(frames, boxes=[[0, 0, 50, 40]] * 6)
    assert out["pixel_values"].shape[2:] == (config.num_regions, config.num_channels, *config.crop_size)
    # a processor alone (no config.json) keeps its own settings
    (folder / "config.json").unlink()
    assert MieProcessor.from_pretrained(folder).crop_scale == 1.0
    # the default processor is the default config's geometry
    assert MieProcessor().geometry() == geometry_from_config(MieConfig())


def test_pickles_for_worker_processes(processor, astronaut_clip, astronaut_out):
    from modeling_mie.landmarks import MieFaceLandmarker

    processor(astronaut_clip[:2])  # the shared landmarker exists now
    # a processor never owns a landmarker (MediaPipe's cannot cross processes, nor be collected
    # inside a reference cycle without hanging): pickles carry settings only
    assert not any(isinstance(v, MieFaceLandmarker) for v in vars(processor).values())
    clone = pickle.loads(pickle.dumps(processor))
    np.testing.assert_array_equal(clone(astronaut_clip[:2])["region_boxes"], astronaut_out["region_boxes"])
    clone.close()
    json.loads(processor.to_json_string())


def test_a_processor_caught_in_a_reference_cycle_is_collected_without_hanging(astronaut_clip, tmp_path):
    """MediaPipe's landmarker hangs when the garbage collector finalises it inside a cycle: a
    processor held by an exception's traceback must not own one."""
    import subprocess
    import sys

    script = textwrap.dedent(
        """
        import gc, sys
        import numpy as np
        from modeling_mie import MieProcessor, MieInputError
        clip = np.load(sys.argv[1])
        def fail():
            processor = MieProcessor()
            processor(clip)  # loads the landmarker
            return processor(np.zeros_like(clip))  # no face: the traceback holds the processor
        try:
            fail()
        except MieInputError as err:
            kept = err  # err -> traceback -> frame -> processor, and the frame's locals -> err
        del kept
        gc.collect()
        print("COLLECTED")
        """
    )
    np.save(tmp_path / "clip.npy", astronaut_clip[:2])
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "clip.npy")], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and "COLLECTED" in result.stdout, result.stderr[-2000:]


# Runs where `import modeling_mie` fails: the processor must come from the files saved beside
# the config, load without the model file, and not import MediaPipe until a face is searched.
_REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["modeling_mie"] = None
    import numpy as np
    from transformers import AutoImageProcessor, AutoProcessor
    folder = sys.argv[1]
    report = {}
    for auto in (AutoImageProcessor, AutoProcessor):
        proc = auto.from_pretrained(folder, trust_remote_code=True)
        frames = np.zeros((3, 120, 100, 3), np.uint8)
        out = proc(frames, boxes=[[0, 0, 40, 30]] * 6, return_tensors="pt")
        report[auto.__name__] = [type(proc).__module__, list(out["pixel_values"].shape)]
    report["mediapipe"] = "mediapipe" in sys.modules
    print("REMOTE " + json.dumps(report))
    """
)


def test_remote_code_loads_without_the_package(tmp_path):
    config = MieConfig.from_preset("fast")
    folder = _save_folder(tmp_path / "model", config, num_frames=3, frame_sampling="interpolate")
    names = {p.name for p in folder.iterdir()}
    assert {"processing_mie.py", "configuration_mie.py", "video.py", "landmarks.py", "tracking.py", "regions.py", "errors.py"} <= names
    assert "modeling_mie.py" not in names  # the processor never imports the model
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    proc = subprocess.run(
        [sys.executable, "-c", _REMOTE_SCRIPT, str(folder)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REMOTE ", 1)[1])
    for auto in ("AutoImageProcessor", "AutoProcessor"):
        module, shape = report[auto]
        assert module.startswith("transformers_modules"), module
        assert shape == [1, 3, 6, 1, *config.crop_size]
    assert report["mediapipe"] is False


# ------------------------------------------------------------------------- the picture
def test_region_picture(processor, astronaut, astronaut_out, tmp_path):
    before = astronaut.copy()
    boxes = astronaut_out["region_boxes"][0]
    picture = draw_regions(astronaut, boxes, processor.region_names)
    assert picture.shape == astronaut.shape and picture.dtype == np.uint8
    np.testing.assert_array_equal(astronaut, before)  # the caller's frame is untouched
    x0, y0, x1, y1 = boxes[MOUTH]
    assert tuple(picture[y1, (x0 + x1) // 2]) == REGION_COLORS[MOUTH]  # outline on the box edge
    path = save_png(picture, tmp_path / "out" / "regions.png")
    assert path.stat().st_size > 10_000
    again = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(again, picture)
    # scores colour the fills: a high-scoring region is brighter than a low-scoring one
    scored = draw_regions(astronaut, boxes, processor.region_names, scores=[0, 0, 0, 0, 0, 1.0])

    def fill(image, r):
        bx0, by0, bx1, by1 = boxes[r] + [4, 4, -4, -4]
        return image[by0:by1, bx0:bx1].astype(float) - astronaut[by0:by1, bx0:bx1]

    assert fill(scored, MOUTH).mean() > fill(scored, LEFT_CHEEK).mean() + 20
    zoomed = draw_regions(astronaut, boxes, processor.region_names, margin=0.3)
    assert zoomed.shape[0] < astronaut.shape[0] and min(zoomed.shape[:2]) >= 320
    with pytest.raises(MieInputError, match="one name per box"):
        draw_regions(astronaut, boxes, ["a", "b"])
