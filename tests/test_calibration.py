"""Temperature scaling and the expected calibration error, on examples worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification
from modeling_mie.calibration import expected_calibration_error, fit_temperature, loso_calibration, softmax


def test_ece_of_a_hand_worked_example():
    # 4 clips: two at confidence 0.9 (one right), two at 0.6 (both right), 10 bins
    p = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.6, 0.2]])
    labels = [0, 1, 0, 1]
    # bin 0.9: accuracy 0.5, confidence 0.9 -> 0.4; bin 0.6: accuracy 1.0, confidence 0.6 -> 0.4
    assert expected_calibration_error(p, labels, num_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)


def test_the_fitted_temperature_is_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 3))
    truth_t = 2.5  # labels drawn from softmax(logits / 2.5): the model is over-confident by 2.5x
    probs = softmax(logits, truth_t)
    labels = np.array([rng.choice(3, p=row) for row in probs])
    assert fit_temperature(logits, labels) == pytest.approx(truth_t, rel=0.1)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, fit_temperature(logits, labels)), labels)
    assert after < before / 2


def test_each_subject_is_calibrated_without_its_own_predictions():
    rng = np.random.default_rng(1)

    def fold(name, scale, n=60):
        logits = rng.normal(0, 3, (n, 3))
        labels = [int(rng.choice(3, p=row)) for row in softmax(logits, scale)]
        probs = softmax(logits)
        return {"fold": name, "predictions": [{"label": y, "probabilities": p.tolist()} for y, p in zip(labels, probs)]}

    folds = [fold(f"s{i}", 2.0) for i in range(5)] + [fold("odd", 0.3)]
    result = loso_calibration(folds)
    others = fit_temperature(
        np.log(np.array([p["probabilities"] for f in folds[:5] for p in f["predictions"]])),
        [p["label"] for f in folds[:5] for p in f["predictions"]],
    )
    # the odd subject's temperature comes from the five others alone
    assert result["temperature_per_subject"]["odd"] == pytest.approx(others, rel=1e-3)
    assert abs(result["temperature_per_subject"]["s0"] - others) > 0.01  # the others include "odd"
    assert result["clips"] == 360 and 0 <= result["ece_after"] <= 1


def test_the_model_divides_its_logits_by_the_configured_temperature():
    config = MieConfig.from_preset("fast")
    torch.manual_seed(0)
    model = MieForVideoClassification(config).eval()
    x = torch.rand(1, 4, config.num_regions, 1, *config.crop_size)
    with torch.no_grad():
        plain = model(pixel_values=x).logits
        model.config.temperature = 2.0
        scaled = model(pixel_values=x).logits
    torch.testing.assert_close(scaled, plain / 2.0)
    with pytest.raises(ValueError, match="temperature"):
        MieConfig(temperature=0)
