"""Preprocessed region-crop cache: real faces through the processor, keys, resume after a kill, failures."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import fixtures_datasets as fx
from modeling_mie import MieConfig, MieInputError, MieProcessor, build_region_cache, load_casme2, load_samm
from modeling_mie import cache as cache_module
from modeling_mie.cache import select_frames

# 240 x 180 frames with a 150 px face: MediaPipe finds it, and crops stay cheap.
FRAME = dict(width=240, height=180, face_height=150)


def _clips(n: int, frames: int = 5) -> list[fx.Clip]:
    out = []
    for i in range(n):
        start = 10 * (i + 1)
        out.append(
            fx.Clip(1 + i % 2, f"EP0{i}_01f", range(start, start + frames), ("disgust", "happiness", "surprise")[i % 3],
                    start, start + 2, start + frames - 1, "4+L10")
        )
    return out


@pytest.fixture(scope="module")
def face_tree(tmp_path_factory):
    """A CASME II tree of 3 face clips (5 frames each) and 1 faceless clip."""
    root = tmp_path_factory.mktemp("cache-tree")
    clips = _clips(3)
    blank = fx.Clip(3, "EP09_09", range(1, 4), "surprise", 1, 2, 3, "1+2")
    face = fx.face_frames(**FRAME)
    fx.write_casme2(root / "CASME2", clips, image=face)
    fx.write_casme2(root / "CASME2", [blank], workbook=False, image=fx.blank_frames(width=240, height=180))
    fx.write_casme2_workbook(root / "CASME2" / "CASME2-coding-20140508.xlsx", clips + [blank])
    return root / "CASME2"


@pytest.fixture(scope="module")
def processor():
    # half-size crops (the "fast" geometry): 40 x 80 padded crops, six regions, grey
    return MieProcessor.from_config(MieConfig.from_preset("fast"))


@pytest.fixture
def dataset(face_tree, tmp_path):
    return load_casme2(face_tree, cache_dir=tmp_path / "hf")


_PROCESS_CLIP = cache_module._process_clip


class SimulatedKill(BaseException):
    """Stands for SIGKILL / Ctrl-C in the middle of a build (not an Exception: nothing catches it)."""


class _Counter:
    """Wraps `_process_clip` to count the clips actually cropped (in this process)."""

    def __init__(self, monkeypatch, fail_after: int | None = None):
        self.calls = []
        self.fail_after = fail_after

        def counted(task, processor=None):
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise SimulatedKill()
            self.calls.append(task["clip"])
            return _PROCESS_CLIP(task, processor)

        monkeypatch.setattr(cache_module, "_process_clip", counted)


def test_select_frames():
    # every frame of onset..offset by default
    assert select_frames(10, 2, 5, 8) == [2, 3, 4, 5, 6, 7, 8]
    assert select_frames(10, 2, 5, 8, span="clip") == list(range(10))
    # bounded: first, onset, apex, offset, last always kept, the rest evenly spread
    picked = select_frames(200, 20, 101, 180, span="clip", max_frames=9)
    assert len(picked) == 9 and {0, 20, 101, 180, 199} <= set(picked) and picked == sorted(picked)
    picked = select_frames(200, 20, 101, 180, max_frames=5)
    assert picked[0] == 20 and picked[-1] == 180 and 101 in picked and len(picked) == 5
    with pytest.raises(ValueError, match="cannot keep the 5 key frames"):
        select_frames(200, 20, 101, 180, span="clip", max_frames=4)
    with pytest.raises(ValueError, match="span must be one of"):
        select_frames(10, 0, 1, 2, span="apex")


def test_build_stores_uint8_crops_and_reports_faceless_clips(dataset, processor, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="modeling_mie.cache"):
        cached = build_region_cache(dataset, processor, tmp_path / "cache", progress=False)
    # the faceless clip is reported, not a crash
    assert len(cached) == 3
    assert [f["clip"] for f in cached.failed_clips] == ["EP09_09"]
    assert "No face was found" in cached.failed_clips[0]["reason"]
    assert any("1 of 4 clips could not be cropped" in r.getMessage() and "EP09_09" in r.getMessage() for r in caplog.records)
    row = cached[0]
    pixels = row["pixel_values"]
    # (frames, regions, channels, height, width) uint8, as the processor gives with do_rescale=False
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 6, 1, *processor.crop_size)
    assert pixels.std() > 5  # real face texture, not black padding
    reference = processor(row["frames"], do_rescale=False)["pixel_values"][0]
    np.testing.assert_array_equal(pixels, reference)
    # metadata joined from the loader, frame bookkeeping into what was stored
    assert row["subject"] == "casme2/sub01" and row["clip"] == "EP00_01f" and row["label"] == 0
    assert (row["onset_index"], row["apex_index"], row["offset_index"]) == (0, 2, 4)
    assert row["frame_indices"] == [0, 1, 2, 3, 4] and row["num_frames"] == 5 and row["source_num_frames"] == 5
    assert np.asarray(row["region_boxes"]).shape == (6, 4) and np.asarray(row["landmarks_dlib68"]).shape == (68, 2)
    assert row["num_faces"] == 1 and row["landmark_frame"] == 0
    assert np.isnan(row["motion_peak"])  # grey crops have no motion peak
    # one file per clip, one failure record
    root = cached.cache_path
    assert len(list((root / "clips").glob("*.arrow"))) == 3 and len(list((root / "failed").glob("*.json"))) == 1
    assert (root / "settings.json").is_file()
    with pytest.raises(MieInputError, match="1 of 4 clips could not be cropped.*EP09_09.*No face"):
        build_region_cache(dataset, processor, tmp_path / "cache", progress=False, strict=True)


def test_flow_crops_keep_the_peak_they_were_divided_by(dataset, tmp_path):
    flow = MieProcessor.from_config(MieConfig.from_preset("flow"))
    cached = build_region_cache(dataset, flow, tmp_path / "cache", progress=False)
    row = cached[0]
    direct = flow(row["frames"], do_rescale=False)
    np.testing.assert_array_equal(row["pixel_values"], direct["pixel_values"][0])
    assert row["motion_peak"] == pytest.approx(float(direct["motion_peak"][0]), rel=1e-6)
    assert np.isfinite(row["motion_peak"])


def test_resume_after_a_kill(dataset, processor, tmp_path, monkeypatch):
    faces = dataset.filter(lambda clip: clip != "EP09_09", input_columns="clip")
    killed = _Counter(monkeypatch, fail_after=2)
    with pytest.raises(SimulatedKill):
        build_region_cache(faces, processor, tmp_path / "cache", progress=False)
    clips_dir = next((tmp_path / "cache").glob("regions-*")) / "clips"
    assert len(list(clips_dir.glob("*.arrow"))) == 2 and not list(clips_dir.glob(".tmp-*"))
    # a half-written file of a dead build is cleaned up, not mistaken for a clip
    (clips_dir / ".tmp-999999999-0123.arrow").write_bytes(b"partial")
    resumed = _Counter(monkeypatch)
    cached = build_region_cache(faces, processor, tmp_path / "cache", progress=False)
    assert resumed.calls == ["EP02_01f"] and killed.calls == ["EP00_01f", "EP01_01f"]
    assert len(cached) == 3 and not cached.failed_clips
    assert not list(clips_dir.glob(".tmp-*"))
    # a finished cache does no work at all
    again = _Counter(monkeypatch)
    build_region_cache(faces, processor, tmp_path / "cache", progress=False)
    assert again.calls == []


def test_keys_follow_geometry_frames_and_clip_list(dataset, processor, tmp_path, monkeypatch):
    faces = dataset.filter(lambda clip: clip != "EP09_09", input_columns="clip")
    first = build_region_cache(faces, processor, tmp_path / "cache", progress=False)
    # settings that do not change the stored crops do not change the key
    same = _Counter(monkeypatch)
    rescaling = MieProcessor.from_config(MieConfig.from_preset("fast"), do_rescale=True, frame_sampling="uniform", num_frames=8)
    assert build_region_cache(faces, rescaling, tmp_path / "cache", progress=False).cache_path == first.cache_path
    assert same.calls == []
    # another geometry (crop scale, channels) or frame selection: another cache
    for other, kwargs in (
        (MieProcessor.from_config(MieConfig.from_preset("fast", crop_scale=0.25)), {}),
        (MieProcessor.from_config(MieConfig.from_preset("fast", num_channels=3)), {}),
        (processor, {"max_frames": 3}),
    ):
        counter = _Counter(monkeypatch)
        built = build_region_cache(faces.select([0]), other, tmp_path / "cache", progress=False, **kwargs)
        assert built.cache_path != first.cache_path and counter.calls == ["EP00_01f"]
    rgb = build_region_cache(faces.select([0]), MieProcessor.from_config(MieConfig.from_preset("fast", num_channels=3)), tmp_path / "cache", progress=False)
    assert rgb[0]["pixel_values"].shape[2] == 3
    bounded = build_region_cache(faces.select([0]), processor, tmp_path / "cache", progress=False, max_frames=3)
    # onset (frame 0), apex (2) and offset (4) are what 3 frames keep; indices point into them
    assert bounded[0]["frame_indices"] == [0, 2, 4] and bounded[0]["pixel_values"].shape[0] == 3
    assert (bounded[0]["onset_index"], bounded[0]["apex_index"], bounded[0]["offset_index"]) == (0, 1, 2)
    # a new clip list reuses every clip already cropped
    counter = _Counter(monkeypatch)
    subset = build_region_cache(faces.select([2, 0]), processor, tmp_path / "cache", progress=False)
    assert counter.calls == [] and subset["clip"] == ["EP02_01f", "EP00_01f"]
    # an edited frame is cropped again
    frame = Path(faces[1]["frames"][0])
    os.utime(frame, (frame.stat().st_atime + 10, frame.stat().st_mtime + 10))
    counter = _Counter(monkeypatch)
    build_region_cache(faces, processor, tmp_path / "cache", progress=False)
    assert counter.calls == ["EP01_01f"]


def test_metadata_is_joined_fresh(dataset, processor, tmp_path, monkeypatch):
    faces = dataset.filter(lambda clip: clip != "EP09_09", input_columns="clip")
    build_region_cache(faces, processor, tmp_path / "cache", progress=False)
    relabelled = faces.map(lambda row: {"label": 2})
    counter = _Counter(monkeypatch)
    cached = build_region_cache(relabelled, processor, tmp_path / "cache", progress=False)
    assert counter.calls == [] and cached["label"] == [2, 2, 2]
    # a cache fed back in (it carries crop columns already) resolves to the same clip files
    again = build_region_cache(cached, processor, tmp_path / "cache", progress=False)
    assert counter.calls == [] and again["cache_key"] == cached["cache_key"]


def test_two_processes(dataset, processor, tmp_path):
    cached = build_region_cache(dataset, processor, tmp_path / "cache", num_proc=2, progress=False)
    assert len(cached) == 3 and [f["clip"] for f in cached.failed_clips] == ["EP09_09"]
    single = build_region_cache(dataset.select([0]), processor, tmp_path / "single", progress=False)
    np.testing.assert_array_equal(cached[0]["pixel_values"], single[0]["pixel_values"])


def test_greyscale_samm_clip(tmp_path, processor):
    clip = fx.Clip(6, "006_1_2", range(5562, 5566), "Anger", 5562, 5563, 5565, "4+7", pad=5)
    fx.write_samm(tmp_path / "s", [clip], image=fx.face_frames(**FRAME, grey=True))
    cached = build_region_cache(load_samm(tmp_path / "s", cache_dir=tmp_path / "hf"), processor, tmp_path / "cache", progress=False)
    assert not cached.failed_clips and cached[0]["pixel_values"].shape == (4, 6, 1, *processor.crop_size)
    assert cached[0]["frame_numbers"] == [5562, 5563, 5564, 5565]


def test_rejects_a_dataset_without_loader_columns(processor, tmp_path):
    from datasets import Dataset

    with pytest.raises(MieInputError, match="lacks \\['onset_index', 'apex_index', 'offset_index', 'subject', 'clip'\\]"):
        build_region_cache(Dataset.from_dict({"frames": [["a.jpg"]]}), processor, tmp_path)
