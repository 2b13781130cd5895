"""The fused layers for CUDA (`modeling_mie.fused_conv`: conv1 and conv2, each -> 2 x 2 max-pooling ->
ReLU; `modeling_mie.fused_inception`: the inception block -> ReLU -> mean; Triton kernels), checked
on the CPU in Triton's interpreter against PyTorch's operations: outputs, weight, bias and input
gradients, ties in the pooling window, odd sizes, bf16 autocast, and the region CNN and a stack of
folds running them; and compiled for an H100."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification, MieInputError, devices

REPO = Path(__file__).resolve().parents[1]
CASES = [
    "conv1_forward_and_gradients",
    "conv2_forward_and_all_gradients",
    "other_kernel_sizes_and_filter_counts",
    "bf16_autocast_reads_and_writes_bf16",
    "torch_compile_traces_both_layers",
    "opcheck_passes",
    "inception_forward_and_all_gradients",
    "every_autotuning_configuration_gives_the_same_results",
    "bad_shapes_are_refused_in_words",
    "region_cnn_and_stacked_folds_run_it_with_the_same_results",
]


@pytest.mark.parametrize("case", CASES)
def test_in_tritons_interpreter(case):
    """Each case of tests/fused_conv_cases.py in a fresh process under TRITON_INTERPRET=1."""
    if importlib.util.find_spec("triton") is None and not sys.platform.startswith("linux"):
        pytest.skip("Triton's interpreter runs where Triton installs (Linux; the test extra installs it there)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "fused_conv_cases.py"), case],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


def test_triton_kernel_is_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cnn = MieForVideoClassification(MieConfig.from_preset("fast")).region_cnn
    with pytest.raises(MieInputError, match="need Triton .* and a CUDA GPU"):
        devices.configure_region_cnn(cnn, torch.device("cuda"), conv_kernel="triton")  # no GPU here
    with pytest.raises(MieInputError, match="one of cudnn, triton"):
        devices.configure_region_cnn(cnn, torch.device("cuda"), conv_kernel="cutlass")
    with pytest.raises(MieInputError, match="inception needs Triton .* and a CUDA GPU"):
        devices.configure_region_cnn(cnn, torch.device("cuda"), inception_kernel="triton")


def test_kernels_compile_for_an_h100_without_spilling():
    """Triton's compiler and ptxas build every autotuning configuration of every kernel for compute
    capability 9.0 (H100) here, without a GPU: what the interpreter cannot check (types, layouts,
    registers). A configuration that spills registers to memory would be slow there."""
    if importlib.util.find_spec("triton") is None and not sys.platform.startswith("linux"):
        pytest.skip("Triton installs on Linux only (the test extra installs it there)")
    from modeling_mie import fused_conv

    report = fused_conv.compile_report(capability=90)
    kernels = {(r["layer"], r["kernel"]) for r in report}
    assert kernels == {("conv1", "forward"), ("conv1", "weight grad"),
                       ("conv2", "forward"), ("conv2", "weight grad"), ("conv2", "input grad")}
    from modeling_mie import fused_inception

    inception = fused_inception.compile_report(capability=90)
    assert {r["kernel"] for r in inception} == {"forward", "input grad", "weight grad"}
    for row in report + inception:
        assert row["spilled"] == 0 and 0 < row["registers"] <= 255, row
    # float32 input (--precision fp32) compiles too, with float32 products (not TF32's); it is not the
    # speed path, and two of its forward tiles spill: autotuning times them with the rest
    exact = fused_inception.compile_report(capability=90, dtype="fp32")
    assert len(exact) == len(inception) and all(0 < row["registers"] <= 255 for row in exact)
