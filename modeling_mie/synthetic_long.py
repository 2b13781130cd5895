"""Synthetic long videos in the CAS(ME)^2 and SAMM Long Videos layouts, with exact spotting ground truth.

Spotting (finding micro- and macro-expressions in long recordings, ../shared/SPOTTING.md) has to
be testable and measurable without the licensed long-video databases, so this module renders long
videos of the clip generator's synthetic subjects (`modeling_mie.synthetic`: the same two
public-domain photos, identity transforms, action-unit fields, styles and varieties) and writes
them exactly as CAS(ME)^2 and SAMM Long Videos lay out their frames and workbooks.

What a video shows
------------------
One subject's face for the whole video (its identity, tone, sensor noise and illumination flicker
as the clip generator draws them), and on it, at known frames and never overlapping:

- micro-expressions: onset to offset 0.2-0.5 s, the MEGC class AU sets of the clip generator
  (`_expression_for`), apex amplitude 2.5-5.5 px per 300 px of face as its clips;
- macro-expressions: 0.6-4 s, the same AU sets at 6-14 px per 300 px of face, half of them holding
  their apex for 20-50 % of the expression;
- brief head turns, nods and tilts, 1-2 a minute, 0.5-1.5 s each: a rigid move out and back of up
  to 40 px per 300 px of face or 15 deg, not annotated (a spotter should ignore them);

with gaps of at least 1 s between them and none in the first and last second. On top: a slow
rigid head motion over the whole video (the clip generator's `--head-motion` peaks, +-10 deg,
30 px per 300 px of face, +-8 % scale, on waves of 0.02-0.2 Hz instead of 0.5-3 Hz) and natural
blinks every 2-6 s, 0.1-0.4 s long, 80-100 % closure (the clip generator's AU45 field), kept at
least 0.5 s away from every expression so that a blink never merges with one. Per layout one
video (the first subject's last one; the last subject's first when subjects have one video) shows
blinks and head motion only: no expression, no workbook row, as CAS(ME)^2's s15/0508 has none.
Spotters must find nothing in it. `blinks_only=True` (`--blinks-only`) makes every video so.

Time course of an expression: 0 at the onset frame, a rise to 1 at the apex (the clip generator's
raised cosine, or in the held-out style its linear rise), the hold if any, and a fall back to 0 at
the offset frame (raised cosine; held-out: its exponential decay, 1.8 % left at the offset and
nothing after). So every frame strictly between onset and offset moves, and the face is neutral
again at the offset. A blink's `start`..`end` are exactly the frames whose lids are not fully open.

Styles and varieties are the clip generator's: `style="heldout"` uses the Wendland kernel, the
other time course and JPEG quality 55; `variety="wide"` gives every subject its stronger shape warp,
tone curve, skin texture and JPEG quality, and every micro-expression an amplitude factor of 0.6-3
(macro-expressions 0.7-1.5: they are already 2-3x larger, and 3x would fold the backward warp).

Sizes: CAS(ME)^2 frames are 640x480 RGB at 30 fps as recorded, the face 200 px wide. SAMM frames
are 8-bit grey at 200 fps; the real ones are 2040x1088, rendered by default at a third, 680x363
(`samm_size`, `--samm-size WxH`; 9x less disk and time), the face 600 px wide at full size and
scaled with the frame. Default lengths: CAS 30-60 s, SAMM 10-20 s (real SAMM videos average
35.5 s; `seconds`, `--seconds` sets any length: a video is rendered one frame at a time and never
held in memory, so a 40-minute video only costs disk and time).

Layout written under the output folder::

    CASME_sq/rawpic/s15/15_0101disgustingteeth/img001.jpg ... img1350.jpg
    CASME_sq/CAS(ME)^2code_final.xlsx       sheets CASFEcode_final, naming rule1, naming rule2
    SAMMLV/SAMM_longvideos/006_1/006_1_0001.jpg ...
    SAMMLV/SAMM_LongVideos_V2_Release.xlsx   sheet FACS_Movement_Only, header on row 10
    SAMM/SAMM_20181215_Micro_FACS_Codes_v2.xlsx   the emotions of the micro rows (see below)
    synthetic_long_manifest.json             every video's exact truth, 0-based frame indices

SAMM Long Videos has no emotion column; MEAN (genbing99/MEAN_Spot-then-recognize, load_excel.py)
merges `SAMM/SAMM_20181215_Micro_FACS_Codes_v2.xlsx` (first sheet, one header row, columns Subject,
Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Emotion, Classes,
Notes) on (Filename, Type). The synthetic one has that form and, like the real one, only the
micro rows; the manifest has every expression's emotion. Its sheet name is not known (MEAN reads
the first sheet): it is called `MICRO_ONLY` here.

Frame numbers in names and workbooks are 1-based (img001.jpg is frame 1, index 0); the manifest
gives 0-based indices (`onset` = workbook onset - 1). Everything random comes from
`SeedSequence(seed, ...)` keyed by layout, subject and video, so adding a subject or video never
changes another, and the same settings write the same bytes. A subject of a layout has the same
identity as the clip generator's subject of the same name and database (SAMM's 006 is SAMM-LV's
006, as the real SAMM clips were cut from the same recordings).

Command::

    python -m modeling_mie.synthetic_long --out DIR [--layout casme_sq samm_lv] [--subjects N]
        [--videos-per-subject N] [--seconds S [S_MAX]] [--seed N] [--style train|heldout]
        [--variety base|wide] [--workers N] [--samm-size WxH] [--casme-size WxH] [--blinks-only]
        [--no-blink-video] [--no-head-motion] [--overwrite]

Running it again on the same folder with the same settings skips the finished videos (a video is
finished only when its marker under `.mie_synthetic_long/done/` is written, after its last frame)
and redoes any other.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import MieInputError
from .synthetic import (
    _WORKER_FACES,
    _encode,
    _init_worker,
    _save_workbook,
    load_base_faces,
)
from .synthetic_faces import (
    BaseFace,
)
from .synthetic_long_plan import (
    _DATABASE,
    CASME_SQ_SIZE,
    CASME_SQ_SUBJECTS,
    CASME_SQ_VIDEOS,
    LAYOUT_FPS,
    LAYOUT_ROOTS,
    LAYOUTS,
    SAMM_LV_SIZE,
    LongVideoPlan,
    PlannedVideo,
    _frames,
    long_video_landmarks,
    plan_long_videos,
)
from .synthetic_plan import (
    STYLES,
    VARIETIES,
    _objective_class,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MANIFEST_FILE = "synthetic_long_manifest.json"
_STATE_DIR = ".mie_synthetic_long"  # settings.json and done/<video>.json, outside the layouts

CASME_SQ_WORKBOOK = "CAS(ME)^2code_final.xlsx"
SAMM_LV_WORKBOOK = "SAMM_LongVideos_V2_Release.xlsx"
SAMM_EMOTION_WORKBOOK = "SAMM/SAMM_20181215_Micro_FACS_Codes_v2.xlsx"  # relative to the output folder


# --------------------------------------------------------------------------- workbooks
def casme_sq_rows(plan: LongVideoPlan) -> list[list]:
    """Rows of `CASFEcode_final` (no header): subject index, clip, onset, apex, offset (1-based
    frame numbers), AUs (int, or text "4+L10"), emotion, type, self-report."""
    order = {code: k for k, (code, _, _) in enumerate(CASME_SQ_VIDEOS)}
    rows = []
    for video in sorted((v for v in plan.videos if v.layout == "casme_sq"), key=lambda v: (v.subject_index, order[v.code])):
        for e in video.expressions:
            au = int(e.au_string) if e.au_string.isdigit() else e.au_string
            rows.append([video.subject_index, e.name, e.onset + 1, e.apex + 1, e.offset + 1, au, e.megc_class,
                         f"{e.kind}-expression", e.emotion])
    return rows


def samm_lv_rows(plan: LongVideoPlan) -> list[list]:
    """Rows of `FACS_Movement_Only` below its header: Subject (text), Filename, Inducement Code,
    Onset, Apex, Offset (1-based frame numbers), Duration (= Offset - Onset + 1), Type, Action Units, Notes."""
    rows = []
    for video in sorted((v for v in plan.videos if v.layout == "samm_lv"), key=lambda v: (v.subject, v.inducement)):
        for e in video.expressions:
            rows.append([video.subject, e.name, video.inducement, e.onset + 1, e.apex + 1, e.offset + 1,
                         e.offset - e.onset + 1, "Macro" if e.kind == "macro" else "Micro - 1/2", e.au_string, None])
    return rows


def samm_emotion_rows(plan: LongVideoPlan) -> list[list]:
    """Rows of the SAMM emotions workbook (micro rows only, as the real one): `samm_lv_rows`' first
    nine columns, then Emotion, Classes (objective class 1-7), Notes."""
    rows = []
    for video in sorted((v for v in plan.videos if v.layout == "samm_lv"), key=lambda v: (v.subject, v.inducement)):
        for e in video.expressions:
            if e.kind == "micro":
                rows.append([video.subject, e.name, video.inducement, e.onset + 1, e.apex + 1, e.offset + 1,
                             e.offset - e.onset + 1, "Micro - 1/2", e.au_string, e.emotion,
                             _objective_class(e.action_units, e.label), None])
    return rows


def _write_casme_sq_workbook(path: Path, rows: list[list]) -> None:
    """`CAS(ME)^2code_final.xlsx`: `CASFEcode_final` (rows, no header), `naming rule1` (row-aligned:
    subject number, folder, index) and `naming rule2` (code as text, video name), in that order."""
    import openpyxl

    book = openpyxl.Workbook()
    main = book.active
    main.title = "CASFEcode_final"
    rule1 = book.create_sheet("naming rule1")
    rule2 = book.create_sheet("naming rule2")
    for row in rows:
        main.append(row)
        folder = CASME_SQ_SUBJECTS[row[0] - 1]
        rule1.append([int(folder[1:]), folder, row[0]])
    for code, name, _ in CASME_SQ_VIDEOS:
        rule2.append([code, name])
        rule2.cell(rule2.max_row, 1).number_format = "@"  # text, as the real sheet: "0101" keeps its zero
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_workbook(book, path)


SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units", "Notes"]
_SAMM_LV_NOTES = (
    "SAMM Long Videos - FACS coding of the macro- and micro-movements",
    "SYNTHETIC COPY written by mie (modeling_mie.synthetic_long): public-domain faces, not the SAMM database",
    "Symbol key:",
    "L / R: left / right side of the face; A-E: intensity",
    "Macro: macro-movement; Micro - 1/2: micro-movement, under half a second",
    "Onset / Apex / Offset: frame numbers of the video (the number in its frame names)",
    "Duration: Offset - Onset + 1, in frames at 200 fps",
    None,
    "Subjects with Apex Frame not annotated were labelled as -1",
)


def _write_samm_lv_workbook(path: Path, rows: list[list]) -> None:
    """`SAMM_LongVideos_V2_Release.xlsx`, sheet `FACS_Movement_Only`: rows 1-9 title, symbol key and
    the apex note, row 10 the header, the movements from row 11."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "FACS_Movement_Only"
    for note in _SAMM_LV_NOTES:
        sheet.append([note])
    sheet.append(SAMM_LV_HEADER)
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_workbook(book, path)


SAMM_EMOTION_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                       "Action Units", "Emotion", "Classes", "Notes"]


def _write_samm_emotion_workbook(path: Path, rows: list[list]) -> None:
    """The emotions workbook MEAN merges on (Filename, Type): one header row, then `samm_emotion_rows`."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "MICRO_ONLY"
    sheet.append(SAMM_EMOTION_HEADER)
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_workbook(book, path)


# --------------------------------------------------------------------------- writing
def _video_record(plan: LongVideoPlan, video: PlannedVideo) -> dict:
    record = dataclasses.asdict(video)
    subject = plan.subject_of(video)
    record.update(
        key=video.key, path=video.relative_dir(), frame_pattern=video.frame_pattern, first_frame_number=1,
        seed=plan.seed, variety=plan.variety, noise_sigma=subject.noise_sigma, flicker_gain=subject.flicker,
        jpeg_quality=55 if video.style == "heldout" else subject.jpeg_quality or {"casme_sq": 90, "samm_lv": 85}[video.layout],
    )
    return record


def _digest(plan: LongVideoPlan, video: PlannedVideo) -> str:
    """What decides a video's bytes: its plan, its subject and the generator version."""
    words = {"video": dataclasses.asdict(video), "subject": dataclasses.asdict(plan.subject_of(video)), "version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(words, sort_keys=True, default=list).encode()).hexdigest()


def _marker(out: Path, video: PlannedVideo) -> Path:
    return out / _STATE_DIR / "done" / (video.key.replace("/", "__") + ".json")


def _video_done(out: Path, plan: LongVideoPlan, video: PlannedVideo) -> bool:
    marker = _marker(out, video)
    folder = out / video.relative_dir()
    if not marker.is_file() or not folder.is_dir():
        return False
    try:
        done = json.loads(marker.read_text())
    except ValueError:
        return False
    return done.get("digest") == _digest(plan, video) and sum(1 for _ in os.scandir(folder)) == video.num_frames


def _write_video(task: tuple) -> tuple[str, float]:
    """Render one video frame by frame into its folder, then write its marker: a folder without a
    marker (a killed run) is deleted and redone by the next run."""
    out, plan, video = task
    out = Path(out)
    started = time.perf_counter()
    subject = plan.subject_of(video)
    folder = out / video.relative_dir()
    marker = _marker(out, video)
    marker.unlink(missing_ok=True)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    database = _DATABASE[video.layout]
    for t, frame in enumerate(_frames(video, subject, _WORKER_FACES[subject.face], 0, video.num_frames, True, True, True, True)):
        (folder / video.frame_name(t)).write_bytes(_encode(frame, database, video.style, subject.jpeg_quality))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"key": video.key, "frames": video.num_frames, "digest": _digest(plan, video)}) + "\n")
    return video.key, time.perf_counter() - started


def _prepare_output(out: Path, plan: LongVideoPlan, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MieInputError(f"The output {out} is a file; pass a folder (it is created when missing).")
    settings_file = out / _STATE_DIR / "settings.json"
    now = {"generator": "modeling_mie.synthetic_long", "version": GENERATOR_VERSION, **plan.settings}
    if out.is_dir() and any(out.iterdir()):
        if not settings_file.is_file():
            raise MieInputError(
                f"The output folder {out} is not empty and holds no {_STATE_DIR}/settings.json, so it was not "
                "written by mie's long-video generator. Pick an empty or new folder."
            )
        if overwrite:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            previous = json.loads(settings_file.read_text())
            if previous != now:
                changed = ", ".join(f"{k} {previous.get(k)!r} -> {v!r}" for k, v in now.items() if previous.get(k) != v)
                raise MieInputError(
                    f"Cannot resume in {out}: it was written with other settings ({changed}). Use the same settings "
                    "to finish it, --overwrite (overwrite=True) to start again, or another folder."
                )
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(now, sort_keys=True) + "\n")


def default_workers(plan: LongVideoPlan) -> int:
    """1 process for small plans (starting a process costs seconds of imports), else every core."""
    return 1 if plan.total_frames < 5000 or len(plan.videos) < 2 else min(len(plan.videos), os.cpu_count() or 1)


def generate_long_videos(
    out,
    plan: LongVideoPlan,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    faces: dict[str, BaseFace] | None = None,
    progress: Callable[[PlannedVideo, int, int, float | None], None] | None = None,
) -> Path:
    """Render a planned set of long videos into `out` in the CAS(ME)^2 / SAMM-LV layouts.

    Args:
        out: output folder; created when missing. A folder this function wrote with the same
            settings is resumed: finished videos are kept, the others rendered. Other settings
            are refused unless `overwrite` (only a folder this function wrote is ever emptied).
        plan: from `plan_long_videos`.
        workers: processes, one video each; None: 1 for small plans, else every core. The output
            does not depend on it.
        faces: from `load_base_faces` (detected here when None).
        progress: called after each video as progress(video, videos done, videos total, seconds
            it took or None when it was finished before).

    Returns:
        The manifest's path, `out / MANIFEST_FILE`.

    Raises:
        MieInputError: the folder cannot be used (the message says why and what to do), or the
            face landmarker model is missing.
    """
    out = Path(out).expanduser().resolve()
    _prepare_output(out, plan, overwrite)
    faces = faces or load_base_faces()
    todo = [v for v in plan.videos if not _video_done(out, plan, v)]
    todo_keys = {v.key for v in todo}
    done = 0
    for video in plan.videos:
        if video.key not in todo_keys:
            done += 1
            if progress is not None:
                progress(video, done, len(plan.videos), None)
    if done:
        logger.info("Resuming in %s: %d videos finished, %d to render.", out, done, len(todo))
    workers = default_workers(plan) if workers is None else workers
    tasks = [(str(out), plan, v) for v in sorted(todo, key=lambda v: -v.num_frames * v.frame_size[0] * v.frame_size[1])]
    by_key = {v.key: v for v in plan.videos}
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(faces)
        results, pool = map(_write_video, tasks), None
    else:
        import multiprocessing

        # spawn, not fork: the parent may hold MediaPipe's and torch's threads (as in `synthetic`)
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), _init_worker, (faces, True))
        results = pool.imap_unordered(_write_video, tasks, chunksize=1)
    try:
        for key, seconds in results:
            done += 1
            if progress is not None:
                progress(by_key[key], done, len(plan.videos), seconds)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    layouts = plan.settings["layouts"]
    if "casme_sq" in layouts:
        _write_casme_sq_workbook(out / LAYOUT_ROOTS["casme_sq"] / CASME_SQ_WORKBOOK, casme_sq_rows(plan))
    if "samm_lv" in layouts:
        _write_samm_lv_workbook(out / LAYOUT_ROOTS["samm_lv"] / SAMM_LV_WORKBOOK, samm_lv_rows(plan))
        _write_samm_emotion_workbook(out / SAMM_EMOTION_WORKBOOK, samm_emotion_rows(plan))
    manifest = out / MANIFEST_FILE
    _write_manifest(manifest, plan, faces)
    return manifest


def _write_manifest(path: Path, plan: LongVideoPlan, faces: dict[str, BaseFace]) -> None:
    videos = []
    for video in plan.videos:
        record = _video_record(plan, video)
        record["dlib68"] = long_video_landmarks(plan, video, faces).tolist()
        videos.append(record)
    workbooks = {}
    if "casme_sq" in plan.settings["layouts"]:
        workbooks["casme_sq"] = f"{LAYOUT_ROOTS['casme_sq']}/{CASME_SQ_WORKBOOK}"
    if "samm_lv" in plan.settings["layouts"]:
        workbooks["samm_lv"] = f"{LAYOUT_ROOTS['samm_lv']}/{SAMM_LV_WORKBOOK}"
        workbooks["samm_lv_emotions"] = SAMM_EMOTION_WORKBOOK
    document = {
        "generator": "modeling_mie.synthetic_long",
        "version": GENERATOR_VERSION,
        "seed": plan.seed,
        "style": plan.style,
        "variety": plan.variety,
        "settings": plan.settings,
        "indices": "0-based frame indices; the frame names and workbooks number frames from 1 (index + 1)",
        "roots": {layout: LAYOUT_ROOTS[layout] for layout in plan.settings["layouts"]},
        "workbooks": workbooks,
        "fps": {layout: LAYOUT_FPS[layout] for layout in plan.settings["layouts"]},
        "subjects": [dict(dataclasses.asdict(s), key=k) for k, s in plan.subjects.items()],
        "videos": videos,
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_long_manifest(root) -> dict:
    """The manifest of a generated folder: `settings`, `subjects` and `videos` (each with its events).

    Raises:
        MieInputError: no manifest (not a finished run of `generate_long_videos`).
    """
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise MieInputError(f"{path} does not exist: {root} is not a finished set of synthetic long videos (generate it).")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- command
def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 680x363, got {text!r}") from None
    return width, height


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_mie.synthetic_long",
        description=(
            "Write synthetic long videos (public-domain faces with micro- and macro-expressions, blinks and head "
            "motion at known frames) in the layouts of CAS(ME)^2 and SAMM Long Videos, with their workbooks and "
            "a JSON manifest of the exact ground truth. Running it again with the same settings finishes the "
            "videos an earlier run left unfinished."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (created; must be empty, ours with the same settings, or --overwrite)")
    parser.add_argument("--layout", nargs="+", choices=LAYOUTS, default=list(LAYOUTS), help="layouts to write (default both)")
    parser.add_argument("--subjects", type=int, default=2, help="subjects per layout, the real ones in order (default 2)")
    parser.add_argument("--videos-per-subject", type=int, default=2, help="videos per subject (default 2; CAS(ME)^2 at most 9, SAMM 7)")
    parser.add_argument(
        "--seconds", type=float, nargs="+", default=None, metavar="S",
        help="length of every video, or a min and max to draw it from (default CAS 30-60 s, SAMM 10-20 s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same settings write the same bytes (default 0)")
    parser.add_argument("--style", choices=STYLES, default="train", help="heldout: the clip generator's held-out drawing (never train on it)")
    parser.add_argument("--variety", choices=VARIETIES, default="base", help="wide: stronger identities and amplitude factors")
    parser.add_argument("--workers", type=int, default=None, help="processes, one video each (default: 1 for small runs, else all cores)")
    parser.add_argument(
        "--samm-size", type=_size, default=SAMM_LV_SIZE, metavar="WxH",
        help="SAMM frame size (default 680x363, a third of the real 2040x1088: 9x less disk and time)",
    )
    parser.add_argument("--casme-size", type=_size, default=CASME_SQ_SIZE, metavar="WxH", help="CAS(ME)^2 frame size (default the real 640x480)")
    parser.add_argument("--blinks-only", action="store_true", help="every video shows blinks and head motion only, no expression")
    parser.add_argument("--no-blink-video", action="store_true", help="no blinks-only video per layout (default: one)")
    parser.add_argument("--no-head-motion", action="store_true", help="keep every head still (no slow motion, no turns)")
    parser.add_argument("--overwrite", action="store_true", help="empty a folder written earlier by this command and start again")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.seconds is not None and len(args.seconds) > 2:
        parser.error(f"--seconds takes a length or a min and max, got {len(args.seconds)} values")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    seconds = None if args.seconds is None else (args.seconds[0] if len(args.seconds) == 1 else tuple(args.seconds))
    try:
        plan = plan_long_videos(
            args.layout, args.subjects, args.videos_per_subject, seconds, args.seed, args.style, args.variety,
            casme_size=args.casme_size, samm_size=args.samm_size, head_motion=not args.no_head_motion,
            blinks_only=args.blinks_only, blink_video=not args.no_blink_video,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    workers = args.workers or default_workers(plan)
    events = sum(len(v.expressions) for v in plan.videos)
    print(
        f"mie synthetic long videos: {', '.join(args.layout)}, seed {args.seed}, style {args.style}, variety "
        f"{args.variety}: {len(plan.videos)} videos of {len(plan.subjects)} subjects, {events} expressions, "
        f"{plan.total_frames} frames -> {args.out} ({workers} workers)",
        flush=True,
    )

    def progress(video: PlannedVideo, done: int, total: int, seconds: float | None) -> None:
        micro = sum(e.kind == "micro" for e in video.expressions)
        what = f"{micro} micro, {len(video.expressions) - micro} macro, {len(video.blinks)} blinks"
        if seconds is None:
            print(f"[{done}/{total}] {video.key}: finished earlier, kept", flush=True)
        else:
            print(
                f"[{done}/{total}] {video.key}: {video.num_frames} frames ({what}) in {seconds:.1f} s "
                f"({video.num_frames / max(seconds, 1e-9):.1f} frames/s)",
                flush=True,
            )

    started = time.perf_counter()
    try:
        manifest = generate_long_videos(args.out, plan, workers=workers, overwrite=args.overwrite, progress=progress)
    except MieInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished videos are kept; run the same command again to finish {args.out}", file=sys.stderr)
        return 130
    root = manifest.parent
    print(f"done in {time.perf_counter() - started:.1f} s: {plan.total_frames} frames in {root}")
    for layout in args.layout:
        print(f"  {layout:8s} {root / LAYOUT_ROOTS[layout]}")
    print(f"  truth    {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
