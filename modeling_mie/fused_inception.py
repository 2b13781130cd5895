"""The region CNN's inception block -> ReLU -> global average pooling as Triton kernels on the tensor cores, for training on CUDA.

Why: with 68 folds stacked, cuDNN ran the four thin inception branches (8 input channels, 16
filters each, 1x1 to 7x7, one group per region and fold) at 1.4-31 TFLOP/s, 68 ms of a 202 ms step
on an H100 (docs/training.md), and their 64 maps per region (2.7 GB in bf16 for 68 folds' batch) are
written, read by the ReLU, written again, read by the mean, and read and written again backward,
only to be averaged to 64 numbers per region and frame.

Here each branch is a sum of small matrix products per tile of pixels, on the tensor cores, over its
own taps only, and the maps never reach memory. The taps are taken two at a time, so that one
product's inner dimension is 16 real values (8 input channels under each of two taps) and not 8
channels padded to 16; the taps are ordered by ring around the centre (the centre, the ring of the
3 x 3, then of the 5 x 5, of the 7 x 7), so a branch of kernel k uses the first 1 + 2r(r + 1) pairs
(r = k // 2), and a pair's shifted pixels, read once, feed every branch that reaches that ring. For
the paper's 1, 3, 5 and 7 that is 44 products of 16 x 16 weights per tile, 95 % of their
multiply-adds useful, where the four branches as one zero-padded 7 x 7 convolution of 8 channels
padded to 16 (this module's first version) took 49 products of 16 x 64: 4.5 times the multiply-adds
forward and in the weight gradient, 2.2 times in the input gradient.

- forward, per (frame, group) and tile of pixels: the products, the bias, the ReLU, and the tile's
  sum per filter (added up over the tiles afterwards: the mean); one int8 per value records whether
  the ReLU let it through, which is all the backward needs;
- input gradient, per (frame, group) and tile: the output gradient is the pooled gradient divided
  by the pixel count where the ReLU let the value through, so per pair of taps and branch the
  records at the two shifted positions times the gradient, times the taps' weights transposed;
- weight and bias gradients, per (group, branch and pair of taps) and share of the frames' tiles:
  the pair's shifted input transposed times the branch's output gradient, summed in float32 into
  per-program slots added up afterwards (deterministic, no atomics); a group's pairs run side by side
  and share its records through L2.

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

from .fused_conv import COMPILE_OPTIONS, _interpreting, _pow2, _splits, _triton, _tuned, available

__all__ = ["available", "chosen_configs", "compile_report", "inception_pool", "packed_weight"]

#: The most branches the kernels take (one float32 accumulator each).
MAX_BRANCHES = 4
#: Where the second tap of the first pair (the centre has no partner) points: off every map.
_NOWHERE = 1 << 16


def pairs_within(radius: int) -> int:
    """Pairs of taps of a kernel of `radius` (size 2 * radius + 1): the centre and its empty partner,
    then the 8r taps of each ring r."""
    return 1 + 2 * radius * (radius + 1)


def _radius(pairs: int) -> int:
    """The radius of the kernel of `pairs` pairs of taps (`pairs_within`)."""
    radius = 0
    while pairs_within(radius) < pairs:
        radius += 1
    return radius


def ring_taps(radius: int) -> list[tuple[int, int]]:
    """The taps (dy, dx) of a (2 * radius + 1)-square kernel ordered by ring, the centre first with an
    empty partner (`_NOWHERE`): the first `pairs_within(r)` pairs are the taps of the smaller
    kernel of radius r."""
    taps = [(0, 0), (_NOWHERE, _NOWHERE)]
    for r in range(1, radius + 1):
        taps += [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if max(abs(dy), abs(dx)) == r]
    return taps


@functools.cache
def _tap_table(radius: int, device: str) -> torch.Tensor:
    return torch.tensor(ring_taps(radius), dtype=torch.int32, device=device)


@functools.cache
def _pair_order(size: int, device: str) -> torch.Tensor:
    """Where each tap of `ring_taps` is in a size x size kernel's row-major taps (the empty partner:
    size * size, one past them); made once per device, not in every step."""
    radius = size // 2
    return torch.tensor([size * size if dy == _NOWHERE else (dy + radius) * size + dx + radius
                         for dy, dx in ring_taps(radius)], device=device)


# The kernels' helpers, jitted where Triton imports (module-level: Triton resolves the functions a
# kernel calls among its globals)
if _triton() is not None:
    triton, tl = _triton()

    @triton.jit
    def _shifted_pair(x_ptr, taps_ptr, q, ng, p, inside, h, w, H, W,
                     C: tl.constexpr, HALF: tl.constexpr, UPCAST: tl.constexpr):
        # (BM, 2 * HALF): the input under pair q's two taps for the tile's pixels; column k is channel
        # k % HALF under the pair's tap k // HALF (zero off the map, past C channels, for no tap)
        k = tl.arange(0, 2 * HALF)
        ch = k % HALF
        tap = 2 * q + k // HALF
        dy = tl.load(taps_ptr + 2 * tap)
        dx = tl.load(taps_ptr + 2 * tap + 1)
        hh = h[:, None] + dy[None, :]
        ww = w[:, None] + dx[None, :]
        ok = inside[:, None] & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W) & (ch < C)[None, :]
        a = tl.load(x_ptr + (ng * C + ch[None, :]) * (H * W) + hh * W + ww, mask=ok, other=0.0)
        if UPCAST:  # Triton's interpreter multiplies bf16 as integers: float32 products there
            a = a.to(tl.float32)
        return a

    @triton.jit
    def _pair_weight(w_ptr, g, u, SQ, HALF: tl.constexpr, JB: tl.constexpr, UPCAST: tl.constexpr):
        # (2 * HALF, JB): packed pair u's weights (rows: channels under the first tap, then the second)
        k = tl.arange(0, 2 * HALF)
        j = tl.arange(0, JB)
        b = tl.load(w_ptr + ((g * SQ + u) * (2 * HALF) + k[:, None]) * JB + j[None, :])
        if UPCAST:
            b = b.to(tl.float32)
        return b

    @triton.jit
    def _product(acc, a, w_ptr, g, u, SQ, HALF: tl.constexpr, JB: tl.constexpr, UPCAST: tl.constexpr,
                 IEEE: tl.constexpr):
        # acc + the pair's shifted input times packed pair u's weights
        b = _pair_weight(w_ptr, g, u, SQ, HALF, JB, UPCAST).to(a.dtype)
        if IEEE:  # float32 input (--precision fp32): float32 products, not TF32's
            return acc + tl.dot(a, b, input_precision="ieee")
        return acc + tl.dot(a, b)

    @triton.jit
    def _segment(acc0, acc1, acc2, acc3, x_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w, H, W, SQ,
                 FIRST: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr, C: tl.constexpr, HALF: tl.constexpr,
                 JB: tl.constexpr, NB: tl.constexpr, Q0: tl.constexpr, Q1: tl.constexpr, Q2: tl.constexpr,
                 UPCAST: tl.constexpr, IEEE: tl.constexpr):
        # pairs LO..HI of taps, each read once, into the accumulators of branches FIRST.. (sorted by
        # kernel; branch i's pairs start at Q0 + ... + Q(i-1) in the packed weights)
        for q in range(LO, HI):
            a = _shifted_pair(x_ptr, taps_ptr, q, ng, p, inside, h, w, H, W, C, HALF, UPCAST)
            if FIRST == 0:
                acc0 = _product(acc0, a, w_ptr, g, q, SQ, HALF, JB, UPCAST, IEEE)
            if FIRST <= 1 and NB > 1:
                acc1 = _product(acc1, a, w_ptr, g, Q0 + q, SQ, HALF, JB, UPCAST, IEEE)
            if FIRST <= 2 and NB > 2:
                acc2 = _product(acc2, a, w_ptr, g, Q0 + Q1 + q, SQ, HALF, JB, UPCAST, IEEE)
            if NB > 3:
                acc3 = _product(acc3, a, w_ptr, g, Q0 + Q1 + Q2 + q, SQ, HALF, JB, UPCAST, IEEE)
        return acc0, acc1, acc2, acc3

    @triton.jit
    def _finish(acc, b_ptr, sums_ptr, keep_ptr, ng, g, tile, p, inside, hw, TILES,
                SLOT: tl.constexpr, J: tl.constexpr, JB: tl.constexpr, BM: tl.constexpr):
        # bias, ReLU, the records and the sum per filter of one branch (filters SLOT * JB...) over
        # each 64 pixels of the tile: the same slots, and the same sums, whatever tile autotuning
        # chose (and none left from its trials of other tiles)
        f = SLOT * JB + tl.arange(0, JB)
        acc += tl.load(b_ptr + g * J + f).to(tl.float32)[None, :]
        keep = (acc > 0) & inside[:, None]
        tl.store(keep_ptr + (ng * J + f[None, :]) * hw + p[:, None], keep.to(tl.int8), mask=inside[:, None])
        R: tl.constexpr = BM // 64
        part = tl.sum(tl.reshape(tl.where(keep, acc, 0.0), (R, 64, JB)), axis=1)  # (R, JB)
        slot = tile * R + tl.arange(0, R)
        tl.store(sums_ptr + (ng * TILES + slot[:, None]) * J + f[None, :], part, mask=(slot < TILES)[:, None])

    @triton.jit
    def _branch_input_grad(acc, keep_ptr, gs_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w, H, W, SQ,
                          OFF: tl.constexpr, Q: tl.constexpr, SLOT: tl.constexpr, J: tl.constexpr,
                          HALF: tl.constexpr, JB: tl.constexpr, CO: tl.constexpr, UPCAST: tl.constexpr,
                          IEEE: tl.constexpr):
        # adds one branch's share: input pixel p reaches, through tap (dy, dx), output pixel p - (dy, dx)
        m = tl.arange(0, 2 * JB)  # column: filter m % JB of the branch under the pair's tap m // JB
        f = SLOT * JB + m % JB
        c = tl.arange(0, CO)
        gs = tl.load(gs_ptr + ng * J + f)  # (2 JB,) float32: the pooled gradient over the pixel count
        for q in range(0, Q):
            tap = 2 * q + m // JB
            dy = tl.load(taps_ptr + 2 * tap)
            dx = tl.load(taps_ptr + 2 * tap + 1)
            hh = h[:, None] - dy[None, :]
            ww = w[:, None] - dx[None, :]
            ok = inside[:, None] & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            keep = tl.load(keep_ptr + (ng * J + f[None, :]) * (H * W) + hh * W + ww, mask=ok, other=0)
            d = keep.to(tl.float32) * gs[None, :]  # (BM, 2 JB)
            wt = tl.load(w_ptr + ((g * SQ + OFF + q) * (2 * HALF) + (m // JB)[:, None] * HALF + c[None, :]) * JB
                         + (m % JB)[:, None], mask=(c < HALF)[None, :], other=0.0)  # (2 JB, CO)
            if UPCAST:
                wt = wt.to(tl.float32)
            else:
                d = d.to(wt.dtype)
            if IEEE:
                acc += tl.dot(d, wt, input_precision="ieee")
            else:
                acc += tl.dot(d, wt)
        return acc


@functools.cache
def _kernels():
    triton, tl = _triton()
    configs = [triton.Config({"BM": 64}, num_warps=4), triton.Config({"BM": 128}, num_warps=4),
               triton.Config({"BM": 128}, num_warps=8), triton.Config({"BM": 256}, num_warps=8)]
    # the input gradient's tiles of 128 pixels with 4 warps took all 255 registers compiled for sm_90
    input_configs = [triton.Config({"BM": 64}, num_warps=4), triton.Config({"BM": 128}, num_warps=8)]
    grad_configs = [triton.Config({"BM": 64}, num_warps=4), triton.Config({"BM": 128}, num_warps=4),
                    triton.Config({"BM": 128}, num_warps=8)]

    @_tuned(triton, configs, ["G", "H", "W", "C", "JB", "NB", "Q0", "Q1", "Q2", "Q3"])
    @triton.jit
    def forward_kernel(
        x_ptr, w_ptr, b_ptr, taps_ptr, sums_ptr, keep_ptr, G, H, W, TILES, SQ,
        C: tl.constexpr, HALF: tl.constexpr, JB: tl.constexpr, NB: tl.constexpr,
        Q0: tl.constexpr, Q1: tl.constexpr, Q2: tl.constexpr, Q3: tl.constexpr,
        S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
        BM: tl.constexpr, UPCAST: tl.constexpr, IEEE: tl.constexpr,
    ):
        # one program: frame n and group g (axis 0: n * G + g), tile `tile` of BM pixels (axis 1). The
        # branches come sorted by kernel (Q0 <= Q1 <= ... pairs; S_i: branch i's place among the
        # filters).
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        tile = tl.program_id(1)
        hw = H * W
        J: tl.constexpr = NB * JB
        p = tile * BM + tl.arange(0, BM)  # (BM,) pixels, row-major
        inside = p < hw
        h, w = p // W, p % W
        acc0 = tl.zeros((BM, JB), dtype=tl.float32)
        acc1 = tl.zeros((BM, JB), dtype=tl.float32)
        acc2 = tl.zeros((BM, JB), dtype=tl.float32)
        acc3 = tl.zeros((BM, JB), dtype=tl.float32)
        # pairs below Q0 feed every branch, from Q0 to Q1 all but the first, and so on
        acc0, acc1, acc2, acc3 = _segment(acc0, acc1, acc2, acc3, x_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w,
                                          H, W, SQ, 0, 0, Q0, C, HALF, JB, NB, Q0, Q1, Q2, UPCAST, IEEE)
        if NB > 1:
            acc0, acc1, acc2, acc3 = _segment(acc0, acc1, acc2, acc3, x_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w,
                                              H, W, SQ, 1, Q0, Q1, C, HALF, JB, NB, Q0, Q1, Q2, UPCAST, IEEE)
        if NB > 2:
            acc0, acc1, acc2, acc3 = _segment(acc0, acc1, acc2, acc3, x_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w,
                                              H, W, SQ, 2, Q1, Q2, C, HALF, JB, NB, Q0, Q1, Q2, UPCAST, IEEE)
        if NB > 3:
            acc0, acc1, acc2, acc3 = _segment(acc0, acc1, acc2, acc3, x_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w,
                                              H, W, SQ, 3, Q2, Q3, C, HALF, JB, NB, Q0, Q1, Q2, UPCAST, IEEE)
        _finish(acc0, b_ptr, sums_ptr, keep_ptr, ng, g, tile, p, inside, hw, TILES, S0, J, JB, BM)
        if NB > 1:
            _finish(acc1, b_ptr, sums_ptr, keep_ptr, ng, g, tile, p, inside, hw, TILES, S1, J, JB, BM)
        if NB > 2:
            _finish(acc2, b_ptr, sums_ptr, keep_ptr, ng, g, tile, p, inside, hw, TILES, S2, J, JB, BM)
        if NB > 3:
            _finish(acc3, b_ptr, sums_ptr, keep_ptr, ng, g, tile, p, inside, hw, TILES, S3, J, JB, BM)

    @_tuned(triton, input_configs, ["G", "H", "W", "C", "JB", "NB", "Q0", "Q1", "Q2", "Q3"])
    @triton.jit
    def input_grad_kernel(
        keep_ptr, gs_ptr, w_ptr, taps_ptr, dx_ptr, G, H, W, SQ,
        C: tl.constexpr, HALF: tl.constexpr, JB: tl.constexpr, NB: tl.constexpr,
        Q0: tl.constexpr, Q1: tl.constexpr, Q2: tl.constexpr, Q3: tl.constexpr,
        S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
        BM: tl.constexpr, UPCAST: tl.constexpr, IEEE: tl.constexpr,
    ):
        # one program: frame n and group g (axis 0), tile of BM input pixels (axis 1)
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        hw = H * W
        J: tl.constexpr = NB * JB
        CO: tl.constexpr = 16 if HALF < 16 else HALF  # the products' smallest width
        p = tl.program_id(1) * BM + tl.arange(0, BM)
        inside = p < hw
        h, w = p // W, p % W
        acc = tl.zeros((BM, CO), dtype=tl.float32)
        acc = _branch_input_grad(acc, keep_ptr, gs_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w, H, W, SQ,
                                0, Q0, S0, J, HALF, JB, CO, UPCAST, IEEE)
        if NB > 1:
            acc = _branch_input_grad(acc, keep_ptr, gs_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w, H, W, SQ,
                                    Q0, Q1, S1, J, HALF, JB, CO, UPCAST, IEEE)
        if NB > 2:
            acc = _branch_input_grad(acc, keep_ptr, gs_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w, H, W, SQ,
                                    Q0 + Q1, Q2, S2, J, HALF, JB, CO, UPCAST, IEEE)
        if NB > 3:
            acc = _branch_input_grad(acc, keep_ptr, gs_ptr, w_ptr, taps_ptr, ng, g, p, inside, h, w, H, W, SQ,
                                    Q0 + Q1 + Q2, Q3, S3, J, HALF, JB, CO, UPCAST, IEEE)
        c = tl.arange(0, CO)
        tl.store(dx_ptr + (ng * C + c[None, :]) * hw + p[:, None], acc.to(dx_ptr.dtype.element_ty),
                 mask=inside[:, None] & (c < C)[None, :])

    @_tuned(triton, grad_configs, ["G", "H", "W", "C", "JB", "NB", "Q0", "Q1", "Q2", "Q3", "N", "SPLITS"])
    @triton.jit
    def weight_grad_kernel(
        x_ptr, keep_ptr, gs_ptr, taps_ptr, dw_ptr, db_ptr, N, G, H, W, SPLITS, SQ,
        C: tl.constexpr, HALF: tl.constexpr, JB: tl.constexpr, NB: tl.constexpr,
        Q0: tl.constexpr, Q1: tl.constexpr, Q2: tl.constexpr, Q3: tl.constexpr,
        S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
        BM: tl.constexpr, UPCAST: tl.constexpr, IEEE: tl.constexpr,
    ):
        # one program: packed pair u (axis 0, fastest: a group's pairs run side by side; u is pair q of
        # sorted branch i), share `split` of the group's frames' tiles (axis 1), group g (axis 2);
        # writes dw[g, split, u] (2 HALF, JB) and, for each branch's first pair, db[g, split] of its filters
        u = tl.program_id(0)
        split = tl.program_id(1)
        g = tl.program_id(2).to(tl.int64)
        J: tl.constexpr = NB * JB
        i = (u >= Q0).to(tl.int32)
        if NB > 2:
            i += (u >= Q0 + Q1).to(tl.int32)
        if NB > 3:
            i += (u >= Q0 + Q1 + Q2).to(tl.int32)
        off = tl.where(i == 0, 0, tl.where(i == 1, Q0, tl.where(i == 2, Q0 + Q1, Q0 + Q1 + Q2)))
        slot = tl.where(i == 0, S0, tl.where(i == 1, S1, tl.where(i == 2, S2, S3)))
        q = u - off
        hw = H * W
        k = tl.arange(0, 2 * HALF)
        jb = tl.arange(0, JB)
        f = slot * JB + jb
        tiles = tl.cdiv(hw, BM)
        items = N * tiles
        per_split = tl.cdiv(items, SPLITS)
        acc = tl.zeros((2 * HALF, JB), dtype=tl.float32)
        bias = tl.zeros((JB,), dtype=tl.float32)
        for item in range(split * per_split, tl.minimum((split + 1) * per_split, items)):
            n = (item // tiles).to(tl.int64)
            ng = n * G + g
            p = (item % tiles) * BM + tl.arange(0, BM)
            inside = p < hw
            h, w = p // W, p % W
            keep = tl.load(keep_ptr + (ng * J + f[None, :]) * hw + p[:, None], mask=inside[:, None], other=0)
            d = keep.to(tl.float32) * tl.load(gs_ptr + ng * J + f)[None, :]  # (BM, JB)
            bias += tl.sum(d, axis=0)
            a = _shifted_pair(x_ptr, taps_ptr, q, ng, p, inside, h, w, H, W, C, HALF, UPCAST)
            if not UPCAST:
                d = d.to(a.dtype)
            if IEEE:
                acc += tl.dot(tl.trans(a), d, input_precision="ieee")
            else:
                acc += tl.dot(tl.trans(a), d)
        dest = (g * SPLITS + split) * SQ + u
        tl.store(dw_ptr + (dest * (2 * HALF) + k[:, None]) * JB + jb[None, :], acc)
        if q == 0:
            tl.store(db_ptr + (g * SPLITS + split) * J + f, bias)

    return triton, forward_kernel, input_grad_kernel, weight_grad_kernel


def chosen_configs() -> dict[str, str]:
    """The configuration Triton's autotuning chose for each kernel, for the last shapes it tuned."""
    from .fused_conv import _chosen

    _, forward_kernel, input_grad_kernel, weight_grad_kernel = _kernels()
    return _chosen({"forward": forward_kernel, "input grad": input_grad_kernel, "weight grad": weight_grad_kernel})


def _layout(branches) -> tuple[list[int], list[int], int]:
    """The branches' order by kernel (the kernels' accumulators), each one's pairs of taps in that
    order, and the channel slots per tap of a pair; refuses in words what the kernels do not take."""
    sizes = [b.kernel_size for b in branches]
    filters = {b.out_channels for b in branches}
    channels = {b.in_channels for b in branches}
    if not 1 <= len(branches) <= MAX_BRANCHES or any(k % 2 == 0 for k in sizes):
        raise ValueError(f"the fused inception takes 1 to {MAX_BRANCHES} branches of odd kernels; got kernels {sizes}")
    if len(filters) != 1 or len(channels) != 1:
        raise ValueError("the fused inception needs the same filters and input channels in every branch; got "
                         f"{sorted(filters)} filters and {sorted(channels)} channels")
    jb = filters.pop()
    if jb & (jb - 1) or jb < 16:
        raise ValueError(f"the fused inception needs a power-of-two number of filters per branch, 16 or more; got {jb}")
    order = sorted(range(len(branches)), key=lambda i: sizes[i])
    return order, [pairs_within(sizes[i] // 2) for i in order], max(8, _pow2(channels.pop()))


def packed_weight(branches) -> tuple[torch.Tensor, torch.Tensor]:
    """The inception branches (`MieRegionConv2d`s) as the kernels' weight: per group, the branches in
    order of kernel size, each one's pairs of taps in ring order (`ring_taps`), each pair the (channels
    under the first tap, padded to the slots, then under the second) x filters matrix: (G, pairs of all
    branches, 2 x slots, filters of a branch); and the bias (G, every branch's filters in the branches'
    order). Differentiable, so the branches' own weights get their gradients."""
    order, _, half = _layout(branches)
    return _packed(branches, order, half)


def _packed(branches, order: list[int], half: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`packed_weight` for the branches' `_layout` (order of kernel size, channel slots per tap)."""
    packed = []
    for i in order:
        weight = branches[i].weight  # (G, J, C, k, k)
        g, j, c, k, _ = weight.shape
        taps = _pair_order(k, str(weight.device))
        flat = F.pad(weight.flatten(3), (0, 1, 0, half - c))  # (G, J, slots, k * k + 1): the last tap zero
        pairs = flat.index_select(3, taps).view(g, j, half, -1, 2)  # (G, J, slots, pairs, 2)
        packed.append(pairs.permute(0, 3, 4, 2, 1).reshape(g, -1, 2 * half, j))
    return torch.cat(packed, dim=1), torch.cat([b.bias for b in branches], dim=1)


def _tiles(hw: int, meta) -> int:
    return -(-hw // meta["BM"])


def _constants(channels: int, weight: torch.Tensor, pairs: list[int], order: list[int]) -> dict:
    nb = len(pairs)
    fill = MAX_BRANCHES - nb
    return {"C": channels, "HALF": weight.shape[2] // 2, "JB": weight.shape[3], "NB": nb,
            **{f"Q{i}": q for i, q in enumerate(pairs + [0] * fill)},
            **{f"S{i}": s for i, s in enumerate(order + [0] * fill)}}


def _arithmetic(x: torch.Tensor) -> dict:
    """UPCAST: float32 products under Triton's interpreter (it multiplies bf16 as integers); IEEE:
    float32 input (`--precision fp32` on CUDA) multiplied in float32, not in TF32, as PyTorch's
    convolutions are there."""
    upcast = _interpreting()
    return {"UPCAST": upcast, "IEEE": x.dtype == torch.float32 and not upcast}


@torch.library.custom_op("mie::inception_pool", mutates_args=())
def _inception_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, channels: int, pairs: list[int],
                    order: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, G * C, H, W); weight: (G, pairs, 2 x slots, JB) in x's dtype (`packed_weight`); bias:
    (G, J) float32; pairs: each branch's pairs of taps, by kernel size; order: their places among the
    branches -> (N, G * J) float32 means of the ReLU'd maps, and the int8 records (N, G * J, H, W)."""
    _, forward_kernel, _, _ = _kernels()
    n, _, h, w = x.shape
    g, sq, _, _ = weight.shape
    j = bias.shape[1]
    tiles = -(-(h * w) // 64)  # a sum per 64 pixels, whatever the tile (a multiple of 64)
    sums = torch.empty((n * g, tiles, j), device=x.device, dtype=torch.float32)
    keep = torch.empty((n, g * j, h, w), device=x.device, dtype=torch.int8)
    taps = _tap_table(_radius(max(pairs)), str(x.device))
    grid = lambda meta: (n * g, _tiles(h * w, meta))
    forward_kernel[grid](x, weight, bias, taps, sums, keep, g, h, w, tiles, sq,
                         **_constants(channels, weight, pairs, order), **_arithmetic(x), **COMPILE_OPTIONS)
    return sums.sum(1).view(n, g * j).div_(h * w), keep


@_inception_pool.register_fake
def _(x, weight, bias, channels, pairs, order):
    n, _, h, w = x.shape
    g, j = bias.shape
    return x.new_empty((n, g * j), dtype=torch.float32), x.new_empty((n, g * j, h, w), dtype=torch.int8)


@torch.library.custom_op("mie::inception_pool_grad", mutates_args=())
def _inception_pool_grad(x: torch.Tensor, keep: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, channels: int,
                         pairs: list[int], order: list[int], input_grad: bool
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input gradient (N, G * C, H, W) in x's dtype, or empty where not asked for; packed weight
    gradient (G, pairs, 2 x slots, JB) and bias gradient (G, J) in float32)."""
    _, _, input_grad_kernel, weight_grad_kernel = _kernels()
    n, _, h, w = x.shape
    g, sq, slots, jb = weight.shape
    j = jb * len(pairs)
    constants = _constants(channels, weight, pairs, order)
    taps = _tap_table(_radius(max(pairs)), str(x.device))
    gs = (grad.float() / (h * w)).contiguous()  # (N, G * J): each output pixel's gradient where the ReLU passed
    dx = x.new_empty((0,))
    if input_grad:
        dx = torch.empty_like(x)
        grid = lambda meta: (n * g, _tiles(h * w, meta))
        input_grad_kernel[grid](keep, gs, weight, taps, dx, g, h, w, sq, **constants, **_arithmetic(x),
                                **COMPILE_OPTIONS)
    splits = _splits(g * sq, n)
    dw = torch.empty((g, splits, sq, slots, jb), device=x.device, dtype=torch.float32)
    db = torch.empty((g, splits, j), device=x.device, dtype=torch.float32)
    weight_grad_kernel[(sq, splits, g)](x, keep, gs, taps, dw, db, n, g, h, w, splits, sq, **constants,
                                        **_arithmetic(x), **COMPILE_OPTIONS)
    return dx, dw.sum(1), db.sum(1)


@_inception_pool_grad.register_fake
def _(x, keep, grad, weight, channels, pairs, order, input_grad):
    g, sq, slots, jb = weight.shape
    dx = torch.empty_like(x) if input_grad else x.new_empty((0,))
    return (dx, x.new_empty((g, sq, slots, jb), dtype=torch.float32),
            x.new_empty((g, jb * len(pairs)), dtype=torch.float32))


def _setup(ctx, inputs, output):
    x, weight, _, channels, pairs, order = inputs
    ctx.save_for_backward(x, output[1], weight)
    ctx.channels, ctx.pairs, ctx.order = channels, pairs, order


def _backward(ctx, grad, _keep_grad):
    x, keep, weight = ctx.saved_tensors
    dx, dw, db = _inception_pool_grad(x, keep, grad.contiguous(), weight, ctx.channels, ctx.pairs, ctx.order,
                                      ctx.needs_input_grad[0])
    return (dx if ctx.needs_input_grad[0] else None), dw.to(weight.dtype), db, None, None, None


_inception_pool.register_autograd(_backward, setup_context=_setup)


def inception_pool(hidden: torch.Tensor, branches) -> torch.Tensor:
    """`cat([relu(branch(hidden)).mean((2, 3)) for branch in branches], per region)` in fused kernels:
    hidden (N, G * C, H, W) (conv2's pooled map), branches the `MieRegionConv2d`s of the inception
    block -> (N, G * J) float32, per group the branches' filters in order. Reads `hidden` in
    autocast's dtype (bf16 under autocast), products accumulated in float32."""
    g, c = branches[0].num_regions, branches[0].in_channels
    if hidden.dim() != 4 or hidden.shape[1] != g * c:
        raise ValueError(f"the fused inception takes (N, {g} groups x {c} channels, H, W) input; got {tuple(hidden.shape)}")
    order, pairs, half = _layout(branches)
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    weight, bias = _packed(branches, order, half)
    with torch.autocast(device, enabled=False):
        pooled, _ = _inception_pool(hidden.to(dtype).contiguous(), weight.to(dtype).contiguous(),
                                    bias.float().contiguous(), c, pairs, order)
    return pooled


def compile_report(capability: int = 90, channels: int = 8, filters: int = 16, kernel_sizes=(1, 3, 5, 7),
                   dtype: str = "bf16") -> list[dict]:
    """Every kernel and autotuning configuration compiled for a CUDA GPU of compute `capability` with
    Triton's compiler, no GPU needed (as `fused_conv.compile_report`), for input in `dtype` ("bf16",
    autocast's; "fp32": `--precision fp32`, float32 products) and the inception block of
    `kernel_sizes` with `filters` each."""
    from .fused_conv import _ptxas_report

    _, forward_kernel, input_grad_kernel, weight_grad_kernel = _kernels()
    order = sorted(range(len(kernel_sizes)), key=lambda i: kernel_sizes[i])
    pairs = [pairs_within(kernel_sizes[i] // 2) for i in order]
    half = max(8, _pow2(channels))
    weight = torch.empty((1, sum(pairs), 2 * half, filters), device="meta")
    constants = {**_constants(channels, weight, pairs, order), "UPCAST": False, "IEEE": dtype == "fp32"}
    scalars = {"G": "i32", "H": "i32", "W": "i32"}
    kernels = [
        ("forward", forward_kernel, {"x_ptr": f"*{dtype}", "w_ptr": f"*{dtype}", "b_ptr": "*fp32", "taps_ptr": "*i32",
                                     "sums_ptr": "*fp32", "keep_ptr": "*i8", **scalars, "TILES": "i32", "SQ": "i32"}),
        ("input grad", input_grad_kernel, {"keep_ptr": "*i8", "gs_ptr": "*fp32", "w_ptr": f"*{dtype}", "taps_ptr": "*i32",
                                           "dx_ptr": f"*{dtype}", **scalars, "SQ": "i32"}),
        ("weight grad", weight_grad_kernel, {"x_ptr": f"*{dtype}", "keep_ptr": "*i8", "gs_ptr": "*fp32", "taps_ptr": "*i32",
                                             "dw_ptr": "*fp32", "db_ptr": "*fp32", "N": "i32", **scalars,
                                             "SPLITS": "i32", "SQ": "i32"}),
    ]
    return [{"layer": "inception" if dtype == "bf16" else f"inception {dtype}", **row} for name, tuner, signature in kernels
            for row in _ptxas_report(name, tuner, signature, constants, capability)]
