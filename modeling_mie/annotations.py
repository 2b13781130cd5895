"""Reading the licensed databases' files: frame folders and annotation workbooks.

The machinery every loader shares (`modeling_mie.data`: SMIC, CASME II, SAMM and the MEGC 2019
composite; `modeling_mie.long_videos`: CAS(ME)^2, SAMM Long Videos, CAS(ME)^3): finding a tree
under the folder a user gave, listing a clip's frames by their frame numbers, reading workbook
cells as the databases spell them, locating and reading a workbook by its column names wherever its
header row is, placing onset, apex and offset among the frames present, fingerprinting what was
read, and reporting clips that cannot be read (`ClipProblem`).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .errors import MieInputError

logger = logging.getLogger(__name__)

# Bumped whenever the rows a loader produces change for the same files: it is part of every
# fingerprint, so an upgrade never returns rows cached by an older loader.
LOADER_VERSION = "1"

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

# Image files a clip folder may hold. SMIC is BMP, CASME II and SAMM are JPG; PNG is accepted for
# trees written by other tools. Anything else (Thumbs.db, .txt notes) is ignored.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png"})

# The frame number is the integer right before the extension: `img46.jpg`, `reg_img46.jpg`,
# `image01234567.bmp`, `006_05562.jpg` (the subject number comes first there, so the LAST digits).
_FRAME_NUMBER = re.compile(r"(\d+)\.[A-Za-z]+$")

# SAMM's header is on row 14 after 13 note rows; search this many rows for the header.
_HEADER_SEARCH_ROWS = 40

# How many problems an error message or warning spells out before "... and N more".
_SHOW = 10


@dataclass
class ClipProblem:
    """A clip that an annotation (workbook or list) names but that cannot be read from disk."""

    database: str
    subject: str
    clip: str
    reason: str

    def __str__(self) -> str:
        return f"{DATABASE_NAMES.get(self.database, self.database)} {self.subject}/{self.clip}: {self.reason}"


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
