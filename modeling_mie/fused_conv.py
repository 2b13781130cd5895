"""The region CNN's two first layers, each a convolution -> 2 x 2 max-pooling -> ReLU, as Triton kernels for training on CUDA.

Why: with many folds stacked (`modeling_mie.stacked`), cuDNN's grouped convolutions ran conv1 (one
input channel per group, 5 x 5) at 1.9 TFLOP/s and conv2 (4 -> 8, 3 x 3) at 8.1 TFLOP/s on an H100
(68 folds: 72 and 18 ms forward and backward of a 202 ms step, `bench/stacked_step.py --forms`,
docs/training.md), and the full-resolution maps they write (conv1's: 4 filters x 80 x 160 per
region and frame, 2.7 GB in bf16 for 68 folds' batch) are then read and written again by the
pooling, its int64 indices, the ReLU and their backward passes. Both layers are memory-bound: a few
hundred multiply-adds per input pixel, the input read once and a quarter-size map written.

Here each layer is a forward kernel and one or two backward kernels, and the full-resolution map
never reaches memory:

- forward, per (frame, group) and tile of pooled pixels: the input pixels under each pooled pixel's
  four windows are read once each per input channel ((k + 1)^2 strided loads of a tile), the four
  phases of the 2 x 2 window are accumulated for every filter in float32 registers, the maximum plus
  the bias goes through the ReLU and is written in the input's dtype (bf16 under autocast), and one
  int8 per pooled value records which phase won, -1 where the ReLU cut it (what the backward needs);
- weight and bias gradients, per group, input channel, row of taps and share of its frames' tiles:
  the output gradient times the input pixels under the row's taps of the winning phase, summed
  elementwise over the share's tiles in float32 and reduced once into the program's own slots
  (added up afterwards: deterministic, no atomics); a group's rows run side by side, so they read
  its gradient from memory once and from L2 after;
- input gradient (conv2; conv1's input is the frames, which need none), per (frame, group) and tile
  of input pixels: for every tap, the output gradient at the pooled pixel that tap reaches, kept
  where that pixel's winning phase is the one the tap lands on, times the tap's weights, summed
  over filters.

Ties in the 2 x 2 window go to the first phase in row-major order, as PyTorch's max-pooling does.
Registered as `torch.library` custom operators, so `torch.compile` and CUDA graphs treat them as
opaque calls. Nothing here runs on the CPU except under Triton's interpreter (`TRITON_INTERPRET=1`),
which is how tests/test_fused_conv.py checks them against `F.conv2d`, `F.max_pool2d` and `F.relu`,
forward and gradients; `compile_report` builds them for an H100 with Triton's compiler, no GPU
needed. `devices.configure_region_cnn(..., conv_kernel="triton")` puts them in a region CNN
(`MieRegionCNN.conv_pool_relu`).
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["LAYERS", "available", "chosen_configs", "compile_report", "conv_pool_relu"]


@functools.cache
def _triton():
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None
    return triton, tl


#: Compiler options of every launch: multiply-adds contracted to FMAs, as Triton has compiled these
#: kernels so far (3.9 warns that its default changes in 3.10; fixed here, so that the kernels the
#: tests compile are the ones that run).
COMPILE_OPTIONS = {"enable_fp_fusion": True}


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _tuned(triton, configs: list, key: list[str]):
    """`triton.autotune(configs, key)`; under Triton's interpreter, which cannot time them, the first
    configuration alone. The tuner keeps all of them in `every_config`, for tests to run each in turn."""

    def wrap(kernel):
        tuner = triton.autotune(configs=configs[:1] if _interpreting() else configs, key=key)(kernel)
        tuner.every_config = list(configs)
        return tuner

    return wrap


def available(device: torch.device | str | None = None) -> bool:
    """True where the kernels can run: Triton importable and `device` a CUDA device (or any device
    under Triton's interpreter, `TRITON_INTERPRET=1`, which is how they are tested on the CPU)."""
    if _triton() is None:
        return False
    if _interpreting():
        return True
    return device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()


def _tiles(triton, rows: int, cols: int, meta) -> int:
    return triton.cdiv(rows, meta["BH"]) * triton.cdiv(cols, meta["BW"])


@functools.cache
def _kernels():
    triton, tl = _triton()

    configs = [
        triton.Config({"BH": 8, "BW": 16}, num_warps=4),
        triton.Config({"BH": 8, "BW": 32}, num_warps=4),
        triton.Config({"BH": 16, "BW": 16}, num_warps=8),
    ]

    @_tuned(triton, configs, ["H", "W", "G", "C", "O", "KS"])
    @triton.jit
    def forward_kernel(
        x_ptr, w_ptr, b_ptr, out_ptr, route_ptr, G, H, W, PH, PW,
        C: tl.constexpr, O: tl.constexpr, KS: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
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
        # one accumulator per phase (dy, dx) of the 2 x 2 window, every filter: (O, BH, BW)
        a00 = tl.zeros((O, BH, BW), dtype=tl.float32)
        a01 = tl.zeros((O, BH, BW), dtype=tl.float32)
        a10 = tl.zeros((O, BH, BW), dtype=tl.float32)
        a11 = tl.zeros((O, BH, BW), dtype=tl.float32)
        for c in tl.static_range(C):
            x_base = x_ptr + (ng * C + c) * H * W
            w_base = w_ptr + ((g * O + o) * C + c) * taps  # (O,) each filter's first tap on channel c
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
        triton.Config({"BH": 8, "BW": 16}, num_warps=8),
        triton.Config({"BH": 4, "BW": 32}, num_warps=4),
    ]

    @_tuned(triton, grad_configs, ["H", "W", "G", "C", "O", "KS", "N", "SPLITS"])
    @triton.jit
    def grad_kernel(
        x_ptr, dy_ptr, route_ptr, dw_ptr, db_ptr, N, G, H, W, PH, PW, SPLITS,
        C: tl.constexpr, O: tl.constexpr, KS: tl.constexpr, KS_P: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    ):
        # one program: input channel c and row ty of the taps (axis 0: c * KS + ty, fastest, so that a
        # group's rows run together and share its gradient through L2), share `split` of the group's
        # frames' tiles (axis 1), group g (axis 2). The products for the row's KS taps are summed
        # elementwise over the share's tiles and reduced once at the end into the program's own slots
        # dw[g, split, :, c, ty * KS + tx] (and db[g, split] from channel 0, row 0's programs).
        c = tl.program_id(0) // KS
        ty = tl.program_id(0) % KS
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
            xv = tl.load(x_ptr + (ng * C + c) * H * W + hh[None, :, :, :] * W + ww, mask=inside, other=0.0).to(tl.float32)
            acc += dy[None, :, :, :] * xv
        slot = g * SPLITS + split
        row = tl.sum(tl.sum(acc, axis=3), axis=2)  # (KS_P, O)
        txs = tl.arange(0, KS_P)[:, None]
        tl.store(dw_ptr + ((slot * O + o[None, :]) * C + c) * taps + ty * KS + txs, row,
                 mask=(txs < KS) & (o[None, :] < O))
        if (ty == 0) & (c == 0):  # the bias gradient once per (group, share)
            tl.store(db_ptr + slot * O + o, tl.sum(tl.sum(bias, axis=2), axis=1))

    input_configs = [  # (filters, channels, tile) products per thread: larger tiles spilled for conv2 at sm_90
        triton.Config({"BH": 8, "BW": 16}, num_warps=8),
        triton.Config({"BH": 4, "BW": 16}, num_warps=4),
        triton.Config({"BH": 8, "BW": 16}, num_warps=4),
    ]

    @_tuned(triton, input_configs, ["H", "W", "G", "C", "O", "KS"])
    @triton.jit
    def input_grad_kernel(
        dy_ptr, route_ptr, w_ptr, dx_ptr, G, H, W, PH, PW,
        C: tl.constexpr, C_P: tl.constexpr, O: tl.constexpr, KS: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    ):
        # one program: frame n and group g (axis 0: n * G + g), one BH x BW tile of input pixels (axis 1).
        # Input pixel (y, x) reaches, through tap (ty, tx), conv output (y + pad - ty, x + pad - tx):
        # pooled pixel (that // 2), phase (that % 2); its gradient counts where that phase won.
        ng = tl.program_id(0).to(tl.int64)
        g = ng % G
        tiles_w = tl.cdiv(W, BW)
        th, tw = tl.program_id(1) // tiles_w, tl.program_id(1) % tiles_w
        rows = th * BH + tl.arange(0, BH)[:, None]  # (BH, 1) input rows
        cols = tw * BW + tl.arange(0, BW)[None, :]  # (1, BW) input columns
        pad: tl.constexpr = KS // 2
        taps: tl.constexpr = KS * KS
        o = tl.arange(0, O)
        c = tl.arange(0, C_P)
        acc = tl.zeros((C_P, BH, BW), dtype=tl.float32)
        for ty in tl.static_range(KS):
            for tx in tl.static_range(KS):
                p = rows + (pad - ty)  # (BH, 1) conv-output rows
                q = cols + (pad - tx)  # (1, BW)
                reach = (p >= 0) & (p < 2 * PH) & (q >= 0) & (q < 2 * PW)  # (BH, BW)
                pooled = (p // 2) * PW + q // 2
                phase = (p % 2) * 2 + q % 2
                offset = (ng * O + o)[:, None, None] * (PH * PW) + pooled[None, :, :]
                ok = reach[None, :, :] & (o < O)[:, None, None]
                d = tl.load(dy_ptr + offset, mask=ok, other=0.0).to(tl.float32)
                won = tl.load(route_ptr + offset, mask=ok, other=-1).to(tl.int32) == phase[None, :, :]
                d = tl.where(won, d, 0.0)  # (O, BH, BW)
                wt = tl.load(w_ptr + ((g * O + o[:, None]) * C + c[None, :]) * taps + ty * KS + tx,
                             mask=(c < C)[None, :] & (o < O)[:, None], other=0.0).to(tl.float32)  # (O, C_P)
                acc += tl.sum(d[:, None, :, :] * wt[:, :, None, None], axis=0)
        offset = (ng * C + c)[:, None, None] * (H * W) + rows[None, :, :] * W + cols[None, :, :]
        ok = (c < C)[:, None, None] & (rows < H)[None, :, :] & (cols < W)[None, :, :]
        tl.store(dx_ptr + offset, acc.to(dx_ptr.dtype.element_ty), mask=ok)

    return triton, forward_kernel, grad_kernel, input_grad_kernel


#: The region CNN's layers these kernels run (paper and fast presets): (input channels, filters,
#: kernel size) of conv1 and conv2; what `compile_report` builds.
LAYERS = {"conv1": (1, 4, 5), "conv2": (4, 8, 3)}


def compile_report(capability: int = 90, layers: dict | None = None) -> list[dict]:
    """Compile every kernel, every autotuning configuration, for each of `layers` (default `LAYERS`)
    for a CUDA GPU of compute `capability` (90: H100) with Triton's compiler and the ptxas it uses,
    no GPU needed, for bf16 input: a dict per (layer, kernel, configuration) with registers and
    spilled bytes. Fails where a kernel does not compile. Not under the interpreter
    (`TRITON_INTERPRET=1`), which has no compiler."""
    _, forward_kernel, grad_kernel, input_grad_kernel = _kernels()
    scalars = {"G": "i32", "H": "i32", "W": "i32", "PH": "i32", "PW": "i32"}
    report = []
    for layer, (c, o, ks) in (layers or LAYERS).items():
        kernels = [
            ("forward", forward_kernel, {"x_ptr": "*bf16", "w_ptr": "*fp32", "b_ptr": "*fp32", "out_ptr": "*bf16",
                                         "route_ptr": "*i8", **scalars}, {"C": c}),
            ("weight grad", grad_kernel, {"x_ptr": "*bf16", "dy_ptr": "*bf16", "route_ptr": "*i8", "dw_ptr": "*fp32",
                                          "db_ptr": "*fp32", "N": "i32", **scalars, "SPLITS": "i32"},
             {"C": c, "KS_P": _pow2(ks)}),
        ]
        if c > 1:  # conv1's input, the frames, needs no gradient
            kernels.append(("input grad", input_grad_kernel, {"dy_ptr": "*bf16", "route_ptr": "*i8", "w_ptr": "*fp32",
                                                              "dx_ptr": "*bf16", **scalars}, {"C": c, "C_P": _pow2(c)}))
        for name, tuner, signature, extra in kernels:
            report += [{"layer": layer, **row}
                       for row in _ptxas_report(name, tuner, signature, {**extra, "O": o, "KS": ks}, capability)]
    return report


def _ptxas_report(name: str, tuner, signature: dict, constants: dict, capability: int) -> list[dict]:
    """Each autotuning configuration of `tuner` (a Triton autotuned kernel) compiled for compute
    `capability` with `constants`: rows of (kernel, config, registers, spilled bytes), from ptxas."""
    import re
    import subprocess
    import tempfile
    from pathlib import Path

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    triton = _triton()[0]
    try:  # the ptxas Triton itself uses for this GPU (3.9 uses its CUDA 13 one from sm_90 on)
        from triton.backends.nvidia.compiler import get_ptxas

        ptxas = get_ptxas(capability).path
    except (ImportError, AttributeError, TypeError):
        ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    rows = []
    for config in tuner.configs:
        fixed = {**constants, **config.kwargs}
        source = ASTSource(fn=tuner.fn, signature={**signature, **dict.fromkeys(fixed, "constexpr")}, constexprs=fixed)
        compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32),
                                  options={"num_warps": config.num_warps, **COMPILE_OPTIONS})
        with tempfile.TemporaryDirectory() as folder:
            ptx = Path(folder) / "kernel.ptx"
            ptx.write_text(compiled.asm["ptx"])
            done = subprocess.run([str(ptxas), "-v", f"--gpu-name=sm_{capability}a", str(ptx), "-o", str(ptx) + ".o"],
                                  capture_output=True, text=True, check=True)
        registers = re.search(r"Used (\d+) registers", done.stderr)
        spilled = re.search(r"(\d+) bytes spill stores", done.stderr)
        rows.append({"kernel": name, "config": {**config.kwargs, "num_warps": config.num_warps},
                     "registers": int(registers.group(1)), "spilled": int(spilled.group(1))})
    return rows


def chosen_configs() -> dict[str, str]:
    """The configuration Triton's autotuning chose for each kernel, for the last shapes it tuned
    (what a GPU run reports next to its timings); empty before any kernel ran."""
    _, forward_kernel, grad_kernel, input_grad_kernel = _kernels()
    return _chosen({"forward": forward_kernel, "weight grad": grad_kernel, "input grad": input_grad_kernel})


def _chosen(kernels: dict) -> dict[str, str]:
    return {name: " ".join(f"{key} {value}" for key, value in {**k.best_config.kwargs, "warps": k.best_config.num_warps}.items())
            for name, k in kernels.items() if getattr(k, "best_config", None) is not None}


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _splits(programs: int, items: int) -> int:
    # shares of the items per (group, channel, row of taps): enough programs to fill a GPU (a few
    # thousand), none without work
    return max(1, min(items, -(-4096 // max(1, programs))))


@torch.library.custom_op("mie::conv_pool_relu", mutates_args=())
def _conv_pool_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, G * C, H, W) contiguous; weight: (G, O, C, k, k) float32 contiguous; bias: (G, O)
    float32 -> (N, G * O, H // 2, W // 2) in x's dtype, and the int8 route of each pooled value."""
    triton, forward_kernel, _, _ = _kernels()
    n, _, h, w = x.shape
    g, o, c, ks, _ = weight.shape
    ph, pw = h // 2, w // 2
    out = torch.empty((n, g * o, ph, pw), device=x.device, dtype=x.dtype)
    route = torch.empty((n, g * o, ph, pw), device=x.device, dtype=torch.int8)
    grid = lambda meta: (n * g, _tiles(triton, ph, pw, meta))
    forward_kernel[grid](x, weight, bias, out, route, g, h, w, ph, pw, C=c, O=o, KS=ks, **COMPILE_OPTIONS)
    return out, route


@_conv_pool_relu.register_fake
def _(x, weight, bias):
    shape = (x.shape[0], weight.shape[0] * weight.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int8)


@torch.library.custom_op("mie::conv_pool_relu_weight_grad", mutates_args=())
def _weight_grad(x: torch.Tensor, grad: torch.Tensor, route: torch.Tensor, groups: int, kernel_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (G, O, C, k, k) and bias (G, O) gradients in float32."""
    _, _, grad_kernel, _ = _kernels()
    n, gc, h, w = x.shape
    g, c, o = groups, gc // groups, grad.shape[1] // groups
    ph, pw = grad.shape[2], grad.shape[3]
    splits = _splits(g * c * kernel_size, n * -(-ph // 8) * -(-pw // 16))
    dw = torch.empty((g, splits, o, c, kernel_size, kernel_size), device=x.device, dtype=torch.float32)
    db = torch.empty((g, splits, o), device=x.device, dtype=torch.float32)
    grad_kernel[(c * kernel_size, splits, g)](x, grad, route, dw, db, n, g, h, w, ph, pw, splits,
                                              C=c, O=o, KS=kernel_size, KS_P=_pow2(kernel_size), **COMPILE_OPTIONS)
    return dw.sum(1), db.sum(1)


@_weight_grad.register_fake
def _(x, grad, route, groups, kernel_size):
    c, o = x.shape[1] // groups, grad.shape[1] // groups
    return (x.new_empty((groups, o, c, kernel_size, kernel_size), dtype=torch.float32),
            x.new_empty((groups, o), dtype=torch.float32))


@torch.library.custom_op("mie::conv_pool_relu_input_grad", mutates_args=())
def _input_grad(grad: torch.Tensor, route: torch.Tensor, weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The input's gradient, (N, G * C, height, width) in the output gradient's dtype."""
    triton, _, _, input_grad_kernel = _kernels()
    n, _, ph, pw = grad.shape
    g, o, c, ks, _ = weight.shape
    dx = torch.empty((n, g * c, height, width), device=grad.device, dtype=grad.dtype)
    grid = lambda meta: (n * g, _tiles(triton, height, width, meta))
    input_grad_kernel[grid](grad, route, weight, dx, g, height, width, ph, pw, C=c, C_P=_pow2(c), O=o, KS=ks,
                            **COMPILE_OPTIONS)
    return dx


@_input_grad.register_fake
def _(grad, route, weight, height, width):
    return grad.new_empty((grad.shape[0], weight.shape[0] * weight.shape[2], height, width))


def _setup(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, output[1], weight)


def _backward(ctx, grad, _route_grad):
    x, route, weight = ctx.saved_tensors
    grad = grad.contiguous()
    dx = _input_grad(grad, route, weight, x.shape[2], x.shape[3]) if ctx.needs_input_grad[0] else None
    dw, db = _weight_grad(x, grad, route, weight.shape[0], weight.shape[3])
    return dx, dw, db


_conv_pool_relu.register_autograd(_backward, setup_context=_setup)


def conv_pool_relu(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`relu(max_pool2d(conv(x), 2))` of a region CNN layer in one kernel: hidden (N, G * C, H, W),
    weight (G, O, C, k, k) and bias (G, O) float32 (a `MieRegionConv2d`'s) -> (N, G * O, H // 2,
    W // 2), grouped by region, "same" padding, an odd last row or column dropped as `F.max_pool2d`
    does. Computes in float32 from the input read in autocast's dtype (bf16 under autocast, as
    cuDNN's kernels read it); the output is in that dtype.

    Raises:
        ValueError: shapes that do not fit (the message says which), or a filter count that is not
            a power of two (a Triton block dimension).
    """
    g, o, c, k, k2 = weight.shape
    if k != k2 or k % 2 == 0 or hidden.dim() != 4 or hidden.shape[1] != g * c:
        raise ValueError(f"the fused convolution takes (N, {g} groups x {c} channels, H, W) input and an odd "
                         f"square kernel; got input {tuple(hidden.shape)}, weight {tuple(weight.shape)}")
    if o & (o - 1):
        raise ValueError(f"the fused convolution needs a power-of-two number of filters per group; got {o}")
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    with torch.autocast(device, enabled=False):
        out, _ = _conv_pool_relu(hidden.to(dtype).contiguous(), weight.float().contiguous(), bias.float().contiguous())
    return out
