"""ONNX export and the ONNX Runtime path: same logits as PyTorch, settings inside the file, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'modeling_mie[onnx]'")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed: pip install 'modeling_mie[onnx]'")

from modeling_mie import MieForVideoClassification, MieProcessor
from modeling_mie.export import export_onnx
from modeling_mie.onnx_runtime import OnnxMieModel

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "checkpoints" / "mie-synthetic-megc2019"
FRAMES = 7
# exports take 5-15 s each: keep them on one worker
pytestmark = pytest.mark.xdist_group("onnx_export")


def _clips(config, batch, frames, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, config.num_regions, config.num_channels, *config.crop_size, generator=g)


def _masks(frames):
    """(4, frames) masks: whole; padded after 4; a hole at 1-2 and padded; the first frame missing."""
    mask = torch.ones(4, frames, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 1:3] = False
    mask[2, 5:] = False
    mask[3, 0] = False
    return mask


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, tiny_config_factory):
    """A tiny random model that uses every path the export must carry: onset differences (a clip
    whose first frame is a hole has its onset later), standardised features, a temperature."""
    config = tiny_config_factory()
    config.input_mode = "onset_difference"
    config.standardize_features = True
    config.temperature = 1.7
    torch.manual_seed(0)
    model = MieForVideoClassification(config).eval()
    g = torch.Generator().manual_seed(1)
    model.temporal.feature_mean.copy_(torch.randn(model.temporal.feature_mean.shape, generator=g))
    model.temporal.feature_std.copy_(torch.rand(model.temporal.feature_std.shape, generator=g) + 0.5)
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    MieProcessor.from_config(config, frame_sampling="uniform", num_frames=FRAMES).save_pretrained(folder)
    path = folder.parent / "tiny.onnx"
    info = export_onnx(folder, path, check=True)
    return model, path, info


def test_exported_logits_equal_pytorch_for_padded_clips_and_holes(tiny_export):
    model, path, info = tiny_export
    assert info["frames"] == FRAMES  # the processor's num_frames
    assert info["max_abs_diff"] < 1e-4
    onnx_model = OnnxMieModel(path, num_threads=1)
    pixel_values, mask = _clips(model.config, 4, FRAMES, seed=2), _masks(FRAMES)
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, frame_mask=mask)
    got = onnx_model(pixel_values, mask)
    assert np.abs(got.logits - expected.logits.numpy()).max() < 1e-4
    assert np.allclose(got.probabilities, expected.logits.softmax(-1).numpy(), atol=1e-5)
    # per-frame features at the input's positions, zero where not read
    assert np.abs(got.region_features - expected.region_features.numpy()).max() < 1e-4
    assert np.all(got.region_features[~mask.numpy()] == 0)
    # the holes matter: reading the masked frames would change the answer
    changed = onnx_model(pixel_values, torch.ones_like(mask)).logits
    assert np.abs(changed[2] - got.logits[2]).max() > 1e-3


def test_a_short_clip_is_padded_and_masked_by_the_runtime(tiny_export):
    model, path, _ = tiny_export
    onnx_model = OnnxMieModel(path, num_threads=1)
    clip = _clips(model.config, 1, 3, seed=5)  # 3 of the 7 frames the graph takes
    with torch.no_grad():
        expected = model(pixel_values=clip).logits.numpy()
    got = onnx_model(clip[0].numpy())  # one clip without the batch axis, no mask
    assert got.logits.shape == (1, model.config.num_labels)
    assert got.region_features.shape[1] == 3
    assert np.abs(got.logits - expected).max() < 1e-4


def test_a_longer_clip_is_refused_with_the_way_out(tiny_export):
    model, path, _ = tiny_export
    onnx_model = OnnxMieModel(path)
    with pytest.raises(ValueError, match=r"--frames 9") as err:
        onnx_model(_clips(model.config, 1, FRAMES + 2, seed=0))
    assert f"1 to {FRAMES} frames" in str(err.value)
    with pytest.raises(ValueError, match="at least one True frame"):
        onnx_model(_clips(model.config, 1, 3, seed=0), np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match=r"\(regions, channels, height, width\)"):
        onnx_model(np.zeros((1, 3, 2, 1, 4, 4), np.float32))


def test_the_file_carries_config_and_processor_settings(tiny_export):
    model, path, _ = tiny_export
    onnx_model = OnnxMieModel(path)
    assert onnx_model.num_frames == FRAMES
    assert onnx_model.label_names == [model.config.id2label[i] for i in range(5)]
    assert onnx_model.config.temperature == pytest.approx(1.7)
    assert onnx_model.config.regions == model.config.regions
    processor = onnx_model.processor()
    assert isinstance(processor, MieProcessor)
    assert processor.frame_sampling == "uniform" and processor.num_frames == FRAMES
    assert processor.crop_size == model.config.crop_size


def test_export_takes_another_frame_count_and_the_processor_follows(tiny_export, tmp_path):
    model, _, _ = tiny_export
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    MieProcessor.from_config(model.config).save_pretrained(folder)  # frame_sampling "all"
    info = export_onnx(folder, tmp_path / "five.onnx", frames=5, check=True)
    assert info["max_abs_diff"] < 1e-4
    onnx_model = OnnxMieModel(tmp_path / "five.onnx")
    assert onnx_model.num_frames == 5
    settings = onnx_model.processor_settings
    assert (settings["frame_sampling"], settings["num_frames"], settings["max_frames"]) == ("uniform", 5, 5)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "modeling_mie.export", *map(str, args)],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=300,
    )


def test_cli_exports_the_bundled_checkpoint(tmp_path):
    out = tmp_path / "mie.onnx"
    result = _cli(BUNDLED, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "32 frames per clip" in result.stdout
    diff = float(result.stdout.rsplit("max |logit difference| ", 1)[1])
    assert diff < 1e-4
    # the bundled model on the bundled processor's crops: a padded clip and one with holes
    model = MieForVideoClassification.from_pretrained(BUNDLED).eval()
    onnx_model = OnnxMieModel(out, num_threads=1)
    assert onnx_model.config.temperature == pytest.approx(model.config.temperature)
    pixel_values, mask = _clips(model.config, 4, 32, seed=7), _masks(32)
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, frame_mask=mask).logits.numpy()
    assert np.abs(onnx_model(pixel_values, mask).logits - expected).max() < 1e-4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("does-not-exist",), "does-not-exist is not a folder"),
        (("examples",), "has no config.json"),
        ((BUNDLED, "--frames", "0"), "--frames must be a whole number from 2"),
        ((BUNDLED, "--frames", "many"), "invalid int value: 'many'"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path):
    result = _cli(*args, "--output", tmp_path / "x.onnx")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_missing_onnxruntime_names_the_extra(monkeypatch, tiny_export):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'modeling_mie\[onnx\]'"):
        OnnxMieModel(tiny_export[1])


def test_missing_exporter_names_the_extra(monkeypatch, tiny_export, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    model = tiny_export[0]
    model.save_pretrained(tmp_path)
    MieProcessor.from_config(model.config).save_pretrained(tmp_path)
    with pytest.raises(ImportError, match=r"onnxscript, not installed: pip install 'modeling_mie\[onnx\]'"):
        export_onnx(tmp_path, tmp_path / "x.onnx")


def test_a_file_that_is_not_a_mie_export_is_refused(tmp_path):
    from modeling_mie import MieInputError

    with pytest.raises(MieInputError, match="does not exist"):
        OnnxMieModel(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(MieInputError, match="not an ONNX model"):
        OnnxMieModel(junk)


def test_predict_runs_the_stored_processor_on_frames_with_boxes(tiny_export):
    """The same preprocessing as the PyTorch path: the stored processor, then the graph."""
    model, path, _ = tiny_export
    onnx_model = OnnxMieModel(path, num_threads=1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 40, 40, 3), dtype=np.uint8)  # 12 frames -> sampled to 7
    boxes = np.array([[0, 0, 24, 16], [4, 12, 20, 28], [2, 24, 22, 32]])
    out = onnx_model.predict(frames, boxes=boxes)
    inputs = MieProcessor.from_config(model.config, frame_sampling="uniform", num_frames=FRAMES)(
        frames, boxes=boxes, return_tensors="pt"
    )
    assert inputs["pixel_values"].shape[1] == FRAMES
    with torch.no_grad():
        expected = model(pixel_values=inputs["pixel_values"], frame_mask=inputs["frame_mask"]).logits.numpy()
    assert np.abs(out.logits - expected).max() < 1e-4
    assert set(out.probabilities_dict()) == set(model.config.id2label.values())


@pytest.fixture(scope="module")
def bundled_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundled_onnx") / "mie.onnx"
    export_onnx(BUNDLED, path, check=False)
    return path


def test_the_app_runs_on_onnx_with_the_same_answer_and_says_what_it_leaves_out(landmarker_path, bundled_onnx):
    from modeling_mie.app_support import AppLimits, MieDemo

    clip = REPO / "examples" / "positive.webm"
    with MieDemo(BUNDLED) as torch_demo, MieDemo(None, onnx=bundled_onnx, onnx_threads=1) as onnx_demo:
        expected, got = torch_demo.predict(clip), onnx_demo.predict(clip)
    assert got.predicted == expected.predicted
    for label, p in expected.probabilities.items():
        assert abs(got.probabilities[label] - p) < 1e-4
    # the activity comes from the region features: the same as the PyTorch path's
    assert np.allclose(got.region_activity, expected.region_activity, atol=1e-4, equal_nan=True)
    assert got.heatmaps == [] and np.isnan(got.region_importance).all()
    assert "most evidence" not in got.summary
    assert any("need the PyTorch model" in note for note in got.notes)
    # the model card travelled in the file: still flagged as synthetic
    assert onnx_demo.synthetic and "ONNX Runtime" in got.provenance and "synthetic" in got.provenance
    with pytest.raises(ValueError, match="export it again with --frames 40"):
        MieDemo(None, AppLimits(model_frames=40), onnx=bundled_onnx, warm_up=False)


@pytest.mark.parametrize("input_mode", ["frames", "flow"])
def test_the_other_input_modes_export_too(input_mode, tiny_config_factory, tmp_path):
    config = tiny_config_factory()
    config.input_mode = input_mode
    config.num_channels = 3 if input_mode == "flow" else 1
    torch.manual_seed(3)
    model = MieForVideoClassification(config).eval()
    model.save_pretrained(tmp_path / "model")
    MieProcessor.from_config(config, frame_sampling="uniform", num_frames=6).save_pretrained(tmp_path / "model")
    info = export_onnx(tmp_path / "model", tmp_path / "m.onnx", check=True)
    assert info["max_abs_diff"] < 1e-4
    pixel_values, mask = _clips(config, 4, 6, seed=4), _masks(6)
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, frame_mask=mask).logits.numpy()
    assert np.abs(OnnxMieModel(tmp_path / "m.onnx")(pixel_values, mask).logits - expected).max() < 1e-4
