"""Cases of tests/test_fused_conv.py, run in a subprocess with TRITON_INTERPRET=1 (Triton must see the
variable before it is first imported, so not in the test process): python tests/fused_conv_cases.py CASE"""

from __future__ import annotations

import os
import sys
from pathlib import Path

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest
import torch
import torch.nn.functional as F

from modeling_mie import (
    MieConfig,
    MieForVideoClassification,
    devices,
    fused_conv,
    fused_inception,
)
from modeling_mie.modeling_mie import MieRegionConv2d


def reference(x, weight, bias):
    g, _, _, k, _ = weight.shape
    return F.relu(F.max_pool2d(F.conv2d(x, weight.flatten(0, 1), bias.flatten(), padding=k // 2, groups=g), 2))


def layer(groups: int, filters: int = 4, channels: int = 1, kernel: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    weight = (torch.randn(groups, filters, channels, kernel, kernel) * 0.2).requires_grad_()
    bias = (torch.randn(groups, filters) * 0.5).requires_grad_()
    return weight, bias


def check(x, weight, bias, rtol=1e-4, atol=1e-4):
    """Output and every gradient (input's too where it needs one) of the fused layer against PyTorch's."""
    out = fused_conv.conv_pool_relu(x, weight, bias)
    expected = reference(x, weight, bias)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert (expected == 0).any() and (expected > 0).any()  # the ReLU cuts some values, not all
    grad = torch.randn_like(expected)
    inputs = (weight, bias, x) if x.requires_grad else (weight, bias)
    got = torch.autograd.grad((out * grad).sum(), inputs)
    want = torch.autograd.grad((expected * grad).sum(), inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
        assert b.abs().max() > 0.5  # gradients that a wrong routing would change
    return out


def case_conv1_forward_and_gradients():
    # one channel per group, 5 x 5; odd height and width (the last row and column are dropped, as
    # F.max_pool2d does), several tiles across, frames partly black so that conv1 is the bias there
    # and the window ties
    weight, bias = layer(groups=3)
    x = torch.randn(2, 3, 19, 37)
    x[0, 1, :, :20] = 0.0
    assert check(x, weight, bias).shape == (2, 12, 9, 18)


def case_conv2_forward_and_all_gradients():
    # 4 channels -> 8 filters per group, 3 x 3, as conv2; its input needs a gradient, odd sizes
    weight, bias = layer(groups=3, filters=8, channels=4, kernel=3, seed=1)
    x = torch.randn(2, 12, 13, 21).relu().requires_grad_()  # post-ReLU input, as conv1's output
    assert check(x, weight, bias).shape == (2, 24, 6, 10)
    chosen = fused_conv.chosen_configs()  # what a GPU run reports: each kernel's autotuned tile
    assert set(chosen) == {"forward", "weight grad", "input grad"} and all("BH" in c for c in chosen.values())


def case_other_kernel_sizes_and_filter_counts():
    for filters, channels, kernel in ((2, 1, 3), (8, 1, 7), (4, 3, 5)):  # (4, 3, 5): the flow preset's conv1
        weight, bias = layer(groups=2, filters=filters, channels=channels, kernel=kernel, seed=filters)
        check(torch.randn(1, 2 * channels, 12, 18, requires_grad=channels > 1), weight, bias)


def case_bf16_autocast_reads_and_writes_bf16():
    weight, bias = layer(groups=2)
    x = torch.randint(-40, 40, (2, 2, 16, 20)).float()  # onset differences: integers, exact in bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused_conv.conv_pool_relu(x, weight, bias)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference(x, weight, bias), rtol=1e-2, atol=1e-2)
    out.float().sum().backward()
    assert weight.grad.dtype == torch.float32 and weight.grad.abs().max() > 0


def case_torch_compile_traces_both_layers():
    # the custom operators' shape functions let torch.compile (and so CUDA graphs) take the whole
    # graph, forward and backward, with the kernels as opaque calls
    w1, b1 = layer(groups=2)
    w2, b2 = layer(groups=2, filters=8, channels=4, kernel=3, seed=1)

    def loss(x, stem):
        return stem(stem(x, w1, b1), w2, b2).square().mean()

    x = torch.randn(2, 2, 16, 24)
    compiled = torch.compile(loss, fullgraph=True)
    got = compiled(x, fused_conv.conv_pool_relu)
    want = loss(x, reference)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(torch.autograd.grad(got, (w1, b1, w2, b2)), torch.autograd.grad(want, (w1, b1, w2, b2))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def case_opcheck_passes():
    # PyTorch's own checks of a custom operator: schema, autograd registration, shape function,
    # dynamic shapes under AOT autograd; for conv2's shape (input gradient) and conv1's
    w2, b2 = layer(groups=2, filters=8, channels=4, kernel=3)
    w1, b1 = layer(groups=2)
    for args in ((torch.randn(1, 8, 8, 10, requires_grad=True), w2, b2), (torch.randn(1, 2, 8, 10), w1, b1)):
        results = torch.library.opcheck(torch.ops.mie.conv_pool_relu.default, args)
        assert set(results.values()) == {"SUCCESS"}, results


def _inception(groups: int = 2, channels: int = 8, filters: int = 16, kernels=(1, 3, 5, 7)):
    torch.manual_seed(2)
    branches = [MieRegionConv2d(groups, channels, filters, k) for k in kernels]
    for b in branches:
        b.bias.data.normal_(0, 0.3)  # some values cut by the ReLU, some not
    return branches


def _inception_reference(x, branches):
    n, g = x.shape[0], branches[0].num_regions
    return torch.cat([F.relu(b(x)).mean(dim=(2, 3)).view(n, g, -1) for b in branches], dim=2).view(n, -1)


def _check_inception(x, branches):
    got = fused_inception.inception_pool(x, branches)
    want = _inception_reference(x, branches)
    assert got.shape == want.shape == (x.shape[0], branches[0].num_regions * sum(b.out_channels for b in branches))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert (want == 0).any() and (want > 0).any()  # the ReLU cuts some maps whole, not all
    grad = torch.randn_like(want)
    params = [x] + [p for b in branches for p in (b.weight, b.bias)]
    for a, b in zip(torch.autograd.grad((got * grad).sum(), params), torch.autograd.grad((want * grad).sum(), params)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
        assert b.abs().max() > 0
    return want


def case_inception_forward_and_all_gradients():
    # the four branches, ReLU and mean in the fused kernels: the pooled features, the input's and
    # every branch's weight and bias gradients; odd sizes, so tiles end inside rows
    branches = _inception()
    x = torch.rand(2, 16, 7, 11, requires_grad=True)
    want = _check_inception(x, branches)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # read in bf16, accumulated in float32
        low = fused_inception.inception_pool(x, branches)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, want, rtol=0.05, atol=0.02)
    assert set(fused_inception.chosen_configs()) == {"forward", "input grad", "weight grad"}
    weight, bias = (t.detach() for t in fused_inception.packed_weight(branches))
    assert weight.shape == (2, 1 + 5 + 13 + 25, 16, 16)  # pairs of taps of 1x1, 3x3, 5x5, 7x7; 2 x 8 channels
    results = torch.library.opcheck(torch.ops.mie.inception_pool.default, (x, weight, bias, 8, [1, 5, 13, 25], [0, 1, 2, 3]))
    assert set(results.values()) == {"SUCCESS"}, results
    # branches out of order of kernel size, fewer of them, other filter and channel counts: three
    # channels (slots padded to 8), and twelve (two taps of 16 slots)
    for channels, filters, kernels in ((3, 16, (5, 1, 3)), (12, 32, (3, 7))):
        branches = _inception(groups=3, channels=channels, filters=filters, kernels=kernels)
        _check_inception(torch.rand(2, 3 * channels, 6, 9, requires_grad=True), branches)
    with pytest.raises(ValueError, match="1 to 4 branches"):
        fused_inception.inception_pool(x, _inception(kernels=(1, 3, 5, 7, 9)))
    with pytest.raises(ValueError, match="power-of-two number of filters"):
        fused_inception.inception_pool(x, _inception(filters=24))


def case_every_autotuning_configuration_gives_the_same_results():
    # on a GPU autotuning may choose any configuration (tile, warps) of each kernel, and it runs the
    # others on the same buffers while it times them; the interpreter runs the first alone unless
    # told, so each is run here in turn on shapes a tile of every size ends inside
    tuners = [*fused_conv._kernels()[1:], *fused_inception._kernels()[1:]]
    rounds = max(len(t.every_config) for t in tuners)
    assert rounds > 1
    weight1, bias1 = layer(groups=2)
    weight2, bias2 = layer(groups=2, filters=8, channels=4, kernel=3, seed=1)
    branches = _inception()
    for i in range(rounds):
        for t in tuners:
            t.configs = [t.every_config[min(i, len(t.every_config) - 1)]]
        check(torch.randn(1, 2, 19, 37), weight1, bias1)
        check(torch.randn(1, 8, 13, 21).relu().requires_grad_(), weight2, bias2)
        _check_inception(torch.rand(1, 16, 13, 23, requires_grad=True), branches)  # 299 pixels: 5, 3, 2 tiles


def case_bad_shapes_are_refused_in_words():
    weight, bias = layer(groups=2)
    with pytest.raises(ValueError, match="groups x 1 channels"):
        fused_conv.conv_pool_relu(torch.randn(1, 3, 8, 8), weight, bias)  # 3 channels for 2 groups of 1
    three, _ = layer(groups=2, filters=3)
    with pytest.raises(ValueError, match="power-of-two"):
        fused_conv.conv_pool_relu(torch.randn(1, 2, 8, 8), three, bias[:, :3])


def case_region_cnn_and_stacked_folds_run_it_with_the_same_results():
    from modeling_mie.stacked import stack_region_cnns

    config = MieConfig.from_preset("fast")
    torch.manual_seed(0)
    cnn = MieForVideoClassification(config).region_cnn.train()
    cnn.dropout.p = 0.0
    x = torch.rand(2, config.num_regions, 1, 12, 20) * 255  # small crops: the interpreter is slow

    def run():
        cnn.zero_grad()
        features, logits = cnn(x)
        logits.square().sum().backward()
        with torch.no_grad():
            inference = cnn(x)[0]
        return [features.detach(), inference] + [p.grad.clone() for p in cnn.parameters()]

    devices.configure_region_cnn(cnn, torch.device("cuda"))  # attributes only; cuDNN's three operations
    assert cnn.conv_pool_relu is None
    plain = run()
    devices.configure_region_cnn(cnn, torch.device("cuda"), conv_kernel="triton")
    assert cnn.conv_pool_relu is fused_conv.conv_pool_relu and cnn.inception_pool is None
    fused = run()
    devices.configure_region_cnn(cnn, torch.device("cuda"), conv_kernel="triton", inception_kernel="triton")
    assert cnn.inception_pool is fused_inception.inception_pool
    all_fused = run()
    for a, b, c in zip(fused, all_fused, plain):  # float32 sums in another order: relative to the largest
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5 * float(c.abs().max()) + 1e-6)
        torch.testing.assert_close(b, c, rtol=1e-4, atol=1e-5 * float(c.abs().max()) + 1e-6)
    names = [n for n, _ in cnn.named_parameters()]
    for name in ("conv1.weight", "conv2.weight", "inception.3.weight"):  # gradients through every fused kernel
        assert plain[2 + names.index(name)].abs().max() > 0
    stacked = stack_region_cnns([cnn, cnn], config)
    assert stacked.conv_pool_relu is fused_conv.conv_pool_relu and stacked.inception_pool is fused_inception.inception_pool
    devices.configure_region_cnn(cnn, torch.device("cpu"), conv_kernel="triton", inception_kernel="triton")
    assert cnn.conv_pool_relu is None and cnn.inception_pool is None  # the CPU: PyTorch's


if __name__ == "__main__":
    globals()["case_" + sys.argv[1]]()
    print("ok")
