"""Synthetic micro-expression clips from public-domain faces, written in the real database layouts.

Learning has to be testable without the licensed databases (DESIGN.md section 3), so this module
animates two real, public-domain face photographs (NASA's astronaut portrait from scikit-image and
Grace Hopper from matplotlib) with small, local, action-unit-like deformations and writes the
result exactly as SMIC, CASME II and SAMM lay out their files (../shared/DATASETS.md), with the
annotation workbooks and a MEGC 2019-style ground-truth list. The loaders of `modeling_mie.data`
read the output as they read the real databases.

How a clip is made
------------------
(This module writes a planned database in the real layouts and is the command; the plan is
`modeling_mie.synthetic_plan`, and the faces, action-unit fields, time courses and rendering are
`modeling_mie.synthetic_faces`.)

Subjects. Every subject is one of the two photos seen through its own identity transform: mirror,
roll (+-6 deg), aspect (+-7 %) and shear, face size (+-10 %) and position, a smooth shape warp
anchored on the landmarks (eye spacing, brow height, nose and chin length, mouth and jaw width,
each up to a few % of the face width), skin tone and white balance inside a soft face mask,
brightness, contrast, and a linear lighting gradient. The subject keeps all of it across its
clips; only a session jitter (+-1.5 % position, +-2 % brightness) changes between clips. So
leave-one-subject-out has something to generalise over; but with two photos behind 71 subjects,
it measures generalisation over identity transforms, not over real people.

Landmarks. MediaPipe finds the 478 points of each photo once (`load_base_faces`); the dlib-68 view
of them is carried through the identity transform analytically, never re-detected.

Expressions. Each action unit is a displacement field: a sum of Gaussians anchored on the
subject's landmarks, each pushing the skin along the face's own up/outward axes (so roll and mirror
are respected), normalised so that its largest displacement is exactly the AU's share of the
clip's apex amplitude (`synthetic_faces.ACTION_UNIT_ANCHORS` lists anchors, directions and widths). The apex
amplitude is 2.5-5.5 px per 300 px of face width (jaw to jaw), times a per-AU intensity of 0.7-1.
Frames are warped backwards with `cv2.remap` (bicubic); skin the field compresses darkens a little
and skin it stretches brightens (gain 0.5 x the field's divergence, a few %), the wrinkles and
bulges without which a smooth chin or cheek would move invisibly. Classes:

- positive: AU12 (lip corners up and out), with AU6 (cheeks up, lower lids narrowed) in 60 %;
- surprise: AU1 + AU2 (inner and outer brows up), plus AU5 (upper lids up, 30 %) or AU26 (jaw
  drop, 25 %);
- negative: combinations of AU4 (brows down and together), AU9 (nose sides up, bridge wrinkled),
  AU10 (upper lip up), AU14 (lip corners tightened back), AU15 (lip corners down), AU17 (chin boss
  up), chosen per raw emotion (disgust: 9/10/4+9..., repression: 14/15/17..., anger: 4/4+17...,
  contempt: unilateral 14, fear: 4+14/4+15, sadness: 15/4+15/15+17).

Time course: the annotated onset is the first frame (CASME II, SMIC; SAMM folders hold a few
frames more on either side); the movement starts 0-8 % later, rises with a raised cosine to the
apex at 25-60 % of the clip and decays to a residual of 0-15 % at the offset. Clip lengths follow
the real databases (megc2019: SMIC 11-58 frames at 100 fps, CASME II 24-130 at 200 fps, SAMM 30-110
plus 0-6 frames of margin at 200 fps, i.e. 0.11-0.65 s).

Nuisances: Gaussian sensor noise (sigma 0.8-2.2 grey levels, fresh per frame), a smooth global
head drift (peak 0.1-1 px per 300 px of face, below 0.4 px in half the clips), illumination flicker
(0.2-0.8 % gain at ~100 Hz aliased by the frame rate, plus jitter), unlabelled eye blinks (25 % of
the clips of every class, 30-90 % closure, 80-250 ms) and JPEG compression (CASME II quality 90,
SAMM 85; SMIC is BMP as the real one). The expression stays the dominant temporal change inside
its regions: `draw_synthetic_clip` shows it and the tests measure it.

Head motion (off by default; `head_motion=True`, `--head-motion`): every clip's head also moves
rigidly while the expression plays, a known similarity about the face centre against which face
alignment can be tested: in-plane rotation up to +-10 deg, translation up to 30 px per 300 px of
face, scale up to +-8 %, each on its own slow wave (0.5-3 Hz) from the identity at the first frame
(where the manifest's landmarks are) to exactly its drawn peak. Each frame is warped with it after
the expression and before flicker and sensor noise, which stay with the camera;
`synthetic_faces.head_motion_course` gives every frame's affine from the clip's manifest record.
The option changes no other draw of the plan.

Held-out style (`style="heldout"`, `--style heldout`): the same plan drawn another way, for
evaluating transfer to footage the model was not trained on: every action unit's displacement
uses a compactly supported Wendland kernel of 2.2 sigma radius instead of the Gaussian (sharper,
narrower movements), the time course rises linearly to the apex and decays exponentially instead
of the raised cosines, and every frame is JPEG-compressed at quality 55 (SMIC frames too, before
their BMP encoding). Use another `--seed` as well, so that no identity or clip of the training set
recurs. Training must never see this style.

Wide variety (`variety="wide"`, `--variety wide`): for training that has to transfer. Every
subject gets a stronger shape warp (1.5-2.5x the coefficients above), a tone curve (gamma
0.8-1.25), a skin texture of its own (blurred up to 1.2 px or sharpened, per 300 px of face) and a
recording chain with its own JPEG quality (70-95; half of the SMIC subjects too, kept in their
BMP files), and every clip's amplitude is multiplied by a log-uniform factor of 0.6-3, so the
same action units appear from barely visible to several times the base range. Drawn from
generators of their own: every other draw of the plan stays as it is. The held-out style's
quality 55 stays below anything the wide variety trains on.

Resolutions (megc2019 profile). CASME II-like: 640x480 colour, as recorded, face 250 px wide.
SAMM-like: 1020x544 greyscale, half the real 2040x1088 (4x less disk and time); the face is 300
px wide, the size the amplitude refers to, about what a SAMM face measures at half scale. SMIC-like:
320x240 colour BMP, half the real 640x480, because BMP is uncompressed (the real size would take
5 GB); its face is 140 px and the amplitude shrinks with it (1.2-2.6 px), as the real SMIC faces are
the smallest of the three. The `tiny` profile renders 256x192 (SAMM 340x180) with 105-120 px
faces. All sizes and counts are data in `SYNTHETIC_PROFILES`. Measured on the project's 2-core
machine: megc2019 (458 clips, 25,182 frames) takes 3.7 min with 2 workers and 2.6 GB (SMIC 1.2,
SAMM 0.73, CASME II 0.65); tiny (35 clips, 530 frames) 3 s and 27 MB.

Layouts written under the output folder (see `generate_synthetic_dataset`)::

    CASME2/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...   CASME2/CASME2-coding-20140508.xlsx
    SAMM/006/006_1_2/006_05562.jpg ...                        SAMM/SAMM_Micro_FACS_Codes_v2.xlsx
    SMIC/SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image0123456.bmp (and s1/non_micro/...)
    combined_3class_gt.csv     the MEGC-style list of the clips that have a 3-class label
    synthetic_manifest.json    every clip's truth: AUs, amplitude, timing, blink, landmarks

Counts of megc2019 per database and subject are the official list's (442 clips, 68 subjects,
SMIC 70/51/43, CASME II 88/32/25, SAMM 92/26/15), plus clips the composite drops as the real
workbooks have them (CASME II others/fear/sadness, the `/` apex of sub04/EP12_01f and the
apex == onset of sub05/EP09_05f, subjects sub10 and sub18 with no qualifying clip; SAMM Other and
subject 025; SMIC non_micro). SAMM's first clips of subjects 028 and 032 annotate an apex outside
the frames present, as the real 028_4_1 and 032_3_1 do.

Determinism: every random choice comes from `numpy.random.SeedSequence(seed, ...)` keyed by
database and clip, never by process or order, JPEG/BMP encoding is deterministic, and the
workbooks are written with fixed zip timestamps, so the same seed gives byte-identical files on
the same machine and library versions (MediaPipe's landmarks could differ in the last digits on
another CPU; they are rounded to 1/100 px to make that unlikely).

Command::

    python -m modeling_mie.synthetic --out DIR --profile tiny|megc2019 [--seed N] [--workers N]
        [--head-motion] [--style train|heldout] [--variety base|wide] [--overwrite | --resume]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import MieInputError
from .synthetic_faces import (
    BaseFace,
    _animate,
    _identity_geometry,
    _render_base,
    load_base_faces,
)
from .synthetic_plan import (
    _JPEG_QUALITY,
    DATABASE_FPS,
    DATABASE_ROOTS,
    MEGC_CLASSES,
    STYLES,
    SYNTHETIC_PROFILES,
    VARIETIES,
    SyntheticClip,
    SyntheticPlan,
    plan_synthetic_dataset,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MARKER_FILE = ".mie_synthetic.json"
MANIFEST_FILE = "synthetic_manifest.json"
GROUND_TRUTH_FILE = "combined_3class_gt.csv"
_PARTIAL_DIR = ".partial"

# The list's database order is the official file's (casme2, smic, samm).
_LIST_ORDER = ("casme2", "smic", "samm")
_HELDOUT_JPEG_QUALITY = 55

# --------------------------------------------------------------------------- writing
def _encode(frame: np.ndarray, database: str, style: str = "train", quality: int | None = None) -> bytes:
    """One frame as the database stores it. `quality`: the subject's JPEG quality (None: the
    database's own); the held-out style's overrides it. SMIC keeps BMP files, with a JPEG round
    trip before when a quality applies."""
    import cv2

    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if style == "heldout":
        quality = _HELDOUT_JPEG_QUALITY
    elif quality is None:
        quality = _JPEG_QUALITY.get(database)
    if database == "smic":
        if quality is not None:  # a compressed recording chain, kept in SMIC's BMP files
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
            frame = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        ok, buf = cv2.imencode(".bmp", frame)
    else:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported arrays
        raise RuntimeError(f"OpenCV could not encode a {frame.shape} frame")
    return buf.tobytes()


_WORKER_FACES: dict[str, BaseFace] = {}


def _init_worker(faces: dict[str, BaseFace], pool: bool = False) -> None:
    import cv2

    if pool:
        import signal

        # Ctrl-C is the parent's to handle (it terminates the pool and says how to resume); workers
        # that also caught it would each print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # one OpenCV thread per process: the pool already uses every core
        cv2.setNumThreads(1)
    _WORKER_FACES.clear()
    _WORKER_FACES.update(faces)


def _write_clip(task: tuple) -> tuple[str, list]:
    """Render one clip into a scratch folder, then move it into place in one rename.

    A clip folder in the tree is therefore always complete: a killed run leaves only scratch
    folders under `.partial/`, which `--resume` deletes and redoes.
    """
    out, clip, subject = task
    out = Path(out)
    face = _WORKER_FACES[subject.face]
    scratch = out / _PARTIAL_DIR / clip.key.replace("/", "__")
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    base, landmarks = _render_base(subject, clip, face)
    for name, frame in zip(clip.frame_names(), _animate(clip, subject, base, landmarks, True)):
        (scratch / name).write_bytes(_encode(frame, clip.database, clip.style, subject.jpeg_quality))
    final = out / clip.relative_dir()
    if final.exists():  # frames deleted by hand from a finished clip: it is redone whole
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(scratch, final)
    return clip.key, np.round(landmarks, 2).tolist()


def _clip_done(out: Path, clip: SyntheticClip) -> bool:
    folder = out / clip.relative_dir()
    if not folder.is_dir():
        return False
    names = set(os.listdir(folder))
    return all(n in names for n in clip.frame_names())


def _save_workbook(book, path: Path) -> None:
    """Save an openpyxl workbook with fixed timestamps, so that the same rows give the same bytes.

    openpyxl stamps `dcterms:modified` with the current time and every zip entry with the current
    date; both are replaced by 2000-01-01.
    """
    import datetime

    fixed = datetime.datetime(2000, 1, 1)
    book.properties.creator = "mie synthetic"
    book.properties.created = fixed
    raw = io.BytesIO()
    book.save(raw)
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>2000-01-01T00:00:00Z\g<2>", data
                )
            info = zipfile.ZipInfo(item.filename, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)


def _subject_sort_key(clip: SyntheticClip) -> tuple:
    return (int(re.sub(r"\D", "", clip.subject)), clip.clip.lower())


def _write_casme2_workbook(path: Path, clips: list[SyntheticClip]) -> None:
    """`CASME2-coding-20140508.xlsx`, sheet `Sheet1`, header on row 1 with the two blank columns."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units", "Estimated Emotion"])
    for clip in sorted(clips, key=_subject_sort_key):
        number = int(clip.subject[3:])
        # The real workbook's Subject is text "01" in some copies and the number 1 in others;
        # odd subjects are written as text and even ones as numbers so a loader meets both.
        subject = f"{number:02d}" if number % 2 else number
        sheet.append([subject, clip.clip, None, clip.onset, clip.annotated_apex, clip.offset, None, clip.au_string, clip.emotion])
    _save_workbook(book, path)


_SAMM_NOTES = (
    "SAMM - Spontaneous Actions and Micro-Movements: FACS codes of the micro-movements",
    "SYNTHETIC COPY written by mie (modeling_mie.synthetic): public-domain faces, not the SAMM database",
    None,
    "Subject: participant number; Filename: <subject>_<inducement>_<movement>",
    "Inducement Code: the stimulus that induced the movement",
    "Onset / Apex / Offset Frame: frame numbers of the long recording",
    "Duration: Offset Frame - Onset Frame + 1, in frames at 200 fps",
    "Micro: all movements on this sheet are micro-movements",
    "Action Units: FACS codes, L/R laterality, A-E intensity",
    "Estimated Emotion: Anger, Contempt, Disgust, Fear, Happiness, Sadness, Surprise, Other",
    "Objective Classes: I-VII of Davison et al. (2018), written 1-7",
    "Notes: free text",
    None,
)


def _write_samm_workbook(path: Path, clips: list[SyntheticClip]) -> None:
    """`SAMM_Micro_FACS_Codes_v2.xlsx`, sheet `MICRO_ONLY`: 13 note rows, the header on row 14."""
    import openpyxl

    assert len(_SAMM_NOTES) == 13
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "MICRO_ONLY"
    for note in _SAMM_NOTES:
        sheet.append([note])
    sheet.append(
        ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration", "Micro",
         "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    )
    for clip in sorted(clips, key=_subject_sort_key):
        sheet.append(
            [clip.subject, clip.clip, clip.inducement, clip.onset, clip.annotated_apex, clip.offset,
             clip.offset - clip.onset + 1, "Micro", clip.au_string, clip.emotion, clip.objective_class,
             "blink" if clip.blink is not None else None]
        )
    _save_workbook(book, path)


def _write_ground_truth(path: Path, clips: list[SyntheticClip]) -> int:
    """The MEGC-style list: no header, CRLF, `db,subject,filename,class`, ordered as the official one."""
    rows = [
        row
        for database in _LIST_ORDER
        for clip in sorted((c for c in clips if c.database == database), key=_subject_sort_key)
        if (row := clip.megc_row()) is not None
    ]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(rows)
    return len(rows)


@dataclass
class SyntheticDataset:
    """What `generate_synthetic_dataset` wrote.

    Attributes:
        root: the output folder.
        roots: per database the folder to pass to its loader (`load_casme2(roots["casme2"])`, ...).
        ground_truth: the MEGC-style list (for `load_megc2019(ground_truth=...)`).
        manifest: the JSON file with every subject's and clip's truth.
        plan: the plan that was rendered.
        clips_written, clips_skipped: clips rendered by this run / found complete (resume).
        frames, bytes: totals over the whole dataset on disk; seconds: time this run took.
    """

    root: Path
    roots: dict[str, Path]
    ground_truth: Path
    manifest: Path
    plan: SyntheticPlan
    clips_written: int = 0
    clips_skipped: int = 0
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    listed: int = 0


def _motion_words(head_motion: bool) -> str:
    return "with head motion" if head_motion else "without head motion"


def _prepare_output(
    out: Path, profile: str, seed: int, head_motion: bool, overwrite: bool, resume: bool, style: str = "train",
    variety: str = "base",
) -> None:
    if overwrite and resume:
        raise MieInputError("Choose one of overwrite and resume, not both.")
    if out.exists() and not out.is_dir():
        raise MieInputError(f"The output {out} is a file; pass a folder (it is created when missing).")
    marker = out / MARKER_FILE
    if out.is_dir() and any(out.iterdir()):
        ours = marker.is_file()
        if resume:
            if not ours:
                raise MieInputError(
                    f"Cannot resume in {out}: it is not empty and holds no {MARKER_FILE}, so it was not written "
                    "by mie's synthetic generator. Pick an empty or new folder."
                )
            previous = json.loads(marker.read_text())
            previous.setdefault("head_motion", False)  # folders written before the option had none
            previous.setdefault("style", "train")  # nor the style
            previous.setdefault("variety", "base")  # nor the variety
            now = {"profile": profile, "seed": int(seed), "head_motion": bool(head_motion), "style": style,
                   "variety": variety, "version": GENERATOR_VERSION}
            if {k: previous.get(k) for k in now} != now:
                raise MieInputError(
                    f"Cannot resume in {out}: it holds profile {previous.get('profile')!r} seed {previous.get('seed')} "
                    f"{_motion_words(previous['head_motion'])} (generator version {previous.get('version')}), style "
                    f"{previous['style']}, variety {previous['variety']}, not profile {profile!r} seed {seed} "
                    f"{_motion_words(head_motion)} (version {GENERATOR_VERSION}), style {style}, variety {variety}. "
                    "Use the same settings (--head-motion or not, --style, --variety), or --overwrite to start again."
                )
        elif overwrite:
            if not ours:
                raise MieInputError(
                    f"Refusing to overwrite {out}: it is not empty and holds no {MARKER_FILE}, so it was not written "
                    "by mie's synthetic generator. Delete it yourself or pick another folder."
                )
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            raise MieInputError(
                f"The output folder {out} is not empty. Pass --overwrite to replace a previous synthetic dataset, "
                "--resume to finish an interrupted one, or choose another folder."
            )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        json.dumps(
            {"generator": "modeling_mie.synthetic", "profile": profile, "seed": int(seed),
             "head_motion": bool(head_motion), "style": style, "variety": variety, "version": GENERATOR_VERSION}
        )
        + "\n"
    )
    # scratch folders of a killed run: their clips are redone
    shutil.rmtree(out / _PARTIAL_DIR, ignore_errors=True)


def default_workers(plan: SyntheticPlan) -> int:
    """1 process for small plans (starting a process costs seconds of imports), else every core."""
    return 1 if plan.total_frames < 5000 else (os.cpu_count() or 1)


def generate_synthetic_dataset(
    out,
    profile: str = "tiny",
    seed: int = 0,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    head_motion: bool = False,
    faces: dict[str, BaseFace] | None = None,
    progress: Callable[[SyntheticClip, int, int], None] | None = None,
    style: str = "train",
    variety: str = "base",
) -> SyntheticDataset:
    """Render a whole synthetic dataset into `out` in the layouts of SMIC, CASME II and SAMM.

    Args:
        out: output folder; created when missing. A non-empty folder is refused unless
            `overwrite` (only a folder this function wrote is ever deleted) or `resume` (same
            profile, seed, head_motion, style and variety: complete clip folders are kept, the rest is rendered).
        profile: a key of `SYNTHETIC_PROFILES` ("tiny": seconds, for tests; "megc2019": the
            442-clip composite with real clip lengths).
        seed: everything random derives from it; the same seed writes the same bytes.
        head_motion: every clip also moves rigidly (`plan_synthetic_dataset`); the manifest holds
            each clip's `head_motion` for `head_motion_course`. The other draws do not change.
        style: "train" or "heldout": how the clips are drawn (module docstring); training must
            never see the held-out style.
        variety: "base" or "wide": identity and amplitude ranges (`plan_synthetic_dataset`).
        workers: processes rendering clips; None = 1 for small profiles, else all cores. The output
            does not depend on it.
        faces: from `load_base_faces` (detected here when None).
        progress: called after each clip as progress(clip, clips done, clips total).

    Returns:
        `SyntheticDataset` with the loader roots, the list and the manifest.

    Raises:
        MieInputError: the output folder cannot be used (the message says what to pass), or the
            face landmarker model is missing.
        ValueError: unknown profile or style.
    """
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    plan = plan_synthetic_dataset(profile, seed, head_motion, style, variety)
    _prepare_output(out, profile, seed, head_motion, overwrite, resume, style, variety)
    faces = faces or load_base_faces()
    todo = [c for c in plan.clips if not _clip_done(out, c)]
    skipped = len(plan.clips) - len(todo)
    if skipped:
        logger.info("Resuming in %s: %d clips complete, %d to render.", out, skipped, len(todo))
    # Landmarks of done clips are recomputed from the geometry (no pixels).
    landmarks: dict[str, list] = {}
    todo_keys = {c.key for c in todo}
    for clip in plan.clips:
        if clip.key not in todo_keys:
            subject = plan.subject_of(clip)
            landmarks[clip.key] = np.round(_identity_geometry(subject, clip, faces[subject.face])[2], 2).tolist()
    workers = default_workers(plan) if workers is None else workers
    # longest first, so that the last clips to finish are short ones
    tasks = [(str(out), c, plan.subject_of(c)) for c in sorted(todo, key=lambda c: -c.num_frames * np.prod(plan.subject_of(c).frame_size))]
    by_key = {c.key: c for c in plan.clips}
    done = 0
    if progress is not None:  # clips kept from an earlier run count as done
        for clip in plan.clips:
            if clip.key not in todo_keys:
                done += 1
                progress(clip, done, len(plan.clips))
    done = skipped
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(faces)
        results = map(_write_clip, tasks)
        pool = None
    else:
        import multiprocessing

        # spawn, not fork: the parent holds MediaPipe's and torch's threads, which fork does not copy safely
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), _init_worker, (faces, True))
        results = pool.imap_unordered(_write_clip, tasks, chunksize=1)
    try:
        for key, points in results:
            landmarks[key] = points
            done += 1
            if progress is not None:
                progress(by_key[key], done, len(plan.clips))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    shutil.rmtree(out / _PARTIAL_DIR, ignore_errors=True)

    roots = {db: out / name for db, name in DATABASE_ROOTS.items()}
    _write_casme2_workbook(roots["casme2"] / "CASME2-coding-20140508.xlsx", [c for c in plan.clips if c.database == "casme2"])
    _write_samm_workbook(roots["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx", [c for c in plan.clips if c.database == "samm"])
    listed = _write_ground_truth(out / GROUND_TRUTH_FILE, plan.clips)
    manifest = out / MANIFEST_FILE
    _write_manifest(manifest, plan, landmarks)
    total_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    result = SyntheticDataset(
        root=out, roots=roots, ground_truth=out / GROUND_TRUTH_FILE, manifest=manifest, plan=plan,
        clips_written=len(todo), clips_skipped=skipped, frames=plan.total_frames, bytes=total_bytes,
        seconds=time.perf_counter() - started, listed=listed,
    )
    logger.info("Synthetic %s dataset in %s: %d clips, %d frames, %.1f MB.", profile, out, len(plan.clips), plan.total_frames, total_bytes / 1e6)
    return result


def _write_manifest(path: Path, plan: SyntheticPlan, landmarks: dict[str, list]) -> None:
    clips = []
    for clip in plan.clips:
        record = dataclasses.asdict(clip)
        record.update(
            key=clip.key, path=clip.relative_dir(), frames=clip.frame_names(), onset=clip.onset, apex=clip.apex,
            offset=clip.offset, dlib68=landmarks[clip.key], megc=clip.megc_row(),
        )
        clips.append(record)
    document = {
        "generator": "modeling_mie.synthetic",
        "version": GENERATOR_VERSION,
        "profile": plan.profile,
        "seed": plan.seed,
        "head_motion": plan.head_motion,
        "style": plan.style,
        "variety": plan.variety,
        "roots": dict(DATABASE_ROOTS),
        "ground_truth": GROUND_TRUTH_FILE,
        "fps": dict(DATABASE_FPS),
        "subjects": [dataclasses.asdict(s) for s in plan.subjects.values()],
        "clips": clips,
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_synthetic_manifest(root) -> dict:
    """The manifest of a generated dataset: `subjects` and `clips` (each with its truth and `dlib68`).

    Raises:
        MieInputError: no manifest (not a finished synthetic dataset).
    """
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise MieInputError(
            f"{path} does not exist: {root} is not a finished synthetic dataset (generate it, or --resume it)."
        )
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- picture
def region_boxes(dlib68: np.ndarray, config=None) -> np.ndarray:
    """The config's region boxes in frame px, (regions, 4) x0, y0, x1, y1, as the processor cuts them.

    Uses the processor's own geometry (`face_box_from_landmarks`, `region_boxes_from_face_box`), so
    pictures and tests measure exactly the crops the model sees.
    """
    from .configuration_mie import MieConfig
    from .regions import face_box_from_landmarks, region_boxes_from_face_box

    config = config or MieConfig()
    face_box = face_box_from_landmarks(np.asarray(dlib68, np.float64), config.face_box_landmarks)
    return region_boxes_from_face_box(face_box, config.regions, config.canvas_size)


def _read_frame(path: Path) -> np.ndarray:
    import cv2

    frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise MieInputError(f"Cannot read the frame {path}.")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame


PANEL_SIZE = 256  # px, side of each square panel of `draw_synthetic_clip`
_BAND = 44  # px, title band above the panels
_GAP = 6


def draw_synthetic_clip(root, path, clip: str | None = None, config=None, gain: float = 4.0) -> Path:
    """Draw onset, apex, offset and |apex - onset| of one generated clip, with the region boxes, as PNG.

    The face is cut square around its landmarks and every panel is `PANEL_SIZE` px: the PNG is
    (PANEL_SIZE + 44) px high and 4 * PANEL_SIZE + 30 px wide. In the difference panel the
    regions where the clip's action units act (the config's `action_units` column) are drawn
    thick; the others thin.

    Args:
        root: a folder written by `generate_synthetic_dataset`.
        path: the PNG to write.
        clip: a clip key ("casme2/sub01/EP02_01f"); default the first positive CASME II clip.
        config: a `MieConfig` for the regions (default `MieConfig()`).
        gain: the difference is multiplied by this before display (grey levels).

    Returns:
        The path written.
    """
    import cv2

    from .configuration_mie import MieConfig

    config = config or MieConfig()
    manifest = read_synthetic_manifest(root)
    records = {c["key"]: c for c in manifest["clips"]}
    if clip is None:
        clip = next(c["key"] for c in manifest["clips"] if c["database"] == "casme2" and c["label"] == 1)
    if clip not in records:
        raise MieInputError(f"No clip {clip!r} in {root}; keys look like {next(iter(records))!r}.")
    record = records[clip]
    folder = Path(root) / record["path"]
    names = record["frames"]
    picks = {"onset": record["onset_index"], "apex": record["apex_index"], "offset": record["offset_index"]}
    frames = {k: _read_frame(folder / names[i]).astype(np.float32) for k, i in picks.items()}
    for k, f in frames.items():
        if f.ndim == 2:
            frames[k] = np.repeat(f[:, :, None], 3, axis=2)
    diff = np.abs(frames["apex"] - frames["onset"]).mean(axis=2)
    heat = cv2.applyColorMap(np.clip(diff * gain, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]

    d = np.array(record["dlib68"])
    boxes = region_boxes(d, config)
    x0, y0 = np.minimum(d.min(axis=0), boxes[:, :2].min(axis=0))
    x1, y1 = np.maximum(d.max(axis=0), boxes[:, 2:].max(axis=0))
    side = 1.1 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = PANEL_SIZE / side
    # one affine for every panel: the face square -> PANEL_SIZE x PANEL_SIZE
    affine = np.array([[scale, 0, PANEL_SIZE / 2 - scale * cx], [0, scale, PANEL_SIZE / 2 - scale * cy]])
    aus = {a for a, _, _ in record["action_units"]}
    active = [bool(aus & set(r.get("action_units", []))) for r in config.regions]
    panels = []
    for title, image in (("onset", frames["onset"]), ("apex", frames["apex"]), ("offset", frames["offset"]), ("|apex - onset|", heat)):
        panel = cv2.warpAffine(np.ascontiguousarray(image.astype(np.uint8)), affine, (PANEL_SIZE, PANEL_SIZE), flags=cv2.INTER_AREA)
        for box, hit in zip(boxes, active):
            a = np.round(affine[:, :2] @ box[:2] + affine[:, 2]).astype(int)
            b = np.round(affine[:, :2] @ box[2:] + affine[:, 2]).astype(int)
            colour = (80, 255, 80) if hit else (90, 160, 255)
            cv2.rectangle(panel, tuple(int(v) for v in a), tuple(int(v) for v in b), colour, 2 if hit else 1)
        cv2.putText(panel, title, (6, PANEL_SIZE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    width = 4 * PANEL_SIZE + 5 * _GAP
    canvas = np.full((PANEL_SIZE + _BAND, width, 3), 24, np.uint8)
    for i, panel in enumerate(panels):
        x = _GAP + i * (PANEL_SIZE + _GAP)
        canvas[_BAND - 2 : _BAND - 2 + PANEL_SIZE, x : x + PANEL_SIZE] = panel
    label = "dropped" if record["label"] is None else MEGC_CLASSES[record["label"]]
    line1 = f"{clip}  {record['emotion']} ({label})  AUs {record['au_string'] or '-'}"
    line2 = (
        f"{record['fps']} fps, frames {record['onset']}/{record['apex']}/{record['offset']} (onset/apex/offset), "
        f"amplitude {record['amplitude']:.1f} px, blink {'yes' if record['blink'] else 'no'}, diff x{gain:g}; "
        "green = regions of its AUs"
    )
    cv2.putText(canvas, line1, (_GAP, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(canvas, line2, (_GAP, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas[:, :, ::-1]):
        raise MieInputError(f"Cannot write the picture {path}; check that its folder is writable.")
    return path


# --------------------------------------------------------------------------- command
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_mie.synthetic",
        description=(
            "Write synthetic micro-expression clips (public-domain faces, action-unit deformations) in the "
            "layouts of SMIC, CASME II and SAMM, with their workbooks and a MEGC 2019-style list."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite/--resume)")
    parser.add_argument("--profile", choices=sorted(SYNTHETIC_PROFILES), default="tiny", help="tiny: seconds, for tests; megc2019: 442 clips like the composite")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same bytes (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: 1 for tiny, all cores otherwise)")
    parser.add_argument(
        "--head-motion",
        action="store_true",
        help=(
            "rigid head motion while the expression plays: rotation up to 10 deg, translation up to 30 px "
            "per 300 px face, scale up to 8 %%"
        ),
    )
    parser.add_argument(
        "--style",
        choices=STYLES,
        default="train",
        help=(
            "heldout: another deformation kernel, time course and stronger compression, for evaluating "
            "transfer (never train on it; use another --seed too)"
        ),
    )
    parser.add_argument(
        "--variety",
        choices=VARIETIES,
        default="base",
        help=(
            "wide: stronger identity transforms (shape, tone curve, skin texture, JPEG quality 70-95 per "
            "subject) and every clip's amplitude times 0.6-3, for training that transfers"
        ),
    )
    parser.add_argument("--picture", default=None, help="also draw one clip (onset, apex, offset, difference) into this PNG")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace a previous synthetic dataset in --out")
    group.add_argument("--resume", action="store_true", help="finish an interrupted run: keep complete clips, render the rest")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plan = plan_synthetic_dataset(args.profile, args.seed, args.head_motion, args.style, args.variety)
    listed = sum(c.megc_row() is not None for c in plan.clips)
    workers = args.workers or default_workers(plan)
    motion = (", head motion" if args.head_motion else "") + (", held-out style" if args.style == "heldout" else "")
    motion += ", wide variety" if args.variety == "wide" else ""
    print(
        f"mie synthetic: profile {args.profile}, seed {args.seed}{motion}: {len(plan.clips)} clips ({listed} in the MEGC list), "
        f"{len(plan.subjects)} subjects, {plan.total_frames} frames -> {args.out} ({workers} workers)",
        flush=True,
    )
    from tqdm import tqdm

    bar = tqdm(total=len(plan.clips), unit="clip", dynamic_ncols=True)

    def progress(clip, done, total):
        bar.n = done
        bar.set_postfix_str(clip.key, refresh=False)
        bar.refresh()

    try:
        result = generate_synthetic_dataset(
            args.out, args.profile, args.seed, workers=workers, overwrite=args.overwrite, resume=args.resume,
            head_motion=args.head_motion, progress=progress, style=args.style, variety=args.variety,
        )
    except MieInputError as err:
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: complete clips are kept; run again with --resume to finish {args.out}", file=sys.stderr)
        return 130
    bar.close()
    print(
        f"done in {result.seconds:.1f} s: {result.clips_written} clips rendered, {result.clips_skipped} kept, "
        f"{result.frames} frames, {result.bytes / 1e6:.1f} MB in {result.root}"
    )
    for database, root in result.roots.items():
        print(f"  {database:6s} {root}")
    print(f"  list   {result.ground_truth} ({result.listed} clips)\n  truth  {result.manifest}")
    if args.picture:
        print(f"  picture {draw_synthetic_clip(result.root, args.picture)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
