"""Builders of long-video fixture trees in the real layouts of CAS(ME)^2, SAMM Long Videos and
CAS(ME)^3 Part A, with every quirk of ../shared/SPOTTING.md sections 1-3.

Frames are tiny (8 x 8) JPEGs. The workbooks are written by the package's own writers
(`modeling_mie.long_video_workbooks.write_*_workbook`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from fixtures_datasets import _tiny

from modeling_mie.long_video_workbooks import (
    Casme3Row,
    CasmeSqRow,
    SammEmotionRow,
    SammLvRow,
    write_casme3_part_a_workbook,
    write_casme_sq_workbook,
    write_samm_emotions_workbook,
    write_samm_lv_workbook,
)
from modeling_mie.long_videos import (
    CASME_SQ_FOLDER_SUFFIXES,
)


def write_frames(folder: Path, names: Iterable[str], grey: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(_tiny("jpg", grey, 40 + i % 150))
    return folder


# ---------------------------------------------------------------------------- CAS(ME)^2
def casme_sq_folder(subject: str, code: str) -> str:
    """The video folder name: `15_0101disgustingteeth` for ("s15", "0101")."""
    return f"{subject[1:]}_{code}{CASME_SQ_FOLDER_SUFFIXES.get(code, 'video')}"


def write_casme_sq_tree(
    root: Path,
    videos: Mapping[tuple[str, str], Iterable[int]],
    rows: Iterable | None = None,
    **workbook_kwargs,
) -> Path:
    """A CAS(ME)^2 copy: `root/rawpic/s15/15_0101disgustingteeth/img001.jpg` (3-digit padding that
    runs into 4 digits at img1000), the other top-level folders of the release, and (with `rows`)
    `root/CAS(ME)^2code_final.xlsx`. `videos`: (subject folder, code) -> frame numbers."""
    for (subject, code), numbers in videos.items():
        write_frames(root / "rawpic" / subject / casme_sq_folder(subject, code), (f"img{n:03d}.jpg" for n in numbers))
    for name in ("cropped", "selectedpic", "rawvideo"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "rawvideo" / "s15").mkdir(exist_ok=True)
    (root / "rawvideo" / "s15" / "15_0101disgustingteeth.avi").write_bytes(b"not read")
    if rows is not None:
        write_casme_sq_workbook(root / "CAS(ME)^2code_final.xlsx", rows, **workbook_kwargs)
    return root


def casme_sq_quirk_videos() -> dict[tuple[str, str], range]:
    return {
        ("s15", "0101"): range(1, 1004),  # img099 < img100 < img1000: names would sort img1000 early
        ("s15", "0102"): range(1, 41),
        ("s15", "0508"): range(1, 21),  # no annotation (SPOTTING.md: s15/0508, s19/0502, s23/0503)
        ("s16", "0101"): range(1, 31),
        ("s19", "0502"): range(1, 21),
        ("s23", "0503"): range(1, 21),
        ("s34", "0401"): range(1, 31),
        ("s40", "0402"): range(1, 31),
    }


def casme_sq_quirk_rows() -> list[CasmeSqRow]:
    """Main-sheet rows with every CAS(ME)^2 quirk; subject indices map to s15 (1), s16 (2),
    s34 (17), s40 (22)."""
    return [
        CasmeSqRow(1, "disgust1_1", 3, 5, 9, "4+10+14", "negative", "micro-expression", "disgust"),
        # near the end of a 1003-frame video; AU written as a number
        CasmeSqRow(1, "disgust1_2", 998, 1000, 1002, 4, "others", "macro-expression", "disgust"),
        # offset 0 (44 MaE rows): apex / apex + 20 / drop
        CasmeSqRow(1, "disgust2_1", 5, 12, 0, "1+2", "surprise", "macro-expression", "surprise"),
        # offset 0 where apex + 20 runs past the last frame (40)
        CasmeSqRow(1, "disgust2_2", 25, 30, 0, "1+2", "surprise", "macro-expression", "surprise"),
        # offset before the apex (3 rows); self-report spelled "happyiness"
        CasmeSqRow(2, "disgust1_1", 2, 9, 7, "12", "positive", "macro-expression", "happyiness"),
        # an ME of 20 frames: still micro (the type column decides, not the length)
        CasmeSqRow(2, "disgust1_2", 10, 14, 29, "12", "positive", "micro-expression", "happy"),
        # apex 0 once: subject 17, anger1_1
        CasmeSqRow(17, "anger1_1", 4, 0, 12, "4+7", "negative", "micro-expression", "anger"),
        # a short macro stays macro; onset at frame 1 = index 0
        CasmeSqRow(22, "anger2_1", 1, 3, 6, "R12", "positive", "macro-expression", "happy"),
    ]


# ---------------------------------------------------------------------------- SAMM Long Videos
def samm_lv_frame_name(video: str, number: int) -> str:
    return f"{video}_{number:04d}.jpg"


def write_samm_lv_tree(root: Path, videos: Mapping[str, Iterable[int]], rows: Iterable | None = None, **workbook_kwargs) -> Path:
    """A SAMM-LV copy: `root/SAMM_longvideos/006_1/006_1_0001.jpg` (greyscale, 4-digit numbers)
    and (with `rows`) `root/SAMM_LongVideos_V2_Release.xlsx`. Returns root (the `SAMMLV` folder)."""
    for video, numbers in videos.items():
        write_frames(root / "SAMM_longvideos" / video, (samm_lv_frame_name(video, n) for n in numbers), grey=True)
    if rows is not None:
        write_samm_lv_workbook(root / "SAMM_LongVideos_V2_Release.xlsx", rows, **workbook_kwargs)
    return root


def samm_lv_quirk_videos() -> dict[str, range]:
    return {
        "006_1": range(1, 41),
        "006_2": range(9995, 10006),  # 006_2_9999 < 006_2_10000 by number, not by name
        "007_5": range(1, 31),
        "011_2": range(1, 21),
    }


def samm_lv_quirk_rows() -> list[SammLvRow]:
    return [
        SammLvRow("006", "006_1_1", 3, 6, 10, "Micro - 1/2", "R12"),
        # onset 0 (ten Macro rows): start at the apex, or drop
        SammLvRow("006", "006_1_2", 0, 8, 25, "Macro", "4+7"),
        # fractional frame numbers (178 rows): round 20/23/36, truncate 20/22/35
        SammLvRow("006", "006_1_3", 20.4, 22.5, 35.6, "Micro - 1/2", "14"),
        # a 5-frame Macro stays macro
        SammLvRow("006", "006_2_1", 9998, 10000, 10002, "Macro", "1+2"),
        # apex -1 (six rows)
        SammLvRow("007", "007_5_1", 2, -1, 28, "Micro - 1/2", "L2"),
        # onset 0 AND apex -1: nothing to start at, dropped by either policy
        SammLvRow("011", "011_2_1", 0, -1, 10, "Macro", None),
        SammLvRow("011", "011_2_2", 5, 12, 9, "Micro - 1/2", "4", "offset before apex"),
    ]


def samm_emotion_rows() -> list[SammEmotionRow]:
    """Micro rows for the (Filename, Type) merge. 006_1_2 is listed as a micro here but is Macro in
    the long-video workbook, so it must not match; 007_5_1 is missing."""
    return [
        SammEmotionRow("006", "006_1_1", "Happiness"),
        SammEmotionRow("006", "006_1_3", "Anger"),
        SammEmotionRow("006", "006_1_2", "Surprise"),
        SammEmotionRow("011", "011_2_2", "Other"),
    ]


def write_samm_emotions(path: Path, rows=None) -> Path:
    return write_samm_emotions_workbook(path, samm_emotion_rows() if rows is None else rows)


# ---------------------------------------------------------------------------- CAS(ME)^3 Part A
def write_casme3_tree(root: Path, videos: Mapping[tuple[str, str], Iterable[int]]) -> Path:
    """A CAS(ME)^3 Part A copy: `root/part_A/spNO.1/a/color/1.jpg` (numbers not padded) with
    `depth/` beside `color/`. Returns the `part_A` folder."""
    part = root / "part_A"
    for (subject, video), numbers in videos.items():
        numbers = list(numbers)
        write_frames(part / subject / video / "color", (f"{n}.jpg" for n in numbers))
        write_frames(part / subject / video / "depth", (f"{n}.jpg" for n in numbers[:3]), grey=True)
    return part


def casme3_quirk_videos() -> dict[tuple[str, str], list[int]]:
    return {
        ("spNO.1", "a"): list(range(1, 21)),  # 9.jpg < 10.jpg by number
        ("spNO.1", "b"): [n for n in range(1, 16) if n != 7],  # a dropped frame
        ("spNO.2", "a"): list(range(1, 13)),
        ("spNO.10", "c"): list(range(1, 11)),  # no annotation
    }


def casme3_micro_rows() -> list[Casme3Row]:
    return [
        Casme3Row("spNO.1", "a", 3, 9, 12, "Micro-expression", "happy", "12"),
        Casme3Row("spNO.1", "b", 5, 7, 10, "Micro-expression", "surprise", "1+2"),  # apex on the dropped frame
    ]


def casme3_macro_rows() -> list[Casme3Row]:
    return [
        # Filename repeats within a video: a second expression of spNO.1/a
        Casme3Row("spNO.1", "a", 14, 16, 19, "Macro-expression", "disgust", "4+9"),
        Casme3Row("spNO.2", "a", 2, None, 8, "Macro-expression", "others", None),
    ]


def write_casme3_workbooks(root: Path, micro=None, macro=None) -> tuple[Path, Path]:
    """The two JpgIndex label workbooks beside `part_A`."""
    return (
        write_casme3_part_a_workbook(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", casme3_micro_rows() if micro is None else micro),
        write_casme3_part_a_workbook(
            root / "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx", casme3_macro_rows() if macro is None else macro
        ),
    )


__all__ = [
    "casme3_macro_rows",
    "casme3_micro_rows",
    "casme3_quirk_videos",
    "casme_sq_folder",
    "casme_sq_quirk_rows",
    "casme_sq_quirk_videos",
    "samm_emotion_rows",
    "samm_lv_quirk_rows",
    "samm_lv_quirk_videos",
    "write_casme3_tree",
    "write_casme3_workbooks",
    "write_casme_sq_tree",
    "write_frames",
    "write_samm_emotions",
    "write_samm_lv_tree",
]
