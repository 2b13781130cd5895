"""mie: facial micro-expression recognition with the region CNN + LSTM of Aouayeb et al. (2019).

Importing the package registers the model with transformers' Auto classes. Everything beyond
the config, model and processor is imported on first use, so `import modeling_mie` does not
pull in MediaPipe, OpenCV or datasets.
"""

from importlib import import_module

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForVideoClassification

from .configuration_mie import MieConfig
from .errors import MieInputError
from .modeling_mie import MieForVideoClassification, MieVideoClassifierOutput, focal_loss, inverse_frequency_alpha
from .processing_mie import MieProcessor

__version__ = "0.1.0"

AutoConfig.register(MieConfig.model_type, MieConfig, exist_ok=True)
AutoModel.register(MieConfig, MieForVideoClassification, exist_ok=True)
AutoModelForVideoClassification.register(MieConfig, MieForVideoClassification, exist_ok=True)
# save_pretrained then writes auto_map and the flat code files for trust_remote_code=True.
MieConfig.register_for_auto_class()
MieForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
# The processor needs neither PIL nor torchvision; registering it under both backend names keeps
# AutoImageProcessor from warning about a "fallback" when torchvision happens to be installed.
# AutoProcessor is deliberately not registered: it then falls back to AutoImageProcessor, which
# reads preprocessor_config.json (after AutoProcessor.register, a folder without
# processor_config.json would silently get default settings).
AutoImageProcessor.register(
    MieConfig, image_processor_classes={"pil": MieProcessor, "torchvision": MieProcessor}, exist_ok=True
)
MieProcessor.register_for_auto_class("AutoImageProcessor")

# Public names that live in modules imported on first use: name -> module.
_LAZY = {
    # landmarks.py
    "MieFaceLandmarker": "landmarks",
    "FaceLandmarks": "landmarks",
    "detect_landmarks": "landmarks",
    "resolve_face_landmarker_model": "landmarks",
    "MEDIAPIPE_TO_DLIB68": "landmarks",
    # video.py
    "Clip": "video",
    "ClipReader": "video",
    "VideoLimits": "video",
    "open_clip": "video",
    "read_clip": "video",
    "list_frame_files": "video",
    # processing_mie.py (helpers beside MieProcessor)
    "crop_regions": "processing_mie",
    "frame_positions": "processing_mie",
    "face_box_from_landmarks": "processing_mie",
    "region_boxes_from_face_box": "processing_mie",
    # visualize.py
    "draw_regions": "visualize",
    "save_png": "visualize",
    # data.py
    "load_casme2": "data",
    "load_samm": "data",
    "load_smic": "data",
    "summarize_clips": "data",
    "format_summary": "data",
    "parse_action_units": "data",
    "clip_region_labels": "data",
    "clip_features": "data",
    # megc2019.py
    "load_megc2019": "megc2019",
    "read_megc2019_ground_truth": "megc2019",
    # long_videos.py
    "load_casme_sq": "long_videos",
    "load_samm_lv": "long_videos",
    "load_casme3_part_a": "long_videos",
    "load_long_videos": "long_videos",
    "long_video_features": "long_videos",
    "list_video_frames": "long_videos",
    # cache.py
    "build_region_cache": "cache",
    # synthetic.py
    "generate_synthetic_dataset": "synthetic",
    "plan_synthetic_dataset": "synthetic",
    "render_synthetic_clip": "synthetic_faces",
    "draw_synthetic_clip": "synthetic",
    "read_synthetic_manifest": "synthetic",
    "load_base_faces": "synthetic",
    "SYNTHETIC_PROFILES": "synthetic",
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
    "MieProcessor",
    "MieVideoClassifierOutput",
    "focal_loss",
    "inverse_frequency_alpha",
    *_LAZY,
]
