"""Configuration of the region-based CNN + LSTM micro-expression model (Aouayeb et al., 2019)."""

from __future__ import annotations

import copy
import math

from transformers import PretrainedConfig

# The six "active patches" of the paper, as rectangles in the 240 x 280 (width x height) face
# canvas of the authors' public code (DESIGN.md section 1), with the paper's crop sizes
# (100x80, 100x80, 120x80, 60x60, 60x60, 160x60). "left"/"right" are as seen in the image
# (viewer's left), which is the subject's right side.
#
# Positions adapted to MediaPipe landmarks: the authors placed the eye boxes at y 20-100 and the
# mouth at y 180-240 for dlib points. With MediaPipe's points and a centred fit, the brow tops
# land at canvas y 1-11 and the mouth at y 160-207 (astronaut, open smile) / 172-201 (Grace
# Hopper): the paper's boxes would cut off the brows that AU1/AU2 raise and the upper lip and
# lip corners that AU10/AU12 move. Both are moved 20 px up, same sizes: eyes y 0-80, mouth
# y 160-220, which hold the brows and every mouth point of both test faces.
#
# `emotions`: the emotions a region answers to; for any other emotion the region's stage-1 label
# is "not me". The default follows where the facial action units of each emotion act: brows and
# eyes move for negative (AU4, AU7) and surprise (AU1, AU2, AU5), the nose for negative (AU9),
# the cheeks for positive (AU6, AU12), the mouth for all three (AU12; AU10, AU15, AU17; AU26).
#
# `action_units`: the FACS action units whose movement shows inside the region. When a clip has
# coded AUs (CASME II, SAMM), a region's stage-1 label is the clip's emotion if one of the clip's
# AUs is listed here and "not me" otherwise, which is sharper than the per-emotion table.
# AU6 (cheek raiser) lifts the lower lid and cheek, so it belongs to eyes and cheeks; AU10/AU11
# deepen the nasolabial furrow (nose and cheeks) and raise the upper lip (mouth).
DEFAULT_REGIONS: tuple[dict, ...] = (
    {
        "name": "left_eye",
        "box": [0, 0, 100, 80],
        "emotions": ["negative", "surprise"],
        "action_units": [1, 2, 4, 5, 6, 7, 41, 42, 43, 44, 45, 46, 61, 62, 63, 64],
    },
    {
        "name": "right_eye",
        "box": [140, 0, 240, 80],
        "emotions": ["negative", "surprise"],
        "action_units": [1, 2, 4, 5, 6, 7, 41, 42, 43, 44, 45, 46, 61, 62, 63, 64],
    },
    {
        "name": "nose",
        "box": [60, 80, 180, 160],
        "emotions": ["negative"],
        "action_units": [9, 10, 11, 38, 39],
    },
    {
        "name": "left_cheek",
        "box": [0, 120, 60, 180],
        "emotions": ["positive"],
        "action_units": [6, 10, 11, 12, 13, 14],
    },
    {
        "name": "right_cheek",
        "box": [180, 120, 240, 180],
        "emotions": ["positive"],
        "action_units": [6, 10, 11, 12, 13, 14],
    },
    {
        "name": "mouth",
        "box": [40, 160, 200, 220],
        "emotions": ["negative", "positive", "surprise"],
        "action_units": [10, 12, 13, 14, 15, 16, 17, 18, 20, 22, 23, 24, 25, 26, 27, 28],
    },
)

# The face box of the authors' code, on dlib-68 landmark indices (DESIGN.md section 1): left edge
# at the outer end of the image-left brow, right edge at the outer end of the image-right brow,
# top at the higher of the two brow points 18 / 25, bottom at the chin.
DEFAULT_FACE_BOX_LANDMARKS: dict = {"left": [17], "right": [26], "top": [18, 25], "bottom": [8]}

DEFAULT_ID2LABEL: dict = {0: "negative", 1: "positive", 2: "surprise"}

INPUT_MODES = ("frames", "onset_difference", "flow")

# Values that differ from the paper in the "fast" preset, with the reason for each.
FAST_PRESET: dict = {
    # The region CNNs read each frame minus the clip's first frame. Trained on raw crops, the
    # CNNs learn who a face is rather than how it moves: on the synthetic megc2019 profile
    # (4-fold split by subject, fast preset otherwise) raw crops scored UF1 0.13 on the held-out
    # subjects, onset differences 0.92 (one quarter of the subjects held out, the rest trained on).
    "input_mode": "onset_difference",
    # The CNN's ReLU features carry large per-dimension offsets next to small class differences;
    # standardised with training statistics, the LSTMs learn (see MieTemporalFusion).
    "standardize_features": True,
    # Half-size crops (120 x 140 canvas, largest crop 80 x 40) make every convolution 4x cheaper;
    # the landmarks-to-canvas warp keeps the geometry, and a micro-movement of 2-6 px on a 300 px
    # face is still 1-3 px on the half canvas.
    "crop_scale": 0.5,
    # The 1024-wide dense layer holds 74k of the 106k parameters of each region CNN and little
    # of its accuracy on 3-class data; 256 keeps the 20-d feature bottleneck of the paper.
    "cnn_hidden_size": 256,
    # 120 LSTM units for 20-d inputs over-fit small folds; 64 halves the temporal stage.
    "lstm_hidden_size": 64,
    # Real recordings move: every frame is mapped onto the reference frame by a similarity
    # transform fitted on rigid points before the fixed boxes are cut (the paper's databases held
    # heads still, so the paper did not need it). On synthetic clips with a known head motion
    # (rotation up to 10 deg, translation up to 30 px, scale up to 8 %) it recovers the motion to
    # about 0.1 px at the rigid points (docs/method.md).
    "align": True,
}

# The fast preset reading motion instead of grey levels: dense optical flow from the reference
# frame, three channels (u, v, magnitude) per region (docs/method.md, "Motion input").
FLOW_PRESET: dict = {**FAST_PRESET, "input_mode": "flow", "num_channels": 3}

PRESETS: dict[str, dict] = {"paper": {}, "fast": FAST_PRESET, "flow": FLOW_PRESET}


class MieConfig(PretrainedConfig):
    r"""
    Configuration of [`MieForVideoClassification`]: the region table, the sizes of the region
    CNNs, the region LSTMs and the fusion head, and the loss. The defaults are the paper's
    ("A spatiotemporal deep learning solution for automatic micro-expressions recognition from
    local facial regions", Aouayeb et al., IEEE MLSP 2019); `MieConfig.from_preset("fast")`
    gives a smaller CPU variant.

    Args:
        regions (`list[dict]`, *optional*, defaults to the paper's six regions):
            The region table. Each entry has `name` (str), `box` ([x0, y0, x1, y1] in canvas
            pixels, end exclusive), `emotions` (label names the region answers to; other
            emotions give the region the "not me" label in stage 1) and `action_units` (FACS AU
            numbers that move inside the region).
        canvas_size (`list[int]`, *optional*, defaults to `[240, 280]`):
            Width and height of the canvas the face box is fitted into ("contain") before the
            region boxes are cut; the boxes are given in this canvas.
        crop_scale (`float`, *optional*, defaults to 1.0):
            Scale from canvas pixels to crop pixels. 1.0 gives the paper's crop sizes
            (100x80, 100x80, 120x80, 60x60, 60x60, 160x60, w x h).
        face_box_landmarks (`dict`, *optional*, defaults to dlib points 17 / 26 / 18,25 / 8):
            dlib-68 indices whose extreme gives each side of the face box: keys `left`, `right`,
            `top`, `bottom`, each a list of indices.
        num_channels (`int`, *optional*, defaults to 1):
            Input channels of the crops: 1 (grey, the default; SAMM is greyscale) or 3 (RGB; with
            `input_mode="flow"`, u, v and magnitude).
        align (`bool`, *optional*, defaults to `False`):
            Map every frame onto the reference frame (the first with a usable face) by a
            similarity transform fitted on rigid points (eye corners, nose bridge and tip) before
            the fixed boxes are cut, so head motion is removed and the expression's own movement
            stays inside the boxes. `False` is the paper: boxes fixed on the reference frame and
            cut from the frames as they are.
        max_head_turn (`float`, *optional*, defaults to 20.0):
            Degrees a face may turn out of the image plane (yaw and pitch together) from the
            reference frame, and the reference from the camera, before its frames are marked as
            not usable (`face_present` False): a similarity transform cannot undo such a turn.
        input_mode (`str`, *optional*, defaults to `"frames"`):
            What the region CNNs see of each frame: `"frames"`, the crops as they are (the paper),
            `"onset_difference"`, each crop minus the same region's crop in the clip's first
            frame (values in [-1, 1]; the difference cancels the person's appearance and leaves
            the movement; see `FAST_PRESET` for the measured effect), or `"flow"`, dense optical
            flow from the reference frame to each frame on the face canvas, divided by the clip's
            peak, as three channels u, v, magnitude (`modeling_mie.flow`; needs
            `num_channels=3`).
        conv1_filters (`int`, *optional*, defaults to 4):
            Filters of the first convolution of each region CNN.
        conv1_kernel_size (`int`, *optional*, defaults to 5):
            Kernel size of the first convolution.
        conv2_filters (`int`, *optional*, defaults to 8):
            Filters of the second convolution.
        conv2_kernel_size (`int`, *optional*, defaults to 3):
            Kernel size of the second convolution.
        inception_filters (`int`, *optional*, defaults to 16):
            Filters of each of the parallel convolutions of the inception block.
        inception_kernel_sizes (`list[int]`, *optional*, defaults to `[1, 3, 5, 7]`):
            Kernel sizes of the parallel convolutions (odd numbers).
        cnn_hidden_size (`int`, *optional*, defaults to 1024):
            Width of the dense layer after global average pooling.
        cnn_dropout (`float`, *optional*, defaults to 0.2):
            Dropout after that dense layer.
        region_feature_size (`int`, *optional*, defaults to 20):
            Size of the per-frame region feature passed to the LSTMs.
        standardize_features (`bool`, *optional*, defaults to `False`):
            Standardise each region feature with fixed training-set statistics before the LSTMs
            (not in the paper, which fed raw features; the fast preset does it, see
            `MieTemporalFusion` for why).
        lstm_hidden_size (`int`, *optional*, defaults to 120):
            Units of each region LSTM.
        lstm_dropout (`float`, *optional*, defaults to 0.2):
            Dropout on the last LSTM state of each region before fusion.
        fusion_hidden_size (`int`, *optional*, defaults to 64):
            Width of the fusion dense layer.
        leaky_relu_slope (`float`, *optional*, defaults to 0.3):
            Negative slope of the fusion LeakyReLU (Keras' default, which the paper used).
        focal_gamma (`float`, *optional*, defaults to 2.0):
            Focusing parameter gamma of the focal loss (0 gives weighted cross-entropy).
        focal_alpha (`list[float]`, *optional*):
            Per-class weights alpha of the focal loss, one per label. `None` weighs classes
            equally; training sets inverse class frequencies of the training subjects.
        region_focal_alpha (`list[float]`, *optional*):
            Per-class weights of the stage-1 focal loss, one per region class (the labels, then
            "not me"). `None` weighs them equally.
        temperature (`float`, *optional*, defaults to 1.0):
            The logits are divided by it (temperature scaling). 1 while training; `train/loso.py`
            sets the final model's from the run's out-of-fold predictions
            (`modeling_mie.calibration`), so its probabilities say how often it is right.
        trained_motion_peak (`float`, *optional*):
            With `input_mode="flow"`: the 99th percentile of the training clips' motion peaks
            (canvas px, the processor's `motion_peak`), set by `train/loso.py` for the final
            model. A clip that moves far more than this (the app: 3x) is outside what the model
            learned, e.g. a macro-expression. `None`: unknown.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Not used by the default initialisation (PyTorch's own, as Keras' Glorot is close);
            kept for the transformers API.

    Example:

    ```python
    >>> from modeling_mie import MieConfig, MieForVideoClassification
    >>> config = MieConfig.from_preset("paper")
    >>> model = MieForVideoClassification(config)
    ```
    """

    model_type = "mie"

    regions: list | None = None
    canvas_size: list | None = None
    crop_scale: float | int = 1.0
    face_box_landmarks: dict | None = None
    num_channels: int = 1
    align: bool = False
    max_head_turn: float | int = 20.0
    input_mode: str = "frames"
    conv1_filters: int = 4
    conv1_kernel_size: int = 5
    conv2_filters: int = 8
    conv2_kernel_size: int = 3
    inception_filters: int = 16
    inception_kernel_sizes: list | None = None
    cnn_hidden_size: int = 1024
    cnn_dropout: float | int = 0.2
    region_feature_size: int = 20
    standardize_features: bool = False
    lstm_hidden_size: int = 120
    lstm_dropout: float | int = 0.2
    fusion_hidden_size: int = 64
    leaky_relu_slope: float | int = 0.3
    focal_gamma: float | int = 2.0
    focal_alpha: list | None = None
    region_focal_alpha: list | None = None
    initializer_range: float | int = 0.02
    temperature: float | int = 1.0
    trained_motion_peak: float | int | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(DEFAULT_ID2LABEL)
        if self.regions is None:
            self.regions = copy.deepcopy(list(DEFAULT_REGIONS))
        if self.canvas_size is None:
            self.canvas_size = [240, 280]
        if self.face_box_landmarks is None:
            self.face_box_landmarks = copy.deepcopy(DEFAULT_FACE_BOX_LANDMARKS)
        if self.inception_kernel_sizes is None:
            self.inception_kernel_sizes = [1, 3, 5, 7]
        super().__post_init__(**kwargs)
        # transformers derives label2id only when num_labels is set; keep the two maps in step.
        self.label2id = {name: int(i) for i, name in self.id2label.items()}
        # JSON turns tuples into lists and keys into strings; keep one form in memory.
        self.regions = [dict(r) for r in self.regions]
        self.canvas_size = [int(v) for v in self.canvas_size]
        self.inception_kernel_sizes = [int(k) for k in self.inception_kernel_sizes]
        self.face_box_landmarks = {k: [int(i) for i in v] for k, v in self.face_box_landmarks.items()}
        self._validate_mie()

    # ------------------------------------------------------------------ validation
    def _validate_mie(self) -> None:
        names = list(self.label2id)
        if len(names) < 2:
            raise ValueError(f"MieConfig needs at least 2 labels, got id2label={self.id2label}.")
        if len(self.canvas_size) != 2 or min(self.canvas_size) <= 0:
            raise ValueError(
                f"canvas_size must be [width, height] with positive values, got {self.canvas_size}."
            )
        if not self.regions:
            raise ValueError("regions must list at least one region, got an empty table.")
        seen = set()
        cw, ch = self.canvas_size
        for i, region in enumerate(self.regions):
            missing = {"name", "box", "emotions"} - set(region)
            if missing:
                raise ValueError(
                    f"regions[{i}] lacks {sorted(missing)}; every region needs name, box, emotions "
                    f"(and optionally action_units). Got {region}."
                )
            if region["name"] in seen:
                raise ValueError(f"regions[{i}] repeats the name {region['name']!r}; names must be unique.")
            seen.add(region["name"])
            box = region["box"]
            if (
                len(box) != 4
                or not (0 <= box[0] < box[2] <= cw)
                or not (0 <= box[1] < box[3] <= ch)
            ):
                raise ValueError(
                    f"regions[{i}] ({region['name']}) has box {box}; expected [x0, y0, x1, y1] with "
                    f"0 <= x0 < x1 <= {cw} and 0 <= y0 < y1 <= {ch} (the canvas_size)."
                )
            unknown = [e for e in region["emotions"] if e not in self.label2id]
            if unknown:
                raise ValueError(
                    f"regions[{i}] ({region['name']}) answers to {unknown}, which are not labels; "
                    f"allowed values are {names}."
                )
            region.setdefault("action_units", [])
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {list(INPUT_MODES)}, got {self.input_mode!r}.")
        if self.input_mode == "flow" and self.num_channels != 3:
            raise ValueError(
                f"input_mode='flow' gives three channels per region (u, v, magnitude); set num_channels=3, "
                f"got {self.num_channels}."
            )
        if self.num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grey) or 3 (RGB), got {self.num_channels}.")
        if not isinstance(self.align, bool):
            raise ValueError(f"align must be True or False, got {self.align!r}.")
        if not 0 < self.max_head_turn <= 90:
            raise ValueError(f"max_head_turn must be in (0, 90] degrees, got {self.max_head_turn}.")
        if not 0 < self.temperature <= 100:
            raise ValueError(f"temperature must be in (0, 100], got {self.temperature}.")
        if self.trained_motion_peak is not None and not self.trained_motion_peak > 0:
            raise ValueError(f"trained_motion_peak must be None or a positive number of px, got {self.trained_motion_peak}.")
        if not 0 < self.crop_scale <= 4:
            raise ValueError(f"crop_scale must be in (0, 4], got {self.crop_scale}.")
        for k in self.inception_kernel_sizes:
            if k < 1 or k % 2 == 0:
                raise ValueError(
                    f"inception_kernel_sizes must be odd positive sizes, got {self.inception_kernel_sizes}."
                )
        for key in ("conv1_kernel_size", "conv2_kernel_size"):
            if getattr(self, key) < 1 or getattr(self, key) % 2 == 0:
                raise ValueError(f"{key} must be an odd positive size, got {getattr(self, key)}.")
        for key in (
            "conv1_filters",
            "conv2_filters",
            "inception_filters",
            "cnn_hidden_size",
            "region_feature_size",
            "lstm_hidden_size",
            "fusion_hidden_size",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}.")
        for key in ("cnn_dropout", "lstm_dropout"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"{key} must be in [0, 1), got {getattr(self, key)}.")
        if self.focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {self.focal_gamma}.")
        for key, size in (("focal_alpha", self.num_labels), ("region_focal_alpha", self.num_region_classes)):
            alpha = getattr(self, key)
            if alpha is not None and (len(alpha) != size or min(alpha) < 0):
                raise ValueError(f"{key} must hold {size} non-negative weights, got {alpha}.")
        sides = {"left", "right", "top", "bottom"}
        if set(self.face_box_landmarks) != sides or any(
            not v or min(v) < 0 or max(v) > 67 for v in self.face_box_landmarks.values()
        ):
            raise ValueError(
                "face_box_landmarks must map each of left, right, top, bottom to dlib-68 indices "
                f"(0-67), got {self.face_box_landmarks}."
            )

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MieConfig":
        """Build a config from a named preset, with `overrides` applied on top.

        `"paper"` is the paper's model exactly (crops at canvas scale, dense 1024, LSTM 120).
        `"fast"` halves the crop size (4x fewer convolution FLOPs), narrows the dense layer to
        256 and the LSTMs to 64 units, for LOSO training on a CPU, and aligns every frame onto
        the reference face; see `FAST_PRESET` for why.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; allowed values are {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ derived values
    @property
    def region_names(self) -> list[str]:
        return [r["name"] for r in self.regions]

    @property
    def num_regions(self) -> int:
        return len(self.regions)

    @property
    def not_me_id(self) -> int:
        """Stage-1 class index of "not me": one past the last emotion label."""
        return self.num_labels

    @property
    def num_region_classes(self) -> int:
        """Stage-1 classes of each region CNN: the emotion labels plus "not me"."""
        return self.num_labels + 1

    @property
    def region_crop_sizes(self) -> list[tuple[int, int]]:
        """(height, width) in pixels of each region's crop, before padding to `crop_size`."""
        sizes = []
        for r in self.regions:
            x0, y0, x1, y1 = r["box"]
            sizes.append((_scaled(y1 - y0, self.crop_scale), _scaled(x1 - x0, self.crop_scale)))
        return sizes

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) every region crop is padded to: the largest height and width."""
        sizes = self.region_crop_sizes
        return max(h for h, _ in sizes), max(w for _, w in sizes)

    @property
    def cnn_channels(self) -> int:
        """Channels after the inception block: its branches plus the second convolution."""
        return self.inception_filters * len(self.inception_kernel_sizes) + self.conv2_filters

    def region_labels(self, label: int, action_units=None) -> list[int]:
        """Stage-1 label of every region for a clip of emotion `label`.

        A region takes the clip's label if it answers to that emotion (the `emotions` column of
        the region table) and "not me" (`not_me_id`) otherwise. If `action_units` (iterable of
        AU numbers) is given and non-empty, a region takes the clip's label when one of those
        AUs acts in it (the `action_units` column) instead; the clip's own AUs then decide.
        """
        if not 0 <= int(label) < self.num_labels:
            raise ValueError(f"label must be in [0, {self.num_labels}), got {label}.")
        name = self.id2label[int(label)]
        aus = {int(a) for a in action_units} if action_units else set()
        out = []
        for region in self.regions:
            if aus:
                hit = bool(aus & {int(a) for a in region["action_units"]})
            else:
                hit = name in region["emotions"]
            out.append(int(label) if hit else self.not_me_id)
        return out


def _scaled(pixels: int, scale: float) -> int:
    return max(1, int(math.floor(pixels * scale + 0.5)))


__all__ = ["MieConfig", "DEFAULT_REGIONS", "PRESETS"]
