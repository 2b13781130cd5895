"""Workbooks of the long-video databases in their real layouts, for tests and synthetic data.

`write_casme_sq_workbook`, `write_samm_lv_workbook`, `write_samm_emotions_workbook` and
`write_casme3_part_a_workbook` write what `modeling_mie.long_videos` reads (sheet names, header
rows, column order and cell types as ../shared/SPOTTING.md describes them), from rows given as
`CasmeSqRow`, `SammLvRow`, `SammEmotionRow` and `Casme3Row` or plain tuples in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .long_videos import (
    CASME3_A_COLUMNS,
    CASME_SQ_SHEET,
    CASME_SQ_SUBJECT_FOLDERS,
    CASME_SQ_SUBJECT_SHEET,
    CASME_SQ_VIDEO_CODES,
    CASME_SQ_VIDEO_SHEET,
    SAMM_EMOTION_HEADER,
    SAMM_LV_HEADER,
    SAMM_LV_SHEET,
    SAMM_LV_TITLE_ROWS,
)


class CasmeSqRow(NamedTuple):
    """One row of the CAS(ME)^2 main sheet, in its column order."""

    subject: int  # subject index 1-22 (naming rule1 maps it to a folder)
    clip: str  # "<videoName>_<n>", e.g. "anger1_1"
    onset: int
    apex: int  # 0 = not annotated
    offset: int  # 0 = not annotated (44 macro rows)
    action_units: str | int | None = None
    emotion: str = "others"  # negative / positive / surprise / others
    type: str = "macro-expression"  # or "micro-expression"
    self_report: str | None = None


class SammLvRow(NamedTuple):
    """One row of the SAMM-LV workbook below its header."""

    subject: str  # text, "006"
    filename: str  # "006_1_3": video 006_1, interval 3
    onset: int | float
    apex: int | float  # -1 = not annotated
    offset: int | float
    type: str = "Micro - 1/2"  # or "Macro"
    action_units: str | None = None
    notes: str | None = None


class SammEmotionRow(NamedTuple):
    """One row of SAMM's micro workbook as `load_samm_lv(emotions=...)` merges it."""

    subject: str
    filename: str
    emotion: str
    type: str = "Micro - 1/2"
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    action_units: str | None = None


class Casme3Row(NamedTuple):
    """One row of a CAS(ME)^3 Part A label workbook (column order unverified)."""

    subject: str  # "spNO.1"
    filename: str  # the video letter, "a"
    onset: int
    apex: int | None
    offset: int
    type: str = "Micro-expression"  # or "Macro-expression"
    emotion: str | None = None
    action_units: str | None = None


def _save(book, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_casme_sq_workbook(
    path,
    rows: Sequence,
    *,
    subject_folders: dict[int, str] | None = None,
    video_codes: dict[str, str] | None = None,
    naming_rules: bool = True,
    sheet: str = CASME_SQ_SHEET,
) -> Path:
    """`CAS(ME)^2code_final.xlsx` in the real layout: the main sheet without a header, then
    `naming rule1` (row-aligned with the main sheet: folder number, folder, subject index, e.g.
    (15, 's15', 1)) and `naming rule2` (code as text, video name, e.g. ('0101', 'disgust1')).

    Args:
        rows: `CasmeSqRow`s or plain tuples in the same order.
        subject_folders, video_codes: the mappings to write (default: the documented ones).
        naming_rules: False leaves both naming-rule sheets out.
        sheet: the main sheet's name.
    """
    import openpyxl

    subject_folders = CASME_SQ_SUBJECT_FOLDERS if subject_folders is None else subject_folders
    video_codes = CASME_SQ_VIDEO_CODES if video_codes is None else video_codes
    rows = [CasmeSqRow(*r) for r in rows]
    book = openpyxl.Workbook()
    main = book.active
    main.title = sheet
    for r in rows:
        main.append(list(r))
    if naming_rules:
        subjects = book.create_sheet(CASME_SQ_SUBJECT_SHEET)
        for r in rows:
            folder = subject_folders[r.subject]
            subjects.append([int(folder[1:]), folder, r.subject])
        videos = book.create_sheet(CASME_SQ_VIDEO_SHEET)
        for name, code in video_codes.items():
            videos.append([str(code), name])  # text, so the leading zero stays
    return _save(book, path)


def write_samm_lv_workbook(
    path,
    rows: Sequence,
    *,
    sheet: str = SAMM_LV_SHEET,
    header: Sequence[str] = SAMM_LV_HEADER,
) -> Path:
    """A SAMM Long Videos workbook in the real layout: sheet `FACS_Movement_Only`, rows 1-9 a
    title, a symbol key and the apex note, the header on row 10, then `rows` (`SammLvRow`s or
    plain tuples). Subject is written as text; Duration = Offset - Onset + 1."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    title = [
        "SAMM Long Videos - FACS coding of every movement (fixture copy)",
        None,
        "Key:",
        "L = left, R = right, A-E = intensity",
        "Macro = macro-movement, Micro - 1/2 = micro-movement",
        None,
        "Subjects with Apex Frame not annotated were labelled as -1",
        None,
        None,
    ]
    for line in title[:SAMM_LV_TITLE_ROWS]:
        ws.append([line])
    ws.append(list(header))
    for r in (SammLvRow(*r) for r in rows):
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (r.onset, r.offset))
        inducement = r.filename.split("_")[1] if r.filename.count("_") >= 1 else None
        ws.append(
            [str(r.subject), r.filename, int(inducement) if inducement and inducement.isdigit() else inducement,
             r.onset, r.apex, r.offset, (r.offset - r.onset + 1) if numeric else None, r.type, r.action_units, r.notes]
        )
    return _save(book, path)


def write_samm_emotions_workbook(path, rows: Sequence, *, sheet: str = "MICRO_ONLY", header: Sequence[str] = SAMM_EMOTION_HEADER) -> Path:
    """SAMM's micro workbook as MEAN reads `SAMM_20181215_Micro_FACS_Codes_v2.xlsx`: the header
    on row 1 (MEAN's names; the real spelling is unverified), one row per micro clip."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(list(header))
    for r in (SammEmotionRow(*r) for r in rows):
        ws.append([str(r.subject), r.filename, None, r.onset, r.apex, r.offset, None, r.type, r.action_units, r.emotion, None, None])
    return _save(book, path)


def write_casme3_part_a_workbook(path, rows: Sequence, *, sheet: str = "Sheet1", columns: dict | None = None) -> Path:
    """A CAS(ME)^3 Part A label workbook: header on row 1 (`CASME3_A_COLUMNS` names, then
    emotion and AU), one row per expression (`Casme3Row`s or plain tuples). The real column order
    is unverified; `columns` renames headers as `load_casme3_part_a(columns=...)` reads them."""
    import openpyxl

    names = {**CASME3_A_COLUMNS, "emotion": "emotion", "action_units": "AU", **(columns or {})}
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    ws.append([names[k] for k in Casme3Row._fields])
    for r in (Casme3Row(*r) for r in rows):
        ws.append(list(r))
    return _save(book, path)


__all__ = [
    "Casme3Row",
    "CasmeSqRow",
    "SammEmotionRow",
    "SammLvRow",
    "write_casme3_part_a_workbook",
    "write_casme_sq_workbook",
    "write_samm_emotions_workbook",
    "write_samm_lv_workbook",
]
