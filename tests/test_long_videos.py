"""Long-video loaders: fixture trees with every quirk of SPOTTING.md 1-3, policies, bad trees, caching."""

from __future__ import annotations

import logging
import os
import shutil

import fixtures_datasets as fx
import fixtures_long_videos as lv
import openpyxl
import pytest
from PIL import Image

from modeling_mie import MieInputError
from modeling_mie.long_video_workbooks import (
    Casme3Row,
    CasmeSqRow,
    SammLvRow,
    write_casme3_part_a_workbook,
    write_casme_sq_workbook,
    write_samm_lv_workbook,
)
from modeling_mie.long_videos import (
    CASME_SQ_SUBJECT_FOLDERS,
    INTERVAL_FLAGS,
    SAMM_LV_HEADER,
    list_video_frames,
    load_casme3_part_a,
    load_casme_sq,
    load_long_videos,
    load_samm_lv,
)


def _videos(dataset) -> dict[str, dict]:
    return {row["video"]: row for row in dataset}


def _spans(row) -> list[tuple]:
    """(onset, apex, offset) indices of a video's intervals."""
    return [(i["onset"], i["apex"], i["offset"]) for i in row["intervals"]]


@pytest.fixture
def casme_sq_root(tmp_path):
    return lv.write_casme_sq_tree(tmp_path / "CASME_sq", lv.casme_sq_quirk_videos(), lv.casme_sq_quirk_rows())


@pytest.fixture
def samm_lv_root(tmp_path):
    return lv.write_samm_lv_tree(tmp_path / "SAMMLV", lv.samm_lv_quirk_videos(), lv.samm_lv_quirk_rows())


@pytest.fixture
def casme3_root(tmp_path):
    lv.write_casme3_tree(tmp_path / "casme3", lv.casme3_quirk_videos())
    lv.write_casme3_workbooks(tmp_path / "casme3")
    return tmp_path / "casme3"


# ---------------------------------------------------------------------------- CAS(ME)^2
def test_casme_sq_quirks_with_default_policies(casme_sq_root, tmp_path):
    ds = load_casme_sq(casme_sq_root, cache_dir=tmp_path / "hf")
    videos = _videos(ds)
    assert list(videos) == [
        "s15/15_0101disgustingteeth",
        "s15/15_0102eatingworms",
        "s15/15_0508funnydunkey",
        "s16/16_0101disgustingteeth",
        "s19/19_0502funnyerrors",
        "s23/23_0503unnyfarting",
        "s34/34_0401girlcrashing",
        "s40/40_0402beatingpregnantwoman",
    ]
    assert set(ds["database"]) == {"casme_sq"} and set(ds["fps"]) == {30.0}
    long = videos["s15/15_0101disgustingteeth"]
    assert long["subject"] == "s15" and long["first_frame"] == 1 and long["last_frame"] == 1003
    assert long["num_frames"] == 1003 and long["missing_frames"] == []
    assert long["frames_dir"] == str(casme_sq_root.resolve() / "rawpic" / "s15" / "15_0101disgustingteeth")
    assert long["frame_size"] == {"width": 8, "height": 8}
    # 1-based frame numbers -> 0-based indices (SOFTNet's onset - 1): img003 is index 2
    first = long["intervals"][0]
    assert (first["onset"], first["apex"], first["offset"]) == (2, 4, 8)
    assert (first["onset_number"], first["apex_number"], first["offset_number"]) == (3, 5, 9)
    assert (first["kind"], first["emotion"], first["label"], first["action_units"]) == ("micro", "negative", "negative", "4+10+14")
    assert first["row"] == 1 and first["flags"] == [] and first["source"] == "CAS(ME)^2code_final.xlsx"  # no header row
    # img998..img1002 sit at indices 997..1001 only when img1000 sorts after img999
    late = long["intervals"][1]
    assert (late["onset"], late["apex"], late["offset"]) == (997, 999, 1001)
    assert late["action_units"] == "4" and late["label"] == "others" and late["kind"] == "macro"
    names = [os.path.basename(p) for p in list_video_frames(long["frames_dir"])]
    assert names[98:101] == ["img099.jpg", "img100.jpg", "img101.jpg"] and names[999] == "img1000.jpg"
    # offset 0 -> the apex (SOFTNet), flagged
    zero = videos["s15/15_0102eatingworms"]["intervals"]
    assert _spans(videos["s15/15_0102eatingworms"]) == [(4, 11, 11), (24, 29, 29)]
    assert [i["offset_number"] for i in zero] == [12, 30] and all(i["flags"] == ["offset_zero_set_to_apex"] for i in zero)
    # offset before the apex: kept as annotated, flagged
    s16 = videos["s16/16_0101disgustingteeth"]["intervals"]
    assert (s16[0]["onset"], s16[0]["apex"], s16[0]["offset"]) == (1, 8, 6) and s16[0]["flags"] == ["offset_before_apex"]
    # a 20-frame ME is micro and a 6-frame MaE is macro: the type column decides
    assert s16[1]["kind"] == "micro" and s16[1]["offset"] - s16[1]["onset"] + 1 == 20
    short = videos["s40/40_0402beatingpregnantwoman"]["intervals"][0]
    assert short["kind"] == "macro" and (short["onset"], short["offset"]) == (0, 5) and short["label"] == "positive"
    # apex 0 (subject 17 = s34, anger1_1): no apex
    anger = videos["s34/34_0401girlcrashing"]["intervals"][0]
    assert (anger["apex"], anger["apex_number"], anger["flags"]) == (-1, -1, ["apex_missing"])
    # the three unannotated videos are kept, with no intervals (their false positives count)
    assert [v for v, r in videos.items() if not r["intervals"]] == [
        "s15/15_0508funnydunkey",
        "s19/19_0502funnyerrors",
        "s23/23_0503unnyfarting",
    ]
    assert ds.problems == [] and ds.dropped == []
    assert {f for r in ds for i in r["intervals"] for f in i["flags"]} <= set(INTERVAL_FLAGS)


@pytest.mark.parametrize(
    "policy, spans, flags",
    [
        ("apex", [(4, 11, 11), (24, 29, 29)], [["offset_zero_set_to_apex"]] * 2),
        (
            "apex+20",
            # 12 + 20 = 32; 30 + 20 = 50 runs past the last frame (40) and is clamped
            [(4, 11, 31), (24, 29, 39)],
            [["offset_zero_set_to_apex_plus_20"], ["offset_zero_set_to_apex_plus_20", "offset_clamped_to_last_frame"]],
        ),
        ("drop", [], []),
    ],
)
def test_casme_sq_offset_policy(casme_sq_root, tmp_path, policy, spans, flags):
    ds = load_casme_sq(casme_sq_root, offset_policy=policy, cache_dir=tmp_path / "hf")
    row = _videos(ds)["s15/15_0102eatingworms"]
    assert _spans(row) == spans and [i["flags"] for i in row["intervals"]] == flags
    if policy == "drop":
        assert [(d["video"], d["row"]) for d in ds.dropped] == [("s15/15_0102eatingworms", 3), ("s15/15_0102eatingworms", 4)]
        assert "offset_policy='drop'" in ds.dropped[0]["reason"]
    else:
        assert ds.dropped == []
    # other videos do not depend on the policy
    assert _spans(_videos(ds)["s15/15_0101disgustingteeth"]) == [(2, 4, 8), (997, 999, 1001)]


def test_unknown_policies_are_refused(casme_sq_root, samm_lv_root):
    with pytest.raises(ValueError, match=r"offset_policy must be one of \['apex', 'apex\+20', 'drop'\], got 'end'"):
        load_casme_sq(casme_sq_root, offset_policy="end")
    with pytest.raises(ValueError, match="fraction_policy must be one of"):
        load_samm_lv(samm_lv_root, fraction_policy="floor")
    with pytest.raises(ValueError, match="onset_zero_policy must be one of"):
        load_samm_lv(samm_lv_root, onset_zero_policy="first")


def test_casme_sq_mapping_comes_from_the_naming_rule_sheets(tmp_path, caplog):
    # A subject index and a video name the documented mapping does not have: only the sheets know them.
    subjects = {**CASME_SQ_SUBJECT_FOLDERS, 23: "s41"}
    codes = {"disgust1": "0101", "happy6": "0509"}
    rows = [CasmeSqRow(23, "happy6_1", 2, 4, 6, "12", "positive", "micro-expression"), CasmeSqRow(1, "disgust1_1", 1, 2, 3)]
    root = lv.write_casme_sq_tree(
        tmp_path / "c", {("s41", "0509"): range(1, 11), ("s15", "0101"): range(1, 11)}, rows,
        subject_folders=subjects, video_codes=codes,
    )
    ds = load_casme_sq(root, cache_dir=tmp_path / "hf")
    videos = _videos(ds)
    assert _spans(videos["s41/41_0509video"]) == [(1, 3, 5)] and videos["s41/41_0509video"]["subject"] == "s41"
    # codes are stored as text (the leading zero matters)
    book = openpyxl.load_workbook(root / "CAS(ME)^2code_final.xlsx")
    assert book.sheetnames == ["CASFEcode_final", "naming rule1", "naming rule2"]
    assert [c.value for c in book["naming rule2"][1]] == ["0101", "disgust1"] and book["naming rule2"]["A1"].data_type == "s"
    assert [c.value for c in book["naming rule1"][1]] == [41, "s41", 23]  # row-aligned with the main sheet
    assert book["CASFEcode_final"]["A1"].value == 23  # no header row
    # A copy that lost the leading zero (number 509) still maps.
    book["naming rule2"]["A2"].value = 509
    book.save(root / "CAS(ME)^2code_final.xlsx")
    assert "s41/41_0509video" in _videos(load_casme_sq(root, cache_dir=tmp_path / "hf"))

    # Without the sheets the documented mapping is used, which lacks subject 23 and happy6.
    write_casme_sq_workbook(root / "CAS(ME)^2code_final.xlsx", rows, naming_rules=False)
    with (
        caplog.at_level(logging.WARNING, logger="modeling_mie.long_videos"),
        pytest.raises(MieInputError, match=r"row 1: subject index '23' is not in 'naming rule1'"),
    ):
        load_casme_sq(root, cache_dir=tmp_path / "hf")
    assert any("no usable sheet 'naming rule1'" in r.getMessage() for r in caplog.records)
    lenient = load_casme_sq(root, strict=False, cache_dir=tmp_path / "hf")
    assert _spans(_videos(lenient)["s15/15_0101disgustingteeth"]) == [(0, 1, 2)]
    assert _videos(lenient)["s41/41_0509video"]["intervals"] == [] and len(lenient.problems) == 1


def test_casme_sq_root_may_be_rawpic_or_a_parent(casme_sq_root, tmp_path):
    from_rawpic = load_casme_sq(casme_sq_root / "rawpic", cache_dir=tmp_path / "hf")  # workbook found in the parent
    from_parent = load_casme_sq(tmp_path, cache_dir=tmp_path / "hf")  # CASME_sq/rawpic is 2 levels down
    assert from_rawpic["video"] == from_parent["video"] and len(from_parent) == 8


# ---------------------------------------------------------------------------- SAMM Long Videos
def test_samm_lv_quirks_with_default_policies(samm_lv_root, tmp_path):
    ds = load_samm_lv(samm_lv_root, cache_dir=tmp_path / "hf")
    videos = _videos(ds)
    assert list(videos) == ["006_1", "006_2", "007_5", "011_2"]
    assert [r["subject"] for r in ds] == ["006", "006", "007", "011"] and set(ds["fps"]) == {200.0}
    v = videos["006_1"]
    assert v["frames_dir"] == str(samm_lv_root.resolve() / "SAMM_longvideos" / "006_1") and v["num_frames"] == 40
    micro, onset_zero, fractional = v["intervals"]
    assert (micro["onset"], micro["apex"], micro["offset"], micro["kind"], micro["row"]) == (2, 5, 9, "micro", 11)  # header on row 10
    assert micro["emotion"] == "" and micro["label"] == ""  # no emotion without emotions=
    # onset 0 -> the apex (MTSN)
    assert (onset_zero["onset_number"], onset_zero["onset"], onset_zero["offset"]) == (8, 7, 24)
    assert onset_zero["flags"] == ["onset_zero_set_to_apex"] and onset_zero["kind"] == "macro"
    # 20.4 / 22.5 / 35.6 round to 20 / 23 / 36
    assert (fractional["onset_number"], fractional["apex_number"], fractional["offset_number"]) == (20, 23, 36)
    assert (fractional["onset"], fractional["apex"], fractional["offset"]) == (19, 22, 35) and fractional["flags"] == ["fractional_rounded"]
    # frame numbers crossing 9999 -> 10000 sort by number; the folder starts at 9995
    crossing = videos["006_2"]
    assert crossing["first_frame"] == 9995 and crossing["last_frame"] == 10005
    assert _spans(crossing) == [(3, 5, 7)] and crossing["intervals"][0]["kind"] == "macro"  # a 5-frame Macro
    assert os.path.basename(list_video_frames(crossing["frames_dir"])[5]) == "006_2_10000.jpg"
    # apex -1: kept, flagged
    assert [(i["apex"], i["apex_number"], i["flags"]) for i in videos["007_5"]["intervals"]] == [(-1, -1, ["apex_missing"])]
    # onset 0 with apex -1 has nothing to start at: dropped; offset before apex kept
    assert [(d["video"], d["row"]) for d in ds.dropped] == [("011_2", 16)]
    assert [i["flags"] for i in videos["011_2"]["intervals"]] == [["offset_before_apex"]]
    with Image.open(list_video_frames(v["frames_dir"])[0]) as image:
        assert image.mode == "L"


def test_samm_lv_policies(samm_lv_root, tmp_path):
    ds = load_samm_lv(samm_lv_root, fraction_policy="truncate", onset_zero_policy="drop", cache_dir=tmp_path / "hf")
    intervals = _videos(ds)["006_1"]["intervals"]
    assert [i["row"] for i in intervals] == [11, 13]  # the onset-0 row is gone
    fractional = intervals[1]
    assert (fractional["onset_number"], fractional["apex_number"], fractional["offset_number"]) == (20, 22, 35)
    assert fractional["flags"] == ["fractional_truncated"]
    assert sorted((d["video"], d["row"]) for d in ds.dropped) == [("006_1", 12), ("011_2", 16)]
    assert "onset_zero_policy='drop'" in next(d["reason"] for d in ds.dropped if d["row"] == 12)


def test_samm_lv_emotions_merge_on_filename_and_type(samm_lv_root, tmp_path):
    mean_style = lv.write_samm_emotions(tmp_path / "SAMM_20181215_Micro_FACS_Codes_v2.xlsx")
    ds = load_samm_lv(samm_lv_root, emotions=mean_style, cache_dir=tmp_path / "hf")
    got = {(r["video"], i["row"]): (i["emotion"], i["label"], "emotion_not_found" in i["flags"]) for r in ds for i in r["intervals"]}
    assert got == {
        ("006_1", 11): ("Happiness", "positive", False),
        # 006_1_2 is Macro here and "Micro - 1/2" in the micro workbook: no match, and no flag for a macro
        ("006_1", 12): ("", "", False),
        ("006_1", 13): ("Anger", "negative", False),
        ("006_2", 14): ("", "", False),
        ("007_5", 15): ("", "", True),  # a micro row the workbook lacks
        ("011_2", 17): ("Other", "others", False),
    }
    # The SAMM micro workbook as load_samm reads it (13 note rows, columns Micro / Estimated Emotion)
    clips = [fx.Clip(6, "006_1_1", [1], "Happiness", 1, 1, 1, "12"), fx.Clip(11, "011_2_2", [1], "Contempt", 1, 1, 1, "4")]
    samm_style = fx.write_samm_workbook(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", clips)
    ds = load_samm_lv(samm_lv_root, emotions=samm_style, cache_dir=tmp_path / "hf")
    labels = {(r["video"], i["row"]): i["label"] for r in ds for i in r["intervals"] if i["emotion"]}
    assert labels == {("006_1", 11): "positive", ("011_2", 17): "negative"}
    with pytest.raises(MieInputError, match="emotions workbook .* does not exist"):
        load_samm_lv(samm_lv_root, emotions=tmp_path / "nope.xlsx")


# ---------------------------------------------------------------------------- CAS(ME)^3 Part A
def test_casme3_part_a(casme3_root, tmp_path):
    ds = load_casme3_part_a(casme3_root, cache_dir=tmp_path / "hf")
    videos = _videos(ds)
    # subjects in numeric order: spNO.2 before spNO.10
    assert list(videos) == ["spNO.1/a", "spNO.1/b", "spNO.2/a", "spNO.10/c"]
    a = videos["spNO.1/a"]
    assert a["frames_dir"].endswith(os.path.join("spNO.1", "a", "color")) and a["num_frames"] == 20  # depth/ ignored
    assert set(ds["fps"]) == {30.0} and a["subject"] == "spNO.1"
    # 1.jpg ... 20.jpg, not padded: 9.jpg before 10.jpg
    assert [os.path.basename(p) for p in list_video_frames(a["frames_dir"])][8:11] == ["9.jpg", "10.jpg", "11.jpg"]
    # Filename "a" repeats: two expressions of one video, from the ME and the MaE workbooks
    assert _spans(a) == [(2, 8, 11), (13, 15, 18)]
    assert [(i["kind"], i["emotion"], i["label"], i["action_units"]) for i in a["intervals"]] == [
        ("micro", "happy", "positive", "12"),
        ("macro", "disgust", "negative", "4+9"),
    ]
    assert [i["source"] for i in a["intervals"]] == [
        "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
        "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx",
    ]
    # a dropped frame (7.jpg): recorded, and the apex on it stands on the nearest frame, flagged
    b = videos["spNO.1/b"]
    assert b["missing_frames"] == [7] and b["num_frames"] == 14
    assert _spans(b) == [(4, 6, 8)] and b["intervals"][0]["flags"] == ["frame_missing"]
    assert [(i["apex"], i["flags"]) for i in videos["spNO.2/a"]["intervals"]] == [(-1, ["apex_missing"])]
    assert videos["spNO.10/c"]["intervals"] == []


def test_casme3_columns_are_configurable(tmp_path):
    part = lv.write_casme3_tree(tmp_path / "c3", {("spNO.1", "a"): range(1, 21)})
    renamed = {"subject": "sub", "filename": "count", "onset": "start", "apex": "peak", "offset": "end", "type": "kind"}
    workbook = write_casme3_part_a_workbook(
        tmp_path / "c3" / "labels.xlsx", [Casme3Row("spNO.1", "a", 3, 5, 9, "Macro-expression")], columns=renamed
    )
    with pytest.raises(MieInputError, match="no header row with Subject and Filename"):
        load_casme3_part_a(part, annotations=workbook)
    ds = load_casme3_part_a(part, annotations=workbook, columns=renamed, cache_dir=tmp_path / "hf")
    interval = ds[0]["intervals"][0]
    assert (interval["onset"], interval["apex"], interval["offset"], interval["kind"]) == (2, 4, 8, "macro")
    assert interval["emotion"] == "" and interval["action_units"] == ""  # optional columns absent
    with pytest.raises(ValueError, match="columns keys must be among"):
        load_casme3_part_a(part, annotations=workbook, columns={"Subject": "sub"})
    xls = tmp_path / "c3" / "CAS(ME)3_part_A_v2.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(MieInputError, match=r"old \.xls workbook.*save it as \.xlsx"):
        load_casme3_part_a(part, annotations=xls)


# ---------------------------------------------------------------------------- bad trees
def test_missing_workbook(tmp_path):
    lv.write_casme_sq_tree(tmp_path / "c", {("s15", "0101"): range(1, 5)})
    with pytest.raises(MieInputError, match=r"CAS\(ME\)\^2 annotation workbook was not found.*annotations=PATH"):
        load_casme_sq(tmp_path / "c")
    lv.write_samm_lv_tree(tmp_path / "s", {"006_1": range(1, 5)})
    with pytest.raises(MieInputError, match="SAMM_LongVideos_V2_Release.xlsx.*annotations=PATH"):
        load_samm_lv(tmp_path / "s")
    with pytest.raises(MieInputError, match="does not exist; check annotations="):
        load_samm_lv(tmp_path / "s", annotations=tmp_path / "missing.xlsx")
    lv.write_casme3_tree(tmp_path / "c3", {("spNO.1", "a"): range(1, 5)})
    with pytest.raises(MieInputError, match=r"No CAS\(ME\)\^3 Part A label workbook found.*ME_label_JpgIndex"):
        load_casme3_part_a(tmp_path / "c3")


def test_missing_sheet(tmp_path):
    root = lv.write_casme_sq_tree(tmp_path / "c", {("s15", "0101"): range(1, 5)}, [CasmeSqRow(1, "disgust1_1", 1, 2, 3)], sheet="Sheet1")
    with pytest.raises(MieInputError, match=r"has no sheet 'CASFEcode_final' \(sheets: \['Sheet1', 'naming rule1', 'naming rule2'\]\)"):
        load_casme_sq(root)
    root = lv.write_samm_lv_tree(tmp_path / "s", {"006_1": range(1, 5)}, [SammLvRow("006", "006_1_1", 1, 2, 3)], sheet="ALL")
    book = openpyxl.load_workbook(root / "SAMM_LongVideos_V2_Release.xlsx")
    book.create_sheet("README")
    book.save(root / "SAMM_LongVideos_V2_Release.xlsx")
    with pytest.raises(MieInputError, match="no sheet 'FACS_Movement_Only'.*'ALL', 'README'"):
        load_samm_lv(root)


def test_missing_columns_and_unreadable_workbooks(tmp_path):
    header = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Kind", "Action Units", "Notes"]
    root = lv.write_samm_lv_tree(tmp_path / "s", {"006_1": range(1, 5)}, [SammLvRow("006", "006_1_1", 1, 2, 3)], header=header)
    with pytest.raises(MieInputError, match=r"header on row 10\) lacks the columns \['Type'\].*found \[.*'Kind'"):
        load_samm_lv(root)
    # a CAS(ME)^2 main sheet with too few columns (someone kept only the frame numbers)
    root = lv.write_casme_sq_tree(tmp_path / "c", {("s15", "0101"): range(1, 5)})
    book = openpyxl.Workbook()
    book.active.title = "CASFEcode_final"
    book.active.append([1, "disgust1_1", 1, 2, 3])
    book.save(root / "CAS(ME)^2code_final.xlsx")
    with pytest.raises(MieInputError, match=r"has 5 columns; expected at least 8 without a header row: subject, clip, onset"):
        load_casme_sq(root)
    (root / "CAS(ME)^2code_final.xlsx").write_bytes(b"this is not a workbook")
    with pytest.raises(MieInputError, match=r"Cannot read the CAS\(ME\)\^2 workbook .*must be an .xlsx file"):
        load_casme_sq(root)


def test_annotated_video_without_frame_folder(casme_sq_root, tmp_path, caplog):
    shutil.rmtree(casme_sq_root / "rawpic" / "s40" / "40_0402beatingpregnantwoman")
    with pytest.raises(MieInputError) as err:
        load_casme_sq(casme_sq_root, cache_dir=tmp_path / "hf")
    message = str(err.value)
    assert "1 problem between the annotations and the frames" in message
    assert "s40/40_0402* (anger2): row 8: annotated video has no frame folder" in message and "strict=False" in message
    with caplog.at_level(logging.WARNING, logger="modeling_mie.long_videos"):
        ds = load_casme_sq(casme_sq_root, strict=False, cache_dir=tmp_path / "hf")
    assert len(ds) == 7 and not any(v.startswith("s40/") for v in ds["video"])
    assert [str(p) for p in ds.problems] == [
        f"CAS(ME)^2 s40/40_0402* (anger2): row 8: annotated video has no frame folder in {casme_sq_root.resolve() / 'rawpic'}"
    ]
    assert any("left out (strict=False)" in r.getMessage() for r in caplog.records)
    # SAMM: a whole video folder gone
    samm = [SammLvRow("006", "006_1_1", 1, 2, 3), SammLvRow("009", "009_4_1", 1, 2, 3)]
    root = lv.write_samm_lv_tree(tmp_path / "s", {"006_1": range(1, 11)}, samm)
    with pytest.raises(MieInputError, match=r"SAMM Long Videos 009/009_4: row 12: annotated video has no frame folder"):
        load_samm_lv(root)


def test_interval_beyond_the_frames(tmp_path):
    rows = [CasmeSqRow(1, "disgust1_1", 5, 10, 45), CasmeSqRow(1, "disgust1_2", 2, 3, 4)]
    root = lv.write_casme_sq_tree(tmp_path / "c", {("s15", "0101"): range(1, 41)}, rows)
    beyond = r"s15/15_0101disgustingteeth: row 1: interval 5..45 \(apex 10\) lies beyond the video's frames 1..40"
    with pytest.raises(MieInputError, match=beyond):
        load_casme_sq(root, cache_dir=tmp_path / "hf")
    ds = load_casme_sq(root, strict=False, cache_dir=tmp_path / "hf")
    assert _spans(ds[0]) == [(1, 2, 3)] and len(ds.problems) == 1  # the video and its other interval stay
    # SAMM: an apex past the last frame is beyond the frames too; onset after offset is refused
    samm = [SammLvRow("006", "006_1_1", 2, 30, 8), SammLvRow("006", "006_1_2", 9, 9, 4)]
    root = lv.write_samm_lv_tree(tmp_path / "s", {"006_1": range(1, 21)}, samm)
    with pytest.raises(MieInputError) as err:
        load_samm_lv(root, cache_dir=tmp_path / "hf")
    assert "row 11: interval 2..8 (apex 30) lies beyond the video's frames 1..20" in str(err.value)
    assert "row 12: onset 9 is after offset 4" in str(err.value)


def test_bad_cells_are_one_rows_problem(tmp_path):
    rows = [
        CasmeSqRow(1, "disgust1_1", 2, "peak", 6),
        CasmeSqRow(1, "disgust1_2", 2, 3, 4, type="blink"),
        CasmeSqRow(1, "disgust1_3", 1, 2, 3),
    ]
    root = lv.write_casme_sq_tree(tmp_path / "c", {("s15", "0101"): range(1, 11)}, rows)
    with pytest.raises(MieInputError) as err:
        load_casme_sq(root, cache_dir=tmp_path / "hf")
    assert "row 1: the apex frame 'peak' is not a frame number" in str(err.value)
    assert "row 2: the type 'blink' is neither micro nor macro" in str(err.value)
    assert [i["row"] for i in load_casme_sq(root, strict=False, cache_dir=tmp_path / "hf")[0]["intervals"]] == [3]
    samm = [SammLvRow("006", "006_1", 1, 2, 3), SammLvRow("007", "006_1_2", 1, 2, 3)]
    root = lv.write_samm_lv_tree(tmp_path / "s", {"006_1": range(1, 11)}, samm)
    with pytest.raises(MieInputError) as err:
        load_samm_lv(root)
    assert "Filename '006_1' is not <subject>_<video>_<n>" in str(err.value)
    assert "Subject '007' does not match Filename '006_1_2'" in str(err.value)


def test_empty_or_missing_root(tmp_path):
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    names = {load_casme_sq: r"CAS\(ME\)\^2", load_samm_lv: "SAMM Long Videos", load_casme3_part_a: r"CAS\(ME\)\^3 Part A"}
    for loader, name in names.items():
        with pytest.raises(MieInputError, match=f"No {name} clip tree found in .*empty"):
            loader(tmp_path / "empty")
        with pytest.raises(MieInputError, match="does not exist"):
            loader(tmp_path / "nope")


# ---------------------------------------------------------------------------- caching
def test_cache_is_reused_and_follows_the_workbook(casme_sq_root, tmp_path):
    cache = tmp_path / "hf"
    first = load_casme_sq(casme_sq_root, cache_dir=cache)
    again = load_casme_sq(casme_sq_root, cache_dir=cache)
    assert again._fingerprint == first._fingerprint
    assert again.cache_files[0]["filename"] == first.cache_files[0]["filename"]
    assert again.to_list() == first.to_list()
    # another policy is another set of rows
    assert load_casme_sq(casme_sq_root, offset_policy="apex+20", cache_dir=cache)._fingerprint != first._fingerprint
    # an edited workbook (one emotion and one onset) invalidates the cache
    rows = lv.casme_sq_quirk_rows()
    rows[0] = rows[0]._replace(onset=4, emotion="surprise")
    write_casme_sq_workbook(casme_sq_root / "CAS(ME)^2code_final.xlsx", rows)
    edited = load_casme_sq(casme_sq_root, cache_dir=cache)
    assert edited._fingerprint != first._fingerprint
    interval = _videos(edited)["s15/15_0101disgustingteeth"]["intervals"][0]
    assert (interval["onset"], interval["label"]) == (3, "surprise")
    # a frame added on disk too
    folder = casme_sq_root / "rawpic" / "s15" / "15_0508funnydunkey"
    shutil.copy(folder / "img020.jpg", folder / "img021.jpg")
    grown = load_casme_sq(casme_sq_root, cache_dir=cache)
    assert grown._fingerprint != edited._fingerprint and _videos(grown)["s15/15_0508funnydunkey"]["num_frames"] == 21


def test_samm_cache_follows_the_emotions_workbook(samm_lv_root, tmp_path):
    cache = tmp_path / "hf"
    path = lv.write_samm_emotions(tmp_path / "emotions.xlsx")
    first = load_samm_lv(samm_lv_root, emotions=path, cache_dir=cache)
    rows = lv.samm_emotion_rows()
    rows[0] = rows[0]._replace(emotion="Surprise")
    lv.write_samm_emotions(path, rows)
    edited = load_samm_lv(samm_lv_root, emotions=path, cache_dir=cache)
    assert edited._fingerprint != first._fingerprint
    assert _videos(edited)["006_1"]["intervals"][0]["label"] == "surprise"


# ---------------------------------------------------------------------------- all three, writers
def test_load_long_videos(casme_sq_root, samm_lv_root, casme3_root, tmp_path):
    ds = load_long_videos(
        casme_sq=casme_sq_root,
        samm_lv={"root": samm_lv_root, "onset_zero_policy": "drop"},
        casme3_a=casme3_root,
        cache_dir=tmp_path / "hf",
    )
    assert [ds["database"].count(d) for d in ("casme_sq", "samm_lv", "casme3_a")] == [8, 4, 4]
    assert len(ds.dropped) == 2 and ds.problems == []
    with pytest.raises(MieInputError, match="at least one of casme_sq=, samm_lv=, casme3_a="):
        load_long_videos()


def test_samm_lv_workbook_layout(tmp_path):
    path = write_samm_lv_workbook(tmp_path / "w.xlsx", [SammLvRow("006", "006_1_3", 566.4, -1, 600, "Macro", "4+7")])
    ws = openpyxl.load_workbook(path)["FACS_Movement_Only"]
    assert ws["A1"].value and "labelled as -1" in " ".join(str(ws.cell(r, 1).value) for r in range(1, 10))
    assert [c.value for c in ws[10]] == list(SAMM_LV_HEADER)
    assert [c.value for c in ws[11]] == ["006", "006_1_3", 1, 566.4, -1, 600, pytest.approx(34.6), "Macro", "4+7", None]
    assert ws["A11"].data_type == "s"  # Subject is text
