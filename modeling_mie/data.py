"""Loaders for SMIC, CASME II, SAMM and the MEGC 2019 composite, one `datasets.Dataset` row per clip.

The layouts, spellings and quirks read here are those of ../shared/DATASETS.md (the project's
specification of the three licensed databases). Every loader returns rows with the same
features (`CLIP_FEATURES`), so the databases concatenate and the composite is a plain selection
of them driven by the official MEGC 2019 list.

Frames are stored as paths, not decoded images: a SAMM clip is hundreds of 2040 x 1088 frames,
and the preprocessing cache (`modeling_mie.cache`) reads each frame once anyway.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .errors import MieInputError
from .landmarks import _sha256 as _file_digest

logger = logging.getLogger(__name__)

# Bumped whenever the rows a loader produces change for the same files: it is part of every
# fingerprint, so an upgrade never returns rows cached by an older loader.
LOADER_VERSION = "1"

DATABASES = ("smic", "casme2", "samm")
# Names in messages. The long-video databases (long_videos.py) are named here too because they
# share this module's helpers (_check_root, _find_tree, _locate_workbook, ClipProblem).
DATABASE_NAMES = {
    "smic": "SMIC",
    "casme2": "CASME II",
    "samm": "SAMM",
    "casme_sq": "CAS(ME)^2",
    "samm_lv": "SAMM Long Videos",
    "casme3_a": "CAS(ME)^3 Part A",
}
MEGC_CLASSES = ("negative", "positive", "surprise")

# Frames per second of each recording (DATASETS.md); SMIC's VIS and NIR parts run at 25 fps.
FPS = {"casme2": 200.0, "samm": 200.0, "smic": 100.0}
SMIC_PART_FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}

# MEGC 2019 3-class mapping of each database's raw emotion (lower case) to a class index. CASME II
# fear and sadness are dropped, not negative (the official list does so), while SAMM's fear and
# sadness are negative. Everything not listed (others, Other/Others, ...) has no class (-1).
EMOTION_TO_CLASS = {
    "casme2": {"repression": 0, "disgust": 0, "anger": 0, "contempt": 0, "happiness": 1, "surprise": 2},
    "samm": {
        "anger": 0,
        "contempt": 0,
        "disgust": 0,
        "fear": 0,
        "sadness": 0,
        "happiness": 1,
        "surprise": 2,
    },
    "smic": {"negative": 0, "positive": 1, "surprise": 2},
}

# Image files a clip folder may hold. SMIC is BMP, CASME II and SAMM are JPG; PNG is accepted for
# trees written by other tools. Anything else (Thumbs.db, .txt notes) is ignored.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png"})

# The frame number is the integer right before the extension: `img46.jpg`, `reg_img46.jpg`,
# `image01234567.bmp`, `006_05562.jpg` (the subject number comes first there, so the LAST digits).
_FRAME_NUMBER = re.compile(r"(\d+)\.[A-Za-z]+$")

# Workbooks looked for beside the tree when `annotations=` is not given, most preferred first.
# The 2014 CASME II workbook is the one the MEGC 2019 list was built from; the 2019 one relabels
# three sub24 clips and adds `Objective Classes`, and is accepted too.
CASME2_WORKBOOKS = ("CASME2-coding-20140508.xlsx", "CASME2-coding-20190701.xlsx", "CASME2-coding-*.xlsx")
SAMM_WORKBOOKS = ("SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM_Micro_FACS_Codes*.xlsx")

# Columns each workbook must have (matched ignoring case, spaces and underscores, so "Onset Frame"
# and "OnsetFrame" are the same). Other columns (the two blank ones of CASME II, SAMM's
# Inducement Code, Duration, Micro, Objective Classes, Notes) are ignored.
CASME2_COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "action_units": "Action Units",
    "emotion": "Estimated Emotion",
}
SAMM_COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "Onset Frame",
    "apex": "Apex Frame",
    "offset": "Offset Frame",
    "action_units": "Action Units",
    "emotion": "Estimated Emotion",
}
CASME2_SHEET = "Sheet1"
SAMM_SHEET = "MICRO_ONLY"
# SAMM's header is on row 14 after 13 note rows; search this many rows for the header.
_HEADER_SEARCH_ROWS = 40

# How many problems an error message or warning spells out before "... and N more".
_SHOW = 10

GROUND_TRUTH_RESOURCE = "megc2019_3class_gt.csv"


def clip_features():
    """The `datasets.Features` of every loader's rows (built lazily: `datasets` is heavy to import).

    Columns:
        database (str): "smic", "casme2" or "samm".
        subject (str): subject key `<database>/<subject folder on disk>`, e.g. "casme2/sub01",
            "smic/s1", "samm/006"; unique across databases, one LOSO fold each.
        annotation_subject (str): the subject as the annotation spells it: the workbook cell as
            text ("01", "1", "006") for CASME II and SAMM, the folder name ("s1") for SMIC.
        megc_subject (str): the MEGC 2019 list's spelling: "sub01", "s01", "6".
        clip (str): the clip folder name on disk ("EP02_01f", "s1_ne_01", "006_1_2").
        megc_filename (str): the list's spelling of the clip ("EP02_01f", "s01_ne_01", "006_1_2").
        variant (str): "raw" or "cropped" (`reg_` frame names) tree.
        frames (list[str]): absolute frame paths, sorted by the frame number in the file name.
        frame_numbers (list[int64]): the frame number of each path (camera frame counters).
        num_frames (int32): len(frames).
        onset, apex, offset (int64): frame numbers (as annotated; apex estimated where none).
        onset_index, apex_index, offset_index (int32): positions of those frames in `frames`.
        apex_estimated (bool): True when the apex is not an annotated frame inside the clip.
        apex_source (str): "annotated", "middle" (none annotated: the middle frame between onset
            and offset) or "clamped" (annotated outside the frames present: nearest frame).
        action_units (list[int32]): FACS AU numbers (sorted, unique); empty for SMIC.
        action_units_raw (str): the AU cell as written ("4+L10", "(R6 or R12)+R15").
        emotion (str): the raw emotion as annotated ("repression", "Other", "negative").
        label (ClassLabel negative/positive/surprise): the MEGC 2019 3-class label; -1 where the
            clip has none. Per-database loaders map the emotion (`EMOTION_TO_CLASS`); the
            composite takes the official list's class.
        fps (float32): frames per second of the recording.
    """
    from datasets import ClassLabel, Features, List, Value

    return Features(
        {
            "database": Value("string"),
            "subject": Value("string"),
            "annotation_subject": Value("string"),
            "megc_subject": Value("string"),
            "clip": Value("string"),
            "megc_filename": Value("string"),
            "variant": Value("string"),
            "frames": List(Value("string")),
            "frame_numbers": List(Value("int64")),
            "num_frames": Value("int32"),
            "onset": Value("int64"),
            "apex": Value("int64"),
            "offset": Value("int64"),
            "onset_index": Value("int32"),
            "apex_index": Value("int32"),
            "offset_index": Value("int32"),
            "apex_estimated": Value("bool"),
            "apex_source": Value("string"),
            "action_units": List(Value("int32")),
            "action_units_raw": Value("string"),
            "emotion": Value("string"),
            "label": ClassLabel(names=list(MEGC_CLASSES)),
            "fps": Value("float32"),
        }
    )


# ---------------------------------------------------------------------------- action units
_AU_ALTERNATIVE = re.compile(r"(\d+)\s*[A-E]?\s*/\s*[A-E]\b")


def parse_action_units(value) -> list[int]:
    """FACS action-unit numbers of an annotation cell, sorted and unique.

    Laterality (L, R, T, B, U) and intensity letters (A-E) are dropped, alternatives keep every
    AU named, unsure codes give nothing:

    >>> parse_action_units("4+L10"), parse_action_units("R2+15"), parse_action_units("(R6 or R12)+R15")
    ([4, 10], [2, 15], [6, 12, 15])
    >>> parse_action_units("10A/B"), parse_action_units("?"), parse_action_units(None), parse_action_units(12)
    ([10], [], [], [12])
    """
    if value is None:
        return []
    if isinstance(value, bool):
        raise MieInputError(f"Action units must be text like '4+L10' or a number, got {value!r}.")
    if isinstance(value, (int, float)):
        # Excel stores a single AU typed as a number ("4") as 4 or 4.0.
        return [int(value)] if value == int(value) and int(value) > 0 else []
    # "10A/B" is one AU with intensity A or B: remove the "/B" before reading digits, so that an
    # intensity alternative is not mistaken for a second AU.
    text = _AU_ALTERNATIVE.sub(r"\1", str(value))
    return sorted({int(d) for d in re.findall(r"\d+", text) if int(d) > 0})


# ---------------------------------------------------------------------------- small helpers
@dataclass
class ClipProblem:
    """A clip that an annotation (workbook or list) names but that cannot be read from disk."""

    database: str
    subject: str
    clip: str
    reason: str

    def __str__(self) -> str:
        return f"{DATABASE_NAMES.get(self.database, self.database)} {self.subject}/{self.clip}: {self.reason}"


@dataclass
class _Scan:
    """What scanning one database tree gives: rows, problems, and the tree's fingerprint."""

    database: str
    rows: list[dict]
    problems: list[ClipProblem]
    fingerprint: str
    tree: Path
    annotations: Path | None


def _listing(items: Sequence, show: int = _SHOW) -> str:
    items = [str(i) for i in items]
    text = "; ".join(items[:show])
    if len(items) > show:
        text += f"; ... and {len(items) - show} more"
    return text


def _norm_header(value) -> str:
    return re.sub(r"[\s_]+", "", str(value)).lower() if value is not None else ""


def _digits(value) -> int | None:
    """The integer in a subject cell or folder name ("01", 1, "006", "sub01", "s1"), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value == int(value) else None
    found = re.findall(r"\d+", str(value))
    return int(found[0]) if len(found) == 1 else None


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value).strip()


def _frame_cell(value, what: str, where: str) -> int | None:
    """A frame number from a workbook cell; None for a missing value (CASME II writes `/`)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if value != int(value):
            raise MieInputError(f"{where}: {what} must be a whole frame number, got {value!r}.")
        return int(value)
    text = str(value).strip()
    if text in ("", "/", "-", "?", "n/a", "N/A", "NA", "None"):
        return None
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    raise MieInputError(
        f"{where}: {what} {text!r} is not a frame number; write the frame number, or '/' when the "
        "frame is unknown."
    )


def _scan_frames(folder: Path) -> list[tuple[int, str, int, int]]:
    """(frame number, file name, size in bytes, mtime in ns) of the frames of a clip folder.

    Sorted by the integer in the file name, never by the name itself: CASME II writes `img9`
    before `img10` unpadded, and SMIC's absolute counters have 5 to 8 digits with varying padding.
    """
    frames = []
    with os.scandir(folder) as it:
        for entry in it:
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix not in IMAGE_SUFFIXES or not entry.is_file():
                continue
            match = _FRAME_NUMBER.search(entry.name)
            if match is None:
                logger.debug("Ignoring %s: no frame number before the extension.", os.path.join(folder, entry.name))
                continue
            stat = entry.stat()
            frames.append((int(match.group(1)), entry.name, stat.st_size, stat.st_mtime_ns))
    frames.sort()
    for a, b in zip(frames, frames[1:]):
        if a[0] == b[0]:
            raise MieInputError(
                f"Clip folder {folder} has two frames numbered {a[0]} ({a[1]} and {b[1]}); a clip folder "
                "must hold one file per frame. Remove the duplicate."
            )
    return frames


def _subdirs(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted((e for e in it if e.is_dir()), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _check_root(root, database: str) -> Path:
    if root is None:
        raise MieInputError(f"No {DATABASE_NAMES[database]} root folder given; pass the folder of the database.")
    path = Path(root).expanduser()
    if not path.exists():
        raise MieInputError(
            f"The {DATABASE_NAMES[database]} root folder {path} does not exist; pass the folder you unpacked "
            "the database into."
        )
    if not path.is_dir():
        raise MieInputError(f"The {DATABASE_NAMES[database]} root {path} is a file; pass the folder of the database.")
    return path.resolve()


def _find_tree(root: Path, is_tree: Callable[[Path], bool], database: str, example: str) -> Path:
    """The folder at or below `root` (2 levels) that holds the clip tree of one database."""
    if is_tree(root):
        return root
    found = []
    for child in _subdirs(root):
        if is_tree(Path(child.path)):
            found.append(Path(child.path))
            continue
        found.extend(Path(g.path) for g in _subdirs(Path(child.path)) if is_tree(Path(g.path)))
    if len(found) == 1:
        return found[0]
    name = DATABASE_NAMES[database]
    if not found:
        raise MieInputError(
            f"No {name} clip tree found in {root} (searched 2 levels down); expected a layout like {example}. "
            "Pass the folder that holds the subject folders (or its parent)."
        )
    raise MieInputError(
        f"{root} holds several {name} trees: {', '.join(str(f) for f in found)}. Pass the one you want as root "
        "(for example the raw or the cropped copy)."
    )


def _variant(frame_name: str) -> str:
    # The cropped copies of CASME II ("reg_img46.jpg") and SMIC ("reg_image<frame>.bmp") prefix
    # every frame with reg_; the raw trees do not.
    return "cropped" if frame_name.lower().startswith("reg_") else "raw"


class _TreeHasher:
    """Fingerprint of what a loader read: every frame's name, size and mtime, and the workbook's bytes."""

    def __init__(self, *parts):
        self._hash = hashlib.sha256()
        self.update("mie-loader", LOADER_VERSION, *parts)

    def update(self, *parts) -> None:
        for part in parts:
            self._hash.update(repr(part).encode())
            self._hash.update(b"\0")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _frame_positions(numbers: list[int], onset: int, apex: int | None, offset: int):
    """Indices of onset, apex, offset in the sorted frame numbers, and how the apex was found."""
    onset_index = bisect.bisect_left(numbers, onset)
    offset_index = bisect.bisect_right(numbers, offset) - 1
    if apex is None:
        apex_index = (onset_index + offset_index) // 2
        return onset_index, apex_index, offset_index, "middle"
    if numbers[0] <= apex <= numbers[-1]:
        right = bisect.bisect_left(numbers, apex)
        # nearest frame present (exact in complete folders; a gap picks its closer neighbour)
        apex_index = right if numbers[right] - apex <= apex - numbers[max(right - 1, 0)] else right - 1
        return onset_index, apex_index, offset_index, "annotated"
    return onset_index, (0 if apex < numbers[0] else len(numbers) - 1), offset_index, "clamped"


def _clip_row(
    database: str,
    folder: Path,
    frames: list[tuple[int, str, int, int]],
    *,
    subject_dir: str,
    annotation_subject: str,
    megc_subject: str,
    megc_filename: str,
    onset: int | None,
    apex: int | None,
    offset: int | None,
    action_units_raw,
    emotion: str,
    fps: float,
) -> tuple[dict | None, str | None]:
    """One row, or (None, reason) when the annotation does not fit the frames present."""
    numbers = [f[0] for f in frames]
    first, last = numbers[0], numbers[-1]
    onset = first if onset is None else onset
    offset = last if offset is None else offset
    if onset > offset:
        return None, f"onset {onset} is after offset {offset}"
    if onset < first or offset > last:
        return None, (
            f"onset..offset {onset}..{offset} lies outside the frames present ({first}..{last}, "
            f"{len(numbers)} files in {folder})"
        )
    onset_index, apex_index, offset_index, apex_source = _frame_positions(numbers, onset, apex, offset)
    if apex_source == "clamped":
        # SAMM 028_4_1 and 032_3_1 annotate an apex outside their frames (DATASETS.md): use the
        # nearest frame present, and say so.
        logger.warning(
            "%s %s/%s: apex %d lies outside the frames present (%d..%d); using frame %d instead.",
            DATABASE_NAMES[database], subject_dir, folder.name, apex, first, last, numbers[apex_index],
        )
    return (
        {
            "database": database,
            "subject": f"{database}/{subject_dir}",
            "annotation_subject": annotation_subject,
            "megc_subject": megc_subject,
            "clip": folder.name,
            "megc_filename": megc_filename,
            "variant": _variant(frames[0][1]),
            "frames": [str(folder / f[1]) for f in frames],
            "frame_numbers": numbers,
            "num_frames": len(numbers),
            "onset": onset,
            "apex": numbers[apex_index] if apex_source != "annotated" else apex,
            "offset": offset,
            "onset_index": onset_index,
            "apex_index": apex_index,
            "offset_index": offset_index,
            "apex_estimated": apex_source != "annotated",
            "apex_source": apex_source,
            "action_units": parse_action_units(action_units_raw),
            "action_units_raw": _cell_text(action_units_raw),
            "emotion": emotion,
            "label": EMOTION_TO_CLASS[database].get(emotion.lower(), -1),
            "fps": fps,
        },
        None,
    )


# ---------------------------------------------------------------------------- workbooks
def _locate_workbook(annotations, search: Iterable[Path], names: Sequence[str], database: str) -> Path:
    label = DATABASE_NAMES[database]
    if annotations is not None:
        path = Path(annotations).expanduser()
        if not path.is_file():
            raise MieInputError(f"The {label} annotation workbook {path} does not exist; check annotations=.")
        return path.resolve()
    folders = []
    for folder in search:
        if folder not in folders:
            folders.append(folder)
    for name in names:
        for folder in folders:
            hits = sorted(folder.glob(name)) if "*" in name else [folder / name]
            hits = [h for h in hits if h.is_file()]
            if hits:
                logger.info("%s annotations: %s", label, hits[0])
                return hits[0].resolve()
    raise MieInputError(
        f"The {label} annotation workbook was not found: looked for {', '.join(names)} in "
        f"{', '.join(str(f) for f in folders)}. Pass annotations=PATH to the .xlsx file."
    )


def _column_names(name) -> tuple[str, ...]:
    """The accepted spellings of one column: a name, or a tuple of alternatives."""
    return (name,) if isinstance(name, str) else tuple(name)


def _shown_column(name) -> str:
    return " or ".join(_column_names(name))


def read_workbook(path, sheet: str | None, columns: dict, database: str, optional: dict | None = None) -> list[dict]:
    """Rows of an annotation workbook as dicts keyed by the keys of `columns`, plus `_row`.

    The header is the first row (of the first 40) holding both the `subject` and the `filename`
    column, so CASME II (header on row 1) and SAMM (13 note rows, header on row 14) read the same
    way. Rows with neither subject nor filename (trailing blanks) are skipped.

    Args:
        path: the .xlsx file.
        sheet: the sheet to read; None reads the first one. A workbook with a single sheet of
            another name is read with a warning.
        columns: key -> header name, or a tuple of accepted names (the first one present is read;
            names match ignoring case, spaces and underscores). Must have "subject" and "filename".
        database: the key (or name) of the database, for messages.
        optional: like `columns`, for columns read when present; absent ones give None.

    Raises:
        MieInputError: unreadable file, no such sheet, no header, or required columns missing
            (the message names the expected columns and the ones found).
    """
    import openpyxl

    label = DATABASE_NAMES.get(database, database)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a file that is not a workbook
        raise MieInputError(f"Cannot read the {label} workbook {path} ({exc}); it must be an .xlsx file.") from exc
    try:
        if sheet is None:
            ws = book[book.sheetnames[0]]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        elif len(book.sheetnames) == 1:
            logger.warning("%s workbook %s has no sheet %r; reading its only sheet %r.", label, path, sheet, book.sheetnames[0])
            ws = book[book.sheetnames[0]]
        else:
            raise MieInputError(
                f"The {label} workbook {path} has no sheet {sheet!r} (sheets: {book.sheetnames}); the "
                f"annotations are expected on sheet {sheet!r}."
            )
        rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
    finally:
        book.close()
    subject_names = {_norm_header(n) for n in _column_names(columns["subject"])}
    filename_names = {_norm_header(n) for n in _column_names(columns["filename"])}
    header_at = None
    for i, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        names = {_norm_header(c) for c in row}
        if names & subject_names and names & filename_names:
            header_at = i
            break
    expected = [_shown_column(n) for n in columns.values()]
    if header_at is None:
        raise MieInputError(
            f"The {label} workbook {path} (sheet {ws.title!r}) has no header row with "
            f"{_shown_column(columns['subject'])} and {_shown_column(columns['filename'])} in its "
            f"first {_HEADER_SEARCH_ROWS} rows; expected the columns {expected}."
        )
    header = [_norm_header(c) for c in rows[header_at]]
    index = {}
    for key, name in {**(optional or {}), **columns}.items():
        for alternative in _column_names(name):
            if _norm_header(alternative) in header:
                index[key] = header.index(_norm_header(alternative))
                break
    missing = [_shown_column(columns[k]) for k in columns if k not in index]
    if missing:
        found = [c for c in rows[header_at] if c is not None]
        raise MieInputError(
            f"The {label} workbook {path} (sheet {ws.title!r}, header on row {header_at + 1}) lacks the columns "
            f"{missing}. Expected columns {expected}; found {found}. Is this the right workbook?"
        )
    absent = {k: None for k in (optional or {}) if k not in index}
    out = []
    for i, row in enumerate(rows[header_at + 1 :], start=header_at + 2):
        cells = {k: (row[j] if j < len(row) else None) for k, j in index.items()}
        if cells["subject"] in (None, "") and cells["filename"] in (None, ""):
            continue
        cells.update(absent)
        cells["_row"] = i
        out.append(cells)
    return out


def _workbook_clips(records: list[dict], path: Path, database: str, subject_width: int):
    """(subject number, filename, record) of each workbook row; validated."""
    label = DATABASE_NAMES[database]
    seen = {}
    clips = []
    for rec in records:
        where = f"{label} workbook {path.name}, row {rec['_row']}"
        subject = _digits(rec["subject"])
        filename = _cell_text(rec["filename"])
        if subject is None or not filename:
            raise MieInputError(
                f"{where}: needs a subject number and a filename, got Subject={rec['subject']!r}, "
                f"Filename={rec['filename']!r}."
            )
        key = (subject, filename.lower())
        if key in seen:
            raise MieInputError(
                f"{where}: subject {subject:0{subject_width}d} clip {filename} is also on row {seen[key]}; each clip "
                "must appear once."
            )
        seen[key] = rec["_row"]
        clips.append((subject, filename, rec, where))
    return clips


def _annotated_scan(
    database: str,
    tree: Path,
    workbook: Path,
    clips,
    subject_dirs: dict[int, str],
    megc_subject: Callable[[int, str], str],
    fps: float,
) -> _Scan:
    """Rows of CASME II / SAMM: workbook rows joined with their clip folders."""
    hasher = _TreeHasher(database, str(tree), fps)
    hasher.update("workbook", str(workbook), _file_digest(workbook))
    rows, problems = [], []
    claimed: set[tuple[str, str]] = set()
    for subject, filename, rec, where in clips:
        subject_dir = subject_dirs.get(subject)
        shown_subject = subject_dir or str(rec["subject"])
        if subject_dir is None:
            problems.append(ClipProblem(database, shown_subject, filename, f"no subject folder for subject {subject} in {tree}"))
            continue
        folder = tree / subject_dir / filename
        if not folder.is_dir():
            # Names on disk may differ in case from the workbook (EP09f vs ep09f after a copy from
            # a case-insensitive file system).
            matches = [e.name for e in _subdirs(tree / subject_dir) if e.name.lower() == filename.lower()]
            if len(matches) != 1:
                problems.append(ClipProblem(database, subject_dir, filename, f"no clip folder {folder}"))
                continue
            folder = tree / subject_dir / matches[0]
        claimed.add((subject_dir, folder.name))
        try:
            frames = _scan_frames(folder)
        except MieInputError as exc:
            problems.append(ClipProblem(database, subject_dir, filename, str(exc)))
            continue
        hasher.update(subject_dir, folder.name, [f[1:] for f in frames])
        if not frames:
            problems.append(ClipProblem(database, subject_dir, filename, f"no frames (image files) in {folder}"))
            continue
        try:
            onset = _frame_cell(rec["onset"], "the onset frame", where)
            apex = _frame_cell(rec["apex"], "the apex frame", where)
            offset = _frame_cell(rec["offset"], "the offset frame", where)
        except MieInputError as exc:  # one clip's bad cell: strict=False can still skip it
            problems.append(ClipProblem(database, subject_dir, filename, str(exc)))
            continue
        for what, value in (("onset", onset), ("offset", offset)):
            if value is None:
                logger.warning("%s: no %s frame; using the %s frame of the folder.", where, what, "first" if what == "onset" else "last")
        row, reason = _clip_row(
            database,
            folder,
            frames,
            subject_dir=subject_dir,
            annotation_subject=_cell_text(rec["subject"]),
            megc_subject=megc_subject(subject, subject_dir),
            megc_filename=filename,
            onset=onset,
            apex=apex,
            offset=offset,
            action_units_raw=rec["action_units"],
            emotion=_cell_text(rec["emotion"]),
            fps=fps,
        )
        if row is None:
            problems.append(ClipProblem(database, subject_dir, filename, reason))
        else:
            rows.append(row)
    # Folders no workbook row names are not clips we can label or time: say so, do not guess.
    unclaimed = [
        f"{s}/{c.name}"
        for s in sorted(subject_dirs.values())
        for c in _subdirs(tree / s)
        if (s, c.name) not in claimed
    ]
    if unclaimed:
        logger.warning(
            "%s: %d clip folders in %s have no workbook row and are ignored: %s",
            DATABASE_NAMES[database], len(unclaimed), tree, _listing(unclaimed),
        )
    hasher.update("unclaimed", unclaimed)
    return _Scan(database, rows, problems, hasher.hexdigest(), tree, workbook)


# ---------------------------------------------------------------------------- CASME II
_CASME2_SUBJECT = re.compile(r"^sub(\d+)$", re.IGNORECASE)


def _is_casme2_tree(path: Path) -> bool:
    return any(_CASME2_SUBJECT.match(e.name) and _subdirs(Path(e.path)) for e in _subdirs(path))


def _scan_casme2(root, annotations=None) -> _Scan:
    root = _check_root(root, "casme2")
    tree = _find_tree(root, _is_casme2_tree, "casme2", "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg or Cropped/sub01/EP02_01f/reg_img46.jpg")
    workbook = _locate_workbook(
        annotations, [root, tree, tree.parent, root.parent, tree.parent.parent], CASME2_WORKBOOKS, "casme2"
    )
    records = read_workbook(workbook, CASME2_SHEET, CASME2_COLUMNS, "casme2")
    clips = _workbook_clips(records, workbook, "casme2", 2)
    subject_dirs = {int(m.group(1)): e.name for e in _subdirs(tree) if (m := _CASME2_SUBJECT.match(e.name))}
    return _annotated_scan(
        "casme2", tree, workbook, clips, subject_dirs, lambda n, _d: f"sub{n:02d}", FPS["casme2"]
    )


def load_casme2(root, annotations=None, *, strict: bool = True, cache_dir=None):
    """CASME II as a `datasets.Dataset`, one row per workbook clip (features: `clip_features()`).

    Args:
        root: the raw tree (`CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`), the cropped tree
            (`Cropped/sub01/EP02_01f/reg_img46.jpg`), or a folder up to 2 levels above one of
            them (an error names the candidates when there are several).
        annotations: the coding workbook (`CASME2-coding-20140508.xlsx`, sheet `Sheet1`); by
            default looked for in and beside the root.
        strict: raise when a workbook clip cannot be read (no folder, no frames, onset/offset
            outside the frames present); with False such clips are logged and left out.
        cache_dir: where `datasets` keeps the Arrow rows (default: its own cache). The cache key
            hashes every frame's name, size and mtime and the workbook's bytes.

    Onset, apex and offset are the workbook's frame numbers; the folder holds onset..offset
    (first file = onset). The apex `/` of sub04/EP12_01f becomes the middle frame, flagged by
    `apex_estimated`. Labels map the emotion (`EMOTION_TO_CLASS`): fear, sadness and others
    have none. 200 fps.

    Returns:
        `datasets.Dataset` (features `clip_features()`), rows in workbook order. Attribute
        `problems`: the `ClipProblem`s left out with strict=False (attributes do not survive
        `map`/`filter`: read it right away).

    Raises:
        MieInputError: root or workbook missing, workbook columns not as expected, clips not readable
            (strict).
    """
    return _finish(_scan_casme2(root, annotations), strict, cache_dir)


# ---------------------------------------------------------------------------- SAMM
_SAMM_SUBJECT = re.compile(r"^(\d{3})$")


def _is_samm_tree(path: Path) -> bool:
    return any(_SAMM_SUBJECT.match(e.name) and _subdirs(Path(e.path)) for e in _subdirs(path))


def _scan_samm(root, annotations=None) -> _Scan:
    root = _check_root(root, "samm")
    tree = _find_tree(root, _is_samm_tree, "samm", "SAMM/006/006_1_2/006_05562.jpg")
    workbook = _locate_workbook(
        annotations, [root, tree, tree.parent, root.parent, tree.parent.parent], SAMM_WORKBOOKS, "samm"
    )
    records = read_workbook(workbook, SAMM_SHEET, SAMM_COLUMNS, "samm")
    clips = _workbook_clips(records, workbook, "samm", 3)
    subject_dirs = {int(e.name): e.name for e in _subdirs(tree) if _SAMM_SUBJECT.match(e.name)}
    # The MEGC list writes SAMM subjects as bare integers ("6" for folder 006).
    return _annotated_scan("samm", tree, workbook, clips, subject_dirs, lambda n, _d: str(n), FPS["samm"])


def load_samm(root, annotations=None, *, strict: bool = True, cache_dir=None):
    """SAMM as a `datasets.Dataset`, one row per workbook clip (features: `clip_features()`).

    Args:
        root: the tree `<root>/006/006_1_2/006_05562.jpg` (3-digit subject folders), or a folder up to
            2 levels above it.
        annotations: `SAMM_Micro_FACS_Codes_v2.xlsx` (sheet `MICRO_ONLY`, 13 note rows, header on
            row 14); by default looked for in and beside the root.
        strict, cache_dir: as for `load_casme2`.

    Frame numbers count from the start of the long recording (folders do not start at 1) and are
    padded to 4 or 5 digits; frames are greyscale JPG. An apex outside the frames present
    (028_4_1, 032_3_1) is clamped to the nearest frame, logged and flagged (`apex_source`
    "clamped"). Anger, Contempt, Disgust, Fear, Sadness are negative; Other/Others have no label.
    200 fps.

    Raises:
        MieInputError: as `load_casme2`.
    """
    return _finish(_scan_samm(root, annotations), strict, cache_dir)


# ---------------------------------------------------------------------------- SMIC
_SMIC_SUBJECT = re.compile(r"^s(\d+)$", re.IGNORECASE)
_SMIC_CLIP = re.compile(r"^s(\d+)_(ne|po|sur)_(\d+)$", re.IGNORECASE)
_SMIC_CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}


def _is_smic_part(path: Path) -> bool:
    return any(_SMIC_SUBJECT.match(e.name) and (Path(e.path) / "micro").is_dir() for e in _subdirs(path))


def _scan_smic(root, part: str = "HS") -> _Scan:
    root = _check_root(root, "smic")
    if part not in SMIC_PART_FPS:
        raise ValueError(f"part must be one of {sorted(SMIC_PART_FPS)}, got {part!r}.")

    def is_tree(path: Path) -> bool:
        return path.name == part and _is_smic_part(path)

    tree = root if _is_smic_part(root) and root.name != "micro" else _find_tree(
        root, is_tree, "smic", f"SMIC_all_raw/{part}/s3/micro/negative/s3_ne_01/image0123456.bmp"
    )
    fps = SMIC_PART_FPS[part]
    hasher = _TreeHasher("smic", str(tree), part, fps)
    rows, problems, ignored = [], [], []
    # subjects in numeric order (s2 before s12), like the list
    subject_entries = sorted(
        (e for e in _subdirs(tree) if _SMIC_SUBJECT.match(e.name)), key=lambda e: int(_SMIC_SUBJECT.match(e.name).group(1))
    )
    for subject_entry in subject_entries:
        subject = int(_SMIC_SUBJECT.match(subject_entry.name).group(1))
        # Only `micro`; the `non_micro` folder beside it holds other expressions (DATASETS.md).
        micro = Path(subject_entry.path) / "micro"
        for emotion_entry in _subdirs(micro):
            emotion = emotion_entry.name.lower()
            if emotion not in _SMIC_CODES:
                ignored.append(f"{subject_entry.name}/micro/{emotion_entry.name} (not negative/positive/surprise)")
                continue
            for clip_entry in _subdirs(Path(emotion_entry.path)):
                cm = _SMIC_CLIP.match(clip_entry.name)
                if not cm or int(cm.group(1)) != subject or cm.group(2).lower() != _SMIC_CODES[emotion]:
                    ignored.append(
                        f"{subject_entry.name}/micro/{emotion_entry.name}/{clip_entry.name} "
                        f"(expected s{subject}_{_SMIC_CODES[emotion]}_NN)"
                    )
                    continue
                folder = Path(clip_entry.path)
                try:
                    frames = _scan_frames(folder)
                except MieInputError as exc:
                    problems.append(ClipProblem("smic", subject_entry.name, clip_entry.name, str(exc)))
                    continue
                hasher.update(subject_entry.name, emotion_entry.name, clip_entry.name, [f[1:] for f in frames])
                if not frames:
                    problems.append(ClipProblem("smic", subject_entry.name, clip_entry.name, f"no frames (image files) in {folder}"))
                    continue
                # The MEGC list pads the subject ("s01", "s01_ne_01"); the disk does not ("s1").
                megc_filename = f"s{subject:02d}_{cm.group(2).lower()}_{cm.group(3)}"
                row, reason = _clip_row(
                    "smic",
                    folder,
                    frames,
                    subject_dir=subject_entry.name,
                    annotation_subject=subject_entry.name,
                    megc_subject=f"s{subject:02d}",
                    megc_filename=megc_filename,
                    onset=None,  # the folder is the clip: onset = first file, offset = last
                    apex=None,  # SMIC has no apex annotation: the middle frame, flagged
                    offset=None,
                    action_units_raw=None,
                    emotion=emotion,
                    fps=fps,
                )
                if row is None:
                    problems.append(ClipProblem("smic", subject_entry.name, clip_entry.name, reason))
                else:
                    rows.append(row)
    if ignored:
        logger.warning("SMIC: %d folders in %s do not follow the layout and are ignored: %s", len(ignored), tree, _listing(ignored))
    hasher.update("ignored", ignored)
    if not rows and not problems:
        raise MieInputError(
            f"No SMIC clips found in {tree}; expected {tree}/s3/micro/negative/s3_ne_01/image0123456.bmp."
        )
    return _Scan("smic", rows, problems, hasher.hexdigest(), tree, None)


def load_smic(root, *, part: str = "HS", strict: bool = True, cache_dir=None):
    """SMIC (the HS part by default) as a `datasets.Dataset`, one row per clip folder.

    Args:
        root: `SMIC_all_raw` or `SMIC_all_cropped` (holding `HS/s3/micro/negative/s3_ne_01/
            image<frame>.bmp`, or `reg_image<frame>.bmp` when cropped), the `HS` folder itself, or a
            folder up to 2 levels above `HS`.
        part: "HS" (100 fps, the part MEGC 2019 uses), "VIS" or "NIR" (25 fps).
        strict, cache_dir: as for `load_casme2`.

    Labels come from the emotion folder; `non_micro` is ignored. Frame names carry the absolute
    camera counter (5-8 digits, padding varies) and are sorted by that integer. The folder is the
    clip (onset = first frame, offset = last); SMIC annotates no apex, so the middle frame is
    used and `apex_estimated` is True. No AUs. The subject key is the folder name (`smic/s1`);
    `megc_subject` / `megc_filename` carry the list's padded spelling (`s01`, `s01_ne_01`).
    """
    return _finish(_scan_smic(root, part), strict, cache_dir)


# ---------------------------------------------------------------------------- datasets
def _generate_rows(rows):
    yield from rows


def _to_dataset(rows: list[dict], fingerprint: str, cache_dir=None, features=None):
    """A `datasets.Dataset` of `rows` cached under `fingerprint` (which must cover their source).

    `features` defaults to `clip_features()`; the long-video loaders pass their own.
    """
    from datasets import Dataset

    # The fingerprint replaces datasets' hash of the generator and its kwargs (which never sees
    # the files), so a cache hit means: same loader version, same files, same annotations. The
    # rows travel as a tuple: a list in gen_kwargs would be split into shards.
    dataset = Dataset.from_generator(
        _generate_rows,
        features=clip_features() if features is None else features,
        gen_kwargs={"rows": tuple(rows)},
        fingerprint=fingerprint,
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
    return dataset


def _finish(scan: _Scan, strict: bool, cache_dir):
    if scan.problems:
        message = (
            f"{DATABASE_NAMES[scan.database]}: {len(scan.problems)} clips named by the annotations cannot be read: "
            f"{_listing(scan.problems)}."
        )
        if strict:
            raise MieInputError(message + " Fix the tree, or pass strict=False to leave these clips out.")
        logger.warning("%s They are left out (strict=False).", message)
    if not scan.rows:
        raise MieInputError(f"{DATABASE_NAMES[scan.database]}: no readable clips in {scan.tree}.")
    dataset = _to_dataset(scan.rows, scan.fingerprint, cache_dir)
    dataset.problems = list(scan.problems)
    return dataset


# ---------------------------------------------------------------------------- MEGC 2019 composite
@dataclass(frozen=True)
class GroundTruthClip:
    """One row of the MEGC 2019 list: `database,subject,filename,class` as written."""

    database: str
    subject: str
    filename: str
    label: int
    line: int


def read_megc2019_ground_truth(path=None) -> list[GroundTruthClip]:
    """The MEGC 2019 ground-truth list: the shipped official copy by default, or the file at `path`.

    The official list (`combined_3class_gt.csv`, 442 rows, 2018-12-07) has no header, CRLF line
    ends and rows `db,subject,filename,class` (0 negative, 1 positive, 2 surprise). A header row
    in another list (e.g. a synthetic one) is tolerated.

    Raises:
        MieInputError: missing file, a row without 4 fields, an unknown database or class, or a
            repeated clip.
    """
    if path is None:
        text = resources.files(__package__).joinpath("resources", GROUND_TRUTH_RESOURCE).read_text(encoding="utf-8")
        source = f"the shipped {GROUND_TRUTH_RESOURCE}"
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise MieInputError(f"The MEGC 2019 ground-truth list {path} does not exist; check ground_truth=.")
        text = path.read_text(encoding="utf-8-sig")
        source = str(path)
    out, seen = [], {}
    for line, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        if len(fields) != 4:
            raise MieInputError(
                f"{source}, line {line}: expected 4 fields database,subject,filename,class; got {fields}."
            )
        database, subject, filename, label = fields
        if line == 1 and not label.lstrip("-").isdigit():
            continue  # a header row
        if database.lower() not in DATABASES:
            raise MieInputError(f"{source}, line {line}: unknown database {database!r}; expected one of {list(DATABASES)}.")
        if label not in ("0", "1", "2"):
            raise MieInputError(f"{source}, line {line}: class must be 0, 1 or 2 ({', '.join(MEGC_CLASSES)}); got {label!r}.")
        clip = GroundTruthClip(database.lower(), subject, filename, int(label), line)
        key = _megc_key(clip.database, subject, filename)
        if key in seen:
            raise MieInputError(f"{source}, line {line}: {database} {subject} {filename} repeats line {seen[key]}.")
        seen[key] = line
        out.append(clip)
    if not out:
        raise MieInputError(f"{source} lists no clips.")
    return out


def _megc_key(database: str, subject, filename: str):
    """One key for a clip however it is spelled: s01/s1, s01_ne_01/s1_ne_01, 6/006, sub01/01/1."""
    number = _digits(subject)
    if database == "smic":
        m = _SMIC_CLIP.match(filename)
        if m:
            return ("smic", int(m.group(1)), m.group(2).lower(), int(m.group(3)))
    # CASME II episode names are NOT number-normalised: EP01_2 and EP01_02 could both exist.
    return (database, number, filename.lower())


def load_megc2019(
    casme2=None,
    samm=None,
    smic=None,
    ground_truth=None,
    *,
    casme2_annotations=None,
    samm_annotations=None,
    strict: bool = False,
    cache_dir=None,
):
    """The MEGC 2019 composite (SMIC HS + CASME II + SAMM, 442 clips, 68 subjects, 3 classes).

    Driven by the official list (the shipped copy, or `ground_truth=` another list in the same
    format), not by re-mapping workbooks: its class is the `label`, its spellings are in
    `megc_subject` / `megc_filename`, its order is the row order. Subject spellings are reconciled
    (SMIC s01 = folder s1, s01_ne_01 = s1_ne_01; SAMM 6 = 006; CASME II sub01 = workbook 01/1).

    Args:
        casme2, samm, smic: roots as for `load_casme2`, `load_samm`, `load_smic`. Any may be
            omitted; the result then holds the listed clips of the databases given.
        ground_truth: path of a list `db,subject,filename,class`; default the official list.
        casme2_annotations, samm_annotations: the workbooks, when not beside the roots.
        strict: raise when a listed clip of a given database is missing or unreadable. Otherwise
            each one is logged (a warning naming them) and kept in `dataset.missing_clips`.
        cache_dir: as for `load_casme2`.

    Returns:
        `datasets.Dataset` with `clip_features()`; attribute `missing_clips`: list of dicts
        (database, subject, filename, label, reason) of listed clips not in the dataset
        (attributes do not survive `map`/`filter`: read it right away). `summarize_clips()` gives
        counts per database and class.

    Raises:
        MieInputError: no database given, a root or workbook problem, or (strict) missing clips.
    """
    roots = {"smic": smic, "casme2": casme2, "samm": samm}
    if all(r is None for r in roots.values()):
        raise MieInputError("load_megc2019 needs at least one of casme2=, samm=, smic= (the database root folders).")
    listed = read_megc2019_ground_truth(ground_truth)
    gt_hash = _file_digest(Path(ground_truth)) if ground_truth is not None else _shipped_digest()
    scans: dict[str, _Scan] = {}
    for database in DATABASES:
        if roots[database] is None:
            continue
        if database == "casme2":
            scans[database] = _scan_casme2(roots[database], casme2_annotations)
        elif database == "samm":
            scans[database] = _scan_samm(roots[database], samm_annotations)
        else:
            scans[database] = _scan_smic(roots[database])
    by_key = {}
    problem_by_key = {}
    for scan in scans.values():
        for row in scan.rows:
            by_key[_megc_key(scan.database, row["megc_subject"], row["megc_filename"])] = row
        for p in scan.problems:
            problem_by_key[_megc_key(scan.database, p.subject, p.clip)] = p.reason
    rows, missing, disagree = [], [], []
    for clip in listed:
        if clip.database not in scans:
            continue
        key = _megc_key(clip.database, clip.subject, clip.filename)
        row = by_key.get(key)
        if row is None:
            reason = problem_by_key.get(key) or _absent_reason(scans[clip.database], clip)
            missing.append(
                {
                    "database": clip.database,
                    "subject": clip.subject,
                    "filename": clip.filename,
                    "label": clip.label,
                    "reason": reason,
                }
            )
            continue
        row = dict(row)
        mapped = row["label"]
        if mapped != clip.label:
            disagree.append(
                f"{clip.database} {clip.subject} {clip.filename}: list says {MEGC_CLASSES[clip.label]}, "
                f"annotation says {row['emotion']!r}"
            )
        row.update(label=clip.label, megc_subject=clip.subject, megc_filename=clip.filename)
        rows.append(row)
    if disagree:
        # The list wins (it defines MEGC 2019); a difference usually means another workbook
        # version (the 2019 CASME II workbook relabels three sub24 clips).
        logger.warning(
            "MEGC 2019: %d clips have a list class that differs from their annotated emotion; the list's class "
            "is used: %s",
            len(disagree),
            _listing(disagree),
        )
    if missing:
        shown = [f"{m['database']} {m['subject']} {m['filename']} ({m['reason']})" for m in missing]
        message = f"MEGC 2019: {len(missing)} listed clips are missing or unreadable: {_listing(shown)}."
        if strict:
            raise MieInputError(message + " Complete the database copies, or pass strict=False to go on without them.")
        logger.warning("%s They are left out; see dataset.missing_clips.", message)
    if not rows:
        raise MieInputError(
            "MEGC 2019: none of the listed clips was found in the given databases "
            f"({', '.join(DATABASE_NAMES[d] for d in scans)})."
        )
    hasher = _TreeHasher("megc2019", gt_hash, sorted((d, s.fingerprint) for d, s in scans.items()))
    dataset = _to_dataset(rows, hasher.hexdigest(), cache_dir)
    dataset.missing_clips = missing
    return dataset


def _absent_reason(scan: _Scan, clip: GroundTruthClip) -> str:
    if scan.database == "smic":
        return f"no clip folder for it under {scan.tree}"
    return f"no {DATABASE_NAMES[scan.database]} workbook row for it in {scan.annotations.name if scan.annotations else 'the workbook'}"


_SHIPPED_DIGEST: str | None = None


def _shipped_digest() -> str:
    global _SHIPPED_DIGEST
    if _SHIPPED_DIGEST is None:
        data = resources.files(__package__).joinpath("resources", GROUND_TRUTH_RESOURCE).read_bytes()
        _SHIPPED_DIGEST = hashlib.sha256(data).hexdigest()
    return _SHIPPED_DIGEST


# ---------------------------------------------------------------------------- summary
def summarize_clips(dataset) -> dict:
    """Counts per database and class, clips and subjects, plus a `total` entry.

    Returns:
        `{database: {"negative": n, "positive": n, "surprise": n, "unlabelled": n, "clips": n,
        "subjects": n}, ..., "total": {...}}`, databases in the order smic, casme2, samm and only
        those present. On the complete composite: SMIC 70/51/43 = 164, CASME II 88/32/25 = 145,
        SAMM 92/26/15 = 133, total 250/109/83 = 442, subjects 16 + 24 + 28 = 68.
    """
    columns = dataset.select_columns(["database", "subject", "label"]).to_dict()
    per: dict[str, dict] = {}
    subjects: dict[str, set] = {}
    for database, subject, label in zip(columns["database"], columns["subject"], columns["label"]):
        entry = per.setdefault(database, {**{c: 0 for c in MEGC_CLASSES}, "unlabelled": 0, "clips": 0, "subjects": 0})
        entry[MEGC_CLASSES[label] if label is not None and label >= 0 else "unlabelled"] += 1
        entry["clips"] += 1
        subjects.setdefault(database, set()).add(subject)
    order = [d for d in DATABASES if d in per] + sorted(d for d in per if d not in DATABASES)
    out = {}
    for database in order:
        per[database]["subjects"] = len(subjects[database])
        out[database] = per[database]
    total = {key: sum(v[key] for v in out.values()) for key in (*MEGC_CLASSES, "unlabelled", "clips", "subjects")}
    out["total"] = total
    return out


def format_summary(summary: dict) -> str:
    """A plain-text table of `summarize_clips()`: one line per database, negative/positive/surprise."""
    lines = [f"{'database':<10} {'neg':>5} {'pos':>5} {'sur':>5} {'none':>5} {'clips':>6} {'subjects':>8}"]
    for database, e in summary.items():
        name = DATABASE_NAMES.get(database, database)
        lines.append(
            f"{name:<10} {e['negative']:>5} {e['positive']:>5} {e['surprise']:>5} {e['unlabelled']:>5} "
            f"{e['clips']:>6} {e['subjects']:>8}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- region labels
def clip_region_labels(example: dict, config, use_action_units: bool = True) -> list[int]:
    """Stage-1 label of every region of `config` for one clip row ("not me" = `config.not_me_id`).

    The clip's class name (`label` of the row: an index into negative/positive/surprise, or the
    name) is looked up in `config.label2id`. With `use_action_units` and coded AUs (CASME II,
    SAMM), a region takes the clip's label when one of the clip's AUs is in the region's
    `action_units` column of the config's region table; otherwise (SMIC, no AUs, `?`) when the
    clip's emotion is in the region's `emotions` column. The default table (DEFAULT_REGIONS in
    configuration_mie.py): eyes+brows AU 1, 2, 4, 5, 6, 7, 41-46, 61-64; nose AU 9, 10, 11, 38, 39;
    cheeks AU 6, 10-14; mouth AU 10, 12-18, 20, 22-28.

    Returns:
        list of `config.num_regions` ints in [0, config.num_labels].

    Raises:
        MieInputError: the clip has no class (-1) or one the config does not know.
    """
    label = example["label"]
    if isinstance(label, str):
        name = label
    elif label is None or int(label) < 0:
        raise MieInputError(
            f"Clip {example.get('subject')}/{example.get('clip')} has no class label; region labels need one. "
            "Filter unlabelled clips (label == -1) out first."
        )
    else:
        name = MEGC_CLASSES[int(label)]
    if name not in config.label2id:
        raise MieInputError(f"Class {name!r} of clip {example.get('clip')} is not a label of the config ({list(config.label2id)}).")
    action_units = example.get("action_units") if use_action_units else None
    return config.region_labels(config.label2id[name], action_units=action_units or None)


__all__ = [
    "ClipProblem",
    "EMOTION_TO_CLASS",
    "GroundTruthClip",
    "MEGC_CLASSES",
    "clip_features",
    "clip_region_labels",
    "format_summary",
    "load_casme2",
    "load_megc2019",
    "load_samm",
    "load_smic",
    "parse_action_units",
    "read_megc2019_ground_truth",
    "read_workbook",
    "summarize_clips",
]
