"""The plan of a synthetic database: its subjects (each one of the two photos through an identity
transform), its clips (labels, emotions and action units as each database annotates them, clip
lengths, time course, nuisances, head motion) and the profiles that size it, all drawn
deterministically from the seed. Nothing is rendered or written here.

`modeling_mie.synthetic` (whose module docstring describes the whole generator) writes a plan in
the databases' layouts; `modeling_mie.synthetic_faces` renders its clips;
`modeling_mie.synthetic_long` plans long videos from the same subjects and expressions.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from .synthetic_faces import SYNTHETIC_FACES

MEGC_CLASSES = ("negative", "positive", "surprise")

# Top folder of each database under the output folder, and what the recording was.
DATABASE_ROOTS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"}
DATABASE_FPS = {"casme2": 200, "samm": 200, "smic": 100}
_JPEG_QUALITY = {"casme2": 90, "samm": 85}
# Rendering styles: "train", the generator's own; "heldout", another kernel, time course and
# compression, which training never sees (module docstring).
STYLES = ("train", "heldout")
# Variety of the training data: "base", the generator's original ranges; "wide", more identity
# variety and several amplitudes per action unit (module docstring), drawn from generators of
# their own so that the rest of the plan does not change.
VARIETIES = ("base", "wide")
# "wide": each clip's amplitude is the base draw times a log-uniform factor in this range (so the
# same AUs appear from 0.6x to 3x), and each subject's recording chain compresses at a JPEG
# quality in this range (SMIC: half the subjects), always above the held-out style's 55.
_WIDE_AMPLITUDE = (0.6, 3.0)
_WIDE_JPEG_QUALITY = (70, 95)

# Raw emotion -> MEGC 2019 class (DATASETS.md); anything else is dropped from the composite.
_MEGC_MAP = {
    "casme2": {"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2},
    "samm": {"Anger": 0, "Contempt": 0, "Disgust": 0, "Fear": 0, "Sadness": 0, "Happiness": 1, "Surprise": 2},
    "smic": {"negative": 0, "positive": 1, "surprise": 2},
}
# How the negative clips of each database split over raw emotions: CASME II's 2014 workbook has
# disgust 63 : repression 27 among the listed negatives, SAMM anger 57 : contempt 12 : disgust 9 :
# fear 8 : sadness 6.
_NEGATIVE_EMOTIONS = {
    "casme2": (("disgust", 0.7), ("repression", 0.3)),
    "samm": (("Anger", 0.62), ("Contempt", 0.13), ("Disgust", 0.1), ("Fear", 0.09), ("Sadness", 0.06)),
    "smic": (("negative", 1.0),),
}
_POSITIVE_EMOTION = {"casme2": "happiness", "samm": "Happiness", "smic": "positive"}
_SURPRISE_EMOTION = {"casme2": "surprise", "samm": "Surprise", "smic": "surprise"}
_SMIC_CODE = {0: "ne", 1: "po", 2: "sur"}

# AU combinations per raw emotion (lower case); "L"/"R" mark a unilateral AU (subject's side).
_NEGATIVE_COMBOS = {
    "disgust": ((9,), (4, 9), (10,), (9, 10), (4, 10), (4,), (4, "L10"), ("R10",)),
    "repression": ((14,), (15,), (17,), (14, 17), (15, 17), ("R14",)),
    "anger": ((4,), (4, 17), (4, 15), (4, 10)),
    "contempt": (("R14",), ("L14",), ("R14", 17)),
    "fear": ((4, 14), (4, 15)),
    "sadness": ((15,), (4, 15), (15, 17)),
    "negative": (),  # SMIC: any of the above
}
_DROPPED_COMBOS = ((1,), ("R2",), (4,), (14,), ("L10",), (17,), ("R12",), (15,))


# --------------------------------------------------------------------------- profiles
# Clips per subject and class (negative, positive, surprise) of the official MEGC 2019 list, so
# that the synthetic composite is as uneven over subjects as the real one (s03 has 39 clips, sub17
# 31, SAMM 011 20; many subjects have 1-3).
_MEGC_SMIC = {
    "s1": (3, 2, 1), "s2": (0, 1, 5), "s3": (22, 11, 6), "s4": (10, 4, 5), "s5": (1, 0, 1),
    "s6": (2, 0, 2), "s8": (9, 4, 0), "s9": (0, 1, 3), "s11": (3, 3, 1), "s12": (0, 8, 1),
    "s13": (0, 10, 0), "s14": (3, 2, 5), "s15": (1, 1, 2), "s18": (2, 0, 5), "s19": (0, 1, 1),
    "s20": (14, 3, 5),
}
_MEGC_CASME2 = {
    "sub01": (2, 1, 0), "sub02": (5, 1, 3), "sub03": (4, 0, 1), "sub04": (2, 0, 0), "sub05": (0, 1, 5),
    "sub06": (1, 1, 2), "sub07": (5, 0, 0), "sub08": (1, 0, 0), "sub09": (5, 5, 0), "sub11": (4, 0, 0),
    "sub12": (5, 2, 4), "sub13": (0, 2, 0), "sub14": (0, 3, 0), "sub15": (1, 1, 1), "sub16": (1, 2, 0),
    "sub17": (23, 7, 1), "sub19": (3, 3, 5), "sub20": (2, 0, 0), "sub21": (1, 0, 0), "sub22": (2, 0, 0),
    "sub23": (7, 1, 0), "sub24": (2, 0, 1), "sub25": (3, 0, 2), "sub26": (9, 2, 0),
}
_MEGC_SAMM = {
    "006": (9, 0, 2), "007": (1, 5, 2), "009": (3, 0, 1), "010": (4, 0, 0), "011": (13, 7, 0),
    "012": (2, 0, 1), "013": (6, 0, 0), "014": (2, 7, 1), "015": (2, 0, 1), "016": (2, 1, 2),
    "017": (3, 0, 1), "018": (2, 0, 1), "019": (0, 1, 0), "020": (2, 2, 0), "021": (2, 0, 0),
    "022": (3, 2, 0), "023": (1, 0, 0), "024": (1, 0, 0), "026": (9, 0, 0), "028": (1, 0, 2),
    "030": (3, 0, 0), "031": (1, 0, 0), "032": (4, 0, 0), "033": (4, 1, 0), "034": (3, 0, 0),
    "035": (7, 0, 1), "036": (1, 0, 0), "037": (1, 0, 0),
}

# Each profile, per database:
#   frame_size (w, h) px; face_width: jaw-to-jaw width in px (dlib points 0-16); length: frames of
#   onset..offset (min, max, beta shape a, b); margin: extra frames SAMM keeps before the onset and
#   after the offset (min, max); noise: sensor noise sigma range in grey levels; subjects: clips
#   per (negative, positive, surprise); extras: clips the composite drops, (subject, name or None,
#   raw emotion, quirk); quirks: (subject, quirk) applied to that subject's first listed clip;
#   non_micro: SMIC subjects that get a clip in non_micro/.
SYNTHETIC_PROFILES: dict[str, dict[str, dict]] = {
    "tiny": {
        "smic": {
            "frame_size": (256, 192), "face_width": 105, "length": (10, 16, 2.0, 2.0), "margin": (0, 0),
            "noise": (1.2, 2.2),
            "subjects": {"s1": (2, 1, 1), "s2": (1, 1, 1), "s3": (1, 1, 1)},
            "extras": [], "quirks": [("s2", "counter_crosses_digits")], "non_micro": ["s1"],
        },
        "casme2": {
            "frame_size": (256, 192), "face_width": 120, "length": (12, 18, 2.0, 2.0), "margin": (0, 0),
            "noise": (0.8, 1.8),
            "subjects": {"sub01": (2, 1, 1), "sub02": (1, 1, 1), "sub03": (1, 1, 1)},
            "extras": [
                ("sub01", None, "others", None),
                ("sub02", "EP12_01f", "disgust", "apex_slash"),
                ("sub03", "EP09_05f", "repression", "apex_is_onset"),
            ],
            "quirks": [("sub01", "onset_below_10")],
            "non_micro": [],
        },
        "samm": {
            "frame_size": (340, 180), "face_width": 110, "length": (12, 18, 2.0, 2.0), "margin": (1, 2),
            "noise": (0.8, 1.6),
            "subjects": {"006": (2, 1, 1), "007": (1, 1, 1), "009": (1, 1, 1)},
            "extras": [("006", None, "Other", None)],
            "quirks": [("007", "apex_outside")],
            "non_micro": [],
        },
    },
    "megc2019": {
        "smic": {
            "frame_size": (320, 240), "face_width": 140, "length": (11, 58, 2.0, 2.5), "margin": (0, 0),
            "noise": (1.2, 2.2),
            "subjects": _MEGC_SMIC,
            "extras": [], "quirks": [("s20", "counter_crosses_digits")], "non_micro": ["s1", "s3", "s14"],
        },
        "casme2": {
            "frame_size": (640, 480), "face_width": 250, "length": (24, 130, 2.0, 3.0), "margin": (0, 0),
            "noise": (0.8, 1.8),
            "subjects": _MEGC_CASME2,
            "extras": [
                ("sub04", "EP12_01f", "disgust", "apex_slash"),
                ("sub05", "EP09_05f", "repression", "apex_is_onset"),
                ("sub10", None, "others", None),
                ("sub10", None, "others", None),
                ("sub18", None, "others", None),
                ("sub18", None, "sadness", None),
                ("sub02", None, "others", None),
                ("sub09", None, "fear", None),
                ("sub17", None, "others", None),
                ("sub23", None, "others", None),
            ],
            "quirks": [],
            "non_micro": [],
        },
        "samm": {
            "frame_size": (1020, 544), "face_width": 300, "length": (30, 110, 2.0, 2.5), "margin": (0, 6),
            "noise": (0.8, 1.6),
            "subjects": _MEGC_SAMM,
            "extras": [("025", None, "Other", None), ("011", None, "Other", None), ("006", None, "Other", None)],
            "quirks": [("028", "apex_outside"), ("032", "apex_outside")],
            "non_micro": [],
        },
    },
}


# --------------------------------------------------------------------------- plan records
@dataclass
class SyntheticSubject:
    """One synthetic subject: a base photo and its identity transform (all lengths in frame px).

    Attributes:
        database, subject: the database and the subject folder name on disk ("sub01", "006", "s1").
        face: which photo, one of `SYNTHETIC_FACES`.
        frame_size: (width, height) of the frames in px; grey: frames are single-channel (SAMM).
        face_width: jaw-to-jaw width of the face in the frame, px.
        center: (x, y) px where the landmarks' mean lands in the frame.
        mirror, roll_deg, aspect, shear: the similarity-plus part of the identity transform.
        shape: 6 coefficients in [-1, 1] of the landmark-anchored shape warp (eye spacing, brow
            height, nose length, mouth width, jaw width, chin length).
        skin_gain, skin_warmth, white_balance, brightness, contrast: colour of skin and picture.
        light_angle, light_strength: linear lighting gradient (direction in rad, gain per face width).
        noise_sigma: sensor noise, grey levels; flicker: illumination flicker amplitude (gain).
        shape_gain: multiplies the shape warp (1 in the base variety, 1.5-2.5 in the wide one).
        gamma: tone curve of the picture, out = in ** gamma on 0-1 (1: none).
        texture: skin detail: < 0 blurs with sigma -texture x 1.2 px per 300 px of face, > 0
            sharpens (unsharp mask of that amount); 0 leaves the photo's own.
        jpeg_quality: the subject's recording chain compresses at this quality (None: the
            database's own, `_JPEG_QUALITY`; SMIC none). The held-out style's 55 overrides it.
    """

    database: str
    subject: str
    face: str
    frame_size: tuple[int, int]
    grey: bool
    face_width: float
    center: tuple[float, float]
    mirror: bool
    roll_deg: float
    aspect: float
    shear: float
    shape: tuple[float, ...]
    skin_gain: float
    skin_warmth: float
    white_balance: float
    brightness: float
    contrast: float
    light_angle: float
    light_strength: float
    noise_sigma: float
    flicker: float
    shape_gain: float = 1.0
    gamma: float = 1.0
    texture: float = 0.0
    jpeg_quality: int | None = None


@dataclass
class SyntheticClip:
    """One synthetic clip: what it shows, how it is timed, and how it is written.

    Frame indices (`*_index`) count the frames written, from 0; frame numbers (`onset`, `apex`,
    `offset`, `first_frame`) are the numbers in the file names. `annotated_apex` is what the
    workbook says (an int, or "/" for the CASME II quirk; None for SMIC, which annotates none).

    Attributes:
        action_units: [(AU number, side "L"/"R"/"" , intensity in [0.7, 1])].
        amplitude: apex displacement in px of an AU at intensity 1 (the face's "few pixels").
        motion: (start index, apex index, end index, residual at the end) of the expression.
        blink: None or (start index, closing frames, opening frames, closure as a fraction of the
            eye opening); may start before the clip.
        drift: (dx, dy, f1, f2, phase1, phase2): head drift peak px and its two slow frequencies (Hz).
        flicker: (frequency Hz, phase); jitter: (dx px, dy px, brightness gain) of the session.
        label: MEGC class 0/1/2, or None when the composite drops the clip.
        head_motion: None (still head) or the rigid head motion, four (peak, f1 Hz, f2 Hz, phase1,
            phase2) for rotation (deg), tx (px), ty (px) and scale (fraction); `head_motion_course`
            turns it into one affine per frame.
        style: "train" (the generator's own drawing) or "heldout" (another deformation kernel,
            time course and compression; module docstring).
    """

    database: str
    subject: str
    clip: str
    emotion: str
    label: int | None
    action_units: list
    au_string: str
    fps: int
    num_frames: int
    first_frame: int
    frame_digits: int
    onset_index: int
    apex_index: int
    offset_index: int
    annotated_apex: object
    amplitude: float
    motion: tuple[float, float, float, float]
    blink: tuple | None
    drift: tuple[float, ...]
    flicker: tuple[float, float]
    jitter: tuple[float, float, float]
    noise_seed: int
    kind: str = "micro"  # "micro", or "non_micro" for SMIC's other folder
    quirk: str | None = None
    inducement: int = 0  # SAMM: the x of NNN_x_y
    objective_class: int = 0  # SAMM: objective class 1-7
    head_motion: tuple | None = None
    style: str = "train"  # how it is drawn: "train" or "heldout" (STYLES)

    @property
    def onset(self) -> int:
        return self.first_frame + self.onset_index

    @property
    def apex(self) -> int:
        return self.first_frame + self.apex_index

    @property
    def offset(self) -> int:
        return self.first_frame + self.offset_index

    @property
    def key(self) -> str:
        """Unique id: `<database>/<subject>/<clip>` (`non_micro/` before the clip for SMIC's other folder)."""
        middle = "non_micro/" if self.kind == "non_micro" else ""
        return f"{self.database}/{self.subject}/{middle}{self.clip}"

    def frame_names(self) -> list[str]:
        """File names of the frames in time order, as the database spells them."""
        numbers = range(self.first_frame, self.first_frame + self.num_frames)
        if self.database == "casme2":
            return [f"img{n}.jpg" for n in numbers]
        if self.database == "samm":
            return [f"{self.subject}_{n:0{self.frame_digits}d}.jpg" for n in numbers]
        return [f"image{n:0{self.frame_digits}d}.bmp" for n in numbers]

    def relative_dir(self) -> str:
        """Folder of the frames relative to the output folder (POSIX separators)."""
        root = DATABASE_ROOTS[self.database]
        if self.database == "casme2":
            return f"{root}/CASME2_RAW_selected/{self.subject}/{self.clip}"
        if self.database == "samm":
            return f"{root}/{self.subject}/{self.clip}"
        emotion = {"ne": "negative", "po": "positive", "sur": "surprise"}[self.clip.split("_")[1]]
        return f"{root}/SMIC_all_raw/HS/{self.subject}/{self.kind}/{emotion}/{self.clip}"

    def megc_row(self) -> list[str] | None:
        """The clip's row of the MEGC-style list (`db,subject,filename,class`), or None if dropped."""
        if self.label is None or self.kind != "micro":
            return None
        if self.database == "smic":
            number = int(self.subject[1:])
            return ["smic", f"s{number:02d}", re.sub(r"^s\d+", f"s{number:02d}", self.clip), str(self.label)]
        if self.database == "samm":
            return ["samm", str(int(self.subject)), self.clip, str(self.label)]
        return ["casme2", self.subject, self.clip, str(self.label)]


@dataclass
class SyntheticPlan:
    """Everything a profile and seed decide, before any pixel is drawn."""

    profile: str
    seed: int
    subjects: dict[str, SyntheticSubject]  # key "<database>/<subject>"
    clips: list[SyntheticClip]
    head_motion: bool = False  # every clip has a rigid head motion (`SyntheticClip.head_motion`)
    style: str = "train"  # how every clip is drawn (STYLES)
    variety: str = "base"  # identity and amplitude ranges (VARIETIES)

    def subject_of(self, clip: SyntheticClip) -> SyntheticSubject:
        return self.subjects[f"{clip.database}/{clip.subject}"]

    def clip(self, key: str) -> SyntheticClip:
        for c in self.clips:
            if c.key == key:
                return c
        raise KeyError(f"No clip {key!r} in this plan; keys look like {self.clips[0].key!r}.")

    @property
    def total_frames(self) -> int:
        return sum(c.num_frames for c in self.clips)


# --------------------------------------------------------------------------- planning
def _rng(seed: int, *key) -> np.random.Generator:
    """A generator keyed by what it decides, so that adding a clip never shifts another's draws."""
    words = [int(seed)] + [int(hashlib.sha256(str(k).encode()).hexdigest()[:15], 16) for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


def _u(rng, low, high) -> float:
    return float(rng.uniform(low, high))


def plan_synthetic_dataset(
    profile: str = "tiny", seed: int = 0, head_motion: bool = False, style: str = "train", variety: str = "base"
) -> SyntheticPlan:
    """Decide every subject and clip of a profile: identities, AUs, timing, nuisances, names.

    Pure and fast (no pixels, no landmarks): the same (profile, seed) always gives the same plan.
    With `head_motion` every clip (dropped and SMIC non_micro ones too) also gets a rigid head
    motion path (`SyntheticClip.head_motion`), drawn from a generator of its own: every other
    field is the same as without it. `style` ("train" or "heldout") sets how every clip is drawn
    and changes no draw of the plan either. `variety="wide"` gives every subject a stronger
    shape warp, a tone curve, a skin texture and a JPEG quality of its own and every clip's
    amplitude a factor of 0.6-3, from generators of their own: the other fields do not change.

    Raises:
        ValueError: unknown profile or style (the message lists the allowed ones).
    """
    if profile not in SYNTHETIC_PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; allowed values are {sorted(SYNTHETIC_PROFILES)}.")
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}; allowed values are {list(STYLES)}.")
    if variety not in VARIETIES:
        raise ValueError(f"Unknown variety {variety!r}; allowed values are {list(VARIETIES)}.")
    subjects: dict[str, SyntheticSubject] = {}
    clips: list[SyntheticClip] = []
    for database in ("casme2", "samm", "smic"):
        spec = SYNTHETIC_PROFILES[profile][database]
        db_subjects, db_clips = _plan_database(database, spec, seed, head_motion)
        subjects.update({f"{database}/{s.subject}": s for s in db_subjects})
        clips.extend(db_clips)
    for clip in clips:
        clip.style = style
    if variety == "wide":
        _widen(subjects, clips, seed)
    return SyntheticPlan(profile, int(seed), subjects, clips, bool(head_motion), style, variety)


def _widen(subjects: dict[str, SyntheticSubject], clips: list[SyntheticClip], seed: int) -> None:
    """The wide variety, in place: per subject a stronger shape warp, a tone curve, a skin texture
    and a recording chain's JPEG quality; per clip an amplitude factor. Own generators only."""
    for key, subject in subjects.items():
        rng = _rng(seed, "variety", key)
        subject.shape_gain = round(_u(rng, 1.5, 2.5), 4)
        subject.gamma = round(math.exp(_u(rng, math.log(0.8), math.log(1.25))), 4)
        subject.texture = round(_u(rng, -1.0, 1.0), 4)
        compress = subject.database != "smic" or rng.random() < 0.5
        quality = int(rng.integers(_WIDE_JPEG_QUALITY[0], _WIDE_JPEG_QUALITY[1] + 1))
        subject.jpeg_quality = quality if compress else None
    low, high = (math.log(v) for v in _WIDE_AMPLITUDE)
    for index, clip in enumerate(clips):
        rng = _rng(seed, "variety", clip.key, index)
        clip.amplitude = round(clip.amplitude * math.exp(_u(rng, low, high)), 3)


def _plan_subject(database: str, name: str, index: int, spec: dict, seed: int) -> SyntheticSubject:
    rng = _rng(seed, "subject", database, name)
    width, height = spec["frame_size"]
    face_width = spec["face_width"] * _u(rng, 0.9, 1.1)
    return SyntheticSubject(
        database=database,
        subject=name,
        # alternate the photos so every database has both, starting differently per database
        face=SYNTHETIC_FACES[(index + {"casme2": 0, "samm": 1, "smic": 0}[database]) % 2],
        frame_size=(int(width), int(height)),
        grey=database == "samm",
        face_width=round(face_width, 3),
        center=(round(width * _u(rng, 0.44, 0.56), 3), round(height * _u(rng, 0.5, 0.56), 3)),
        mirror=bool(rng.random() < 0.5),
        roll_deg=round(_u(rng, -6, 6), 3),
        aspect=round(math.exp(_u(rng, -0.07, 0.07)), 4),
        shear=round(_u(rng, -0.04, 0.04), 4),
        shape=tuple(round(_u(rng, -1, 1), 4) for _ in range(6)),
        skin_gain=round(_u(rng, 0.72, 1.08), 4),
        skin_warmth=round(_u(rng, -0.07, 0.07), 4),
        white_balance=round(_u(rng, -0.04, 0.04), 4),
        brightness=round(_u(rng, 0.9, 1.1), 4),
        contrast=round(_u(rng, 0.85, 1.15), 4),
        light_angle=round(_u(rng, 0, 2 * math.pi), 4),
        light_strength=round(_u(rng, 0.08, 0.3), 4),
        noise_sigma=round(_u(rng, *spec["noise"]), 3),
        flicker=round(_u(rng, 0.002, 0.008), 5),
    )


def _au_list(combo, rng) -> list:
    out = []
    for item in combo:
        side = ""
        if isinstance(item, str):
            side, item = item[0], int(item[1:])
        out.append([int(item), side, round(_u(rng, 0.7, 1.0), 3)])
    return out


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _expression_for(database: str, label: int | None, emotion: str, rng) -> list:
    """AU list [(au, side, intensity)] of a clip of this class / raw emotion."""
    if label == 1:
        combo = [12] if rng.random() < 0.4 else [6, 12]
        if rng.random() < 0.15:  # unilateral smiles exist in CASME II ("R12")
            combo = [c if c != 12 else _pick(rng, ("R12", "L12")) for c in combo]
        return _au_list(combo, rng)
    if label == 2:
        combo = [1, 2]
        extra = rng.random()
        if extra < 0.3:
            combo.append(5)
        elif extra < 0.55:
            combo.append(26)
        return _au_list(combo, rng)
    if label == 0:
        name = emotion.lower()
        options = _NEGATIVE_COMBOS[name] or tuple(c for k, v in _NEGATIVE_COMBOS.items() for c in v)
        return _au_list(_pick(rng, options), rng)
    if emotion.lower() in _NEGATIVE_COMBOS and _NEGATIVE_COMBOS[emotion.lower()]:  # CASME II fear/sadness
        return _au_list(_pick(rng, _NEGATIVE_COMBOS[emotion.lower()]), rng)
    return _au_list(_pick(rng, _DROPPED_COMBOS), rng)


def _au_string(database: str, aus: list, rng) -> str:
    """The AU cell as the database writes it: CASME II "4+L10", SAMM "R12B" with intensity letters."""
    letters = database == "samm" and rng.random() < 0.5
    parts = []
    for au, side, intensity in aus:
        text = f"{side}{au}"
        if letters:
            text += "ABCDE"[min(4, int((intensity - 0.7) / 0.3 * 3) + 1)]
        parts.append(text)
    return "+".join(parts)


def _objective_class(aus: list, label: int | None) -> int:
    """SAMM objective class (Davison et al. 2018) of an AU set: I happy ... VII others."""
    numbers = {a for a, _, _ in aus}
    if 12 in numbers:
        return 1
    if numbers & {1, 2, 5, 26}:
        return 2
    if numbers & {9, 10}:
        return 4
    if 15 in numbers:
        return 5
    if numbers & {4, 17}:
        return 3
    return 7


def _casme2_names(count: int, reserved: set[str], rng) -> list[str]:
    """Episode folder names like the real ones: EP02_01f, EP19_06, and a few irregular spellings."""
    names: list[str] = []
    taken = {r.lower() for r in reserved}
    while len(names) < count:
        episode, take = int(rng.integers(1, 20)), int(rng.integers(1, 12))
        form = rng.random()
        if form < 0.03:
            name = f"EP{episode:02d}_{take}"  # EP01_2
        elif form < 0.05:
            name = f"EP{episode:02d}_{take:02d}_{int(rng.integers(1, 3)):02d}"  # EP06_02_01
        elif form < 0.07:
            name = f"EP{episode:02d}f"  # EP09f
        else:
            name = f"EP{episode:02d}_{take:02d}" + ("f" if rng.random() < 0.4 else "")
        if name.lower() not in taken:
            taken.add(name.lower())
            names.append(name)
    return names


# Rigid head motion (`head_motion=True`): peak in-plane rotation (deg), peak translation (px per
# 300 px of face width), peak scale change (fraction), and the frequency range of its slow waves (Hz).
HEAD_MOTION_ROTATION_DEG = 10.0
HEAD_MOTION_TRANSLATION = 30.0
HEAD_MOTION_SCALE = 0.08
_HEAD_MOTION_FREQUENCIES = (0.5, 3.0)


def _plan_head_motion(
    rng: np.random.Generator, face_width: float, frequencies: tuple[float, float] = _HEAD_MOTION_FREQUENCIES
) -> tuple:
    """A clip's head motion: (rotation, tx, ty, scale), each (peak, f1 Hz, f2 Hz, phase1, phase2).

    Peaks: rotation uniform in +-10 deg; translation of uniform length 0-30 px per 300 px of face
    in a uniform direction (split into tx, ty peaks, each with its own wave); scale +-8 %. The
    wave frequencies are uniform in `frequencies` (Hz): 0.5-3 for a clip; the long videos of
    `synthetic_long` draw the same peaks on much slower waves.
    """
    shift = _u(rng, 0, HEAD_MOTION_TRANSLATION) * face_width / 300.0
    direction = _u(rng, 0, 2 * math.pi)
    peaks = (
        round(_u(rng, -HEAD_MOTION_ROTATION_DEG, HEAD_MOTION_ROTATION_DEG), 4),
        round(shift * math.cos(direction), 4),
        round(shift * math.sin(direction), 4),
        round(_u(rng, -HEAD_MOTION_SCALE, HEAD_MOTION_SCALE), 5),
    )
    return tuple(
        (
            peak,
            round(_u(rng, *frequencies), 3),
            round(_u(rng, *frequencies), 3),
            round(_u(rng, 0, 2 * math.pi), 3),
            round(_u(rng, 0, 2 * math.pi), 3),
        )
        for peak in peaks
    )


def _plan_database(database: str, spec: dict, seed: int, head_motion: bool = False):
    fps = DATABASE_FPS[database]
    subject_names = list(spec["subjects"])
    for name, *_ in spec["extras"]:
        if name not in subject_names:
            subject_names.append(name)
    subject_names.sort(key=lambda s: int(re.sub(r"\D", "", s)))
    subjects = [_plan_subject(database, name, i, spec, seed) for i, name in enumerate(subject_names)]
    # (subject, raw emotion, label, name or None, quirk, kind)
    wanted: list[tuple] = []
    for name in subject_names:
        rng = _rng(seed, "emotions", database, name)
        counts = spec["subjects"].get(name, (0, 0, 0))
        for label, count in enumerate(counts):
            for _ in range(count):
                if label == 0:
                    names, weights = zip(*_NEGATIVE_EMOTIONS[database])
                    emotion = names[int(rng.choice(len(names), p=np.array(weights) / sum(weights)))]
                else:
                    emotion = (_POSITIVE_EMOTION if label == 1 else _SURPRISE_EMOTION)[database]
                wanted.append((name, emotion, label, None, None, "micro"))
        for extra in spec["extras"]:
            if extra[0] == name:
                label = _MEGC_MAP[database].get(extra[2])
                # the two CASME II quirk clips are negative but the official list drops them
                wanted.append((name, extra[2], None if extra[3] else label, extra[1], extra[3], "micro"))
        if name in spec["non_micro"]:
            wanted.append((name, "negative", None, None, None, "non_micro"))
    quirks = dict(spec["quirks"])
    # Timing, AUs and nuisances: one generator per clip, keyed by its position in its subject.
    clips: list[SyntheticClip] = []
    per_subject: dict[str, list[tuple]] = {}
    for item in wanted:
        per_subject.setdefault(item[0], []).append(item)
    blink_rng = _rng(seed, "blinks", database)
    for name in subject_names:
        subject = next(s for s in subjects if s.subject == name)
        items = per_subject.get(name, [])
        naming = _rng(seed, "names", database, name)
        reserved = {i[3] for i in items if i[3]}
        generated = iter(_casme2_names(len(items), reserved, naming)) if database == "casme2" else None
        # micro and non_micro number their clips separately, so s1_ne_01 exists in both folders
        smic_counter: dict[tuple, int] = {}
        smic_digits = int(_pick(naming, (0, 7, 8)))  # zero-padding width of this subject's counter
        samm_takes: dict[int, int] = {}
        # SAMM and SMIC frame counters run through one long recording per subject.
        recording = int(naming.integers(200, 2000)) if database == "samm" else int(naming.integers(10_000, 3_000_000))
        first_listed = True
        for k, (_, emotion, label, forced_name, quirk, kind) in enumerate(items):
            rng = _rng(seed, "clip", database, name, k)
            if kind == "micro" and label is not None and first_listed:
                quirk = quirk or quirks.get(name)
                first_listed = False
            low, high, a, b = spec["length"]
            length = int(round(low + (high - low) * rng.beta(a, b)))
            if kind == "non_micro":
                length = min(length, low + 4)
            m_low, m_high = spec["margin"]
            before, after = int(rng.integers(m_low, m_high + 1)), int(rng.integers(m_low, m_high + 1))
            num_frames = length + before + after
            code = _SMIC_CODE.get(label if label is not None else 0)
            digits = 0
            inducement = 0
            if database == "casme2":
                clip_name = forced_name or next(generated)
                first = int(rng.integers(1, 300))
                if quirk == "onset_below_10":
                    first = int(rng.integers(3, 8))  # img9 < img10 must sort by number
            elif database == "samm":
                inducement = int(rng.integers(1, 8))
                samm_takes[inducement] = samm_takes.get(inducement, 0) + 1 + int(rng.integers(0, 3))
                clip_name = forced_name or f"{name}_{inducement}_{samm_takes[inducement]}"
                recording += int(rng.integers(150, 2500))
                first = recording
                recording += num_frames
                digits = 4 if first + num_frames < 10_000 and rng.random() < 0.5 else 5
            else:
                counter_key = (kind, code)
                smic_counter[counter_key] = smic_counter.get(counter_key, 0) + 1
                clip_name = f"{name}_{code}_{smic_counter[counter_key]:02d}"
                first = recording + int(rng.integers(200, 20_000))
                # 5 to 8 digits, zero-padded to the subject's width, or unpadded
                digits = smic_digits
                if quirk == "counter_crosses_digits":
                    # unpadded image99995.bmp ... image100004.bmp: only a numeric sort keeps the order
                    first, digits = 100_000 - num_frames // 2, 0
                recording = first + num_frames
            # expression timing inside onset..offset
            onset_i, offset_i = before, before + length - 1
            span = offset_i - onset_i
            start = onset_i + int(round(span * _u(rng, 0.0, 0.08)))
            apex_i = onset_i + max(1, int(round(span * _u(rng, 0.25, 0.6))))
            apex_i = min(max(apex_i, start + 1), offset_i - 1)
            aus = _expression_for(database, label, emotion, rng) if kind == "micro" else []
            face_scale = subject.face_width / 300.0
            # head drift: 0.1-1 px per 300 px of face at its peak, most clips well below 1 px
            drift = (0.1 + 0.9 * _u(rng, 0, 1) ** 2) * face_scale
            drift_angle = _u(rng, 0, 2 * math.pi)
            annotated_apex: object = first + apex_i
            if quirk == "apex_slash":
                annotated_apex = "/"
            elif quirk == "apex_is_onset":
                annotated_apex = first + onset_i
            elif quirk == "apex_outside":
                annotated_apex = first + num_frames - 1 + int(rng.integers(3, 12))
            if database == "smic":
                annotated_apex = None
            clip = SyntheticClip(
                database=database,
                subject=name,
                clip=clip_name,
                emotion=emotion,
                label=label,
                action_units=aus,
                au_string=_au_string(database, aus, rng),
                fps=fps,
                num_frames=num_frames,
                first_frame=first,
                frame_digits=digits,
                onset_index=onset_i,
                apex_index=apex_i,
                offset_index=offset_i,
                annotated_apex=annotated_apex,
                amplitude=round(_u(rng, 2.5, 5.5) * face_scale, 3),
                motion=(float(start), float(apex_i), float(offset_i), round(_u(rng, 0.0, 0.15), 3)),
                blink=None,
                drift=(
                    round(drift * math.cos(drift_angle), 3),
                    round(drift * math.sin(drift_angle), 3),
                    round(_u(rng, 0.3, 1.5), 3),
                    round(_u(rng, 0.5, 3.0), 3),
                    round(_u(rng, 0, 2 * math.pi), 3),
                    round(_u(rng, 0, 2 * math.pi), 3),
                ),
                flicker=(round(100 + _u(rng, -2, 2), 3), round(_u(rng, 0, 2 * math.pi), 3)),
                jitter=(
                    round(_u(rng, -0.015, 0.015) * subject.face_width, 3),
                    round(_u(rng, -0.015, 0.015) * subject.face_width, 3),
                    round(_u(rng, 0.98, 1.02), 4),
                ),
                noise_seed=int(rng.integers(2**31)),
                kind=kind,
                quirk=quirk,
                inducement=inducement,
                objective_class=_objective_class(aus, label) if database == "samm" else 0,
                # a generator of its own, so that the plan's other draws do not depend on the flag
                head_motion=(
                    _plan_head_motion(_rng(seed, "head_motion", database, name, k), subject.face_width)
                    if head_motion
                    else None
                ),
            )
            clips.append(clip)
    # Blinks: a quarter of the clips of EVERY class (and of the dropped ones) blink, so that a
    # blink never tells the class.
    for label in (0, 1, 2, None):
        group = [c for c in clips if c.label == label]
        count = int(math.ceil(0.25 * len(group)))
        for c in sorted(blink_rng.permutation(len(group))[:count]):
            clip = group[int(c)]
            duration = max(3, int(round(clip.fps * _u(blink_rng, 0.08, 0.25))))
            closing = max(1, duration // 3)
            clip.blink = (
                int(blink_rng.integers(-closing, max(1 - closing, clip.num_frames - closing))),
                closing,
                duration - closing,
                round(_u(blink_rng, 0.3, 0.9), 3),
            )
    return subjects, clips


