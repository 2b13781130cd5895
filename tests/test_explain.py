"""Explanations: Grad-CAM per region, region importance, activity over time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification
from modeling_mie.explain import explain_clip, overlay_heatmap


def test_explanation_shapes_and_ranges(tiny_config):
    torch.manual_seed(0)
    model = MieForVideoClassification(tiny_config)
    x = torch.rand(1, 7, tiny_config.num_regions, tiny_config.num_channels, *tiny_config.crop_size)
    e = explain_clip(model, x)
    assert e.probabilities.shape == (5,) and e.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert e.predicted == int(np.argmax(e.probabilities)) and e.target == e.predicted
    assert e.region_importance.shape == (3,) and e.region_importance.sum() == pytest.approx(1.0, abs=1e-5)
    assert e.heatmaps.shape == (3, *tiny_config.crop_size)
    assert e.heatmaps.min() >= 0 and e.heatmaps.max() <= 1
    assert e.peak_frames.shape == (3,) and e.peak_frames.max() < 7
    assert e.region_activity.shape == (7, 3) and np.all(e.region_activity[0] == 0)
    assert set(e.probabilities_dict()) == set(tiny_config.id2label.values())
    with pytest.raises(ValueError, match="target"):
        explain_clip(model, x, target=9)


def test_a_region_the_fusion_ignores_gets_no_importance_and_no_heat(tiny_config):
    """Cut region 0 and 2 out of the fusion layer: only region 1 can carry evidence."""
    torch.manual_seed(1)
    model = MieForVideoClassification(tiny_config)
    hidden = tiny_config.lstm_hidden_size
    with torch.no_grad():
        model.temporal.fusion.weight[:, :hidden] = 0
        model.temporal.fusion.weight[:, 2 * hidden :] = 0
    x = torch.rand(1, 6, tiny_config.num_regions, tiny_config.num_channels, *tiny_config.crop_size)
    e = explain_clip(model, x, target=2)
    assert e.target == 2
    assert e.region_importance[1] == pytest.approx(1.0, abs=1e-6)
    assert e.heatmaps[0].max() == 0 and e.heatmaps[2].max() == 0
    assert e.heatmaps[1].max() == pytest.approx(1.0)


def test_overlay_heatmap_colours_hot_pixels_red():
    crop = np.full((4, 6), 128, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[0, 0] = 1.0
    out = overlay_heatmap(crop, heat)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > out[0, 0, 2]  # hot: red over blue
    assert out[3, 5, 2] > out[3, 5, 0]  # cold: blue over red
    with pytest.raises(ValueError, match="differ"):
        overlay_heatmap(crop, np.zeros((2, 2)))


def test_each_region_is_shown_at_its_apex(tiny_config):
    """The heatmap frame is where the region moved most from the first frame, not the last frame
    (where an LSTM's gradient is largest whatever the clip shows)."""
    torch.manual_seed(2)
    model = MieForVideoClassification(tiny_config)
    x = torch.full((1, 9, tiny_config.num_regions, tiny_config.num_channels, *tiny_config.crop_size), 0.5)
    for t, amount in ((2, 0.15), (3, 0.45), (4, 0.15)):  # region 0 moves, peaking at frame 3
        x[0, t, 0, :, 4:10, 6:14] += amount
    e = explain_clip(model, x)
    assert e.peak_frames[0] == 3
    assert np.argmax(e.region_activity[:, 0]) == 3


@pytest.mark.parametrize("input_mode", ["frames", "onset_difference"])
def test_a_clip_with_holes_is_explained_as_its_real_frames(input_mode, tiny_config):
    """Holes (e.g. frames where the face was lost) are skipped: the explanation is the one of the
    real frames cut out, with its per-frame results put back at the input's frame indices and
    NaN activity exactly at the holes. Frame 0 is a hole, so activity measured from frame 0
    instead of the first real frame fails."""
    config = MieConfig.from_dict({**tiny_config.to_dict(), "input_mode": input_mode})
    torch.manual_seed(3)
    model = MieForVideoClassification(config)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 10, config.num_regions, config.num_channels, *config.crop_size, generator=g)
    real = np.array([1, 2, 4, 5, 6, 8])
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, real] = True
    e = explain_clip(model, x, mask)
    cut = explain_clip(model, x[:, real])
    np.testing.assert_allclose(e.probabilities, cut.probabilities, rtol=1e-5, atol=1e-6)
    assert e.predicted == cut.predicted and e.target == cut.target
    np.testing.assert_allclose(e.region_importance, cut.region_importance, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.heatmaps, cut.heatmaps, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(e.peak_frames, real[cut.peak_frames])
    assert mask[0, e.peak_frames].all()
    assert e.region_activity.shape == (10, config.num_regions)
    np.testing.assert_array_equal(np.isnan(e.region_activity).any(1), ~mask[0].numpy())
    np.testing.assert_array_equal(np.isnan(e.region_activity).all(1), ~mask[0].numpy())
    np.testing.assert_allclose(e.region_activity[real], cut.region_activity, rtol=1e-5, atol=1e-6)
    assert np.all(e.region_activity[1] == 0) and np.nanmax(e.region_activity) == pytest.approx(1.0)
    # a (frames,) mask reads the same; a mask with no real frame or of the wrong length is refused
    np.testing.assert_array_equal(explain_clip(model, x, mask[0]).peak_frames, e.peak_frames)
    with pytest.raises(ValueError, match="no real frame"):
        explain_clip(model, x, torch.zeros(1, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="frame_mask must be"):
        explain_clip(model, x, mask[:, :9])
