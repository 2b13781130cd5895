"""The MEGC 2019 composite: the official list of 442 clips (SMIC, CASME II, SAMM) as one dataset.

`load_megc2019` reads each database with its own loader (`modeling_mie.data`) and keeps the clips
the list names, with the list's 3-class labels; `read_megc2019_ground_truth` reads the list (the
copy shipped with the package, or another in the same form). Clips the list names that are not on
disk are reported, never silently dropped (../shared/DATASETS.md).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .annotations import DATABASE_NAMES, _digits, _listing, _TreeHasher
from .data import (
    _SMIC_CLIP,
    DATABASES,
    MEGC_CLASSES,
    _Scan,
    _scan_casme2,
    _scan_samm,
    _scan_smic,
    _to_dataset,
)
from .errors import MieInputError
from .landmarks import _sha256 as _file_digest

logger = logging.getLogger(__name__)

GROUND_TRUTH_RESOURCE = "megc2019_3class_gt.csv"


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


__all__ = ["GroundTruthClip", "load_megc2019", "read_megc2019_ground_truth"]
