"""The two training stages of the method and one LOSO fold, on clips already cropped into regions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from .configuration_mie import MieConfig
from .devices import (
    autocast,
    float32_mode,
    prepare_model,
    resolve_device,
    resolve_precision,
    stage_tensor,
)
from .modeling_mie import (
    MieForVideoClassification,
    MieRegionCNN,
    focal_loss,
    inverse_frequency_alpha,
    region_cnn_input,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int, dict], None]  # (stage, step, total, info)


@dataclass
class ClipTensors:
    """One clip, cropped: what the training stages read.

    Attributes:
        crops: (frames, regions, channels, height, width) uint8 region crops, onset..offset.
        label: class index (MEGC: 0 negative, 1 positive, 2 surprise).
        region_labels: (regions,) stage-1 label of each region (the label or "not me").
        subject: subject key, `<db>/<subject as on disk>`; LOSO folds split on it.
        database: database name (casme2, samm, smic, ...).
        clip_id: the clip's id in its database (the MEGC list's filename).
        list_subject: the subject as the MEGC list spells it (for the challenge log).
        onset, apex, offset: frame indices into `crops`.
    """

    crops: torch.Tensor
    label: int
    region_labels: Sequence[int]
    subject: str
    database: str
    clip_id: str
    list_subject: str
    onset: int = 0
    apex: int = 0
    offset: int = 0


@dataclass
class TrainingSchedule:
    """How each stage trains. Presets in `TRAINING_PRESETS`; every field can be overridden.

    Attributes:
        stage1_epochs / stage1_batch_size / stage1_lr: region CNN training on single frames
            (the paper: 100 epochs, batch 64, Adam).
        stage1_frames: frames per training clip that stage 1 sees, spread evenly over the
            window of `stage1_window` frames on each side of the apex (the frames that show the
            expression; the onset is neutral and would teach the CNN label noise); 0 takes every
            frame of the clip, as the paper did.
        stage1_window: half-width of that window, in frames.
        stage1_neutral_onset: also train on each clip's onset frame with every region labelled
            "not me" (the neutral face answers to no emotion).
        stage2_epochs / stage2_batch_size / stage2_lr: region LSTMs + fusion on frozen CNN
            features (the paper: 60 epochs, batch 244).
        num_frames: clips are resampled to this many frames (onset..offset, evenly spaced
            indices) before stage 2 and at prediction; 0 keeps every frame.
        finetune_epochs / finetune_lr: optional end-to-end fine-tune of everything after
            stage 2 (0: none, as in the paper).
        weight_decay: Adam weight decay in all stages.
    """

    stage1_epochs: int = 100
    stage1_batch_size: int = 64
    stage1_lr: float = 1e-3
    stage1_frames: int = 8
    stage1_window: int = 8
    stage1_neutral_onset: bool = False
    stage2_epochs: int = 60
    stage2_batch_size: int = 244
    stage2_lr: float = 1e-3
    num_frames: int = 0
    finetune_epochs: int = 0
    finetune_lr: float = 1e-4
    weight_decay: float = 0.0

    def updated(self, **overrides) -> TrainingSchedule:
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"Unknown schedule fields {sorted(unknown)}; allowed: {sorted(names)}.")
        return TrainingSchedule(**{**asdict(self), **{k: v for k, v in overrides.items() if v is not None}})


TRAINING_PRESETS: dict[str, TrainingSchedule] = {
    # The paper's schedule (Aouayeb et al. 2019, section 3): CNN 100 epochs batch 64, LSTM 60
    # epochs batch 244, every frame of every clip.
    "paper": TrainingSchedule(stage1_frames=0),
    # CPU preset: 68 folds in under 2 hours on 2 cores. Stage 1 sees 6 frames around the apex
    # of each clip for 6 epochs; stage 2 reads 32 evenly spaced frames per clip.
    "fast": TrainingSchedule(
        stage1_epochs=6,
        stage1_batch_size=64,
        stage1_frames=6,
        stage1_window=6,
        stage2_epochs=60,
        stage2_batch_size=64,
        stage2_lr=3e-3,
        num_frames=32,
    ),
}
# The flow preset is the fast model reading optical flow: trained the same way, so the two compare.
TRAINING_PRESETS["flow"] = TRAINING_PRESETS["fast"]


@dataclass
class StageReport:
    """What a stage did: losses per epoch and the subjects whose data it used."""

    losses: list[float] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0


# ---------------------------------------------------------------------------- helpers
def frame_indices(length: int, num_frames: int) -> np.ndarray:
    """Evenly spaced frame indices over [0, length), `num_frames` of them (all if 0 or more)."""
    if num_frames <= 0 or num_frames >= length:
        return np.arange(length)
    return np.round(np.linspace(0, length - 1, num_frames)).astype(np.int64)


def stage1_frame_indices(clip: ClipTensors, schedule: TrainingSchedule) -> np.ndarray:
    """Frames of `clip` that stage 1 trains on: evenly spread over apex +- window (all if
    `schedule.stage1_frames` is 0)."""
    last = clip.crops.shape[0] - 1
    if schedule.stage1_frames <= 0:
        return np.arange(last + 1)
    lo = max(0, min(clip.apex, last) - schedule.stage1_window)
    hi = min(last, clip.apex + schedule.stage1_window)
    count = max(1, min(schedule.stage1_frames, hi - lo + 1))
    return np.unique(np.round(np.linspace(lo, hi, count)).astype(np.int64))


def stage1_samples(
    clips: Sequence[ClipTensors], schedule: TrainingSchedule, config: MieConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Stage 1's samples of `clips`, clip after clip: each clip's `stage1_frame_indices` frames
    in order, then (with `stage1_neutral_onset`) its onset frame with every region "not me".

    Returns frames (N, R, C, H, W) uint8, owners (N,) the index of each frame's clip, targets
    (N, R) region labels, and each clip's (first sample, sample count).
    """
    frames, owners, targets, spans = [], [], [], []
    not_me = torch.full((config.num_regions,), config.not_me_id, dtype=torch.long)
    count = 0
    for i, clip in enumerate(clips):
        idx = stage1_frame_indices(clip, schedule)
        frames.append(clip.crops[torch.from_numpy(idx)])
        targets.append(torch.as_tensor(clip.region_labels, dtype=torch.long).expand(len(idx), -1))
        taken = len(idx)
        if schedule.stage1_neutral_onset:
            frames.append(clip.crops[min(clip.onset, clip.crops.shape[0] - 1)].unsqueeze(0))
            targets.append(not_me.unsqueeze(0))
            taken += 1
        owners.append(torch.full((taken,), i))
        spans.append((count, taken))
        count += taken
    return torch.cat(frames), torch.cat(owners), torch.cat(targets), spans


def _to_float(crops: torch.Tensor) -> torch.Tensor:
    return crops.float().div_(255.0) if crops.dtype == torch.uint8 else crops.float()


def reads_first_frames(config: MieConfig) -> bool:
    """Whether the region CNNs' input (`region_cnn_input`) uses each clip's first frame."""
    return config.input_mode == "onset_difference"


def cnn_input(config: MieConfig, crops: torch.Tensor, firsts: torch.Tensor | None) -> torch.Tensor:
    """`region_cnn_input` of uint8 crops (and their clips' first frames, None where the input mode
    does not read them: `reads_first_frames`), in the fewest passes over memory.

    The paper preset reads the raw frames: they are divided straight into autocast's dtype when
    autocast is on (bf16 on CUDA). uint8 values are exact in bf16 and the quotient is rounded once,
    as autocast's cast of the float32 quotient rounds it, so the convolution gets the same numbers
    without a float32 copy of the batch; float32 runs get `_to_float`'s float32 numbers exactly.
    """
    if config.input_mode == "frames" and crops.dtype == torch.uint8:
        kind = crops.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else torch.float32
        return torch.div(crops.to(dtype), 255.0)
    return region_cnn_input(config, _to_float(crops), None if firsts is None else _to_float(firsts))


def _pad_batch(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, ...) tensors into (B, T_max, ...) with zeros after each, and their lengths."""
    lengths = torch.tensor([s.shape[0] for s in sequences])
    out = sequences[0].new_zeros(len(sequences), int(lengths.max()), *sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        out[i, : s.shape[0]] = s
    return out, lengths


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a stage's seconds include it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _epochs(progress: Progress | None, stage: str, total: int, device: torch.device | None = None):
    """range(total), calling `progress` after each epoch (after waiting for `device`'s queued work)."""
    for epoch in range(total):
        yield epoch
        if progress is not None:
            if device is not None:
                _synchronize(device)
            progress(stage, epoch + 1, total, {})


# ---------------------------------------------------------------------------- stage 1
#: How stage 1 runs its steps: "off" (eager PyTorch, the default and the only path that repeats a
#: CPU run bit for bit), "default" (`torch.compile`: inductor fuses the uint8 -> float conversion,
#: the onset difference, pooling, ReLUs and the loss around cuDNN's convolutions, forward and
#: backward) or "reduce-overhead" (the same, replayed as CUDA graphs: one launch per step instead
#: of a few hundred). Compiled steps see batches of one fixed size (the epoch's last, partial
#: batch is padded and its padding weighted 0 in the loss), so each process compiles once.
COMPILE_MODES = ("off", "default", "reduce-overhead")

#: On CUDA, every stage uses Adam's fused kernel (a few launches a step instead of tens; rounding
#: only). `bench/train.py --no-cuda-tuning` switches it off to measure the path without it.
#: cuDNN's autotuning (`cudnn.benchmark`) is not used: on an H100 it chose slower kernels for the
#: region CNN's grouped channels-last convolutions (5.5 against 4.9 ms for the conv stack's
#: forward and backward, batch 64, bf16).
CUDA_TUNING = True

_COMPILED_STEPS: dict[tuple[Callable, str], Callable] = {}  # per step function and mode, per process: folds share it


def check_compile_mode(mode: str | None) -> str:
    """`None` or one of `COMPILE_MODES` -> the mode; anything else is a ValueError naming the allowed values."""
    mode = "off" if mode is None else str(mode)
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {list(COMPILE_MODES)}; got {mode!r}.")
    return mode


def stage1_batch_loss(
    cnn,
    config: MieConfig,
    batch_frames: torch.Tensor,
    batch_firsts: torch.Tensor | None,
    batch_targets: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
    precision: str,
) -> torch.Tensor:
    """Stage 1's loss on one batch of fixed size, padding included: what `torch.compile` compiles.

    batch_frames / batch_firsts: (b, R, C, H, W) uint8 frames and their clips' first frames (None
    where the input mode does not read them, `reads_first_frames`);
    batch_targets: (b, R) region labels; weights: (b,) each sample's share of the batch mean,
    1 / (real samples * R) for a real one and 0 for padding, so the loss and its gradients are
    those of the real samples alone (the padding's terms are exact zeros).
    """
    with autocast(batch_frames.device, precision):
        inputs = cnn_input(config, batch_frames, batch_firsts)
        _, logits = cnn(inputs)  # (b, R, K)
    losses = focal_loss(logits.float().flatten(0, 1), batch_targets.flatten(), config.focal_gamma, alpha, reduction="none")
    return (losses.view(weights.shape[0], -1) * weights.unsqueeze(1)).sum()  # (b * R,) -> (b, R) -> ()


def compiled_step(function: Callable, mode: str) -> Callable:
    """`function` (a stage-1 step's loss) as `mode` (`COMPILE_MODES`) runs it: itself when "off",
    else compiled once per process."""
    if mode == "off":
        return function
    if (function, mode) not in _COMPILED_STEPS:
        options = {"mode": "reduce-overhead"} if mode == "reduce-overhead" else {}
        _COMPILED_STEPS[function, mode] = torch.compile(function, dynamic=False, **options)
    return _COMPILED_STEPS[function, mode]


def padded_batches(n: int, batch_size: int, regions: int, device: torch.device) -> tuple[torch.Tensor, list[int]]:
    """Loss weights of an epoch of `n` samples cut into batches of `batch_size`, the last one padded.

    Returns weights (batches, batch_size) on `device`, 1 / (real samples * regions) for each real
    sample of a batch and 0 for padding (a sample's `regions` terms share its weight, so a
    weighted sum is the mean over the batch's real terms), and the real sample count of each batch.
    """
    batches = -(-n // batch_size)
    counts = [min(batch_size, n - i * batch_size) for i in range(batches)]
    weights = torch.zeros(batches, batch_size, dtype=torch.float32)
    for i, count in enumerate(counts):
        weights[i, :count] = 1.0 / (count * regions)
    return weights.to(device), counts


def _adam(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam as every stage uses it; on CUDA (with `CUDA_TUNING`) its fused kernel, a few launches a step."""
    fused = {"fused": True} if device.type == "cuda" and CUDA_TUNING else {}
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)


def train_stage1_cnn(
    model: MieForVideoClassification,
    clips: Sequence[ClipTensors],
    schedule: TrainingSchedule,
    generator: torch.Generator,
    progress: Progress | None = None,
    precision: str = "fp32",
    compile: str | None = "off",
) -> StageReport:
    """Train the region CNNs (and their stage-1 heads) on single frames with region labels.

    Every region of every selected frame is a sample labelled with the clip's emotion or "not
    me" (`ClipTensors.region_labels`); the focal loss weighs region classes by inverse frequency.
    Training runs where the model is: the selected uint8 frames move there in one copy
    (`devices.stage_tensor`) and become float there, batch by batch; `precision` "bf16" runs
    the CNN under autocast. The batch order comes from `generator` (a CPU generator), so every
    device sees the same batches. `compile` (`COMPILE_MODES`) compiles each step.

    Nothing in the epoch loop waits for the device: batch indices are gathered where the frames
    are, the epoch's loss is summed as a tensor there, and the losses come back in one copy at the
    end (with a `progress` callback, the stage waits for the device once per epoch before calling
    it, so that per-epoch times hold on a GPU).
    """
    import time

    mode = check_compile_mode(compile)
    start = time.perf_counter()
    config = model.config
    if not clips:
        raise ValueError("Stage 1 needs at least one training clip.")
    frames, owners, targets, _ = stage1_samples(clips, schedule, config)
    subjects = {clip.subject for clip in clips}
    firsts = torch.stack([clip.crops[0] for clip in clips])  # (clips, R, C, H, W): each clip's first frame
    alpha = torch.tensor(
        config.region_focal_alpha or inverse_frequency_alpha(targets.flatten(), config.num_region_classes)
    )
    device = _model_device(model)
    frames, firsts = stage_tensor(frames, device), stage_tensor(firsts, device)
    at = frames.device  # where batches are gathered: the device, or (pinned) CPU memory
    owners, targets, alpha = owners.to(at), targets.to(device), alpha.to(device)
    cnn = model.region_cnn
    optimizer = _adam(cnn.parameters(), schedule.stage1_lr, schedule.weight_decay, device)
    report = StageReport(subjects=sorted(subjects), samples=len(frames))
    n, size = len(frames), schedule.stage1_batch_size
    epoch_losses = torch.zeros(schedule.stage1_epochs, dtype=torch.float64, device=device)
    if mode != "off":
        step = compiled_step(stage1_batch_loss, mode)
        weights, counts = padded_batches(n, size, config.num_regions, device)
    cnn.train()
    for epoch in _epochs(progress, "stage1_cnn", schedule.stage1_epochs, device):
        order = torch.randperm(n, generator=generator).to(at)
        # summed on the device in float64 (the same sums as Python floats): no sync per batch
        total = torch.zeros((), dtype=torch.float64, device=device)
        if mode == "off":
            for start_i in range(0, n, size):
                batch = order[start_i : start_i + size]
                batch_frames = frames[batch].to(device, non_blocking=True)  # (b, R, C, H, W) uint8
                batch_firsts = firsts[owners[batch]].to(device, non_blocking=True) if reads_first_frames(config) else None
                with autocast(device, precision):
                    inputs = cnn_input(config, batch_frames, batch_firsts)
                    _, logits = cnn(inputs)  # (b, R, K)
                loss = focal_loss(logits.float().flatten(0, 1), targets[batch.to(device)].flatten(), config.focal_gamma, alpha)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * len(batch)
        else:
            # the last batch is filled up with the epoch's first samples, weighted 0
            order = torch.cat([order, order[: len(counts) * size - n]])  # (batches * size,)
            for i, count in enumerate(counts):
                batch = order[i * size : (i + 1) * size]  # (size,): always the same shape
                if mode == "reduce-overhead":
                    # a new training step: the last replay's outputs (loss, gradients) are consumed
                    torch.compiler.cudagraph_mark_step_begin()
                loss = step(
                    cnn, config, frames[batch].to(device, non_blocking=True),
                    firsts[owners[batch]].to(device, non_blocking=True) if reads_first_frames(config) else None,
                    targets[batch.to(device)], weights[i], alpha, precision,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * count
        epoch_losses[epoch] = total / n
    report.losses = epoch_losses.tolist()  # the one copy back, after the last epoch
    cnn.eval()
    _synchronize(device)
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------------------- features
@torch.inference_mode()
def extract_features(
    model: MieForVideoClassification,
    clips: Sequence[ClipTensors],
    num_frames: int,
    batch_frames: int = 512,
    precision: str = "fp32",
) -> list[torch.Tensor]:
    """Frozen-CNN region features of each clip: a list of (T_i, regions, features) float32
    tensors on the model's device (`cnn_features` of the model's region CNN)."""
    model.eval()
    return cnn_features(model.region_cnn, model.config, clips, num_frames, batch_frames, precision)[0]


@torch.inference_mode()
def cnn_features(
    cnn: MieRegionCNN,
    config: MieConfig,
    clips: Sequence[ClipTensors],
    num_frames: int,
    batch_frames: int = 512,
    precision: str = "fp32",
    folds: int = 1,
) -> list[list[torch.Tensor]]:
    """Region features of each clip under each of `folds` region CNNs stacked in `cnn` (fold k's
    regions at k*R .. k*R + R - 1, `modeling_mie.stacked`; 1: a model's own CNN): `result[k][i]`
    is fold k's (T_i, R, features) float32 tensor for clip i, on the CNN's device.

    Frames are resampled to `num_frames` per clip (evenly spaced; all if 0). Every selected frame
    of every clip moves to the device once (`devices.stage_tensor`: in one copy where it fits) and
    runs through the CNN in slices of the same `batch_frames // folds` frames (a clip may span two
    slices: each frame only needs its clip's first frame), so the device sees one shape however
    long the clips are. With several folds, each frame is read once and its regions repeated for
    every fold. `precision` "bf16" runs the CNN under autocast (the features come back as float32).
    """
    cnn.eval()
    device = _model_device(cnn)
    regions = config.num_regions
    indices = [frame_indices(c.crops.shape[0], num_frames) for c in clips]
    # every frame: the clip itself (torch.cat below makes the one copy)
    selected = [c.crops if len(i) == c.crops.shape[0] else c.crops[torch.from_numpy(i)] for c, i in zip(clips, indices)]
    lengths = [s.shape[0] for s in selected]
    if not clips:
        return [[] for _ in range(folds)]
    frames = stage_tensor(torch.cat(selected), device)  # (N, R, C, H, W) uint8
    del selected
    firsts = torch.stack([c.crops[0] for c in clips]).to(device)  # the frame onset differences refer to
    owners = torch.repeat_interleave(torch.arange(len(clips)), torch.tensor(lengths)).to(frames.device)
    size = max(1, batch_frames // folds)
    out = []
    for start in range(0, frames.shape[0], size):
        batch = frames[start : start + size].to(device, non_blocking=True)
        first = firsts[owners[start : start + size].to(device)] if reads_first_frames(config) else None
        with autocast(device, precision):
            x = cnn_input(config, batch, first)  # (n, R, C, H, W)
            if folds > 1:
                x = x.repeat(1, folds, 1, 1, 1)  # (n, K*R, C, H, W): fold-major, as the CNN stacks them
            feats, _ = cnn(x)
        out.append(feats.float())
    feats = torch.cat(out).view(frames.shape[0], folds, regions, -1)
    _synchronize(device)
    return [[f.clone() for f in feats[:, k].split(lengths)] for k in range(folds)]


# ---------------------------------------------------------------------------- stage 2
def train_stage2_temporal(
    model: MieForVideoClassification,
    features: Sequence[torch.Tensor],
    clips: Sequence[ClipTensors],
    schedule: TrainingSchedule,
    generator: torch.Generator,
    progress: Progress | None = None,
    on_epoch: Callable[[], None] | None = None,
) -> StageReport:
    """Train the region LSTMs and the fusion head on frozen per-frame region features.

    The feature standardisation is fitted on these (training) features first. The focal loss
    uses the config's `focal_alpha` (set by `train_model` to inverse class frequencies of the
    training subjects). The features are padded once into one tensor on the model's device;
    each batch is a slice of it, cut to its longest clip. This stage runs in float32 always.

    `on_epoch()`, if given, is called after every epoch (the leakage report predicts the held-out
    clips there; it must consume no random numbers and change no weight, so training is the same
    with or without it).
    """
    import time

    start = time.perf_counter()
    config = model.config
    device = _model_device(model)
    labels = torch.tensor([c.label for c in clips], dtype=torch.long, device=device)
    alpha = torch.tensor(config.focal_alpha, device=device) if config.focal_alpha is not None else None
    temporal = model.temporal
    temporal.fit_feature_statistics(list(features))
    padded_all, lengths_all = _pad_batch([f.to(device) for f in features])  # (N, T_max, R, F), (N,) on the CPU
    optimizer = _adam(temporal.parameters(), schedule.stage2_lr, schedule.weight_decay, device)
    report = StageReport(subjects=sorted({c.subject for c in clips}), samples=len(clips))
    temporal.train()
    n = len(clips)
    for _ in _epochs(progress, "stage2_temporal", schedule.stage2_epochs):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start_i in range(0, n, schedule.stage2_batch_size):
            batch = order[start_i : start_i + schedule.stage2_batch_size]  # (b,) on the CPU
            lengths = lengths_all[batch]
            on_device = batch.to(device)
            # the same values as padding the batch's clips afresh: zeros after each clip's end
            padded = padded_all[on_device, : int(lengths.max())]  # (b, T_b, R, F)
            logits, _ = temporal(padded, lengths)
            loss = focal_loss(logits, labels[on_device], config.focal_gamma, alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(batch)
        report.losses.append(total.item() / n)
        if on_epoch is not None:
            temporal.eval()
            on_epoch()
            temporal.train()
    temporal.eval()
    _synchronize(device)
    report.seconds = time.perf_counter() - start
    return report


def finetune_end_to_end(
    model: MieForVideoClassification,
    clips: Sequence[ClipTensors],
    schedule: TrainingSchedule,
    generator: torch.Generator,
    progress: Progress | None = None,
    precision: str = "fp32",
) -> StageReport:
    """Optional: train everything together on whole clips (clip loss + stage-1 region loss).

    Each batch of clips moves to the model's device as uint8; `precision` "bf16" runs the
    forward pass under autocast (the temporal stage stays float32)."""
    import time

    start = time.perf_counter()
    report = StageReport(subjects=sorted({c.subject for c in clips}), samples=len(clips))
    if schedule.finetune_epochs <= 0:
        return report
    device = _model_device(model)
    optimizer = _adam(model.parameters(), schedule.finetune_lr, schedule.weight_decay, device)
    batch_size = max(1, min(8, schedule.stage2_batch_size))
    model.train()
    n = len(clips)
    for _ in _epochs(progress, "finetune", schedule.finetune_epochs):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start_i in range(0, n, batch_size):
            batch = [clips[i] for i in order[start_i : start_i + batch_size].tolist()]
            crops = [c.crops[torch.from_numpy(frame_indices(c.crops.shape[0], schedule.num_frames))] for c in batch]
            padded, lengths = _pad_batch(crops)  # (b, T, R, C, H, W) uint8
            mask = torch.arange(padded.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            with autocast(device, precision):
                out = model(
                    _to_float(padded.to(device, non_blocking=True)),
                    frame_mask=mask.to(device),
                    labels=torch.tensor([c.label for c in batch], device=device),
                    region_labels=torch.tensor([list(c.region_labels) for c in batch], device=device),
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            total += out.loss.detach().double() * len(batch)
        report.losses.append(total.item() / n)
    model.eval()
    _synchronize(device)
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------------------- prediction
@torch.inference_mode()
def predict_clips(
    model: MieForVideoClassification,
    clips: Sequence[ClipTensors],
    num_frames: int,
    features=None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Class probabilities (clips, num_labels), on the CPU, for `clips` (features are computed,
    on the model's device, if not given)."""
    model.eval()
    if features is None:
        features = extract_features(model, clips, num_frames, precision=precision)
    return _probabilities_from_features(model, features)


@torch.inference_mode()
def _probabilities_from_features(model: MieForVideoClassification, features: Sequence[torch.Tensor]) -> torch.Tensor:
    device = _model_device(model)
    probabilities = []
    for start_i in range(0, len(features), 256):
        padded, lengths = _pad_batch([f.to(device) for f in features[start_i : start_i + 256]])
        logits, _ = model.temporal(padded, lengths)
        probabilities.append(logits.softmax(-1))
    return torch.cat(probabilities).cpu()


# ---------------------------------------------------------------------------- one fold
@dataclass
class FoldOutcome:
    """The result of training on `train_clips` and predicting `test_clips`."""

    model: MieForVideoClassification
    probabilities: torch.Tensor  # (test clips, num_labels)
    stage1: StageReport
    stage2: StageReport
    finetune: StageReport
    features_seconds: float
    focal_alpha: list[float]
    # (epochs, test clips, num_labels) after every stage-2 epoch: only with `report_epochs`, only to report
    epoch_probabilities: torch.Tensor | None = None


def train_model(
    config: MieConfig,
    train_clips: Sequence[ClipTensors],
    schedule: TrainingSchedule,
    seed: int,
    progress: Progress | None = None,
    test_clips: Sequence[ClipTensors] = (),
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    report_epochs: bool = False,
    compile: str | None = "off",
) -> FoldOutcome:
    """Both stages (and the optional fine-tune) on `train_clips` only, then predict `test_clips`.

    Nothing of `test_clips` is read before training ends: they are only cropped, featurised
    and classified by the finished model.

    `device` ("cpu", "cuda", "cuda:N", "auto" or a torch.device) is where it trains and
    `precision` ("fp32", "tf32", "bf16" or "auto"; `modeling_mie.devices`) how. The model is
    initialised on the CPU from `seed` before it moves, so every device starts from the same
    weights, and the batch order comes from a CPU generator; the returned model and
    probabilities are on the CPU. `compile` (`COMPILE_MODES`) compiles stage 1's steps, the
    stage that takes nearly all of a fold's time on a GPU.

    `report_epochs` (with `test_clips`) also predicts the test clips after every stage-2 epoch
    (`FoldOutcome.epoch_probabilities`), for the leakage report of `modeling_mie.loso_report`
    only: the region CNN is frozen in stage 2, so the test clips' features are extracted once
    after stage 1 and read by the temporal stage in eval mode. Nothing there is trained or drawn
    at random, so the weights, the batch order and the final probabilities are the same as
    without it; nothing is ever chosen from these predictions.
    """
    compile = check_compile_mode(compile)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    model, generator = start_fold(config, train_clips, seed, device)
    with float32_mode(device, precision):
        stage1 = train_stage1_cnn(model, train_clips, schedule, generator, progress, precision=precision, compile=compile)
    return finish_fold(model, stage1, train_clips, test_clips, schedule, generator, progress, precision, report_epochs)


def start_fold(
    config: MieConfig, train_clips: Sequence[ClipTensors], seed: int, device: torch.device
) -> tuple[MieForVideoClassification, torch.Generator]:
    """A fold's fresh model on `device` and its batch-order generator, both from `seed`.

    Seeds torch's global generators too (dropout draws from them). The model gets its own copy of
    `config`, with the focal-loss alpha of the training clips' classes.
    """
    if not train_clips:
        raise ValueError("train_model needs at least one training clip.")
    torch.manual_seed(seed)  # also seeds every CUDA device (dropout there)
    generator = torch.Generator().manual_seed(seed)
    config = MieConfig.from_dict(config.to_dict())  # never share a config between folds
    config.focal_alpha = inverse_frequency_alpha([c.label for c in train_clips], config.num_labels)
    return prepare_model(MieForVideoClassification(config), device), generator


def finish_fold(
    model: MieForVideoClassification,
    stage1: StageReport,
    train_clips: Sequence[ClipTensors],
    test_clips: Sequence[ClipTensors],
    schedule: TrainingSchedule,
    generator: torch.Generator,
    progress: Progress | None,
    precision: str,
    report_epochs: bool,
    features: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
    features_seconds: float = 0.0,
) -> FoldOutcome:
    """Everything of `train_model` after stage 1: features, stage 2, the optional fine-tune and
    the test clips' probabilities; the model goes back to the CPU.

    `features`, if given, are the train and test clips' features under the fold's region CNN as
    stage 1 left it (computed for a stacked group at once, `modeling_mie.stacked`), and
    `features_seconds` this fold's share of their time. The test clips' features are read only
    after stage 2 and the fine-tune, to predict them when the CNN is still stage 1's (no
    fine-tune), and by the leakage report; they never reach a training stage."""
    import time

    device = _model_device(model)
    config = model.config
    frozen = schedule.finetune_epochs <= 0  # the CNN that predicts is stage 1's
    with float32_mode(device, precision):
        start = time.perf_counter()
        if features is None:
            train_features = extract_features(model, train_clips, schedule.num_frames, precision=precision)
            test_features = None  # featurised for prediction, after training, or now for the leakage report
            if test_clips and report_epochs:
                test_features = extract_features(model, test_clips, schedule.num_frames, precision=precision)
        else:
            train_features, test_features = features
        features_seconds += time.perf_counter() - start
        on_epoch, epoch_probabilities = None, []
        if report_epochs and test_clips:

            def on_epoch():
                epoch_probabilities.append(_probabilities_from_features(model, test_features))

        stage2 = train_stage2_temporal(
            model, train_features, train_clips, schedule, generator, progress, on_epoch=on_epoch
        )
        del train_features
        finetune = finetune_end_to_end(model, train_clips, schedule, generator, progress, precision=precision)

        probabilities = torch.empty(0, config.num_labels)
        if test_clips:
            start = time.perf_counter()
            probabilities = predict_clips(
                model, test_clips, schedule.num_frames, features=test_features if frozen else None, precision=precision
            )
            features_seconds += time.perf_counter() - start
    model.eval()
    prepare_model(model, torch.device("cpu"))
    epochs = torch.stack(epoch_probabilities) if epoch_probabilities else None
    return FoldOutcome(
        model, probabilities, stage1, stage2, finetune, features_seconds, list(config.focal_alpha), epochs
    )


def fold_seed(seed: int, fold_key: str) -> int:
    """A per-fold seed that does not depend on which folds run or in which order."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(fold_key.encode())) % (2**31 - 1)


__all__ = [
    "COMPILE_MODES",
    "TRAINING_PRESETS",
    "ClipTensors",
    "FoldOutcome",
    "StageReport",
    "TrainingSchedule",
    "cnn_features",
    "extract_features",
    "finetune_end_to_end",
    "finish_fold",
    "fold_seed",
    "frame_indices",
    "padded_batches",
    "predict_clips",
    "stage1_batch_loss",
    "stage1_samples",
    "start_fold",
    "train_model",
    "train_stage1_cnn",
    "train_stage2_temporal",
]
