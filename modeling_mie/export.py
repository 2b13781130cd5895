"""Export a mie checkpoint to one self-contained ONNX file for ONNX Runtime (`modeling_mie.onnx_runtime`).

    python -m modeling_mie.export MODEL_DIR --output FILE.onnx [--frames N]

The graph is the whole classifier: `pixel_values` (batch, frames, regions, channels, height,
width) float32 and `frame_mask` (batch, frames) bool in, `logits` (batch, labels) (already
divided by the config's `temperature`) and `region_features` (batch, frames, regions, features)
out. The batch size is free; the frame count is fixed at export (`--frames`, default the
processor's `num_frames`), because the dynamo exporter specialises the LSTMs' time axis.

What the file holds beside the graph, as ONNX metadata (so that the runtime needs no other
file): `mie_config` (config.json: labels, regions, temperature, ...), `mie_preprocessor`
(preprocessor_config.json, set to give at most `frames` frames), `mie_num_frames`,
`mie_model_card` (the checkpoint's README.md, when it has one), `mie_source` (the checkpoint
folder's name) and `mie_format`.

The exported graph computes exactly what `MieForVideoClassification` computes, with static
shapes: the region CNNs run on every frame slot (padding and holes included, then zeroed), and
each clip's True frames are moved to the front by a sort on a fixed-size key instead of boolean
indexing, so masks with holes (frames without the face) export too. Training-only outputs
(loss, the stage-1 region logits) and the explanations (Grad-CAM needs gradients) stay in PyTorch.

Needs the `onnx` extra: `pip install 'modeling_mie[onnx]'` (onnxscript, which the dynamo
exporter uses, and onnxruntime for the check after export).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MieInputError
from .modeling_mie import MieForVideoClassification, region_cnn_input

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'modeling_mie[onnx]'"
#: Version of what the file holds (inputs, outputs, metadata keys); the runtime checks it.
FORMAT_VERSION = "1"
#: Opset of the exported graph (ONNX Runtime 1.17+ runs it).
OPSET = 18
#: Most frames an export may take: 2 x the processor's default `max_frames` cap.
MAX_EXPORT_FRAMES = 1000
#: Largest |logit difference| from PyTorch the check after export accepts.
TOLERANCE = 1e-4
INPUT_NAMES = ["pixel_values", "frame_mask"]
OUTPUT_NAMES = ["logits", "region_features"]


def require_exporter() -> None:
    """Raise ImportError naming the extra when the dynamo exporter's dependencies are missing."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError as err:
            if err.name != name:  # installed, but something it imports failed: say what
                raise ImportError(f"{name} is installed but does not import ({err}); reinstall it: {INSTALL_HINT}") from err
            missing.append(name)
    if missing:
        raise ImportError(
            f"Exporting to ONNX needs {' and '.join(missing)}, not installed: {INSTALL_HINT}"
        )


class MieOnnxClassifier(nn.Module):
    """`MieForVideoClassification`'s inference forward pass with static shapes, for export.

    Same logits as the model for any mask (tested to 1e-4 through ONNX Runtime), including
    masks with holes: the model's `frames[frame_mask]` and `compact_frames` have data-dependent
    shapes and a data-dependent branch, which `torch.export` cannot trace. Here every frame slot
    goes through the CNNs (their results at False slots are zeroed, as the model's are) and the
    True frames move to the front by sorting the key `(not real) * frames + index`, whose values
    are unique, so any sort keeps the real frames in order.
    """

    def __init__(self, model: MieForVideoClassification):
        super().__init__()
        self.model = model

    def region_features(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (N, R, C, H, W) as the CNNs see them -> features (N, R, F).

        The grouped convolutions and `F.max_pool2d`, without the eager path's chunks (a
        split over a symbolic batch would pin the batch size) and its depthwise / strided-maxima
        rewrites (those help PyTorch's kernels, not ONNX Runtime's). The same operations as
        `MieRegionCNN.forward_maps` otherwise; equal outputs are tested."""
        cnn = self.model.region_cnn
        n, r, c, h, w = frames.shape
        hidden = F.relu(F.max_pool2d(cnn.conv1(frames.reshape(n, r * c, h, w)), 2))  # (N, R*c1, H/2, W/2)
        hidden = F.relu(F.max_pool2d(cnn.conv2(hidden), 2))  # (N, R*c2, H/4, W/4)
        maps = [F.relu(branch(hidden)) for branch in cnn.inception] + [hidden]
        features, _ = cnn.forward_head(cnn.pool_maps(maps))
        return features

    def forward(self, pixel_values: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # pixel_values: (B, T, R, C, H, W) float; frame_mask: (B, T) bool, at least one True per clip
        batch, frames = pixel_values.shape[:2]
        cnn_input = region_cnn_input(self.model.config, pixel_values, frame_mask=frame_mask)
        features = self.region_features(cnn_input.flatten(0, 1))  # (B*T, R, F)
        features = features.view(batch, frames, *features.shape[1:])  # (B, T, R, F)
        features = features * frame_mask[:, :, None, None].to(features.dtype)  # zero where not read
        key = (~frame_mask).to(torch.int64) * frames + torch.arange(frames, device=frame_mask.device)  # (B, T)
        order = key.argsort(dim=1)  # real frames first, in order, then the others
        compact = features.gather(1, order[:, :, None, None].expand_as(features))  # (B, T, R, F)
        logits, _ = self.model.temporal(compact, frame_mask.sum(1))
        return logits, features


def default_frames(processor) -> int:
    """The frame count to export for: the processor's fixed-length sampling when it has one
    (train/loso.py saves the training's `num_frames` there), else 32."""
    if processor.frame_sampling in ("uniform", "interpolate") and processor.num_frames:
        return int(processor.num_frames)
    return 32


def runtime_processor_settings(processor, frames: int) -> dict:
    """The processor's settings, changed where needed so that it gives at most `frames` frames:
    "interpolate" keeps interpolating to exactly `frames`; anything else samples evenly
    ("uniform": shorter clips keep all their frames and are padded and masked)."""
    settings = processor.to_dict()
    if settings.get("frame_sampling") != "interpolate":
        settings["frame_sampling"] = "uniform"
    settings["num_frames"] = int(frames)
    settings["max_frames"] = max(int(frames), int(settings.get("min_frames") or 1))
    return settings


def example_inputs(config, frames: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (batch, frames, R, C, H, W) in [0, 1] and a mask: clip 0 whole; the others
    padded after about two thirds of their frames and with a hole (when long enough)."""
    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.rand(batch, frames, config.num_regions, config.num_channels, *config.crop_size, generator=g)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    for b in range(1, batch):
        length = max(1, (2 * frames) // 3)
        mask[b, length:] = False
        if length >= 5:
            mask[b, 2:4] = False
        pixel_values[b, ~mask[b]] = 0.0
    return pixel_values, mask


def export_onnx(model_dir: str | Path, output: str | Path, frames: int | None = None, check: bool = True) -> dict:
    """Export the checkpoint in `model_dir` to `output` (one .onnx file with its settings inside).

    Args:
        model_dir: a folder with config.json, model.safetensors and preprocessor_config.json.
        output: the .onnx file to write (its folder is created).
        frames: frames per clip the graph takes; default `default_frames(processor)`.
        check: run the file with ONNX Runtime on random clips (one whole, one padded with a
            hole) and compare with PyTorch.

    Returns:
        {"output", "frames", "seconds", "bytes", "max_abs_diff" (None without check)}.

    Raises:
        MieInputError: `model_dir` is not a mie checkpoint, or `frames` is out of range.
        ImportError: the `onnx` extra is missing (the message names it).
    """
    from .processing_mie import MieProcessor

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MieInputError(f"{model_dir} is not a folder; pass a mie checkpoint folder (config.json, model.safetensors).")
    if not (model_dir / "config.json").is_file():
        raise MieInputError(f"{model_dir} has no config.json; pass a mie checkpoint folder written by train/loso.py.")
    try:
        model = MieForVideoClassification.from_pretrained(model_dir).eval()
        processor = MieProcessor.from_pretrained(model_dir)
    except (OSError, ValueError) as err:
        raise MieInputError(f"Could not load a mie model from {model_dir} ({err}).") from err
    frames = default_frames(processor) if frames is None else frames
    if isinstance(frames, bool) or not isinstance(frames, int) or not processor.min_frames <= frames <= MAX_EXPORT_FRAMES:
        raise MieInputError(
            f"--frames must be a whole number from {processor.min_frames} (the processor's min_frames) to "
            f"{MAX_EXPORT_FRAMES}; got {frames!r}."
        )
    require_exporter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)

    wrapper = MieOnnxClassifier(model).eval()
    pixel_values, mask = example_inputs(model.config, frames)
    batch = torch.export.Dim("batch", min=1, max=1024)
    started = time.perf_counter()
    # The exporter warns about its own internals (LSTM weights it re-registers, deprecations
    # inside torch.export); the comparison with PyTorch after export is what tells whether it worked.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
        program = torch.onnx.export(
            wrapper,
            (pixel_values, mask),
            dynamo=True,
            opset_version=OPSET,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_shapes={"pixel_values": {0: batch}, "frame_mask": {0: batch}},
            verbose=False,
        )
    metadata = {
        "mie_format": FORMAT_VERSION,
        "mie_config": model.config.to_json_string(use_diff=False),
        "mie_preprocessor": json.dumps(runtime_processor_settings(processor, frames), sort_keys=True),
        "mie_num_frames": str(frames),
        "mie_source": model_dir.resolve().name,  # the folder's name, not the server's path
    }
    card = model_dir / "README.md"
    if card.is_file():  # what the model was trained on travels with it (the app's provenance line)
        metadata["mie_model_card"] = card.read_text(encoding="utf-8")
    program.model.metadata_props.update(metadata)
    program.model.doc_string = (
        "mie micro-expression classifier (region CNN + LSTM, Aouayeb et al. 2019). Inputs pixel_values "
        f"(batch, {frames}, regions, channels, height, width) float32 in [0, 1] and frame_mask (batch, {frames}) "
        "bool; outputs logits (batch, labels), temperature applied, and region_features. Settings in the metadata."
    )
    program.save(str(output))
    seconds = time.perf_counter() - started
    result = {"output": str(output), "frames": frames, "seconds": seconds, "bytes": output.stat().st_size,
              "max_abs_diff": None}
    if check:
        result["max_abs_diff"] = compare_with_pytorch(model, output, frames)
    return result


def compare_with_pytorch(model: MieForVideoClassification, path: str | Path, frames: int, seed: int = 1) -> float:
    """Largest |logit difference| between ONNX Runtime (the file at `path`) and the PyTorch
    model on random clips: one whole, one padded with a hole, one padded only."""
    from .onnx_runtime import OnnxMieModel

    pixel_values, mask = example_inputs(model.config, frames, batch=3, seed=seed)
    mask[2] = torch.arange(frames) < max(1, frames // 2)  # padded only (a prefix mask)
    pixel_values[2, ~mask[2]] = 0.0
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, frame_mask=mask).logits.numpy()
    got = OnnxMieModel(path, num_threads=1)(pixel_values.numpy(), mask.numpy()).logits
    return float(abs(got - expected).max())


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as the other errors of this command
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m modeling_mie.export",
        description="Export a mie checkpoint to one ONNX file (settings inside) for ONNX Runtime.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="checkpoint folder (config.json, model.safetensors)")
    parser.add_argument("--output", "-o", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    parser.add_argument(
        "--frames", type=int, default=None, metavar="N",
        help="frames per clip the graph takes (default: the processor's num_frames, else 32); longer clips "
        "are sampled evenly down to N by the processor stored in the file, shorter ones padded and masked",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The exporter's own chatter (operators of torchvision it skips, deprecations inside
    # torch.export) says nothing about this model; the check below is what tells whether it worked.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = export_onnx(args.model_dir, args.output, frames=args.frames, check=not args.no_check)
    except (MieInputError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    line = (
        f"wrote {result['output']} ({result['bytes'] / 1e6:.1f} MB, {result['frames']} frames per clip, "
        f"{result['seconds']:.1f} s)"
    )
    if result["max_abs_diff"] is not None:
        line += f"; ONNX Runtime vs PyTorch: max |logit difference| {result['max_abs_diff']:.2e}"
    print(line)
    if result["max_abs_diff"] is not None and result["max_abs_diff"] > TOLERANCE:
        print(f"error: the exported model's logits differ from PyTorch's by more than {TOLERANCE:g}; "
              "do not use this file (this is a bug in mie's export: please report it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
