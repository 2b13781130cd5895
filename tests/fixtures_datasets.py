"""Builders of fixture trees in the real layouts of SMIC, CASME II and SAMM, quirks included.

Every layout, spelling and quirk here is one of ../shared/DATASETS.md; the tests read these
trees with the loaders exactly as a researcher's licensed copy would be read. Frames are tiny
(8 x 8) images unless an `image` function gives real pixels (bench/data.py does).
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
OFFICIAL_LIST = SHARED / "data" / "megc2019" / "combined_3class_gt.csv"

# image(database, clip folder name, frame number) -> uint8 array (H, W) grey or (H, W, 3) RGB
ImageFn = Callable[[str, str, int], np.ndarray]

CASME2_HEADER = [
    "Subject",
    "Filename",
    None,  # the coding workbook really has two blank columns
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
]
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Micro",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
]
SAMM_NOTE_ROWS = 13


@dataclass
class Clip:
    """One clip of any database. `frames`: the frame numbers present on disk, in any order."""

    subject: int
    filename: str
    frames: Sequence[int]
    emotion: str
    onset: int | str | None = None
    apex: int | str | None = None
    offset: int | str | None = None
    action_units: str | int | None = None
    # how the workbook writes the subject: CASME II text "01" or integer 1; SAMM text "006"
    subject_cell: str | int | None = None
    # SAMM: digits of the frame number (4 or 5); SMIC: digits (5-8), None = unpadded
    pad: int | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- pixels
_ENCODED: dict[tuple, bytes] = {}


def _tiny(suffix: str, grey: bool, value: int) -> bytes:
    """The encoded bytes of an 8 x 8 image, cached: writing 900 frames must stay fast."""
    key = (suffix, grey, value)
    if key not in _ENCODED:
        array = np.full((8, 8) if grey else (8, 8, 3), value, np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format={"jpg": "JPEG", "bmp": "BMP"}[suffix])
        _ENCODED[key] = buffer.getvalue()
    return _ENCODED[key]


def _write_image(path: Path, database: str, clip: str, number: int, grey: bool, image: ImageFn | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix[1:]
    if image is None:
        path.write_bytes(_tiny(suffix, grey, 40 + number % 150))
        return
    array = image(database, clip, number)
    if grey and array.ndim == 3:
        array = np.asarray(Image.fromarray(array).convert("L"))
    Image.fromarray(array).save(path, format={"jpg": "JPEG", "bmp": "BMP"}[suffix], **({"quality": 90} if suffix == "jpg" else {}))


def face_frames(width: int = 640, height: int = 480, face_height: int = 345, grey: bool = False) -> ImageFn:
    """An `image` function giving real face frames: NASA's public-domain astronaut portrait
    (skimage) centred on a (height, width) frame, shifted by a few pixels per clip and per frame
    so that MediaPipe landmarks a real, slightly moving face. `grey=True` gives (H, W) frames."""
    import skimage.data

    head = skimage.data.astronaut()[30:250, 120:330]  # head with some margin, 220 x 210
    face_width = int(round(face_height * head.shape[1] / head.shape[0]))
    face = np.asarray(Image.fromarray(head).resize((face_width, face_height), Image.BICUBIC))
    margin = 20
    canvas = np.full((height + 2 * margin, width + 2 * margin, 3), 90, np.uint8)
    y0, x0 = (canvas.shape[0] - face_height) // 2, (canvas.shape[1] - face_width) // 2
    canvas[y0 : y0 + face_height, x0 : x0 + face_width] = face

    def image(database: str, clip: str, number: int) -> np.ndarray:
        seed = sum(map(ord, clip))
        dx = margin + (seed % 13) - 6 + int(round(1.5 * np.sin(number / 5.0)))
        dy = margin + (seed % 9) - 4 + (number % 3) - 1
        frame = np.ascontiguousarray(canvas[dy : dy + height, dx : dx + width])
        return np.asarray(Image.fromarray(frame).convert("L")) if grey else frame

    return image


def blank_frames(value: int = 90, width: int = 320, height: int = 240) -> ImageFn:
    """An `image` function giving faceless frames of one grey level."""

    def image(database: str, clip: str, number: int) -> np.ndarray:
        return np.full((height, width, 3), value, np.uint8)

    return image


# ---------------------------------------------------------------------------- CASME II
def write_casme2_workbook(path: Path, clips: Sequence[Clip], sheet: str = "Sheet1", header=None) -> Path:
    """`CASME2-coding-20140508.xlsx`: sheet Sheet1, header on row 1, two blank columns."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(list(header or CASME2_HEADER))
    for c in clips:
        subject = c.subject_cell if c.subject_cell is not None else f"{c.subject:02d}"
        ws.append([subject, c.filename, None, c.onset, c.apex, c.offset, None, c.action_units, c.emotion])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_casme2(
    root: Path,
    clips: Sequence[Clip],
    *,
    cropped: bool = False,
    workbook: bool = True,
    on_disk: Sequence[Clip] | None = None,
    image: ImageFn | None = None,
) -> Path:
    """A CASME II copy under `root`: `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` (numbers not
    padded) or `Cropped/sub01/EP02_01f/reg_img46.jpg`, and the workbook beside the tree.

    `on_disk` defaults to `clips`; pass a different list to write folders the workbook lacks.
    Returns the tree folder.
    """
    tree = root / ("Cropped" if cropped else "CASME2_RAW_selected")
    prefix = "reg_img" if cropped else "img"
    for c in clips if on_disk is None else on_disk:
        folder = tree / f"sub{c.subject:02d}" / c.filename
        folder.mkdir(parents=True, exist_ok=True)
        for n in c.frames:
            _write_image(folder / f"{prefix}{n}.jpg", "casme2", c.filename, n, False, image)
    if workbook:
        write_casme2_workbook(root / "CASME2-coding-20140508.xlsx", clips)
    return tree


def casme2_quirk_clips() -> list[Clip]:
    """CASME II clips with every quirk of DATASETS.md."""
    return [
        # img8..img12 unpadded: sorting names would put img10 before img8
        Clip(1, "EP02_01f", range(8, 13), "happiness", 8, 10, 12, "6+12", subject_cell="01"),
        Clip(1, "EP19_05f", range(95, 104), "disgust", 96, 99, 102, "4+L10", subject_cell=1),
        # apex written "/" (sub04/EP12_01f)
        Clip(4, "EP12_01f", range(20, 27), "disgust", 20, "/", 26, "R2+15", subject_cell=4),
        # apex == onset (sub05/EP09_05f)
        Clip(5, "EP09_05f", range(30, 36), "repression", 30, 30, 35, "14", subject_cell="05"),
        # irregular names: EP01_2, EP06_02_01, EP09f
        Clip(3, "EP01_2", range(1, 5), "surprise", 1, 2, 4, "1+2", subject_cell="03"),
        Clip(7, "EP06_02_01", range(40, 44), "disgust", 40, 41, 43, "9", subject_cell=7),
        Clip(9, "EP09f", range(7, 12), "happiness", 7, 9, 11, 12, subject_cell="09"),
        # no MEGC class: others / fear / sadness (CASME II fear and sadness are dropped)
        Clip(9, "EP13_02", range(50, 53), "others", 50, 51, 52, "?", subject_cell="09"),
        Clip(3, "EP18_01", range(60, 63), "fear", 60, 61, 62, "4+5", subject_cell="03"),
        Clip(7, "EP19_01", range(70, 73), "sadness", 70, 71, 72, "1+4+15", subject_cell="07"),
    ]


# ---------------------------------------------------------------------------- SAMM
def write_samm_workbook(path: Path, clips: Sequence[Clip], sheet: str = "MICRO_ONLY", header=None) -> Path:
    """`SAMM_Micro_FACS_Codes_v2.xlsx`: sheet MICRO_ONLY, 13 note rows, the header on row 14."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    notes = [
        "SAMM - Spontaneous Actions and Micro-Movements (fixture copy)",
        "FACS coding of the micro-movements, one row per clip.",
        "Onset/Apex/Offset are frame numbers of the long recording.",
        "Action units: L = left, R = right, letters A-E = intensity.",
        "Alternatives are written (R6 or R12) and 10A/B.",
    ]
    for i in range(SAMM_NOTE_ROWS):
        ws.append([notes[i] if i < len(notes) else None])
    ws.append(list(header or SAMM_HEADER))
    for c in clips:
        subject = c.subject_cell if c.subject_cell is not None else f"{c.subject:03d}"
        onset, offset = c.onset, c.offset
        duration = offset - onset + 1 if isinstance(onset, int) and isinstance(offset, int) else None
        ws.append(
            [subject, c.filename, f"{c.subject}_{c.filename.split('_')[1]}", onset, c.apex, offset, duration,
             "Micro - 1/2", c.action_units, c.emotion, c.extra.get("objective", "I"), c.extra.get("notes")]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_samm(
    root: Path,
    clips: Sequence[Clip],
    *,
    workbook: bool = True,
    on_disk: Sequence[Clip] | None = None,
    image: ImageFn | None = None,
) -> Path:
    """A SAMM copy: `SAMM/006/006_1_2/006_05562.jpg` (GREYSCALE jpg, the frame number padded to
    `clip.pad` digits, 5 by default, counting from the long recording), workbook beside the tree.
    Returns the tree folder."""
    tree = root / "SAMM"
    for c in clips if on_disk is None else on_disk:
        folder = tree / f"{c.subject:03d}" / c.filename
        folder.mkdir(parents=True, exist_ok=True)
        for n in c.frames:
            _write_image(folder / f"{c.subject:03d}_{n:0{c.pad or 5}d}.jpg", "samm", c.filename, n, True, image)
    if workbook:
        write_samm_workbook(root / "SAMM_Micro_FACS_Codes_v2.xlsx", clips)
    return tree


def samm_quirk_clips() -> list[Clip]:
    """SAMM clips with every quirk of DATASETS.md."""
    return [
        # 5-digit frame names, folder starting at 5562, not 1
        Clip(6, "006_1_2", range(5562, 5569), "Anger", 5562, 5565, 5568, "4+7", pad=5),
        # 4-digit names that run into 5 digits: 9998, 9999, 10000 (names would sort 10000 first)
        Clip(6, "006_1_3", range(9996, 10003), "Contempt", 9996, 10000, 10002, "R14", pad=4),
        # alternatives in the AU cell
        Clip(7, "007_3_1", range(1201, 1207), "Happiness", 1201, 1203, 1206, "(R6 or R12)+R15", pad=4),
        Clip(9, "009_2_1", range(30001, 30006), "Surprise", 30001, 30003, 30005, "10A/B", pad=5),
        # Other and Others: no MEGC class
        Clip(9, "009_3_2", range(400, 404), "Other", 400, 401, 403, "?", pad=4),
        Clip(11, "011_1_4", range(500, 504), "Others", 500, 502, 503, "45", pad=4),
        # apex outside the frames present: clamp and warn (DATASETS.md)
        Clip(28, "028_4_1", range(2100, 2110), "Disgust", 2100, 2115, 2109, "9+10", pad=5),
        Clip(32, "032_3_1", range(3300, 3306), "Fear", 3300, 3290, 3305, "4+20", pad=5),
    ]


# ---------------------------------------------------------------------------- SMIC
SMIC_CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}


def write_smic(
    root: Path,
    clips: Sequence[Clip],
    *,
    cropped: bool = False,
    non_micro: bool = True,
    image: ImageFn | None = None,
) -> Path:
    """An SMIC copy: `SMIC_all_raw/HS/s3/micro/negative/s3_ne_01/image<frame>.bmp` (subject not
    padded on disk, absolute frame counter padded to `clip.pad` digits or unpadded), or
    `SMIC_all_cropped/.../reg_image<frame>.bmp`, plus a `non_micro` folder to be ignored.
    `clip.filename` is the disk name (`s3_ne_01`). Returns the HS folder."""
    hs = root / ("SMIC_all_cropped" if cropped else "SMIC_all_raw") / "HS"
    prefix = "reg_image" if cropped else "image"
    for c in clips:
        folder = hs / f"s{c.subject}" / "micro" / c.emotion / c.filename
        folder.mkdir(parents=True, exist_ok=True)
        for n in c.frames:
            name = f"{prefix}{n:0{c.pad}d}.bmp" if c.pad else f"{prefix}{n}.bmp"
            _write_image(folder / name, "smic", c.filename, n, False, image)
    if non_micro:
        subjects = sorted({c.subject for c in clips})
        for s in subjects[:2]:
            folder = hs / f"s{s}" / "non_micro" / "negative" / f"s{s}_ne_99"
            folder.mkdir(parents=True, exist_ok=True)
            for n in (77, 78):
                _write_image(folder / f"{prefix}{n:06d}.bmp", "smic", folder.name, n, False, None)
    return hs


def smic_quirk_clips() -> list[Clip]:
    """SMIC clips with every quirk of DATASETS.md: 5-8 digit absolute frame counters with
    varying padding, unpadded subject folders."""
    return [
        Clip(1, "s1_ne_01", range(12345, 12352), "negative", pad=5),
        # 8 digits, zero-padded
        Clip(1, "s1_po_01", range(1234567, 1234573), "positive", pad=8),
        # unpadded, crossing 99999 -> 100000 (names would sort 100000 first)
        Clip(3, "s3_sur_01", range(99997, 100004), "surprise", pad=None),
        # 7 digits padded to 8 in one clip, 7 in another
        Clip(12, "s12_ne_02", range(5000000, 5000004), "negative", pad=7),
        Clip(12, "s12_po_01", range(700, 705), "positive", pad=6),
    ]


# ---------------------------------------------------------------------------- the complete composite
def read_official_list(path: Path = OFFICIAL_LIST) -> list[tuple[str, str, str, int]]:
    with open(path, newline="") as fh:
        return [(d, s, f, int(c)) for d, s, f, c in csv.reader(fh)]


def write_megc2019_complete(root: Path, list_path: Path = OFFICIAL_LIST) -> dict[str, Path]:
    """All 442 listed clips (two 8 x 8 frames each) in the three real layouts, and workbooks
    consistent with the list, plus clips the list leaves out (so selection is by the list):
    CASME II sub04/EP12_01f (apex /) and sub05/EP09_05f (apex == onset), CASME II fear, sadness
    and others (also the only clips of sub10 and sub18), SAMM Other/Others (the only clip of 025),
    SMIC `non_micro`. SAMM 028_4_1 and 032_3_1 keep their apex outside the frames.

    Returns the roots to pass to the loaders: {"casme2": ..., "samm": ..., "smic": ...}.
    """
    rows = read_official_list(list_path)
    negative = {
        "casme2": itertools.cycle(["disgust", "repression"]),
        "samm": itertools.cycle(["Anger", "Contempt", "Disgust", "Fear", "Sadness"]),
    }
    casme2, samm, smic = [], [], []
    for i, (database, subject, filename, label) in enumerate(rows):
        start = 100 + 10 * (i % 7)
        if database == "casme2":
            emotion = next(negative["casme2"]) if label == 0 else ("happiness" if label == 1 else "surprise")
            number = int(subject[3:])
            casme2.append(
                Clip(number, filename, (start, start + 1), emotion, start, start + 1, start + 1, "4+L10",
                     subject_cell=f"{number:02d}" if i % 2 else number)
            )
        elif database == "samm":
            emotion = next(negative["samm"]) if label == 0 else ("Happiness" if label == 1 else "Surprise")
            apex = start + 1
            if filename in ("028_4_1", "032_3_1"):
                apex = start + 40
            samm.append(
                Clip(int(subject), filename, (start, start + 1), emotion, start, apex, start + 1, "(R6 or R12)+R15",
                     pad=4 if i % 2 else 5)
            )
        else:
            number = int(subject[1:])
            code, clip_number = filename.split("_")[1:]
            emotion = {v: k for k, v in SMIC_CODES.items()}[code]
            assert emotion == ("negative", "positive", "surprise")[label]
            # absolute camera counters with 5 to 8 digits
            frame = 10 ** (4 + i % 4) + i
            smic.append(Clip(number, f"s{number}_{code}_{clip_number}", (frame, frame + 1), emotion, pad=None))
    casme2 += [
        Clip(4, "EP12_01f", (10, 11, 12), "disgust", 10, "/", 12, "R2+15"),
        Clip(5, "EP09_05f", (20, 21, 22), "repression", 20, 20, 22, "14"),
        Clip(10, "EP01_01", (30, 31), "others", 30, 31, 31, "?", subject_cell="10"),
        Clip(18, "EP02_01", (30, 31), "fear", 30, 31, 31, "4", subject_cell=18),
        Clip(1, "EP99_01", (30, 31), "sadness", 30, 31, 31, "15"),
    ]
    samm += [
        Clip(25, "025_1_1", (700, 701), "Other", 700, 701, 701, "?", pad=5),
        Clip(6, "006_9_9", (800, 801), "Others", 800, 801, 801, "45", pad=4),
    ]
    return {
        "casme2": write_casme2(root / "CASME2", casme2).parent,
        "samm": write_samm(root / "SAMM_root", samm).parent,
        "smic": write_smic(root / "SMIC", smic).parent.parent,
    }
