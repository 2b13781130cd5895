"""Loaders for SMIC, CASME II and SAMM, one `datasets.Dataset` row per clip.

The layouts, spellings and quirks read here are those of ../shared/DATASETS.md (the project's
specification of the three licensed databases). Every loader returns rows with the same
features (`clip_features()`), so the databases concatenate, and the MEGC 2019 composite
(`modeling_mie.megc2019`) is a plain selection of them driven by the official list. Reading the
frame folders and workbooks is `modeling_mie.annotations`, shared with the long-video loaders.

Frames are stored as paths, not decoded images: a SAMM clip is hundreds of 2040 x 1088 frames,
and the preprocessing cache (`modeling_mie.cache`) reads each frame once anyway.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .annotations import (
    DATABASE_NAMES,
    ClipProblem,
    _cell_text,
    _check_root,
    _digits,
    _find_tree,
    _frame_cell,
    _frame_positions,
    _listing,
    _locate_workbook,
    _scan_frames,
    _subdirs,
    _TreeHasher,
    _variant,
    read_workbook,
)
from .errors import MieInputError
from .landmarks import _sha256 as _file_digest

logger = logging.getLogger(__name__)


DATABASES = ("smic", "casme2", "samm")
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


# ---------------------------------------------------------------------------- clip rows


@dataclass
class _Scan:
    """What scanning one database tree gives: rows, problems, and the tree's fingerprint."""

    database: str
    rows: list[dict]
    problems: list[ClipProblem]
    fingerprint: str
    tree: Path
    annotations: Path | None


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


# ---------------------------------------------------------------------------- annotated trees


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
    "MEGC_CLASSES",
    "clip_features",
    "clip_region_labels",
    "format_summary",
    "load_casme2",
    "load_samm",
    "load_smic",
    "parse_action_units",
    "read_workbook",
    "summarize_clips",
]
