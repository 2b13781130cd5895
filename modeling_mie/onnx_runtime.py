"""Run an exported mie model (`python -m modeling_mie.export`) with ONNX Runtime on the CPU.

```python
from modeling_mie.onnx_runtime import OnnxMieModel

model = OnnxMieModel("mie.onnx", num_threads=1)
out = model.predict("examples/positive.webm")        # the same preprocessing as the PyTorch path
out.probabilities_dict()                             # {"negative": ..., "positive": ..., "surprise": ...}
out = model(pixel_values, frame_mask)                # or crops you made with MieProcessor
out.logits, out.probabilities                        # (batch, labels) numpy arrays
```

The file carries the model's config and its processor settings as metadata, so nothing else is
needed. The graph takes a fixed number of frames (`num_frames`, chosen at export): shorter clips
are padded and masked here; longer ones are refused with a message (the processor stored in the
file samples every clip down to `num_frames`, as the PyTorch processor does with the same
settings). Masks with holes (frames without the face) are read as the PyTorch model reads them.
Not here: Grad-CAM and region importance (they need gradients: `modeling_mie.explain`), losses
and the stage-1 region logits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .configuration_mie import MieConfig
from .errors import MieInputError

INSTALL_HINT = "pip install 'modeling_mie[onnx]'"
#: The file format this runtime reads (`modeling_mie.export.FORMAT_VERSION`).
SUPPORTED_FORMATS = ("1",)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"Running a mie model with ONNX Runtime needs onnxruntime, which is not installed: {INSTALL_HINT}") from err
    return onnxruntime


@dataclass
class OnnxMieOutput:
    """What [`OnnxMieModel`] returns, as numpy arrays.

    Attributes:
        logits: (batch, labels) float32 class scores, divided by the config's `temperature`
            (the same as `MieForVideoClassification`'s `logits`).
        probabilities: (batch, labels) float32 softmax of `logits`.
        region_features: (batch, frames, regions, features) float32 per-frame region CNN
            features at the input's frame positions (zero where `frame_mask` is False); frames
            as given (before padding to `num_frames`).
        frame_mask: (batch, frames) bool, the frames read.
        label_names: the labels in index order.
        inputs: the processor's output when the clip came through `predict`, else None.
    """

    logits: np.ndarray
    probabilities: np.ndarray
    region_features: np.ndarray
    frame_mask: np.ndarray
    label_names: list[str]
    inputs: object = None

    def probabilities_dict(self, index: int = 0) -> dict[str, float]:
        """{label: probability} of clip `index`."""
        return {name: float(p) for name, p in zip(self.label_names, self.probabilities[index])}


class OnnxMieModel:
    """An exported mie model in an ONNX Runtime session (CPUExecutionProvider).

    Args:
        path: the .onnx file written by `python -m modeling_mie.export`.
        num_threads: ONNX Runtime's intra-op threads; None leaves its default (one per physical
            core). Set it when other work shares the cores: two busy threads on two cores
            oversubscribe (`bench/onnx.py` sets it explicitly).

    Attributes:
        config: the [`MieConfig`] the file was exported from (labels, regions, temperature).
        num_frames: frames per clip the graph takes.
        processor_settings: the [`MieProcessor`] settings stored in the file; `processor()`
            builds one.
        source: the name of the checkpoint folder it was exported from.
        model_card: that checkpoint's README.md (what it was trained on), or None.

    Raises:
        MieInputError: `path` is missing or not a mie ONNX file.
        ImportError: onnxruntime is missing (the message names `pip install 'modeling_mie[onnx]'`).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        ort = _onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise MieInputError(f"The ONNX file {self.path} does not exist; write one with `python -m modeling_mie.export`.")
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1  # one chain of operators: parallel branches would only oversubscribe
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for unreadable files
            raise MieInputError(f"{self.path} is not an ONNX model ONNX Runtime can load ({err}).") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("mie_format") not in SUPPORTED_FORMATS or "mie_config" not in meta:
            raise MieInputError(
                f"{self.path} is not a mie model exported by `python -m modeling_mie.export` "
                f"(metadata mie_format={meta.get('mie_format')!r}; this version reads {list(SUPPORTED_FORMATS)})."
            )
        self.config = MieConfig.from_dict(json.loads(meta["mie_config"]))
        self.processor_settings = json.loads(meta["mie_preprocessor"])
        self.num_frames = int(meta["mie_num_frames"])
        self.source = meta.get("mie_source", "")
        self.model_card = meta.get("mie_model_card") or None
        self._processor = None

    @property
    def label_names(self) -> list[str]:
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    def processor(self, **kwargs):
        """The [`MieProcessor`] with the file's settings (one instance, made on first use);
        `kwargs` (e.g. `face_landmarker_path`) apply to that first construction only."""
        if self._processor is None:
            from .processing_mie import MieProcessor

            self._processor = MieProcessor(**{**self.processor_settings, **kwargs})
        return self._processor

    def __call__(self, pixel_values, frame_mask=None) -> OnnxMieOutput:
        """Classify crops.

        Args:
            pixel_values: (batch, frames, regions, channels, height, width) or one clip without
                the batch axis; numpy array or torch tensor, float in [0, 1] as the processor
                gives (uint8 crops are divided by 255). `frames` at most `num_frames`.
            frame_mask: (batch, frames) bool, True for the frames to read (padding and holes
                False, at least one True per clip); default all True.

        Raises:
            ValueError: wrong shapes, more frames than the file takes, or a clip with no True frame.
        """
        x = _numpy(pixel_values)
        if x.ndim == 5:
            x = x[None]
        cfg = self.config
        expected = (cfg.num_regions, cfg.num_channels, *cfg.crop_size)
        if x.ndim != 6 or tuple(x.shape[2:]) != expected:
            raise ValueError(
                "pixel_values must be (batch, frames, regions, channels, height, width) with (regions, channels, "
                f"height, width) = {expected}; got {tuple(np.shape(pixel_values))}."
            )
        batch, frames = x.shape[:2]
        if frame_mask is None:
            mask = np.ones((batch, frames), bool)
        else:
            mask = _numpy(frame_mask).astype(bool)
            if mask.ndim == 1 and batch == 1:
                mask = mask[None]
            if mask.shape != (batch, frames):
                raise ValueError(f"frame_mask must be (batch, frames) = {(batch, frames)}; got {tuple(np.shape(frame_mask))}.")
        if frames == 0 or frames > self.num_frames:
            raise ValueError(
                f"{self.path.name} takes clips of 1 to {self.num_frames} frames (fixed at export); got {frames}. "
                f"Sample the clip down (the processor from .processor() samples every clip to {self.num_frames}), "
                f"or export again with `python -m modeling_mie.export ... --frames {max(frames, 1)}`."
            )
        empty = ~mask.any(1)
        if empty.any():
            raise ValueError(f"Every clip needs at least one True frame in frame_mask; clips {np.flatnonzero(empty).tolist()} have none.")
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / np.float32(255.0)
        x = x.astype(np.float32, copy=False)
        if frames < self.num_frames:  # pad with black frames that the mask leaves unread
            pad = self.num_frames - frames
            x = np.concatenate([x, np.zeros((batch, pad, *x.shape[2:]), np.float32)], axis=1)
            padded_mask = np.concatenate([mask, np.zeros((batch, pad), bool)], axis=1)
        else:
            padded_mask = mask
        logits, features = self.session.run(
            None, {"pixel_values": np.ascontiguousarray(x), "frame_mask": np.ascontiguousarray(padded_mask)}
        )
        shifted = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return OnnxMieOutput(
            logits=logits,
            probabilities=probabilities.astype(np.float32),
            region_features=features[:, :frames],
            frame_mask=mask,
            label_names=self.label_names,
        )

    def predict(self, videos, **processor_kwargs) -> OnnxMieOutput:
        """Preprocess `videos` with the file's processor (a video file, a frame folder, frames, or
        a list of clips; `landmarks=` / `boxes=` as for [`MieProcessor`]), then classify. The
        processor's output is in `.inputs`.

        Raises:
            MieInputError: a clip the processor refuses (no face, too short, unreadable, ...).
        """
        inputs = self.processor()(videos, return_tensors="np", **processor_kwargs)
        out = self(inputs["pixel_values"], inputs["frame_mask"])
        out.inputs = inputs
        return out


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        return value.detach().cpu().numpy()
    return np.asarray(value)


__all__ = ["OnnxMieModel", "OnnxMieOutput"]
