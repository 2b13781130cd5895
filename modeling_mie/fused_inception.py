"""The region CNN's inception block -> ReLU -> global average pooling as Triton kernels on the tensor cores, for training on CUDA.

Why: with 68 folds stacked, cuDNN ran the four thin inception branches (8 input channels, 16
filters each, 1x1 to 7x7, one group per region and fold) at 1.4-31 TFLOP/s, 68 ms of a 202 ms step
on an H100 (docs/training.md), and their 64 maps per region (2.7 GB in bf16 for 68 folds' batch) are
written, read by the ReLU, written again, read by the mean, and read and written again backward,
only to be averaged to 64 numbers per region and frame.

Here the four branches are one 7 x 7 convolution with 64 filters (the smaller kernels zero-padded,
as `MieRegionCNN.merged_inception`), computed as 49 small matrix products per tile of pixels (one
per tap: the tile's pixels shifted by the tap, 8 channels padded to 16, times that tap's 16 x 64
weights), accumulated in float32 on the tensor cores, and the maps never reach memory:

- forward, per (frame, group) and tile of pixels: the products, the bias, the ReLU, and the tile's
  sum per filter (added up over the tiles afterwards: the mean); one int8 per value records whether
  the ReLU let it through, which is all the backward needs;
- input gradient, per (frame, group) and tile: the output gradient is the pooled gradient divided
  by the pixel count where the ReLU let the value through, so per tap the tile's shifted records
  times the gradient, times the tap's weights transposed;
- weight and bias gradients, per (group, tap) and share of the frames' tiles: the tap's shifted
  input transposed times the output gradient, summed in float32 into per-program slots added up
  afterwards (deterministic, no atomics); a group's taps run side by side and share its records
  through L2.

Registered as `torch.library` custom operators. Nothing here runs on the CPU except under Triton's
interpreter (`TRITON_INTERPRET=1`; products in float32 there), which is how tests/test_fused_conv.py
checks them against the branches, ReLU and mean; `compile_report` builds them for an H100 with
Triton's compiler. `devices.configure_region_cnn(..., inception_kernel="triton")` puts them in a
region CNN (`MieRegionCNN.inception_pool`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .fused_conv import _interpreting, _splits, _triton, available
from .modeling_mie import merge_branches

__all__ = ["available", "chosen_configs", "compile_report", "inception_pool", "merged_weight"]

#: Input channels are padded to this many (the smallest product the tensor cores take).
CHANNELS_PADDED = 16


@functools.cache
def _kernels():
    triton, tl = _triton()
    # forward tiles of 128 pixels spilled registers compiled for sm_90 with the taps unrolled (Triton
    # 3.7 with 8 warps, 3.9 with 4); the taps are a loop now (unrolled, the input gradient took all 255
    # registers; looped, 168-203)
    configs = [triton.Config({"BM": 64}, num_warps=4), triton.Config({"BM": 64}, num_warps=8)]
    grad_configs = [triton.Config({"BM": 64}, num_warps=4), triton.Config({"BM": 128}, num_warps=8)]
    if _interpreting():
        configs, grad_configs = configs[:1], grad_configs[:1]

    @triton.autotune(configs=configs, key=["G", "H", "W", "C", "J", "KS"])
    @triton.jit
    def forward_kernel(
        x_ptr, w_ptr, b_ptr, sums_ptr, keep_ptr, G, H, W, TILES,
        C: tl.constexpr, CP: tl.constexpr, J: tl.constexpr, KS: tl.constexpr, BM: tl.constexpr,
        UPCAST: tl.constexpr,
    ):
        # one program: frame n and group g (axis 0: n * G + g), tile `tile` of BM pixels (axis 1)
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        tile = tl.program_id(1)
        hw = H * W
        p = tile * BM + tl.arange(0, BM)  # (BM,) pixels, row-major
        inside = p < hw
        h, w = p // W, p % W
        c = tl.arange(0, CP)
        j = tl.arange(0, J)
        pad: tl.constexpr = KS // 2
        acc = tl.zeros((BM, J), dtype=tl.float32)
        for tap in range(KS * KS):
            dy = tap // KS - pad
            dx = tap % KS - pad
            ok = inside & (h + dy >= 0) & (h + dy < H) & (w + dx >= 0) & (w + dx < W)
            a = tl.load(x_ptr + (ng * C + c[None, :]) * hw + (p + dy * W + dx)[:, None],
                        mask=ok[:, None] & (c < C)[None, :], other=0.0)  # (BM, CP): the tap's shifted pixels
            b = tl.load(w_ptr + ((g * KS * KS + tap) * CP + c[:, None]) * J + j[None, :])  # (CP, J)
            if UPCAST:  # Triton's interpreter multiplies bf16 as integers: float32 products there
                a, b = a.to(tl.float32), b.to(tl.float32)
            acc += tl.dot(a, b.to(a.dtype))
        acc += tl.load(b_ptr + g * J + j).to(tl.float32)[None, :]
        keep = (acc > 0) & inside[:, None]
        tl.store(keep_ptr + (ng * J + j[None, :]) * hw + p[:, None], keep.to(tl.int8), mask=inside[:, None])
        tl.store(sums_ptr + (ng * TILES + tile) * J + j, tl.sum(tl.where(keep, acc, 0.0), axis=0))

    @triton.autotune(configs=grad_configs, key=["G", "H", "W", "C", "J", "KS"])
    @triton.jit
    def input_grad_kernel(
        keep_ptr, gs_ptr, w_ptr, dx_ptr, G, H, W,
        C: tl.constexpr, CP: tl.constexpr, J: tl.constexpr, KS: tl.constexpr, BM: tl.constexpr,
        UPCAST: tl.constexpr,
    ):
        # one program: frame n and group g (axis 0), tile of BM input pixels (axis 1). Input pixel p
        # reaches, through tap (dy, dx), output pixel p - (dy, dx).
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        hw = H * W
        p = tl.program_id(1) * BM + tl.arange(0, BM)
        inside = p < hw
        h, w = p // W, p % W
        c = tl.arange(0, CP)
        j = tl.arange(0, J)
        pad: tl.constexpr = KS // 2
        gs = tl.load(gs_ptr + ng * J + j)  # (J,) float32: the pooled gradient over the pixel count
        acc = tl.zeros((BM, CP), dtype=tl.float32)
        for tap in range(KS * KS):
            dy = tap // KS - pad
            dx = tap % KS - pad
            ok = inside & (h - dy >= 0) & (h - dy < H) & (w - dx >= 0) & (w - dx < W)
            keep = tl.load(keep_ptr + (ng * J + j[None, :]) * hw + (p - dy * W - dx)[:, None],
                           mask=ok[:, None], other=0)  # (BM, J)
            d = keep.to(tl.float32) * gs[None, :]
            wt = tl.load(w_ptr + ((g * KS * KS + tap) * CP + c[None, :]) * J + j[:, None])  # (J, CP)
            if UPCAST:
                wt = wt.to(tl.float32)
            else:
                d = d.to(wt.dtype)
            acc += tl.dot(d, wt)
        tl.store(dx_ptr + (ng * C + c[None, :]) * hw + p[:, None], acc.to(dx_ptr.dtype.element_ty),
                 mask=inside[:, None] & (c < C)[None, :])

    @triton.autotune(configs=grad_configs, key=["G", "H", "W", "C", "J", "KS", "N", "SPLITS"])
    @triton.jit
    def weight_grad_kernel(
        x_ptr, keep_ptr, gs_ptr, dw_ptr, db_ptr, N, G, H, W, SPLITS,
        C: tl.constexpr, CP: tl.constexpr, J: tl.constexpr, KS: tl.constexpr, BM: tl.constexpr,
        UPCAST: tl.constexpr,
    ):
        # one program: tap (axis 0, fastest: a group's taps run side by side), share `split` of the
        # group's frames' tiles (axis 1), group g (axis 2); writes dw[g, split, tap] (CP, J) and, for
        # tap 0, db[g, split] (J,)
        tap = tl.program_id(0)
        split = tl.program_id(1)
        g = tl.program_id(2).to(tl.int64)
        pad: tl.constexpr = KS // 2
        dy = tap // KS - pad
        dx = tap % KS - pad
        hw = H * W
        c = tl.arange(0, CP)
        j = tl.arange(0, J)
        tiles = tl.cdiv(hw, BM)
        items = N * tiles
        per_split = tl.cdiv(items, SPLITS)
        acc = tl.zeros((CP, J), dtype=tl.float32)
        bias = tl.zeros((J,), dtype=tl.float32)
        for item in range(split * per_split, tl.minimum((split + 1) * per_split, items)):
            n = (item // tiles).to(tl.int64)
            ng = n * G + g
            p = (item % tiles) * BM + tl.arange(0, BM)
            inside = p < hw
            h, w = p // W, p % W
            keep = tl.load(keep_ptr + (ng * J + j[None, :]) * hw + p[:, None], mask=inside[:, None], other=0)
            d = keep.to(tl.float32) * tl.load(gs_ptr + ng * J + j)[None, :]  # (BM, J)
            bias += tl.sum(d, axis=0)
            ok = inside & (h + dy >= 0) & (h + dy < H) & (w + dx >= 0) & (w + dx < W)
            a = tl.load(x_ptr + (ng * C + c[None, :]) * hw + (p + dy * W + dx)[:, None],
                        mask=ok[:, None] & (c < C)[None, :], other=0.0)  # (BM, CP)
            if UPCAST:
                a = a.to(tl.float32)
            else:
                d = d.to(a.dtype)
            acc += tl.dot(tl.trans(a), d)
        slot = g * SPLITS + split
        tl.store(dw_ptr + ((slot * KS * KS + tap) * CP + c[:, None]) * J + j[None, :], acc)
        if tap == 0:
            tl.store(db_ptr + slot * J + j, bias)

    return triton, forward_kernel, input_grad_kernel, weight_grad_kernel


def chosen_configs() -> dict[str, str]:
    """The configuration Triton's autotuning chose for each kernel, for the last shapes it tuned."""
    from .fused_conv import _chosen

    _, forward_kernel, input_grad_kernel, weight_grad_kernel = _kernels()
    return _chosen({"forward": forward_kernel, "input grad": input_grad_kernel, "weight grad": weight_grad_kernel})


def merged_weight(branches, channels_padded: int = CHANNELS_PADDED) -> tuple[torch.Tensor, torch.Tensor]:
    """The inception branches (`MieRegionConv2d`s with odd kernels, the same input channels) as the
    kernels' weight (G, taps, channels padded, filters) of one convolution with the largest kernel,
    the smaller ones zero-padded, and its bias (G, filters); differentiable, so the branches' own
    weights get their gradients."""
    weight, bias = merge_branches(branches)  # (G, J, C, k, k), (G, J)
    g, j, c, size, _ = weight.shape
    weight = weight.permute(0, 3, 4, 2, 1).reshape(g, size * size, c, j)  # (G, taps, C, J)
    return F.pad(weight, (0, 0, 0, channels_padded - c)), bias


def _tiles(hw: int, meta) -> int:
    return -(-hw // meta["BM"])


@torch.library.custom_op("mie::inception_pool", mutates_args=())
def _inception_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, channels: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, G * C, H, W); weight: (G, k * k, CP, J) in x's dtype; bias: (G, J) float32 ->
    (N, G * J) float32 means of the ReLU'd maps, and the int8 records (N, G * J, H, W)."""
    _, forward_kernel, _, _ = _kernels()
    n, _, h, w = x.shape
    g, taps, cp, j = weight.shape
    tiles = -(-(h * w) // 64)  # the smallest tile: room for every configuration's tiles
    sums = torch.zeros((n * g, tiles, j), device=x.device, dtype=torch.float32)
    keep = torch.empty((n, g * j, h, w), device=x.device, dtype=torch.int8)
    grid = lambda meta: (n * g, _tiles(h * w, meta))
    forward_kernel[grid](x, weight, bias, sums, keep, g, h, w, tiles, C=channels, CP=cp, J=j,
                         KS=round(taps**0.5), UPCAST=_interpreting())
    return sums.sum(1).view(n, g * j).div_(h * w), keep


@_inception_pool.register_fake
def _(x, weight, bias, channels):
    n, _, h, w = x.shape
    g, _, _, j = weight.shape
    return x.new_empty((n, g * j), dtype=torch.float32), x.new_empty((n, g * j, h, w), dtype=torch.int8)


@torch.library.custom_op("mie::inception_pool_grad", mutates_args=())
def _inception_pool_grad(x: torch.Tensor, keep: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor,
                         channels: int, input_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input gradient (N, G * C, H, W) in x's dtype, or empty where not asked for; weight gradient
    (G, k * k, CP, J) and bias gradient (G, J) in float32)."""
    _, _, input_grad_kernel, weight_grad_kernel = _kernels()
    n, _, h, w = x.shape
    g, taps, cp, j = weight.shape
    ks = round(taps**0.5)
    gs = (grad.float() / (h * w)).contiguous()  # (N, G * J): each output pixel's gradient where the ReLU passed
    dx = x.new_empty((0,))
    if input_grad:
        dx = torch.empty_like(x)
        grid = lambda meta: (n * g, _tiles(h * w, meta))
        input_grad_kernel[grid](keep, gs, weight, dx, g, h, w, C=channels, CP=cp, J=j, KS=ks, UPCAST=_interpreting())
    splits = _splits(g * taps, n)
    dw = torch.empty((g, splits, taps, cp, j), device=x.device, dtype=torch.float32)
    db = torch.empty((g, splits, j), device=x.device, dtype=torch.float32)
    weight_grad_kernel[(taps, splits, g)](x, keep, gs, dw, db, n, g, h, w, splits, C=channels, CP=cp, J=j, KS=ks,
                                          UPCAST=_interpreting())
    return dx, dw.sum(1), db.sum(1)


@_inception_pool_grad.register_fake
def _(x, keep, grad, weight, channels, input_grad):
    g, taps, cp, j = weight.shape
    dx = torch.empty_like(x) if input_grad else x.new_empty((0,))
    return dx, x.new_empty((g, taps, cp, j), dtype=torch.float32), x.new_empty((g, j), dtype=torch.float32)


def _setup(ctx, inputs, output):
    x, weight, _, channels = inputs
    ctx.save_for_backward(x, output[1], weight)
    ctx.channels = channels


def _backward(ctx, grad, _keep_grad):
    x, keep, weight = ctx.saved_tensors
    dx, dw, db = _inception_pool_grad(x, keep, grad.contiguous(), weight, ctx.channels, ctx.needs_input_grad[0])
    return (dx if ctx.needs_input_grad[0] else None), dw.to(weight.dtype), db, None


_inception_pool.register_autograd(_backward, setup_context=_setup)


def inception_pool(hidden: torch.Tensor, branches) -> torch.Tensor:
    """`cat([relu(branch(hidden)).mean((2, 3)) for branch in branches], per region)` in fused kernels:
    hidden (N, G * C, H, W) (conv2's pooled map), branches the `MieRegionConv2d`s of the inception
    block -> (N, G * J) float32, per group the branches' filters in order. Reads `hidden` in
    autocast's dtype (bf16 under autocast), products accumulated in float32."""
    g, c = branches[0].num_regions, branches[0].in_channels
    if hidden.dim() != 4 or hidden.shape[1] != g * c or c > CHANNELS_PADDED:
        raise ValueError(f"the fused inception takes (N, {g} groups x {c} channels <= {CHANNELS_PADDED}, H, W) "
                         f"input; got {tuple(hidden.shape)}")
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    weight, bias = merged_weight(branches)
    if weight.shape[-1] & (weight.shape[-1] - 1) or weight.shape[-1] < 16:
        raise ValueError(f"the fused inception needs a power-of-two number of filters, 16 or more; got {weight.shape[-1]}")
    with torch.autocast(device, enabled=False):
        pooled, _ = _inception_pool(hidden.to(dtype).contiguous(), weight.to(dtype).contiguous(),
                                    bias.float().contiguous(), c)
    return pooled


def compile_report(capability: int = 90, channels: int = 8, filters: int = 64, kernel_size: int = 7) -> list[dict]:
    """Every kernel and autotuning configuration compiled for a CUDA GPU of compute `capability` with
    Triton's compiler, no GPU needed (as `fused_conv.compile_report`), for bf16 input."""
    from .fused_conv import _ptxas_report

    _, forward_kernel, input_grad_kernel, weight_grad_kernel = _kernels()
    scalars = {"G": "i32", "H": "i32", "W": "i32"}
    constants = {"C": channels, "CP": CHANNELS_PADDED, "J": filters, "KS": kernel_size, "UPCAST": False}
    kernels = [
        ("forward", forward_kernel, {"x_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*fp32", "sums_ptr": "*fp32",
                                     "keep_ptr": "*i8", **scalars, "TILES": "i32"}),
        ("input grad", input_grad_kernel, {"keep_ptr": "*i8", "gs_ptr": "*fp32", "w_ptr": "*bf16", "dx_ptr": "*bf16",
                                           **scalars}),
        ("weight grad", weight_grad_kernel, {"x_ptr": "*bf16", "keep_ptr": "*i8", "gs_ptr": "*fp32", "dw_ptr": "*fp32",
                                             "db_ptr": "*fp32", "N": "i32", **scalars, "SPLITS": "i32"}),
    ]
    return [{"layer": "inception", **row} for name, tuner, signature in kernels
            for row in _ptxas_report(name, tuner, signature, constants, capability)]
