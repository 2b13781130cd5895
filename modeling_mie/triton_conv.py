"""The region CNN's grouped convolutions as Triton kernels, for training on CUDA.

cuDNN runs the region CNN's convolutions (1-8 input and 4-16 output channels per group, 1x1 to
7x7 kernels, one group per region and fold) far below what an H100 can do, and worse the more
groups there are: with 68 folds stacked (408 groups), the first convolution (one input channel,
5x5, 80 x 160) took 72 ms forward and backward in NCHW and 507 ms channels-last for a few GFLOP,
and the 7x7 inception branch ran at 22 TFLOP/s (`bench/stacked_step.py --forms`, docs/training.md).
Here each convolution is an implicit matrix product on the tensor cores:

- forward: per (sample, group) and tile of output pixels, `out[p, o] = sum_k x[p + off(k), c(k)]
  w[o, k]` over k = (input channel, tap), the shifted pixels gathered straight from NCHW memory;
- input gradient: the same kernel on the output gradient with each group's weights transposed
  and flipped ("same" padding, odd kernels);
- weight gradient: per group and block of (input channel, tap), `dw[o, k] = sum_p dy[p, o]
  x[p + off(k), c(k)]` over a share of the samples' pixels, partial sums added atomically in
  float32; the bias gradient comes with it.

Products are accumulated in float32 from the inputs' dtype (bfloat16 under autocast, as cuDNN's
kernels do). The kernels are registered as `torch.library` custom operators, so `torch.compile`
(and CUDA graphs) treat them as opaque calls. Nothing here is used on the CPU or without Triton:
`available(device)` says whether it can be, and `region_conv` is what `MieRegionConv2d` calls
instead of `F.conv2d` when its `kernel` is set (`devices.prepare_model(..., conv_kernel="triton")`).
Tested against `F.conv2d` in Triton's interpreter (`TRITON_INTERPRET=1`, tests/test_triton_conv.py).
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

__all__ = ["available", "region_conv"]


@functools.cache
def _triton():
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None
    return triton, tl


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def available(device: torch.device | str | None = None) -> bool:
    """True where the kernels can run: Triton importable and `device` a CUDA device (or any device
    under Triton's interpreter, `TRITON_INTERPRET=1`, which is how they are tested on the CPU)."""
    if _triton() is None:
        return False
    if _interpreting():
        return True
    return device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()


@functools.cache
def _kernels():
    triton, tl = _triton()

    configs = [
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 32}, num_warps=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_K": 32}, num_warps=4),
        triton.Config({"BLOCK_M": 128, "BLOCK_K": 64}, num_warps=8),
        triton.Config({"BLOCK_M": 256, "BLOCK_K": 32}, num_warps=8),
    ]
    if _interpreting():
        configs = configs[:1]

    @triton.autotune(configs=configs, key=["C", "O", "KS", "H", "W", "G"])
    @triton.jit
    def forward_kernel(
        x_ptr, w_ptr, b_ptr, out_ptr, G, H, W,
        C: tl.constexpr, O: tl.constexpr, KS: tl.constexpr, HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        # one program: sample n, group g (axis 0: n * G + g), BLOCK_M output pixels (axis 1)
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        hw = H * W
        pad: tl.constexpr = KS // 2
        taps: tl.constexpr = KS * KS
        ckk: tl.constexpr = C * taps
        pm = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        h, w = pm // W, pm % W
        m_ok = pm < hw
        on = tl.arange(0, BLOCK_N)
        x_base = x_ptr + ng * C * hw
        w_base = w_ptr + g * O * ckk
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, ckk, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            c, t = kk // taps, kk % taps
            hh = h[:, None] + (t // KS - pad)[None, :]
            ww = w[:, None] + (t % KS - pad)[None, :]
            ok = m_ok[:, None] & (kk < ckk)[None, :] & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            a = tl.load(x_base + c[None, :] * hw + hh * W + ww, mask=ok, other=0.0)
            b = tl.load(w_base + on[None, :] * ckk + kk[:, None], mask=(kk < ckk)[:, None] & (on < O)[None, :], other=0.0)
            if UPCAST:  # Triton's interpreter multiplies bfloat16 as integers: products in float32 there
                a, b = a.to(tl.float32), b.to(tl.float32)
            acc += tl.dot(a, b)
        if HAS_BIAS:
            acc += tl.load(b_ptr + g * O + on, mask=on < O, other=0.0).to(tl.float32)[None, :]
        out = out_ptr + (ng * O + on[None, :]) * hw + pm[:, None]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & (on < O)[None, :])

    wgrad_configs = [
        triton.Config({"BLOCK_R": 64, "BLOCK_K": 64}, num_warps=4),
        triton.Config({"BLOCK_R": 128, "BLOCK_K": 64}, num_warps=4),
        triton.Config({"BLOCK_R": 64, "BLOCK_K": 128}, num_warps=8),
        triton.Config({"BLOCK_R": 128, "BLOCK_K": 32}, num_warps=4),
    ]
    if _interpreting():
        wgrad_configs = wgrad_configs[:1]

    @triton.autotune(configs=wgrad_configs, key=["C", "O", "KS", "H", "W", "G", "N"], reset_to_zero=["dw_ptr", "db_ptr"])
    @triton.jit
    def wgrad_kernel(
        x_ptr, dy_ptr, dw_ptr, db_ptr, N, G, H, W, SPLITS,
        C: tl.constexpr, O: tl.constexpr, KS: tl.constexpr, UPCAST: tl.constexpr,
        BLOCK_O: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        # one program: group g and block of (input channel, tap) columns (axis 0), one of SPLITS
        # shares of the N * H * W pixels summed over (axis 1)
        pad: tl.constexpr = KS // 2
        taps: tl.constexpr = KS * KS
        ckk: tl.constexpr = C * taps
        k_blocks = tl.cdiv(ckk, BLOCK_K)
        g = (tl.program_id(0) // k_blocks).to(tl.int64)
        kb = tl.program_id(0) % k_blocks
        split = tl.program_id(1)
        hw = H * W
        total = N * hw
        per_split = tl.cdiv(tl.cdiv(total, SPLITS), BLOCK_R) * BLOCK_R
        kk = kb * BLOCK_K + tl.arange(0, BLOCK_K)
        c, t = kk // taps, kk % taps
        di, dj = t // KS - pad, t % KS - pad
        oo = tl.arange(0, BLOCK_O)
        acc = tl.zeros((BLOCK_O, BLOCK_K), dtype=tl.float32)
        bias = tl.zeros((BLOCK_O,), dtype=tl.float32)
        for r0 in range(split * per_split, tl.minimum((split + 1) * per_split, total), BLOCK_R):
            r = r0 + tl.arange(0, BLOCK_R)
            r_ok = r < total
            n = (r // hw).to(tl.int64)
            p = r % hw
            h, w = p // W, p % W
            dy = tl.load(dy_ptr + ((n * G + g) * O)[None, :] * hw + oo[:, None] * hw + p[None, :],
                         mask=(oo < O)[:, None] & r_ok[None, :], other=0.0)  # (BLOCK_O, BLOCK_R)
            hh = h[:, None] + di[None, :]
            ww = w[:, None] + dj[None, :]
            ok = r_ok[:, None] & (kk < ckk)[None, :] & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            x = tl.load(x_ptr + ((n * G + g) * C)[:, None] * hw + c[None, :] * hw + hh * W + ww, mask=ok, other=0.0)
            if UPCAST:
                dy, x = dy.to(tl.float32), x.to(tl.float32)
            acc += tl.dot(dy, x)
            if kb == 0:
                bias += tl.sum(dy.to(tl.float32), axis=1)
        tl.atomic_add(dw_ptr + (g * O + oo[:, None]) * ckk + kk[None, :], acc,
                      mask=(oo < O)[:, None] & (kk < ckk)[None, :])
        if kb == 0:
            tl.atomic_add(db_ptr + g * O + oo, bias, mask=oo < O)

    return triton, forward_kernel, wgrad_kernel


def _block(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())  # tensor-core products need 16 or more


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel_size: int) -> torch.Tensor:
    """x: (N, G*C, H, W) contiguous; weight: (G, O, C*k*k); bias: (G*O,) or None."""
    triton, forward_kernel, _ = _kernels()
    x, weight = x.contiguous(), weight.contiguous()
    n, _, h, w = x.shape
    g, o, ckk = weight.shape
    c = ckk // (kernel_size * kernel_size)
    out = torch.empty((n, g * o, h, w), device=x.device, dtype=x.dtype)
    grid = lambda meta: (n * g, triton.cdiv(h * w, meta["BLOCK_M"]))  # noqa: E731
    forward_kernel[grid](
        x, weight, bias if bias is not None else weight, out, g, h, w,
        C=c, O=o, KS=kernel_size, HAS_BIAS=bias is not None, UPCAST=_interpreting(), BLOCK_N=_block(o),
    )
    return out


def _wgrad(x: torch.Tensor, dy: torch.Tensor, groups: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (G, O, C*k*k) and bias (G*O,) gradients, float32."""
    triton, _, wgrad_kernel = _kernels()
    x, dy = x.contiguous(), dy.contiguous()
    n, gc, h, w = x.shape
    o = dy.shape[1] // groups
    c = gc // groups
    ckk = c * kernel_size * kernel_size
    dw = torch.zeros((groups, o, ckk), device=x.device, dtype=torch.float32)
    db = torch.zeros((groups * o,), device=x.device, dtype=torch.float32)
    # enough programs to fill the GPU (a few per multiprocessor), few enough that the atomic adds stay cheap
    splits = max(1, min(triton.cdiv(n * h * w, 1024), 4096 // max(1, groups)))
    grid = lambda meta: (groups * triton.cdiv(ckk, meta["BLOCK_K"]), splits)  # noqa: E731
    wgrad_kernel[grid](x, dy, dw, db, n, groups, h, w, splits, C=c, O=o, KS=kernel_size, UPCAST=_interpreting(), BLOCK_O=_block(o))
    return dw, db


@torch.library.custom_op("mie::region_conv", mutates_args=())
def _region_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, kernel_size: int) -> torch.Tensor:
    return _forward(x, weight, bias, kernel_size)


@_region_conv.register_fake
def _(x, weight, bias, kernel_size):
    n, _, h, w = x.shape
    return x.new_empty((n, weight.shape[0] * weight.shape[1], h, w))


@torch.library.custom_op("mie::region_conv_input_grad", mutates_args=())
def _input_grad(dy: torch.Tensor, flipped: torch.Tensor, kernel_size: int) -> torch.Tensor:
    return _forward(dy, flipped, None, kernel_size)


@_input_grad.register_fake
def _(dy, flipped, kernel_size):
    n, _, h, w = dy.shape
    return dy.new_empty((n, flipped.shape[0] * flipped.shape[1], h, w))


@torch.library.custom_op("mie::region_conv_weight_grad", mutates_args=())
def _weight_grad(x: torch.Tensor, dy: torch.Tensor, groups: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _wgrad(x, dy, groups, kernel_size)


@_weight_grad.register_fake
def _(x, dy, groups, kernel_size):
    o = dy.shape[1] // groups
    ckk = x.shape[1] // groups * kernel_size * kernel_size
    return x.new_empty((groups, o, ckk), dtype=torch.float32), x.new_empty((groups * o,), dtype=torch.float32)


def _setup(ctx, inputs, output):
    x, weight, _, kernel_size = inputs
    ctx.save_for_backward(x, weight)
    ctx.kernel_size = kernel_size


def _backward(ctx, dy):
    x, weight = ctx.saved_tensors
    k = ctx.kernel_size
    g, o, ckk = weight.shape
    c = ckk // (k * k)
    dy = dy.contiguous()
    dx = None
    if ctx.needs_input_grad[0]:
        # (G, O, C, k, k) -> (G, C, O, k, k) flipped in space: the input gradient is that convolution of dy
        flipped = weight.view(g, o, c, k, k).transpose(1, 2).flip(-1, -2).reshape(g, c, o * k * k).contiguous()
        dx = _input_grad(dy, flipped, k)
    dw, db = _weight_grad(x, dy, g, k)
    return dx, dw.to(weight.dtype), db.to(weight.dtype), None


_region_conv.register_autograd(_backward, setup_context=_setup)


def region_conv(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`MieRegionConv2d`'s convolution on the Triton kernels: hidden (N, G*C, H, W), weight (G, O, C,
    k, k), bias (G, O) -> (N, G*O, H, W), "same" padding, in autocast's dtype when autocast is on
    (float32 accumulation) and NCHW memory."""
    g, o, c, k, _ = weight.shape
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else hidden.dtype
    if hidden.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
    if dtype == torch.float32 and not _interpreting():  # the kernels' float32 products would be TF32: fp32 runs stay exact on cuDNN
        return F.conv2d(hidden, weight.flatten(0, 1), bias.flatten(), padding=k // 2, groups=g)
    with torch.autocast(hidden.device.type, enabled=False):
        x = hidden.to(dtype).contiguous()
        return _region_conv(x, weight.to(dtype).reshape(g, o, c * k * k), bias.to(dtype).reshape(g * o), k)
