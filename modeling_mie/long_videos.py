"""Loaders for the long-video spotting databases CAS(ME)^2, SAMM Long Videos and CAS(ME)^3 Part A, one row per video.

The layouts, workbooks and quirks read here are those of ../shared/SPOTTING.md, sections 1-3 (the
project's specification of the licensed databases). Every loader returns rows with the same
features (`long_video_features()`): a video (its frame folder, frame count, fps) and the list of
its annotated intervals as 0-based indices into the numerically sorted frames, each with the flags
of the quirk policies applied to it. Videos without any annotation are kept with no intervals:
spotting counts the false positives found in them.

The workbook writers (`modeling_mie.long_video_workbooks`) write the same real layouts for the
tests, so that what the loaders read is one format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from .annotations import DATABASE_NAMES as _NAMES
from .annotations import (
    ClipProblem,
    _cell_text,
    _check_root,
    _digits,
    _find_tree,
    _frame_cell,
    _frame_positions,
    _listing,
    _locate_workbook,
    _norm_header,
    _scan_frames,
    _subdirs,
    _TreeHasher,
    read_workbook,
)
from .data import EMOTION_TO_CLASS, MEGC_CLASSES, _to_dataset
from .errors import MieInputError
from .landmarks import _sha256 as _file_digest

logger = logging.getLogger(__name__)

# Part of every fingerprint (beside annotations.LOADER_VERSION): bump it whenever the rows change for the
# same files, so that an upgrade never returns rows cached by an older loader.
LONG_VIDEO_LOADER_VERSION = "1"

LONG_VIDEO_DATABASES = ("casme_sq", "samm_lv", "casme3_a")
# SPOTTING.md: CAS(ME)^2 30 fps (640 x 480), SAMM-LV 200 fps (2040 x 1088), CAS(ME)^3 30 fps.
LONG_VIDEO_FPS = {"casme_sq": 30.0, "samm_lv": 200.0, "casme3_a": 30.0}

# Raw emotion (lower case) -> MEGC class name. CAS(ME)^2 already writes the classes; SAMM's emotions
# map as in MEGC 2019 (data.EMOTION_TO_CLASS["samm"]); CAS(ME)^3's "happy" and "sad" spellings are
# unverified guesses that follow the same rule. Any other non-empty emotion is "others".
EMOTION_TO_LABEL = {
    **{name: name for name in MEGC_CLASSES},
    **{emotion: MEGC_CLASSES[index] for emotion, index in EMOTION_TO_CLASS["samm"].items()},
    "happy": "positive",
    "sad": "negative",
}

# ---------------------------------------------------------------------------- CAS(ME)^2 layout
CASME_SQ_WORKBOOKS = ("CAS(ME)^2code_final.xlsx", "code_final.xlsx", "*code_final*.xlsx")
CASME_SQ_SHEET = "CASFEcode_final"
CASME_SQ_SUBJECT_SHEET = "naming rule1"
CASME_SQ_VIDEO_SHEET = "naming rule2"
# The main sheet has no header row: its columns by position (the names SOFTNet gives them).
CASME_SQ_COLUMNS = ("subject", "clip", "onset", "apex", "offset", "action_units", "emotion", "type", "self_report")
# The documented mappings (SPOTTING.md 1), used only when the workbook lacks its naming-rule sheets.
CASME_SQ_SUBJECT_FOLDERS = {
    index: f"s{number}" for index, number in enumerate([15, 16, *range(19, 28), *range(29, 39), 40], start=1)
}
CASME_SQ_VIDEO_CODES = {
    "disgust1": "0101",
    "disgust2": "0102",
    "anger1": "0401",
    "anger2": "0402",
    "happy1": "0502",
    "happy2": "0503",
    "happy3": "0505",
    "happy4": "0507",
    "happy5": "0508",
}
# Folder suffixes in code order (HE24's list, paired with the codes by position: the pairing is
# unverified). The loader matches folders on the code only, so a different suffix does not matter.
CASME_SQ_FOLDER_SUFFIXES = dict(
    zip(
        CASME_SQ_VIDEO_CODES.values(),
        ["disgustingteeth", "eatingworms", "girlcrashing", "beatingpregnantwoman", "funnyerrors",
         "unnyfarting", "funnyinnovations", "climbingthewall", "funnydunkey"],
    )
)
OFFSET_POLICIES = ("apex", "apex+20", "drop")

# ---------------------------------------------------------------------------- SAMM-LV layout
# V2 first: SOFTNet, MEAN and HE24 (whose numbers the project compares with) read V2.
SAMM_LV_WORKBOOKS = (
    "SAMM_LongVideos_V2_Release.xlsx",
    "SAMM_LongVideos_V3_Release.xlsx",
    "SAMM_LongVideos_V1_Release.xlsx",
    "SAMM_LongVideos*.xlsx",
    "SAMMLV*.xlsx",
)
SAMM_LV_SHEET = "FACS_Movement_Only"
SAMM_LV_HEADER = ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units", "Notes")
SAMM_LV_TITLE_ROWS = 9  # the header is on row 10
SAMM_LV_COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset",
    "apex": "Apex",
    "offset": "Offset",
    "type": "Type",
    "action_units": "Action Units",
}
# The micro workbook merged for emotions: data.py's SAMM_Micro_FACS_Codes_v2.xlsx spells the type
# column "Micro" and the emotion "Estimated Emotion"; MEAN names them Type and Emotion.
SAMM_EMOTION_COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "type": ("Micro", "Type"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
SAMM_EMOTION_HEADER = (
    "Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units",
    "Emotion", "Classes", "Notes",
)
FRACTION_POLICIES = ("round", "truncate")
ONSET_ZERO_POLICIES = ("apex", "drop")

# ---------------------------------------------------------------------------- CAS(ME)^3 layout
CASME3_A_WORKBOOKS = {
    "micro": ("cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", "*ME_label*.xlsx"),
    "macro": ("cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx", "*MaE_label*.xlsx"),
}
# The columns MEB's code reads; the full column order is unverified, so they are configurable.
CASME3_A_COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset",
    "apex": "Apex",
    "offset": "Offset",
    "type": "Expression type",
}
CASME3_A_OPTIONAL_COLUMNS = {"emotion": ("emotion", "Estimated Emotion"), "action_units": ("AU", "Action Units")}

# One list of the flags an interval can carry, so readers can check for typos.
INTERVAL_FLAGS = (
    "apex_missing",  # no apex annotated (CAS apex 0, SAMM -1, blank): apex and apex_number are -1
    "offset_zero_set_to_apex",  # CAS offset 0, offset_policy="apex"
    "offset_zero_set_to_apex_plus_20",  # CAS offset 0, offset_policy="apex+20"
    "offset_clamped_to_last_frame",  # apex + 20 ran past the video's last frame
    "offset_before_apex",  # kept as annotated
    "apex_before_onset",  # kept as annotated
    "fractional_rounded",  # SAMM fractional frame numbers, fraction_policy="round"
    "fractional_truncated",  # fraction_policy="truncate"
    "onset_zero_set_to_apex",  # SAMM onset 0, onset_zero_policy="apex"
    "frame_missing",  # an annotated frame number has no file; the nearest frame inside is used
    "emotion_not_found",  # SAMM micro row without a match in the emotions workbook
)


def long_video_features():
    """The `datasets.Features` of every long-video loader's rows (one row per video).

    Columns:
        database (str): "casme_sq", "samm_lv" or "casme3_a".
        subject (str): the subject folder name ("s15", "006", "spNO.1"); one LOSO fold each.
        video (str): unique within the database: "s15/15_0101disgustingteeth", "006_1", "spNO.1/a".
        frames_dir (str): absolute path of the folder holding the frames (CAS(ME)^3: `.../color`).
        first_frame, last_frame (int64): the numbers in the first and last file names.
        num_frames (int32): frame files in the folder; frame index i is the i-th of them sorted by
            number (`list_video_frames`).
        missing_frames (list[int64]): numbers between first_frame and last_frame with no file.
        fps (float32): frames per second (30, 200, 30 unless the loader was told otherwise).
        frame_size ({width, height} int32): pixels of the first frame.
        intervals (list of structs), sorted by onset, each:
            onset, apex, offset (int32): 0-based indices into the sorted frames; apex -1 when
                none is annotated. Inclusive: the interval covers frames onset..offset.
            onset_number, apex_number, offset_number (int64): the annotated frame numbers after
                the quirk policies (apex_number -1 when none).
            kind (str): "micro" or "macro", from the workbook's type column (never from length).
            emotion (str): as annotated ("" where the database has none).
            label (str): "negative", "positive", "surprise", "others", or "" with no emotion.
            action_units (str): the AU cell as text ("4+10+14", "4").
            flags (list[str]): the quirk policies applied (`INTERVAL_FLAGS`).
            row (int32): the workbook row (1-based, as Excel numbers it).
            source (str): the workbook's file name.
    """
    from datasets import Features, List, Value

    interval = {
        "onset": Value("int32"),
        "apex": Value("int32"),
        "offset": Value("int32"),
        "onset_number": Value("int64"),
        "apex_number": Value("int64"),
        "offset_number": Value("int64"),
        "kind": Value("string"),
        "emotion": Value("string"),
        "label": Value("string"),
        "action_units": Value("string"),
        "flags": List(Value("string")),
        "row": Value("int32"),
        "source": Value("string"),
    }
    return Features(
        {
            "database": Value("string"),
            "subject": Value("string"),
            "video": Value("string"),
            "frames_dir": Value("string"),
            "first_frame": Value("int64"),
            "last_frame": Value("int64"),
            "num_frames": Value("int32"),
            "missing_frames": List(Value("int64")),
            "fps": Value("float32"),
            "frame_size": {"width": Value("int32"), "height": Value("int32")},
            "intervals": List(interval),
        }
    )


def list_video_frames(frames_dir) -> list[str]:
    """Absolute paths of a video's frames, sorted by the number in the file name (index order).

    `img99.jpg < img100.jpg < img1000.jpg`, `006_1_9999.jpg < 006_1_10000.jpg`: names are never
    sorted as text. Raises MieInputError for two files with the same number.
    """
    folder = Path(frames_dir)
    return [str(folder / f[1]) for f in _scan_frames(folder)]


def emotion_label(emotion: str) -> str:
    """The MEGC class name of a raw emotion, "others" for any other emotion, "" for none."""
    text = (emotion or "").strip().lower()
    return EMOTION_TO_LABEL.get(text, "others") if text else ""


def _choice(name: str, value, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
    return value


# ---------------------------------------------------------------------------- shared machinery
@dataclass
class _Video:
    subject: str
    video: str
    folder: Path


@dataclass
class _Interval:
    """One workbook row after the quirk policies, in frame numbers, before indexing."""

    key: tuple  # the video it belongs to, in the database's own key
    row: int
    onset: int
    apex: int | None
    offset: int
    kind: str
    emotion: str
    action_units: str
    flags: list[str] = field(default_factory=list)
    clamp_offset: bool = False
    source: str = ""  # the workbook's file name


@dataclass
class _Collected:
    """What a database's workbook gives, before it meets the frames on disk."""

    intervals: list[_Interval] = field(default_factory=list)
    problems: list[ClipProblem] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    # video key -> (subject, video) as messages name it when no folder is found for the key
    shown: dict[tuple, tuple[str, str]] = field(default_factory=dict)


def _interval_flags(interval: _Interval) -> None:
    if interval.apex is None:
        return
    if interval.offset < interval.apex:
        # CAS(ME)^2 has 3 such rows (SPOTTING.md): kept as annotated, so a scorer sees the truth.
        interval.flags.append("offset_before_apex")
    if interval.apex < interval.onset:
        interval.flags.append("apex_before_onset")


def _index_interval(interval: _Interval, numbers: list[int]) -> tuple[dict | None, str | None]:
    """The interval struct with 0-based indices, or (None, reason) when it does not fit the frames."""
    first, last = numbers[0], numbers[-1]
    onset, apex, offset = interval.onset, interval.apex, interval.offset
    flags = list(interval.flags)
    if interval.clamp_offset and offset > last:
        offset = last
        flags.append("offset_clamped_to_last_frame")
    if onset > offset:
        return None, f"row {interval.row}: onset {onset} is after offset {offset}"
    if onset < first or offset > last or (apex is not None and not first <= apex <= last):
        shown = f"{onset}..{offset}" + (f" (apex {apex})" if apex is not None else "")
        return None, f"row {interval.row}: interval {shown} lies beyond the video's frames {first}..{last}"
    onset_index, apex_index, offset_index, _ = _frame_positions(numbers, onset, apex, offset)
    if onset_index > offset_index:
        return None, f"row {interval.row}: no frame of {onset}..{offset} is on disk"
    if numbers[onset_index] != onset or numbers[offset_index] != offset or (apex is not None and numbers[apex_index] != apex):
        # CAS(ME)^3 drops frames (SPOTTING.md 3): the nearest frame inside the interval stands in.
        flags.append("frame_missing")
    return (
        {
            "onset": onset_index,
            "apex": apex_index if apex is not None else -1,
            "offset": offset_index,
            "onset_number": onset,
            "apex_number": apex if apex is not None else -1,
            "offset_number": offset,
            "kind": interval.kind,
            "emotion": interval.emotion,
            "label": emotion_label(interval.emotion),
            "action_units": interval.action_units,
            "flags": flags,
            "row": interval.row,
            "source": interval.source,
        },
        None,
    )


def _frame_size(path: Path) -> dict:
    from PIL import Image

    with Image.open(path) as image:  # reads the header only
        width, height = image.size
    return {"width": width, "height": height}


def _kind(value, where: str) -> str:
    text = _cell_text(value).lower()
    for kind in ("micro", "macro"):
        if text.startswith(kind):
            return kind
    raise MieInputError(f"{where}: the type {_cell_text(value)!r} is neither micro nor macro.")


def _build(
    database: str, tree: Path, videos: dict[tuple, _Video], collected: _Collected, hasher: _TreeHasher, fps: float
) -> tuple[list[dict], list[ClipProblem]]:
    """Rows of the videos on disk joined with their intervals; problems found on the way."""
    problems = list(collected.problems)
    by_video: dict[tuple, list[_Interval]] = {}
    for interval in collected.intervals:
        by_video.setdefault(interval.key, []).append(interval)
    for key in [k for k in by_video if k not in videos]:
        subject, video = collected.shown.get(key, key[:2] if len(key) > 1 else ("?", key[0]))
        rows = [str(i.row) for i in by_video.pop(key)]
        problems.append(
            ClipProblem(
                database, subject, video,
                f"row{'s' if len(rows) > 1 else ''} {', '.join(rows)}: annotated video has no frame folder in {tree}",
            )
        )
    for dropped in collected.dropped:
        key = dropped.pop("key")
        dropped["video"] = videos[key].video if key in videos else "/".join(collected.shown.get(key, key))
    out = []
    for key, video in videos.items():
        try:
            frames = _scan_frames(video.folder)
        except (MieInputError, OSError) as exc:
            problems.append(ClipProblem(database, video.subject, video.video, str(exc)))
            continue
        hasher.update(video.video, [f[1:] for f in frames])
        if not frames:
            problems.append(ClipProblem(database, video.subject, video.video, f"no frames (image files) in {video.folder}"))
            continue
        try:
            size = _frame_size(video.folder / frames[0][1])
        except Exception as exc:  # noqa: BLE001 (PIL raises several types for a file that is not an image)
            problems.append(ClipProblem(database, video.subject, video.video, f"cannot read {frames[0][1]} ({exc})"))
            continue
        numbers = [f[0] for f in frames]
        intervals = []
        for interval in by_video.get(key, []):
            struct, reason = _index_interval(interval, numbers)
            if struct is None:
                problems.append(ClipProblem(database, video.subject, video.video, reason))
            else:
                intervals.append(struct)
        intervals.sort(key=lambda s: (s["onset"], s["offset"], s["row"]))
        out.append(
            {
                "database": database,
                "subject": video.subject,
                "video": video.video,
                "frames_dir": str(video.folder),
                "first_frame": numbers[0],
                "last_frame": numbers[-1],
                "num_frames": len(numbers),
                "missing_frames": [n for a, b in pairwise(numbers) for n in range(a + 1, b)],
                "fps": fps,
                "frame_size": size,
                "intervals": intervals,
            }
        )
    return out, problems


def _finish(database: str, rows, problems, dropped, hasher: _TreeHasher, tree: Path, strict: bool, cache_dir):
    name = _NAMES[database]
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        message = f"{name}: {count} between the annotations and the frames: {_listing(problems)}."
        if strict:
            raise MieInputError(
                message + " Fix the tree or the workbook, or pass strict=False to leave those videos and intervals out."
            )
        logger.warning("%s They are left out (strict=False).", message)
    if dropped:
        logger.info("%s: %d intervals dropped by policy: %s", name, len(dropped), _listing(d["reason"] for d in dropped))
    if not rows:
        raise MieInputError(f"{name}: no readable videos in {tree}.")
    dataset = _to_dataset(rows, hasher.hexdigest(), cache_dir, features=long_video_features())
    dataset.problems = list(problems)
    dataset.dropped = list(dropped)
    return dataset


def _hasher(database: str, tree: Path, workbooks: Sequence[Path], *settings) -> _TreeHasher:
    hasher = _TreeHasher("long-videos", LONG_VIDEO_LOADER_VERSION, database, str(tree), *settings)
    for workbook in workbooks:
        hasher.update("workbook", str(workbook), _file_digest(workbook))
    return hasher


def _drop(collected: _Collected, database: str, interval: _Interval, reason: str) -> None:
    """Record an interval a policy leaves out (`dataset.dropped`; the video is named in `_build`)."""
    collected.dropped.append(
        {
            "database": database,
            "key": interval.key,
            "row": interval.row,
            "reason": f"{interval.source} row {interval.row}: {reason}",
        }
    )


# ---------------------------------------------------------------------------- CAS(ME)^2
_CASME_SQ_SUBJECT = re.compile(r"^s(\d+)$", re.IGNORECASE)
_CASME_SQ_VIDEO = re.compile(r"^(\d+)_(\d{4})")


def _is_casme_sq_tree(path: Path) -> bool:
    return any(
        _CASME_SQ_SUBJECT.match(s.name) and any(_CASME_SQ_VIDEO.match(v.name) for v in _subdirs(Path(s.path)))
        for s in _subdirs(path)
    )


def _casme_sq_naming(path: Path, subject_rows, video_rows) -> tuple[dict[int, str], dict[str, str]]:
    """Subject index -> folder from `naming rule1` (rows like (15, 's15', 1)) and video name -> code
    from `naming rule2` (rows like ('0101', 'disgust1')); the documented mapping where a sheet is
    missing or empty."""
    subjects: dict[int, str] = {}
    for row in subject_rows or []:
        row = tuple(row) + (None,) * 3
        folder, index = _cell_text(row[1]), _digits(row[2])
        if _CASME_SQ_SUBJECT.match(folder) and index is not None and subjects.setdefault(index, folder) != folder:
            raise MieInputError(
                f"The CAS(ME)^2 workbook {path}, sheet {CASME_SQ_SUBJECT_SHEET!r}, maps subject {index} to both "
                f"{subjects[index]} and {folder}; fix the sheet."
            )
    codes: dict[str, str] = {}
    for row in video_rows or []:
        row = tuple(row) + (None,) * 2
        code, name = row[0], _cell_text(row[1]).lower()
        # Codes are text ('0101'); a copy that lost the leading zero stores the number 101.
        code = f"{code:04d}" if isinstance(code, int) else _cell_text(code).zfill(4)
        if re.fullmatch(r"\d{4}", code) and name:
            codes[name] = code
    for sheet, found, default in (
        (CASME_SQ_SUBJECT_SHEET, subjects, CASME_SQ_SUBJECT_FOLDERS),
        (CASME_SQ_VIDEO_SHEET, codes, CASME_SQ_VIDEO_CODES),
    ):
        if not found:
            logger.warning(
                "The CAS(ME)^2 workbook %s has no usable sheet %r; using the documented mapping (SPOTTING.md).",
                path, sheet,
            )
            found.update(default)
    return subjects, codes


def _read_casme_sq_workbook(path: Path):
    """(main-sheet rows numbered from 1, subject index -> folder, video name -> code)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a file that is not a workbook
        raise MieInputError(f"Cannot read the CAS(ME)^2 workbook {path} ({exc}); it must be an .xlsx file.") from exc
    try:
        names = book.sheetnames
        if CASME_SQ_SHEET in names:
            main = book[CASME_SQ_SHEET]
        elif len(names) == 1:
            logger.warning("CAS(ME)^2 workbook %s has no sheet %r; reading its only sheet %r.", path, CASME_SQ_SHEET, names[0])
            main = book[names[0]]
        else:
            raise MieInputError(
                f"The CAS(ME)^2 workbook {path} has no sheet {CASME_SQ_SHEET!r} (sheets: {names}); the annotations "
                f"are expected on sheet {CASME_SQ_SHEET!r}, with {CASME_SQ_SUBJECT_SHEET!r} and "
                f"{CASME_SQ_VIDEO_SHEET!r} beside it."
            )
        rows, subject_rows, video_rows = (
            [tuple(r) for r in book[sheet].iter_rows(values_only=True)] if sheet in names else None
            for sheet in (main.title, CASME_SQ_SUBJECT_SHEET, CASME_SQ_VIDEO_SHEET)
        )
    finally:
        book.close()
    width = max((max((i + 1 for i, c in enumerate(r) if c is not None), default=0) for r in rows), default=0)
    if width < 8:
        raise MieInputError(
            f"The CAS(ME)^2 workbook {path} (sheet {main.title!r}) has {width} columns; expected at least 8 without a "
            f"header row: {', '.join(CASME_SQ_COLUMNS)}. Is this the right workbook?"
        )
    numbered = []
    for number, row in enumerate(rows, start=1):
        if all(c is None for c in row):
            continue
        row = row + (None,) * (len(CASME_SQ_COLUMNS) - len(row))
        if number == 1 and _digits(row[0]) is None and isinstance(row[2], str) and not row[2].strip().isdigit():
            logger.info("CAS(ME)^2 workbook %s: row 1 looks like a header (%s); skipped.", path, row[:3])
            continue
        numbered.append((number, dict(zip(CASME_SQ_COLUMNS, row))))
    subjects, codes = _casme_sq_naming(path, subject_rows, video_rows)
    return numbered, subjects, codes


def _collect_casme_sq(path: Path, offset_policy: str):
    records, subjects, codes = _read_casme_sq_workbook(path)
    collected = _Collected()
    for number, rec in records:
        where = f"CAS(ME)^2 workbook {path.name}, row {number}"
        index, clip = _digits(rec["subject"]), _cell_text(rec["clip"])
        folder = subjects.get(index) if index is not None else None
        name = clip.split("_")[0].lower()
        code = codes.get(name)
        shown_subject = folder or f"subject {_cell_text(rec['subject'])}"
        try:
            if folder is None:
                raise MieInputError(f"{where}: subject index {_cell_text(rec['subject'])!r} is not in {CASME_SQ_SUBJECT_SHEET!r}.")
            if code is None:
                raise MieInputError(f"{where}: video name {name!r} (clip {clip!r}) is not in {CASME_SQ_VIDEO_SHEET!r}.")
            onset = _frame_cell(rec["onset"], "the onset frame", where)
            apex = _frame_cell(rec["apex"], "the apex frame", where)
            offset = _frame_cell(rec["offset"], "the offset frame", where)
            kind = _kind(rec["type"], where)
            if onset is None or offset is None:
                raise MieInputError(f"{where}: onset and offset must be frame numbers.")
        except MieInputError as exc:  # one row's problem: strict=False skips that row only
            collected.problems.append(ClipProblem("casme_sq", shown_subject, clip or "?", str(exc)))
            continue
        key = (folder, code)
        collected.shown[key] = (folder, f"{folder[1:]}_{code}* ({name})")
        interval = _Interval(
            key, number, onset, apex, offset, kind, _cell_text(rec["emotion"]), _cell_text(rec["action_units"]),
            source=path.name,
        )
        if apex in (None, 0):
            # Apex 0 once (subject 17, anger1_1): no apex is annotated, not frame 0.
            interval.apex = None
            interval.flags.append("apex_missing")
        if offset == 0:
            # 44 macro rows have offset 0. SOFTNet/MTSN end them at the apex, SHENG at apex + 20.
            if offset_policy == "drop":
                _drop(collected, "casme_sq", interval, "offset 0 (offset_policy='drop')")
                continue
            if interval.apex is None:
                _drop(collected, "casme_sq", interval, "offset 0 and no apex to end at")
                continue
            if offset_policy == "apex":
                interval.offset = interval.apex
                interval.flags.append("offset_zero_set_to_apex")
            else:
                interval.offset = interval.apex + 20
                interval.flags.append("offset_zero_set_to_apex_plus_20")
                interval.clamp_offset = True
        _interval_flags(interval)
        collected.intervals.append(interval)
    return collected


def load_casme_sq(
    root,
    annotations=None,
    *,
    strict: bool = True,
    cache_dir=None,
    offset_policy: str = "apex",
    fps: float | None = None,
):
    """CAS(ME)^2 (CASME_sq) as a `datasets.Dataset`, one row per video (`long_video_features()`).

    Args:
        root: the database root (holding `CAS(ME)^2code_final.xlsx` and `rawpic/`), the `rawpic`
            folder (`rawpic/s15/15_0101disgustingteeth/img001.jpg`), another copy in the same
            layout (e.g. cropped frames: pass that folder itself), or a folder up to 2 levels
            above `rawpic`.
        annotations: the workbook; by default `CAS(ME)^2code_final.xlsx` (or `code_final.xlsx`)
            in or beside the root. Sheet `CASFEcode_final` has no header row; `naming rule1`
            maps subject index -> folder, `naming rule2` video name -> code (the documented
            mapping is used, with a warning, where those sheets are missing).
        strict: raise when an annotated video has no folder or an interval does not fit its
            frames; with False those are logged and left out (`dataset.problems`). A workbook
            that cannot be read raises either way: there is nothing to go on without it.
        cache_dir: where `datasets` keeps the Arrow rows (default: its cache). The key covers
            the loader version, the policies, every frame's name, size and mtime and the
            workbook's bytes.
        offset_policy: the 44 macro rows with offset 0: "apex" (default; SOFTNet and MTSN end
            them at the apex), "apex+20" (SHENG; clamped to the last frame) or "drop".
        fps: frames per second to record (default 30).

    Quirks: apex 0 (once) becomes -1 with flag "apex_missing"; offsets before the apex (3 rows)
    are kept with "offset_before_apex"; `kind` comes from the type column (10 MEs are longer than
    15 frames). Frame numbers are 1-based (`img001` = frame 1 = index 0, SOFTNet's `onset-1`).
    Three videos (s15/0508, s19/0502, s23/0503) have no annotation and are kept with none.

    Returns:
        `datasets.Dataset`; attributes `problems` (`ClipProblem`s left out with strict=False) and
        `dropped` (dicts database, video, row, reason of intervals a policy dropped).

    Raises:
        MieInputError: root, tree or workbook missing or unreadable, no main sheet, too few
            columns, or (strict) problems. ValueError: an unknown policy.
    """
    _choice("offset_policy", offset_policy, OFFSET_POLICIES)
    fps = LONG_VIDEO_FPS["casme_sq"] if fps is None else float(fps)
    root = _check_root(root, "casme_sq")
    if _is_casme_sq_tree(root):
        tree = root
    else:
        tree = _find_tree(
            root,
            lambda p: p.name.lower() == "rawpic" and _is_casme_sq_tree(p),
            "casme_sq",
            "rawpic/s15/15_0101disgustingteeth/img001.jpg",
        )
    workbook = _locate_workbook(annotations, [root, tree.parent, tree, root.parent], CASME_SQ_WORKBOOKS, "casme_sq")
    collected = _collect_casme_sq(workbook, offset_policy)
    videos: dict[tuple, _Video] = {}
    subject_entries = sorted(
        (e for e in _subdirs(tree) if _CASME_SQ_SUBJECT.match(e.name)),
        key=lambda e: int(_CASME_SQ_SUBJECT.match(e.name).group(1)),
    )
    for subject in subject_entries:
        for entry in _subdirs(Path(subject.path)):
            match = _CASME_SQ_VIDEO.match(entry.name)
            if match is None:
                logger.warning("CAS(ME)^2: ignoring %s (not <n>_<code><name>).", entry.path)
                continue
            key = (subject.name, match.group(2))
            if key in videos:
                collected.problems.append(
                    ClipProblem("casme_sq", subject.name, entry.name, f"a second folder for code {key[1]} ({videos[key].video})")
                )
                continue
            videos[key] = _Video(subject.name, f"{subject.name}/{entry.name}", Path(entry.path))
    hasher = _hasher("casme_sq", tree, [workbook], fps, offset_policy)
    rows, problems = _build("casme_sq", tree, videos, collected, hasher, fps)
    return _finish("casme_sq", rows, problems, collected.dropped, hasher, tree, strict, cache_dir)


# ---------------------------------------------------------------------------- SAMM Long Videos
_SAMM_LV_VIDEO = re.compile(r"^(\d{3})_(\d+)$")
_SAMM_LV_FILENAME = re.compile(r"^(\d{3})_(\d+)_(\d+)$")


def _is_samm_lv_tree(path: Path) -> bool:
    return any(_SAMM_LV_VIDEO.match(e.name) for e in _subdirs(path))


def _samm_frame(value, what: str, where: str, fraction_policy: str) -> tuple[int | None, bool]:
    """(frame number, was fractional) of a SAMM-LV cell; None for a blank cell."""
    if value is None or isinstance(value, bool):
        return None, False
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "-", "/", "?"):
            return None, False
        try:
            value = float(text)
        except ValueError:
            raise MieInputError(f"{where}: {what} {text!r} is not a frame number.") from None
    if not isinstance(value, (int, float)):
        raise MieInputError(f"{where}: {what} {value!r} is not a frame number.")
    if value == int(value):
        return int(value), False
    # 178 rows of the ground truth have frame numbers like 566.4 (SPOTTING.md 2).
    return (int(value + 0.5) if fraction_policy == "round" else int(value)), True


def _read_samm_emotions(path) -> dict[tuple[str, str], str]:
    """(Filename, Type) -> Emotion of SAMM's micro workbook, as MEAN merges them."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MieInputError(f"The SAMM emotions workbook {path} does not exist; check emotions=.")
    # The first sheet: MICRO_ONLY in SAMM_Micro_FACS_Codes_v2.xlsx; MEAN reads sheet 0 of the
    # 20181215 copy too.
    records = read_workbook(path, None, SAMM_EMOTION_COLUMNS, "SAMM (emotions)")
    out: dict[tuple[str, str], str] = {}
    for rec in records:
        key = (_cell_text(rec["filename"]).lower(), _norm_header(rec["type"]))
        emotion = _cell_text(rec["emotion"])
        if out.setdefault(key, emotion) != emotion:
            logger.warning(
                "SAMM emotions workbook %s: %s (%s) appears twice with %r and %r; using the first.",
                path, *key, out[key], emotion,
            )
    return out


def _collect_samm_lv(path: Path, fraction_policy: str, onset_zero_policy: str, emotions: dict | None):
    records = read_workbook(path, SAMM_LV_SHEET, SAMM_LV_COLUMNS, "samm_lv")
    collected = _Collected()
    fraction_flag = "fractional_rounded" if fraction_policy == "round" else "fractional_truncated"
    for rec in records:
        number = rec["_row"]
        where = f"SAMM Long Videos workbook {path.name}, row {number}"
        filename = _cell_text(rec["filename"])
        match = _SAMM_LV_FILENAME.match(filename)
        subject = match.group(1) if match else _cell_text(rec["subject"])
        video = f"{match.group(1)}_{match.group(2)}" if match else filename or "?"
        try:
            if match is None:
                raise MieInputError(f"{where}: Filename {filename!r} is not <subject>_<video>_<n> like 006_1_3.")
            if _digits(rec["subject"]) != int(match.group(1)):
                raise MieInputError(f"{where}: Subject {_cell_text(rec['subject'])!r} does not match Filename {filename!r}.")
            onset, f1 = _samm_frame(rec["onset"], "the onset", where, fraction_policy)
            apex, f2 = _samm_frame(rec["apex"], "the apex", where, fraction_policy)
            offset, f3 = _samm_frame(rec["offset"], "the offset", where, fraction_policy)
            kind = _kind(rec["type"], where)
            if onset is None or offset is None:
                raise MieInputError(f"{where}: onset and offset must be frame numbers.")
        except MieInputError as exc:  # one row's problem: strict=False skips that row only
            collected.problems.append(ClipProblem("samm_lv", subject, video, str(exc)))
            continue
        emotion = ""
        flags = [fraction_flag] if (f1 or f2 or f3) else []
        if emotions is not None:
            emotion = emotions.get((filename.lower(), _norm_header(rec["type"])), "")
            if not emotion and kind == "micro":
                flags.append("emotion_not_found")
        collected.shown[(video,)] = (subject, video)
        interval = _Interval(
            (video,), number, onset, apex, offset, kind, emotion, _cell_text(rec["action_units"]), flags, source=path.name
        )
        if apex is None or apex == -1:
            # "Subjects with Apex Frame not annotated were labelled as -1" (6 rows)
            interval.apex = None
            interval.flags.append("apex_missing")
        if onset == 0:
            # Ten macro rows start at 0. SOFTNet drops them; MTSN starts them at the apex.
            if onset_zero_policy == "drop":
                _drop(collected, "samm_lv", interval, "onset 0 (onset_zero_policy='drop')")
                continue
            if interval.apex is None:
                _drop(collected, "samm_lv", interval, "onset 0 and no apex to start at")
                continue
            interval.onset = interval.apex
            interval.flags.append("onset_zero_set_to_apex")
        _interval_flags(interval)
        collected.intervals.append(interval)
    return collected


def load_samm_lv(
    root,
    annotations=None,
    *,
    strict: bool = True,
    cache_dir=None,
    fraction_policy: str = "round",
    onset_zero_policy: str = "apex",
    emotions=None,
    fps: float | None = None,
):
    """SAMM Long Videos as a `datasets.Dataset`, one row per video (`long_video_features()`).

    Args:
        root: `SAMM_longvideos` (`006_1/006_1_0001.jpg`, one flat folder per video), or a folder
            up to 2 levels above it (`SAMMLV`).
        annotations: the workbook (sheet `FACS_Movement_Only`, 9 title rows, header on row 10:
            Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units,
            Notes); by default `SAMM_LongVideos_V2_Release.xlsx` (then V3, V1, any
            `SAMM_LongVideos*.xlsx`) in or beside the root. Which release the public ground truth
            is is unverified.
        strict, cache_dir: as for `load_casme_sq`.
        fraction_policy: frame numbers like 566.4 (178 rows): "round" (default; HEY's
            `int(x + 0.5)`, nearest frame) or "truncate" (SOFTNet's `int(x)`).
        onset_zero_policy: the ten macro rows with onset 0: "apex" (default; MTSN starts them at
            the apex, keeping them for recall) or "drop" (SOFTNet).
        emotions: path of SAMM's micro workbook (`SAMM_20181215_Micro_FACS_Codes_v2.xlsx` as MEAN
            reads it, or `SAMM_Micro_FACS_Codes_v2.xlsx` as `load_samm` does), merged on
            (Filename, Type) for `emotion`. Without it every emotion is "". Macro rows never
            match; a micro row without a match gets flag "emotion_not_found".
        fps: frames per second to record (default 200).

    The subject is the video's prefix (`006`); Filename `006_1_3` is interval 3 of video `006_1`.
    Apex -1 (6 rows) becomes -1 with flag "apex_missing". Fractions are resolved first, then
    onset 0. `kind` comes from Type ("Macro", "Micro - 1/2"), not from the length.

    Returns, Raises: as `load_casme_sq`.
    """
    _choice("fraction_policy", fraction_policy, FRACTION_POLICIES)
    _choice("onset_zero_policy", onset_zero_policy, ONSET_ZERO_POLICIES)
    fps = LONG_VIDEO_FPS["samm_lv"] if fps is None else float(fps)
    root = _check_root(root, "samm_lv")
    tree = root if _is_samm_lv_tree(root) else _find_tree(root, _is_samm_lv_tree, "samm_lv", "SAMM_longvideos/006_1/006_1_0001.jpg")
    workbook = _locate_workbook(annotations, [root, tree.parent, tree, root.parent], SAMM_LV_WORKBOOKS, "samm_lv")
    emotion_map = _read_samm_emotions(emotions) if emotions is not None else None
    collected = _collect_samm_lv(workbook, fraction_policy, onset_zero_policy, emotion_map)
    entries = sorted(
        (e for e in _subdirs(tree) if _SAMM_LV_VIDEO.match(e.name)),
        key=lambda e: tuple(int(g) for g in _SAMM_LV_VIDEO.match(e.name).groups()),
    )
    videos = {(e.name,): _Video(e.name.split("_")[0], e.name, Path(e.path)) for e in entries}
    sources = [workbook] + ([Path(emotions).expanduser()] if emotions is not None else [])
    hasher = _hasher("samm_lv", tree, sources, fps, fraction_policy, onset_zero_policy)
    rows, problems = _build("samm_lv", tree, videos, collected, hasher, fps)
    return _finish("samm_lv", rows, problems, collected.dropped, hasher, tree, strict, cache_dir)


# ---------------------------------------------------------------------------- CAS(ME)^3 Part A
def _is_casme3_tree(path: Path) -> bool:
    return any(any((Path(v.path) / "color").is_dir() for v in _subdirs(Path(s.path))) for s in _subdirs(path))


def _casme3_workbooks(annotations, folders: list[Path]) -> list[Path]:
    if annotations is not None:
        paths = [annotations] if isinstance(annotations, (str, Path)) else list(annotations)
        out = []
        for p in paths:
            path = _locate_workbook(p, [], (), "casme3_a")
            if path.suffix.lower() == ".xls":
                raise MieInputError(
                    f"{path} is an old .xls workbook, which openpyxl cannot read; save it as .xlsx (or pass the "
                    "JpgIndex .xlsx label workbooks)."
                )
            out.append(path)
        return out
    found = []
    for kind, names in CASME3_A_WORKBOOKS.items():
        try:
            found.append(_locate_workbook(None, folders, names, "casme3_a"))
        except MieInputError:
            logger.warning("CAS(ME)^3 Part A: no %s label workbook (%s) found; its intervals are missing.", kind, names[0])
    if not found:
        raise MieInputError(
            f"No CAS(ME)^3 Part A label workbook found: looked for {CASME3_A_WORKBOOKS['micro'][0]} and "
            f"{CASME3_A_WORKBOOKS['macro'][0]} in {', '.join(str(f) for f in folders)}. Pass annotations=PATH "
            "(one .xlsx or a list of them)."
        )
    return found


def load_casme3_part_a(
    root,
    annotations=None,
    *,
    strict: bool = True,
    cache_dir=None,
    columns: dict | None = None,
    sheet: str | None = None,
    fps: float | None = None,
):
    """CAS(ME)^3 Part A as a `datasets.Dataset`, one row per video (`long_video_features()`).

    Only what SPOTTING.md is sure of is built in; the rest is configurable and marked.

    Args:
        root: `part_A` (`<Subject e.g. spNO.1>/<a..m>/color/<n>.jpg`, frame names not zero-padded,
            `depth/` beside `color/` and ignored), or a folder up to 2 levels above it.
        annotations: one label workbook (.xlsx) or a list of them; by default
            `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` and
            `cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx` in or beside the root (either
            may be missing, with a warning). The all-expressions `CAS(ME)3_part_A_v2.xls` is an
            old-format workbook: save it as .xlsx first.
        strict, cache_dir: as for `load_casme_sq`.
        columns: overrides of `CASME3_A_COLUMNS` (key -> header name or tuple of names; keys
            subject, filename, onset, apex, offset, type, and optionally emotion, action_units).
            The defaults are the columns MEB's code reads; the full column order is unverified.
        sheet: the sheet to read (default: the first; the sheet names are unverified).
        fps: frames per second to record (default 30; the resolution is unverified).

    Filename is the video letter and repeats within a video (one row per expression). Frame
    numbers are the file numbers; dropped frames are flagged "frame_missing" and the nearest
    frame inside the interval stands in. An apex cell left blank gives -1 ("apex_missing").
    MEB's hard-coded row fixes are not applied: such rows show up as problems instead.

    Returns, Raises: as `load_casme_sq`.
    """
    fps = LONG_VIDEO_FPS["casme3_a"] if fps is None else float(fps)
    required = dict(CASME3_A_COLUMNS)
    optional = dict(CASME3_A_OPTIONAL_COLUMNS)
    for key, name in (columns or {}).items():
        if key in required:
            required[key] = name
        elif key in optional:
            optional[key] = name
        else:
            raise ValueError(f"columns keys must be among {list(required) + list(optional)}, got {key!r}.")
    root = _check_root(root, "casme3_a")
    tree = root if _is_casme3_tree(root) else _find_tree(root, _is_casme3_tree, "casme3_a", "part_A/spNO.1/a/color/1.jpg")
    workbooks = _casme3_workbooks(annotations, [root, tree.parent, tree, root.parent])
    subjects = sorted(_subdirs(tree), key=lambda e: (_digits(e.name) if _digits(e.name) is not None else 1 << 30, e.name))
    videos: dict[tuple, _Video] = {}
    for subject in subjects:
        for entry in _subdirs(Path(subject.path)):
            if (Path(entry.path) / "color").is_dir():
                videos[(subject.name, entry.name)] = _Video(subject.name, f"{subject.name}/{entry.name}", Path(entry.path) / "color")
    lower = {(s.lower(), v.lower()): (s, v) for s, v in videos}
    collected = _Collected()
    for workbook in workbooks:
        for rec in read_workbook(workbook, sheet, required, "casme3_a", optional=optional):
            number = rec["_row"]
            where = f"CAS(ME)^3 workbook {workbook.name}, row {number}"
            subject, filename = _cell_text(rec["subject"]), _cell_text(rec["filename"])
            try:
                onset = _frame_cell(rec["onset"], "the onset frame", where)
                apex = _frame_cell(rec["apex"], "the apex frame", where)
                offset = _frame_cell(rec["offset"], "the offset frame", where)
                kind = _kind(rec["type"], where)
                if onset is None or offset is None:
                    raise MieInputError(f"{where}: onset and offset must be frame numbers.")
            except MieInputError as exc:
                collected.problems.append(ClipProblem("casme3_a", subject, filename, str(exc)))
                continue
            # Folder names may differ in case from the workbook after a copy between file systems.
            key = lower.get((subject.lower(), filename.lower()), (subject, filename))
            interval = _Interval(
                key, number, onset, apex, offset, kind, _cell_text(rec["emotion"]), _cell_text(rec["action_units"]),
                source=workbook.name,
            )
            if apex is None:
                interval.flags.append("apex_missing")
            _interval_flags(interval)
            collected.intervals.append(interval)
    hasher = _hasher("casme3_a", tree, workbooks, fps, sorted(required.items()), sorted(optional.items()), sheet)
    rows, problems = _build("casme3_a", tree, videos, collected, hasher, fps)
    return _finish("casme3_a", rows, problems, collected.dropped, hasher, tree, strict, cache_dir)


# ---------------------------------------------------------------------------- all three
def load_long_videos(*, casme_sq=None, samm_lv=None, casme3_a=None, strict: bool = True, cache_dir=None):
    """The given long-video databases concatenated (same features; `database` tells them apart).

    Each argument is a root folder, or a dict of keyword arguments for that loader (`root` and,
    e.g., `annotations`, `offset_policy`, `emotions`). `problems` and `dropped` are merged.
    """
    parts = []
    for loader, spec in ((load_casme_sq, casme_sq), (load_samm_lv, samm_lv), (load_casme3_part_a, casme3_a)):
        if spec is None:
            continue
        kwargs = dict(spec) if isinstance(spec, dict) else {"root": spec}
        kwargs.setdefault("strict", strict)
        kwargs.setdefault("cache_dir", cache_dir)
        parts.append(loader(**kwargs))
    if not parts:
        raise MieInputError("load_long_videos needs at least one of casme_sq=, samm_lv=, casme3_a= (root folders).")
    from datasets import concatenate_datasets

    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    dataset.problems = [p for part in parts for p in part.problems]
    dataset.dropped = [d for part in parts for d in part.dropped]
    return dataset


__all__ = [
    "CASME3_A_COLUMNS",
    "CASME_SQ_SUBJECT_FOLDERS",
    "CASME_SQ_VIDEO_CODES",
    "EMOTION_TO_LABEL",
    "FRACTION_POLICIES",
    "INTERVAL_FLAGS",
    "LONG_VIDEO_DATABASES",
    "LONG_VIDEO_FPS",
    "OFFSET_POLICIES",
    "ONSET_ZERO_POLICIES",
    "emotion_label",
    "list_video_frames",
    "load_casme3_part_a",
    "load_casme_sq",
    "load_long_videos",
    "load_samm_lv",
    "long_video_features",
]
