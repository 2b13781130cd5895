"""Speed of the batched region CNN against six plain modules and the machine's matmul rate.

Measures, in one run, at the paper preset's crop size (80 x 160, grey):
- frames per second (all six regions) of the plain per-region reference (six ordinary modules
  in a Python loop, default memory format: `modeling_mie.reference`),
- the same for the layouts of the batched encoder that were considered (grouped convolutions
  in default and channels-last layout, inception branches separate or fused), the first of
  which is what `MieRegionCNN` runs,
- the fp32 matrix-multiply rate of this machine (square 2048 matmul, all threads),
and checks that every variant gives the reference's outputs to 1e-5.

Last line: `speedup_vs_reference=<x> fraction_of_matmul_peak=<y> frames_per_s=<z>`, where the
fraction is the encoder's useful convolution + dense FLOP rate over the matmul rate.

Usage: python bench/region_cnn.py [--batch 64] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from modeling_mie import MieConfig, MieForVideoClassification
from modeling_mie.reference import MieRegionCNNReference


def cnn_flops_per_frame(config: MieConfig) -> float:
    """Multiply-adds x 2 of the region CNNs (all regions) for one frame, at the padded crop size."""
    h, w = config.crop_size
    c = config.num_channels
    f1, f2, fi = config.conv1_filters, config.conv2_filters, config.inception_filters
    conv1 = h * w * f1 * c * config.conv1_kernel_size**2
    conv2 = (h // 2) * (w // 2) * f2 * f1 * config.conv2_kernel_size**2
    inception = (h // 4) * (w // 4) * fi * f2 * sum(k * k for k in config.inception_kernel_sizes)
    dense = (
        config.cnn_channels * config.cnn_hidden_size
        + config.cnn_hidden_size * config.region_feature_size
        + config.region_feature_size * config.num_region_classes
    )
    return 2.0 * config.num_regions * (conv1 + conv2 + inception + dense)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = _median_time(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def _median_time(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fused_inception(cnn) -> torch.nn.Module:
    """The four inception branches as ONE grouped conv with zero-padded kernels (a layout tried)."""
    kmax = max(b.kernel_size for b in cnn.inception)
    regions = cnn.num_regions
    weights, biases = [], []
    for branch in cnn.inception:
        pad = (kmax - branch.kernel_size) // 2
        weights.append(F.pad(branch.weight, (pad, pad, pad, pad)))  # (R, out, in, kmax, kmax)
        biases.append(branch.bias)
    weight = torch.cat(weights, dim=1).flatten(0, 1)  # (R * 4 * out, in, kmax, kmax), region-major
    bias = torch.cat(biases, dim=1).flatten()
    conv = torch.nn.Conv2d(weight.shape[1] * regions, weight.shape[0], kmax, padding=kmax // 2, groups=regions)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def make_variants(cnn):
    """name -> function(pixel_values (N, R, C, H, W)) -> (features, logits)."""
    fused = fused_inception(cnn).to(memory_format=torch.channels_last)

    def batched(memory_format):
        def run(x):
            n, r, c, h, w = x.shape
            hidden = x.reshape(n, r * c, h, w).contiguous(memory_format=memory_format)
            hidden = F.relu(F.max_pool2d(cnn.conv1(hidden), 2))
            hidden = F.relu(F.max_pool2d(cnn.conv2(hidden), 2))
            maps = [F.relu(branch(hidden)) for branch in cnn.inception] + [hidden]
            return cnn.forward_head(cnn.pool_maps(maps))

        return run

    def batched_fused(x):
        n, r, c, h, w = x.shape
        hidden = x.reshape(n, r * c, h, w).contiguous(memory_format=torch.channels_last)
        hidden = F.relu(F.max_pool2d(cnn.conv1(hidden), 2))
        hidden = F.relu(F.max_pool2d(cnn.conv2(hidden), 2))
        branches = F.relu(fused(hidden)).mean(dim=(2, 3)).view(n, r, -1)  # (N, R, 4 * out)
        pooled = torch.cat([branches, hidden.mean(dim=(2, 3)).view(n, r, -1)], dim=2)
        return cnn.forward_head(pooled)

    return {
        "batched (MieRegionCNN: grouped, channels-last)": cnn,
        "batched grouped, default layout": batched(torch.contiguous_format),
        "batched grouped, channels-last, fused 7x7 inception": batched_fused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="frames per call (the paper's stage-1 batch is 64)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = MieConfig.from_preset("paper")
    torch.manual_seed(0)
    cnn = MieForVideoClassification(config).region_cnn.eval()
    reference = MieRegionCNNReference(config).load_from_batched(cnn).eval()
    x = torch.rand(args.batch, config.num_regions, config.num_channels, *config.crop_size)
    flops = cnn_flops_per_frame(config)
    print(f"paper preset, crops {config.crop_size[0]}x{config.crop_size[1]}, batch {args.batch} frames, "
          f"{torch.get_num_threads()} threads, {flops / 1e6:.1f} MFLOP per frame (6 regions)")

    with torch.inference_mode():
        peak = matmul_gflops()
        print(f"{'fp32 matmul 2048^3':58s} {peak:7.1f} GFLOP/s")
        ref_features, ref_logits = reference(x)
        ref_time = _median_time(lambda: reference(x), args.repeats)
        ref_fps = args.batch / ref_time
        print(f"{'reference: six modules, default layout':58s} {flops * ref_fps / 1e9:7.1f} GFLOP/s "
              f"{ref_fps:8.1f} frames/s")
        results = {}
        for name, fn in make_variants(cnn).items():
            features, logits = fn(x)
            err = max((features - ref_features).abs().max().item(), (logits - ref_logits).abs().max().item())
            if err > 1e-5:
                raise SystemExit(f"{name} differs from the reference by {err:.2e} (> 1e-5)")
            fps = args.batch / _median_time(lambda: fn(x), args.repeats)
            results[name] = fps
            print(f"{name:58s} {flops * fps / 1e9:7.1f} GFLOP/s {fps:8.1f} frames/s "
                  f"x{fps / ref_fps:4.2f}  max|diff| {err:.1e}")
        # the matmul rate again, in case the machine's load changed during the run
        peak = max(peak, matmul_gflops())

    fps = results["batched (MieRegionCNN: grouped, channels-last)"]
    print(f"speedup_vs_reference={fps / ref_fps:.2f} fraction_of_matmul_peak={flops * fps / 1e9 / peak:.3f} "
          f"frames_per_s={fps:.1f}")


if __name__ == "__main__":
    main()
