"""Several folds' stage 1 as one stacked model trains each fold as it trains alone."""

from __future__ import annotations

import pytest
import torch

from modeling_mie.stacked import (
    StackedAdam,
    stack_region_cnns,
    stacked_features,
    start_folds,
    train_folds,
    train_stage1_stacked,
    unstack_region_cnns,
)
from modeling_mie.training import (
    ClipTensors,
    TrainingSchedule,
    extract_features,
    start_fold,
    train_model,
    train_stage1_cnn,
)


def _clips(config, count=14, seed=0):
    """Noise clips of uneven lengths over 5 subjects (so folds have uneven frame counts)."""
    g = torch.Generator().manual_seed(seed)
    h, w = config.crop_size
    clips = []
    for i in range(count):
        frames = 4 + i % 5
        crops = (torch.rand(frames, config.num_regions, config.num_channels, h, w, generator=g) * 255).to(torch.uint8)
        label = i % config.num_labels
        clips.append(ClipTensors(
            crops, label, config.region_labels(label), f"toy/{i % 5}", "toy", f"c{i}", str(i % 5),
            onset=0, apex=frames // 2, offset=frames - 1,
        ))
    return clips


def _folds(clips, subjects, base_seed=3):
    return [
        ([c for c in clips if c.subject != s], [c for c in clips if c.subject == s], base_seed + i)
        for i, s in enumerate(subjects)
    ]


SCHEDULE = TrainingSchedule(
    stage1_epochs=2, stage1_batch_size=5, stage1_frames=0, stage2_epochs=2, stage2_batch_size=5, num_frames=4
)


def test_stack_and_unstack_round_trip(tiny_config):
    models = [start_fold(tiny_config, _clips(tiny_config)[:3], seed, torch.device("cpu"))[0] for seed in (1, 2, 3)]
    models[0].region_cnn.chunk_frames = 5  # what prepare_model sets for a device: the stack keeps it
    stacked = stack_region_cnns([m.region_cnn for m in models], tiny_config)
    assert stacked.num_regions == 3 * tiny_config.num_regions and stacked.chunk_frames == 5
    r = tiny_config.num_regions
    torch.testing.assert_close(stacked.conv1.weight[r : 2 * r], models[1].region_cnn.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(stacked.head.bias[2 * r :], models[2].region_cnn.head.bias, rtol=0, atol=0)
    with torch.no_grad():
        for p in stacked.parameters():
            p.add_(1.0)
    before = models[0].region_cnn.fc1.weight.clone()
    unstack_region_cnns(stacked, [m.region_cnn for m in models])
    torch.testing.assert_close(models[0].region_cnn.fc1.weight, before + 1.0, rtol=0, atol=0)


def test_stacked_adam_is_adam_per_fold_and_skips_inactive_folds():
    """All folds active: torch.optim.Adam's update. A fold that sits out keeps weights, moments
    and step count: its next update is the one it would have made without the skipped step."""
    torch.manual_seed(0)
    folds, regions = 3, 2
    start = torch.randn(folds * regions, 4, 5)
    grads = [torch.randn(folds * regions, 4, 5) for _ in range(4)]

    def reference(k, steps):  # fold k alone, with its own gradients at the given steps
        p = torch.nn.Parameter(start[k * regions : (k + 1) * regions].clone())
        opt = torch.optim.Adam([p], lr=0.01, weight_decay=0.1)
        for i in steps:
            p.grad = grads[i][k * regions : (k + 1) * regions].clone()
            opt.step()
        return p.detach()

    actives = [[True, True, True], [True, False, True], [True, True, False], [True, True, True]]
    results = []
    for told in (False, True):  # told: the caller says when every fold is active (the in-place update)
        p = torch.nn.Parameter(start.clone())
        opt = StackedAdam([p], folds, lr=0.01, weight_decay=0.1)
        for i, active in enumerate(actives):
            p.grad = grads[i].clone()
            opt.step(torch.tensor(active), every=told and all(active))
        for k in range(folds):
            steps = [i for i, active in enumerate(actives) if active[k]]
            torch.testing.assert_close(p.detach()[k * regions : (k + 1) * regions], reference(k, steps),
                                       rtol=1e-6, atol=1e-7)
        assert opt.steps.tolist() == [4, 3, 3]
        results.append((p.detach().clone(), opt.exp_avg[0].clone(), opt.exp_avg_sq[0].clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)  # the same numbers either way
    with pytest.raises(ValueError, match="3 folds"):
        opt.step(torch.tensor([True]))


@pytest.mark.parametrize("neutral_onset", [False, True])
def test_stacked_stage1_trains_each_fold_as_alone(tiny_config, neutral_onset):
    """Three folds of uneven sizes (so their epochs have different numbers of batches and partial
    last batches), dropout on: each fold's weights and losses after stage 1 are those of
    `train_stage1_cnn` on that fold alone, to rounding."""
    assert tiny_config.cnn_dropout > 0
    clips = _clips(tiny_config)
    folds = _folds(clips, ["toy/0", "toy/2", "toy/4"])
    schedule = SCHEDULE.updated(stage1_neutral_onset=neutral_onset)
    cpu = torch.device("cpu")
    alone = []
    for train, _, seed in folds:
        model, generator = start_fold(tiny_config, train, seed, cpu)
        report = train_stage1_cnn(model, train, schedule, generator)
        alone.append((model, report))
    models, generators, dropout = start_folds(tiny_config, [(train, seed) for train, _, seed in folds], cpu)
    steps = {-(-report.samples // schedule.stage1_batch_size) for _, report in alone}
    assert len(steps) > 1  # uneven folds: some sit out the last steps of every epoch
    reports = train_stage1_stacked(models, [f[0] for f in folds], schedule, generators, dropout)
    for (model_alone, report_alone), model, report in zip(alone, models, reports):
        assert report.samples == report_alone.samples
        assert report.subjects == report_alone.subjects
        assert report.losses == pytest.approx(report_alone.losses, rel=1e-5)
        for (name, a), b in zip(model_alone.region_cnn.named_parameters(), model.region_cnn.parameters()):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    # the folds did not all end alike: each fold really trained on its own data
    assert reports[0].losses != reports[1].losses


def test_train_folds_equals_train_model_fold_by_fold(tiny_config):
    clips = _clips(tiny_config, count=15)
    folds = _folds(clips, ["toy/1", "toy/3"])
    outcomes = train_folds(tiny_config, folds, SCHEDULE, report_epochs=True)
    for (train, test, seed), outcome in zip(folds, outcomes):
        alone = train_model(tiny_config, train, SCHEDULE, seed, test_clips=test, report_epochs=True)
        assert outcome.focal_alpha == alone.focal_alpha
        assert outcome.stage2.losses == pytest.approx(alone.stage2.losses, rel=1e-4)
        torch.testing.assert_close(outcome.probabilities, alone.probabilities, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(outcome.epoch_probabilities, alone.epoch_probabilities, rtol=1e-4, atol=1e-5)
        assert outcome.probabilities.shape == (len(test), tiny_config.num_labels)


@pytest.mark.parametrize("num_frames", [0, 5])
def test_features_do_not_depend_on_how_frames_are_sliced(tiny_config, num_frames):
    """Slices of 3 frames cut clips in two: each frame must still take its own clip's onset."""
    tiny_config.input_mode = "onset_difference"  # every frame minus its clip's first
    clips = _clips(tiny_config)
    model, _ = start_fold(tiny_config, clips, 0, torch.device("cpu"))
    whole = extract_features(model, clips, num_frames)
    sliced = extract_features(model, clips, num_frames, batch_frames=3)
    alone = [extract_features(model, [c], num_frames)[0] for c in clips]
    assert [f.shape[0] for f in whole] == [min(c.crops.shape[0], num_frames or 99) for c in clips]
    for a, b, c in zip(whole, sliced, alone):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)


def test_stacked_features_are_each_folds_own(tiny_config):
    """One pass of the stacked CNN gives fold k what fold k's own CNN gives, for its own clips
    (uneven sets, shared clips, slices that cut clips), after a stacked stage 1."""
    tiny_config.input_mode = "onset_difference"
    clips = _clips(tiny_config, count=15)
    folds = _folds(clips, ["toy/0", "toy/2", "toy/4"])
    models, generators, dropout = start_folds(tiny_config, [(train, seed) for train, _, seed in folds], torch.device("cpu"))
    train_stage1_stacked(models, [f[0] for f in folds], SCHEDULE, generators, dropout)
    sets = [f[1] + f[0] for f in folds]
    stacked = stacked_features(models, sets, num_frames=4, batch_frames=7)
    assert [len(s) for s in stacked] == [len(s) for s in sets]
    for model, clip_set, features in zip(models, sets, stacked):
        for own, theirs in zip(extract_features(model, clip_set, 4), features):
            torch.testing.assert_close(theirs, own, rtol=1e-5, atol=1e-6)
    # the folds' CNNs differ, so a mix-up of folds cannot pass
    assert not torch.allclose(stacked[0][0], extract_features(models[1], sets[0][:1], 4)[0])
    with pytest.raises(ValueError, match="one clip set per model"):
        stacked_features(models, sets[:2], 4)


def test_stacked_stage1_refuses_mismatched_inputs(tiny_config):
    model, generator = start_fold(tiny_config, _clips(tiny_config)[:3], 0, torch.device("cpu"))
    with pytest.raises(ValueError, match="one clip set"):
        train_stage1_stacked([model], [], SCHEDULE, [generator], [generator])
    with pytest.raises(ValueError, match="at least one training clip"):
        train_stage1_stacked([model], [[]], SCHEDULE, [generator], [torch.Generator()])


def test_compiled_stacked_step_trains_what_the_eager_one_trains(tiny_config):
    """compile="default" (torch.compile of the stacked step; dropout masks are its inputs, drawn
    outside it) against eager on the same folds: the same losses and weights, to rounding."""
    clips = _clips(tiny_config)
    folds = _folds(clips, ["toy/0", "toy/4"])
    cpu = torch.device("cpu")
    results = {}
    for mode in ("off", "default"):
        models, generators, dropout = start_folds(tiny_config, [(train, seed) for train, _, seed in folds], cpu)
        reports = train_stage1_stacked(models, [f[0] for f in folds], SCHEDULE, generators, dropout, compile=mode)
        results[mode] = (reports, models)
    (eager, eager_models), (compiled, compiled_models) = results["off"], results["default"]
    for a, b in zip(eager, compiled):
        assert b.losses == pytest.approx(a.losses, rel=1e-5)
    for a, b in zip(eager_models, compiled_models):
        torch.testing.assert_close(b.region_cnn.fc2.weight, a.region_cnn.fc2.weight, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="compile must be one of"):
        train_stage1_stacked(eager_models[:1], [folds[0][0]], SCHEDULE, generators[:1], dropout[:1], compile="max")


def test_auto_stacks_on_cuda_only_in_even_groups():
    """--stack-folds auto: fold by fold on the CPU; on CUDA groups of at most 17, as even as they come."""
    from modeling_mie.stacked import CUDA_STACK_FOLDS, auto_stack_folds

    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object only: no GPU needed
    assert auto_stack_folds(68, cpu) == 1
    assert CUDA_STACK_FOLDS == 17
    assert {n: auto_stack_folds(n, cuda) for n in (1, 3, 17, 18, 26, 35, 68)} == {
        1: 1, 3: 3, 17: 17, 18: 9, 26: 13, 35: 12, 68: 17,
    }
