"""Synthetic micro-expression clips from public-domain faces, written in the real database layouts.

Learning has to be testable without the licensed databases (DESIGN.md section 3), so this module
animates two real, public-domain face photographs (NASA's astronaut portrait from scikit-image and
Grace Hopper from matplotlib) with small, local, action-unit-like deformations and writes the
result exactly as SMIC, CASME II and SAMM lay out their files (../shared/DATASETS.md), with the
annotation workbooks and a MEGC 2019-style ground-truth list. The loaders of `modeling_mie.data`
read the output as they read the real databases.

How a clip is made
------------------
(This module plans the clips and writes them; the faces, action-unit fields, time courses and
rendering are `modeling_mie.synthetic_faces`.)

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
import hashlib
import io
import json
import logging
import math
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
    SYNTHETIC_FACES,
    BaseFace,
    _animate,
    _identity_geometry,
    _render_base,
    load_base_faces,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MARKER_FILE = ".mie_synthetic.json"
MANIFEST_FILE = "synthetic_manifest.json"
GROUND_TRUTH_FILE = "combined_3class_gt.csv"
_PARTIAL_DIR = ".partial"

MEGC_CLASSES = ("negative", "positive", "surprise")

# Top folder of each database under the output folder, and what the recording was.
DATABASE_ROOTS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"}
DATABASE_FPS = {"casme2": 200, "samm": 200, "smic": 100}
# The list's database order is the official file's (casme2, smic, samm).
_LIST_ORDER = ("casme2", "smic", "samm")
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
_HELDOUT_JPEG_QUALITY = 55

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
