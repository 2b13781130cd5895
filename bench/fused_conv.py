"""The region CNN's layers on CUDA as cuDNN and PyTorch run them against the fused Triton kernels.

For each layer (conv1: one channel per region, 4 filters 5 x 5 on the crops, then 2 x 2 max-pooling
and ReLU; conv2: 4 -> 8 channels, 3 x 3 on conv1's pooled map, pooling, ReLU; inception: the four
branches on conv2's pooled map, ReLU, global mean; `modeling_mie.fused_conv` and
`modeling_mie.fused_inception`) and each K (folds stacked, K x 6 regions as groups; batch 64 per fold
of the paper preset's 80 x 160 crops, or the fast preset's), first checks both ways against the
three operations in float32: the difference of the outputs and of the weight, bias (and, for
conv2, input) gradients, as a norm relative to the reference's norm, for the fused kernels
(`modeling_mie.fused_conv`) and for the three operations under the run's autocast. (Under bf16,
cuDNN rounds the convolution's map before the pooling, so ties in the 2 x 2 window send gradients to
the first position; the fused kernels compare float32 sums.) Then it times both, forward and
backward as training runs them (conv1's input, the frames, needs no gradient; conv2's does), and
prints milliseconds, the speed-up of the fused kernels over the three operations measured in the
same run, the forward passes alone (as inference runs them), and the effective memory traffic of
the fused kernels (what they cannot avoid: input read by each pass, pooled output and route
written and read, output gradient read, input gradient written; for the inception block its
ReLU records instead) and their useful TFLOP/s (the paper's multiply-adds, forward and backward).

Needs a CUDA GPU and Triton (CUDA builds of PyTorch bring it); elsewhere it says so, times nothing
(the kernels' arithmetic is tested in Triton's interpreter: tests/test_fused_conv.py) and, where
Triton is installed, prints what its compiler makes of the kernels for an H100: registers and
spilled bytes of every autotuning configuration.

Usage: python bench/fused_conv.py [--folds 1 16 68] [--layers conv1 conv2 inception] [--preset paper|fast]
       [--precision bf16|fp32] [--steps 20]

Last line: `fused_ms_<layer>_K<k>=<ms> three_ops_ms_<layer>_K<k>=<ms> speedup_<layer>_K<k>=<x>` for each layer and K.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_mie import MieConfig, fused_conv, fused_inception
from modeling_mie.devices import autocast, float32_mode
from modeling_mie.modeling_mie import MieRegionConv2d
from modeling_mie.training import TRAINING_PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stacked_step import seconds_per_call


def three_ops(layer, x: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, torch.nn.ModuleList):  # the inception branches, ReLU, mean
        return torch.cat([F.relu(b(x)).mean(dim=(2, 3)).view(x.shape[0], b.num_regions, -1) for b in layer], 2).flatten(1)
    return F.relu(F.max_pool2d(layer(x), 2))


def fused(layer, x: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, torch.nn.ModuleList):
        return fused_inception.inception_pool(x, list(layer))
    return fused_conv.conv_pool_relu(x, layer.weight, layer.bias)


def run(function, layer, x, precision: str, grad: torch.Tensor | None = None):
    """Forward and backward under the run's autocast: (output, every parameter's gradient[, the input
    gradient where the input needs one])."""
    layer.zero_grad(set_to_none=True)
    x.grad = None
    with autocast(x.device, precision):
        out = function(layer, x)
    out.backward(torch.ones_like(out) if grad is None else grad)
    grads = tuple(p.grad for p in layer.parameters())
    return (out.detach(), *grads) + ((x.grad,) if x.requires_grad else ())


def run_forward(function, layer, x, precision: str) -> torch.Tensor:
    with autocast(x.device, precision):
        return function(layer, x)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    # norms, not the largest element: where rounding flips a window's maximum, one position's whole
    # gradient moves to its neighbour, which says nothing about the rest
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 16, 68])
    parser.add_argument("--layers", nargs="+", default=["conv1", "conv2", "inception"],
                        choices=["conv1", "conv2", "inception"])
    parser.add_argument("--preset", default="paper", choices=sorted(TRAINING_PRESETS))
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device("cuda")
    if not (torch.cuda.is_available() and fused_conv.available(device)):
        print("fused_conv: needs a CUDA GPU and Triton; nothing timed here "
              "(the kernels' arithmetic is tested in Triton's interpreter: tests/test_fused_conv.py)")
        if fused_conv._triton() is not None:
            print("compiled for an H100 (sm_90) by Triton here, no GPU needed:")
            for row in fused_conv.compile_report(capability=90) + fused_inception.compile_report(capability=90):
                print(f"  {row['layer']:9s} {row['kernel']:11s} {row['config']}: {row['registers']} registers, "
                      f"{row['spilled']} bytes spilled")
        return
    config = MieConfig.from_preset(args.preset)
    batch = TRAINING_PRESETS[args.preset].stage1_batch_size
    h, w = config.crop_size
    shapes = {  # layer: (input channels, filters, kernel, height, width, whether the input needs a gradient)
        "conv1": (config.num_channels, config.conv1_filters, config.conv1_kernel_size, h, w, False),
        "conv2": (config.conv1_filters, config.conv2_filters, config.conv2_kernel_size, h // 2, w // 2, True),
        "inception": (config.conv2_filters, config.inception_filters, None, h // 4, w // 4, True),
    }
    print(f"conv -> 2x2 max-pool -> ReLU, {args.preset} preset, {h} x {w} crops, batch {batch} per fold, "
          f"{args.precision}, {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    print(f"{'layer':>9s} {'K':>4s} {'groups':>6s} {'torch ms':>9s} {'fused ms':>9s} {'speed-up':>8s} "
          f"{'fused GB/s':>10s} {'TFLOP/s':>7s} {'fwd only: torch':>15s} {'fused':>7s}   "
          "difference from float32 (out, parameter gradients[, dx]): fused; torch")
    line = []
    size = 2 if args.precision == "bf16" else 4
    with float32_mode(device, args.precision):
        for name in args.layers:
            channels, filters, kernel, lh, lw, input_grad = shapes[name]
            for folds in args.folds:
                groups = folds * config.num_regions
                torch.manual_seed(folds)
                if name == "inception":
                    layer = torch.nn.ModuleList(MieRegionConv2d(groups, channels, filters, k)
                                                for k in config.inception_kernel_sizes).to(device)
                else:
                    layer = MieRegionConv2d(groups, channels, filters, kernel).to(device)
                if input_grad:  # conv1's pooled, ReLU'd map
                    x = torch.rand(batch, groups * channels, lh, lw, device=device) * 20
                else:  # onset differences
                    x = torch.randint(-60, 60, (batch, groups * channels, lh, lw), device=device).float()
                x.requires_grad_(input_grad)
                if name == "inception":
                    grad = torch.randn(batch, groups * filters * len(layer), device=device)
                else:
                    grad = torch.randn(batch, groups * filters, lh // 2, lw // 2, device=device)
                with float32_mode(device, "fp32"):  # no TF32 in the reference
                    exact = run(three_ops, layer, x, "fp32", grad)
                diffs = [[relative(a, b) for a, b in zip(run(f, layer, x, args.precision, grad), exact)]
                         for f in (fused, three_ops)]
                slow = seconds_per_call(partial(run, three_ops, layer, x, args.precision), args.steps, device)
                fast = seconds_per_call(partial(run, fused, layer, x, args.precision), args.steps, device)
                with torch.no_grad():  # the forward passes alone (inference; the backward is the rest)
                    slow_fwd = seconds_per_call(partial(run_forward, three_ops, layer, x, args.precision), args.steps, device)
                    fast_fwd = seconds_per_call(partial(run_forward, fused, layer, x, args.precision), args.steps, device)
                inputs = batch * groups * channels * lh * lw
                if name == "inception":  # x read by the forward and the weight gradient, dx written; records 1 + 2 reads
                    records = batch * groups * filters * len(layer) * lh * lw
                    traffic = 3 * inputs * size + 3 * records
                    taps = sum(k * k for k in config.inception_kernel_sizes)
                else:
                    pooled = batch * groups * filters * (lh // 2) * (lw // 2)
                    passes = 3 if input_grad else 2  # forward, weight gradient (, input gradient)
                    traffic = passes * inputs * size + pooled * (2 * size + 2) + (inputs * size if input_grad else 0)
                    taps = kernel * kernel
                flops = 2 * inputs * filters * taps * (3 if input_grad else 2)  # per multiply-add 2; forward + backward
                print(f"{name:>9s} {folds:4d} {groups:6d} {slow * 1e3:9.3f} {fast * 1e3:9.3f} {slow / fast:7.2f}x "
                      f"{traffic / fast / 1e9:10.0f} {flops / fast / 1e12:7.1f} {slow_fwd * 1e3:15.3f} {fast_fwd * 1e3:7.3f}   "
                      + "; ".join(" ".join(f"{d:.1e}" for d in ds) for ds in diffs))
                chosen = fused_inception.chosen_configs() if name == "inception" else fused_conv.chosen_configs()
                print(f"{'':>15s} autotuned: {chosen}")
                line += [f"fused_ms_{name}_K{folds}={fast * 1e3:.3f}", f"three_ops_ms_{name}_K{folds}={slow * 1e3:.3f}",
                         f"speedup_{name}_K{folds}={slow / fast:.2f}"]
                del layer, x, grad, exact
                torch.cuda.empty_cache()
    print(" ".join(line))


if __name__ == "__main__":
    main()
