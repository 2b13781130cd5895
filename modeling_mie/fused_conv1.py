"""The region CNN's first layer, conv1 -> 2 x 2 max-pooling -> ReLU, as one Triton kernel for training on CUDA.

Why: with many folds stacked (`modeling_mie.stacked`), cuDNN's grouped convolution of one input
channel per group ran conv1 at 1.9 TFLOP/s on an H100 (68 folds: 72 ms forward and backward of a
202 ms step, `bench/stacked_step.py --forms`, docs/training.md), and the full-resolution map it
writes (4 filters x 80 x 160 per region and frame, 2.7 GB in bf16 for 68 folds' batch) is then read
and written again by the pooling, its int64 indices, the ReLU and their backward passes. The layer
itself is memory-bound: 100 multiply-adds per input pixel, the input read once and a quarter-size
map written.

Here the whole layer is two kernels and the full-resolution map never reaches memory:

- forward, per (frame, group) and tile of pooled pixels: the 6 x 6 input pixels under each pooled
  pixel's four 5 x 5 windows are read once each (36 strided loads of a tile), the four phases of
  the 2 x 2 window are accumulated for every filter in float32 registers, the maximum plus the bias
  goes through the ReLU and is written in the input's dtype (bf16 under autocast), and one int8 per
  pooled value records which phase won, -1 where the ReLU cut it (what the backward needs);
- weight and bias gradients, per group, row of taps and share of its frames' tiles: the output
  gradient times the input pixels under the row's taps of the winning phase, summed elementwise
  over the share's tiles in float32 and reduced once into the program's own slots (added up
  afterwards: deterministic, no atomics); a group's rows run side by side, so they read its
  gradient from memory once and from L2 after. conv1's input is the frames, which need no gradient.

Ties in the 2 x 2 window go to the first phase in row-major order, as PyTorch's max-pooling does.
Only one input channel per region (grey input: the paper and fast presets; the flow preset's three
channels stay on cuDNN). Registered as `torch.library` custom operators, so `torch.compile` and CUDA
graphs treat them as opaque calls. Nothing here runs on the CPU except under Triton's interpreter
(`TRITON_INTERPRET=1`), which is how tests/test_fused_conv1.py checks it against `F.conv2d`,
`F.max_pool2d` and `F.relu`, forward and gradients. `devices.configure_region_cnn(...,
conv1_kernel="triton")` puts it in a region CNN (`MieRegionCNN.first_layer`).
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["available", "compile_report", "conv1_pool_relu"]


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


def _tiles(triton, pooled_h: int, pooled_w: int, meta) -> int:
    return triton.cdiv(pooled_h, meta["BH"]) * triton.cdiv(pooled_w, meta["BW"])


@functools.cache
def _kernels():
    triton, tl = _triton()

    configs = [
        triton.Config({"BH": 8, "BW": 16}, num_warps=4),
        triton.Config({"BH": 8, "BW": 32}, num_warps=4),
        triton.Config({"BH": 4, "BW": 32}, num_warps=2),
        triton.Config({"BH": 16, "BW": 16}, num_warps=8),
    ]
    if _interpreting():
        configs = configs[:1]

    @triton.autotune(configs=configs, key=["H", "W", "G", "O", "KS"])
    @triton.jit
    def forward_kernel(
        x_ptr, w_ptr, b_ptr, out_ptr, route_ptr, G, H, W, PH, PW,
        O: tl.constexpr, KS: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    ):
        # one program: frame n and group g (axis 0: n * G + g), one BH x BW tile of pooled pixels (axis 1)
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        tiles_w = tl.cdiv(PW, BW)
        th, tw = tl.program_id(1) // tiles_w, tl.program_id(1) % tiles_w
        rows = th * BH + tl.arange(0, BH)[:, None]  # (BH, 1) pooled rows
        cols = tw * BW + tl.arange(0, BW)[None, :]  # (1, BW) pooled columns
        pad: tl.constexpr = KS // 2
        taps: tl.constexpr = KS * KS
        o = tl.arange(0, O)
        x_base = x_ptr + ng * H * W
        w_base = w_ptr + (g * O + o) * taps  # (O,) each filter's first tap
        # one accumulator per phase (dy, dx) of the 2 x 2 window, every filter: (O, BH, BW)
        a00 = tl.zeros((O, BH, BW), dtype=tl.float32)
        a01 = tl.zeros((O, BH, BW), dtype=tl.float32)
        a10 = tl.zeros((O, BH, BW), dtype=tl.float32)
        a11 = tl.zeros((O, BH, BW), dtype=tl.float32)
        # input pixel (2r + iy - pad, 2c + ix - pad) meets phase (dy, dx) at tap (iy - dy, ix - dx)
        for iy in tl.static_range(KS + 1):
            for ix in tl.static_range(KS + 1):
                hh = rows * 2 + (iy - pad)
                ww = cols * 2 + (ix - pad)
                ok = (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                xv = tl.load(x_base + hh * W + ww, mask=ok, other=0.0).to(tl.float32)[None, :, :]
                if iy < KS:
                    if ix < KS:
                        a00 += tl.load(w_base + iy * KS + ix).to(tl.float32)[:, None, None] * xv
                    if ix >= 1:
                        a01 += tl.load(w_base + iy * KS + ix - 1).to(tl.float32)[:, None, None] * xv
                if iy >= 1:
                    if ix < KS:
                        a10 += tl.load(w_base + (iy - 1) * KS + ix).to(tl.float32)[:, None, None] * xv
                    if ix >= 1:
                        a11 += tl.load(w_base + (iy - 1) * KS + ix - 1).to(tl.float32)[:, None, None] * xv
        # the first maximum in row-major order wins, as in F.max_pool2d
        best = a00
        route = tl.zeros((O, BH, BW), dtype=tl.int32)
        route = tl.where(a01 > best, 1, route)
        best = tl.maximum(best, a01)
        route = tl.where(a10 > best, 2, route)
        best = tl.maximum(best, a10)
        route = tl.where(a11 > best, 3, route)
        best = tl.maximum(best, a11)
        best += tl.load(b_ptr + g * O + o).to(tl.float32)[:, None, None]
        route = tl.where(best > 0, route, -1)  # the ReLU's zero gradient
        best = tl.maximum(best, 0.0)
        offset = (ng * O + o)[:, None, None] * (PH * PW) + rows[None, :, :] * PW + cols[None, :, :]
        ok = (rows < PH)[None, :, :] & (cols < PW)[None, :, :] & (o < O)[:, None, None]
        tl.store(out_ptr + offset, best.to(out_ptr.dtype.element_ty), mask=ok)
        tl.store(route_ptr + offset, route.to(tl.int8), mask=ok)

    grad_configs = [
        triton.Config({"BH": 4, "BW": 16}, num_warps=4),
        triton.Config({"BH": 8, "BW": 16}, num_warps=4),
        triton.Config({"BH": 8, "BW": 16}, num_warps=8),
        triton.Config({"BH": 4, "BW": 32}, num_warps=4),
    ]
    if _interpreting():
        grad_configs = grad_configs[:1]

    @triton.autotune(configs=grad_configs, key=["H", "W", "G", "O", "KS", "N", "SPLITS"])
    @triton.jit
    def grad_kernel(
        x_ptr, dy_ptr, route_ptr, dw_ptr, db_ptr, N, G, H, W, PH, PW, SPLITS,
        O: tl.constexpr, KS: tl.constexpr, KS_P: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    ):
        # one program: one row ty of the taps (axis 0, fastest, so that a group's rows run together and
        # share its gradient through L2), share `split` of the group's frames' tiles (axis 1), group g
        # (axis 2). The products for the row's KS taps are summed elementwise over the share's tiles
        # and reduced once at the end into the program's own slots dw[g, split, :, ty * KS + tx]
        # (and db[g, split] from row 0's programs).
        ty = tl.program_id(0)
        split = tl.program_id(1)
        g = tl.program_id(2).to(tl.int64)
        pad: tl.constexpr = KS // 2
        taps: tl.constexpr = KS * KS
        tiles_w = tl.cdiv(PW, BW)
        tiles = tl.cdiv(PH, BH) * tiles_w
        items = N * tiles
        per_split = tl.cdiv(items, SPLITS)
        o = tl.arange(0, O)
        tx = tl.arange(0, KS_P)[:, None, None, None]  # (KS_P, 1, 1, 1) the row's taps
        acc = tl.zeros((KS_P, O, BH, BW), dtype=tl.float32)
        bias = tl.zeros((O, BH, BW), dtype=tl.float32)
        for item in range(split * per_split, tl.minimum((split + 1) * per_split, items)):
            n = (item // tiles).to(tl.int64)
            t = item % tiles
            rows = (t // tiles_w) * BH + tl.arange(0, BH)[:, None]
            cols = (t % tiles_w) * BW + tl.arange(0, BW)[None, :]
            ng = n * G + g
            offset = (ng * O + o)[:, None, None] * (PH * PW) + rows[None, :, :] * PW + cols[None, :, :]
            ok = (rows < PH)[None, :, :] & (cols < PW)[None, :, :] & (o < O)[:, None, None]
            dy = tl.load(dy_ptr + offset, mask=ok, other=0.0).to(tl.float32)
            route = tl.load(route_ptr + offset, mask=ok, other=-1).to(tl.int32)
            bias += tl.where(route >= 0, dy, 0.0)
            # the input pixels under the row's taps of the winning phase (dy, dx) = (route // 2, route % 2)
            hh = rows[None, :, :] * 2 + (route // 2) + (ty - pad)  # (O, BH, BW)
            ww = (cols[None, :, :] * 2 + (route % 2) - pad)[None, :, :, :] + tx  # (KS_P, O, BH, BW)
            inside = ((route >= 0) & (hh >= 0) & (hh < H))[None, :, :, :] & (tx < KS) & (ww >= 0) & (ww < W)
            xv = tl.load(x_ptr + ng * H * W + hh[None, :, :, :] * W + ww, mask=inside, other=0.0).to(tl.float32)
            acc += dy[None, :, :, :] * xv
        slot = g * SPLITS + split
        row = tl.sum(tl.sum(acc, axis=3), axis=2)  # (KS_P, O)
        txs = tl.arange(0, KS_P)[:, None]
        tl.store(dw_ptr + (slot * O + o[None, :]) * taps + ty * KS + txs, row, mask=(txs < KS) & (o[None, :] < O))
        tl.store(db_ptr + slot * O + o, tl.sum(tl.sum(bias, axis=2), axis=1), mask=(o < O) & (ty == 0))

    return triton, forward_kernel, grad_kernel


def compile_report(capability: int = 90, filters: int = 4, kernel_size: int = 5, first_only: bool = False) -> list[dict]:
    """Compile both kernels, every autotuning configuration, for a CUDA GPU of compute `capability`
    (90: H100) with Triton's compiler and its bundled ptxas, no GPU needed, for bf16 input: a dict per
    configuration (kernel, config, registers, spilled bytes). Fails where the kernels do not compile.
    Not under the interpreter (`TRITON_INTERPRET=1`), which has no compiler."""
    import re
    import subprocess
    import tempfile
    from pathlib import Path

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    triton, forward_kernel, grad_kernel = _kernels()
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    scalars = {"G": "i32", "H": "i32", "W": "i32", "PH": "i32", "PW": "i32"}
    kernels = [
        ("forward", forward_kernel, {"x_ptr": "*bf16", "w_ptr": "*fp32", "b_ptr": "*fp32", "out_ptr": "*bf16",
                                     "route_ptr": "*i8", **scalars}, {}),
        ("grad", grad_kernel, {"x_ptr": "*bf16", "dy_ptr": "*bf16", "route_ptr": "*i8", "dw_ptr": "*fp32",
                               "db_ptr": "*fp32", "N": "i32", **scalars, "SPLITS": "i32"},
         {"KS_P": 1 << (kernel_size - 1).bit_length()}),
    ]
    report = []
    for name, tuner, signature, extra in kernels:
        for config in tuner.configs[:1] if first_only else tuner.configs:
            constants = {"O": filters, "KS": kernel_size, **extra, **config.kwargs}
            source = ASTSource(fn=tuner.fn, signature={**signature, **dict.fromkeys(constants, "constexpr")},
                               constexprs=constants)
            compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32),
                                      options={"num_warps": config.num_warps})
            with tempfile.TemporaryDirectory() as folder:
                ptx = Path(folder) / "kernel.ptx"
                ptx.write_text(compiled.asm["ptx"])
                done = subprocess.run([str(ptxas), "-v", f"--gpu-name=sm_{capability}a", str(ptx), "-o", str(ptx) + ".o"],
                                      capture_output=True, text=True, check=True)
            registers = re.search(r"Used (\d+) registers", done.stderr)
            spilled = re.search(r"(\d+) bytes spill stores", done.stderr)
            report.append({"kernel": name, "config": {**config.kwargs, "num_warps": config.num_warps},
                           "registers": int(registers.group(1)), "spilled": int(spilled.group(1))})
    return report


def _check_filters(filters: int) -> None:
    if filters & (filters - 1):
        raise ValueError(f"the fused conv1 kernel needs a power-of-two number of filters per region; got {filters}")


@torch.library.custom_op("mie::conv1_pool_relu", mutates_args=())
def _conv1_pool_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, G, H, W) contiguous; weight: (G, O, k * k) float32; bias: (G, O) float32 ->
    (N, G * O, H // 2, W // 2) in x's dtype, and the int8 route of each pooled value."""
    triton, forward_kernel, _ = _kernels()
    n, g, h, w = x.shape
    o, ks = weight.shape[1], round(weight.shape[2] ** 0.5)
    _check_filters(o)
    ph, pw = h // 2, w // 2
    out = torch.empty((n, g * o, ph, pw), device=x.device, dtype=x.dtype)
    route = torch.empty((n, g * o, ph, pw), device=x.device, dtype=torch.int8)
    grid = lambda meta: (n * g, _tiles(triton, ph, pw, meta))
    forward_kernel[grid](x, weight, bias, out, route, g, h, w, ph, pw, O=o, KS=ks)
    return out, route


@_conv1_pool_relu.register_fake
def _(x, weight, bias):
    n, g, h, w = x.shape
    shape = (n, g * weight.shape[1], h // 2, w // 2)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int8)


def _splits(programs: int, items: int) -> int:
    # shares of the items per (group, tap): enough programs to fill a GPU (a few thousand), none without work
    return max(1, min(items, -(-4096 // max(1, programs))))


@torch.library.custom_op("mie::conv1_pool_relu_grad", mutates_args=())
def _conv1_pool_relu_grad(
    x: torch.Tensor, grad: torch.Tensor, route: torch.Tensor, kernel_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (G, O, k * k) and bias (G, O) gradients in float32."""
    _, _, grad_kernel = _kernels()
    n, g, h, w = x.shape
    o = grad.shape[1] // g
    ph, pw = grad.shape[2], grad.shape[3]
    taps = kernel_size * kernel_size
    splits = _splits(g * kernel_size, n * -(-ph // 8) * -(-pw // 16))
    dw = torch.empty((g, splits, o, taps), device=x.device, dtype=torch.float32)
    db = torch.empty((g, splits, o), device=x.device, dtype=torch.float32)
    ks_p = 1 << (kernel_size - 1).bit_length()
    grad_kernel[(kernel_size, splits, g)](x, grad, route, dw, db, n, g, h, w, ph, pw, splits,
                                          O=o, KS=kernel_size, KS_P=ks_p)
    return dw.sum(1), db.sum(1)


@_conv1_pool_relu_grad.register_fake
def _(x, grad, route, kernel_size):
    g = x.shape[1]
    o = grad.shape[1] // g
    return (x.new_empty((g, o, kernel_size * kernel_size), dtype=torch.float32),
            x.new_empty((g, o), dtype=torch.float32))


def _setup(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, output[1])
    ctx.kernel_size = round(weight.shape[2] ** 0.5)


def _backward(ctx, grad, _route_grad):
    x, route = ctx.saved_tensors
    if ctx.needs_input_grad[0]:
        raise RuntimeError("the fused conv1 kernel computes no gradient for its input (the frames); "
                           "use cuDNN's convolution where the input needs one")
    dw, db = _conv1_pool_relu_grad(x, grad.contiguous(), route, ctx.kernel_size)
    return None, dw, db


_conv1_pool_relu.register_autograd(_backward, setup_context=_setup)


def conv1_pool_relu(pixel_values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`relu(max_pool2d(conv1(x), 2))` of the region CNN in one kernel: pixel_values (N, G, H, W)
    with one channel per group (region), weight (G, O, 1, k, k) and bias (G, O) float32 ->
    (N, G * O, H // 2, W // 2), "same" padding, an odd last row or column dropped as
    `F.max_pool2d` does. Computes in float32 from the input read in autocast's dtype (bf16 under
    autocast, as cuDNN's kernel reads it); the output is in that dtype."""
    g, o, c, k, k2 = weight.shape
    if c != 1 or k != k2 or k % 2 == 0 or pixel_values.dim() != 4 or pixel_values.shape[1] != g:
        raise ValueError(f"the fused conv1 kernel takes (N, {g}, H, W) frames, one channel per group, and an "
                         f"odd square kernel; got frames {tuple(pixel_values.shape)}, weight {tuple(weight.shape)}")
    device = pixel_values.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else pixel_values.dtype
    with torch.autocast(device, enabled=False):
        x = pixel_values.to(dtype).contiguous()
        out, _ = _conv1_pool_relu(x, weight.float().reshape(g, o, k * k), bias.float())
    return out
