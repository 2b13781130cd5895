"""mie: facial micro-expression recognition with the region CNN + LSTM of Aouayeb et al. (2019).

Importing the package registers the model with transformers' Auto classes. Everything beyond
the config, model and processor is imported on first use, so `import modeling_mie` does not
pull in MediaPipe, OpenCV or datasets.
"""

from importlib import import_module

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_mie import MieConfig
from .errors import MieInputError
from .modeling_mie import MieForVideoClassification, MieVideoClassifierOutput, focal_loss, inverse_frequency_alpha

__version__ = "0.1.0"

AutoConfig.register(MieConfig.model_type, MieConfig, exist_ok=True)
AutoModel.register(MieConfig, MieForVideoClassification, exist_ok=True)
AutoModelForVideoClassification.register(MieConfig, MieForVideoClassification, exist_ok=True)
# save_pretrained then writes auto_map and the flat code files for trust_remote_code=True.
MieConfig.register_for_auto_class()
MieForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

# Public names that live in modules imported on first use: name -> module.
_LAZY = {
    # landmarks.py
    "MieFaceLandmarker": "landmarks",
    "FaceLandmarks": "landmarks",
    "detect_landmarks": "landmarks",
    "resolve_face_landmarker_model": "landmarks",
    "MEDIAPIPE_TO_DLIB68": "landmarks",
    # data.py
    "load_casme2": "data",
    "load_samm": "data",
    "load_smic": "data",
    "load_megc2019": "data",
    "read_megc2019_ground_truth": "data",
    "summarize_clips": "data",
    "format_summary": "data",
    "parse_action_units": "data",
    "clip_region_labels": "data",
    "clip_features": "data",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MieConfig",
    "MieForVideoClassification",
    "MieInputError",
    "MieVideoClassifierOutput",
    "focal_loss",
    "inverse_frequency_alpha",
    *_LAZY,
]
