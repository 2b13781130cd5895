"""Several LOSO folds' stage 1 trained as one batched model: the same training, fewer, larger steps.

On a GPU, stage 1 of one fold is thousands of steps whose convolutions have 1-16 channels per
region: each step is too small to keep the device busy, and running folds in several processes
side by side gained only 1.4x on an H100 (docs/training.md). Here K folds' region CNNs become one
`MieRegionCNN` with K x 6 regions (each fold's six regions side by side in every grouped
convolution and batched dense layer), so one step trains K folds on K batches.

Each fold still trains exactly as `training.train_stage1_cnn` trains it alone:
- its own weights (initialised from its own seed), its own frames, batch order (its own
  generator), focal-loss alpha and number of steps per epoch;
- its own dropout masks, drawn from a copy of the global generator it would have used alone;
- its own Adam state and step count (`StackedAdam`): folds whose epoch has fewer batches than the
  longest fold's sit out the remaining steps, with no update; the epoch's last, partial batch is
  padded and the padding weighted 0 in the loss.
Only the rounding differs (sums over a wider batch, Adam's scalars as tensors): on the CPU the
stacked and one-by-one runs agree to about 1e-6 in the weights after an epoch (tests). The regions
of different folds never meet: the convolutions are grouped by region and the dense layers
batched by region, so no fold's gradient reads another fold's values.

On the CPU, where the arithmetic is the limit, a stacked step costs K single steps (measured,
`bench/train.py --stack-folds`); the point is the GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .configuration_mie import MieConfig
from .devices import (
    autocast,
    float32_mode,
    resolve_device,
    resolve_precision,
    stage_tensor,
)
from .modeling_mie import (
    MieForVideoClassification,
    MieRegionCNN,
    focal_loss,
    inverse_frequency_alpha,
)
from .training import (
    ClipTensors,
    FoldOutcome,
    Progress,
    StageReport,
    TrainingSchedule,
    _epochs,
    _model_device,
    _synchronize,
    check_compile_mode,
    cnn_features,
    cnn_input,
    compiled_step,
    finish_fold,
    padded_batches,
    reads_first_frames,
    stage1_samples,
    start_fold,
)

#: Folds per stacked group on CUDA under `--stack-folds auto`: on an H100 the paper preset's stacked
#: step (NCHW, bf16) cost 2.90 ms per fold with 16 folds and 2.97 with 68, against 11.3 ms for one
#: fold's own step (docs/training.md, Stacked folds on an H100).
CUDA_STACK_FOLDS = 17


def auto_stack_folds(folds: int, device: torch.device) -> int:
    """What `--stack-folds auto` stacks: 1 on the CPU, where stacking does not help; on CUDA groups of
    at most `CUDA_STACK_FOLDS`, as even as they come (68 folds: 4 groups of 17; 26: 2 of 13)."""
    if device.type != "cuda" or folds <= 1:
        return 1
    groups = -(-folds // CUDA_STACK_FOLDS)
    return -(-folds // groups)


# ---------------------------------------------------------------------------- weights
def stack_region_cnns(cnns: Sequence[MieRegionCNN], config: MieConfig) -> MieRegionCNN:
    """One `MieRegionCNN` whose regions are the `cnns`' regions side by side (fold k: regions
    k*R .. k*R + R - 1), with copies of their weights, on their device."""
    regions = config.num_regions
    stacked = MieRegionCNN(config, num_regions=regions * len(cnns))
    # as `devices.prepare_model` set them: whole batches in NCHW memory on CUDA, kernels, branches
    for name in ("chunk_frames", "channels_last", "conv_pool_relu", "merged_inception", "inception_pool"):
        setattr(stacked, name, getattr(cnns[0], name))
    sources = [dict(cnn.named_parameters()) for cnn in cnns]
    with torch.no_grad():
        for name, param in stacked.named_parameters():
            parts = [source[name] for source in sources]
            if any(p.shape[0] != regions for p in parts):  # every region parameter leads with its region
                raise ValueError(f"{name}: expected {regions} regions first, got {[tuple(p.shape) for p in parts]}.")
            param.data = torch.cat([p.detach() for p in parts])
    return stacked.to(_model_device(cnns[0]))


def unstack_region_cnns(stacked: MieRegionCNN, cnns: Sequence[MieRegionCNN]) -> None:
    """Copy the stacked weights back into each fold's own CNN (in place)."""
    params = dict(stacked.named_parameters())
    with torch.no_grad():
        for k, cnn in enumerate(cnns):
            for name, param in cnn.named_parameters():
                regions = param.shape[0]
                param.copy_(params[name][k * regions : (k + 1) * regions])


# ---------------------------------------------------------------------------- optimiser
class StackedAdam:
    """Adam (as `torch.optim.Adam`, no amsgrad) on stacked parameters, with one step count per fold.

    Every parameter leads with `folds` x R regions; `step(active)` updates only the folds where
    `active` ((K,) bool tensor on the parameters' device) is True: the others keep their weights,
    moments and step count, as if the step had not happened. Bias corrections use each fold's own
    count, so a fold that sat out steps continues exactly as it would have alone. Everything stays
    on the device: a step never waits for it.
    """

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        folds: int,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params = list(params)
        self.folds = folds
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        device = self.params[0].device
        self.steps = torch.zeros(folds, dtype=torch.float64, device=device)
        regions = {p.shape[0] for p in self.params}
        if len(regions) != 1 or next(iter(regions)) % folds:
            raise ValueError(f"every parameter must lead with the same multiple of {folds} regions, got {sorted(regions)}.")
        # the fold of each leading row
        self.fold_of_row = torch.arange(folds, device=device).repeat_interleave(next(iter(regions)) // folds)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor, every: bool = False) -> None:
        """`every`: the caller knows that every fold is active (most steps of an epoch), without
        asking the device: the update is made in place, the same numbers in fewer launches."""
        if active.shape != (self.folds,):
            raise ValueError(f"active: expected {self.folds} folds, got shape {tuple(active.shape)}.")
        beta1, beta2 = self.betas
        self.steps += active
        t = self.steps.clamp(min=1)  # a fold that never stepped: any finite value, masked below
        step_size = (self.lr / (1 - beta1**t)).float()[self.fold_of_row]  # (K * R,)
        correction2 = (1 - beta2**t).sqrt().float()[self.fold_of_row]
        keep = None if every else active[self.fold_of_row]
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            view = (-1,) + (1,) * (p.dim() - 1)  # (K * R, 1, ...): one value per leading row
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            if every:
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                p.sub_(step_size.view(view) * (m / v.sqrt().div_(correction2.view(view)).add_(self.eps)))
                continue
            new_m = m.lerp(grad, 1 - beta1)
            new_v = v.mul(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = new_v.sqrt().div_(correction2.view(view)).add_(self.eps)
            new_p = p - step_size.view(view) * (new_m / denom)
            on = keep.view(view)
            m.copy_(torch.where(on, new_m, m))
            v.copy_(torch.where(on, new_v, v))
            p.copy_(torch.where(on, new_p, p))


# ---------------------------------------------------------------------------- one step
def stacked_batch_loss(
    cnn: MieRegionCNN,
    config: MieConfig,
    folds: int,
    batch_frames: torch.Tensor,
    batch_firsts: torch.Tensor | None,
    batch_targets: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
    keep: torch.Tensor | None,
    precision: str,
) -> torch.Tensor:
    """Each fold's stage-1 loss on its batch, (K,): what one stacked step differentiates (summed).

    batch_frames / batch_firsts: (K * B, R, C, H, W) uint8, fold k's batch at rows k*B .. k*B+B-1
    (batch_firsts None where the input mode does not read first frames, `reads_first_frames`);
    batch_targets: (K * B, R) region labels; weights: (K, B) each sample's share of its fold's
    batch mean (0 for padding); alpha: (K, classes) each fold's focal-loss alpha; keep: (B, K * R,
    hidden) dropout's scaled keep mask (None: no dropout).
    """
    rows = batch_frames.shape[0]
    b, r = rows // folds, config.num_regions

    def fold_major(crops: torch.Tensor) -> torch.Tensor:  # (K*B, R, ...) -> (B, K*R, ...), still uint8
        return crops.view(folds, b, *crops.shape[1:]).transpose(0, 1).reshape(b, folds * r, *crops.shape[2:])

    with autocast(batch_frames.device, precision):
        # the input is computed sample by sample, so reordering the uint8 crops first gives the same
        # numbers with a quarter of the bytes moved
        firsts = fold_major(batch_firsts) if reads_first_frames(config) else None
        x = cnn_input(config, fold_major(batch_frames), firsts)  # (B, K*R, C, H, W)
        pooled = torch.cat([cnn.pooled_features(c) for c in x.split(cnn.frames_per_chunk(*x.shape[-2:]))])
        hidden = F.relu(cnn.fc1(pooled))  # (B, K*R, hidden)
        if keep is not None:
            hidden = hidden * keep.to(hidden.dtype)  # bf16 under autocast, as nn.Dropout keeps it
        logits = cnn.head(F.relu(cnn.fc2(hidden)))  # (B, K*R, classes)
    logits = logits.float().view(b, folds, r, -1).transpose(0, 1)  # (K, B, R, classes)
    targets = batch_targets.view(folds, b, r)
    losses = focal_loss(logits.flatten(0, 2), targets.flatten(), config.focal_gamma, reduction="none").view(folds, b, r)
    losses = losses * alpha.gather(1, targets.flatten(1)).view(folds, b, r)
    return (losses * weights.unsqueeze(2)).sum(dim=(1, 2))


# ---------------------------------------------------------------------------- stage 1, stacked
def _union_of_clips(clip_sets: Sequence[Sequence[ClipTensors]]) -> tuple[list[ClipTensors], dict[int, int]]:
    """Every clip of the sets once (folds share most clips), in order of first use, and each
    clip's place in that list by `id`."""
    position: dict[int, int] = {}
    union: list[ClipTensors] = []
    for clips in clip_sets:
        for clip in clips:
            if id(clip) not in position:
                position[id(clip)] = len(union)
                union.append(clip)
    return union, position


def train_stage1_stacked(
    models: Sequence[MieForVideoClassification],
    clip_sets: Sequence[Sequence[ClipTensors]],
    schedule: TrainingSchedule,
    generators: Sequence[torch.Generator],
    dropout_generators: Sequence[torch.Generator],
    progress: Progress | None = None,
    precision: str = "fp32",
    compile: str | None = "off",
) -> list[StageReport]:
    """Stage 1 of K folds at once: fold k trains `models[k]`'s region CNN on `clip_sets[k]`.

    `generators[k]` gives fold k's batch order, as in `training.train_stage1_cnn`, and
    `dropout_generators[k]` its dropout masks (on the models' device): a copy of the global
    generator fold k would have drawn them from alone. Each clip's frames are staged once, however
    many folds read them. Returns each fold's report; `seconds` is the whole stacked stage's time.
    """
    mode = check_compile_mode(compile)
    start = time.perf_counter()
    folds = len(models)
    if not folds or len(clip_sets) != folds or len(generators) != folds or len(dropout_generators) != folds:
        raise ValueError("train_stage1_stacked needs one clip set, generator and dropout generator per model.")
    config = models[0].config
    regions = config.num_regions
    # Every clip once (folds share most clips), in order of first use; each clip's frames are
    # those `train_stage1_cnn` selects, in its order (the onset frame after them, if neutral).
    if not all(clip_sets):
        raise ValueError("Stage 1 needs at least one training clip in every fold.")
    union, position = _union_of_clips(clip_sets)
    frames, owners, targets, spans = stage1_samples(union, schedule, config)
    firsts = torch.stack([clip.crops[0] for clip in union])
    # fold k's frames in its own order: its local index i is the global frame local[k][i]
    local = [
        torch.cat([torch.arange(spans[position[id(c)]][0], sum(spans[position[id(c)]])) for c in clips])
        for clips in clip_sets
    ]
    sizes = [len(x) for x in local]
    alpha = torch.tensor([
        config.region_focal_alpha or inverse_frequency_alpha(targets[x].flatten(), config.num_region_classes)
        for x in local
    ])  # (K, classes)
    device = _model_device(models[0])
    frames, firsts = stage_tensor(frames, device), stage_tensor(firsts, device)
    at = frames.device
    owners, targets, alpha = owners.to(at), targets.to(device), alpha.to(device)

    cnn = stack_region_cnns([m.region_cnn for m in models], config)
    optimizer = StackedAdam(list(cnn.parameters()), folds, schedule.stage1_lr, schedule.weight_decay)
    step = compiled_step(stacked_batch_loss, mode)
    size = schedule.stage1_batch_size
    hidden, p = config.cnn_hidden_size, float(config.cnn_dropout)
    # Each fold's batches are the same every epoch but for their order: per step and fold, the loss
    # weights (0 for padding), the real samples, and whether the fold steps at all (in the group's
    # last steps, the shorter folds sit out)
    steps = max(-(-n // size) for n in sizes)
    weights = torch.zeros(steps, folds, size)
    counts = [[0] * folds for _ in range(steps)]
    for k, n in enumerate(sizes):
        fold_weights, fold_counts = padded_batches(n, size, regions, torch.device("cpu"))
        weights[: len(fold_counts), k] = fold_weights
        for s, count in enumerate(fold_counts):
            counts[s][k] = count
    weights = weights.to(device)
    real = torch.tensor(counts, dtype=torch.float64).to(device)  # (steps, K)
    active = real > 0
    epoch_losses = torch.zeros(schedule.stage1_epochs, folds, dtype=torch.float64, device=device)
    samples = torch.tensor(sizes, dtype=torch.float64).to(device)
    cnn.train()
    for epoch in _epochs(progress, "stage1_cnn", schedule.stage1_epochs, device):
        # the batches of every fold this epoch: (steps, K, B) global frame indices, padding 0
        index = torch.zeros(folds, steps * size, dtype=torch.long)
        for k, (x, n, g) in enumerate(zip(local, sizes, generators)):
            index[k, :n] = x[torch.randperm(n, generator=g)]
        index = index.view(folds, steps, size).transpose(0, 1).contiguous().to(at)
        totals = torch.zeros(folds, dtype=torch.float64, device=device)
        for s in range(steps):
            batch = index[s].flatten()  # (K * B,)
            keep = None
            if p > 0:
                # the draw fold k's own dropout makes on a batch of n samples: nn.Dropout fills a
                # mask laid out like its input, MieRegionLinear's (R, n, hidden) memory, in order
                # (a full batch's mask is drawn in place: one launch a fold, not four; scaled once)
                keep = torch.zeros(folds, regions, size, hidden, device=device)
                for k, n in enumerate(counts[s]):
                    if n == size:
                        keep[k].bernoulli_(1 - p, generator=dropout_generators[k])
                    elif n:
                        keep[k, :, :n].copy_(
                            torch.empty(regions, n, hidden, device=device)
                            .bernoulli_(1 - p, generator=dropout_generators[k])
                        )
                keep = keep.div_(1 - p).view(folds * regions, size, hidden).transpose(0, 1)  # (B, K*R, hidden)
            if mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            losses = step(
                cnn, config, folds, frames[batch].to(device, non_blocking=True),
                firsts[owners[batch]].to(device, non_blocking=True) if reads_first_frames(config) else None,
                targets[batch.to(device)], weights[s], alpha, keep, precision,
            )  # (K,)
            optimizer.zero_grad()
            losses.sum().backward()
            optimizer.step(active[s], every=all(counts[s]))
            totals += losses.detach().double() * real[s]
        epoch_losses[epoch] = totals / samples
    cnn.eval()
    unstack_region_cnns(cnn, [m.region_cnn for m in models])
    for m in models:
        m.region_cnn.eval()
    _synchronize(device)
    seconds = time.perf_counter() - start
    losses = epoch_losses.T.tolist()
    return [
        StageReport(losses=losses[k], subjects=sorted({c.subject for c in clip_sets[k]}), samples=sizes[k], seconds=seconds)
        for k in range(folds)
    ]


# ---------------------------------------------------------------------------- features
def stacked_features(
    models: Sequence[MieForVideoClassification],
    clip_sets: Sequence[Sequence[ClipTensors]],
    num_frames: int,
    precision: str = "fp32",
    batch_frames: int = 512,
) -> list[list[torch.Tensor]]:
    """`training.extract_features` of `models[k]` on `clip_sets[k]`, for every k in one pass:
    the folds' region CNNs stacked (`stack_region_cnns`) over every clip any fold reads, each
    clip's frames read and moved to the device once. `result[k][i]` is fold k's (T, R, F)
    features of `clip_sets[k][i]`."""
    if len(models) != len(clip_sets):
        raise ValueError("stacked_features needs one clip set per model.")
    union, position = _union_of_clips(clip_sets)
    config = models[0].config
    cnn = stack_region_cnns([m.region_cnn for m in models], config)
    every = cnn_features(cnn, config, union, num_frames, batch_frames, precision, folds=len(models))
    del cnn
    return [[every[k][position[id(c)]] for c in clips] for k, clips in enumerate(clip_sets)]


# ---------------------------------------------------------------------------- folds
def start_folds(
    config: MieConfig, folds: Sequence[tuple[Sequence[ClipTensors], int]], device: torch.device
) -> tuple[list[MieForVideoClassification], list[torch.Generator], list[torch.Generator]]:
    """`training.start_fold` for each (train clips, seed): the models, batch-order generators and
    dropout generators that `train_stage1_stacked` takes. Fold k's dropout generator is what its
    dropout would draw from alone: the global generator, as seeded and advanced by its model's
    initialisation (on CUDA, a generator of that device seeded alike)."""
    models, generators, dropout = [], [], []
    for train_clips, seed in folds:
        model, generator = start_fold(config, train_clips, seed, device)
        models.append(model)
        generators.append(generator)
        if device.type == "cuda":
            dropout.append(torch.Generator(device).manual_seed(seed))
        else:
            dropout.append(torch.Generator().set_state(torch.get_rng_state()))
    return models, generators, dropout


def train_folds(
    config: MieConfig,
    folds: Sequence[tuple[Sequence[ClipTensors], Sequence[ClipTensors], int]],
    schedule: TrainingSchedule,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    report_epochs: bool = False,
    compile: str | None = "off",
    on_outcome: Callable[[int, FoldOutcome], None] | None = None,
) -> list[FoldOutcome]:
    """`training.train_model` for several folds (train clips, test clips, seed), stage 1 stacked.

    Each fold starts from the model and generators `train_model` would give it, stage 1 trains all
    folds together (`train_stage1_stacked`), the features of every fold after stage 1 in one pass
    of the stacked CNN (`stacked_features`), and the rest (stage 2, fine-tune, prediction) runs
    fold by fold from the global generator state the fold would have had. On the
    CPU every fold's outcome equals `train_model`'s to rounding; on a GPU the dropout masks come
    from per-fold generators instead of the global one (as a GPU run already differs from a CPU
    run; docs/training.md). `on_outcome(i, outcome)`, if given, is called as each fold finishes.
    """
    compile = check_compile_mode(compile)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    models, generators, dropout = start_folds(config, [(f[0], f[2]) for f in folds], device)
    with float32_mode(device, precision):
        reports = train_stage1_stacked(
            models, [f[0] for f in folds], schedule, generators, dropout, progress, precision, compile
        )
        # every fold's features of every clip it reads (its training clips, then its test clips,
        # which no training stage reads), in one pass of the stacked CNN
        start = time.perf_counter()
        features = stacked_features(models, [[*f[0], *f[1]] for f in folds], schedule.num_frames, precision)
        share = (time.perf_counter() - start) / len(folds)
    outcomes = []
    for i, ((train_clips, test_clips, _), model, generator, rng, stage1) in enumerate(
        zip(folds, models, generators, dropout, reports)
    ):
        own = features[i]
        features[i] = None  # each fold's features go as it finishes
        # continue from where this fold's own global generator would be after stage 1
        if device.type == "cuda":
            torch.cuda.set_rng_state(rng.get_state(), device)
        else:
            torch.set_rng_state(rng.get_state())
        outcomes.append(
            finish_fold(
                model, stage1, train_clips, test_clips, schedule, generator, progress, precision, report_epochs,
                features=(own[: len(train_clips)], own[len(train_clips) :]), features_seconds=share,
            )
        )
        if on_outcome is not None:
            on_outcome(i, outcomes[-1])
    return outcomes


__all__ = [
    "StackedAdam",
    "stack_region_cnns",
    "stacked_batch_loss",
    "stacked_features",
    "start_folds",
    "train_folds",
    "train_stage1_stacked",
    "unstack_region_cnns",
]
