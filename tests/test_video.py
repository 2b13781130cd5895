"""Clip reading: every source form, frame order, pixel formats, limits and bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from modeling_mie import MieInputError
from modeling_mie.video import (
    Clip,
    VideoLimits,
    as_frame_stack,
    frame_sort_key,
    list_frame_files,
    open_clip,
    read_clip,
)


def _write_video(path: Path, frames: np.ndarray, fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    """frames: (T, H, W, 3) RGB uint8."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _colour_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose left half is red and right half blue; the red rises with the index (mod 13)."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for i in range(count):
        frames[i, :, : width // 2, 0] = 120 + (10 * i) % 130
        frames[i, :, width // 2 :, 2] = 200
    return frames


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header announces width x height; the pixel data is a stub (never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    stub = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stub) + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------- frame folders
def test_frame_folder_is_ordered_by_the_integer_in_the_name(tmp_path):
    # img10 must come after img2: string order would put it first
    for index in (10, 2, 1, 100):
        Image.fromarray(np.full((6, 8), index, np.uint8)).save(tmp_path / f"img{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert [p.name for p in list_frame_files(tmp_path)] == ["img1.png", "img2.png", "img10.png", "img100.png"]
    clip = read_clip(tmp_path)
    assert clip.frames.shape == (4, 6, 8, 1)  # grey frames stay grey
    assert clip.frames[:, 0, 0, 0].tolist() == [1, 2, 10, 100]
    assert clip.fps is None


def test_frame_sort_key_handles_database_names():
    names = ["006_1_0123.jpg", "006_1_0012.jpg", "006_1_1000.jpg"]
    assert sorted(names, key=frame_sort_key) == ["006_1_0012.jpg", "006_1_0123.jpg", "006_1_1000.jpg"]
    assert sorted(["reg_img46.jpg", "reg_img100.jpg", "reg_img5.jpg"], key=frame_sort_key)[0] == "reg_img5.jpg"


def test_colour_frame_folder_comes_back_rgb(tmp_path):
    frames = _colour_frames(3)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    clip = read_clip(tmp_path, fps=100)
    np.testing.assert_array_equal(clip.frames, frames)
    assert clip.fps == 100


def test_sixteen_bit_frames_are_scaled(tmp_path):
    frame = np.full((5, 7), 65535, np.uint16)
    frame[0, 0] = 257 * 10
    cv2.imwrite(str(tmp_path / "a1.png"), frame)
    cv2.imwrite(str(tmp_path / "a2.png"), frame)
    clip = read_clip(tmp_path)
    assert clip.frames.dtype == np.uint8
    assert clip.frames[0, 0, 0, 0] == 10 and clip.frames[0, 1, 1, 0] == 255


# ------------------------------------------------------------------------- video files
def test_video_file_gives_rgb_frames_and_fps(tmp_path):
    frames = _colour_frames(6)
    path = _write_video(tmp_path / "clip.avi", frames, fps=25)
    clip = read_clip(path)
    assert clip.frames.shape == (6, 48, 64, 3)
    assert clip.fps == pytest.approx(25)
    assert clip.duration_s == pytest.approx(6 / 25)
    # red stays red (no BGR mix-up), within JPEG error
    assert clip.frames[0, 10, 5, 0] > 100 and clip.frames[0, 10, 5, 2] < 40
    assert clip.frames[0, 10, 50, 2] > 160 and clip.frames[0, 10, 50, 0] < 40
    # brightness rises with the frame index: frames come in order
    assert np.all(np.diff(clip.frames[:, 20, 10, 0].astype(int)) > 0)


def test_streaming_reader_reports_its_layout(tmp_path):
    path = _write_video(tmp_path / "clip.avi", _colour_frames(4))
    with open_clip(path) as reader:
        assert reader.channel_order == "bgr" and reader.frame_size == (64, 48)
        assert reader.num_frames == 4 and not reader.exact_count
        count = sum(1 for _ in reader.iter_frames(reuse_buffer=True))
    assert count == reader.frames_read == 4


def test_truncated_avi_keeps_the_decodable_frames_and_says_so(tmp_path):
    path = _write_video(tmp_path / "clip.avi", _colour_frames(40, 96, 128))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    clip = read_clip(path)
    assert 5 <= clip.num_frames < 40
    assert any("truncated" in note for note in clip.notes)


# ------------------------------------------------------------------------- arrays
def test_array_layouts():
    rgb = np.zeros((4, 10, 12, 3), np.uint8)
    assert as_frame_stack(rgb) is rgb  # uint8 RGB: no copy
    assert as_frame_stack(np.zeros((4, 3, 10, 12), np.uint8)).shape == (4, 10, 12, 3)  # channels first
    assert as_frame_stack(np.zeros((4, 10, 12), np.uint8)).shape == (4, 10, 12, 1)  # grey clip
    assert as_frame_stack(np.zeros((10, 12, 3), np.uint8)).shape == (1, 10, 12, 3)  # one frame
    assert as_frame_stack(np.zeros((4, 10, 12, 4), np.uint8)).shape == (4, 10, 12, 3)  # alpha dropped
    floats = as_frame_stack(np.full((2, 3, 3), 0.5, np.float32))
    assert floats.dtype == np.uint8 and floats[0, 0, 0, 0] == 128
    import torch

    assert as_frame_stack(torch.zeros(2, 3, 10, 12)).shape == (2, 10, 12, 3)
    with pytest.raises(MieInputError, match="channel axis"):
        as_frame_stack(np.zeros((4, 10, 12, 7), np.uint8))
    with pytest.raises(MieInputError, match="list of clips"):
        as_frame_stack(np.zeros((2, 4, 10, 12, 3), np.uint8))
    with pytest.raises(MieInputError, match="dtype"):
        as_frame_stack(np.zeros((2, 4, 4), np.complex64))


def test_list_of_frames_and_pil_images():
    frames = [Image.fromarray(np.full((8, 9, 3), 40 * i, np.uint8)) for i in range(3)]
    clip = read_clip(frames, fps=30)
    assert clip.frames.shape == (3, 8, 9, 3) and clip.fps == 30
    assert clip.frames[:, 0, 0, 0].tolist() == [0, 40, 80]
    with pytest.raises(MieInputError, match="same size"):
        read_clip([np.zeros((8, 9, 3), np.uint8), np.zeros((9, 9, 3), np.uint8)])


def test_clip_object_round_trips():
    clip = Clip(frames=np.zeros((3, 5, 5, 3), np.uint8), fps=12.5, source="mine")
    again = read_clip(clip)
    assert again.fps == 12.5 and again.source == "mine" and again.num_frames == 3


# ------------------------------------------------------------------------- limits
def test_limits_defaults_can_be_changed():
    assert VideoLimits().max_frames == 3000
    frames = np.zeros((5, 10, 10), np.uint8)
    with pytest.raises(MieInputError, match="max_frames"):
        read_clip(frames, limits={"max_frames": 4})
    with pytest.raises(MieInputError, match="max_duration_s"):
        read_clip(frames, limits=VideoLimits(max_duration_s=0.1), fps=10)
    with pytest.raises(MieInputError, match="max_frame_pixels"):
        read_clip(frames, limits={"max_frame_pixels": 99})
    with pytest.raises(MieInputError, match="max_clip_bytes"):
        read_clip(frames, limits={"max_clip_bytes": 100})
    assert read_clip(frames, limits={"max_frames": 5}).num_frames == 5
    with pytest.raises(ValueError, match="allowed values"):
        VideoLimits.coerce({"max_frame": 4})
    with pytest.raises(ValueError, match="positive"):
        VideoLimits(max_frames=0)


def test_video_too_long_is_refused_from_its_header(tmp_path):
    path = _write_video(tmp_path / "clip.avi", _colour_frames(8), fps=4)
    with pytest.raises(MieInputError, match="max_duration_s"):
        open_clip(path, limits={"max_duration_s": 1.0})
    with pytest.raises(MieInputError, match="max_file_bytes"):
        open_clip(path, limits={"max_file_bytes": 100})


def test_huge_image_is_refused_from_its_header(tmp_path):
    # 60000 x 60000 is announced; refusing from the header means nothing is decoded or allocated
    path = _png_header_only(tmp_path / "huge.png", 60000, 60000)
    with pytest.raises(MieInputError, match="pixels") as err:
        read_clip(path)
    assert "Downscale" in str(err.value)


# ------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    "name, make, message",
    [
        ("missing.mp4", None, "does not exist"),
        ("empty.mp4", lambda p: p.write_bytes(b""), "empty file"),
        ("text.mp4", lambda p: p.write_text("this is not a video\n" * 20), "could not be opened as a video"),
        ("folder", lambda p: p.mkdir(), "holds no image files"),
        ("broken.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff garbage"), "could not be decoded"),
    ],
)
def test_bad_sources_raise_mie_input_error(tmp_path, name, make, message):
    path = tmp_path / name
    if make:
        make(path)
    with pytest.raises(MieInputError, match=message):
        read_clip(path)


def test_truncated_mp4_and_zero_frame_videos(tmp_path):
    path = _write_video(tmp_path / "clip.mp4", _colour_frames(20), fourcc="mp4v")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    with pytest.raises(MieInputError, match="truncated"):
        read_clip(path)
    for suffix, fourcc in ((".avi", "MJPG"), (".mp4", "mp4v")):
        empty = tmp_path / f"zero{suffix}"
        cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*fourcc), 25, (32, 32)).release()
        with pytest.raises(MieInputError, match="zero|could not be opened"):
            read_clip(empty)


def test_unknown_source_type():
    with pytest.raises(MieInputError, match="Cannot read a clip"):
        read_clip(42)
    with pytest.raises(MieInputError, match="empty list"):
        read_clip([])
