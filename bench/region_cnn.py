"""Speed of the batched region CNN against six plain modules and the machine's matmul rate.

Measures, in one run, at the paper preset's crop size (80 x 160, grey):
- frames per second (all six regions) of the plain per-region reference (six ordinary modules
  in a Python loop, default memory format: `modeling_mie.reference`),
- the same for `MieRegionCNN` (chunks of 8 frames at this size, grey conv1 as a depthwise convolution,
  2x2 max-pooling as strided maxima) and for the simpler layouts it was chosen over (grouped
  convolutions in channels-last or default layout, whole batch, `F.max_pool2d`),
- the fp32 matrix-multiply rate of this machine (square 2048 matmul, all threads),
and checks that every variant gives the reference's outputs to 1e-5. Timing runs in rounds over
all variants, so that a change in the machine's load hits every figure alike.

Last line: `speedup_vs_reference=<x> fraction_of_matmul_peak=<y> frames_per_s=<z>`, where the
fraction is the encoder's useful convolution + dense FLOP rate over the matmul rate.

Usage: python bench/region_cnn.py [--batch 64] [--repeats 15] [--threads N]
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


def make_variants(cnn):
    """name -> function(pixel_values (N, R, C, H, W)) -> (features, logits): the layouts tried."""
    from modeling_mie.modeling_mie import _max_pool2

    def layered(memory_format, chunk, depthwise, strided_pool):
        pool = _max_pool2 if strided_pool else (lambda x: F.max_pool2d(x, 2))

        def maps(x):
            n, r, c, h, w = x.shape
            if depthwise:
                hidden = cnn._first_conv(x)
            else:
                hidden = cnn.conv1(x.reshape(n, r * c, h, w).contiguous(memory_format=memory_format))
            hidden = F.relu(pool(hidden))
            hidden = F.relu(pool(cnn.conv2(hidden)))
            return [F.relu(branch(hidden)) for branch in cnn.inception] + [hidden]

        def run(x):
            return cnn.forward_head(torch.cat([cnn.pool_maps(maps(part)) for part in x.split(chunk)]))

        return run

    return {
        "MieRegionCNN: chunks, depthwise conv1, strided pool": cnn,
        "grouped, channels-last, chunks of 8, F.max_pool2d": layered(torch.channels_last, 8, False, False),
        "grouped, channels-last, whole batch, F.max_pool2d": layered(torch.channels_last, 1 << 30, False, False),
        "grouped, default layout, whole batch, F.max_pool2d": layered(torch.contiguous_format, 1 << 30, False, False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="frames per call (the paper's stage-1 batch is 64)")
    parser.add_argument("--repeats", type=int, default=15, help="timing rounds (median reported)")
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

    variants = {"reference: six modules, default layout": reference, **make_variants(cnn)}
    with torch.inference_mode():
        ref_features, ref_logits = reference(x)
        for name, fn in variants.items():
            features, logits = fn(x)
            err = max((features - ref_features).abs().max().item(), (logits - ref_logits).abs().max().item())
            if err > 1e-5:
                raise SystemExit(f"{name} differs from the reference by {err:.2e} (> 1e-5)")
        # Rounds over all variants (and the matmul), so that a change in the machine's load hits
        # every figure alike; the median round of each is reported.
        times = {name: [] for name in variants}
        peaks = []
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        for _ in range(args.repeats):
            start = time.perf_counter()
            a @ b
            peaks.append(2 * 2048**3 / (time.perf_counter() - start) / 1e9)
            for name, fn in variants.items():
                start = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - start)
    peak = statistics.median(peaks)
    print(f"{'fp32 matmul 2048^3':58s} {peak:7.1f} GFLOP/s")
    fps = {name: args.batch / statistics.median(t) for name, t in times.items()}
    ref_fps = fps.pop("reference: six modules, default layout")
    print(f"{'reference: six modules, default layout':58s} {flops * ref_fps / 1e9:7.1f} GFLOP/s {ref_fps:8.1f} frames/s")
    for name, value in fps.items():
        print(f"{name:58s} {flops * value / 1e9:7.1f} GFLOP/s {value:8.1f} frames/s x{value / ref_fps:4.2f}")

    # training (forward + backward, the stage-1 cost): MieRegionCNN vs the plain modules
    train_times = {"reference": [], "MieRegionCNN": []}
    for module in (reference, cnn):
        module.train()
    for _ in range(max(3, args.repeats // 3)):
        for name, module in (("reference", reference), ("MieRegionCNN", cnn)):
            start = time.perf_counter()
            _, logits = module(x)
            logits.sum().backward()
            train_times[name].append(time.perf_counter() - start)
    train_fps = {k: args.batch / statistics.median(v) for k, v in train_times.items()}
    print(f"{'training fwd+bwd: reference / MieRegionCNN':58s} {train_fps['reference']:7.1f} / "
          f"{train_fps['MieRegionCNN']:.1f} frames/s x{train_fps['MieRegionCNN'] / train_fps['reference']:4.2f}")

    best = fps["MieRegionCNN: chunks, depthwise conv1, strided pool"]
    print(f"speedup_vs_reference={best / ref_fps:.2f} fraction_of_matmul_peak={flops * best / 1e9 / peak:.3f} "
          f"frames_per_s={best:.1f}")


if __name__ == "__main__":
    main()
