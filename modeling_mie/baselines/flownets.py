"""The three small flow CNNs of the seed paper's comparison (OFF-ApexNet, STSTNet, Dual-Inception) and their training loop.

Each network classifies a clip from its onset -> apex optical flow (`flowfeatures.onset_apex_flow`),
shrunk to 28 x 28. `flow_net_input` turns one flow field into the (3, 28, 28) input every net reads
(channels u, v, optical strain); each net takes the channels its paper takes:

    OFF-ApexNet (Gan, Liong, Yau, Huang & Tan, Signal Processing: Image Communication 2019): u and
        v as two streams, each conv 5 x 5 (6) -> ReLU -> max-pool 2 -> conv 5 x 5 (16) -> ReLU ->
        max-pool 2; the two 7 x 7 x 16 maps flattened and concatenated -> FC 1024 -> FC 1024 ->
        classes.
    STSTNet (Liong, Gan, See, Khor & Huang, FG 2019; the authors' PyTorch code,
        github.com/christy1206/STSTNet): all three channels in each of three shallow streams, conv
        3 x 3 with 3, 5 and 8 filters (padding 2) -> ReLU -> BatchNorm -> max-pool 3 / stride 3
        (padding 1) -> dropout 0.5; concatenated (16 channels, 10 x 10) -> average-pool 2 -> FC to
        classes.
    Dual-Inception (Zhou, Mao & Xue, FG 2019; the authors' Keras code,
        github.com/xly135846/MEGC2019): u and v as two streams, each two Inception modules (1 x 1;
        1 x 1 -> 3 x 3; 1 x 1 -> 5 x 5; 3 x 3 max-pool -> 1 x 1; 6 filters per branch, then 16),
        each followed by max-pool 2; the two 7 x 7 x 64 maps concatenated -> FC 1024 -> classes.

`PAPER_SCHEDULES` holds each paper's optimiser settings; `docs/baselines.md` says, net by net,
what the paper (or its code) fixed, what was chosen here where it is silent, and how long one LOSO
fold takes on one CPU thread.

`train_flow_net` trains one net on the training rows of a fold for a fixed number of epochs (no
early stopping, no choice of epoch or weights by anything measured on the held-out rows) and
returns the softmax of the held-out rows after the last epoch. It can also report the held-out
rows' softmax after every epoch, only so that an analysis elsewhere can show what a
"best epoch per subject" protocol would claim; that report never changes the training (same seed,
same final probabilities).

Input normalisation. The originals did not feed flow in pixels: they saved every flow component
as an 8-bit image, each image stretched from its own minimum to its own maximum (STSTNet's inputs
are a folder `norm_u_v_os`; Dual-Inception's code reads the flow images and divides by 255), and
resized those images to 28 x 28. `normalise="minmax"` (the default, for all three) does the same
without the 8-bit rounding: each channel of each sample is mapped to [0, 1] by its own minimum and
maximum (a constant channel becomes 0). It uses nothing but the sample itself, so it leaks nothing
between rows. `normalise="none"` feeds the displacement in pixels of the 28 x 28 image and strain
as they are, which keeps the motion's amplitude that min-max scaling throws away.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..devices import float32_mode
from ..errors import MieInputError

logger = logging.getLogger(__name__)

#: The nets by name, in the order of the seed paper's table.
FLOW_NETS = ("offapexnet", "ststnet", "dual_inception")
#: Side of the square flow image every net reads: 28 x 28 in all three papers.
INPUT_SIZE = 28
#: Input channels of `flow_net_input`, in order.
INPUT_CHANNELS = ("u", "v", "strain")
#: Accepted values of `train_flow_net(normalise=...)`.
NORMALISATIONS = ("minmax", "none")
#: Rows per forward pass when predicting (memory only; results do not depend on it).
PREDICT_CHUNK = 512


# ----------------------------------------------------------------------------------------- input
def _cv2():
    import cv2  # a core dependency (opencv-contrib-python); imported here to keep module import light

    return cv2


def flow_net_input(flow, size: int = INPUT_SIZE) -> np.ndarray:
    """The (3, size, size) float32 input of the flow nets from one onset -> apex flow field.

    Args:
        flow: (H, W, 2) flow in pixels of the face crop, u to the right and v down
            (`onset_apex_flow(...).flow`); H and W at least `size`.
        size: side of the output, 28 for the three nets.

    Returns:
        (3, size, size) float32: channel 0 u and channel 1 v, each shrunk by area averaging
        (OpenCV's INTER_AREA) and scaled by size / W and size / H respectively, so they are
        displacements in pixels of the small image; channel 2 the optical strain magnitude
        (`optical_strain`) computed on the full-resolution flow and then shrunk by area
        averaging, as STSTNet computed strain on the flow of the face crop and resized the strain
        image. Strain is a ratio of displacement to distance, so it needs no scaling.
    """
    from .flowfeatures import optical_strain

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise MieInputError(f"size must be an integer >= 2; got {size!r}.")
    size = int(size)
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise MieInputError(
            f"A flow field must be (height, width, 2) (u, v in pixels); got shape {flow.shape}. "
            "Use modeling_mie.baselines.onset_apex_flow to make one."
        )
    h, w = flow.shape[:2]
    if h < size or w < size:
        raise MieInputError(
            f"The flow field is {w} x {h} pixels; the nets' input is {size} x {size} and is made by area "
            "averaging, which only shrinks. Compute the flow on a larger face crop (128 x 128 by default)."
        )
    flow = flow.astype(np.float32, copy=False)
    if not np.isfinite(flow).all():
        raise MieInputError("The flow field holds NaN or infinite values; every displacement must be a finite number.")
    cv2 = _cv2()
    strain = optical_strain(flow)
    out = np.empty((3, size, size), np.float32)
    out[0] = cv2.resize(np.ascontiguousarray(flow[..., 0]), (size, size), interpolation=cv2.INTER_AREA) * (size / w)
    out[1] = cv2.resize(np.ascontiguousarray(flow[..., 1]), (size, size), interpolation=cv2.INTER_AREA) * (size / h)
    out[2] = cv2.resize(strain, (size, size), interpolation=cv2.INTER_AREA)
    return out


def normalise_inputs(inputs: np.ndarray, normalise: str = "minmax") -> np.ndarray:
    """(N, C, H, W) float32 inputs as the nets are fed them: "minmax" maps every channel of every
    sample to [0, 1] by its own minimum and maximum (a constant channel becomes 0); "none" returns
    them unchanged."""
    if normalise not in NORMALISATIONS:
        raise MieInputError(f"normalise must be one of {', '.join(NORMALISATIONS)}; got {normalise!r}.")
    inputs = np.asarray(inputs, np.float32)
    if normalise == "none":
        return inputs
    low = inputs.min(axis=(2, 3), keepdims=True)
    span = inputs.max(axis=(2, 3), keepdims=True) - low
    return np.where(span > 0, (inputs - low) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


# --------------------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class FlowNetSchedule:
    """How a flow net is trained: Adam on plain cross-entropy for a fixed number of epochs.

    All three papers train with Adam and plain (unweighted) cross-entropy.

    Args:
        epochs (`int`): passes over the training rows; training always runs all of them.
        batch_size (`int`): rows per optimiser step; the last batch of an epoch may be smaller.
        lr (`float`): Adam's learning rate.
        weight_decay (`float`, defaults to 0.0): L2 penalty added by Adam (none in the papers).
        betas (`tuple[float, float]`, defaults to (0.9, 0.999)): Adam's moment decay rates
            (Keras' and PyTorch's defaults, which the public code of STSTNet and Dual-Inception use).
        eps (`float`, defaults to 1e-8): Adam's epsilon (the same defaults).
        shuffle (`bool`, defaults to True): draw a new order of the training rows every epoch.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    shuffle: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise MieInputError(f"FlowNetSchedule.{name} must be an integer >= 1; got {value!r}.")
        if not _positive(self.lr):
            raise MieInputError(f"FlowNetSchedule.lr must be a positive number; got {self.lr!r}.")
        if not (_number(self.weight_decay) and self.weight_decay >= 0):
            raise MieInputError(f"FlowNetSchedule.weight_decay must be a number >= 0; got {self.weight_decay!r}.")
        if not (len(self.betas) == 2 and all(_number(b) and 0 <= b < 1 for b in self.betas)):
            raise MieInputError(f"FlowNetSchedule.betas must be two numbers in [0, 1); got {self.betas!r}.")
        if not _positive(self.eps):
            raise MieInputError(f"FlowNetSchedule.eps must be a positive number; got {self.eps!r}.")


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


def _positive(value) -> bool:
    return _number(value) and value > 0


#: Each paper's schedule (see docs/baselines.md for the sources and the choices):
#: - OFF-ApexNet: Adam at 1e-4 as the paper is cited. Its 3,000 epochs (as recalled) would take about 20 min per LOSO
#:   fold on one CPU thread (0.40 s per epoch of 435 rows, bench/flow_nets.py), so 60 epochs (24 s
#:   on the busy 2-core machine); batch 32, Keras' default (the paper gives none we could find),
#:   which makes 840 Adam steps of those 60 epochs.
#: - STSTNet: the authors' PyTorch code (main.py): Adam at 5e-5, batch 256, 800 epochs.
#: - Dual-Inception: the authors' Keras code (dual_inception.py): Adam at 1e-4, batch 3, 40 epochs.
PAPER_SCHEDULES: dict[str, FlowNetSchedule] = {
    "offapexnet": FlowNetSchedule(epochs=60, batch_size=32, lr=1e-4),
    "ststnet": FlowNetSchedule(epochs=800, batch_size=256, lr=5e-5),
    "dual_inception": FlowNetSchedule(epochs=40, batch_size=3, lr=1e-4),
}
#: The CPU schedules of `train/loso.py --preset fast` (the default) and `train/table2.py`: fewer
#: optimiser steps, so 68 folds x 3 seeds x 3 nets fit a 2-core machine, with the papers' optimiser,
#: loss and input. Chosen for time per fold (about 14-20 s on one thread of the busy 2-core machine,
#: against 24, 67 and 176 s for the schedules above) with the training loss converged (below 0.1
#: after the last epoch on the synthetic megc2019 profile); a larger rate where the steps were cut
#: most. `--preset paper` runs `PAPER_SCHEDULES`.
FAST_SCHEDULES: dict[str, FlowNetSchedule] = {
    "offapexnet": FlowNetSchedule(epochs=30, batch_size=32, lr=1e-4),
    "ststnet": FlowNetSchedule(epochs=200, batch_size=256, lr=2e-4),
    "dual_inception": FlowNetSchedule(epochs=10, batch_size=32, lr=3e-4),
}


# ------------------------------------------------------------------------------------------ nets
def _glorot_init(module: nn.Module) -> None:
    """Keras' defaults for every convolution and dense layer: Glorot-uniform weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
        raise MieInputError(
            f"The flow nets take (batch, 3, {INPUT_SIZE}, {INPUT_SIZE}) inputs (u, v, strain) from "
            f"flow_net_input; got shape {tuple(x.shape)}."
        )


class OffApexStream(nn.Module):
    """One OFF-ApexNet stream: (N, 1, 28, 28) flow component -> (N, 16, 7, 7)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)  # 'same': 28 x 28
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)  # 14 x 14
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5, padding=2)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)  # 7 x 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        return self.pool2(self.act2(self.conv2(x)))


class OffApexNet(nn.Module):
    """OFF-ApexNet: u and v through two LeNet-like streams, two dense layers of 1024.

    Paper (as summarised by others; no author code is public): the horizontal and vertical
    onset -> apex flow images (28 x 28) through one stream each (two convolutions with 6 and 16
    filters of 5 x 5, each followed by 2 x 2 max-pooling), concatenated, two fully connected layers
    of 1024 neurons, softmax output. Chosen here where that description is silent: 'same' padding (28 -> 14 -> 7, so 2 x 784 features; this is the
    layout whose size matches the 2.66 M parameters others report for OFF-ApexNet), ReLU after each
    convolution and dense layer, dropout 0.5 after each dense layer, Keras' initialisation.

    Parameters (3 classes): per stream 5*5*1*6 + 6 = 156 and 5*5*6*16 + 16 = 2,416 (2,572; two
    streams 5,144); fc1 1568*1024 + 1024 = 1,606,656; fc2 1024*1024 + 1024 = 1,049,600;
    head 1024*3 + 3 = 3,075; total 2,664,475.
    """

    def __init__(self, num_classes: int = 3, dropout: float = 0.5):
        super().__init__()
        self.stream_u = OffApexStream()
        self.stream_v = OffApexStream()
        self.fc1 = nn.Linear(2 * 16 * 7 * 7, 1024)
        self.act1 = nn.ReLU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 1024)
        self.act2 = nn.ReLU()
        self.drop2 = nn.Dropout(dropout)
        self.head = nn.Linear(1024, num_classes)
        _glorot_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 28, 28) u, v, strain -> (N, 1568): the two streams' maps, flattened."""
        _check_input(x)
        u = self.stream_u(x[:, 0:1]).flatten(1)  # (N, 784)
        v = self.stream_v(x[:, 1:2]).flatten(1)  # (N, 784)
        return torch.cat([u, v], dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 1568) -> (N, num_classes) logits."""
        x = self.drop1(self.act1(self.fc1(features)))
        x = self.drop2(self.act2(self.fc2(x)))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class STSTNet(nn.Module):
    """STSTNet: three one-layer streams over all three channels, one dense layer.

    Paper and the authors' PyTorch code: the input is the 28 x 28 x 3 stack of optical strain and
    the two flow components; three streams of one 3 x 3 convolution each, with 3, 5 and 8 filters
    (padding 2: 30 x 30), ReLU then BatchNorm, 3 x 3 max-pooling with stride 3 (padding 1:
    10 x 10), dropout 0.5; the 16 maps concatenated, 2 x 2 average-pooling (5 x 5), one fully
    connected layer to the classes. Kept as in that code, including the order ReLU -> BatchNorm and
    PyTorch's default initialisation. Channel order (u, v, strain here) does not matter to a net
    whose every stream reads all three channels from a random start.

    The three streams run as one convolution of 16 filters: every stream reads the same input and
    everything after the convolution up to the concatenation (ReLU, BatchNorm, max-pooling,
    dropout) acts on each channel alone, so channels 0-2, 3-7 and 8-15 are exactly the three
    streams and the concatenation is free (`STREAM_WIDTHS`; a test rebuilds the streams from the
    slices and compares). One call instead of three, in channels-last layout: about half the time
    of the three-module version per training step on one CPU thread.

    Parameters (3 classes): convolutions 3*3*3*3 + 3 = 84, 3*3*3*5 + 5 = 140, 3*3*3*8 + 8 = 224
    (448 = 3*3*3*16 + 16); BatchNorm scales and shifts 2*(3 + 5 + 8) = 32; fc 400*3 + 3 = 1,203;
    total 1,683 (plus BatchNorm's running statistics, which are buffers, not parameters).
    """

    #: Filters of the three streams, which are consecutive channel blocks of `conv1`.
    STREAM_WIDTHS = (3, 5, 8)

    def __init__(self, num_classes: int = 3, dropout: float = 0.5):
        super().__init__()
        width = sum(self.STREAM_WIDTHS)
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, padding=2)  # 28 -> 30
        self.act1 = nn.ReLU()
        self.norm1 = nn.BatchNorm2d(width)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)  # 30 -> 10
        self.drop1 = nn.Dropout(dropout)
        self.pool2 = nn.AvgPool2d(kernel_size=2, stride=2)  # 10 -> 5
        self.head = nn.Linear(width * 5 * 5, num_classes)
        self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 28, 28) u, v, strain -> (N, 400)."""
        _check_input(x)
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.drop1(self.pool1(self.norm1(self.act1(self.conv1(x)))))  # (N, 16, 10, 10)
        return self.pool2(x).flatten(1)  # (N, 16, 5, 5) -> (N, 400), channel-major like the original

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 400) -> (N, num_classes) logits."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class InceptionModule(nn.Module):
    """Four branches of `width` filters each, 'same' size, concatenated: 1 x 1; 1 x 1 -> 3 x 3;
    1 x 1 -> 5 x 5; 3 x 3 max-pool (stride 1) -> 1 x 1; ReLU after every convolution."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        relu = nn.ReLU
        self.branch1 = nn.Sequential(nn.Conv2d(in_channels, width, 1), relu())
        self.branch3 = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), relu(), nn.Conv2d(width, width, 3, padding=1), relu()
        )
        self.branch5 = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), relu(), nn.Conv2d(width, width, 5, padding=2), relu()
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(in_channels, width, 1), relu()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class DualInceptionStream(nn.Module):
    """One Dual-Inception stream: (N, 1, 28, 28) -> (N, 64, 7, 7)."""

    def __init__(self):
        super().__init__()
        self.inception1 = InceptionModule(1, 6)  # 24 channels
        self.pool1 = nn.MaxPool2d(2)  # 14 x 14
        self.inception2 = InceptionModule(24, 16)  # 64 channels
        self.pool2 = nn.MaxPool2d(2)  # 7 x 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool2(self.inception2(self.pool1(self.inception1(x))))


class DualInception(nn.Module):
    """Dual-Inception: u and v through two streams of two Inception modules, one dense layer.

    Paper and the authors' Keras code: the horizontal and vertical flow images (28 x 28) through
    one stream each; a stream is an Inception module with 6 filters per branch, 2 x 2 max-pooling,
    an Inception module with 16 filters per branch, 2 x 2 max-pooling; the two streams flattened
    and concatenated, a dense layer of 1024 (ReLU), softmax output; no dropout; Keras' default
    initialisation (Glorot-uniform, zero bias). One difference: the Keras code reads each flow
    image with `cv2.imread`, as 3 channels; here each stream reads its one flow channel, which
    only changes the first module's 1 x 1 convolutions (1 input channel, not 3).

    Parameters (3 classes), per stream: module 1 (in 1, width 6): 1x1 12; 1x1 12 + 3x3 330;
    1x1 12 + 5x5 906; pool-1x1 12; = 1,284. Module 2 (in 24, width 16): 1x1 400; 1x1 400 + 3x3
    2,320; 1x1 400 + 5x5 6,416; pool-1x1 400; = 10,336. Stream 11,620, two 23,240;
    fc1 6272*1024 + 1024 = 6,423,552; head 1024*3 + 3 = 3,075; total 6,449,867.
    """

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.stream_u = DualInceptionStream()
        self.stream_v = DualInceptionStream()
        self.fc1 = nn.Linear(2 * 64 * 7 * 7, 1024)
        self.act1 = nn.ReLU()
        self.head = nn.Linear(1024, num_classes)
        _glorot_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 28, 28) u, v, strain -> (N, 6272)."""
        _check_input(x)
        u = self.stream_u(x[:, 0:1]).flatten(1)  # (N, 3136)
        v = self.stream_v(x[:, 1:2]).flatten(1)  # (N, 3136)
        return torch.cat([u, v], dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 6272) -> (N, num_classes) logits."""
        return self.head(self.act1(self.fc1(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_NET_CLASSES = {"offapexnet": OffApexNet, "ststnet": STSTNet, "dual_inception": DualInception}


def _check_name(name) -> str:
    if name not in FLOW_NETS:
        raise MieInputError(f"Unknown flow net {name!r}; the flow nets are {', '.join(FLOW_NETS)}.")
    return name


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise MieInputError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
    return int(num_classes)


def build_flow_net(name: str, num_classes: int = 3) -> nn.Module:
    """A freshly initialised flow net, drawn from torch's global random generator.

    Args:
        name: one of `FLOW_NETS`.
        num_classes: size of the output.

    Returns:
        A module whose forward takes (N, 3, 28, 28) float32 inputs (u, v, strain, from
        `flow_net_input`) and returns (N, num_classes) logits. OFF-ApexNet and Dual-Inception read
        u and v, STSTNet all three channels.
    """
    return _NET_CLASSES[_check_name(name)](num_classes=_check_num_classes(num_classes))


# -------------------------------------------------------------------------------------- training
@dataclass
class FlowNetOutcome:
    """What `train_flow_net` returns.

    Attributes:
        probabilities: (M, num_classes) float32 softmax of the test rows after the last epoch.
        epoch_probabilities: one (M, num_classes) float32 array per epoch, the test rows' softmax
            after that epoch; only with `report_epochs` (else empty). For reporting only.
        losses: mean training cross-entropy of each epoch (over the rows, in training mode).
        seconds: wall time of the whole call.
    """

    probabilities: np.ndarray
    epoch_probabilities: list[np.ndarray] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _check_inputs(inputs, name: str, allow_empty: bool = False) -> np.ndarray:
    inputs = np.asarray(inputs)
    if inputs.ndim != 4 or tuple(inputs.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
        raise MieInputError(
            f"{name} must be (rows, 3, {INPUT_SIZE}, {INPUT_SIZE}) arrays from flow_net_input; got shape {inputs.shape}."
        )
    if inputs.shape[0] == 0 and not allow_empty:
        raise MieInputError(f"{name} has no rows.")
    if not np.issubdtype(inputs.dtype, np.number) or np.issubdtype(inputs.dtype, np.complexfloating):
        raise MieInputError(f"{name} must hold real numbers; got dtype {inputs.dtype}.")
    inputs = inputs.astype(np.float32, copy=False)
    if not np.isfinite(inputs).all():
        raise MieInputError(f"{name} holds NaN or infinite values; every input must be a finite number.")
    return inputs


def _check_labels(labels, rows: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (rows,):
        raise MieInputError(f"train_labels must be one label per training row, shape ({rows},); got {labels.shape}.")
    whole = np.issubdtype(labels.dtype, np.floating) and bool(np.all(labels == np.round(labels)))
    if not (np.issubdtype(labels.dtype, np.integer) or whole):
        raise MieInputError(f"train_labels must be integer class indices; got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise MieInputError(
            f"train_labels must lie in 0 .. {num_classes - 1} (num_classes={num_classes}); "
            f"got values {np.unique(labels).tolist()}."
        )
    if len(np.unique(labels)) < 2:
        raise MieInputError(
            f"A flow net needs at least two classes among the training rows; got only {np.unique(labels).tolist()}."
        )
    return labels


def _predict(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """(M, num_classes) float32 softmax of `inputs` in eval mode; restores the model's mode and
    touches no random generator (dropout is off, BatchNorm reads its running statistics)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            chunks = [torch.softmax(model(inputs[i : i + PREDICT_CHUNK]), dim=1) for i in range(0, len(inputs), PREDICT_CHUNK)]
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, model.head.out_features), np.float32)
    return torch.cat(chunks).float().cpu().numpy()


def train_flow_net(
    name: str,
    train_inputs,
    train_labels,
    test_inputs,
    seed: int,
    schedule: FlowNetSchedule | None = None,
    num_classes: int = 3,
    report_epochs: bool = False,
    normalise: str = "minmax",
    device: str | torch.device = "cpu",
) -> FlowNetOutcome:
    """Train a flow net on one fold's training rows, then predict its test rows.

    Args:
        name: one of `FLOW_NETS`.
        train_inputs: (N, 3, 28, 28) float inputs of the training rows (`flow_net_input`).
        train_labels: (N,) integer classes in 0 .. num_classes - 1, at least two distinct.
        test_inputs: (M, 3, 28, 28) float inputs of the held-out rows (M may be 0).
        seed: fixes the initial weights, dropout and batch order: the same call gives the same
            result on the same machine and torch build.
        schedule: None for the paper's (`PAPER_SCHEDULES[name]`).
        num_classes: size of the output.
        report_epochs: also predict the test rows after every epoch (eval mode, no gradients)
            and return those in `epoch_probabilities`. For reporting only: it does not change
            the training or the final probabilities.
        normalise: "minmax" (each channel of each sample to [0, 1], as the papers' flow images)
            or "none" (`normalise_inputs`).
        device: where it trains ("cpu", "cuda", "cuda:N" or a torch.device), in float32 (TF32
            off on CUDA). The weights are initialised on the CPU and the batch order comes from a
            CPU generator, so every device starts alike and sees the same batches; dropout draws
            from the device's own generator, so a CUDA run differs from a CPU one (as the
            project's model's do, docs/training.md).

    Returns:
        `FlowNetOutcome`: the test rows' softmax after the last epoch, the per-epoch ones when
        asked, the mean training loss of each epoch and the seconds taken.

    Training runs every epoch of the schedule: no early stopping, no choice of epoch or weights
    by anything measured on the test rows. The caller's torch random state is left as it was
    (the run draws from its own seeded state). Threads: torch's current setting.
    """
    start = time.perf_counter()
    name = _check_name(name)
    num_classes = _check_num_classes(num_classes)
    schedule = PAPER_SCHEDULES[name] if schedule is None else schedule
    if not isinstance(schedule, FlowNetSchedule):
        raise MieInputError(f"schedule must be a FlowNetSchedule or None; got {type(schedule).__name__}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise MieInputError(f"seed must be an integer; got {seed!r}.")
    train_x = _check_inputs(train_inputs, "train_inputs")
    labels = _check_labels(train_labels, train_x.shape[0], num_classes)
    test_x = _check_inputs(test_inputs, "test_inputs", allow_empty=True)
    train_x = torch.from_numpy(np.ascontiguousarray(normalise_inputs(train_x, normalise)))
    test_x = torch.from_numpy(np.ascontiguousarray(normalise_inputs(test_x, normalise)))
    targets = torch.from_numpy(labels)

    rows = train_x.shape[0]
    epoch_probabilities: list[np.ndarray] = []
    losses: list[float] = []
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    train_x, test_x, targets = train_x.to(device), test_x.to(device), targets.to(device)
    # fork_rng: weights and dropout draw from torch's global generators, seeded here and put back
    # afterwards, so a caller's own random stream is not moved by training a baseline.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), float32_mode(device, "fp32"):
        torch.manual_seed(int(seed))
        model = build_flow_net(name, num_classes).to(device)
        # Batch order from its own generator: the order depends on the seed only, not on how many
        # numbers the weights' initialisation or dropout drew.
        order_generator = torch.Generator().manual_seed(int(seed))
        optimizer = torch.optim.Adam(
            model.parameters(),
            lr=schedule.lr,
            betas=tuple(schedule.betas),
            eps=schedule.eps,
            weight_decay=schedule.weight_decay,
            # one kernel over all parameters: Dual-Inception's step (6.4 M parameters) takes 5 ms
            # instead of 46 ms with the per-parameter loop, one CPU thread
            fused=True,
        )
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(schedule.epochs):
            order = torch.randperm(rows, generator=order_generator) if schedule.shuffle else torch.arange(rows)
            order = order.to(device)
            # summed where the model is, in float64 (the sums Python floats would make): no wait
            # for the device at every batch
            total = torch.zeros((), dtype=torch.float64, device=device)
            for begin in range(0, rows, schedule.batch_size):
                index = order[begin : begin + schedule.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(train_x[index]), targets[index])
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * len(index)
            losses.append(total.item() / rows)
            if report_epochs:
                epoch_probabilities.append(_predict(model, test_x))
        probabilities = epoch_probabilities[-1].copy() if report_epochs else _predict(model, test_x)
    seconds = time.perf_counter() - start
    logger.debug("%s: %d epochs on %d rows in %.1f s, last loss %.4f", name, schedule.epochs, rows, seconds, losses[-1])
    return FlowNetOutcome(
        probabilities=probabilities, epoch_probabilities=epoch_probabilities, losses=losses, seconds=seconds
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "FLOW_NETS",
    "INPUT_CHANNELS",
    "INPUT_SIZE",
    "NORMALISATIONS",
    "PAPER_SCHEDULES",
    "DualInception",
    "FlowNetOutcome",
    "FlowNetSchedule",
    "InceptionModule",
    "OffApexNet",
    "STSTNet",
    "build_flow_net",
    "count_parameters",
    "flow_net_input",
    "normalise_inputs",
    "train_flow_net",
]
