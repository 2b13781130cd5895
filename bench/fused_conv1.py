"""The region CNN's first layer on CUDA: cuDNN's conv1 + F.max_pool2d + F.relu against the fused Triton kernel.

For each K (folds stacked, K x 6 regions as groups; batch 64 per fold of the paper preset's 80 x 160
crops, or the fast preset's), first checks both against the three operations in float32: the
largest difference of the outputs and of the weight and bias gradients, relative to the largest
value, for the fused kernel (`modeling_mie.fused_conv1`) and for the three operations under the run's
autocast. (Under bf16, cuDNN rounds conv1's map before the pooling, so ties in the 2 x 2 window send
gradients to the first position; the fused kernel compares float32 sums.) Then it times both,
forward and backward (the frames need no gradient, as in training), and prints milliseconds, the
speed-up of the fused kernel over the three operations measured in the same run, the forward
passes alone (as inference runs them), and the effective memory traffic of the fused kernel (frames read twice, output and route written, output
gradient and route read: what it cannot avoid).

Needs a CUDA GPU and Triton (CUDA builds of PyTorch bring it); elsewhere it says so, times nothing
(the kernel's arithmetic is tested in Triton's interpreter: tests/test_fused_conv1.py) and, where
Triton is installed, prints what its compiler makes of the kernels for an H100: registers and
spilled bytes of every autotuning configuration.

Usage: python bench/fused_conv1.py [--folds 1 16 68] [--preset paper|fast] [--precision bf16|fp32]
       [--steps 20]

Last line: `fused_conv1_ms_K<k>=<ms> three_ops_ms_K<k>=<ms> speedup_K<k>=<x>` for each K.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_mie import MieConfig, fused_conv1
from modeling_mie.devices import autocast, float32_mode
from modeling_mie.modeling_mie import MieRegionConv2d
from modeling_mie.training import TRAINING_PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stacked_step import seconds_per_call


def three_ops(layer: MieRegionConv2d, x: torch.Tensor) -> torch.Tensor:
    return F.relu(F.max_pool2d(layer(x), 2))


def fused(layer: MieRegionConv2d, x: torch.Tensor) -> torch.Tensor:
    return fused_conv1.conv1_pool_relu(x, layer.weight, layer.bias)


def run(function, layer, x, precision: str, grad: torch.Tensor | None = None):
    """Forward and backward under the run's autocast; (output, weight gradient, bias gradient)."""
    layer.weight.grad = layer.bias.grad = None
    with autocast(x.device, precision):
        out = function(layer, x)
    out.backward(torch.ones_like(out) if grad is None else grad)
    return out.detach(), layer.weight.grad, layer.bias.grad


def run_forward(function, layer, x, precision: str) -> torch.Tensor:
    with autocast(x.device, precision):
        return function(layer, x)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 16, 68])
    parser.add_argument("--preset", default="paper", choices=sorted(TRAINING_PRESETS))
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device("cuda")
    if not (torch.cuda.is_available() and fused_conv1.available(device)):
        print("fused_conv1: needs a CUDA GPU and Triton; nothing timed here "
              "(the kernel's arithmetic is tested in Triton's interpreter: tests/test_fused_conv1.py)")
        if fused_conv1._triton() is not None:
            print("compiled for an H100 (sm_90) by Triton here, no GPU needed:")
            for row in fused_conv1.compile_report(capability=90):
                print(f"  {row['kernel']:8s} {row['config']}: {row['registers']} registers, {row['spilled']} bytes spilled")
        return
    config = MieConfig.from_preset(args.preset)
    batch = TRAINING_PRESETS[args.preset].stage1_batch_size
    (h, w), k = config.crop_size, config.conv1_kernel_size
    print(f"first layer (conv1 {k}x{k} -> 2x2 max-pool -> ReLU), {args.preset} preset, {h} x {w} crops, batch {batch} "
          f"per fold, {args.precision}, {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    print(f"{'K':>4s} {'groups':>6s} {'3 ops ms':>9s} {'fused ms':>9s} {'speed-up':>8s} {'fused GB/s':>10s} "
          f"{'fwd only: 3 ops':>15s} {'fused':>7s}   difference from float32 (out, dW, db): fused; 3 ops")
    line = []
    with float32_mode(device, args.precision):
        for folds in args.folds:
            groups = folds * config.num_regions
            torch.manual_seed(folds)
            layer = MieRegionConv2d(groups, 1, config.conv1_filters, k).to(device)
            x = torch.randint(-60, 60, (batch, groups, h, w), device=device).float()  # onset differences
            grad = torch.randn(batch, groups * config.conv1_filters, h // 2, w // 2, device=device)
            with float32_mode(device, "fp32"):  # no TF32 in the reference
                exact = run(three_ops, layer, x, "fp32", grad)
            diffs = [[relative(a, b) for a, b in zip(run(f, layer, x, args.precision, grad), exact)]
                     for f in (fused, three_ops)]
            slow = seconds_per_call(partial(run, three_ops, layer, x, args.precision), args.steps, device)
            fast = seconds_per_call(partial(run, fused, layer, x, args.precision), args.steps, device)
            with torch.no_grad():  # the forward passes alone (inference; the backward is the rest)
                slow_fwd = seconds_per_call(partial(run_forward, three_ops, layer, x, args.precision), args.steps, device)
                fast_fwd = seconds_per_call(partial(run_forward, fused, layer, x, args.precision), args.steps, device)
            size = 2 if args.precision == "bf16" else 4
            pixels = batch * groups * h * w
            traffic = 2 * pixels * size + 2 * (pixels // 4) * config.conv1_filters * (2 * size + 2)
            print(f"{folds:4d} {groups:6d} {slow * 1e3:9.3f} {fast * 1e3:9.3f} {slow / fast:7.2f}x "
                  f"{traffic / fast / 1e9:10.0f} {slow_fwd * 1e3:15.3f} {fast_fwd * 1e3:7.3f}   " + "; ".join(" ".join(f"{d:.1e}" for d in ds) for ds in diffs))
            line += [f"fused_conv1_ms_K{folds}={fast * 1e3:.3f}", f"three_ops_ms_K{folds}={slow * 1e3:.3f}",
                     f"speedup_K{folds}={slow / fast:.2f}"]
            del layer, x, grad, exact
            torch.cuda.empty_cache()
    print(" ".join(line))


if __name__ == "__main__":
    main()
