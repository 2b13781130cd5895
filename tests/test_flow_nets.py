"""The flow CNN baselines (modeling_mie.baselines.flownets): the 28 x 28 input of a known flow,
each net's output shape and parameter count against the hand count, each net learning synthetic
facial motions across held-out subjects, the per-epoch report not changing training, the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeling_mie import MieInputError
from modeling_mie.baselines import (
    FLOW_NETS,
    INPUT_SIZE,
    PAPER_SCHEDULES,
    FlowNetSchedule,
    STSTNet,
    build_flow_net,
    flow_net_input,
    train_flow_net,
)
from modeling_mie.baselines.flownets import count_parameters, normalise_inputs

CROP = 128  # the face crop the flows are computed on (DEFAULT_CROP_SIZE)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for these trainings (the suite shares two cores), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------- input
def test_input_of_a_uniform_shift_is_the_shift_in_small_pixels_and_no_strain():
    flow = np.zeros((CROP, CROP, 2), np.float32)
    flow[..., 0] = 2.0  # 2 px to the right everywhere
    x = flow_net_input(flow)
    assert x.shape == (3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 2.0 * 28 / 128, rtol=1e-6)  # 0.4375 px of the 28 x 28 image
    np.testing.assert_allclose(x[1], 0.0, atol=1e-7)
    np.testing.assert_allclose(x[2], 0.0, atol=1e-7)  # a translation has no strain


def test_input_scales_u_by_width_and_v_by_height_and_keeps_strain_unscaled():
    # a 96 (high) x 128 (wide) crop: u = 2 px -> 2 * 28 / 128, v = 3 px -> 3 * 28 / 96
    flow = np.zeros((96, CROP, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, 3.0
    x = flow_net_input(flow)
    np.testing.assert_allclose(x[0], 2.0 * 28 / 128, rtol=1e-6)
    np.testing.assert_allclose(x[1], 3.0 * 28 / 96, rtol=1e-6)
    # a 5 % stretch u = 0.05 x has strain 0.05 at any resolution: strain is a ratio, not pixels
    stretch = np.zeros((CROP, CROP, 2), np.float32)
    stretch[..., 0] = 0.05 * np.arange(CROP, dtype=np.float32)[None, :]
    x = flow_net_input(stretch)
    np.testing.assert_allclose(x[2], 0.05, rtol=1e-4)
    # u is area-averaged: the mean displacement is kept, in small pixels
    assert x[0].mean() == pytest.approx(0.05 * (CROP - 1) / 2 * 28 / 128, rel=1e-4)


def test_minmax_normalisation_maps_each_channel_of_each_sample_to_0_1():
    rng = np.random.default_rng(0)
    inputs = (rng.normal(size=(4, 3, 28, 28)) * [[[[1.0]], [[5.0]], [[0.1]]]]).astype(np.float32)
    inputs[2, 1] = 7.0  # a constant channel becomes 0
    out = normalise_inputs(inputs, "minmax")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.min(axis=(2, 3))[[0, 1, 3]], 0.0, atol=1e-7)
    np.testing.assert_allclose(out.max(axis=(2, 3))[[0, 1, 3]], 1.0, atol=1e-6)
    np.testing.assert_array_equal(out[2, 1], 0.0)
    np.testing.assert_allclose(out[2, 0].max(), 1.0, atol=1e-6)
    np.testing.assert_array_equal(normalise_inputs(inputs, "none"), inputs)


# ----------------------------------------------------------------------------------------- nets
# Hand counts (3 classes), as in each class's docstring:
#   OFF-ApexNet, per stream conv 5*5*1*6+6 = 156, conv 5*5*6*16+16 = 2,416 -> x2 = 5,144;
#     fc1 (2*16*7*7 = 1568)*1024+1024 = 1,606,656; fc2 1024*1024+1024 = 1,049,600; head 1024*3+3 = 3,075
#     -> 2,664,475.
#   STSTNet, convs (3*3*3+1)*(3+5+8) = 448; BatchNorm 2*16 = 32; fc (16*5*5 = 400)*3+3 = 1,203 -> 1,683.
#   Dual-Inception, per stream module 1 (in 1, 6 per branch): 12 + (12+330) + (12+906) + 12 = 1,284;
#     module 2 (in 24, 16 per branch): 400 + (400+2,320) + (400+6,416) + 400 = 10,336 -> x2 = 23,240;
#     fc1 (2*64*7*7 = 6272)*1024+1024 = 6,423,552; head 3,075 -> 6,449,867.
PARAMETERS = {"offapexnet": 2_664_475, "ststnet": 1_683, "dual_inception": 6_449_867}
HIDDEN = {"offapexnet": 1024, "ststnet": 400, "dual_inception": 1024}  # inputs of the last layer


@pytest.mark.parametrize("name", FLOW_NETS)
def test_each_net_gives_logits_and_has_the_documented_parameter_count(name):
    torch.manual_seed(0)
    net = build_flow_net(name)
    x = torch.rand(5, 3, INPUT_SIZE, INPUT_SIZE)
    assert net(x).shape == (5, 3)
    assert count_parameters(net) == PARAMETERS[name]
    # an odd class count changes only the last layer, so sizes are not hard-coded to 3
    five = build_flow_net(name, num_classes=5)
    assert five(x).shape == (5, 5)
    assert count_parameters(five) == PARAMETERS[name] + 2 * (HIDDEN[name] + 1)
    # every parameter takes part: each receives a gradient
    five(x).logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in five.parameters())


@pytest.mark.parametrize(("name", "reads"), [("offapexnet", {0, 1}), ("ststnet", {0, 1, 2}), ("dual_inception", {0, 1})])
def test_each_net_reads_the_channels_of_its_paper(name, reads):
    torch.manual_seed(0)
    net = build_flow_net(name).eval()
    x = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)
    base = net(x)
    for channel in range(3):
        changed = x.clone()
        changed[:, channel] = torch.rand(2, INPUT_SIZE, INPUT_SIZE)
        assert (not torch.allclose(net(changed), base)) == (channel in reads), channel


def test_ststnet_one_convolution_is_the_three_streams_of_the_paper():
    # The original runs three conv -> ReLU -> BatchNorm -> max-pool streams of 3, 5 and 8 filters
    # and concatenates them; rebuilt from the slices of the one 16-filter convolution, they match.
    torch.manual_seed(0)
    net = STSTNet().eval()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        net.norm1.running_mean.uniform_(-0.5, 0.5)
        net.norm1.running_var.uniform_(0.5, 2.0)
    x = torch.rand(4, 3, INPUT_SIZE, INPUT_SIZE)
    streams, start = [], 0
    for width in STSTNet.STREAM_WIDTHS:
        part = slice(start, start + width)
        start += width
        y = torch.nn.functional.conv2d(x, net.conv1.weight[part], net.conv1.bias[part], padding=2).relu()
        y = torch.nn.functional.batch_norm(
            y, net.norm1.running_mean[part], net.norm1.running_var[part], net.norm1.weight[part], net.norm1.bias[part]
        )
        streams.append(torch.nn.functional.max_pool2d(y, 3, stride=3, padding=1))
    reference = net.head(torch.nn.functional.avg_pool2d(torch.cat(streams, 1), 2).flatten(1))
    torch.testing.assert_close(net(x), reference, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------- learning
def _blob(cx: float, cy: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)).astype(np.float32)


def _synthetic_motions(subjects: int, clips_per_class: int, seed: int):
    """Onset -> apex flows (128 x 128, px) of three facial motions, per "subject":
    0 negative, the brows lowered and drawn together (AU4); 1 positive, the lip corners pulled up
    and out (AU12); 2 surprise, the brows raised (AU1+2). Each subject has its own face position
    and size in the crop and its own small head drift; each clip a random amplitude (0.6-1.5 px)
    and per-pixel noise. Returns (inputs (N, 3, 28, 28), labels (N,), subjects (N,))."""
    rng = np.random.default_rng(seed)
    inputs, labels, owners = [], [], []
    for subject in range(subjects):
        dx, dy = rng.uniform(-6, 6, 2)
        scale = rng.uniform(0.9, 1.1)
        drift = rng.normal(0.0, 0.15, 2)

        def at(fx: float, fy: float, dx=dx, dy=dy, scale=scale) -> tuple[float, float]:
            return CROP / 2 + (fx - 0.5) * CROP * scale + dx, CROP / 2 + (fy - 0.5) * CROP * scale + dy

        for label in range(3):
            for _ in range(clips_per_class):
                amplitude = rng.uniform(0.6, 1.5)
                flow = rng.normal(0.0, 0.12, (CROP, CROP, 2)).astype(np.float32) + drift.astype(np.float32)
                for side in (-1, 1):  # left and right half of the face (side -1 is image-left)
                    if label == 1:
                        b = amplitude * _blob(*at(0.5 + 0.18 * side, 0.75), 7 * scale)
                        flow[..., 0] += side * b  # outward
                        flow[..., 1] -= b  # up
                    else:
                        b = amplitude * _blob(*at(0.5 + 0.2 * side, 0.28), 8 * scale)
                        if label == 2:
                            flow[..., 1] -= b  # brows up
                        else:
                            flow[..., 0] -= 0.8 * side * b  # inward
                            flow[..., 1] += 0.6 * b  # down
                inputs.append(flow_net_input(flow))
                labels.append(label)
                owners.append(subject)
    return np.stack(inputs), np.array(labels), np.array(owners)


@pytest.fixture(scope="module")
def motions():
    """Nine subjects x 3 classes x 2 clips; subjects 0-5 train (36 rows), 6-8 are held out (18)."""
    inputs, labels, subjects = _synthetic_motions(subjects=9, clips_per_class=2, seed=3)
    train = subjects < 6
    return inputs[train], labels[train], inputs[~train], labels[~train]


# Short schedules (the papers' would take minutes): enough for these clean motions.
SHORT = {
    "offapexnet": FlowNetSchedule(epochs=15, batch_size=8, lr=1e-3),
    "ststnet": FlowNetSchedule(epochs=60, batch_size=8, lr=1e-2),
    "dual_inception": FlowNetSchedule(epochs=10, batch_size=8, lr=1e-3),
}


@pytest.mark.parametrize("name", FLOW_NETS)
def test_each_net_learns_facial_motions_of_held_out_subjects(name, motions):
    train_x, train_y, test_x, test_y = motions
    outcome = train_flow_net(name, train_x, train_y, test_x, seed=0, schedule=SHORT[name])
    assert outcome.probabilities.shape == (len(test_y), 3)
    np.testing.assert_allclose(outcome.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float((outcome.probabilities.argmax(axis=1) == test_y).mean())
    assert accuracy >= 0.75, (name, accuracy)  # chance is 1/3
    assert len(outcome.losses) == SHORT[name].epochs
    assert outcome.losses[-1] < outcome.losses[0]
    assert outcome.epoch_probabilities == []


@pytest.mark.parametrize("name", ["ststnet", "offapexnet"])  # BatchNorm and dropout; dropout
def test_reporting_every_epoch_does_not_change_training(name, motions):
    train_x, train_y, test_x, _ = motions
    schedule = FlowNetSchedule(epochs=3, batch_size=8, lr=1e-3)
    torch.manual_seed(123)
    before = torch.rand(3)
    plain = train_flow_net(name, train_x, train_y, test_x, seed=7, schedule=schedule)
    after = torch.rand(3)
    reported = train_flow_net(name, train_x, train_y, test_x, seed=7, schedule=schedule, report_epochs=True)
    np.testing.assert_array_equal(reported.probabilities, plain.probabilities)
    assert reported.losses == plain.losses
    assert len(reported.epoch_probabilities) == 3
    assert all(p.shape == (len(test_x), 3) for p in reported.epoch_probabilities)
    np.testing.assert_array_equal(reported.epoch_probabilities[-1], reported.probabilities)
    assert not np.array_equal(reported.epoch_probabilities[0], reported.probabilities)
    # another seed trains another net; the caller's own random stream was not moved
    other = train_flow_net(name, train_x, train_y, test_x, seed=8, schedule=schedule)
    assert not np.array_equal(other.probabilities, plain.probabilities)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), before) and not torch.equal(before, after)


def test_paper_schedules_cover_every_net():
    assert set(PAPER_SCHEDULES) == set(FLOW_NETS)
    assert PAPER_SCHEDULES["ststnet"] == FlowNetSchedule(epochs=800, batch_size=256, lr=5e-5)
    assert PAPER_SCHEDULES["dual_inception"] == FlowNetSchedule(epochs=40, batch_size=3, lr=1e-4)
    assert PAPER_SCHEDULES["offapexnet"].lr == 1e-4


# --------------------------------------------------------------------------------------- errors
def test_errors_say_what_was_wrong():
    rows = np.zeros((4, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(MieInputError, match="Unknown flow net 'lenet'.*offapexnet, ststnet, dual_inception"):
        build_flow_net("lenet")
    with pytest.raises(MieInputError, match="Unknown flow net"):
        train_flow_net("lenet", rows, labels, rows, seed=0)
    with pytest.raises(MieInputError, match=r"\(height, width, 2\).*\(128, 128, 3\)"):
        flow_net_input(np.zeros((128, 128, 3), np.float32))
    with pytest.raises(MieInputError, match="only shrinks"):
        flow_net_input(np.zeros((20, 128, 2), np.float32))
    with pytest.raises(MieInputError, match=r"train_inputs must be \(rows, 3, 28, 28\).*\(4, 2, 28, 28\)"):
        train_flow_net("ststnet", rows[:, :2], labels, rows, seed=0)
    with pytest.raises(MieInputError, match=r"\(batch, 3, 28, 28\)"):
        build_flow_net("offapexnet")(torch.zeros(1, 3, 32, 32))
    with pytest.raises(MieInputError, match=r"at least two classes.*\[1\]"):
        train_flow_net("offapexnet", rows, np.ones(4, int), rows, seed=0)
    with pytest.raises(MieInputError, match="0 .. 2"):
        train_flow_net("offapexnet", rows, np.array([0, 1, 2, 3]), rows, seed=0)
    nan = rows.copy()
    nan[1, 0, 3, 3] = np.nan
    with pytest.raises(MieInputError, match="train_inputs holds NaN"):
        train_flow_net("offapexnet", nan, labels, rows, seed=0)
    with pytest.raises(MieInputError, match="test_inputs holds NaN"):
        train_flow_net("offapexnet", rows, labels, nan, seed=0)
    flow = np.zeros((128, 128, 2), np.float32)
    flow[5, 5, 1] = np.inf
    with pytest.raises(MieInputError, match="NaN or infinite"):
        flow_net_input(flow)
    with pytest.raises(MieInputError, match="normalise must be one of minmax, none"):
        train_flow_net("offapexnet", rows, labels, rows, seed=0, normalise="zscore")
    with pytest.raises(MieInputError, match="epochs must be an integer >= 1"):
        FlowNetSchedule(epochs=0, batch_size=8, lr=1e-3)
    with pytest.raises(MieInputError, match="lr must be a positive number"):
        FlowNetSchedule(epochs=1, batch_size=8, lr=-1.0)
