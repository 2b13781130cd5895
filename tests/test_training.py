"""The training stages on a controlled problem: learning works and folds stay honest."""

from __future__ import annotations

import pytest
import torch

from modeling_mie import MieConfig
from modeling_mie.training import (
    TRAINING_PRESETS,
    ClipTensors,
    fold_seed,
    frame_indices,
    stage1_frame_indices,
    train_model,
)


def _moving_blob_clip(config, label, subject, frames=24, seed=0):
    """Noise crops in which the regions that answer to `label` show a blob sliding out and
    back around the apex: a local, transient movement like a micro-expression."""
    g = torch.Generator().manual_seed(seed)
    h, w = config.crop_size
    crops = (torch.rand(frames, config.num_regions, 1, h, w, generator=g) * 60 + 80).to(torch.uint8)
    apex = frames // 2
    name = config.id2label[label]
    regions = [i for i, r in enumerate(config.regions) if r["emotions"] == [name]]
    for t in range(frames):
        shift = int(round(6 * max(0.0, 1 - abs(t - apex) / 6)))
        for r in regions:
            crops[t, r, 0, h // 4 : h // 2, w // 3 + shift : w // 2 + shift] = 210
    return ClipTensors(
        crops, label, config.region_labels(label), f"toy/{subject}", "toy", f"s{subject}_c{seed}", str(subject),
        onset=0, apex=apex, offset=frames - 1,
    )


@pytest.fixture(scope="module")
def toy():
    # one region per emotion, so each class moves a different place
    config = MieConfig.from_preset(
        "fast",
        regions=[
            {"name": "a", "box": [0, 0, 80, 40], "emotions": ["negative"]},
            {"name": "b", "box": [80, 0, 160, 40], "emotions": ["positive"]},
            {"name": "c", "box": [0, 40, 80, 80], "emotions": ["surprise"]},
        ],
        canvas_size=[160, 80],
    )
    clips = [_moving_blob_clip(config, i % 3, i % 8, seed=i) for i in range(48)]
    return config, clips


def test_both_stages_learn_and_predict_the_held_out_subject(toy):
    config, clips = toy
    held_out = "toy/0"
    train = [c for c in clips if c.subject != held_out]
    test = [c for c in clips if c.subject == held_out]
    schedule = TRAINING_PRESETS["fast"].updated(stage1_epochs=3, stage2_epochs=40, stage2_batch_size=16, num_frames=16)
    out = train_model(config, train, schedule, seed=3, test_clips=test)
    assert out.stage1.losses[-1] < out.stage1.losses[0]
    assert out.stage2.losses[-1] < 0.5 * out.stage2.losses[0]
    assert held_out not in out.stage1.subjects and held_out not in out.stage2.subjects
    assert set(out.stage1.subjects) == {c.subject for c in train}
    predictions = out.probabilities.argmax(1).tolist()
    assert predictions == [c.label for c in test]
    # inverse class frequency of the training clips
    assert out.focal_alpha == pytest.approx([1.0, 1.0, 1.0], rel=0.2)


def test_training_is_deterministic_given_the_seed(toy):
    config, clips = toy
    schedule = TRAINING_PRESETS["fast"].updated(stage1_epochs=1, stage2_epochs=3, num_frames=8)
    a = train_model(config, clips[:12], schedule, seed=5, test_clips=clips[12:15])
    b = train_model(config, clips[:12], schedule, seed=5, test_clips=clips[12:15])
    assert torch.equal(a.probabilities, b.probabilities)
    assert a.stage1.losses == b.stage1.losses


def test_frame_selection():
    assert frame_indices(10, 0).tolist() == list(range(10))
    assert frame_indices(5, 8).tolist() == list(range(5))
    assert frame_indices(9, 3).tolist() == [0, 4, 8]
    config = MieConfig.from_preset("fast")
    clip = ClipTensors(torch.zeros(30, 6, 1, 40, 80, dtype=torch.uint8), 0, [0] * 6, "x/1", "x", "c", "1", 0, 20, 29)
    schedule = TRAINING_PRESETS["fast"].updated(stage1_frames=5, stage1_window=4)
    assert stage1_frame_indices(clip, schedule).tolist() == [16, 18, 20, 22, 24]
    assert config.num_regions == 6
    assert fold_seed(0, "casme2/sub01") == fold_seed(0, "casme2/sub01") != fold_seed(0, "casme2/sub02")
    with pytest.raises(ValueError, match="Unknown schedule"):
        schedule.updated(epochs=3)


@pytest.mark.parametrize("input_mode", ["frames", "onset_difference"])
def test_training_path_and_model_forward_agree(toy, input_mode):
    """What the stages train on and what the published model computes must be the same thing."""
    from modeling_mie import MieForVideoClassification
    from modeling_mie.training import predict_clips

    config, clips = toy
    config = MieConfig.from_dict({**config.to_dict(), "input_mode": input_mode})
    torch.manual_seed(0)
    model = MieForVideoClassification(config).eval()
    model.temporal.fit_feature_statistics(torch.rand(30, config.num_regions, config.region_feature_size))
    clip = clips[5]
    via_training = predict_clips(model, [clip], num_frames=10)
    idx = torch.from_numpy(frame_indices(clip.crops.shape[0], 10))
    with torch.no_grad():
        via_forward = model(pixel_values=clip.crops[idx].float().div(255).unsqueeze(0)).logits.softmax(-1)
    torch.testing.assert_close(via_training, via_forward, rtol=1e-5, atol=1e-6)
