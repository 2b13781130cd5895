"""The training stages on a controlled problem: learning works and folds stay honest."""

from __future__ import annotations

import os
import sys

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


# ---------------------------------------------------------------------------- compiled stage 1
def _noise_clips(config, count, frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = config.crop_size
    return [
        ClipTensors(torch.randint(0, 256, (frames, config.num_regions, 1, h, w), generator=g, dtype=torch.uint8),
                    i % config.num_labels, config.region_labels(i % config.num_labels), f"x/{i % 4}", "x", f"c{i}",
                    str(i % 4), 0, frames // 2, frames - 1)
        for i in range(count)
    ]


def test_padded_batch_loss_is_the_real_samples_mean_with_their_gradients(tiny_config):
    """The compiled path pads the epoch's last batch; the padding must not move loss or gradients."""
    from modeling_mie import MieForVideoClassification
    from modeling_mie.modeling_mie import focal_loss, region_cnn_input
    from modeling_mie.training import padded_batches, stage1_batch_loss

    weights, counts = padded_batches(10, 4, 3, torch.device("cpu"))
    assert counts == [4, 4, 2] and weights.shape == (3, 4)
    torch.testing.assert_close(weights.sum(1), torch.full((3,), 1 / 3))  # a sample's 3 region terms share its weight
    assert weights[2, 2:].eq(0).all()

    config = MieConfig.from_dict({**tiny_config.to_dict(), "input_mode": "onset_difference", "cnn_dropout": 0.0})
    torch.manual_seed(0)
    cnn = MieForVideoClassification(config).region_cnn.train()
    clips = _noise_clips(config, 3, 4)
    frames = torch.cat([c.crops for c in clips])[:5]  # (5, R, C, H, W): 3 real samples + 2 of padding below
    firsts = torch.stack([clips[0].crops[0]] * 5)
    targets = torch.tensor([list(clips[i % 3].region_labels) for i in range(5)])
    alpha = torch.rand(config.num_region_classes) + 0.5
    w = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]) / (3 * config.num_regions)

    padded = stage1_batch_loss(cnn, config, frames, firsts, targets, w, alpha, "fp32")
    padded_grads = torch.autograd.grad(padded, list(cnn.parameters()))
    _, logits = cnn(region_cnn_input(config, frames[:3].float() / 255, firsts[:3].float() / 255))
    plain = focal_loss(logits.flatten(0, 1), targets[:3].flatten(), config.focal_gamma, alpha)
    plain_grads = torch.autograd.grad(plain, list(cnn.parameters()))
    torch.testing.assert_close(padded, plain)
    for a, b in zip(padded_grads, plain_grads):
        torch.testing.assert_close(a, b)


def test_stage1_epoch_loop_never_waits_for_the_device(monkeypatch, tiny_config):
    """No `.item()` in the loop (each is a host sync on a GPU): the epoch losses are summed as
    tensors and come back in one `.tolist()` after the last epoch."""
    from modeling_mie import MieForVideoClassification
    from modeling_mie.training import train_stage1_cnn

    clips = _noise_clips(tiny_config, 4, 5)
    model = MieForVideoClassification(tiny_config)
    calls = {"tolist": 0}
    real_tolist = torch.Tensor.tolist

    real_item = torch.Tensor.item

    def from_training():
        # only calls from the training module count: Adam reads its step counter (a CPU tensor on
        # every device) with .item(), the focal-loss weights are counted with .tolist() before the loop
        return sys._getframe(2).f_code.co_filename.endswith(f"modeling_mie{os.sep}training.py")

    def no_item(self):
        if from_training():
            raise AssertionError("Tensor.item() called in stage 1: a host sync per call on a GPU")
        return real_item(self)

    def counted_tolist(self):
        calls["tolist"] += from_training()
        return real_tolist(self)

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    schedule = TRAINING_PRESETS["fast"].updated(stage1_epochs=3, stage1_batch_size=4, stage1_frames=0)
    monkeypatch.setattr(torch.Tensor, "tolist", counted_tolist)
    report = train_stage1_cnn(model, clips, schedule, torch.Generator().manual_seed(0))
    assert calls["tolist"] == 1
    assert len(report.losses) == 3 and all(isinstance(x, float) and x > 0 for x in report.losses)


def test_compiled_stage1_trains_what_eager_stage1_trains(tiny_config):
    """`compile="default"` (torch.compile, padded last batch) against eager on a tiny fold: the same
    losses and predictions within rounding. Dropout is off, since the compiled step draws its
    dropout masks from another random stream. Compiling takes about 30 s on one CPU core."""
    from modeling_mie.training import check_compile_mode

    config = MieConfig.from_dict({**tiny_config.to_dict(), "input_mode": "onset_difference", "cnn_dropout": 0.0})
    clips = _noise_clips(config, 10, 5)
    # 8 clips x 5 frames = 40 samples: batches of 6 leave a last batch of 4, padded to 6 when compiled
    schedule = TRAINING_PRESETS["fast"].updated(stage1_epochs=2, stage1_batch_size=6, stage1_frames=0,
                                                stage2_epochs=2, num_frames=4)
    eager = train_model(config, clips[:8], schedule, seed=1, test_clips=clips[8:])
    compiled = train_model(config, clips[:8], schedule, seed=1, test_clips=clips[8:], compile="default")
    assert compiled.stage1.losses == pytest.approx(eager.stage1.losses, rel=1e-5)
    torch.testing.assert_close(compiled.probabilities, eager.probabilities, rtol=1e-4, atol=1e-5)
    for a, b in zip(compiled.model.region_cnn.parameters(), eager.model.region_cnn.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"compile must be one of \['off', 'default', 'reduce-overhead'\]; got 'fast'"):
        check_compile_mode("fast")


@pytest.mark.parametrize("input_mode", ["frames", "onset_difference"])
def test_cnn_input_gives_region_cnn_input_of_the_float_crops(tiny_config, input_mode):
    """The fewer-passes input (`cnn_input`) must be exactly what the model's `region_cnn_input` makes of
    the crops in float32, and under bf16 autocast exactly that rounded to bf16 (what autocast's cast gave
    the first convolution before); first frames are read only where the mode needs them."""
    from modeling_mie.modeling_mie import region_cnn_input
    from modeling_mie.training import _to_float, cnn_input, reads_first_frames

    tiny_config.input_mode = input_mode
    assert reads_first_frames(tiny_config) == (input_mode == "onset_difference")
    g = torch.Generator().manual_seed(0)
    shape = (6, tiny_config.num_regions, 1, *tiny_config.crop_size)
    crops = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    crops[0, 0, 0, 0, :4] = torch.tensor([0, 1, 254, 255], dtype=torch.uint8)
    firsts = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    expected = region_cnn_input(tiny_config, _to_float(crops), _to_float(firsts))
    got = cnn_input(tiny_config, crops, firsts if reads_first_frames(tiny_config) else None)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = cnn_input(tiny_config, crops, firsts if reads_first_frames(tiny_config) else None)
    if input_mode == "frames":  # divided straight into bf16: the same numbers as the cast of float32's
        assert got.dtype == torch.bfloat16 and torch.equal(got, expected.to(torch.bfloat16))
    else:  # differences stay float32 (rounding each frame first would change them)
        assert torch.equal(got, expected)
