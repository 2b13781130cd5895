"""Speed of the batched region CNN against six plain modules and the machine's matmul rate.

Measures, in one run, at the paper preset's crop size (80 x 160, grey):
- frames per second (all six regions) of the plain per-region reference (six ordinary modules
  in a Python loop, default memory format: `modeling_mie.reference`),
- the same for `MieRegionCNN` (chunks of 8 frames at this size, grey conv1 as a depthwise convolution,
  2x2 max-pooling as strided maxima) and for the simpler layouts it was chosen over (grouped
  convolutions in channels-last or default layout, whole batch, `F.max_pool2d`),
- the fp32 matrix-multiply rate of this machine (square 2048 matmul, all threads),
- what goes further than the eager layout: `torch.compile` of `MieRegionCNN` (inductor; its
  compile time is printed) and the region CNNs alone in ONNX Runtime (the exported model's
  graph, `modeling_mie.export`; when the `onnx` extra is installed),
- where the time of `MieRegionCNN` goes, layer by layer (one chunk of 8 frames, best round):
  time, FLOP rate and the bytes each layer reads and writes as a rate, next to this machine's copy
  bandwidth (a 64 MB tensor copy), to tell a layer bound by memory from one bound by its kernel,
and checks that every PyTorch variant gives the reference's outputs to 1e-5 (ONNX Runtime's
difference is printed). Timing runs in rounds over all variants, so that a change in the
machine's load hits every figure alike; the median round is reported, and the best round beside
it (on a machine shared with other work, the best round is what the code can do, the median
what it did).

Last line: `speedup_vs_reference=<x> fraction_of_matmul_peak=<y> frames_per_s=<z>
compiled_speedup=<x> compiled_fraction=<y> onnx_speedup=<x> onnx_fraction=<y>`, where the fraction is the encoder's useful
convolution + dense FLOP rate over the matmul rate (medians).

Usage: python bench/region_cnn.py [--batch 64] [--repeats 15] [--threads N] [--no-compile] [--no-onnx]
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

    variants = {
        "MieRegionCNN: chunks, depthwise conv1, strided pool": cnn,
        "grouped, channels-last, chunks of 8, F.max_pool2d": layered(torch.channels_last, 8, False, False),
        "grouped, channels-last, whole batch, F.max_pool2d": layered(torch.channels_last, 1 << 30, False, False),
        "grouped, default layout, whole batch, F.max_pool2d": layered(torch.contiguous_format, 1 << 30, False, False),
    }
    return variants


def compiled_variant(cnn, x):
    """torch.compile(MieRegionCNN) (inductor, default mode), compiled and warmed up on `x`."""
    start = time.perf_counter()
    compiled = torch.compile(cnn)
    compiled(x)
    return compiled, time.perf_counter() - start


def onnx_variant(cnn, x, threads: int):
    """The region CNNs alone as the exported model runs them (`MieOnnxClassifier.region_features`:
    grouped convolutions, MaxPool), in an ONNX Runtime session with `threads` threads."""
    import tempfile
    import warnings
    from pathlib import Path

    import onnxruntime as ort

    from modeling_mie.export import MieOnnxClassifier

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.exportable = MieOnnxClassifier(type("Holder", (), {"region_cnn": cnn})())

        def forward(self, frames):
            return self.exportable.region_features(frames)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "region_cnn.onnx"
        torch.onnx.export(Features().eval(), (x,), str(path), dynamo=True, input_names=["frames"], verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda frames: torch.from_numpy(session.run(None, {"frames": frames.numpy()})[0])


def layer_breakdown(cnn, config: MieConfig, repeats: int) -> list[tuple[str, float, float, float]]:
    """(layer, ms per frame, GFLOP/s, GB/s of the bytes it reads + writes) of `MieRegionCNN`'s
    inference path on one chunk of frames, each layer timed alone on its real input (best of
    `repeats` rounds: what the kernel can do, without the interference of other work)."""
    from modeling_mie.modeling_mie import _max_pool2

    h, w = config.crop_size
    n, r = cnn.frames_per_chunk(h, w), config.num_regions
    x = torch.rand(n, r, config.num_channels, h, w)
    c1 = cnn._first_conv(x)
    p1 = F.relu(_max_pool2(c1))
    c2 = cnn.conv2(p1)
    p2 = F.relu(_max_pool2(c2))
    maps = [F.relu(branch(p2)) for branch in cnn.inception] + [p2]
    pooled = cnn.pool_maps(maps)
    f1, f2, fi = config.conv1_filters, config.conv2_filters, config.inception_filters
    c = config.num_channels
    size = 4  # bytes per float32
    layers = [
        # name, function, FLOPs per frame, bytes read + written per frame
        ("conv1 (depthwise, incl. its input copy)", lambda: cnn._first_conv(x),
         2 * r * h * w * f1 * c * config.conv1_kernel_size**2, size * r * h * w * (c + f1 + f1)),
        ("max-pool 1 + ReLU", lambda: F.relu(_max_pool2(c1)), 0, size * r * h * w * f1 * 1.25),
        ("conv2 (grouped)", lambda: cnn.conv2(p1),
         2 * r * (h // 2) * (w // 2) * f2 * f1 * config.conv2_kernel_size**2, size * r * (h // 2) * (w // 2) * (f1 + f2)),
        ("max-pool 2 + ReLU", lambda: F.relu(_max_pool2(c2)), 0, size * r * (h // 2) * (w // 2) * f2 * 1.25),
        *[
            (f"inception {branch.kernel_size}x{branch.kernel_size}", (lambda b=branch: F.relu(b(p2))),
             2 * r * (h // 4) * (w // 4) * fi * f2 * branch.kernel_size**2, size * r * (h // 4) * (w // 4) * (f2 + fi))
            for branch in cnn.inception
        ],
        ("global average pooling", lambda: cnn.pool_maps(maps), 0, size * sum(m[0].numel() for m in maps)),
        ("dense head (fc1, fc2, stage-1 head)", lambda: cnn.forward_head(pooled), 2 * r * (
            config.cnn_channels * config.cnn_hidden_size + config.cnn_hidden_size * config.region_feature_size
            + config.region_feature_size * config.num_region_classes), 0),
    ]
    times = {name: [] for name, *_ in layers}
    for _ in range(repeats):
        for name, fn, _, _ in layers:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out = []
    for name, _, flops, nbytes in layers:
        t = min(times[name]) / n  # best round: other work on the machine only ever adds time
        out.append((name, t * 1e3, flops / t / 1e9, nbytes / t / 1e9))
    return out


def copy_bandwidth(repeats: int = 5) -> float:
    """GB/s of a 64 MB float32 tensor copy (read + write counted)."""
    src, dst = torch.rand(16 * 2**20), torch.empty(16 * 2**20)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(repeats))
    return 2 * src.numel() * 4 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="frames per call (the paper's stage-1 batch is 64)")
    parser.add_argument("--repeats", type=int, default=15, help="timing rounds (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (about a minute to compile here)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
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
    extra = {}  # name -> (function, tolerance): measured, not required to match to 1e-5
    notes = []
    if not args.no_compile:
        compiled, seconds = compiled_variant(cnn, x)
        variants["torch.compile(MieRegionCNN)"] = compiled
        notes.append(f"torch.compile: {seconds:.0f} s to compile and warm up (once per process and input shape)")
    if not args.no_onnx:
        try:
            extra["ONNX Runtime (the exported graph's CNNs)"] = (onnx_variant(cnn, x, torch.get_num_threads()), 1e-4)
        except ImportError as err:
            notes.append(f"ONNX Runtime skipped ({err}); pip install 'modeling_mie[onnx]'")
    with torch.inference_mode():
        ref_features, ref_logits = reference(x)
        for name, fn in variants.items():
            features, logits = fn(x)
            err = max((features - ref_features).abs().max().item(), (logits - ref_logits).abs().max().item())
            if err > 1e-5:
                raise SystemExit(f"{name} differs from the reference by {err:.2e} (> 1e-5)")
        for name, (fn, tolerance) in extra.items():
            err = (fn(x) - ref_features).abs().max().item()
            notes.append(f"{name}: features differ from the reference by {err:.1e} (relative "
                         f"{err / ref_features.abs().max().item():.1e})")
            if err > tolerance:
                raise SystemExit(f"{name} differs from the reference by {err:.2e} (> {tolerance:g})")
            variants[name] = fn
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
    print(f"{'fp32 matmul 2048^3':58s} {peak:7.1f} GFLOP/s (best round {max(peaks):.1f})")
    fps = {name: args.batch / statistics.median(t) for name, t in times.items()}
    best_fps = {name: args.batch / min(t) for name, t in times.items()}
    ref_name = "reference: six modules, default layout"
    ref_fps, ref_best = fps.pop(ref_name), best_fps.pop(ref_name)
    print(f"{'(median round; best round in brackets)':58s}")
    print(f"{ref_name:58s} {flops * ref_fps / 1e9:7.1f} GFLOP/s {ref_fps:8.1f} frames/s       "
          f"({ref_best:.1f} frames/s)")
    for name, value in fps.items():
        print(f"{name:58s} {flops * value / 1e9:7.1f} GFLOP/s {value:8.1f} frames/s x{value / ref_fps:4.2f} "
              f"({best_fps[name]:.1f} frames/s x{best_fps[name] / ref_best:4.2f})")
    for note in notes:
        print(f"  {note}")

    with torch.inference_mode():
        breakdown = layer_breakdown(cnn, config, max(5, args.repeats))
    bandwidth = copy_bandwidth()
    total = sum(ms for _, ms, _, _ in breakdown)
    print(f"where MieRegionCNN's time goes (chunks of {cnn.frames_per_chunk(*config.crop_size)} frames, best round "
          f"per layer; copy bandwidth {bandwidth:.1f} GB/s):")
    for name, ms, gflops, gbs in breakdown:
        rates = (f"{gflops:6.1f} GFLOP/s" if gflops else " " * 13) + (f" {gbs:5.1f} GB/s" if gbs else "")
        print(f"  {name:44s} {ms:6.3f} ms/frame {100 * ms / total:4.0f} % {rates}")

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
    line = (f"speedup_vs_reference={best / ref_fps:.2f} fraction_of_matmul_peak={flops * best / 1e9 / peak:.3f} "
            f"frames_per_s={best:.1f}")
    if "torch.compile(MieRegionCNN)" in fps:
        compiled = fps["torch.compile(MieRegionCNN)"]
        line += f" compiled_speedup={compiled / ref_fps:.2f} compiled_fraction={flops * compiled / 1e9 / peak:.3f}"
    onnx_name = "ONNX Runtime (the exported graph's CNNs)"
    if onnx_name in fps:
        line += f" onnx_speedup={fps[onnx_name] / ref_fps:.2f} onnx_fraction={flops * fps[onnx_name] / 1e9 / peak:.3f}"
    print(line)


if __name__ == "__main__":
    main()
