"""Where training runs: the device and precision a run asked for, and moving cached clips there in large batches.

The CPU path stays exactly what it was (fp32, the same operations in the same order), so a CPU
run repeats bit for bit. On CUDA the region CNNs may run under bf16 autocast; the temporal stage
(LSTMs and fusion) always runs in fp32 (`MieTemporalFusion.forward`). What differs between
devices is written down in docs/training.md ("Devices and precision").
"""

from __future__ import annotations

import contextlib
import importlib
import re

import torch

from .errors import MieInputError

DEVICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("auto", "fp32", "tf32", "bf16")

# Frames per region-CNN chunk on CUDA. The CPU default (8 or 16 frames, `MieRegionCNN.chunk_frames`)
# keeps maps in a core's cache; on a GPU such chunks are launches too small to fill it.
CUDA_CHUNK_FRAMES = 1024
# Share of the free GPU memory that one stage's uint8 crops may take when moved there whole
# (several fold processes may share one GPU); above it they stay in pinned CPU memory and move
# one batch at a time.
DEVICE_MEMORY_SHARE = 0.3
# What runs the region CNN's two first layers (conv1 and conv2, each with max-pooling and ReLU) on
# CUDA: "cudnn" (three operations: cuDNN's grouped convolution, F.max_pool2d, F.relu) or "triton"
# (fused kernels, `modeling_mie.fused_conv`; needs Triton, which CUDA builds of PyTorch bring). The
# CPU always runs the three operations.
CONV_KERNELS = ("cudnn", "triton")
CUDA_CONV_KERNEL = "cudnn"
# Whether the region CNN runs its four inception branches as one wider grouped convolution on CUDA
# (`MieRegionCNN.merged_inception`: same outputs, 2.3x the arithmetic in one call). The CPU keeps
# the four branches (oneDNN runs them near its matmul rate).
CUDA_MERGED_INCEPTION = False
# What runs the inception block with its ReLU and average pooling on CUDA: "cudnn" (the branches'
# convolutions, then PyTorch's ReLU and mean) or "triton" (`modeling_mie.fused_inception`: tensor-core
# kernels that average the maps without writing them). The CPU always runs the branches. Where
# Triton or the GPU is missing, a default of "triton" here falls back to "cudnn" (`_default_kernel`);
# an explicit request (an argument, `cnn_kernels`) stops with one line instead.
INCEPTION_KERNELS = ("cudnn", "triton")
CUDA_INCEPTION_KERNEL = "cudnn"


# `train/loso.py --cnn-kernels`: what runs the region CNN's convolutions on CUDA for a whole run.
# "auto" keeps the defaults above; "cudnn" cuDNN's and PyTorch's operations everywhere; "triton" the
# fused kernels for conv1, conv2 and the inception block (`fused_conv`, `fused_inception`).
CNN_KERNELS = ("auto", "cudnn", "triton")
# Set while a run's explicit choice is in force (`cnn_kernels`): its kernels must run or stop in words.
_REQUIRED = False


def check_cnn_kernels(name: str, device: torch.device) -> str:
    """`name` (`CNN_KERNELS`) if it can run on `device`, else a one-line error saying what to do."""
    if name not in CNN_KERNELS:
        raise MieInputError(f"--cnn-kernels must be one of {', '.join(CNN_KERNELS)}; got {name!r}.")
    if name == "triton":
        if device.type != "cuda":
            raise MieInputError(f"--cnn-kernels triton runs on CUDA GPUs only; this run is on {device}. Leave it "
                                "out (the CPU runs PyTorch's operations) or pass --device cuda.")
        from . import fused_conv

        if not fused_conv.available(device):
            raise MieInputError("--cnn-kernels triton needs Triton (pip install triton; CUDA builds of PyTorch "
                                "bring it); install it or pass --cnn-kernels cudnn.")
    return name


def describe_cnn_kernels(name: str, device: torch.device) -> str:
    """What runs the region CNN with `--cnn-kernels name` on `device`, in words (for fold files)."""
    if device.type != "cuda":
        return "pytorch"
    with cnn_kernels(name):
        conv = _default_kernel(CUDA_CONV_KERNEL, device)
        inception = _default_kernel(CUDA_INCEPTION_KERNEL, device)
    return conv if conv == inception else f"conv1+conv2 {conv}, inception {inception}"


@contextlib.contextmanager
def cnn_kernels(name: str):
    """While open, models prepared for CUDA (`prepare_model`) run the region CNN on `name`'s kernels
    (`CNN_KERNELS`; "auto" changes nothing); the defaults come back on leaving."""
    global CUDA_CONV_KERNEL, CUDA_INCEPTION_KERNEL, CUDA_MERGED_INCEPTION, _REQUIRED
    saved = CUDA_CONV_KERNEL, CUDA_INCEPTION_KERNEL, CUDA_MERGED_INCEPTION, _REQUIRED
    if name in ("cudnn", "triton"):
        CUDA_CONV_KERNEL = CUDA_INCEPTION_KERNEL = name
        CUDA_MERGED_INCEPTION = False
        _REQUIRED = True  # asked for: no quiet fallback (`_default_kernel`)
    try:
        yield
    finally:
        CUDA_CONV_KERNEL, CUDA_INCEPTION_KERNEL, CUDA_MERGED_INCEPTION, _REQUIRED = saved


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` (CUDA when PyTorch sees a GPU, else the CPU), `cpu`, `cuda` or `cuda:N` -> a torch.device.

    Raises:
        MieInputError: an unknown spelling, or CUDA asked for where PyTorch cannot use it (one
            line that says why and what to pass instead).
    """
    if isinstance(spec, torch.device):
        return spec
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise MieInputError(f"--device must be one of {DEVICES}; got {spec!r}.")
    if not torch.cuda.is_available():
        why = (
            "a CPU-only build" if torch.version.cuda is None
            else f"built for CUDA {torch.version.cuda}, but it sees no GPU (driver, CUDA_VISIBLE_DEVICES?)"
        )
        raise MieInputError(f"--device {text}: this PyTorch ({torch.__version__}) is {why}; use --device cpu or auto.")
    if match.group(1) is None:
        return torch.device("cuda")
    index, count = int(match.group(1)), torch.cuda.device_count()
    if index >= count:
        raise MieInputError(f"--device {text}: PyTorch sees {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> `bf16` on a CUDA GPU that supports it, else `fp32`; checks an explicit choice.

    fp32: plain float32 everywhere (on CUDA with TF32 switched off, the closest to the CPU);
    tf32: float32 tensors, TF32 tensor-core convolutions and matmuls (PyTorch's CUDA default for
    convolutions); bf16: the region CNNs under bf16 autocast (on the CPU too, where it is slow
    and meant for testing), the temporal stage in fp32.
    """
    text = str(precision).strip().lower()
    if text not in PRECISIONS:
        raise MieInputError(f"--precision must be one of {list(PRECISIONS)}; got {precision!r}.")
    cuda = device.type == "cuda"
    if text == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if text == "tf32" and not cuda:
        raise MieInputError("--precision tf32 is a CUDA mode; on the CPU use fp32 (or bf16).")
    if text == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise MieInputError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp32 or tf32.")
    return text


def describe_device(device: torch.device, precision: str) -> str:
    """`cuda:0 (NVIDIA H100 80GB HBM3), bf16 autocast` / `cpu, fp32`: for banners and fold files."""
    name = str(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{name}, {'bf16 autocast' if precision == 'bf16' else precision}"


def autocast(device: torch.device, precision: str):
    """The autocast context of the region CNN's forward passes: bf16 when asked, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _fp32_precision_knobs():
    """PyTorch's TF32 switches as (object, attribute) pairs: the fp32_precision API of torch >= 2.9,
    else the older allow_tf32 flags (the two must not be mixed)."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return "new", [(torch.backends.cudnn.conv, "fp32_precision"), (torch.backends.cudnn.rnn, "fp32_precision"),
                       (torch.backends.cuda.matmul, "fp32_precision")]
    return "old", [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]


@contextlib.contextmanager
def float32_mode(device: torch.device, precision: str):
    """On CUDA: TF32 off for `fp32` (comparable with the CPU), on for `tf32` and `bf16` (what autocast
    leaves in float32); restored afterwards. On other devices: nothing."""
    if device.type != "cuda":
        yield
        return
    api, knobs = _fp32_precision_knobs()
    saved = [getattr(obj, name) for obj, name in knobs]
    tf32 = precision != "fp32"
    value = ("tf32" if tf32 else "ieee") if api == "new" else tf32
    try:
        for obj, name in knobs:
            setattr(obj, name, value)
        yield
    finally:
        for (obj, name), old in zip(knobs, saved):
            setattr(obj, name, old)


def prepare_model(
    model: torch.nn.Module,
    device: torch.device,
    conv_kernel: str | None = None,
    merged_inception: bool | None = None,
    inception_kernel: str | None = None,
) -> torch.nn.Module:
    """Move `model` to `device` and set its region CNN's chunking, memory layout, convolution kernels
    and inception branches for it (`configure_region_cnn`)."""
    model.to(device)
    cnn = getattr(model, "region_cnn", None)
    if cnn is not None:
        configure_region_cnn(cnn, device, conv_kernel, merged_inception, inception_kernel)
    return model


def configure_region_cnn(
    cnn: torch.nn.Module,
    device: torch.device,
    conv_kernel: str | None = None,
    merged_inception: bool | None = None,
    inception_kernel: str | None = None,
) -> None:
    """A `MieRegionCNN` set for `device`: on CUDA, large chunks of frames (`CUDA_CHUNK_FRAMES`) in
    NCHW memory, where cuDNN's grouped convolutions ran faster than channels-last at every layer (an
    H100, `bench/stacked_step.py --forms`; docs/training.md), conv1 and conv2 with their pooling on
    `conv_kernel` (default `CUDA_CONV_KERNEL`, see `CONV_KERNELS`) and the inception branches merged or not
    (default `CUDA_MERGED_INCEPTION`) and the inception block with its pooling on `inception_kernel`
    (default `CUDA_INCEPTION_KERNEL`, see `INCEPTION_KERNELS`); elsewhere the CPU's chunks, channels-last memory and
    PyTorch's operations, branch by branch.

    Raises:
        MieInputError: an unknown kernel name, or "triton" where Triton or the GPU is missing.
    """
    kernel = conv_kernel or _default_kernel(CUDA_CONV_KERNEL, device)
    if kernel not in CONV_KERNELS:
        raise MieInputError(f"conv kernel must be one of {', '.join(CONV_KERNELS)}; got {kernel!r}.")
    block = inception_kernel or _default_kernel(CUDA_INCEPTION_KERNEL, device)
    if block not in INCEPTION_KERNELS:
        raise MieInputError(f"inception kernel must be one of {', '.join(INCEPTION_KERNELS)}; got {block!r}.")
    cuda = device.type == "cuda"
    cnn.chunk_frames = CUDA_CHUNK_FRAMES if cuda else None
    cnn.channels_last = not cuda
    cnn.conv_pool_relu = cnn.inception_pool = None
    cnn.merged_inception = cuda and (CUDA_MERGED_INCEPTION if merged_inception is None else merged_inception)
    if cuda and kernel == "triton":
        cnn.conv_pool_relu = _triton_function("fused_conv", "conv_pool_relu", "convolutions need", device)
    if cuda and block == "triton":
        cnn.inception_pool = _triton_function("fused_inception", "inception_pool", "inception needs", device)


def _default_kernel(kernel: str, device: torch.device) -> str:
    """A default of this module as it can run: "triton" where Triton or the GPU is missing falls back
    to "cudnn", unless a run asked for it (`cnn_kernels`), which then stops in words."""
    if kernel == "triton" and not _REQUIRED and device.type == "cuda":
        from . import fused_conv

        if not fused_conv.available(device):
            return "cudnn"
    return kernel


def _triton_function(module: str, name: str, what: str, device: torch.device):
    """`name` of the Triton module `module` (imported only when asked for), or the one-line error
    saying what `what` (e.g. "convolutions need") and what to do instead."""
    kernels = importlib.import_module(f".{module}", __package__)
    if not kernels.available(device):
        raise MieInputError(f"the fused Triton {what} Triton (pip install triton; CUDA builds of PyTorch bring "
                            "it) and a CUDA GPU; use the cudnn kernel instead.")
    return getattr(kernels, name)


def stage_tensor(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` (a stage's uint8 crops) moved to `device` in one copy when it fits there.

    CPU: the tensor itself. CUDA: on the GPU when it takes under `DEVICE_MEMORY_SHARE` of the
    free memory, else in pinned CPU memory so each batch moves asynchronously. Other devices
    (e.g. "meta" in tests): moved. Callers index the result with indices on `result.device`
    and move each batch with `.to(device, non_blocking=True)` (a no-op when already there).
    """
    if tensor.device == device or device.type == "cpu":
        return tensor
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if tensor.numel() * tensor.element_size() > DEVICE_MEMORY_SHARE * free:
            return tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


__all__ = [
    "CNN_KERNELS",
    "CONV_KERNELS",
    "CUDA_CHUNK_FRAMES",
    "CUDA_CONV_KERNEL",
    "CUDA_INCEPTION_KERNEL",
    "CUDA_MERGED_INCEPTION",
    "DEVICES",
    "INCEPTION_KERNELS",
    "PRECISIONS",
    "autocast",
    "check_cnn_kernels",
    "cnn_kernels",
    "configure_region_cnn",
    "describe_cnn_kernels",
    "describe_device",
    "float32_mode",
    "prepare_model",
    "resolve_device",
    "resolve_precision",
    "stage_tensor",
]
