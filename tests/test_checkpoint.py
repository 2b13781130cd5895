"""The bundled demo checkpoint: complete, loadable both ways, honest card, current remote code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "checkpoints" / "mie-synthetic-megc2019"


def test_bundled_checkpoint_is_a_complete_hub_folder():
    from modeling_mie.hub import validate_model_folder

    assert validate_model_folder(BUNDLED) == []
    assert (BUNDLED / "model.safetensors").stat().st_size < 5_000_000  # a few MB, as promised


def test_its_card_says_synthetic_and_carries_the_loso_figures():
    from huggingface_hub import ModelCard

    from modeling_mie.metrics import megc_scores, read_megc_log

    card = ModelCard.load(BUNDLED / "README.md")
    assert "synthetic-data" in card.data.tags
    assert "not a real micro-expression recogniser" in card.text
    assert "python train/loso.py" in card.text  # how to train a real one
    figures = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    # the card's figures are the ones the committed predictions give
    scores = megc_scores(read_megc_log(BUNDLED / "loso_predictions.log"))
    assert scores["full"]["clips"] == 442 and scores["full"]["subjects"] == 68
    for name in ("full", "casme2", "samm", "smic"):
        assert figures[(name, "uf1")] == pytest.approx(scores[name]["uf1"], abs=1e-4)
        assert figures[(name, "uar")] == pytest.approx(scores[name]["uar"], abs=1e-4)


@pytest.mark.parametrize("name", ["configuration_mie.py", "modeling_mie.py", "processing_mie.py", "landmarks.py", "tracking.py", "regions.py", "flow.py", "video.py", "errors.py"])
def test_remote_code_files_are_the_packages(name):
    """Without the package, trust_remote_code runs these copies: they must not drift."""
    shipped = (BUNDLED / name).read_bytes()
    current = (REPO / "modeling_mie" / name).read_bytes()
    assert shipped == current, (
        f"checkpoints/mie-synthetic-megc2019/{name} differs from modeling_mie/{name}; "
        f"copy it: cp modeling_mie/{name} checkpoints/mie-synthetic-megc2019/"
    )


def test_processor_samples_as_training_did():
    config = json.loads((BUNDLED / "config.json").read_text())
    processor = json.loads((BUNDLED / "preprocessor_config.json").read_text())
    assert config["input_mode"] == "flow" and config["trained_motion_peak"] > 0
    assert processor["frame_sampling"] == "uniform" and processor["num_frames"] == 32
    assert [(r["name"], r["box"]) for r in processor["regions"]] == [(r["name"], r["box"]) for r in config["regions"]]
