"""Loaders: fixture trees with every quirk of DATASETS.md, bad trees, fingerprints, the 442-clip composite."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from importlib import resources

import pytest

import fixtures_datasets as fx
from modeling_mie import (
    MieConfig,
    MieInputError,
    clip_region_labels,
    format_summary,
    load_casme2,
    load_megc2019,
    load_samm,
    load_smic,
    parse_action_units,
    read_megc2019_ground_truth,
    summarize_clips,
)


def _by_clip(dataset) -> dict[str, dict]:
    return {row["clip"]: row for row in dataset}


# ---------------------------------------------------------------------------- action units
@pytest.mark.parametrize(
    "cell, expected",
    [
        ("4+L10", [4, 10]),
        ("R2+15", [2, 15]),
        ("(R6 or R12)+R15", [6, 12, 15]),
        ("10A/B", [10]),
        ("L14A/B+R14C", [14]),
        ("?", []),
        ("", []),
        (None, []),
        (12, [12]),
        (4.0, [4]),
        ("1+2+5B+25+26", [1, 2, 5, 25, 26]),
        ("AU4 + AU7", [4, 7]),
    ],
)
def test_parse_action_units(cell, expected):
    assert parse_action_units(cell) == expected


# ---------------------------------------------------------------------------- CASME II
@pytest.fixture
def casme2_root(tmp_path):
    fx.write_casme2(tmp_path / "CASME2", fx.casme2_quirk_clips())
    return tmp_path / "CASME2"


def test_casme2_quirks(casme2_root, tmp_path):
    ds = load_casme2(casme2_root, cache_dir=tmp_path / "hf")
    rows = _by_clip(ds)
    assert len(ds) == 10
    # Unpadded numbers: sorted by the integer, so img8 < img9 < img10 (a name sort gives img10 first).
    first = rows["EP02_01f"]
    assert first["frame_numbers"] == [8, 9, 10, 11, 12]
    assert [os.path.basename(p) for p in first["frames"]] == ["img8.jpg", "img9.jpg", "img10.jpg", "img11.jpg", "img12.jpg"]
    assert (first["onset_index"], first["apex_index"], first["offset_index"]) == (0, 2, 4)
    assert first["fps"] == 200 and first["variant"] == "raw" and first["database"] == "casme2"
    # Subject written as text '01' and as the integer 1: one subject, keyed by the folder.
    assert rows["EP02_01f"]["subject"] == rows["EP19_05f"]["subject"] == "casme2/sub01"
    assert rows["EP02_01f"]["annotation_subject"] == "01" and rows["EP19_05f"]["annotation_subject"] == "1"
    assert rows["EP19_05f"]["megc_subject"] == "sub01"
    # onset 96 inside a folder that starts at 95
    assert (rows["EP19_05f"]["onset_index"], rows["EP19_05f"]["offset_index"]) == (1, 7)
    # apex "/" -> middle frame between onset and offset, flagged
    slash = rows["EP12_01f"]
    assert slash["apex_estimated"] and slash["apex_source"] == "middle" and slash["apex"] == 23
    # apex == onset is a real annotation, kept
    same = rows["EP09_05f"]
    assert same["apex"] == same["onset"] == 30 and not same["apex_estimated"] and same["apex_index"] == 0
    # irregular names are read as they are
    assert {"EP01_2", "EP06_02_01", "EP09f"} <= set(rows)
    # AUs parsed, raw kept
    assert rows["EP19_05f"]["action_units"] == [4, 10] and rows["EP19_05f"]["action_units_raw"] == "4+L10"
    assert rows["EP12_01f"]["action_units"] == [2, 15]
    assert rows["EP13_02"]["action_units"] == [] and rows["EP13_02"]["action_units_raw"] == "?"
    assert rows["EP09f"]["action_units"] == [12]  # a number cell
    # MEGC classes by emotion; fear, sadness, others have none
    names = ds.features["label"].names
    assert names == ["negative", "positive", "surprise"]
    assert {c: rows[c]["label"] for c in ("EP02_01f", "EP19_05f", "EP09_05f", "EP01_2")} == {
        "EP02_01f": 1,
        "EP19_05f": 0,
        "EP09_05f": 0,
        "EP01_2": 2,
    }
    assert [rows[c]["label"] for c in ("EP13_02", "EP18_01", "EP19_01")] == [-1, -1, -1]
    assert rows["EP18_01"]["emotion"] == "fear"


def test_casme2_cropped_tree_and_ambiguous_parent(tmp_path):
    clips = fx.casme2_quirk_clips()[:3]
    fx.write_casme2(tmp_path / "CASME2", clips, cropped=True)
    ds = load_casme2(tmp_path / "CASME2", cache_dir=tmp_path / "hf")
    row = _by_clip(ds)["EP02_01f"]
    assert row["variant"] == "cropped"
    assert os.path.basename(row["frames"][0]) == "reg_img8.jpg" and row["frame_numbers"][-1] == 12
    # Both copies under one parent: ask which one, do not guess.
    fx.write_casme2(tmp_path / "CASME2", clips, cropped=False, workbook=False)
    with pytest.raises(MieInputError, match="several CASME II trees") as err:
        load_casme2(tmp_path / "CASME2", cache_dir=tmp_path / "hf")
    assert "Cropped" in str(err.value) and "CASME2_RAW_selected" in str(err.value)
    # Pointing at one of them finds the workbook in the parent.
    raw = load_casme2(tmp_path / "CASME2" / "CASME2_RAW_selected", cache_dir=tmp_path / "hf")
    assert set(raw["variant"]) == {"raw"} and len(raw) == 3


def test_casme2_newer_workbook_and_explicit_annotations(tmp_path):
    clips = fx.casme2_quirk_clips()[:2]
    fx.write_casme2(tmp_path / "c", clips, workbook=False)
    # The 2019 workbook (extra Objective Classes column) in a folder of its own.
    header = fx.CASME2_HEADER + ["Objective Classes"]
    wb = fx.write_casme2_workbook(tmp_path / "elsewhere" / "CASME2-coding-20190701.xlsx", clips, header=header)
    with pytest.raises(MieInputError, match="CASME2-coding-20140508.xlsx.*annotations=PATH"):
        load_casme2(tmp_path / "c", cache_dir=tmp_path / "hf")
    ds = load_casme2(tmp_path / "c", annotations=wb, cache_dir=tmp_path / "hf")
    assert len(ds) == 2
    # the 2019 name is also found by itself beside the tree
    shutil.copy(wb, tmp_path / "c" / wb.name)
    assert len(load_casme2(tmp_path / "c", cache_dir=tmp_path / "hf")) == 2


# ---------------------------------------------------------------------------- SAMM
def test_samm_quirks(tmp_path, caplog):
    fx.write_samm(tmp_path / "SAMM_root", fx.samm_quirk_clips())
    with caplog.at_level(logging.WARNING, logger="modeling_mie.data"):
        ds = load_samm(tmp_path / "SAMM_root", cache_dir=tmp_path / "hf")
    rows = _by_clip(ds)
    assert len(ds) == 8
    a = rows["006_1_2"]
    assert a["subject"] == "samm/006" and a["annotation_subject"] == "006" and a["megc_subject"] == "6"
    # frames count from the long recording: the folder starts at 5562, 5-digit names
    assert a["frame_numbers"][0] == 5562 and os.path.basename(a["frames"][0]) == "006_05562.jpg"
    assert (a["onset_index"], a["apex_index"], a["offset_index"]) == (0, 3, 6)
    # 4-digit names running into 5 digits sort by number
    b = rows["006_1_3"]
    assert b["frame_numbers"] == list(range(9996, 10003))
    assert os.path.basename(b["frames"][-1]) == "006_10002.jpg" and b["apex_index"] == 4
    assert rows["007_3_1"]["action_units"] == [6, 12, 15] and rows["009_2_1"]["action_units"] == [10]
    assert rows["009_3_2"]["emotion"] == "Other" and rows["011_1_4"]["emotion"] == "Others"
    assert rows["009_3_2"]["label"] == rows["011_1_4"]["label"] == -1
    assert [rows[c]["label"] for c in ("006_1_2", "006_1_3", "007_3_1", "009_2_1", "028_4_1", "032_3_1")] == [0, 0, 1, 2, 0, 0]
    # apex outside the frames present: clamped to the nearest frame, flagged, and warned about
    late, early = rows["028_4_1"], rows["032_3_1"]
    assert (late["apex"], late["apex_index"], late["apex_source"]) == (2109, 9, "clamped") and late["apex_estimated"]
    assert (early["apex"], early["apex_index"], early["apex_source"]) == (3300, 0, "clamped")
    warned = [r.getMessage() for r in caplog.records if "apex" in r.getMessage()]
    assert len(warned) == 2 and "028_4_1" in warned[0] and "2115" in warned[0]
    assert all(r["fps"] == 200 for r in ds)


def test_samm_frames_are_greyscale_on_disk(tmp_path):
    from PIL import Image

    tree = fx.write_samm(tmp_path / "s", fx.samm_quirk_clips()[:1])
    ds = load_samm(tree, cache_dir=tmp_path / "hf")
    with Image.open(ds[0]["frames"][0]) as img:
        assert img.mode == "L"


# ---------------------------------------------------------------------------- SMIC
def test_smic_quirks(tmp_path):
    fx.write_smic(tmp_path / "SMIC", fx.smic_quirk_clips())
    ds = load_smic(tmp_path / "SMIC", cache_dir=tmp_path / "hf")
    rows = _by_clip(ds)
    # non_micro is ignored
    assert set(rows) == {"s1_ne_01", "s1_po_01", "s3_sur_01", "s12_ne_02", "s12_po_01"}
    # subjects in numeric order, as on the list
    assert list(dict.fromkeys(ds["subject"])) == ["smic/s1", "smic/s3", "smic/s12"]
    s = rows["s3_sur_01"]
    # unpadded counters crossing 99999 -> 100000 sort by number
    assert s["frame_numbers"] == list(range(99997, 100004))
    assert os.path.basename(s["frames"][3]) == "image100000.bmp"
    # no apex in SMIC: the middle frame, flagged
    assert s["apex_estimated"] and s["apex_source"] == "middle" and s["apex"] == 100000
    assert (s["onset"], s["offset"]) == (99997, 100003)
    p = rows["s1_po_01"]
    assert os.path.basename(p["frames"][0]) == "image01234567.bmp" and p["frame_numbers"][0] == 1234567
    # the disk spells s1, the MEGC list s01 and s01_ne_01
    n = rows["s1_ne_01"]
    assert (n["subject"], n["annotation_subject"], n["megc_subject"], n["megc_filename"]) == (
        "smic/s1",
        "s1",
        "s01",
        "s01_ne_01",
    )
    assert [rows[c]["label"] for c in ("s1_ne_01", "s1_po_01", "s3_sur_01")] == [0, 1, 2]
    assert n["action_units"] == [] and n["fps"] == 100 and n["variant"] == "raw"
    # the HS folder itself is accepted as root too
    assert len(load_smic(tmp_path / "SMIC" / "SMIC_all_raw" / "HS", cache_dir=tmp_path / "hf")) == 5


def test_smic_cropped(tmp_path):
    fx.write_smic(tmp_path / "SMIC", fx.smic_quirk_clips()[:2], cropped=True)
    ds = load_smic(tmp_path / "SMIC", cache_dir=tmp_path / "hf")
    assert set(ds["variant"]) == {"cropped"}
    assert os.path.basename(_by_clip(ds)["s1_ne_01"]["frames"][0]) == "reg_image12345.bmp"


# ---------------------------------------------------------------------------- bad trees
def test_root_missing(tmp_path):
    for loader in (load_casme2, load_samm, load_smic):
        with pytest.raises(MieInputError, match="does not exist"):
            loader(tmp_path / "nope")


def test_workbook_missing(tmp_path):
    fx.write_samm(tmp_path / "s", fx.samm_quirk_clips()[:2], workbook=False)
    with pytest.raises(MieInputError, match="SAMM_Micro_FACS_Codes_v2.xlsx.*annotations=PATH"):
        load_samm(tmp_path / "s")
    with pytest.raises(MieInputError, match="does not exist"):
        load_samm(tmp_path / "s", annotations=tmp_path / "missing.xlsx")


def test_workbook_with_other_columns(tmp_path):
    clips = fx.casme2_quirk_clips()[:2]
    fx.write_casme2(tmp_path / "c", clips, workbook=False)
    # The SMIC-E workbook handed to the CASME II loader: the message names expected and found columns.
    smic_e = fx.write_casme2_workbook(
        tmp_path / "SMIC-HS-E_annotation.xlsx", clips, sheet="HS",
        header=["Subject", "Filename", "OnsetF", "OffsetF", "TotalMF1", "Emotion"],
    )
    with pytest.raises(MieInputError) as err:
        load_casme2(tmp_path / "c", annotations=smic_e)
    message = str(err.value)
    assert "lacks the columns ['OnsetFrame', 'ApexFrame', 'OffsetFrame', 'Action Units', 'Estimated Emotion']" in message
    assert "Expected columns ['Subject', 'Filename', 'OnsetFrame'" in message
    assert "found ['Subject', 'Filename', 'OnsetF', 'OffsetF', 'TotalMF1', 'Emotion']" in message
    # A workbook whose header was renamed
    header = list(fx.CASME2_HEADER)
    header[8] = "Emotion"
    renamed = fx.write_casme2_workbook(tmp_path / "renamed.xlsx", clips, header=header)
    with pytest.raises(MieInputError, match=r"lacks the columns \['Estimated Emotion'\].*found \[.*'Emotion'\]"):
        load_casme2(tmp_path / "c", annotations=renamed)
    # No header at all (a SAMM workbook whose header row was deleted)
    fx.write_samm(tmp_path / "s", fx.samm_quirk_clips()[:1], workbook=False)
    headless = fx.write_samm_workbook(tmp_path / "h.xlsx", fx.samm_quirk_clips()[:1], header=["x"] * 12)
    with pytest.raises(MieInputError, match="no header row with Subject and Filename in its first 40 rows"):
        load_samm(tmp_path / "s", annotations=headless)


def test_wrong_sheet_name(tmp_path):
    clips = fx.samm_quirk_clips()[:1]
    fx.write_samm(tmp_path / "s", clips, workbook=False)
    import openpyxl

    path = fx.write_samm_workbook(tmp_path / "s" / "SAMM_Micro_FACS_Codes_v2.xlsx", clips, sheet="ALL")
    book = openpyxl.load_workbook(path)
    book.create_sheet("README")
    book.save(path)
    with pytest.raises(MieInputError, match="no sheet 'MICRO_ONLY'.*'ALL', 'README'"):
        load_samm(tmp_path / "s")


def test_missing_and_empty_clip_folders(tmp_path, caplog):
    clips = fx.casme2_quirk_clips()
    on_disk = [c for c in clips if c.filename != "EP01_2"]
    tree = fx.write_casme2(tmp_path / "c", clips, on_disk=on_disk)
    for f in (tree / "sub09" / "EP09f").iterdir():
        f.unlink()
    with pytest.raises(MieInputError) as err:
        load_casme2(tmp_path / "c", cache_dir=tmp_path / "hf")
    message = str(err.value)
    assert "2 clips named by the annotations cannot be read" in message
    assert "sub03/EP01_2: no clip folder" in message and "sub09/EP09f: no frames" in message
    assert "strict=False" in message
    with caplog.at_level(logging.WARNING, logger="modeling_mie.data"):
        ds = load_casme2(tmp_path / "c", strict=False, cache_dir=tmp_path / "hf")
    assert len(ds) == 8 and {"EP01_2", "EP09f"}.isdisjoint(ds["clip"])
    assert sorted(p.clip for p in ds.problems) == ["EP01_2", "EP09f"]
    assert any("left out" in r.getMessage() for r in caplog.records)


def test_onset_offset_outside_frames(tmp_path):
    clip = fx.Clip(2, "EP01_01", range(10, 15), "happiness", 10, 12, 18, "12")
    fx.write_casme2(tmp_path / "c", [clip])
    with pytest.raises(MieInputError, match=r"sub02/EP01_01: onset..offset 10..18 lies outside the frames present \(10..14"):
        load_casme2(tmp_path / "c")
    clip = fx.Clip(2, "EP01_01", range(10, 15), "happiness", 7, 12, 14, "12")
    fx.write_casme2_workbook(tmp_path / "c" / "CASME2-coding-20140508.xlsx", [clip])
    with pytest.raises(MieInputError, match="onset..offset 7..14 lies outside"):
        load_casme2(tmp_path / "c")


def test_bad_frame_cells_and_duplicates(tmp_path):
    bad = fx.Clip(2, "EP01_01", range(10, 15), "happiness", 10, "peak", 14, "12")
    good = fx.Clip(2, "EP02_01", range(10, 15), "happiness", 10, 12, 14, "12")
    fx.write_casme2(tmp_path / "c", [bad, good])
    with pytest.raises(MieInputError, match="row 2: the apex frame 'peak' is not a frame number"):
        load_casme2(tmp_path / "c")
    # one clip's bad cell does not cost the others with strict=False
    lenient = load_casme2(tmp_path / "c", strict=False, cache_dir=tmp_path / "hf")
    assert lenient["clip"] == ["EP02_01"] and [p.clip for p in lenient.problems] == ["EP01_01"]
    clip = fx.Clip(2, "EP01_01", range(10, 15), "happiness", 10, 12, 14, "12")
    tree = fx.write_casme2(tmp_path / "d", [clip])
    shutil.copy(tree / "sub02" / "EP01_01" / "img11.jpg", tree / "sub02" / "EP01_01" / "img011.jpg")
    with pytest.raises(MieInputError, match="two frames numbered 11"):
        load_casme2(tmp_path / "d")


def test_no_tree_found(tmp_path):
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(MieInputError, match="No SAMM clip tree found"):
        load_samm(tmp_path / "empty")
    with pytest.raises(MieInputError, match="No SMIC clip tree found"):
        load_smic(tmp_path / "empty")


# ---------------------------------------------------------------------------- fingerprints
def test_fingerprint_follows_workbook_and_frames(tmp_path):
    clips = fx.casme2_quirk_clips()[:3]
    tree = fx.write_casme2(tmp_path / "c", clips)
    cache = tmp_path / "hf"
    first = load_casme2(tmp_path / "c", cache_dir=cache)
    again = load_casme2(tmp_path / "c", cache_dir=cache)
    assert again._fingerprint == first._fingerprint  # same files: the Arrow cache is reused
    assert again.cache_files[0]["filename"] == first.cache_files[0]["filename"]

    # Edit the workbook (same size and, within a second, maybe the same mtime): rows follow.
    clips[0].emotion = "surprise"
    clips[1].apex = 100
    fx.write_casme2_workbook(tmp_path / "c" / "CASME2-coding-20140508.xlsx", clips)
    edited = load_casme2(tmp_path / "c", cache_dir=cache)
    assert edited._fingerprint != first._fingerprint
    assert _by_clip(edited)["EP02_01f"]["label"] == 2 and _by_clip(edited)["EP19_05f"]["apex"] == 100

    # A frame added on disk: rows follow.
    shutil.copy(tree / "sub01" / "EP02_01f" / "img12.jpg", tree / "sub01" / "EP02_01f" / "img13.jpg")
    grown = load_casme2(tmp_path / "c", cache_dir=cache)
    assert grown._fingerprint != edited._fingerprint
    assert _by_clip(grown)["EP02_01f"]["num_frames"] == 6

    # A frame rewritten in place (same name): the fingerprint changes with size/mtime.
    frame = tree / "sub01" / "EP02_01f" / "img9.jpg"
    frame.write_bytes(frame.read_bytes() + b"\0")
    stamp = time.time() + 5
    os.utime(frame, (stamp, stamp))
    assert load_casme2(tmp_path / "c", cache_dir=cache)._fingerprint != grown._fingerprint


# ---------------------------------------------------------------------------- the composite
@pytest.fixture(scope="session")
def megc_roots(tmp_path_factory):
    """All 442 listed clips in the three real layouts (two 8 x 8 frames each), plus unlisted ones."""
    return fx.write_megc2019_complete(tmp_path_factory.mktemp("megc2019"))


@pytest.fixture(scope="session")
def megc_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("hf")


def test_shipped_list_is_the_official_one():
    shipped = resources.files("modeling_mie").joinpath("resources", "megc2019_3class_gt.csv").read_bytes()
    assert shipped == fx.OFFICIAL_LIST.read_bytes()
    assert hashlib.md5(shipped).hexdigest() == "ed429a7d56fbf800d5aeecdedec21a7a"
    assert shipped.count(b"\r\n") == 442
    listed = read_megc2019_ground_truth()
    assert len(listed) == 442 and listed[0].database == "casme2" and listed[-1].filename == "037_3_2"


def test_megc2019_complete(megc_roots, megc_cache):
    ds = load_megc2019(**megc_roots, cache_dir=megc_cache)
    assert len(ds) == 442 and ds.missing_clips == []
    summary = summarize_clips(ds)
    counts = {d: (e["negative"], e["positive"], e["surprise"], e["clips"], e["subjects"]) for d, e in summary.items()}
    assert counts == {
        "smic": (70, 51, 43, 164, 16),
        "casme2": (88, 32, 25, 145, 24),
        "samm": (92, 26, 15, 133, 28),
        "total": (250, 109, 83, 442, 68),
    }
    assert len(set(ds["subject"])) == 68
    assert "total        250   109    83" in format_summary(summary)
    # The list's order and spellings; the subject keys are the disk's.
    listed = read_megc2019_ground_truth()
    assert [(c.database, c.subject, c.filename, c.label) for c in listed] == list(
        zip(ds["database"], ds["megc_subject"], ds["megc_filename"], ds["label"])
    )
    # (episode names repeat across CASME II subjects: the list's key is subject + filename)
    columns = ["database", "megc_subject", "megc_filename", "subject", "clip", "apex_source"]
    rows = {(r["database"], r["megc_subject"], r["megc_filename"]): r for r in ds.select_columns(columns)}
    assert len(rows) == 442
    assert rows[("smic", "s01", "s01_ne_01")]["subject"] == "smic/s1" and rows[("smic", "s01", "s01_ne_01")]["clip"] == "s1_ne_01"
    assert rows[("samm", "6", "006_1_2")]["subject"] == "samm/006"
    assert rows[("casme2", "sub01", "EP02_01f")]["subject"] == "casme2/sub01"
    assert rows[("casme2", "sub09", "EP02_01f")]["subject"] == "casme2/sub09"
    assert rows[("samm", "28", "028_4_1")]["apex_source"] == "clamped"
    # the two CASME II clips the list drops are not there; CASME II sub10, sub18 and SAMM 025 have no fold
    clips = set(zip(ds["subject"], ds["clip"]))
    assert ("casme2/sub04", "EP12_01f") not in clips and ("casme2/sub05", "EP09_05f") not in clips
    assert {"casme2/sub10", "casme2/sub18", "samm/025"}.isdisjoint(ds["subject"])


def test_per_database_loaders_on_the_complete_set(megc_roots, megc_cache):
    casme2 = summarize_clips(load_casme2(megc_roots["casme2"], cache_dir=megc_cache))["casme2"]
    # re-mapping the workbook gives 147 labelled clips: the list drops sub04/EP12_01f and sub05/EP09_05f
    assert (casme2["negative"], casme2["positive"], casme2["surprise"], casme2["unlabelled"]) == (90, 32, 25, 3)
    samm = summarize_clips(load_samm(megc_roots["samm"], cache_dir=megc_cache))["samm"]
    assert (samm["negative"], samm["positive"], samm["surprise"], samm["unlabelled"], samm["subjects"]) == (92, 26, 15, 2, 29)
    smic = summarize_clips(load_smic(megc_roots["smic"], cache_dir=megc_cache))["smic"]
    assert (smic["clips"], smic["subjects"]) == (164, 16)


def test_megc2019_subset_of_databases(megc_roots, megc_cache):
    ds = load_megc2019(smic=megc_roots["smic"], samm=megc_roots["samm"], cache_dir=megc_cache)
    summary = summarize_clips(ds)
    assert list(summary) == ["smic", "samm", "total"] and summary["total"]["clips"] == 297
    assert ds.missing_clips == []
    with pytest.raises(MieInputError, match="at least one of casme2=, samm=, smic="):
        load_megc2019()


def test_megc2019_missing_clips_are_reported(megc_roots, megc_cache, tmp_path, caplog):
    listed = fx.read_official_list()
    smic_rows = [r for r in listed if r[0] == "smic"][:3]
    gt = tmp_path / "list.csv"
    gt.write_bytes(
        b"".join(f"{d},{s},{f},{c}\r\n".encode() for d, s, f, c in smic_rows)
        + b"smic,s02,s02_po_17,1\r\nsamm,99,099_1_1,0\r\n"
    )
    with caplog.at_level(logging.WARNING, logger="modeling_mie.data"):
        ds = load_megc2019(smic=megc_roots["smic"], samm=megc_roots["samm"], ground_truth=gt, cache_dir=megc_cache)
    assert len(ds) == 3
    assert [(m["database"], m["subject"], m["filename"], m["label"]) for m in ds.missing_clips] == [
        ("smic", "s02", "s02_po_17", 1),
        ("samm", "99", "099_1_1", 0),
    ]
    assert "no clip folder" in ds.missing_clips[0]["reason"] and "workbook row" in ds.missing_clips[1]["reason"]
    assert any("2 listed clips are missing" in r.getMessage() and "s02_po_17" in r.getMessage() for r in caplog.records)
    with pytest.raises(MieInputError, match="2 listed clips are missing.*strict=False"):
        load_megc2019(smic=megc_roots["smic"], samm=megc_roots["samm"], ground_truth=gt, strict=True, cache_dir=megc_cache)
    # a listed database not given is not "missing": only the given ones are asked for
    ds = load_megc2019(smic=megc_roots["smic"], ground_truth=gt, cache_dir=megc_cache)
    assert len(ds.missing_clips) == 1


def test_megc2019_list_class_wins_and_disagreement_is_logged(megc_roots, megc_cache, tmp_path, caplog):
    gt = tmp_path / "list.csv"
    # SMIC s01_ne_01 sits in the negative folder; this list calls it positive.
    gt.write_text("database,subject,filename,class\nsmic,s01,s01_ne_01,1\nsmic,s1,s1_po_01,1\n")
    with caplog.at_level(logging.WARNING, logger="modeling_mie.data"):
        ds = load_megc2019(smic=megc_roots["smic"], ground_truth=gt, cache_dir=megc_cache)
    assert ds["label"] == [1, 1] and ds["megc_subject"] == ["s01", "s1"]
    assert any("differs from their annotated emotion" in r.getMessage() and "s01_ne_01" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "text, message",
    [
        ("smic,s01,s01_ne_01\n", "expected 4 fields"),
        ("smic,s01,s01_ne_01,3\n", "class must be 0, 1 or 2"),
        ("mmew,s01,s01_ne_01,0\n", "unknown database 'mmew'"),
        ("smic,s01,s01_ne_01,0\nsmic,s1,s1_ne_01,0\n", "repeats line 1"),
    ],
)
def test_ground_truth_validation(tmp_path, text, message):
    gt = tmp_path / "list.csv"
    gt.write_text(text)
    with pytest.raises(MieInputError, match=message):
        read_megc2019_ground_truth(gt)


# ---------------------------------------------------------------------------- region labels
def test_region_labels_from_table_and_action_units(tmp_path):
    fx.write_casme2(tmp_path / "c", fx.casme2_quirk_clips())
    rows = _by_clip(load_casme2(tmp_path / "c", cache_dir=tmp_path / "hf"))
    config = MieConfig()  # regions: left_eye, right_eye, nose, left_cheek, right_cheek, mouth
    nm = config.not_me_id
    assert nm == 3
    # EP19_05f: negative with AU 4 (brows) + L10 (upper lip: nose, cheeks, mouth)
    assert clip_region_labels(rows["EP19_05f"], config) == [0, 0, 0, 0, 0, 0]
    # EP06_02_01: negative with AU 9 only (nose wrinkler): every other region is "not me"
    assert clip_region_labels(rows["EP06_02_01"], config) == [nm, nm, 0, nm, nm, nm]
    # the per-emotion table: negative moves eyes, nose, mouth
    assert clip_region_labels(rows["EP06_02_01"], config, use_action_units=False) == [0, 0, 0, nm, nm, 0]
    # EP02_01f: positive with AU 6 + 12: eyes (6), cheeks (6, 12), mouth (12), not the nose
    assert clip_region_labels(rows["EP02_01f"], config) == [1, 1, nm, 1, 1, 1]
    with pytest.raises(MieInputError, match="no class label"):
        clip_region_labels(rows["EP13_02"], config)


def test_region_labels_without_action_units_use_the_table(tmp_path, tiny_config):
    fx.write_smic(tmp_path / "m", fx.smic_quirk_clips()[:3])
    rows = _by_clip(load_smic(tmp_path / "m", cache_dir=tmp_path / "hf"))
    # tiny_config: 5 labels, regions upper (neg, sur, fear), middle (neg), lower (pos, other)
    nm = tiny_config.not_me_id
    assert clip_region_labels(rows["s1_ne_01"], tiny_config) == [0, 0, nm]
    assert clip_region_labels(rows["s1_po_01"], tiny_config) == [nm, nm, 1]
    assert clip_region_labels(rows["s3_sur_01"], tiny_config) == [2, nm, nm]
