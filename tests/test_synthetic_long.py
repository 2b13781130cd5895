"""Synthetic long videos: plan rules, time courses, head motion, rendered pixels, layouts, workbooks, resume."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from modeling_mie.errors import MieInputError
from modeling_mie.synthetic import (
    load_base_faces,
)
from modeling_mie.synthetic_faces import (
    ACTION_UNIT_ANCHORS,
    _anchors,
    _axes,
    head_motion_course,
)
from modeling_mie.synthetic_long import (
    MANIFEST_FILE,
    SAMM_EMOTION_HEADER,
    SAMM_LV_HEADER,
    generate_long_videos,
    main,
    parse_args,
    read_long_manifest,
)
from modeling_mie.synthetic_long_plan import (
    CASME_SQ_SUBJECTS,
    CASME_SQ_VIDEOS,
    SAMM_LV_SUBJECTS,
    blink_strength,
    expression_strength,
    head_pose_course,
    long_video_landmarks,
    plan_long_videos,
    render_long_video,
)
from modeling_mie.synthetic_plan import (
    MEGC_CLASSES,
)

openpyxl = pytest.importorskip("openpyxl", reason="the workbooks are .xlsx files (a core dependency)")
cv2 = pytest.importorskip("cv2", reason="frames are encoded with OpenCV (a core dependency)")

# Small frames and 5 s videos keep the written tree to ~4,600 frames (a few seconds).
TINY = {"seconds": 5, "casme_size": (160, 120), "samm_size": (170, 91)}


@pytest.fixture(scope="module")
def base_faces(landmarker_path):
    return load_base_faces(landmarker_path)


@pytest.fixture(scope="module")
def tiny_plan():
    return plan_long_videos(**TINY)


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory, tiny_plan, base_faces):
    root = tmp_path_factory.mktemp("long") / "tiny"
    manifest = generate_long_videos(root, tiny_plan, faces=base_faces, workers=1)
    return root, json.loads(manifest.read_text())


def _asdict(plan) -> dict:
    return {
        "videos": [dataclasses.asdict(v) for v in plan.videos],
        "subjects": {k: dataclasses.asdict(s) for k, s in plan.subjects.items()},
    }


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- plan
def test_plan_is_a_function_of_the_seed():
    assert _asdict(plan_long_videos(seed=3)) == _asdict(plan_long_videos(seed=3))
    assert _asdict(plan_long_videos(seed=3)) != _asdict(plan_long_videos(seed=4))
    # keyed by layout, subject and video: more subjects or videos leave the others as they were
    small, large = plan_long_videos(subjects=1, videos_per_subject=1, blink_video=False), plan_long_videos(subjects=3, videos_per_subject=3)
    assert dataclasses.asdict(small.videos[0]) == dataclasses.asdict(large.video(small.videos[0].key))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_follow_the_timing_rules(seed):
    plan = plan_long_videos(subjects=3, videos_per_subject=3, seed=seed)
    assert len(plan.videos) == 18
    for video in plan.videos:
        fps, n = video.fps, video.num_frames
        low, high = (30, 60) if video.layout == "casme_sq" else (10, 20)
        assert low * fps <= n <= high * fps
        assert fps == {"casme_sq": 30, "samm_lv": 200}[video.layout]
        spans = sorted([(e.onset, e.offset) for e in video.expressions] + [(t.start, t.end) for t in video.turns])
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start - end > fps - 1, f"{video.key}: events closer than 1 s"
        for start, end in spans:  # none in the first and last second
            assert fps <= start <= end <= n - fps - 1
        for e in video.expressions:
            assert e.onset < e.apex and e.apex + e.hold < e.offset
            seconds = (e.offset - e.onset + 1) / fps
            assert (0.2 - 1 / fps <= seconds <= 0.5) if e.kind == "micro" else (0.5 < seconds <= 4.0 + 1 / fps), e
            assert e.hold == 0 or e.kind == "macro"
            assert e.megc_class == MEGC_CLASSES[e.label]
            aus = {a for a, _, _ in e.action_units}
            assert {1: 12 in aus, 2: {1, 2} <= aus, 0: not aus & {1, 2, 12}}[e.label], e
        assert [e.name for e in video.expressions] == [f"{video.video_name}_{k}" for k in range(1, len(video.expressions) + 1)]
        margin = fps // 2
        for b in video.blinks:
            assert 0 <= b.start <= b.end < n and 0.1 * fps - 1 <= b.end - b.start + 1 <= 0.4 * fps + 1
            assert all(b.end < e.onset - margin or b.start > e.offset + margin for e in video.expressions)
        gaps = np.diff([b.start for b in video.blinks]) / fps
        assert (gaps >= 2.0 - 1 / fps).all()  # a blink moved past an expression only waits longer
        if video.blinks_only:
            assert not video.expressions
        else:
            assert {e.kind for e in video.expressions} == {"micro", "macro"}
    for layout in ("casme_sq", "samm_lv"):
        quiet = [v.key for v in plan.videos if v.layout == layout and v.blinks_only]
        assert len(quiet) == 1, "one blinks-only video per layout"
    assert sum(len(v.turns) for v in plan.videos) > 0 and sum(len(v.blinks) for v in plan.videos) > 100


def test_real_names_of_subjects_and_videos():
    plan = plan_long_videos(subjects=22, videos_per_subject=9, layouts=["casme_sq"], seconds=5)
    assert [v.subject for v in plan.videos[::9]] == list(CASME_SQ_SUBJECTS)
    assert CASME_SQ_SUBJECTS[:3] == ("s15", "s16", "s19") and CASME_SQ_SUBJECTS[11] == "s29" and CASME_SQ_SUBJECTS[-1] == "s40"
    assert [v.video for v in plan.videos[:9]] == [f"15_{code}{suffix}" for code, _, suffix in CASME_SQ_VIDEOS]
    assert plan.videos[0].video == "15_0101disgustingteeth" and plan.videos[5].video == "15_0503unnyfarting"
    assert [v.subject_index for v in plan.videos[::9]] == list(range(1, 23))
    samm = plan_long_videos(subjects=30, videos_per_subject=2, layouts=["samm_lv"], seconds=5)
    assert [v.video for v in samm.videos[:3]] == ["006_1", "006_2", "007_1"]
    assert "027" not in SAMM_LV_SUBJECTS and "029" not in SAMM_LV_SUBJECTS and len(SAMM_LV_SUBJECTS) == 30
    assert samm.videos[0].frame_name(0) == "006_1_0001.jpg" and samm.videos[0].frame_name(9999) == "006_1_10000.jpg"
    assert plan.videos[0].frame_name(0) == "img001.jpg" and plan.videos[0].frame_name(99) == "img100.jpg"
    assert plan.videos[0].frame_name(999) == "img1000.jpg"


def test_short_videos_keep_an_expression_of_each_kind_and_too_short_ones_are_refused():
    for video in plan_long_videos(seconds=4.5, seed=7).videos:
        if not video.blinks_only:
            assert {e.kind for e in video.expressions} == {"micro", "macro"}
    assert plan_long_videos(seconds=2.6, blink_video=False).videos[0].expressions[0].kind == "micro"
    with pytest.raises(ValueError, match="too short"):
        plan_long_videos(seconds=2.2)


def test_settings_are_checked_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"allowed values are \['casme_sq', 'samm_lv'\]"):
        plan_long_videos(layouts=["casme2"])
    with pytest.raises(ValueError, match="allowed values are"):
        plan_long_videos(style="test")
    with pytest.raises(ValueError, match="allowed values are"):
        plan_long_videos(variety="huge")
    with pytest.raises(ValueError, match="1 to 22 subjects"):
        plan_long_videos(subjects=23, layouts=["casme_sq"])
    with pytest.raises(ValueError, match="1 to 7 videos"):
        plan_long_videos(videos_per_subject=8)
    with pytest.raises(ValueError, match="at least 64x48"):
        plan_long_videos(samm_size=(60, 40))
    with pytest.raises(ValueError, match="positive length"):
        plan_long_videos(seconds=(10, 5))


def test_style_and_variety_change_only_their_own_fields():
    base = plan_long_videos(seed=5)
    held = plan_long_videos(seed=5, style="heldout")
    wide = plan_long_videos(seed=5, variety="wide")
    for b, h, w in zip(base.videos, held.videos, wide.videos):
        assert h.style == "heldout" and dataclasses.asdict(dataclasses.replace(h, style="train")) == dataclasses.asdict(b)
        assert [(e.onset, e.apex, e.offset, e.action_units) for e in w.expressions] == [
            (e.onset, e.apex, e.offset, e.action_units) for e in b.expressions
        ]
        for eb, ew in zip(b.expressions, w.expressions):
            ratio = ew.amplitude / eb.amplitude
            assert (0.59 <= ratio <= 3.01) if eb.kind == "micro" else (0.69 <= ratio <= 1.51)
    assert any(s.shape_gain > 1 for s in wide.subjects.values())
    for video in base.videos:  # one face, so one scale: every macro-expression is larger than every micro one
        micro = [e.amplitude for e in video.expressions if e.kind == "micro"]
        macro = [e.amplitude for e in video.expressions if e.kind == "macro"]
        assert not video.expressions or min(macro) > max(micro), video.key


# ----------------------------------------------------------------------------- courses
def test_time_courses_start_and_end_neutral():
    plan = plan_long_videos(seed=2)
    held = plan_long_videos(seed=2, style="heldout")
    held_any = False
    for video, other in zip(plan.videos, held.videos):
        for e, f in zip(video.expressions, other.expressions):
            course = expression_strength(video, e)
            assert course.shape == (e.num_frames,)
            assert course[0] == 0 and course[-1] < 1e-12 and (course[1:-1] > 0).all()
            assert course[e.apex - e.onset] == 1 and (course[e.apex - e.onset : e.apex - e.onset + e.hold + 1] == 1).all()
            assert course.max() == 1
            heldout = expression_strength(other, f)
            assert heldout[0] == 0 and heldout[-1] < 0.02 and heldout[e.apex - e.onset] == 1
            held_any |= not np.allclose(heldout, course)
        for b in video.blinks:
            lids = blink_strength(video, b)
            assert lids.shape == (b.end - b.start + 1,) and (lids > 0).all()
            assert lids.max() == pytest.approx(b.closure) and int(np.argmax(lids)) == b.closing - 1
    assert held_any, "the held-out style has its own time course"


def test_head_pose_is_the_clip_generators_motion_plus_the_turns():
    plan = plan_long_videos(subjects=3, videos_per_subject=3, seed=1)
    d = np.array([[100 + 3 * i, 120 + (i % 7) * 9] for i in range(68)], np.float64)
    with_turns = [v for v in plan.videos if v.turns]
    assert with_turns
    for video in plan.videos[:6] + with_turns[:2]:
        course = head_pose_course(video, d)
        assert course.shape == (video.num_frames, 2, 3)
        np.testing.assert_allclose(course[0], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
        # chunks of the course are the course
        np.testing.assert_allclose(head_pose_course(video, d, 100, 357), course[100:357], atol=1e-12)
        still = dataclasses.replace(video, turns=[])
        clip_course = head_motion_course({"num_frames": video.num_frames, "fps": video.fps, "head_motion": video.head_motion}, d)
        np.testing.assert_allclose(head_pose_course(still, d), clip_course, atol=1e-9)
        # every turn adds its planned peak (rotation) in its middle
        for turn in video.turns:
            mid = (turn.start + turn.end) / 2
            if mid == int(mid):
                a, b = course[int(mid)], head_pose_course(still, d, int(mid), int(mid) + 1)[0]
                angle = np.degrees(np.arctan2(a[1, 0], a[0, 0]) - np.arctan2(b[1, 0], b[0, 0]))
                assert angle == pytest.approx(turn.rotation_deg, abs=1e-6)
    # the manifest record gives the same course
    video = with_turns[0]
    record = json.loads(json.dumps(dataclasses.asdict(video)))
    np.testing.assert_allclose(head_pose_course(record, d), head_pose_course(video, d))
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        head_pose_course(video, d[:5])


# ----------------------------------------------------------------------------- pixels
def _support(aus, d, size, pad=3):
    """Boolean (H, W) mask of the 3.5-sigma boxes of every anchor of the action units."""
    width, height = size
    mask = np.zeros((height, width), bool)
    for au, side in aus:
        for p, _, sigma in _anchors(ACTION_UNIT_ANCHORS[au], d, _axes(d), side):
            r = 3.5 * sigma + pad
            mask[max(0, int(p[1] - r)) : int(p[1] + r) + 1, max(0, int(p[0] - r)) : int(p[0] + r) + 1] = True
    return mask


def _still_frame(plan, video, faces, t, **flags):
    return next(render_long_video(plan, video, faces, start=t, stop=t + 1, noise=False, head_motion=False, **flags)).astype(np.float64)


@pytest.mark.parametrize("style", ["train", "heldout"])
def test_an_apex_frame_differs_from_the_neutral_face_only_where_its_action_units_act(tiny_plan, base_faces, style):
    plan = plan_long_videos(**TINY, style=style)
    for video in plan.videos:
        if not video.expressions:
            continue
        d = long_video_landmarks(plan, video, base_faces)
        for e in video.expressions:
            neutral = _still_frame(plan, video, base_faces, e.onset, blinks=False)
            apex = _still_frame(plan, video, base_faces, e.apex, blinks=False)
            diff = np.abs(apex - neutral)
            diff = diff.max(axis=2) if diff.ndim == 3 else diff
            inside = _support([(a, s) for a, s, _ in e.action_units], d, video.frame_size)
            assert diff[~inside].max() == 0, f"{video.key} {e.name}: pixels moved outside AUs {e.au_string}"
            assert diff[inside].max() > (8 if e.kind == "macro" else 2), f"{video.key} {e.name} barely moves"
            # after the offset the face is neutral again
            after = _still_frame(plan, video, base_faces, e.offset + 1, blinks=False)
            assert np.abs(after - neutral).max() == 0


def test_a_blink_frame_differs_only_around_the_eyes(tiny_plan, base_faces):
    checked = 0
    for video in tiny_plan.videos:
        d = long_video_landmarks(tiny_plan, video, base_faces)
        eyes = _support([(45, "")], d, video.frame_size)
        for b in video.blinks:
            before = _still_frame(tiny_plan, video, base_faces, b.start - 1)
            closed = _still_frame(tiny_plan, video, base_faces, b.start + b.closing - 1)
            diff = np.abs(closed - before)
            diff = diff.max(axis=2) if diff.ndim == 3 else diff
            assert diff[~eyes].max() == 0 and diff[eyes].max() > 10, video.key
            # a box around both eyes' landmarks holds most of the change
            x0, y0 = d[36:48].min(axis=0) - 0.1 * (d[16, 0] - d[0, 0])
            x1, y1 = d[36:48].max(axis=0) + 0.1 * (d[16, 0] - d[0, 0])
            box = np.zeros_like(eyes)
            box[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = True
            assert diff[box].sum() > 0.9 * diff.sum()
            checked += 1
    assert checked >= 4


def test_frames_are_rendered_one_at_a_time(base_faces):
    plan = plan_long_videos(layouts=["casme_sq"], subjects=1, videos_per_subject=1, seconds=40, casme_size=(96, 72))
    video = plan.videos[0]
    frames = render_long_video(plan, video, base_faces)
    assert inspect.isgenerator(frames)
    frame_bytes = 96 * 72 * 3
    next(frames)  # the neutral face is drawn once, from the full-size photo
    tracemalloc.start()
    count = 1
    for frame in frames:
        assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
        count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == video.num_frames == 1200
    assert len(video.expressions) >= 6 and video.blinks and video.turns
    # the whole video is 1200 frames; the renderer holds its fixed maps, the current field and one frame
    assert peak < 60 * frame_bytes, f"peak {peak / 1e6:.2f} MB for {count} frames of {frame_bytes} bytes"
    # any window renders alone, identical to the same frames of the whole video (noise is keyed by frame)
    whole = list(render_long_video(plan, video, base_faces, start=0, stop=80))
    window = list(render_long_video(plan, video, base_faces, start=50, stop=80))
    assert all(np.array_equal(a, b) for a, b in zip(whole[50:], window))
    with pytest.raises(ValueError, match="outside"):
        render_long_video(plan, video, base_faces, start=10, stop=video.num_frames + 1)


# ----------------------------------------------------------------------------- written tree
def test_tree_matches_the_real_layouts(tiny_tree, tiny_plan):
    root, manifest = tiny_tree
    assert sorted(p.name for p in root.iterdir()) == sorted([".mie_synthetic_long", "CASME_sq", "SAMM", "SAMMLV", MANIFEST_FILE])
    assert (root / "CASME_sq" / "CAS(ME)^2code_final.xlsx").is_file()
    assert (root / "SAMMLV" / "SAMM_LongVideos_V2_Release.xlsx").is_file()
    assert (root / "SAMM" / "SAMM_20181215_Micro_FACS_Codes_v2.xlsx").is_file()
    assert sorted(p.name for p in (root / "CASME_sq" / "rawpic").iterdir()) == ["s15", "s16"]
    assert sorted(p.name for p in (root / "CASME_sq" / "rawpic" / "s16").iterdir()) == ["16_0101disgustingteeth", "16_0102eatingworms"]
    assert sorted(p.name for p in (root / "SAMMLV" / "SAMM_longvideos").iterdir()) == ["006_1", "006_2", "007_1", "007_2"]
    for video in tiny_plan.videos:
        folder = root / video.relative_dir()
        names = sorted(p.name for p in folder.iterdir())
        assert len(names) == video.num_frames
        if video.layout == "casme_sq":
            assert folder.parent.parent == root / "CASME_sq" / "rawpic"
            assert re.fullmatch(rf"{video.subject[1:]}_\d{{4}}[a-z]+", folder.name)
            assert names == [f"img{n:03d}.jpg" for n in range(1, video.num_frames + 1)]
            assert names[0] == "img001.jpg" and names[-1] == "img150.jpg"
        else:
            assert folder.parent == root / "SAMMLV" / "SAMM_longvideos"
            assert names == [f"{video.video}_{n:04d}.jpg" for n in range(1, video.num_frames + 1)]
            assert names[-1] == f"{video.video}_1000.jpg"
        for name in (names[0], names[-1]):
            frame = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
            width, height = video.frame_size
            assert frame.shape == ((height, width) if video.layout == "samm_lv" else (height, width, 3))
    assert [v["key"] for v in manifest["videos"]] == [v.key for v in tiny_plan.videos]


def test_workbooks_match_the_manifest(tiny_tree):
    root, manifest = tiny_tree
    videos = {layout: [v for v in manifest["videos"] if v["layout"] == layout] for layout in ("casme_sq", "samm_lv")}
    # CAS(ME)^2: no header; 1-based frame numbers; naming rule1 row-aligned; naming rule2 codes as text
    book = openpyxl.load_workbook(root / "CASME_sq" / "CAS(ME)^2code_final.xlsx")
    assert book.sheetnames == ["CASFEcode_final", "naming rule1", "naming rule2"]
    rows = [list(r) for r in book["CASFEcode_final"].iter_rows(values_only=True)]
    expected = [
        [v["subject_index"], e["name"], e["onset"] + 1, e["apex"] + 1, e["offset"] + 1,
         int(e["au_string"]) if e["au_string"].isdigit() else e["au_string"], e["megc_class"],
         f"{e['kind']}-expression", e["emotion"]]
        for v in videos["casme_sq"] for e in v["expressions"]
    ]
    assert rows == expected and len(rows) >= 6
    assert isinstance(rows[0][0], int) and rows[0][1].startswith("disgust1_")
    rule1 = [list(r) for r in book["naming rule1"].iter_rows(values_only=True)]
    assert rule1 == [[int(CASME_SQ_SUBJECTS[r[0] - 1][1:]), CASME_SQ_SUBJECTS[r[0] - 1], r[0]] for r in rows]
    assert rule1[0] == [15, "s15", 1]
    rule2 = [list(r) for r in book["naming rule2"].iter_rows(values_only=True)]
    assert rule2 == [[code, name] for code, name, _ in CASME_SQ_VIDEOS] and rule2[0] == ["0101", "disgust1"]
    # the blinks-only video has no rows
    quiet = [v for v in videos["casme_sq"] if v["blinks_only"]]
    assert len(quiet) == 1 and not quiet[0]["expressions"]
    assert all(r[1].split("_")[0] != quiet[0]["video_name"] or r[0] != quiet[0]["subject_index"] for r in rows)

    # SAMM-LV: rows 1-9 notes (9: the apex note), row 10 the header, Duration = Offset - Onset + 1
    sheet = openpyxl.load_workbook(root / "SAMMLV" / "SAMM_LongVideos_V2_Release.xlsx")
    assert sheet.sheetnames == ["FACS_Movement_Only"]
    cells = [list(r) for r in sheet["FACS_Movement_Only"].iter_rows(values_only=True)]
    assert cells[8][0] == "Subjects with Apex Frame not annotated were labelled as -1"
    assert all(c[1:] == [None] * (len(c) - 1) for c in cells[:9])
    assert cells[9] == SAMM_LV_HEADER
    expected = [
        [v["subject"], e["name"], v["inducement"], e["onset"] + 1, e["apex"] + 1, e["offset"] + 1,
         e["offset"] - e["onset"] + 1, "Macro" if e["kind"] == "macro" else "Micro - 1/2", e["au_string"], None]
        for v in videos["samm_lv"] for e in v["expressions"]
    ]
    assert cells[10:] == expected and len(expected) >= 6
    assert cells[10][0] == "006" and cells[10][1] == "006_1_1"
    assert all(r[6] == r[5] - r[3] + 1 for r in cells[10:])
    # SAMM emotions: one header row, the micro rows with their emotion, mergeable on (Filename, Type)
    emotions = [list(r) for r in openpyxl.load_workbook(root / "SAMM" / "SAMM_20181215_Micro_FACS_Codes_v2.xlsx").active.iter_rows(values_only=True)]
    assert emotions[0] == SAMM_EMOTION_HEADER
    micro = {(e["name"], "Micro - 1/2"): e["emotion"] for v in videos["samm_lv"] for e in v["expressions"] if e["kind"] == "micro"}
    assert {(r[1], r[7]): r[9] for r in emotions[1:]} == micro and len(micro) >= 3
    assert all(r[9] in ("Anger", "Contempt", "Disgust", "Fear", "Sadness", "Happiness", "Surprise") for r in emotions[1:])


def test_manifest_holds_the_exact_truth(tiny_tree, tiny_plan, base_faces):
    root, manifest = tiny_tree
    assert manifest == read_long_manifest(root)
    assert manifest["seed"] == 0 and manifest["style"] == "train" and manifest["fps"] == {"casme_sq": 30, "samm_lv": 200}
    for record, video in zip(manifest["videos"], tiny_plan.videos):
        assert record["fps"] == video.fps and record["frame_size"] == list(video.frame_size)
        assert record["num_frames"] == video.num_frames and record["seed"] == 0 and record["style"] == "train"
        assert record["expressions"] == json.loads(json.dumps([dataclasses.asdict(e) for e in video.expressions]))
        for e in record["expressions"]:
            assert {"onset", "apex", "offset", "kind", "emotion", "megc_class", "action_units", "hold"} <= set(e)
        assert [(b["start"], b["end"]) for b in record["blinks"]] == [(b.start, b.end) for b in video.blinks]
        assert record["head_motion"] is not None and len(record["head_motion"]) == 4
        np.testing.assert_array_equal(record["dlib68"], long_video_landmarks(tiny_plan, video, base_faces))
        assert record["jpeg_quality"] == (90 if video.layout == "casme_sq" else 85)
    with pytest.raises(MieInputError, match="not a finished"):
        read_long_manifest(root / "CASME_sq")


def test_a_rerun_skips_finished_videos_and_redoes_the_rest(tmp_path, base_faces):
    plan = plan_long_videos(layouts=["casme_sq"], subjects=1, videos_per_subject=2, seconds=5, casme_size=(96, 72))
    root = tmp_path / "run"
    generate_long_videos(root, plan, faces=base_faces)
    first = _tree_digest(root)
    kept, redone = plan.videos
    marker = root / ".mie_synthetic_long" / "done" / f"casme_sq__s15__{redone.video}.json"
    assert marker.is_file()
    marker.unlink()  # as if the run had been killed while writing this video
    (root / redone.relative_dir() / "img150.jpg").unlink()
    stamp = (root / kept.relative_dir() / "img001.jpg").stat().st_mtime_ns
    calls = []
    generate_long_videos(root, plan, faces=base_faces, progress=lambda v, done, total, s: calls.append((v.key, s)))
    assert calls[0] == (kept.key, None) and calls[1][0] == redone.key and calls[1][1] is not None
    assert (root / kept.relative_dir() / "img001.jpg").stat().st_mtime_ns == stamp
    assert _tree_digest(root) == first, "the same settings write the same bytes"
    # other settings are refused, a foreign folder too; overwrite starts again
    other = plan_long_videos(layouts=["casme_sq"], subjects=1, videos_per_subject=2, seconds=6, casme_size=(96, 72))
    with pytest.raises(MieInputError, match=r"other settings \(seconds \[5.0, 5.0\] -> \[6.0, 6.0\]\)"):
        generate_long_videos(root, other, faces=base_faces)
    generate_long_videos(root, other, faces=base_faces, overwrite=True)
    assert len(list((root / kept.relative_dir()).iterdir())) == 180
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(MieInputError, match="not written by mie's long-video generator"):
        generate_long_videos(foreign, plan, faces=base_faces, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_command_line(tmp_path, monkeypatch, capsys, base_faces):
    monkeypatch.setattr("modeling_mie.synthetic_long.load_base_faces", lambda *a, **k: base_faces)
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--layout", "samm_lv", "--subjects", "1", "--seconds", "4.5", "--samm-size", "128x68", "--style", "heldout"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "2 videos of 1 subjects" in text and "[1/2] samm_lv/006/006_" in text and "[2/2]" in text and "frames/s" in text
    manifest = read_long_manifest(out)
    assert manifest["style"] == "heldout" and manifest["videos"][0]["frame_size"] == [128, 68]
    assert all(v["jpeg_quality"] == 55 for v in manifest["videos"])
    assert main(argv) == 0 and "finished earlier, kept" in capsys.readouterr().out
    assert main(argv[:-2]) == 2 and "other settings" in capsys.readouterr().err
    assert parse_args(["--out", "x"]).samm_size == (680, 363)
    assert parse_args(["--out", "x", "--blinks-only"]).blinks_only
    with pytest.raises(SystemExit):
        parse_args(["--out", "x", "--samm-size", "680"])
    with pytest.raises(SystemExit):
        parse_args(["--out", "x", "--seconds", "1", "2", "3"])
    assert main(["--out", str(tmp_path / "short"), "--seconds", "1"]) == 2 and "too short" in capsys.readouterr().err
