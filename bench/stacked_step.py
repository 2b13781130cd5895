"""Stage 1's training step with K folds stacked in one model (`modeling_mie.stacked`), per fold.

One stacked step trains K folds on K batches (forward, backward, per-fold Adam). Where one fold's
step leaves the device idle (a GPU: thin convolutions, one launch after another), K folds should
cost much less than K steps; where arithmetic is the limit (this CPU), about K. Prints, for each
K, milliseconds per stacked step, per fold-step, the speed-up over the smallest K, and (paper preset)
what stage 1 of 68 folds would take (432 steps an epoch, 100 epochs, ceil(68 / K) groups).

The frames are random (the time does not depend on them) and already on the device, as
`train_stage1_stacked` stages them; dropout masks are drawn per fold as it draws them.

Usage: python bench/stacked_step.py [--device cuda] [--precision auto|fp32|bf16] [--preset paper|fast]
       [--folds 1 4 16 68] [--steps 10] [--compile off|default|reduce-overhead] [--threads N] [--layers] [--forms]
       [--variants cudnn fused merged fused+merged fused-all]

`--variants` times the step once per way of running the region CNN on CUDA (`VARIANTS`): "cudnn",
cuDNN's grouped convolutions with PyTorch's pooling and ReLU (the default); "fused", conv1 and conv2
with their pooling and ReLU as the Triton kernels of `modeling_mie.fused_conv`; "merged", the four
inception branches as one zero-padded 7x7 convolution (`MieRegionCNN.merged_inception`);
"fused+merged"; and "fused-all", the fused conv1 and conv2 and the inception block with its ReLU and
mean as the tensor-core kernels of `modeling_mie.fused_inception`. The first variant is the one the
speed-ups refer to.

`--layers` also times each convolution of the stacked CNN alone (forward and backward, at a
stacked step's shapes) for every K: milliseconds, per fold, useful TFLOP/s and its share, to show
which convolution takes the time and whether it scales with K (on an H100 the inception branches
hold 79 % of the arithmetic; docs/training.md).

`--forms` times each convolution written several ways at every K (cuDNN's grouped convolution
channels-last as the CPU runs it and NCHW as CUDA runs it, as unfold + batched matrix product over
the regions, and conv1 as a depthwise convolution of the image repeated per filter), inputs in the autocast dtype: whether another way beats the
grouped kernel once the groups are many. For conv1 and conv2 it also times the whole layer,
convolution, 2 x 2 max-pooling and ReLU, as training runs it with cuDNN ("NCHW+pool+relu") and as
the fused Triton kernels ("fused triton", CUDA only).

Last line: `stacked_step_ms_K<k>=<ms> ...` and `speedup_per_fold_K<k>=<x>` for each K.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_mie import MieConfig, MieForVideoClassification
from modeling_mie.devices import (
    autocast,
    configure_region_cnn,
    describe_device,
    float32_mode,
    prepare_model,
    resolve_device,
    resolve_precision,
)
from modeling_mie.errors import MieInputError
from modeling_mie.modeling_mie import MieRegionCNN
from modeling_mie.stacked import StackedAdam, stack_region_cnns, stacked_batch_loss
from modeling_mie.training import (
    COMPILE_MODES,
    TRAINING_PRESETS,
    _synchronize,
    compiled_step,
    reads_first_frames,
)

# --variants: (devices.configure_region_cnn's conv_kernel, merged_inception, inception_kernel)
VARIANTS = {"cudnn": ("cudnn", False, "cudnn"), "fused": ("triton", False, "cudnn"), "merged": ("cudnn", True, "cudnn"),
            "fused+merged": ("triton", True, "cudnn"), "fused-all": ("triton", False, "triton")}
PAPER_STEPS = 432 * 100  # stage-1 steps of one paper-preset fold (batch 64 over a composite fold's frames)


def time_steps(config: MieConfig, folds: int, batch: int, steps: int, device, precision: str, compile: str,
               variant: str = "cudnn") -> float:
    """Seconds per stacked step of `folds` folds (after 3 warm-up steps; compiled: after compiling),
    the region CNN run as `variant` (`VARIANTS`) on CUDA."""
    torch.manual_seed(folds)
    models = [prepare_model(MieForVideoClassification(config), device, *VARIANTS[variant]) for _ in range(folds)]
    cnn = stack_region_cnns([m.region_cnn for m in models], config).train()
    del models
    optimizer = StackedAdam(list(cnn.parameters()), folds, 1e-3)
    step = compiled_step(stacked_batch_loss, compile)
    r, c, (h, w) = config.num_regions, config.num_channels, config.crop_size
    frames = torch.randint(0, 256, (folds * batch, r, c, h, w), dtype=torch.uint8, device=device)
    firsts = torch.randint(0, 256, (folds * batch, r, c, h, w), dtype=torch.uint8, device=device)
    targets = torch.randint(0, config.num_region_classes, (folds * batch, r), device=device)
    weights = torch.full((folds, batch), 1.0 / (batch * r), device=device)
    alpha = torch.ones(folds, config.num_region_classes, device=device)
    p, hidden = float(config.cnn_dropout), config.cnn_hidden_size
    dropout = [torch.Generator(device).manual_seed(k) for k in range(folds)]
    active = torch.ones(folds, dtype=torch.bool, device=device)

    def one():
        keep = torch.zeros(folds, r, batch, hidden, device=device)
        for k in range(folds):  # as train_stage1_stacked draws a full batch's masks
            keep[k].bernoulli_(1 - p, generator=dropout[k])
        keep = keep.div_(1 - p).view(folds * r, batch, hidden).transpose(0, 1)
        if compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        losses = step(cnn, config, folds, frames, firsts if reads_first_frames(config) else None, targets, weights,
                      alpha, keep, precision)
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step(active, every=True)

    with float32_mode(device, precision):
        return seconds_per_call(one, steps, device)


def seconds_per_call(function, steps: int, device) -> float:
    """Seconds per call of `function()` over `steps` calls, after 3 warm-up calls, waiting for the
    device before and after."""
    for _ in range(3):
        function()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        function()
    _synchronize(device)
    return (time.perf_counter() - start) / steps


def _conv_layers(config: MieConfig, folds: int, batch: int, device) -> tuple[MieRegionCNN, list[tuple]]:
    """The stacked CNN's convolutions at a stacked step's shapes: the CNN, set as the model runs on
    `device` (`devices.configure_region_cnn`: channels-last or not), and rows of (name, layer, input
    channels per region, height, width, whether the input needs a gradient, useful FLOPs forward and
    backward: 2 per multiply-add, x3 with the backward, x2 for conv1, whose input needs no gradient)."""
    torch.manual_seed(0)
    cnn = MieRegionCNN(config, num_regions=folds * config.num_regions).to(device).train()
    configure_region_cnn(cnn, device)  # the layout the model runs in on `device`
    (h, w), c = config.crop_size, config.num_channels
    layers = [("conv1", cnn.conv1, c, h, w, False), ("conv2", cnn.conv2, config.conv1_filters, h // 2, w // 2, True)]
    layers += [
        (f"inception {k}x{k}", branch, config.conv2_filters, h // 4, w // 4, True)
        for k, branch in zip(config.inception_kernel_sizes, cnn.inception)
    ]
    rows = []
    for name, layer, channels, lh, lw, input_grad in layers:
        macs = batch * layer.num_regions * layer.out_channels * channels * layer.kernel_size**2 * lh * lw
        rows.append((name, layer, channels, lh, lw, input_grad, 2 * macs * (3 if input_grad else 2)))
    return cnn, rows


def _time_conv(layer, function, x: torch.Tensor, steps: int, device, precision: str) -> float:
    """Seconds per forward and backward of `function(layer, x)` under the run's autocast."""

    def one():
        with autocast(device, precision):
            out = function(layer, x)
        out.backward(torch.ones_like(out))
        layer.zero_grad(set_to_none=True)
        x.grad = None

    return seconds_per_call(one, steps, device)


def time_layers(config: MieConfig, folds: int, batch: int, steps: int, device, precision: str) -> list[tuple]:
    """Each convolution of the stacked CNN alone, forward and backward, at the shapes a stacked step
    gives it (batch `batch`, `folds` x R regions, in the memory layout the model uses on `device`:
    channels-last on the CPU, NCHW on CUDA): rows of (layer, ms, useful TFLOP/s, share of the
    convolutions' time)."""
    cnn, layers = _conv_layers(config, folds, batch, device)
    memory = torch.channels_last if cnn.channels_last else torch.contiguous_format
    rows = []
    with float32_mode(device, precision):
        for name, layer, channels, lh, lw, input_grad, flops in layers:
            x = torch.rand(batch, layer.num_regions * channels, lh, lw, device=device)
            x = x.contiguous(memory_format=memory).requires_grad_(input_grad)
            seconds = _time_conv(layer, lambda layer, x: layer(x), x, steps, device, precision)
            rows.append((name, seconds * 1e3, flops / seconds / 1e12))
    total = sum(r[1] for r in rows)
    return [(name, ms, tflops, ms / total) for name, ms, tflops in rows]


def _im2col_conv(layer, x: torch.Tensor) -> torch.Tensor:
    """`layer` (a MieRegionConv2d) as unfold + one batched matrix product over its regions."""
    n, _, h, w = x.shape
    g, o, c, k = layer.num_regions, layer.out_channels, layer.in_channels, layer.kernel_size
    cols = F.unfold(x, k, padding=k // 2).view(n, g, c * k * k, h * w)  # (N, G, C*k*k, H*W)
    weight, bias = layer.weight.view(g, o, c * k * k).to(x.dtype), layer.bias.view(1, g, o, 1).to(x.dtype)
    return (torch.matmul(weight, cols) + bias).view(n, g * o, h, w)


def _depthwise_conv(layer, x: torch.Tensor) -> torch.Tensor:
    """A one-input-channel `layer` (conv1) as a depthwise convolution: each region's image repeated
    once per filter (what the model does for inference on the CPU)."""
    o = layer.out_channels
    return F.conv2d(x.repeat_interleave(o, dim=1), layer.weight.flatten(0, 2).unsqueeze(1), layer.bias.flatten(),
                    padding=layer.kernel_size // 2, groups=layer.num_regions * o)


def _pooled_layer(layer, x: torch.Tensor) -> torch.Tensor:
    """conv1 or conv2, 2 x 2 max-pooling and ReLU as training runs them with cuDNN."""
    return F.relu(F.max_pool2d(layer(x), 2))


def _fused_pooled_layer(layer, x: torch.Tensor) -> torch.Tensor:
    """The same as Triton kernels (`modeling_mie.fused_conv`)."""
    from modeling_mie import fused_conv

    return fused_conv.conv_pool_relu(x, layer.weight, layer.bias)


def _pooled(layer) -> bool:
    return layer.kernel_size > 1 and layer.out_channels <= 8  # conv1 and conv2 (4 and 8 filters), not inception


def _fused_applies(layer) -> bool:
    from modeling_mie import fused_conv

    return _pooled(layer) and fused_conv.available(layer.weight.device)


def _block_applies(form: str):
    if form != "fused triton":
        return lambda cnn: True
    from modeling_mie import fused_inception

    return lambda cnn: fused_inception.available(cnn.conv1.weight.device)


FORMS = {
    # name: (memory format, function of (layer, x), whether it applies to the layer). cuDNN's
    # autotuning (cudnn.benchmark) was a fourth form until an H100 showed it changed nothing.
    "grouped CL": (torch.channels_last, lambda layer, x: layer(x), lambda layer: True),
    "grouped NCHW": (torch.contiguous_format, lambda layer, x: layer(x), lambda layer: True),
    "im2col bmm": (torch.contiguous_format, _im2col_conv, lambda layer: True),
    "depthwise NCHW": (torch.contiguous_format, _depthwise_conv, lambda layer: layer.in_channels == 1),
    "NCHW+pool+relu": (torch.contiguous_format, _pooled_layer, _pooled),
    "fused triton": (torch.contiguous_format, _fused_pooled_layer, _fused_applies),
}


# The inception block (four branches, ReLU, global average pooling, as the model runs them) two ways:
# as the paper's branches, and as one grouped convolution with the smaller kernels zero-padded to 7x7
# (`MieRegionCNN.merged_inception`).
def _fused_block(cnn, x: torch.Tensor) -> torch.Tensor:
    from modeling_mie import fused_inception

    return fused_inception.inception_pool(x, list(cnn.inception))


BLOCK_FORMS = {
    "4 branches": lambda cnn, x: torch.cat([F.relu(b(x)).mean(dim=(2, 3)) for b in cnn.inception], dim=1),
    "merged 7x7": lambda cnn, x: F.relu(cnn._merged_inception(x)).mean(dim=(2, 3)),
    "fused triton": _fused_block,  # CUDA only
}


def time_forms(config: MieConfig, folds: int, batch: int, steps: int, device, precision: str) -> list[tuple]:
    """Each convolution of the stacked CNN, forward and backward, written several ways (`FORMS`:
    the grouped convolution channels-last and NCHW, as unfold + batched matrix product, conv1 as a
    depthwise convolution, the first layer with cuDNN and fused), and the inception block as branches
    and merged (`BLOCK_FORMS`): rows of (layer, form, ms, useful TFLOP/s), ms None where the form ran
    out of memory. Inputs are in the autocast dtype, as the model's later layers get them."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    rows = []
    cnn, layers = _conv_layers(config, folds, batch, device)
    inception = [row for row in layers if row[0].startswith("inception")]
    block = ("inception block", cnn, inception[0][2], inception[0][3], inception[0][4], True, sum(r[-1] for r in inception))
    with float32_mode(device, precision):
        for name, layer, channels, lh, lw, input_grad, flops in [*layers, block]:
            forms = {f: (torch.contiguous_format, fn, _block_applies(f)) for f, fn in BLOCK_FORMS.items()}
            for form, (memory, function, applies) in (forms if layer is cnn else FORMS).items():
                if not applies(layer):
                    continue
                try:
                    x = torch.rand(batch, layer.num_regions * channels, lh, lw, device=device, dtype=dtype)
                    x = x.contiguous(memory_format=memory).requires_grad_(input_grad)
                    seconds = _time_conv(layer, function, x, steps, device, precision)
                    rows.append((name, form, seconds * 1e3, flops / seconds / 1e12))
                except torch.OutOfMemoryError:
                    rows.append((name, form, None, None))
                finally:
                    x = None
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on a GPU that has it, else fp32), fp32, tf32, bf16")
    parser.add_argument("--preset", default="paper", choices=sorted(TRAINING_PRESETS))
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 4, 16, 68], help="values of K to time")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per K")
    parser.add_argument("--compile", default="off", choices=COMPILE_MODES)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--layers", action="store_true",
                        help="also time each convolution alone at every K (ms, useful TFLOP/s, share)")
    parser.add_argument("--forms", action="store_true",
                        help="also time each convolution written several ways at every K (grouped channels-last, "
                        "NCHW, unfold + batched matmul, conv1 depthwise, the first layer with cuDNN and fused)")
    parser.add_argument("--variants", nargs="+", default=["cudnn"], choices=list(VARIANTS),
                        help="time the step with each way of running the region CNN on CUDA")
    args = parser.parse_args()
    if min(args.folds) < 1 or args.steps < 1:
        parser.error("--folds and --steps must be >= 1")
    try:
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        if device.type != "cuda" and args.variants != ["cudnn"]:
            raise MieInputError("--variants other than cudnn apply on CUDA only (--device cuda)")
        for variant in args.variants:  # refused here, in one line, where it cannot run
            configure_region_cnn(MieRegionCNN(MieConfig()), device, *VARIANTS[variant])
    except MieInputError as err:
        raise SystemExit(f"error: {err}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    config = MieConfig.from_preset(args.preset)
    batch = TRAINING_PRESETS[args.preset].stage1_batch_size
    print(f"stage-1 step, {args.preset} preset ({config.crop_size[0]} x {config.crop_size[1]} crops, batch {batch} "
          f"per fold), {describe_device(device, precision)}, compile {args.compile}, "
          f"{torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    paper = args.preset == "paper"
    print(f"{'K':>4s} {'variant':>12s} {'ms/step':>9s} {'ms/fold-step':>12s} {'x K=1':>7s}"
          + (f" {'68 folds, stage 1':>18s}" if paper else ""))
    per_fold, line = {}, []  # per_fold: the first of --variants, which the speed-ups refer to
    for k in args.folds:
        try:
            for variant in args.variants:
                seconds = time_steps(config, k, batch, args.steps, device, precision, args.compile, variant)
                per_fold.setdefault(k, seconds / k)
                speed = per_fold[min(per_fold)] / (seconds / k)
                hours = PAPER_STEPS * -(-68 // k) * seconds / 3600
                print(f"{k:4d} {variant if device.type == 'cuda' else 'torch':>12s} {seconds * 1e3:9.2f} {seconds / k * 1e3:12.2f} {speed:6.2f}x"
                      + (f" {hours:16.2f} h" if paper else ""))
                tag = "" if variant == args.variants[0] else f"_{variant.replace('+', '_')}"
                line += [f"stacked_step_ms_K{k}{tag}={seconds * 1e3:.2f}", f"speedup_per_fold_K{k}{tag}={speed:.2f}"]
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        except torch.OutOfMemoryError:
            print(f"{k:4d} out of memory")
            break
    if args.layers:
        # which convolution takes the time, and whether it gets faster per fold as K grows
        print(f"{'K':>4s} {'convolution':>14s} {'ms':>9s} {'ms/fold':>8s} {'TFLOP/s':>8s} {'share':>6s}")
        for k in per_fold:
            for name, ms, tflops, share in time_layers(config, k, batch, args.steps, device, precision):
                print(f"{k:4d} {name:>14s} {ms:9.3f} {ms / k:8.3f} {tflops:8.2f} {share:6.1%}")
                line.append(f"layer_ms_K{k}_{name.replace(' ', '_')}={ms:.3f}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.forms:
        # the same convolutions written other ways: does any beat cuDNN's grouped kernel at large K?
        print(f"{'K':>4s} {'convolution':>15s} {'form':>16s} {'ms':>9s} {'ms/fold':>8s} {'TFLOP/s':>8s}")
        for k in args.folds:
            for name, form, ms, tflops in time_forms(config, k, batch, args.steps, device, precision):
                if ms is None:
                    print(f"{k:4d} {name:>15s} {form:>16s} out of memory")
                    continue
                print(f"{k:4d} {name:>15s} {form:>16s} {ms:9.3f} {ms / k:8.3f} {tflops:8.2f}")
                line.append(f"form_ms_K{k}_{name.replace(' ', '_')}_{form.replace(' ', '_')}={ms:.3f}")
    print(" ".join(line))


if __name__ == "__main__":
    main()
