"""Device and precision choice for training (`modeling_mie.devices`), checked without a GPU: CUDA's
presence is mocked, placement is checked on the "meta" device, bf16 autocast runs on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification, MieInputError
from modeling_mie import devices
from modeling_mie.devices import float32_mode, prepare_model, resolve_device, resolve_precision, stage_tensor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_cuda(monkeypatch):
    """PyTorch 'sees' two GPUs with bf16 (nothing is run on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_auto_takes_cuda_only_when_pytorch_sees_a_gpu(monkeypatch, fake_cuda):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_bad_device_or_precision_gives_one_line_errors(monkeypatch, fake_cuda):
    with pytest.raises(MieInputError, match=r"sees 2 GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    with pytest.raises(MieInputError, match="one of auto, cpu, cuda or cuda:N; got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(MieInputError, match="tf32 is a CUDA mode"):
        resolve_precision("tf32", torch.device("cpu"))
    with pytest.raises(MieInputError, match="must be one of"):
        resolve_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MieInputError, match="use --device cpu or auto") as err:
        resolve_device("cuda")
    assert "\n" not in str(err.value)


def test_cuda_without_a_gpu_is_a_one_line_error_of_the_command(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this checks the message on a GPU machine too
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train" / "loso.py"), "--dataset", f"synthetic={tmp_path}",
         "--output-dir", str(tmp_path / "out"), "--device", "cuda"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda:") and "--device cpu" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_cnn_kernels_of_a_run_are_checked_set_while_it_trains_and_restored(monkeypatch, fake_cuda):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    with pytest.raises(MieInputError, match="triton runs on CUDA GPUs only; this run is on cpu") as err:
        devices.check_cnn_kernels("triton", cpu)
    assert "\n" not in str(err.value)
    with pytest.raises(MieInputError, match="one of auto, cudnn, triton"):
        devices.check_cnn_kernels("cutlass", cuda)
    assert devices.check_cnn_kernels("cudnn", cpu) == "cudnn"  # nothing to refuse: the CPU runs PyTorch's
    defaults = devices.CUDA_CONV_KERNEL, devices.CUDA_INCEPTION_KERNEL, devices.CUDA_MERGED_INCEPTION
    with devices.cnn_kernels("triton"):
        assert (devices.CUDA_CONV_KERNEL, devices.CUDA_INCEPTION_KERNEL, devices.CUDA_MERGED_INCEPTION) == (
            "triton", "triton", False)
        assert devices.describe_cnn_kernels("auto", cuda) == "triton"
    assert (devices.CUDA_CONV_KERNEL, devices.CUDA_INCEPTION_KERNEL, devices.CUDA_MERGED_INCEPTION) == defaults
    assert devices.describe_cnn_kernels("triton", cpu) == "pytorch"
    assert devices.describe_cnn_kernels("cudnn", cuda) == "cudnn"

    # a fold worker trains inside its run's choice, and the defaults come back after it
    from modeling_mie import loso

    seen = []

    def fake_train(*args, **kwargs):
        seen.append((devices.CUDA_CONV_KERNEL, devices.CUDA_INCEPTION_KERNEL))
        raise KeyboardInterrupt  # stop here: the fold's training is not what this checks

    monkeypatch.setattr(loso, "train_model", fake_train)
    monkeypatch.setattr(loso, "load_clip_tensors", lambda *a, **k: [type("Clip", (), {"subject": "db/s0"})()])
    spec = loso.FoldSpec("db/s0", "o", "c", [], MieConfig.from_preset("fast").to_dict(),
                         {"stage1_epochs": 1}, 0, 1, cnn_kernels="triton")
    with pytest.raises(KeyboardInterrupt):
        loso.run_fold_group([spec])
    assert seen == [("triton", "triton")]
    assert (devices.CUDA_CONV_KERNEL, devices.CUDA_INCEPTION_KERNEL) == defaults[:2]


def test_a_triton_default_falls_back_to_cudnn_where_triton_cannot_run_unless_asked_for(monkeypatch):
    # as the defaults will be once a GPU has timed the fused kernels; this machine has no GPU
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(devices, "CUDA_CONV_KERNEL", "triton")
    monkeypatch.setattr(devices, "CUDA_INCEPTION_KERNEL", "triton")
    cnn = MieForVideoClassification(MieConfig.from_preset("fast")).region_cnn
    cuda = torch.device("cuda")
    devices.configure_region_cnn(cnn, cuda)  # the defaults: cuDNN's, quietly
    assert cnn.conv_pool_relu is None and cnn.inception_pool is None and not cnn.channels_last
    assert devices.describe_cnn_kernels("auto", cuda) == "cudnn"
    with pytest.raises(MieInputError, match="need Triton"):
        devices.configure_region_cnn(cnn, cuda, conv_kernel="triton")  # asked for by name
    with devices.cnn_kernels("triton"), pytest.raises(MieInputError, match="need Triton"):
        devices.configure_region_cnn(cnn, cuda)  # asked for by the run (--cnn-kernels triton)
    with devices.cnn_kernels("auto"):
        devices.configure_region_cnn(cnn, cuda)
    assert cnn.conv_pool_relu is None


def test_cnn_kernels_triton_on_the_cpu_is_a_one_line_error_of_the_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": ""}
    for extra, message in (([], "error: --cnn-kernels triton runs on CUDA GPUs only"),
                           (["--method", "lbptop", "--cnn-kernels", "cudnn"], "error: --cnn-kernels is for the project")):
        proc = subprocess.run(
            [sys.executable, str(REPO / "train" / "loso.py"), "--dataset", f"synthetic={tmp_path}",
             "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--cnn-kernels", "triton", *extra],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), lines
        assert not (tmp_path / "out").exists()


def test_model_and_crops_move_to_the_device():
    config = MieConfig.from_preset("fast")
    model = MieForVideoClassification(config)
    meta = torch.device("meta")
    prepare_model(model, meta)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {b.device.type for b in model.buffers()} == {"meta"}
    crops = torch.zeros(5, 6, 1, 4, 8, dtype=torch.uint8)
    moved = stage_tensor(crops, meta)
    assert moved.device.type == "meta" and moved.dtype == torch.uint8 and moved.shape == crops.shape
    assert stage_tensor(crops, torch.device("cpu")) is crops  # the CPU path copies nothing
    on_cpu = prepare_model(MieForVideoClassification(config), torch.device("cpu"))
    assert on_cpu.region_cnn.chunk_frames is None  # the CPU keeps its measured chunking


def test_cuda_layout_runs_the_convolutions_in_nchw_with_the_same_results():
    """On CUDA the region CNN runs NCHW (cuDNN's grouped kernels were faster so on an H100); the
    layout must not change what it computes, with or without gradients, and a stack of folds keeps it."""
    from modeling_mie.devices import configure_region_cnn
    from modeling_mie.stacked import stack_region_cnns

    config = MieConfig.from_preset("fast")
    torch.manual_seed(0)
    cnn = MieForVideoClassification(config).region_cnn.eval()
    h, w = config.crop_size
    x = torch.rand(3, config.num_regions, config.num_channels, h, w)
    seen = []
    hook = cnn.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))

    def run():
        cnn.zero_grad()
        features, logits = cnn(x)
        logits.square().sum().backward()
        with torch.no_grad():
            inference = cnn(x)[0]
        return features.detach(), inference, [p.grad.clone() for p in cnn.parameters()]

    configure_region_cnn(cnn, torch.device("cpu"))
    assert cnn.channels_last and cnn.chunk_frames is None
    cpu = run()
    assert seen == [False]  # channels-last input to the grouped conv1 (inference takes the depthwise path)
    configure_region_cnn(cnn, torch.device("cuda"))  # sets attributes only: no GPU needed
    assert not cnn.channels_last and cnn.chunk_frames == devices.CUDA_CHUNK_FRAMES
    seen.clear()
    cuda = run()
    assert seen == [True, True]  # NCHW, training and inference alike
    hook.remove()
    torch.testing.assert_close(cuda[0], cpu[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cuda[1], cpu[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(cuda[2], cpu[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    stacked = stack_region_cnns([cnn, cnn], config)
    assert not stacked.channels_last and stacked.chunk_frames == devices.CUDA_CHUNK_FRAMES


def test_merged_inception_computes_the_four_branches_and_their_gradients():
    """The inception branches as one zero-padded 7x7 convolution (an option for GPUs) must give the
    same maps, features, explanations' inputs and parameter gradients as the four branches."""
    from modeling_mie.devices import configure_region_cnn
    from modeling_mie.stacked import stack_region_cnns

    config = MieConfig.from_preset("fast")
    torch.manual_seed(0)
    cnn = MieForVideoClassification(config).region_cnn.train()
    cnn.dropout.p = 0.0
    h, w = config.crop_size
    x = torch.rand(3, config.num_regions, config.num_channels, h, w)

    def run():
        cnn.zero_grad()
        maps = cnn.forward_maps(x)
        features, logits = cnn.forward_head(cnn.pool_maps(maps))
        logits.square().sum().backward()
        per_region = torch.cat([m.detach().view(3, config.num_regions, -1, *m.shape[2:]) for m in maps], dim=2)
        return [per_region, features.detach()] + [p.grad.clone() for p in cnn.parameters()], len(maps)

    configure_region_cnn(cnn, torch.device("cuda"))  # attributes only: the default keeps the branches
    assert not cnn.merged_inception
    branches, count = run()
    assert count == len(config.inception_kernel_sizes) + 1
    configure_region_cnn(cnn, torch.device("cuda"), merged_inception=True)
    assert cnn.merged_inception
    merged, count = run()
    assert count == 2  # one map for the four branches, then conv2's
    assert merged[0].shape[2] == config.cnn_channels  # 72 channels per region, as the paper's concatenation
    for a, b in zip(merged, branches):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    grads = dict(zip([n for n, _ in cnn.named_parameters()], merged[2:]))
    assert all(grads[f"inception.{i}.weight"].abs().sum() > 0 for i in range(4))
    assert stack_region_cnns([cnn, cnn], config).merged_inception
    configure_region_cnn(cnn, torch.device("cpu"), merged_inception=True)  # the CPU keeps the branches
    assert not cnn.merged_inception


def test_float32_mode_switches_tf32_only_on_cuda_and_restores_it():
    api, knobs = devices._fp32_precision_knobs()
    before = [getattr(obj, name) for obj, name in knobs]
    with float32_mode(torch.device("cuda"), "fp32"):
        assert all(getattr(obj, name) in ("ieee", False) for obj, name in knobs)
    with float32_mode(torch.device("cuda"), "bf16"):
        assert all(getattr(obj, name) in ("tf32", True) for obj, name in knobs)
    with float32_mode(torch.device("cpu"), "fp32"):
        assert [getattr(obj, name) for obj, name in knobs] == before
    assert [getattr(obj, name) for obj, name in knobs] == before


def test_temporal_stage_stays_float32_under_autocast():
    config = MieConfig.from_preset("fast")
    torch.manual_seed(0)
    model = MieForVideoClassification(config).eval()
    features = torch.randn(3, 7, config.num_regions, config.region_feature_size)
    lengths = torch.tensor([7, 5, 2])
    with torch.no_grad():
        plain, _ = model.temporal(features, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast, _ = model.temporal(features.bfloat16(), lengths)
            cnn_features, _ = model.region_cnn(torch.rand(2, config.num_regions, 1, *config.crop_size))
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, model.temporal(features.bfloat16().float(), lengths)[0])
    assert plain.dtype == torch.float32 and cnn_features.dtype == torch.bfloat16  # autocast reaches the CNN


def test_bf16_training_runs_and_returns_cpu_float32_results():
    """The bf16 path of every stage (CNN under autocast, float32 features, fine-tune), on the CPU."""
    from modeling_mie.training import TRAINING_PRESETS, ClipTensors, train_model

    config = MieConfig.from_preset("fast")
    g = torch.Generator().manual_seed(0)
    h, w = config.crop_size
    clips = [
        ClipTensors(torch.randint(0, 256, (6, config.num_regions, 1, h, w), generator=g, dtype=torch.uint8),
                    i % 3, config.region_labels(i % 3), f"x/{i % 4}", "x", f"c{i}", str(i % 4), 0, 3, 5)
        for i in range(8)
    ]
    schedule = TRAINING_PRESETS["fast"].updated(stage1_epochs=1, stage2_epochs=2, finetune_epochs=1, num_frames=4)
    out = train_model(config, clips[:6], schedule, seed=1, test_clips=clips[6:], precision="bf16")
    assert out.probabilities.dtype == torch.float32 and out.probabilities.device.type == "cpu"
    torch.testing.assert_close(out.probabilities.sum(1), torch.ones(2))
    assert all(torch.isfinite(torch.tensor(losses)).all() for losses in (out.stage1.losses, out.stage2.losses, out.finetune.losses))
    assert {p.device.type for p in out.model.parameters()} == {"cpu"}
    assert {p.dtype for p in out.model.parameters()} == {torch.float32}  # autocast never changes the weights


def test_workers_spread_over_gpus_and_resume_never_mixes_precisions(monkeypatch, fake_cuda, tmp_path):
    from modeling_mie.loso import FoldSpec, check_or_write_run, spread_over_gpus

    specs = [FoldSpec(f"db/s{i}", "o", "c", [], {}, {}, 0, 1, device="cuda") for i in range(4)]
    spread = spread_over_gpus([[s] for s in specs[:3]])
    assert [g[0].device for g in spread] == ["cuda:0", "cuda:1", "cuda:0"]
    # stacked folds (one group, one process) stay together on one GPU
    spread = spread_over_gpus([specs[:3], specs[3:]])
    assert [[s.device for s in g] for g in spread] == [["cuda:0"] * 3, ["cuda:1"]]
    pinned = [FoldSpec("db/s0", "o", "c", [], {}, {}, 0, 1, device="cuda:1")]
    assert spread_over_gpus([pinned])[0][0].device == "cuda:1"

    fp32 = {"config": "a", "seed": 0}
    bf16 = {**fp32, "precision": "bf16"}
    check_or_write_run(tmp_path / "a", bf16, resume=False)
    with pytest.raises(MieInputError, match="precision differ"):
        check_or_write_run(tmp_path / "a", fp32, resume=True)
    check_or_write_run(tmp_path / "b", fp32, resume=False)
    with pytest.raises(MieInputError, match="precision differ"):
        check_or_write_run(tmp_path / "b", bf16, resume=True)
    assert check_or_write_run(tmp_path / "b", fp32, resume=True) == 0
    assert "precision" not in json.loads((tmp_path / "b" / "run.json").read_text())["identity"]
