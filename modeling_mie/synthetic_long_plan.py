"""Long synthetic videos, planned and rendered: what happens in each video, its time courses and
its frames (the clip generator's faces, fields and courses on a whole recording).

`modeling_mie.synthetic_long` writes the plans as CAS(ME)^2 and SAMM Long Videos lay them out, and
its docstring says what a video shows; this module is what it writes from: `plan_long_videos` (pure,
no pixels), the plan records (`LongVideoPlan`, `PlannedVideo`, `LongExpression`, `LongBlink`,
`LongHeadTurn`), each event's course (`expression_strength`, `blink_strength`, `head_pose_course`)
and the frames (`render_long_video`, `long_video_landmarks`).
"""


from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .synthetic_faces import (
    _WRINKLE_GAIN,
    BaseFace,
    _blink_field,
    _identity_geometry,
    _render_base,
    blink_course,
    expression_course,
    expression_field,
    load_base_faces,
)
from .synthetic_plan import (
    _NEGATIVE_EMOTIONS,
    _WIDE_AMPLITUDE,
    MEGC_CLASSES,
    STYLES,
    VARIETIES,
    SyntheticClip,
    SyntheticSubject,
    _au_string,
    _expression_for,
    _pick,
    _plan_head_motion,
    _plan_subject,
    _rng,
    _u,
    _widen,
)

LAYOUTS = ("casme_sq", "samm_lv")
LAYOUT_ROOTS = {"casme_sq": "CASME_sq", "samm_lv": "SAMMLV"}
LAYOUT_FPS = {"casme_sq": 30, "samm_lv": 200}
# The clip generator's database each layout shares its identities, grey-ness and JPEG quality with.
_DATABASE = {"casme_sq": "casme2", "samm_lv": "samm"}
CASME_SQ_SIZE = (640, 480)
SAMM_LV_REAL_SIZE = (2040, 1088)
SAMM_LV_SIZE = (680, 363)  # a third of the real size, aspect kept
_FACE_FRACTION = {"casme_sq": 200 / 640, "samm_lv": 600 / 2040}  # face width / frame width
_NOISE = {"casme_sq": (0.8, 1.8), "samm_lv": (0.8, 1.6)}  # sensor noise sigma, grey levels
_DEFAULT_SECONDS = {"casme_sq": (30.0, 60.0), "samm_lv": (10.0, 20.0)}


# CAS(ME)^2 subject index 1-22 -> folder (`naming rule1`).
CASME_SQ_SUBJECTS = ("s15", "s16") + tuple(f"s{n}" for n in range(19, 28)) + tuple(f"s{n}" for n in range(29, 39)) + ("s40",)
# The nine CAS(ME)^2 videos: code (`naming rule2`, text), video name, folder suffix (sic).
CASME_SQ_VIDEOS = (
    ("0101", "disgust1", "disgustingteeth"),
    ("0102", "disgust2", "eatingworms"),
    ("0401", "anger1", "girlcrashing"),
    ("0402", "anger2", "beatingpregnantwoman"),
    ("0502", "happy1", "funnyerrors"),
    ("0503", "happy2", "unnyfarting"),
    ("0505", "happy3", "funnyinnovations"),
    ("0507", "happy4", "climbingthewall"),
    ("0508", "happy5", "funnydunkey"),
)
# The 30 annotated SAMM-LV subjects (027 and 029 have no rows); videos NNN_1..NNN_7 by inducement.
SAMM_LV_SUBJECTS = tuple(f"{n:03d}" for n in range(6, 38) if n not in (27, 29))
SAMM_LV_MAX_VIDEOS = 7

# Timing, seconds. MEGC: micro < 0.5 s; macro > 0.5 s up to 4 s (SPOTTING.md section 4).
MICRO_SECONDS = (0.2, 0.5)
MACRO_SECONDS = (0.6, 4.0)
MICRO_PER_MINUTE = 6.0
MACRO_PER_MINUTE = 4.0
TURN_SECONDS = (0.5, 1.5)
TURNS_PER_MINUTE = (1.0, 2.0)
BLINK_SECONDS = (0.1, 0.4)
BLINK_INTERVAL = (2.0, 6.0)
BLINK_CLOSURE = (0.8, 1.0)
_EDGE_SECONDS = 1.0  # no event in the first and last second
_GAP_SECONDS = 1.0  # least time between two events
_BLINK_MARGIN = 0.5  # least time between a blink and an expression
# Apex amplitude, px per 300 px of face: micro as the clip generator's clips, macro 2-3x that.
_MICRO_AMPLITUDE = (2.5, 5.5)
_MACRO_AMPLITUDE = (6.0, 14.0)
_WIDE_MACRO_AMPLITUDE = (0.7, 1.5)
_MACRO_HOLD = (0.5, 0.2, 0.5)  # probability of a hold, its share of the expression (min, max)
# Slow head motion: the clip generator's peaks on slower waves (Hz), over the whole video.
_SLOW_FREQUENCIES = (0.02, 0.2)
# Brief head movements: kind -> (|rotation| deg, |tx|, |ty| px per 300 px of face, scale change) ranges.
_TURN_KINDS = {
    "turn": ((1.0, 4.0), (15.0, 40.0), (0.0, 5.0), (-0.02, 0.02)),
    "nod": ((0.0, 2.0), (0.0, 5.0), (10.0, 30.0), (-0.04, -0.01)),
    "tilt": ((6.0, 15.0), (0.0, 8.0), (0.0, 5.0), (0.0, 0.0)),
}
# Raw emotions of negative expressions: CAS(ME)^2's self-reports, SAMM's estimated emotions.
_LONG_NEGATIVE_EMOTIONS = {
    "casme_sq": (("disgust", 0.4), ("anger", 0.25), ("sadness", 0.15), ("fear", 0.1), ("contempt", 0.1)),
    "samm_lv": _NEGATIVE_EMOTIONS["samm"],
}
_LONG_POSITIVE = {"casme_sq": "happy", "samm_lv": "Happiness"}
_LONG_SURPRISE = {"casme_sq": "surprise", "samm_lv": "Surprise"}
_CHUNK = 256  # frames whose head poses are computed at once


# --------------------------------------------------------------------------- plan records
@dataclass
class LongExpression:
    """One expression of a long video. Frame indices are 0-based and inclusive.

    Attributes:
        name: the workbook's clip name: CAS(ME)^2 `disgust1_2`, SAMM `006_1_2` (1-based, in time order).
        kind: "micro" or "macro".
        onset, apex, offset: frame indices; the movement is 0 at onset and offset, 1 at apex.
        hold: frames after the apex that stay at the apex (macro-expressions only).
        label, megc_class: MEGC class 0/1/2 and its name (negative, positive, surprise).
        emotion: the raw emotion (CAS(ME)^2 self-report "disgust", SAMM "Anger").
        action_units: [(AU, side "L"/"R"/"", intensity)]; au_string: as the workbook writes them.
        amplitude: px of an AU at intensity 1 at the apex (`synthetic_faces.expression_field`).
    """

    name: str
    kind: str
    onset: int
    apex: int
    offset: int
    hold: int
    label: int
    megc_class: str
    emotion: str
    action_units: list
    au_string: str
    amplitude: float

    @property
    def num_frames(self) -> int:
        return self.offset - self.onset + 1


@dataclass
class LongBlink:
    """One blink: frames `start`..`end` (0-based, inclusive) have the lids not fully open; they are
    closed the most (`closure` of the eye opening) at `start + closing - 1`."""

    start: int
    end: int
    closing: int
    closure: float


@dataclass
class LongHeadTurn:
    """A brief rigid head movement out and back over `start`..`end`, at its peak in the middle:
    rotation (deg), tx, ty (px) and scale change (fraction) about the face centre."""

    start: int
    end: int
    kind: str
    rotation_deg: float
    tx: float
    ty: float
    scale: float


@dataclass
class PlannedVideo:
    """One planned long video: its names on disk, its events and its nuisances.

    Attributes:
        layout: "casme_sq" or "samm_lv"; subject: its folder ("s15", "006"); subject_index: the
            CAS(ME)^2 workbook's subject index 1-22 (SAMM: the subject number).
        video: the folder name ("15_0101disgustingteeth", "006_1"); video_name: CAS(ME)^2's name
            of the video ("disgust1"), SAMM the folder; code: CAS(ME)^2's code ("0101");
            inducement: SAMM's inducement code (the x of 006_x).
        fps, num_frames, frame_size (w, h) px, grey: the recording.
        expressions, blinks, turns: the events, in time order.
        head_motion: the slow rigid motion, (rotation deg, tx px, ty px, scale) each
            (peak, f1 Hz, f2 Hz, phase1, phase2) as `synthetic_plan.SyntheticClip.head_motion`; None: still.
        flicker: (frequency Hz, phase); jitter: (dx px, dy px, brightness gain) of the session.
        noise_seed: frame t's noise comes from `default_rng([noise_seed, t])`, so any frame
            range renders alone.
    """

    layout: str
    subject: str
    subject_index: int
    video: str
    video_name: str
    code: str
    inducement: int
    fps: int
    num_frames: int
    frame_size: tuple[int, int]
    grey: bool
    expressions: list[LongExpression]
    blinks: list[LongBlink]
    turns: list[LongHeadTurn]
    head_motion: tuple | None
    flicker: tuple[float, float]
    jitter: tuple[float, float, float]
    noise_seed: int
    style: str = "train"
    blinks_only: bool = False

    @property
    def key(self) -> str:
        return f"{self.layout}/{self.subject}/{self.video}"

    @property
    def frame_pattern(self) -> str:
        """printf pattern of the frame names, numbered from 1: `img%03d.jpg`, `006_1_%04d.jpg`."""
        return "img%03d.jpg" if self.layout == "casme_sq" else f"{self.video}_%04d.jpg"

    def frame_name(self, index: int) -> str:
        """File name of frame `index` (0-based)."""
        return self.frame_pattern % (index + 1)

    def relative_dir(self) -> str:
        root = LAYOUT_ROOTS[self.layout]
        if self.layout == "casme_sq":
            return f"{root}/rawpic/{self.subject}/{self.video}"
        return f"{root}/SAMM_longvideos/{self.video}"


@dataclass
class LongVideoPlan:
    """Everything the settings and seed decide, before any pixel is drawn."""

    seed: int
    style: str
    variety: str
    settings: dict
    subjects: dict[str, SyntheticSubject]  # key "<layout>/<subject>"
    videos: list[PlannedVideo] = field(default_factory=list)

    def subject_of(self, video: PlannedVideo) -> SyntheticSubject:
        return self.subjects[f"{video.layout}/{video.subject}"]

    def video(self, key: str) -> PlannedVideo:
        for v in self.videos:
            if v.key == key:
                return v
        raise KeyError(f"No video {key!r} in this plan; keys look like {self.videos[0].key!r}.")

    @property
    def total_frames(self) -> int:
        return sum(v.num_frames for v in self.videos)


# --------------------------------------------------------------------------- planning
def _check_size(name: str, size) -> tuple[int, int]:
    width, height = (int(v) for v in size)
    if width < 64 or height < 48:
        raise ValueError(f"{name} must be at least 64x48 px, got {width}x{height}.")
    return width, height


def plan_long_videos(
    layouts=LAYOUTS,
    subjects: int = 2,
    videos_per_subject: int = 2,
    seconds: float | tuple[float, float] | None = None,
    seed: int = 0,
    style: str = "train",
    variety: str = "base",
    *,
    casme_size: tuple[int, int] = CASME_SQ_SIZE,
    samm_size: tuple[int, int] = SAMM_LV_SIZE,
    head_motion: bool = True,
    blinks_only: bool = False,
    blink_video: bool = True,
) -> LongVideoPlan:
    """Decide every subject and video: lengths, events, blinks, head motion, names. Pure and fast.

    Args:
        layouts: which of `LAYOUTS` ("casme_sq", "samm_lv") to plan.
        subjects: subjects per layout (CAS(ME)^2 at most 22, SAMM-LV 30), the real ones in order.
        videos_per_subject: per subject (CAS(ME)^2 at most 9, SAMM-LV 7).
        seconds: every video's length; a (min, max) pair draws it per video; None: CAS 30-60 s,
            SAMM 10-20 s. At least ~4 s (two 1 s edges, a micro-expression and a macro-expression
            with a gap); longer videos get more events (6 micro and 4 macro a minute).
        seed: everything random derives from it.
        style: "train" or "heldout" (`synthetic` module docstring).
        variety: "base" or "wide" (stronger identities; amplitude factors, module docstring).
        casme_size, samm_size: (width, height) px of the frames (real: 640x480 and 2040x1088).
        head_motion: False keeps every head still (no slow motion, no turns).
        blinks_only: every video shows blinks and head motion only.
        blink_video: one video per layout (with at least two) shows blinks and head motion only.

    Raises:
        ValueError: an unknown layout, style or variety (the message lists the allowed ones), too
            many subjects or videos, a size below 64x48, or a length too short for an expression.
    """
    layouts = tuple(layouts)
    unknown = [x for x in layouts if x not in LAYOUTS]
    if unknown or not layouts:
        raise ValueError(f"Unknown layout {unknown or layouts!r}; allowed values are {list(LAYOUTS)}.")
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}; allowed values are {list(STYLES)}.")
    if variety not in VARIETIES:
        raise ValueError(f"Unknown variety {variety!r}; allowed values are {list(VARIETIES)}.")
    sizes = {"casme_sq": _check_size("casme_size", casme_size), "samm_lv": _check_size("samm_size", samm_size)}
    limits = {"casme_sq": (len(CASME_SQ_SUBJECTS), len(CASME_SQ_VIDEOS)), "samm_lv": (len(SAMM_LV_SUBJECTS), SAMM_LV_MAX_VIDEOS)}
    for layout in layouts:
        max_subjects, max_videos = limits[layout]
        if not 1 <= subjects <= max_subjects:
            raise ValueError(f"{layout} has 1 to {max_subjects} subjects, got {subjects}.")
        if not 1 <= videos_per_subject <= max_videos:
            raise ValueError(f"{layout} has 1 to {max_videos} videos per subject, got {videos_per_subject}.")
    if seconds is not None:
        span = (float(seconds), float(seconds)) if np.isscalar(seconds) else tuple(float(s) for s in seconds)
        if len(span) != 2 or not 0 < span[0] <= span[1]:
            raise ValueError(f"seconds must be a positive length or a (min, max) pair, got {seconds!r}.")
        seconds = span
    settings = {
        "layouts": list(layouts), "subjects": int(subjects), "videos_per_subject": int(videos_per_subject),
        "seconds": None if seconds is None else list(seconds), "seed": int(seed), "style": style, "variety": variety,
        "casme_size": list(sizes["casme_sq"]), "samm_size": list(sizes["samm_lv"]), "head_motion": bool(head_motion),
        "blinks_only": bool(blinks_only), "blink_video": bool(blink_video),
    }
    plan = LongVideoPlan(int(seed), style, variety, settings, {})
    for layout in layouts:
        width, height = sizes[layout]
        spec = {"frame_size": (width, height), "face_width": _FACE_FRACTION[layout] * width, "noise": _NOISE[layout]}
        names = (CASME_SQ_SUBJECTS if layout == "casme_sq" else SAMM_LV_SUBJECTS)[:subjects]
        quiet = _blink_video_position(subjects, videos_per_subject) if blink_video else None
        for i, name in enumerate(names):
            subject = _plan_subject(_DATABASE[layout], name, i, spec, seed)
            plan.subjects[f"{layout}/{name}"] = subject
            for j in range(videos_per_subject):
                only = blinks_only or (i, j) == quiet
                plan.videos.append(_plan_video(layout, subject, i, j, seconds, seed, style, head_motion, only))
    if variety == "wide":
        _widen(plan.subjects, [], seed)  # identities only: the clip list is empty
        for video in plan.videos:
            for k, expression in enumerate(video.expressions):
                rng = _rng(seed, "long", "variety", video.key, k)
                low, high = (math.log(v) for v in (_WIDE_AMPLITUDE if expression.kind == "micro" else _WIDE_MACRO_AMPLITUDE))
                expression.amplitude = round(expression.amplitude * math.exp(_u(rng, low, high)), 3)
    return plan


def _blink_video_position(subjects: int, videos: int) -> tuple[int, int] | None:
    """(subject, video) of a layout's blinks-only video: the first subject's last video, or the
    last subject's first when subjects have one video each; none when the layout has one video."""
    if videos >= 2:
        return 0, videos - 1
    if subjects >= 2:
        return subjects - 1, 0
    return None


def _stochastic_round(x: float, rng) -> int:
    return math.floor(x + rng.random())


def _plan_video(layout, subject: SyntheticSubject, i: int, j: int, seconds, seed, style, head_motion, blinks_only) -> PlannedVideo:
    fps = LAYOUT_FPS[layout]
    name = subject.subject
    low, high = seconds or _DEFAULT_SECONDS[layout]
    length = _rng(seed, "long", "length", layout, name, j)
    num_frames = round((low if low == high else _u(length, low, high)) * fps)
    if layout == "casme_sq":
        code, video_name, suffix = CASME_SQ_VIDEOS[j]
        video, subject_index, inducement = f"{name[1:]}_{code}{suffix}", i + 1, 0
    else:
        video = f"{name}_{j + 1}"
        code, video_name, subject_index, inducement = "", video, int(name), j + 1
    expressions, turns = _plan_events(
        _rng(seed, "long", "events", layout, name, j), layout, num_frames, fps, subject.face_width / 300.0,
        video_name, not blinks_only, head_motion,
    )
    blinks = _plan_blinks(_rng(seed, "long", "blinks", layout, name, j), num_frames, fps, expressions)
    slow = (
        _plan_head_motion(_rng(seed, "long", "head", layout, name, j), subject.face_width, _SLOW_FREQUENCIES)
        if head_motion
        else None
    )
    rng = _rng(seed, "long", "session", layout, name, j)
    return PlannedVideo(
        layout=layout, subject=name, subject_index=subject_index, video=video, video_name=video_name, code=code,
        inducement=inducement, fps=fps, num_frames=num_frames, frame_size=subject.frame_size, grey=subject.grey,
        expressions=expressions, blinks=blinks, turns=turns, head_motion=slow,
        flicker=(round(100 + _u(rng, -2, 2), 3), round(_u(rng, 0, 2 * math.pi), 3)),
        jitter=(
            round(_u(rng, -0.015, 0.015) * subject.face_width, 3),
            round(_u(rng, -0.015, 0.015) * subject.face_width, 3),
            round(_u(rng, 0.98, 1.02), 4),
        ),
        noise_seed=int(rng.integers(2**31)), style=style, blinks_only=bool(blinks_only),
    )


def _frames_of(seconds_range: tuple[float, float], fps: int, rng) -> int:
    return round(_u(rng, *seconds_range) * fps)


def _plan_events(rng, layout, num_frames, fps, face_scale, video_name, with_expressions, with_turns):
    """Expressions and head turns of a video, placed in random order with random gaps (>= 1 s) in
    the video less its first and last second. A video too short for everything drops turns, then
    shortens its longest macro-expressions to 0.6 s, then drops macro- and micro-expressions."""
    seconds = num_frames / fps
    micro_max = math.floor(MICRO_SECONDS[1] * fps)  # so that (offset - onset + 1) / fps <= 0.5 s
    micro_min = max(3, math.ceil(MICRO_SECONDS[0] * fps))
    macro_min = math.floor(0.5 * fps) + 1
    items: list[list] = []  # [kind, frames]
    if with_expressions:
        for _ in range(max(1, _stochastic_round(MICRO_PER_MINUTE * seconds / 60, rng))):
            items.append(["micro", min(micro_max, max(micro_min, _frames_of(MICRO_SECONDS, fps, rng)))])
        for _ in range(max(1, _stochastic_round(MACRO_PER_MINUTE * seconds / 60, rng))):
            items.append(["macro", max(macro_min, _frames_of(MACRO_SECONDS, fps, rng))])
    if with_turns:
        for _ in range(_stochastic_round(_u(rng, *TURNS_PER_MINUTE) * seconds / 60, rng)):
            items.append(["turn", max(3, _frames_of(TURN_SECONDS, fps, rng))])
    edge, gap = round(_EDGE_SECONDS * fps), round(_GAP_SECONDS * fps)
    usable = num_frames - 2 * edge

    def need() -> int:
        return sum(n for _, n in items) + gap * max(0, len(items) - 1)

    while items and need() > usable:
        kinds = [k for k, _ in items]
        if "turn" in kinds:
            del items[len(kinds) - 1 - kinds[::-1].index("turn")]
            continue
        macros = sorted((n, x) for x, (k, n) in enumerate(items) if k == "macro")
        if macros and macros[-1][0] > macro_min:
            n, x = macros[-1]
            items[x][1] = max(macro_min, n - (need() - usable))
            continue
        if len(macros) > 1:
            del items[macros[-1][1]]
            continue
        micros = [x for x, k in enumerate(kinds) if k == "micro"]
        if len(micros) > 1:
            del items[micros[-1]]
            continue
        if macros:
            del items[macros[0][1]]
            continue
        raise ValueError(
            f"A {seconds:.2f} s video is too short for a micro-expression away from its first and last "
            f"second; make it at least {2 * _EDGE_SECONDS + MICRO_SECONDS[1]:.1f} s long."
        )
    order = rng.permutation(len(items))
    slack = max(0, usable - need())
    spare = np.floor(rng.dirichlet(np.ones(len(items) + 1)) * slack).astype(int) if items else []
    position = edge + (int(spare[0]) if len(items) else 0)
    placed = []
    for rank, x in enumerate(order):
        kind, n = items[int(x)]
        placed.append((position, kind, n))
        position += n + gap + int(spare[rank + 1])
    expressions, turns = [], []
    for start, kind, n in placed:
        if kind == "turn":
            turns.append(_plan_turn(rng, start, n, face_scale))
        else:
            expressions.append(_plan_expression(rng, layout, kind, start, n, face_scale))
    for k, e in enumerate(expressions, start=1):  # placed in time order: numbered 1, 2, ... in it
        e.name = f"{video_name}_{k}"
    return expressions, turns


def _plan_expression(rng, layout, kind, onset, n, face_scale) -> LongExpression:
    hold = 0
    if kind == "macro" and rng.random() < _MACRO_HOLD[0]:
        hold = round(n * _u(rng, *_MACRO_HOLD[1:]))
    core = n - hold  # frames of the rise and fall
    rise = _u(rng, 0.25, 0.6) if kind == "micro" else _u(rng, 0.2, 0.5)
    apex = min(max(1, round((core - 1) * rise)), core - 2)
    label = int(rng.integers(3))
    if label == 0:
        names, weights = zip(*_LONG_NEGATIVE_EMOTIONS[layout])
        emotion = names[int(rng.choice(len(names), p=np.array(weights) / sum(weights)))]
    else:
        emotion = (_LONG_POSITIVE if label == 1 else _LONG_SURPRISE)[layout]
    database = _DATABASE[layout]
    aus = _expression_for(database, label, emotion, rng)
    amplitude = _u(rng, *(_MICRO_AMPLITUDE if kind == "micro" else _MACRO_AMPLITUDE)) * face_scale
    return LongExpression(
        name="", kind=kind, onset=int(onset), apex=int(onset + apex), offset=int(onset + n - 1), hold=hold,
        label=label, megc_class=MEGC_CLASSES[label], emotion=emotion, action_units=aus,
        au_string=_au_string(database, aus, rng), amplitude=round(amplitude, 3),
    )


def _plan_turn(rng, start, n, face_scale) -> LongHeadTurn:
    kind = _pick(rng, tuple(_TURN_KINDS))
    rotation, tx, ty, scale = _TURN_KINDS[kind]

    def signed(span):
        return _u(rng, *span) * (1 if rng.random() < 0.5 else -1)

    return LongHeadTurn(
        start=int(start), end=int(start + n - 1), kind=kind, rotation_deg=round(signed(rotation), 3),
        tx=round(signed(tx) * face_scale, 3), ty=round(signed(ty) * face_scale, 3), scale=round(_u(rng, *scale), 4),
    )


def _plan_blinks(rng, num_frames: int, fps: int, expressions: list[LongExpression]) -> list[LongBlink]:
    """Blinks every 2-6 s over the whole video, each moved past any expression it would come within
    0.5 s of (spontaneous blinks do happen during expressions; here the truth stays unambiguous)."""
    margin = round(_BLINK_MARGIN * fps)
    busy = [(e.onset - margin, e.offset + margin) for e in expressions]
    blinks = []
    t = _u(rng, 0.3, 3.0) * fps
    while True:
        frames = max(3, _frames_of(BLINK_SECONDS, fps, rng))
        start = round(t)
        moved = True
        while moved:
            moved = False
            for low, high in busy:
                if start <= high and start + frames - 1 >= low:
                    start, moved = high + 1, True
        if start + frames > num_frames:
            return blinks
        closing = max(1, frames // 3)
        blinks.append(LongBlink(start, start + frames - 1, closing, round(_u(rng, *BLINK_CLOSURE), 3)))
        t = start + _u(rng, *BLINK_INTERVAL) * fps


# --------------------------------------------------------------------------- courses
def _view(video: PlannedVideo, **changes) -> SyntheticClip:
    """The video (or a piece of it) as a `SyntheticClip`, so that the clip generator's functions
    (`_render_base`, `expression_field`, `expression_course`, `blink_course`) draw it."""
    clip = SyntheticClip(
        database=_DATABASE[video.layout], subject=video.subject, clip=video.video, emotion="", label=None,
        action_units=[], au_string="", fps=video.fps, num_frames=video.num_frames, first_frame=1, frame_digits=0,
        onset_index=0, apex_index=0, offset_index=video.num_frames - 1, annotated_apex=None, amplitude=0.0,
        motion=(0.0, 0.0, 0.0, 0.0), blink=None, drift=(0.0,) * 6, flicker=video.flicker, jitter=video.jitter,
        noise_seed=video.noise_seed, style=video.style,
    )
    return dataclasses.replace(clip, **changes)


def expression_strength(video: PlannedVideo, expression: LongExpression) -> np.ndarray:
    """(offset - onset + 1,) the expression's strength from its onset to its offset: 0 at both,
    1 at the apex and through the hold; the clip generator's time course of the video's style."""
    core = expression.num_frames - expression.hold
    apex = expression.apex - expression.onset
    view = _view(video, num_frames=core, motion=(0.0, float(apex), float(core - 1), 0.0))
    course = expression_course(view)
    return np.concatenate([course[: apex + 1], np.ones(expression.hold), course[apex + 1 :]])


def blink_strength(video: PlannedVideo, blink: LongBlink) -> np.ndarray:
    """(end - start + 1,) eyelid closure of the blink, > 0 on every frame, `closure` at its most."""
    frames = blink.end - blink.start + 1
    # one open frame before the blink, then the clip generator's close-and-reopen course
    view = _view(video, num_frames=frames + 1, blink=(0, blink.closing, frames + 1 - blink.closing, blink.closure))
    return blink.closure * blink_course(view)[1:]


def _raw_wave(t: np.ndarray, f1: float, f2: float, phase1: float, phase2: float) -> np.ndarray:
    """`synthetic_faces._slow_wave` before its scaling: 0 at t = 0."""
    return np.sin(2 * np.pi * f1 * t + phase1) - math.sin(phase1) + 0.5 * (np.sin(2 * np.pi * f2 * t + phase2) - math.sin(phase2))


@functools.lru_cache(maxsize=64)
def _wave_extreme(num_frames: int, fps: float, f1: float, f2: float, phase1: float, phase2: float) -> float:
    """The signed value of largest magnitude of `_raw_wave` over the video's frames, in chunks."""
    best = 0.0
    for first in range(0, num_frames, 16384):
        wave = _raw_wave(np.arange(first, min(num_frames, first + 16384)) / fps, f1, f2, phase1, phase2)
        k = int(np.argmax(np.abs(wave)))
        if abs(wave[k]) > abs(best):
            best = float(wave[k])
    return best


def head_pose_course(video: PlannedVideo | dict, dlib68: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The video's rigid head motion over frames `start`..`stop - 1` as one affine per frame.

    As `synthetic_faces.head_motion_course`: frame t shows its still frame (expression, blink) warped by
    A_t, a similarity about the face centre c (the mean of `dlib68`), x' = s R(theta) (x - c) + c +
    (tx, ty). Each of theta (deg), tx, ty (px) and s - 1 is the slow wave of `head_motion`, scaled
    so that it reaches exactly its planned peak over the whole video (0 at frame 0), plus every
    turn's raised-cosine bump (0 at its start and end, its peak in the middle). Frame 0's pose is
    the identity, so the manifest's `dlib68` are frame 0's landmarks.

    Args:
        video: a planned video or its manifest record (`read_long_manifest(root)["videos"]`).
        dlib68: (68, 2) landmarks of the still face, px (the manifest's, rounded to 1/100 px, as rendered).
        start, stop: frame range; `stop` None is the end of the video.

    Returns:
        (stop - start, 2, 3) float64 affines, from still-frame px to frame px.
    """
    d = np.asarray(dlib68, np.float64)
    if d.shape != (68, 2):
        raise ValueError(f"dlib68 must be (68, 2) landmarks in px, got shape {d.shape}.")
    get = video.get if isinstance(video, dict) else lambda name: getattr(video, name)
    num_frames, fps = int(get("num_frames")), float(get("fps"))
    stop = num_frames if stop is None else min(int(stop), num_frames)
    frames = np.arange(int(start), stop)
    components = np.zeros((4, len(frames)))  # rotation deg, tx px, ty px, scale - 1
    motion = get("head_motion")
    if motion is not None:
        for c, (peak, f1, f2, phase1, phase2) in enumerate(motion):
            extreme = _wave_extreme(num_frames, fps, f1, f2, phase1, phase2)
            if extreme != 0:
                components[c] = peak * _raw_wave(frames / fps, f1, f2, phase1, phase2) / extreme
    for turn in get("turns") or []:
        turn = turn if isinstance(turn, dict) else dataclasses.asdict(turn)
        inside = (frames >= turn["start"]) & (frames <= turn["end"])
        if inside.any():
            u = (frames[inside] - turn["start"]) / max(1, turn["end"] - turn["start"])
            bump = 0.5 - 0.5 * np.cos(2 * np.pi * u)
            for c, name in enumerate(("rotation_deg", "tx", "ty", "scale")):
                components[c, inside] += turn[name] * bump
    theta = np.radians(components[0])
    scale = 1.0 + components[3]
    cos, sin = scale * np.cos(theta), scale * np.sin(theta)
    course = np.zeros((len(frames), 2, 3))
    course[:, 0, 0], course[:, 0, 1], course[:, 1, 0], course[:, 1, 1] = cos, -sin, sin, cos
    centre = d.mean(axis=0)
    course[:, :, 2] = centre + components[1:3].T - course[:, :, :2] @ centre
    return course


# --------------------------------------------------------------------------- rendering
def long_video_landmarks(plan: LongVideoPlan, video: PlannedVideo | str, faces: dict[str, BaseFace] | None = None) -> np.ndarray:
    """(68, 2) float64 landmarks of the video's still face (frame 0), px, rounded to 1/100 px as
    the manifest writes them; computed from the identity geometry, no pixels drawn."""
    video = plan.video(video) if isinstance(video, str) else video
    faces = faces or load_base_faces()
    subject = plan.subject_of(video)
    return np.round(_identity_geometry(subject, _view(video), faces[subject.face])[2], 2)


def render_long_video(
    plan: LongVideoPlan,
    video: PlannedVideo | str,
    faces: dict[str, BaseFace] | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
    noise: bool = True,
    head_motion: bool = True,
    blinks: bool = True,
    expressions: bool = True,
) -> Iterator[np.ndarray]:
    """The frames `start`..`stop - 1` of a planned video, one at a time, exactly as
    `generate_long_videos` encodes them (before JPEG). Only one frame and the video's fixed maps
    (neutral face, the current expression's field) are held at a time.

    Args:
        plan, video: from `plan_long_videos`; the video or its key ("casme_sq/s15/15_0101disgustingteeth").
        faces: from `load_base_faces` (detected here when None: needs the landmarker model).
        start, stop: frame range (0-based; `stop` None: to the end).
        noise: False renders without sensor noise and flicker.
        head_motion: False keeps the head still (no slow motion, no turns).
        blinks, expressions: False leaves the blinks / the expressions out.

    Yields:
        (H, W, 3) uint8 RGB frames (CAS(ME)^2), or (H, W) uint8 grey frames (SAMM).
    """
    video = plan.video(video) if isinstance(video, str) else video
    stop = video.num_frames if stop is None else int(stop)
    if not 0 <= start <= stop <= video.num_frames:
        raise ValueError(f"Frame range {start}..{stop} is outside the video's 0..{video.num_frames}.")
    faces = faces or load_base_faces()
    subject = plan.subject_of(video)
    return _frames(video, subject, faces[subject.face], int(start), stop, noise, head_motion, blinks, expressions)


def _frames(video, subject, face, start, stop, noise, head_motion, blinks, expressions) -> Iterator[np.ndarray]:
    import cv2

    width, height = video.frame_size
    view = _view(video)
    base, d = _render_base(subject, view, face)
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    events = [e for e in video.expressions if e.offset >= start and e.onset < stop] if expressions else []
    lids = [b for b in video.blinks if b.end >= start and b.start < stop] if blinks else []
    if lids:  # AU45 at full closure; each blink scales it by its own closure course
        bx, by = _blink_field(dataclasses.replace(view, blink=(0, 1, 1, 1.0)), d, (width, height))
    move = head_motion and (video.head_motion is not None or video.turns)
    active: tuple | None = None  # (expression, strength, dx, dy, shade) of the current expression
    lid: tuple | None = None  # (blink, strength)
    for first in range(start, stop, _CHUNK):
        last = min(stop, first + _CHUNK)
        poses = head_pose_course(video, np.round(d, 2), first, last) if move else None
        for t in range(first, last):
            while events and events[0].offset < t:
                events.pop(0)
                active = None
            if events and events[0].onset <= t and active is None:
                e = events[0]
                ex, ey = expression_field(_view(video, action_units=e.action_units, amplitude=e.amplitude), d, (width, height))
                shade = np.float32(_WRINKLE_GAIN) * (np.gradient(ex, axis=1) + np.gradient(ey, axis=0))
                active = (e, expression_strength(video, e), ex, ey, shade if base.ndim == 2 else shade[:, :, None])
            while lids and lids[0].end < t:
                lids.pop(0)
                lid = None
            if lids and lids[0].start <= t and lid is None:
                lid = (lids[0], blink_strength(video, lids[0]))
            c = float(active[1][t - active[0].onset]) if active is not None else 0.0
            b = float(lid[1][t - lid[0].start]) if lid is not None else 0.0
            if c > 0 or b > 0:
                # backward map: the pixel at x shows the neutral face at x - d(x)
                map_x, map_y = gx, gy
                if c > 0:
                    map_x, map_y = map_x - np.float32(c) * active[2], map_y - np.float32(c) * active[3]
                if b > 0:
                    map_x, map_y = map_x - np.float32(b) * bx, map_y - np.float32(b) * by
                frame = cv2.remap(base, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
                if c > 0:
                    frame *= 1 + np.float32(c) * active[4]
            else:
                frame = base.copy()
            if poses is not None:
                # the head carries the face; the camera's flicker and noise stay put
                frame = cv2.warpAffine(
                    frame, poses[t - first], (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
                )
            if noise:
                rng = np.random.default_rng([video.noise_seed, t])
                frequency, phase = video.flicker
                gain = 1 + subject.flicker * math.sin(2 * math.pi * frequency * t / video.fps + phase) + rng.normal(0, 0.001)
                frame *= np.float32(gain)
                frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(subject.noise_sigma)
            yield np.clip(np.rint(frame), 0, 255).astype(np.uint8)
