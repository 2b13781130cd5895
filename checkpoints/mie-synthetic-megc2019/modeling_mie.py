"""The region-based CNN + LSTM micro-expression classifier of Aouayeb et al. (2019) in PyTorch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_mie import MieConfig
from .flow import decode_flow


# ---------------------------------------------------------------------------- outputs
@dataclass
class MieVideoClassifierOutput(ModelOutput):
    """Output of [`MieForVideoClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Focal loss of `logits` against `labels` (only when `labels` are given), plus
            `region_loss` when `region_labels` are given too.
        region_loss (`torch.FloatTensor` of shape `()`, *optional*):
            Stage-1 focal loss of `region_logits` against `region_labels` over the real frames;
            only when `region_labels` are given.
        logits (`torch.FloatTensor` of shape `(batch, num_labels)`):
            Class scores before softmax.
        region_logits (`torch.FloatTensor` of shape `(batch, frames, regions, num_labels + 1)`):
            Per-frame scores of each region's stage-1 head (the labels, then "not me"), at the
            input's frame positions; zero where `frame_mask` is False (padding and holes).
            `None` when the model ran on given `region_features`.
        region_features (`torch.FloatTensor` of shape `(batch, frames, regions, region_feature_size)`):
            The per-frame region features the LSTMs read, at the input's frame positions; zero
            where `frame_mask` is False. When `region_features` were given, they are returned
            as given.
        region_states (`torch.FloatTensor` of shape `(batch, regions, lstm_hidden_size)`):
            Last LSTM state of each region at each clip's last real frame.
        frame_mask (`torch.BoolTensor` of shape `(batch, frames)`):
            The caller's mask (all True when none was given): True for the frames the model
            read; False frames (padding, or holes between real frames) were skipped.
    """

    loss: torch.FloatTensor | None = None
    region_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    region_logits: torch.FloatTensor | None = None
    region_features: torch.FloatTensor | None = None
    region_states: torch.FloatTensor | None = None
    frame_mask: torch.BoolTensor | None = None


# ---------------------------------------------------------------------------- losses
def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-class focal loss (Lin et al., 2017): `-alpha[y] * (1 - p_y) ** gamma * log p_y`.

    Args:
        logits: (N, classes) scores before softmax.
        labels: (N,) class indices.
        gamma: focusing parameter; 0 gives (weighted) cross-entropy.
        alpha: (classes,) per-class weights, or None for 1.
        reduction: "mean", "sum" or "none".
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
    log_p = F.log_softmax(logits.float(), dim=-1).gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    loss = -log_p
    if gamma:
        loss = loss * (1.0 - log_p.exp()).clamp(min=0.0).pow(gamma)
    if alpha is not None:
        loss = loss * alpha.to(loss.device, loss.dtype)[labels.long()]
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def inverse_frequency_alpha(labels, num_classes: int) -> list[float]:
    """Focal-loss alpha from class counts: proportional to 1 / count, scaled to mean 1.

    Classes absent from `labels` get the largest weight of the present ones, so that a fold
    whose training subjects lack a class does not produce an infinite weight.
    """
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long).flatten(), minlength=num_classes).double()
    if counts.numel() != num_classes:
        raise ValueError(f"labels contain values >= num_classes ({num_classes}).")
    present = counts > 0
    if not present.any():
        raise ValueError("inverse_frequency_alpha needs at least one label.")
    inv = torch.zeros(num_classes, dtype=torch.double)
    inv[present] = 1.0 / counts[present]
    inv[~present] = inv[present].max()
    return (inv * num_classes / inv.sum()).tolist()


def region_cnn_input(
    config: MieConfig,
    pixel_values: torch.Tensor,
    first: torch.Tensor | None = None,
    frame_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """What the region CNNs see (config `input_mode`).

    pixel_values: (B, T, R, C, H, W) clips, or (N, R, C, H, W) single frames together with
    `first`, the (N, R, C, H, W) first real frame of each one's clip. For clips, `frame_mask`
    (B, T) bool marks the real frames; the first True frame of each clip is its onset (a clip
    may start with a hole). Without a mask, frame 0 is the onset.
    "frames" returns the crops unchanged; "onset_difference" subtracts each clip's onset frame
    (frames that are not real get garbage, which the model never reads); "flow" decodes the
    processor's flow codes (already relative to the reference frame) into normalised flow
    (`modeling_mie.flow.decode_flow`).
    """
    if config.input_mode == "frames":
        return pixel_values
    if config.input_mode == "flow":
        return decode_flow(pixel_values)
    if first is not None:
        return pixel_values - first
    if frame_mask is None:
        return pixel_values - pixel_values[:, :1]
    # argmax returns the first maximum: each clip's first True frame (every clip has one)
    onset = frame_mask.to(torch.int8).argmax(dim=1)  # (B,)
    batch = torch.arange(pixel_values.shape[0], device=pixel_values.device)
    return pixel_values - pixel_values[batch, onset.to(pixel_values.device)].unsqueeze(1)


def compact_frames(values: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each clip's real frames to the front, in their order: what the causal LSTMs read.

    values: (B, T, ...) per-frame values; frame_mask: (B, T) bool, True for real frames, which
    may have holes (False frames between True ones). Returns the (B, T, ...) values with each
    clip's `lengths[b]` real frames first and its False frames after them, and `lengths` (B,).
    A mask that is already a prefix (real frames first) returns `values` itself, untouched.
    """
    frame_mask = frame_mask.to(device=values.device, dtype=torch.bool)
    lengths = frame_mask.sum(1)  # (B,)
    prefix = torch.arange(frame_mask.shape[1], device=values.device).unsqueeze(0) < lengths.unsqueeze(1)
    if torch.equal(prefix, frame_mask):
        return values, lengths
    # a stable sort of "is not real" keeps the real frames in order, then the others
    order = torch.argsort((~frame_mask).to(torch.int8), dim=1, stable=True)  # (B, T)
    index = order.view(*order.shape, *(1,) * (values.dim() - 2)).expand_as(values)
    return values.gather(1, index), lengths


# ---------------------------------------------------------------------------- building blocks
class MieRegionConv2d(nn.Module):
    """One convolution per region, run as a single grouped convolution.

    The weights are stacked with the region first, `weight: (regions, out, in, k, k)`, so each
    region's filters can be read off directly; the forward pass views them as the
    `(regions * out, in, k, k)` weight of a convolution with `groups=regions` ("same" padding).
    """

    def __init__(self, num_regions: int, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.num_regions = num_regions
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(num_regions, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(num_regions, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Keras' glorot_uniform (the paper's framework), per region: fans of one region's conv.
        receptive = self.kernel_size * self.kernel_size
        bound = math.sqrt(6.0 / ((self.in_channels + self.out_channels) * receptive))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.zero_()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (N, regions * in, H, W) -> (N, regions * out, H, W)
        return F.conv2d(
            hidden,
            self.weight.flatten(0, 1),
            self.bias.flatten(),
            padding=self.kernel_size // 2,
            groups=self.num_regions,
        )

    def extra_repr(self) -> str:
        return f"regions={self.num_regions}, {self.in_channels}->{self.out_channels}, kernel={self.kernel_size}"


class MieRegionLinear(nn.Module):
    """One dense layer per region as a batched matrix multiply; `weight: (regions, out, in)`."""

    def __init__(self, num_regions: int, in_features: int, out_features: int):
        super().__init__()
        self.num_regions = num_regions
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_regions, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_regions, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_features + self.out_features))  # glorot_uniform
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.zero_()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (N, regions, in) -> (N, regions, out)
        out = torch.baddbmm(
            self.bias.unsqueeze(1),  # (regions, 1, out)
            hidden.transpose(0, 1),  # (regions, N, in)
            self.weight.transpose(1, 2),  # (regions, in, out)
        )
        return out.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"regions={self.num_regions}, {self.in_features}->{self.out_features}"


def merge_branches(branches) -> tuple[torch.Tensor, torch.Tensor]:
    """`MieRegionConv2d` branches (odd kernels, the same input channels) as one convolution with the
    largest kernel, the smaller ones zero-padded: weight (regions, filters of every branch in order,
    channels, k, k) and bias (regions, filters); differentiable, so each branch gets its gradients."""
    size = max(b.kernel_size for b in branches)
    weight = torch.cat([F.pad(b.weight, [(size - b.kernel_size) // 2] * 4) for b in branches], dim=1)
    return weight, torch.cat([b.bias for b in branches], dim=1)


def _max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2 x 2 max-pooling with stride 2 of (N, C, H, W), an odd last row / column dropped (as
    `F.max_pool2d(x, 2)`), as the maximum of four strided views: no indices, layout kept."""
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    return torch.maximum(
        torch.maximum(x[..., 0::2, 0::2], x[..., 1::2, 0::2]), torch.maximum(x[..., 0::2, 1::2], x[..., 1::2, 1::2])
    )


def _max_pool2_indexed(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2)


class MieRegionCNN(nn.Module):
    """The six region CNNs of the paper's spatial stage, as one batched computation.

    conv 5x5 (4) -> max-pool 2 -> conv 3x3 (8) -> max-pool 2 -> four parallel convs (16 each,
    1x1/3x3/5x5/7x7) concatenated with the second conv's output (72 channels) -> global average
    pooling -> dense 1024 -> dropout -> dense 20 (the region feature) -> dense `labels + 1`
    (the stage-1 head: the clip's emotion or "not me"). ReLU everywhere.

    All regions run in one grouped convolution per layer, in channels-last memory layout, on
    chunks of a few frames (`frames_per_chunk`); `bench/region_cnn.py` measured each choice against six
    separate modules giving the same outputs (on 2 CPU cores, 64 frames of 80 x 160 crops):
    - channels-last grouped convolutions: 1.4-1.9x the plain modules; the default layout 0.9x;
    - chunks of 8 frames: the intermediate maps stay in cache instead of spilling to memory and
      page-faulting (conv1's output for 64 frames is 79 MB): 1.2x more;
    - grey input makes conv1 a depthwise convolution once each region's image is repeated per
      filter; oneDNN's depthwise kernel ran it 3.5x faster than the grouped one;
    - 2x2 max-pooling as the maximum of four strided views (`_max_pool2`) is 2.5x faster than
      `F.max_pool2d`, which also computes indices; ReLU commutes with max-pooling, so it runs
      on the pooled quarter of the values.
    The last two are for inference only: with gradients, `F.max_pool2d` and the grouped conv1
    train faster (their backward passes are cheaper).
    The inception branches, most of the FLOPs, already run near the machine's matmul rate.
    """

    #: Frames per chunk of the convolution stack (does not change the outputs); None picks by
    #: crop size what measured fastest on 2 cores, training and inference alike: 8 frames of
    #: 80 x 160 crops (paper preset), 16 of 40 x 80 (fast preset).
    chunk_frames: int | None = None
    #: Run the grouped convolutions in channels-last memory (measured faster on the CPU's oneDNN);
    #: `devices.prepare_model` turns it off on CUDA, where cuDNN's grouped kernels ran faster in NCHW
    #: at every layer, 7x faster for conv1 with 68 folds stacked (`bench/stacked_step.py --forms`).
    channels_last: bool = True
    #: None: conv1 and conv2, each followed by max-pooling and ReLU, as three operations (cuDNN's or
    #: oneDNN's convolution); else a function of (input (N, regions * channels, H, W), the layer's
    #: weight, its bias) computing all three in one pass (`modeling_mie.fused_conv`, Triton kernels for
    #: CUDA, set by `devices.configure_region_cnn(..., conv_kernel="triton")`).
    conv_pool_relu = None
    #: Run the four inception branches as one grouped convolution with the largest kernel, the smaller
    #: kernels zero-padded to it (same outputs; 2.3x the arithmetic of the paper's kernels, in one wider
    #: convolution): for GPUs, where cuDNN ran the thin branches far below the card's rate
    #: (`devices.configure_region_cnn(..., merged_inception=True)`). `forward_maps` then gives the
    #: branches as one map, their channels per region in branch order, which concatenates the same.
    merged_inception: bool = False
    #: None: the inception branches' maps are computed, ReLU'd and averaged by PyTorch; else a function
    #: of (conv2's pooled map (N, regions * channels, h, w), the branches) returning their ReLU'd maps'
    #: means (N, regions * branches * filters) without materialising the maps (`modeling_mie.fused_inception`,
    #: Triton kernels for CUDA, set by `devices.configure_region_cnn(..., inception_kernel="triton")`);
    #: used by `pooled_features`, the training and inference path (`forward_maps` keeps the maps).
    inception_pool = None

    def frames_per_chunk(self, height: int, width: int) -> int:
        return self.chunk_frames or (16 if height * width <= 40 * 80 else 8)

    def __init__(self, config: MieConfig, num_regions: int | None = None):
        # `num_regions`: the config's regions unless given; several folds' CNNs train as one with
        # their regions side by side (`modeling_mie.stacked`)
        super().__init__()
        regions, channels = num_regions or config.num_regions, config.num_channels
        self.num_regions = regions
        self.conv1 = MieRegionConv2d(regions, channels, config.conv1_filters, config.conv1_kernel_size)
        self.conv2 = MieRegionConv2d(regions, config.conv1_filters, config.conv2_filters, config.conv2_kernel_size)
        self.inception = nn.ModuleList(
            MieRegionConv2d(regions, config.conv2_filters, config.inception_filters, k)
            for k in config.inception_kernel_sizes
        )
        self.fc1 = MieRegionLinear(regions, config.cnn_channels, config.cnn_hidden_size)
        self.dropout = nn.Dropout(config.cnn_dropout)
        self.fc2 = MieRegionLinear(regions, config.cnn_hidden_size, config.region_feature_size)
        self.head = MieRegionLinear(regions, config.region_feature_size, config.num_region_classes)

    def forward_maps(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The last convolutional maps: the inception branches and the second conv's output.

        pixel_values: (N, regions, channels, H, W). Returns a list of tensors
        (N, regions * c_i, H / 4, W / 4), one per inception branch and then the pooled second
        conv; per region they concatenate to the paper's 72 channels.
        """
        hidden = self._stem(pixel_values)  # (N, R*8, H/4, W/4)
        if self.merged_inception:
            return [F.relu(self._merged_inception(hidden)), hidden]
        return [F.relu(branch(hidden)) for branch in self.inception] + [hidden]

    def _stem(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """conv1 -> pool -> ReLU -> conv2 -> pool -> ReLU: (N, R, C, H, W) -> (N, R * 8, H / 4, W / 4)."""
        if self.conv_pool_relu is not None:
            n, r, c, h, w = pixel_values.shape
            hidden = self.conv_pool_relu(pixel_values.reshape(n, r * c, h, w), self.conv1.weight, self.conv1.bias)
            return self.conv_pool_relu(hidden, self.conv2.weight, self.conv2.bias)
        # The depthwise conv1 and the strided-maxima pooling win without gradients; with them,
        # their backward passes (a sum over the repeats, masks per maximum) cost more than the
        # grouped conv's and F.max_pool2d's (measured: training 98 vs 113 frames/s).
        inference = not torch.is_grad_enabled()
        pool = _max_pool2 if inference else _max_pool2_indexed
        hidden = F.relu(pool(self._first_conv(pixel_values, depthwise=inference)))  # (N, R*4, H/2, W/2)
        return F.relu(pool(self.conv2(hidden)))  # (N, R*8, H/4, W/4)

    def pooled_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`pool_maps(forward_maps(pixel_values))`: (N, regions, channels, H, W) -> (N, regions,
        cnn_channels); with `inception_pool` set, the inception maps are averaged inside its kernels."""
        if self.inception_pool is None:
            return self.pool_maps(self.forward_maps(pixel_values))
        hidden = self._stem(pixel_values)
        n = hidden.shape[0]
        inception = self.inception_pool(hidden, list(self.inception)).view(n, self.num_regions, -1)
        return torch.cat([inception, hidden.mean(dim=(2, 3)).view(n, self.num_regions, -1).to(inception.dtype)], dim=2)

    def _merged_inception(self, hidden: torch.Tensor) -> torch.Tensor:
        """The inception branches as one grouped convolution: (N, R * c, h, w) -> (N, R * 4 * 16, h, w),
        per region the branches' filters in order (what concatenating their maps gives)."""
        weight, bias = merge_branches(self.inception)
        return F.conv2d(hidden, weight.flatten(0, 1), bias.flatten(), padding=weight.shape[-1] // 2,
                        groups=self.num_regions)

    def _first_conv(self, pixel_values: torch.Tensor, depthwise: bool = True) -> torch.Tensor:
        """conv1 on (N, regions, channels, H, W) -> (N, regions * filters, H, W), channels-last
        (NCHW where `channels_last` is off: CUDA, where the grouped convolution also runs inference)."""
        n, r, c, h, w = pixel_values.shape
        conv = self.conv1
        if not self.channels_last:
            return conv(pixel_values.reshape(n, r * c, h, w).contiguous())
        if c != 1 or not depthwise:
            return conv(pixel_values.reshape(n, r * c, h, w).contiguous(memory_format=torch.channels_last))
        # Grey: one input channel per region, so repeating each region's image once per filter
        # turns the grouped convolution into a depthwise one, channel (r, f) <- filter f of r.
        # (Going channels-last before repeating measured 3.7x faster, copy and conv together,
        # than one transposing copy from the frames' own layout.)
        k = conv.out_channels
        x = pixel_values.reshape(n, r, h, w).contiguous(memory_format=torch.channels_last)
        x = x.permute(0, 2, 3, 1).unsqueeze(-1).expand(n, h, w, r, k).reshape(n, h, w, r * k)  # (N, H, W, R*k)
        x = x.permute(0, 3, 1, 2)  # (N, R*k, H, W), channels-last memory
        return F.conv2d(
            x, conv.weight.flatten(0, 1), conv.bias.flatten(), padding=conv.kernel_size // 2, groups=r * k
        )

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Global average pooling of `forward_maps` output -> (N, regions, cnn_channels)."""
        n = maps[0].shape[0]
        # Pool first, then reorder the small (N, R, c) vectors to region-major concatenation.
        pooled = [m.mean(dim=(2, 3)).view(n, self.num_regions, -1) for m in maps]
        return torch.cat(pooled, dim=2)

    def forward_head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pooled: (N, regions, cnn_channels) -> features (N, regions, F), logits (N, regions, K)."""
        hidden = self.dropout(F.relu(self.fc1(pooled)))
        features = F.relu(self.fc2(hidden))
        return features, self.head(features)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values: (N, regions, channels, H, W) -> (features (N, R, F), logits (N, R, K))."""
        chunks = pixel_values.split(self.frames_per_chunk(*pixel_values.shape[-2:]))
        pooled = [self.pooled_features(chunk) for chunk in chunks]
        return self.forward_head(torch.cat(pooled))


class MieTemporalFusion(nn.Module):
    """The temporal stage: one LSTM per region over its frame features, then the fusion head.

    Real clip lengths are honoured (the paper zero-padded every clip to 500 frames): the state
    classified is each clip's state at its last real frame, which padding never reaches. It
    reads each clip's real frames first (`compact_frames` moves them there when a mask has
    holes); [`MieForVideoClassification`] does that for its callers.

    Before the LSTMs, each region feature is standardised with fixed statistics of the training
    frames (`fit_feature_statistics`, stored in the checkpoint as buffers `feature_mean` /
    `feature_std`; identity until fitted). This is not in the paper: the CNN's ReLU features
    carry large per-dimension offsets next to small class differences, and on a controlled
    problem the LSTMs reached 50% training accuracy on raw features and 100% on standardised
    ones. `config.standardize_features` switches it on (the fast preset; the paper preset keeps
    the paper's raw input).
    """

    def __init__(self, config: MieConfig):
        super().__init__()
        self._config = config  # read at call time: `temperature` is set after training
        self.standardize = config.standardize_features
        self.register_buffer("feature_mean", torch.zeros(config.num_regions, config.region_feature_size))
        self.register_buffer("feature_std", torch.ones(config.num_regions, config.region_feature_size))
        self.lstms = nn.ModuleList(
            nn.LSTM(config.region_feature_size, config.lstm_hidden_size, batch_first=True)
            for _ in range(config.num_regions)
        )
        self.dropout = nn.Dropout(config.lstm_dropout)
        self.fusion = nn.Linear(config.num_regions * config.lstm_hidden_size, config.fusion_hidden_size)
        self.act = nn.LeakyReLU(config.leaky_relu_slope)
        self.classifier = nn.Linear(config.fusion_hidden_size, config.num_labels)

    @torch.no_grad()
    def fit_feature_statistics(self, features: list[torch.Tensor] | torch.Tensor, eps: float = 1e-3) -> None:
        """Set the standardisation from real frames: `features` is a list of (T_i, R, F) tensors
        or one (N, R, F) tensor of frames. `eps` floors the std so dead features stay finite."""
        frames = torch.cat(list(features)) if isinstance(features, (list, tuple)) else features
        frames = frames.reshape(-1, *self.feature_mean.shape).to(self.feature_mean)
        self.feature_mean.copy_(frames.mean(0))
        self.feature_std.copy_(frames.std(0, unbiased=False).clamp_min(eps))

    def forward(self, region_features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """region_features: (B, T, R, F), each clip's `lengths[b]` real frames first; lengths: (B,)
        -> logits (B, L), states (B, R, H). The logits are divided by the config's `temperature`
        (1 while training; set from the LOSO run's out-of-fold predictions, `modeling_mie.calibration`).

        Under autocast (bf16 training on a GPU) this stage still runs in float32: the LSTM state
        carries rounding over up to a few hundred frames, and the stage is a small share of the
        work (the region CNNs are most of it)."""
        if torch.is_autocast_enabled(region_features.device.type):
            with torch.autocast(region_features.device.type, enabled=False):
                return self.forward(region_features.float(), lengths)
        if self.standardize:
            region_features = (region_features - self.feature_mean) / self.feature_std
        # The LSTM is causal and padding comes after the real frames, so the output at each
        # clip's last real frame is exactly the state a packed sequence would end in; running
        # unpacked and gathering it measured 2x faster than packing (fwd + bwd, batch 64).
        last = (lengths.to(region_features.device, torch.long) - 1).view(-1, 1, 1)
        last = last.expand(-1, 1, self.lstms[0].hidden_size)
        states = []
        for region, lstm in enumerate(self.lstms):
            outputs, _ = lstm(region_features[:, :, region])  # (B, T, H)
            states.append(outputs.gather(1, last)[:, 0])
        states = torch.stack(states, dim=1)  # (B, R, H)
        fused = self.act(self.fusion(self.dropout(states).flatten(1)))
        logits = self.classifier(fused)
        temperature = float(getattr(self._config, "temperature", 1.0))
        return (logits if temperature == 1.0 else logits / temperature), states


# ---------------------------------------------------------------------------- models
class MiePreTrainedModel(PreTrainedModel):
    config_class = MieConfig
    base_model_prefix = "mie"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Keras defaults, as the paper used Keras: glorot_uniform kernels, orthogonal recurrent
        # kernels, zero biases, forget-gate bias 1 (unit_forget_bias).
        if isinstance(module, (MieRegionConv2d, MieRegionLinear)):
            module.reset_parameters()
        elif isinstance(module, MieTemporalFusion):
            module.feature_mean.zero_()
            module.feature_std.fill_(1.0)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            hidden = module.hidden_size
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    for gate in range(4):
                        nn.init.xavier_uniform_(param[gate * hidden : (gate + 1) * hidden])
                elif name.startswith("weight_hh"):
                    for gate in range(4):
                        nn.init.orthogonal_(param[gate * hidden : (gate + 1) * hidden])
                elif name.startswith("bias_ih"):
                    param.zero_()
                    param[hidden : 2 * hidden] = 1.0  # PyTorch gate order: input, forget, cell, output
                elif name.startswith("bias_hh"):
                    param.zero_()


class MieForVideoClassification(MiePreTrainedModel):
    """Region CNNs -> per-frame region features -> region LSTMs -> fusion -> class logits.

    Inputs come from [`MieProcessor`]: `pixel_values` of shape (batch, frames, regions,
    channels, height, width) and a `frame_mask` of shape (batch, frames) that is True for the
    frames the model reads. Each clip is the sequence of its True frames, in order; False
    frames are skipped as if absent, whether they are padding after the clip or holes inside
    it (the processor's frames where the face was lost, turned or occluded). With
    `input_mode="onset_difference"` every frame is taken relative to the clip's first True
    frame. Per-frame outputs keep the input's frame positions, zero at False frames. Stage-2
    training may pass precomputed `region_features` of shape (batch, frames, regions,
    region_feature_size) instead of `pixel_values` to skip the (frozen) CNNs.

    Parameter count of the "paper" preset: 1,094,611 with the stage-1 heads. The paper reports
    1,093,531 (Keras). PyTorch's LSTM keeps two bias vectors per gate where Keras keeps one
    (+4 x 120 = 480 per region, +2,880 in all); without that, this model has 1,091,731, i.e.
    0.16% under the paper's figure, the rest being rounding in how the paper counted.
    The stage-1 heads (6 x 84 parameters) stay in the published model because the explanations
    read each region's own evidence from them.
    """

    def __init__(self, config: MieConfig):
        super().__init__(config)
        self.region_cnn = MieRegionCNN(config)
        self.temporal = MieTemporalFusion(config)
        self.post_init()

    # -- helpers -------------------------------------------------------------------------
    def _check_inputs(self, pixel_values, region_features, frame_mask):
        cfg = self.config
        if (pixel_values is None) == (region_features is None):
            raise ValueError("Pass exactly one of pixel_values or region_features.")
        if pixel_values is not None:
            expected = (cfg.num_regions, cfg.num_channels, *cfg.crop_size)
            if pixel_values.dim() != 6 or tuple(pixel_values.shape[2:]) != expected:
                raise ValueError(
                    "pixel_values must be (batch, frames, regions, channels, height, width) with "
                    f"(regions, channels, height, width) = {expected}; got {tuple(pixel_values.shape)}."
                )
            batch, frames = pixel_values.shape[:2]
        else:
            expected = (cfg.num_regions, cfg.region_feature_size)
            if region_features.dim() != 4 or tuple(region_features.shape[2:]) != expected:
                raise ValueError(
                    "region_features must be (batch, frames, regions, features) with (regions, "
                    f"features) = {expected}; got {tuple(region_features.shape)}."
                )
            batch, frames = region_features.shape[:2]
        device = (pixel_values if pixel_values is not None else region_features).device
        if frames == 0:
            raise ValueError("Clips must have at least one frame; got frames = 0.")
        if frame_mask is None:
            return torch.ones(batch, frames, dtype=torch.bool, device=device)
        frame_mask = frame_mask.to(device=device).bool()
        if tuple(frame_mask.shape) != (batch, frames):
            raise ValueError(f"frame_mask must be (batch, frames) = {(batch, frames)}; got {tuple(frame_mask.shape)}.")
        empty = ~frame_mask.any(1)
        if empty.any():
            raise ValueError(
                "Every clip needs at least one real frame (True in frame_mask); clips "
                f"{empty.nonzero().flatten().tolist()} have none."
            )
        return frame_mask

    def extract_region_features(self, pixel_values: torch.Tensor, frame_mask: torch.Tensor | None = None):
        """Run the region CNNs on the real frames only.

        pixel_values: (B, T, R, C, H, W); frame_mask: (B, T) bool, True for real frames (holes
        allowed). Returns features (B, T, R, F) and region logits (B, T, R, K) at the input's
        frame positions, zero where the mask is False.
        """
        frame_mask = self._check_inputs(pixel_values, None, frame_mask)
        pixel_values = region_cnn_input(self.config, pixel_values, frame_mask=frame_mask)
        frames = pixel_values[frame_mask]  # (n_real, R, C, H, W)
        feats, logits = self.region_cnn(frames)
        batch, length = frame_mask.shape
        all_feats = feats.new_zeros(batch, length, *feats.shape[1:])
        all_logits = logits.new_zeros(batch, length, *logits.shape[1:])
        all_feats[frame_mask] = feats
        all_logits[frame_mask] = logits
        return all_feats, all_logits

    # -- forward -------------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        region_labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MieVideoClassifierOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, frames, regions, channels, height, width)`):
            Region crops from [`MieProcessor`].
        frame_mask (`torch.BoolTensor` of shape `(batch, frames)`, *optional*):
            True for the frames to read, False for frames to skip: padding after a clip or holes
            inside it (e.g. frames without the face). Each clip is the sequence of its True
            frames, in order, and needs at least one. Defaults to all frames real.
        labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            Class indices; when given, the focal loss (config `focal_gamma`, `focal_alpha`) is
            returned.
        region_features (`torch.FloatTensor` of shape `(batch, frames, regions, region_feature_size)`, *optional*):
            Precomputed region CNN features, instead of `pixel_values`.
        region_labels (`torch.LongTensor` of shape `(batch, regions)`, *optional*):
            Stage-1 label of each region of each clip (`config.region_labels`), applied to every
            real frame; when given with `pixel_values`, the stage-1 focal loss (config
            `region_focal_alpha`) is returned as `region_loss` and added to `loss`, which
            trains the whole model end to end.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        frame_mask = self._check_inputs(pixel_values, region_features, frame_mask)
        region_logits = None
        if region_features is None:
            region_features, region_logits = self.extract_region_features(pixel_values, frame_mask)
        # The LSTMs read each clip's real frames back to back; the per-frame outputs stay in
        # the input's layout. A prefix mask passes through untouched (the path it always had).
        logits, states = self.temporal(*compact_frames(region_features, frame_mask))

        loss = region_loss = None
        if labels is not None:
            alpha = self.config.focal_alpha
            alpha = torch.tensor(alpha, device=logits.device) if alpha is not None else None
            loss = focal_loss(logits, labels.to(logits.device), self.config.focal_gamma, alpha)
        if region_labels is not None:
            if region_logits is None:
                raise ValueError("region_labels need pixel_values: the stage-1 heads run on crops.")
            expected = (frame_mask.shape[0], self.config.num_regions)
            if tuple(region_labels.shape) != expected:
                raise ValueError(f"region_labels must be (batch, regions) = {expected}; got {tuple(region_labels.shape)}.")
            # (B, R) -> one target per real frame and region: (n_real * R,)
            targets = region_labels.to(logits.device).unsqueeze(1).expand(-1, frame_mask.shape[1], -1)[frame_mask]
            alpha = self.config.region_focal_alpha
            alpha = torch.tensor(alpha, device=logits.device) if alpha is not None else None
            region_loss = focal_loss(
                region_logits[frame_mask].flatten(0, 1), targets.flatten(), self.config.focal_gamma, alpha
            )
            loss = region_loss if loss is None else loss + region_loss

        out = MieVideoClassifierOutput(
            loss=loss,
            region_loss=region_loss,
            logits=logits,
            region_logits=region_logits,
            region_features=region_features,
            region_states=states,
            frame_mask=frame_mask,
        )
        return out if return_dict else out.to_tuple()

    def save_pretrained(self, save_directory, *args, **kwargs):
        # register_for_auto_class gives one auto entry per class; AutoModel must load this
        # class as well in remote-code mode, so its entry is added by hand.
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.setdefault("AutoModel", f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


__all__ = [
    "MieForVideoClassification",
    "MiePreTrainedModel",
    "MieRegionCNN",
    "MieTemporalFusion",
    "MieVideoClassifierOutput",
    "compact_frames",
    "focal_loss",
    "inverse_frequency_alpha",
    "region_cnn_input",
]
