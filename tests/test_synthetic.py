"""Synthetic micro-expressions: plan, action-unit fields, layouts, workbooks, determinism, locality, loaders."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from modeling_mie.errors import MieInputError
from modeling_mie.synthetic import (
    MARKER_FILE,
    PANEL_SIZE,
    draw_synthetic_clip,
    generate_synthetic_dataset,
    load_base_faces,
    main,
    parse_args,
    read_synthetic_manifest,
    region_boxes,
)
from modeling_mie.synthetic import _encode as encode_frame
from modeling_mie.synthetic_faces import (
    ACTION_UNIT_ANCHORS,
    action_unit_field,
    blink_course,
    expression_course,
    head_motion_course,
    render_synthetic_clip,
)
from modeling_mie.synthetic_plan import (
    HEAD_MOTION_ROTATION_DEG,
    HEAD_MOTION_SCALE,
    HEAD_MOTION_TRANSLATION,
    plan_synthetic_dataset,
)

openpyxl = pytest.importorskip("openpyxl", reason="the workbooks are .xlsx files (a core dependency)")
cv2 = pytest.importorskip("cv2", reason="frames are encoded with OpenCV (a core dependency)")

MEGC_COUNTS = {"smic": (70, 51, 43), "casme2": (88, 32, 25), "samm": (92, 26, 15)}
MEGC_MAP = {
    "casme2": {"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2},
    "samm": {"Anger": 0, "Contempt": 0, "Disgust": 0, "Fear": 0, "Sadness": 0, "Happiness": 1, "Surprise": 2},
    "smic": {"negative": 0, "positive": 1, "surprise": 2},
}


@pytest.fixture(scope="session")
def base_faces(landmarker_path):
    return load_base_faces(landmarker_path)


@pytest.fixture(scope="session")
def tiny(synthetic_tiny):
    """The tiny profile, seed 0, generated once per session (shared with the LOSO tests)."""
    return synthetic_tiny


@pytest.fixture(scope="session")
def manifest(tiny):
    return read_synthetic_manifest(tiny.root)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- plan
def test_megc2019_plan_matches_the_composite():
    plan = plan_synthetic_dataset("megc2019", 0)
    listed = [c for c in plan.clips if c.megc_row() is not None]
    assert len(listed) == 442
    for database, counts in MEGC_COUNTS.items():
        got = collections.Counter(c.label for c in listed if c.database == database)
        assert (got[0], got[1], got[2]) == counts, database
    subjects = {db: {c.subject for c in listed if c.database == db} for db in MEGC_COUNTS}
    assert {db: len(s) for db, s in subjects.items()} == {"smic": 16, "casme2": 24, "samm": 28}
    # subjects whose only clips the composite drops, as in the real workbooks
    on_disk = collections.Counter(s.database for s in plan.subjects.values())
    assert on_disk == {"smic": 16, "casme2": 26, "samm": 29}
    assert {"sub10", "sub18"} <= {c.subject for c in plan.clips if c.database == "casme2"} - subjects["casme2"]
    # uneven over subjects, like the real list: s3 holds 39 clips, several subjects 1 or 2
    per_subject = collections.Counter((c.database, c.subject) for c in listed)
    assert per_subject[("smic", "s3")] == 39 and min(per_subject.values()) == 1
    # real clip lengths: SMIC 100 fps up to 58 frames; CASME II / SAMM 200 fps, longer
    lengths = {db: [c.offset_index - c.onset_index + 1 for c in listed if c.database == db] for db in MEGC_COUNTS}
    assert 11 <= min(lengths["smic"]) and max(lengths["smic"]) <= 58 and 25 < np.mean(lengths["smic"]) < 40
    assert 24 <= min(lengths["casme2"]) and max(lengths["casme2"]) <= 130 and 55 < np.mean(lengths["casme2"]) < 80
    assert 30 <= min(lengths["samm"]) and max(lengths["samm"]) <= 110 and 55 < np.mean(lengths["samm"]) < 80
    # unlabelled blinks in clips of every class of every database
    for database in MEGC_COUNTS:
        for label in (0, 1, 2):
            group = [c for c in listed if c.database == database and c.label == label]
            assert 0 < sum(c.blink is not None for c in group) < len(group), (database, label)


def test_plan_is_a_function_of_the_seed():
    a, b, c = (plan_synthetic_dataset("megc2019", s) for s in (3, 3, 4))
    assert a == b
    assert a.clips != c.clips
    with pytest.raises(ValueError, match="allowed values"):
        plan_synthetic_dataset("huge", 0)


def test_expressions_per_class_and_timing():
    plan = plan_synthetic_dataset("megc2019", 0)
    negative = {4, 9, 10, 14, 15, 17}
    for clip in plan.clips:
        aus = {a for a, _, _ in clip.action_units}
        if clip.label == 1:
            assert 12 in aus and aus <= {6, 12}
        elif clip.label == 2:
            assert {1, 2} <= aus <= {1, 2, 5, 26}
        elif clip.label == 0:
            assert aus and aus <= negative
        if clip.kind != "micro":
            continue
        course = expression_course(clip)
        assert course[clip.onset_index] == 0.0
        assert course[clip.apex_index] == pytest.approx(1.0) and course.argmax() == clip.apex_index
        assert course[clip.offset_index] <= 0.15 + 1e-9
        assert clip.onset_index < clip.apex_index < clip.offset_index
        assert 0.0 <= blink_course(clip).max() <= 1.0
        # a few px per 300 px of face
        assert 2.5 <= clip.amplitude * 300 / plan.subject_of(clip).face_width <= 5.5
    # apex timing and durations vary
    relative = [(c.apex_index - c.onset_index) / (c.offset_index - c.onset_index) for c in plan.clips if c.kind == "micro"]
    assert min(relative) < 0.3 and max(relative) > 0.55
    assert len({c.num_frames for c in plan.clips}) > 50


# ----------------------------------------------------------------------------- action units
def test_action_unit_fields_move_the_right_landmarks(base_faces):
    face = base_faces["grace_hopper"]
    d = face.dlib68
    height, width = face.image.shape[:2]

    def at(field, i):
        dx, dy = field
        x, y = np.round(d[i]).astype(int)
        return np.array([dx[y, x], dy[y, x]])

    for au in ACTION_UNIT_ANCHORS:
        dx, dy = action_unit_field(au, d, (width, height), 3.0)
        assert np.sqrt(dx**2 + dy**2).max() == pytest.approx(3.0, rel=1e-4), au
    up = lambda v: -v[1]  # noqa: E731 - image y grows downwards
    assert up(at(action_unit_field(12, d, (width, height), 3.0), 48)) > 0.5  # corners up
    assert at(action_unit_field(12, d, (width, height), 3.0), 48)[0] < -0.5  # and out (image-left corner)
    assert at(action_unit_field(12, d, (width, height), 3.0), 54)[0] > 0.5
    assert up(at(action_unit_field(15, d, (width, height), 3.0), 54)) < -1.0  # corners down
    assert up(at(action_unit_field(1, d, (width, height), 3.0), 21)) > 1.5  # inner brows up
    au4 = action_unit_field(4, d, (width, height), 3.0)
    assert up(at(au4, 21)) < -1.0 and at(au4, 21)[0] > 0.5 and at(au4, 22)[0] < -0.5  # down and together
    assert up(at(action_unit_field(26, d, (width, height), 3.0), 57)) < -2.0  # lower lip down
    assert up(at(action_unit_field(17, d, (width, height), 3.0), 57)) > 0.5  # lower lip pushed up
    # unilateral: R12 moves the subject's right corner (image left) only
    r12 = action_unit_field(12, d, (width, height), 3.0, side="R")
    assert np.linalg.norm(at(r12, 48)) > 1.0 and np.linalg.norm(at(r12, 54)) < 0.05
    # local: brow and lid AUs leave the mouth and chin alone, mouth AUs the brows and eyes, ...
    untouched = {
        (1, 2, 4, 5): (48, 54, 57, 8),
        (10, 12, 14, 15, 17, 26): (19, 24, 37, 44),
        (9,): (48, 54, 8, 36, 45),
        (6,): (19, 24, 57, 8),
    }
    for aus, points in untouched.items():
        for au in aus:
            field = action_unit_field(au, d, (width, height), 3.0)
            for i in points:
                assert np.linalg.norm(at(field, i)) < 0.15, (au, i)
            assert np.hypot(*field)[: height // 20].max() == 0.0  # nothing moves at the top of the picture
    with pytest.raises(ValueError, match="implemented AUs"):
        action_unit_field(99, d, (width, height), 3.0)


def test_subjects_look_alike_across_clips_and_differ_from_each_other(tiny, base_faces):
    plan = tiny.plan
    # two astronaut subjects of CASME II, two clips of the first
    sub01 = [c for c in plan.clips if c.database == "casme2" and c.subject == "sub01"]
    sub03 = [c for c in plan.clips if c.database == "casme2" and c.subject == "sub03"]
    assert plan.subject_of(sub01[0]).face == plan.subject_of(sub03[0]).face
    first = lambda clip: render_synthetic_clip(plan, clip, base_faces, nuisances=False)[0][0].astype(np.float32)  # noqa: E731
    same = np.abs(first(sub01[0]) - first(sub01[1])).mean()
    other = np.abs(first(sub01[0]) - first(sub03[0])).mean()
    assert other > 3 * same, (same, other)


# ----------------------------------------------------------------------------- layouts
def test_casme2_tree(tiny, manifest):
    root = tiny.roots["casme2"]
    assert (root / "CASME2-coding-20140508.xlsx").is_file()
    clips = [c for c in manifest["clips"] if c["database"] == "casme2"]
    crossing = False
    for clip in clips:
        folder = tiny.root / clip["path"]
        assert folder.parent.parent == root / "CASME2_RAW_selected" and re.fullmatch(r"sub\d\d", folder.parent.name)
        names = sorted(p.name for p in folder.iterdir())
        numbers = sorted(int(re.fullmatch(r"img(\d+)\.jpg", n).group(1)) for n in names)
        # onset..offset only, unpadded, first file = onset
        assert numbers == list(range(clip["onset"], clip["offset"] + 1))
        crossing |= numbers[0] < 10 <= numbers[-1]
        frame = cv2.imread(str(folder / f"img{numbers[0]}.jpg"), cv2.IMREAD_UNCHANGED)
        assert frame.shape == (192, 256, 3)
    assert crossing, "no clip where img9 < img10 must sort by number"


def test_samm_tree(tiny, manifest):
    root = tiny.roots["samm"]
    widths = set()
    for clip in (c for c in manifest["clips"] if c["database"] == "samm"):
        folder = tiny.root / clip["path"]
        subject = folder.parent.name
        assert folder.parent.parent == root and re.fullmatch(r"\d{3}", subject)
        assert re.fullmatch(rf"{subject}_[1-7]_\d+", folder.name)
        names = sorted(p.name for p in folder.iterdir())
        matches = [re.fullmatch(rf"{subject}_(\d{{4,5}})\.jpg", n) for n in names]
        assert all(matches)
        widths |= {len(m.group(1)) for m in matches}
        numbers = sorted(int(m.group(1)) for m in matches)
        assert numbers[0] > 1 and numbers == list(range(numbers[0], numbers[-1] + 1))
        # the folder holds the onset..offset range (and a few frames around it)
        assert numbers[0] <= clip["onset"] < clip["offset"] <= numbers[-1]
        frame = cv2.imread(str(folder / names[0]), cv2.IMREAD_UNCHANGED)
        assert frame.ndim == 2 and frame.shape == (180, 340)  # greyscale JPG
    assert widths == {4, 5}


def test_smic_tree(tiny, manifest):
    hs = tiny.roots["smic"] / "SMIC_all_raw" / "HS"
    subjects = sorted(p.name for p in hs.iterdir())
    assert subjects == ["s1", "s2", "s3"]  # not zero-padded on disk
    assert (hs / "s1" / "non_micro").is_dir() and (hs / "s1" / "micro").is_dir()
    crossing = False
    for clip in (c for c in manifest["clips"] if c["database"] == "smic"):
        folder = tiny.root / clip["path"]
        code = re.fullmatch(r"s(\d+)_(ne|po|sur)_(\d\d)", folder.name)
        assert code and folder.parent.name == {"ne": "negative", "po": "positive", "sur": "surprise"}[code.group(2)]
        assert folder.parent.parent.name == clip["kind"]
        counters = [re.fullmatch(r"image(\d+)\.bmp", p.name).group(1) for p in folder.iterdir()]
        assert all(5 <= len(c) <= 8 for c in counters)
        numbers = sorted(int(c) for c in counters)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        crossing |= sorted(counters) != [str(n) for n in numbers]
        frame = cv2.imread(str(folder / f"image{counters[0]}.bmp"), cv2.IMREAD_UNCHANGED)
        assert frame.shape == (192, 256, 3)
    assert crossing, "no clip whose frame names only sort by their number"


def test_casme2_workbook(tiny, manifest):
    book = openpyxl.load_workbook(tiny.roots["casme2"] / "CASME2-coding-20140508.xlsx")
    assert book.sheetnames == ["Sheet1"]
    rows = list(book["Sheet1"].iter_rows(values_only=True))
    assert rows[0] == ("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units", "Estimated Emotion")
    clips = {(c["subject"], c["clip"]): c for c in manifest["clips"] if c["database"] == "casme2"}
    assert len(rows) - 1 == len(clips)
    kinds = set()
    for subject, filename, blank1, onset, apex, offset, blank2, aus, emotion in rows[1:]:
        kinds.add(type(subject))
        clip = clips[(f"sub{int(subject):02d}", filename)]
        assert blank1 is None and blank2 is None
        assert (onset, offset) == (clip["onset"], clip["offset"])
        assert apex == clip["annotated_apex"] and emotion == clip["emotion"] == emotion.lower()
        assert re.fullmatch(r"[LR]?\d+(\+[LR]?\d+)*", aus)
    assert kinds == {str, int}  # Subject as text "01" and as the number 2
    apexes = [r[4] for r in rows[1:]]
    assert "/" in apexes and any(r[4] == r[3] for r in rows[1:])  # sub04/EP12_01f and sub05/EP09_05f quirks
    assert {"others", "disgust", "repression", "happiness", "surprise"} <= {r[8] for r in rows[1:]}


def test_samm_workbook(tiny, manifest):
    book = openpyxl.load_workbook(tiny.roots["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert book.sheetnames == ["MICRO_ONLY"]
    rows = list(book["MICRO_ONLY"].iter_rows(values_only=True))
    header = (
        "Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration", "Micro",
        "Action Units", "Estimated Emotion", "Objective Classes", "Notes",
    )
    assert rows[13] == header  # 13 note rows, the header on row 14
    assert all(r[0] != "Subject" and all(c is None for c in r[1:]) for r in rows[:13])  # notes in column A only
    assert sum(r[0] is not None for r in rows[:13]) >= 10
    clips = {c["clip"]: c for c in manifest["clips"] if c["database"] == "samm"}
    assert len(rows) - 14 == len(clips)
    for subject, filename, inducement, onset, apex, offset, duration, micro, aus, emotion, objective, _ in rows[14:]:
        clip = clips[filename]
        assert subject == clip["subject"] and re.fullmatch(r"\d{3}", subject)  # text '006'
        assert filename.startswith(f"{subject}_{inducement}_")
        assert (onset, apex, offset) == (clip["onset"], clip["annotated_apex"], clip["offset"])
        assert duration == offset - onset + 1 and micro == "Micro" and 1 <= objective <= 7
        assert emotion == emotion.capitalize()
    emotions = {r[9] for r in rows[14:]}
    assert "Other" in emotions and {"Happiness", "Surprise"} <= emotions
    # the apex of one listed clip lies outside its frames, as SAMM 028_4_1 and 032_3_1
    outside = [c for c in clips.values() if c["quirk"] == "apex_outside"]
    assert outside and all(c["annotated_apex"] > c["first_frame"] + c["num_frames"] - 1 for c in outside)


def test_megc_list(tiny, manifest):
    raw = tiny.ground_truth.read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    rows = [line.split(",") for line in raw.decode().split("\r\n")[:-1]]
    assert len(rows) == tiny.listed == 30 and all(len(r) == 4 for r in rows)
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), key=["casme2", "smic", "samm"].index)
    by_key = {tuple(c["megc"][:3]): c for c in manifest["clips"] if c["megc"]}
    for db, subject, filename, label in rows:
        clip = by_key[(db, subject, filename)]
        assert int(label) == clip["label"] == MEGC_MAP[db][clip["emotion"]]
        if db == "smic":
            assert re.fullmatch(r"s\d\d", subject) and filename.startswith(subject + "_")
            assert clip["subject"] == f"s{int(subject[1:])}"
        elif db == "samm":
            assert subject == str(int(clip["subject"])) and not subject.startswith("0")
        else:
            assert re.fullmatch(r"sub\d\d", subject)
    dropped = [c for c in manifest["clips"] if c["megc"] is None]
    assert {c["emotion"] for c in dropped} >= {"others", "Other"}


# ----------------------------------------------------------------------------- determinism, resume, command
def test_same_seed_same_bytes(tiny, base_faces, tmp_path):
    again = generate_synthetic_dataset(tmp_path / "again", "tiny", 0, workers=1, faces=base_faces)
    assert _tree_digest(again.root) == _tree_digest(tiny.root)


def test_resume_redoes_only_missing_clips_and_refusals(tiny, tmp_path, monkeypatch, base_faces, capsys):
    out = tmp_path / "copy"
    shutil.copytree(tiny.root, out)
    victim, damaged = tiny.plan.clips[5], tiny.plan.clips[20]
    shutil.rmtree(out / victim.relative_dir())
    (out / damaged.relative_dir() / damaged.frame_names()[3]).unlink()
    (out / ".partial" / "junk").mkdir(parents=True)  # what a killed run leaves
    (out / "synthetic_manifest.json").unlink()
    # a non-empty folder is refused without a flag, and a foreign one even with --overwrite
    with pytest.raises(MieInputError, match="not empty"):
        generate_synthetic_dataset(out, "tiny", 0, faces=base_faces)
    with pytest.raises(MieInputError, match="seed 0"):
        generate_synthetic_dataset(out, "tiny", 1, resume=True, faces=base_faces)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(MieInputError, match="not written by mie"):
        generate_synthetic_dataset(foreign, "tiny", 0, overwrite=True, faces=base_faces)
    assert (foreign / "thesis.tex").read_text() == "keep me"
    assert main(["--out", str(foreign), "--profile", "tiny"]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--out", str(foreign), "--overwrite", "--resume"])

    # the command resumes: the missing and the damaged clip are rendered, the rest kept, and the
    # result has the same bytes as a full run
    monkeypatch.setattr("modeling_mie.synthetic.load_base_faces", lambda *a, **k: base_faces)
    picture = tmp_path / "clip.png"
    assert main(["--out", str(out), "--profile", "tiny", "--resume", "--picture", str(picture)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("mie synthetic: profile tiny, seed 0")
    assert "2 clips rendered, 33 kept" in printed
    assert _tree_digest(out) == _tree_digest(tiny.root)
    assert picture.is_file()


# ----------------------------------------------------------------------------- head motion
@pytest.mark.parametrize("profile", ["tiny", "megc2019"])
def test_head_motion_changes_no_other_draw_of_the_plan(profile):
    still = plan_synthetic_dataset(profile, 5)
    moving = plan_synthetic_dataset(profile, 5, head_motion=True)
    assert not still.head_motion and moving.head_motion
    assert all(c.head_motion is None for c in still.clips)
    # every clip moves: listed, dropped and SMIC non_micro ones
    assert all(c.head_motion is not None for c in moving.clips)
    assert {c.kind for c in moving.clips} == ({"micro", "non_micro"}) and any(c.label is None for c in moving.clips)
    assert [dataclasses.replace(c, head_motion=None) for c in moving.clips] == still.clips
    assert moving.subjects == still.subjects
    assert len({c.head_motion for c in moving.clips}) == len(moving.clips)  # drawn per clip
    assert plan_synthetic_dataset(profile, 5, head_motion=True) == moving
    assert plan_synthetic_dataset(profile, 6, head_motion=True).clips[0].head_motion != moving.clips[0].head_motion


def _components(course, dlib68):
    """(rotation deg, tx px, ty px, scale - 1) per frame of a similarity course about the landmarks' mean."""
    centre = np.asarray(dlib68, np.float64).mean(axis=0)
    rotation = np.degrees(np.arctan2(course[:, 1, 0], course[:, 0, 0]))
    scale = np.hypot(course[:, 0, 0], course[:, 1, 0]) - 1
    shift = course[:, :, :2] @ centre + course[:, :, 2] - centre  # where the face centre goes
    return rotation, shift[:, 0], shift[:, 1], scale


def test_head_motion_course_starts_still_and_reaches_its_peaks():
    plan = plan_synthetic_dataset("megc2019", 0, head_motion=True)
    rng = np.random.default_rng(0)
    rotations, shifts, scales = [], [], []
    for clip in plan.clips:
        d = rng.uniform(50, 250, (68, 2))
        course = head_motion_course(clip, d)
        assert course.shape == (clip.num_frames, 2, 3) and course.dtype == np.float64
        assert np.array_equal(course[0], np.eye(2, 3))  # the manifest's landmarks are the first frame's
        # a similarity: equal scale on both axes, no shear
        assert np.allclose(course[:, 0, 0], course[:, 1, 1]) and np.allclose(course[:, 0, 1], -course[:, 1, 0])
        (rotation, *_), (tx, *_), (ty, *_), (scale, *_) = clip.head_motion
        for got, peak in zip(_components(course, d), (rotation, tx, ty, scale)):
            extreme = got[np.argmax(np.abs(got))]
            assert extreme == pytest.approx(peak, abs=1e-6), (clip.key, peak, extreme)
        for _, f1, f2, _, _ in clip.head_motion:
            assert 0.5 <= f1 <= 3.0 and 0.5 <= f2 <= 3.0
        face_width = plan.subject_of(clip).face_width
        rotations.append(rotation)
        shifts.append(math.hypot(tx, ty) * 300 / face_width)
        scales.append(scale)
        # smooth (waves of 3 Hz at most, sampled at 100-200 fps): the turn changes little from one
        # frame to the next (a random walk scores about 1.4 here)
        turn = np.diff(_components(course, d)[0])
        assert np.abs(np.diff(turn)).max() < 0.5 * np.abs(turn).max(), clip.key
    rotations, shifts, scales = np.array(rotations), np.array(shifts), np.array(scales)
    assert np.abs(rotations).max() <= HEAD_MOTION_ROTATION_DEG and np.abs(rotations).max() > 9.5
    assert rotations.min() < -9 and rotations.max() > 9
    assert shifts.max() <= HEAD_MOTION_TRANSLATION + 1e-3 and shifts.max() > 28 and shifts.min() < 2
    assert np.abs(scales).max() <= HEAD_MOTION_SCALE and scales.min() < -0.07 and scales.max() > 0.07
    # no motion: the identity in every frame
    still = plan_synthetic_dataset("tiny", 0).clips[0]
    assert np.array_equal(head_motion_course(still, d), np.broadcast_to(np.eye(2, 3), (still.num_frames, 2, 3)))
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        head_motion_course(plan.clips[0], d[:5])


def _warped(frame, affine):
    """`frame` warped by `affine` as the generator warps (bicubic, reflected border), in uint8 steps."""
    height, width = frame.shape[:2]
    out = cv2.warpAffine(frame.astype(np.float32), affine, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(np.rint(out), 0, 255)


def _assert_moved_by(moved, still, affine, dlib68):
    """`moved` is `still` warped by `affine` within 1 grey level.

    Except where the kernel straddles the edge of what the still frame clips at 0 or 255 (hat,
    flag, collar; some of the face too): the generator warps before it rounds and clips, and a
    uint8 frame has lost what lay beyond. The bicubic kernel reaches 2 px from the source point,
    which rounding moves by up to 0.5 px: a 7 x 7 neighbourhood. Most of the face box (around
    `dlib68` (68, 2), still-frame px, moved) must remain compared.
    """
    height, width = still.shape[:2]
    diff = np.abs(moved.astype(np.float32) - _warped(still, affine))
    clipped = (still == 0) | (still == 255)
    if still.ndim == 3:
        diff, clipped = diff.max(axis=2), clipped.any(axis=2)
    window = np.ones((7, 7), np.uint8)
    edge = cv2.dilate(clipped.astype(np.uint8), window) & cv2.dilate((~clipped).astype(np.uint8), window)
    edge = cv2.warpAffine(edge, affine, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101) > 0
    face = np.asarray(dlib68) @ affine[:, :2].T + affine[:, 2]
    (x0, y0), (x1, y1) = np.floor(face.min(axis=0)).astype(int), np.ceil(face.max(axis=0)).astype(int)
    assert edge[max(y0, 0) : y1, max(x0, 0) : x1].mean() < 0.5
    assert diff[~edge].max() <= 1.0


def test_head_motion_is_a_warp_of_the_still_clip(base_faces):
    plan = plan_synthetic_dataset("tiny", 0, head_motion=True)
    for database in ("casme2", "samm", "smic"):
        # the clip of the database that turns the most
        clip = max((c for c in plan.clips if c.database == database), key=lambda c: abs(c.head_motion[0][0]))
        moved, d = render_synthetic_clip(plan, clip, base_faces, nuisances=False)
        still, d_still = render_synthetic_clip(plan, clip, base_faces, nuisances=False, head_motion=False)
        assert np.array_equal(d, d_still)
        course = head_motion_course(clip, np.round(d, 2))
        assert np.array_equal(moved[0], still[0])  # the head starts where the landmarks are
        for t in range(clip.num_frames):
            _assert_moved_by(moved[t], still[t], course[t], d)
        extreme = int(np.argmax(np.abs(_components(course, d)[0])))
        assert np.abs(moved[extreme].astype(np.float32) - still[extreme]).mean() > 5, clip.key  # it really moves

        # the motion alone: no action unit, so every frame is the first one moved
        alone, _ = render_synthetic_clip(plan, clip, base_faces, nuisances=False, expression=False)
        frozen, _ = render_synthetic_clip(plan, clip, base_faces, nuisances=False, expression=False, head_motion=False)
        assert all(np.array_equal(f, frozen[0]) for f in frozen)
        assert np.array_equal(alone[0], frozen[0])
        for t in range(clip.num_frames):
            _assert_moved_by(alone[t], alone[0], course[t], d)
        # and the expression is what `expression=False` removes
        assert np.abs(still[clip.apex_index].astype(np.float32) - still[0]).max() > 5


def test_head_motion_dataset_marker_manifest_and_resume(tiny, base_faces, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("modeling_mie.synthetic.load_base_faces", lambda *a, **k: base_faces)
    out = tmp_path / "moving"
    assert parse_args(["--out", str(out), "--head-motion"]).head_motion
    assert not parse_args(["--out", str(out)]).head_motion
    assert main(["--out", str(out), "--profile", "tiny", "--head-motion"]) == 0
    assert capsys.readouterr().out.startswith("mie synthetic: profile tiny, seed 0, head motion: 35 clips")
    marker = json.loads((out / MARKER_FILE).read_text())
    assert marker["head_motion"] is True and json.loads((tiny.root / MARKER_FILE).read_text())["head_motion"] is False
    manifest = read_synthetic_manifest(out)
    assert manifest["head_motion"] is True and read_synthetic_manifest(tiny.root)["head_motion"] is False
    plan = plan_synthetic_dataset("tiny", 0, head_motion=True)
    for record in manifest["clips"]:
        clip = plan.clip(record["key"])
        assert record["head_motion"] == json.loads(json.dumps(clip.head_motion))
        # a reader recomputes the truth from the record alone
        assert np.array_equal(head_motion_course(record, record["dlib68"]), head_motion_course(clip, np.array(record["dlib68"])))
    # the first frame is the still dataset's to the byte, the later ones have moved
    clip = max(plan.clips, key=lambda c: abs(c.head_motion[0][0]))
    names = clip.frame_names()
    first = [(root / clip.relative_dir() / names[0]).read_bytes() for root in (out, tiny.root)]
    last = [(root / clip.relative_dir() / names[-1]).read_bytes() for root in (out, tiny.root)]
    assert first[0] == first[1] and last[0] != last[1]

    # resume refuses the other setting, either way, with the settings in the message
    with pytest.raises(MieInputError, match="with head motion .*, not profile 'tiny' seed 0 without head motion"):
        generate_synthetic_dataset(out, "tiny", 0, resume=True, faces=base_faces)
    legacy = tmp_path / "legacy"  # a folder written before the option: no head_motion in its marker
    legacy.mkdir()
    (legacy / MARKER_FILE).write_text(json.dumps({k: v for k, v in marker.items() if k != "head_motion"}))
    with pytest.raises(MieInputError, match="without head motion .*, not profile 'tiny' seed 0 with head motion"):
        generate_synthetic_dataset(legacy, "tiny", 0, resume=True, head_motion=True, faces=base_faces)
    assert main(["--out", str(legacy), "--profile", "tiny", "--resume", "--head-motion"]) == 2
    assert "--head-motion or not" in capsys.readouterr().err
    # with the same setting it resumes: nothing left to render
    assert main(["--out", str(out), "--profile", "tiny", "--resume", "--head-motion"]) == 0
    assert "0 clips rendered, 35 kept" in capsys.readouterr().out


# ----------------------------------------------------------------------------- held-out style
def test_the_heldout_style_draws_the_same_plan_another_way(base_faces):
    train = plan_synthetic_dataset("megc2019", 3, head_motion=True)
    heldout = plan_synthetic_dataset("megc2019", 3, head_motion=True, style="heldout")
    assert heldout.style == "heldout" and {c.style for c in heldout.clips} == {"heldout"}
    assert [dataclasses.replace(c, style="train") for c in heldout.clips] == train.clips  # no draw changes
    with pytest.raises(ValueError, match="Unknown style 'odd'"):
        plan_synthetic_dataset("tiny", 0, style="odd")
    clip = next(c for c in heldout.clips if c.database == "casme2" and c.label == 1 and c.num_frames > 40)
    twin = train.clip(clip.key)
    # time course: a linear rise (a quarter of the way up at a quarter of the rise) and the apex at 1
    start, apex, end, residual = clip.motion
    quarter = int(round(start + 0.25 * (apex - start)))
    ours, theirs = expression_course(clip), expression_course(twin)
    assert ours[int(round(apex))] == pytest.approx(theirs[int(round(apex))], abs=0.05)
    expected = (quarter - start) / (apex - start)
    assert ours[quarter] == pytest.approx(expected, abs=1e-6) and theirs[quarter] < expected - 0.05
    # kernel: the same peak, on a compact support narrower than the Gaussian's
    d = base_faces["astronaut"].dlib68
    size = (512, 512)
    gauss = np.hypot(*action_unit_field(12, d, size, 3.0))
    wendland = np.hypot(*action_unit_field(12, d, size, 3.0, kernel="wendland"))
    assert gauss.max() == pytest.approx(3.0, rel=1e-4) and wendland.max() == pytest.approx(3.0, rel=1e-4)
    assert 0 < (wendland > 0.05).sum() < 0.8 * (gauss > 0.05).sum()
    # compression: stronger for JPEG databases, and present in SMIC's lossless BMP files
    frames, _ = render_synthetic_clip(heldout, clip, base_faces)
    frame = frames[len(frames) // 2]
    assert len(encode_frame(frame, "casme2", "heldout")) < 0.8 * len(encode_frame(frame, "casme2", "train"))
    lossless = cv2.imdecode(np.frombuffer(encode_frame(frame, "smic", "train"), np.uint8), cv2.IMREAD_COLOR)
    lossy = cv2.imdecode(np.frombuffer(encode_frame(frame, "smic", "heldout"), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(lossless[..., ::-1], frame) and not np.array_equal(lossy[..., ::-1], frame)
    # the pixels differ from the training style's where the expression moves, not before it starts
    train_frames, _ = render_synthetic_clip(train, twin, base_faces)
    assert np.array_equal(frames[0], train_frames[0])
    assert np.abs(frames[int(round(apex))].astype(int) - train_frames[int(round(apex))]).max() > 10


def test_a_heldout_dataset_says_so_and_resumes_only_as_such(base_faces, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("modeling_mie.synthetic.load_base_faces", lambda *a, **k: base_faces)
    out = tmp_path / "heldout"
    assert main(["--out", str(out), "--profile", "tiny", "--seed", "1", "--style", "heldout"]) == 0
    assert "held-out style" in capsys.readouterr().out
    assert json.loads((out / MARKER_FILE).read_text())["style"] == "heldout"
    manifest = read_synthetic_manifest(out)
    assert manifest["style"] == "heldout" and {c["style"] for c in manifest["clips"]} == {"heldout"}
    assert main(["--out", str(out), "--profile", "tiny", "--seed", "1", "--resume"]) == 2
    assert "style heldout" in capsys.readouterr().err
    assert main(["--out", str(out), "--profile", "tiny", "--seed", "1", "--style", "heldout", "--resume"]) == 0


# ----------------------------------------------------------------------------- wide variety
def test_the_wide_variety_widens_identities_and_amplitudes_and_nothing_else(base_faces):
    base = plan_synthetic_dataset("megc2019", 0, head_motion=True)
    wide = plan_synthetic_dataset("megc2019", 0, head_motion=True, variety="wide")
    assert wide.variety == "wide" and base.variety == "base"
    with pytest.raises(ValueError, match="Unknown variety 'odd'"):
        plan_synthetic_dataset("tiny", 0, variety="odd")
    # every other draw is the same
    for a, b in zip(wide.clips, base.clips):
        assert dataclasses.replace(a, amplitude=b.amplitude) == b
    identity = ("shape_gain", "gamma", "texture", "jpeg_quality")
    for key, subject in wide.subjects.items():
        assert dataclasses.replace(subject, **{f: getattr(base.subjects[key], f) for f in identity}) == base.subjects[key]
    # the same AUs at several amplitudes: 0.6x to 3x the base draw, spread over the range
    ratios = np.array([a.amplitude / b.amplitude for a, b in zip(wide.clips, base.clips)])
    assert 0.59 < ratios.min() < 0.75 and 2.5 < ratios.max() < 3.01 and 1.0 < np.median(ratios) < 1.8
    subjects = list(wide.subjects.values())
    assert all(1.5 <= s.shape_gain <= 2.5 and 0.8 <= s.gamma <= 1.25 and -1 <= s.texture <= 1 for s in subjects)
    qualities = [s.jpeg_quality for s in subjects if s.database != "smic"]
    assert all(70 <= q <= 95 for q in qualities) and len(set(qualities)) > 10  # always above the held-out 55
    smic = [s.jpeg_quality for s in subjects if s.database == "smic"]
    assert None in smic and any(q is not None for q in smic)  # half of SMIC's subjects compressed
    # and it shows: the same subject's neutral face differs in shape and tone
    subject = next(s for s in subjects if s.database == "casme2" and abs(s.gamma - 1) > 0.1)
    clip = next(c for c in wide.clips if c.database == subject.database and c.subject == subject.subject)
    plain, d_plain = render_synthetic_clip(base, clip.key, base_faces, nuisances=False)
    varied, d_varied = render_synthetic_clip(wide, clip.key, base_faces, nuisances=False)
    assert np.abs(d_plain - d_varied).max() > 1.0  # a stronger shape warp moves the landmarks
    assert abs(float(plain[0].mean()) - float(varied[0].mean())) > 2  # the tone curve changes the grey levels
    # a quality of its own: a SMIC frame of a compressed subject goes through JPEG, of another not
    frame = plain[0]
    lossy = cv2.imdecode(np.frombuffer(encode_frame(frame, "smic", "train", 70), np.uint8), cv2.IMREAD_COLOR)
    assert not np.array_equal(lossy[..., ::-1], frame)
    # the held-out style's compression overrides a subject's
    assert encode_frame(frame, "casme2", "heldout", 95) == encode_frame(frame, "casme2", "heldout")


def test_a_wide_dataset_says_so_and_resumes_only_as_such(base_faces, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("modeling_mie.synthetic.load_base_faces", lambda *a, **k: base_faces)
    out = tmp_path / "wide"
    assert main(["--out", str(out), "--profile", "tiny", "--variety", "wide"]) == 0
    assert "wide variety" in capsys.readouterr().out
    assert json.loads((out / MARKER_FILE).read_text())["variety"] == "wide"
    manifest = read_synthetic_manifest(out)
    assert manifest["variety"] == "wide" and all("gamma" in s for s in manifest["subjects"])
    assert main(["--out", str(out), "--profile", "tiny", "--resume"]) == 2
    assert "variety wide" in capsys.readouterr().err
    assert main(["--out", str(out), "--profile", "tiny", "--variety", "wide", "--resume"]) == 0


# ----------------------------------------------------------------------------- locality, signal
def _energies(frames, clip, dlib68):
    """Mean squared apex-onset difference inside the clip's AU regions and outside them."""
    from modeling_mie import MieConfig

    config = MieConfig()
    f = frames.astype(np.float32)
    if f.ndim == 4:
        f = f.mean(axis=3)
    energy = (f[clip["apex_index"]] - f[clip["onset_index"]]) ** 2
    inside = np.zeros(energy.shape, bool)
    aus = {a for a, _, _ in clip["action_units"]}
    for box, region in zip(region_boxes(dlib68, config), config.regions):
        if aus & set(region["action_units"]):
            x0, y0, x1, y1 = np.round(box).astype(int)
            inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
    return float(energy[inside].mean()), float(energy[~inside].mean())


def _read_clip(root: Path, clip: dict) -> np.ndarray:
    folder = root / clip["path"]
    return np.stack([cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED) for name in clip["frames"]])


@pytest.mark.parametrize("label", [0, 1, 2])
def test_motion_is_local_to_the_regions_of_its_action_units(tiny, manifest, label):
    # clips as written (noise, drift, flicker, JPEG), without blinks: those move the eyes on purpose
    clips = [c for c in manifest["clips"] if c["label"] == label and c["megc"] and not c["blink"]]
    assert len(clips) >= 4
    pairs = [_energies(_read_clip(tiny.root, c), c, np.array(c["dlib68"])) for c in clips]
    inside, outside = np.array(pairs).T
    ratios = inside / outside
    assert inside.sum() > 4 * outside.sum(), ratios
    assert np.median(ratios) > 2.5 and ratios.min() > 1.2, ratios


def test_expression_dominates_the_nuisances_in_its_regions(tiny, manifest, base_faces):
    """What the model must learn from is the largest temporal change inside the regions."""
    plan = tiny.plan
    keys = [c["key"] for c in manifest["clips"] if c["megc"] and not c["blink"]]
    expression, nuisance = 0.0, 0.0
    for key in keys:
        clip = plan.clip(key)
        record = next(c for c in manifest["clips"] if c["key"] == key)
        clean, d = render_synthetic_clip(plan, clip, base_faces, nuisances=False)
        still = dataclasses.replace(clip, action_units=[])
        noisy, _ = render_synthetic_clip(plan, still, base_faces, nuisances=True)
        expression += _energies(clean, record, d)[0]
        nuisance += _energies(noisy, record, d)[0]
    assert expression > 3 * nuisance, (expression, nuisance)


def test_picture_of_a_clip(tiny, tmp_path):
    path = draw_synthetic_clip(tiny.root, tmp_path / "pic" / "clip.png", clip="casme2/sub01/EP19_07")
    image = cv2.imread(str(path))
    assert image.shape == (PANEL_SIZE + 44, 4 * PANEL_SIZE + 30, 3)
    assert path.stat().st_size > 20_000
    # the difference panel is dark except where the face moved
    diff_panel = image[42 : 42 + PANEL_SIZE, 6 + 3 * (PANEL_SIZE + 6) : 6 + 3 * (PANEL_SIZE + 6) + PANEL_SIZE]
    onset_panel = image[42 : 42 + PANEL_SIZE, 6 : 6 + PANEL_SIZE]
    assert diff_panel.mean() < onset_panel.mean() / 3
    with pytest.raises(MieInputError, match="No clip"):
        draw_synthetic_clip(tiny.root, tmp_path / "x.png", clip="casme2/sub99/EP01_01")


# ----------------------------------------------------------------------------- loaders
def test_round_trip_through_the_loaders(tiny, manifest, tmp_path):
    from modeling_mie import load_casme2, load_megc2019, load_samm, load_smic

    cache = tmp_path / "hf"
    truth = {c["key"]: c for c in manifest["clips"] if c["kind"] == "micro"}
    loaded = {
        "casme2": load_casme2(tiny.roots["casme2"], cache_dir=cache),
        "samm": load_samm(tiny.roots["samm"], cache_dir=cache),
        "smic": load_smic(tiny.roots["smic"], cache_dir=cache),
    }
    for database, rows in loaded.items():
        assert len(rows) == sum(c["database"] == database for c in truth.values()), database
        for row in rows:
            clip = truth[f"{row['subject']}/{row['clip']}"]
            assert row["num_frames"] == clip["num_frames"]
            assert [Path(p).name for p in row["frames"]] == clip["frames"]
            assert (row["onset"], row["offset"]) == (clip["onset"], clip["offset"])
            assert row["onset_index"] == clip["onset_index"] and row["offset_index"] == clip["offset_index"]
            assert row["label"] == MEGC_MAP[database].get(clip["emotion"], -1)
            assert row["action_units"] == ([] if database == "smic" else sorted({a for a, _, _ in clip["action_units"]}))
            if clip["annotated_apex"] == "/" or database == "smic":
                assert row["apex_source"] == "middle"  # no apex annotated
            elif clip["quirk"] == "apex_outside":
                assert row["apex_source"] == "clamped" and row["apex_index"] == clip["num_frames"] - 1
            else:
                assert row["apex_source"] == "annotated" and row["apex"] == clip["annotated_apex"]
                if clip["quirk"] != "apex_is_onset":
                    assert row["apex_index"] == clip["apex_index"]
    composite = load_megc2019(
        casme2=tiny.roots["casme2"], samm=tiny.roots["samm"], smic=tiny.roots["smic"],
        ground_truth=tiny.ground_truth, strict=True, cache_dir=cache,
    )
    assert len(composite) == 30 and composite.missing_clips == []
    listed = {tuple(c["megc"][:3]): int(c["megc"][3]) for c in manifest["clips"] if c["megc"]}
    assert {(r["database"], r["megc_subject"], r["megc_filename"]): r["label"] for r in composite} == listed
    assert len(set(composite["subject"])) == 9
