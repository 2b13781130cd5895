"""The region CNN + LSTM model: shapes, masking, gradients, parameter count, save/load, remote code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from modeling_mie import MieConfig, MieForVideoClassification, focal_loss, inverse_frequency_alpha
from modeling_mie.modeling_mie import compact_frames, region_cnn_input
from modeling_mie.reference import MieRegionCNNReference

PAPER_PARAMETERS = 1_093_531  # Aouayeb et al. (2019), trainable parameters as reported


def _clips(config, lengths, seed=0):
    """Random crops for clips of the given lengths, padded to the longest: (B, T, R, C, H, W), mask."""
    g = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    shape = (len(lengths), frames, config.num_regions, config.num_channels, *config.crop_size)
    pixel_values = torch.rand(shape, generator=g)
    mask = torch.arange(frames).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    pixel_values[~mask] = 0.0
    return pixel_values, mask


@pytest.fixture
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return MieForVideoClassification(tiny_config).eval()


def test_output_shapes_for_clips_of_several_lengths(tiny_config, tiny_model):
    pixel_values, mask = _clips(tiny_config, [5, 1, 3, 8])
    out = tiny_model(pixel_values, frame_mask=mask)
    r, k = tiny_config.num_regions, tiny_config.num_region_classes
    assert out.logits.shape == (4, 5)
    assert out.region_logits.shape == (4, 8, r, k)
    assert out.region_features.shape == (4, 8, r, tiny_config.region_feature_size)
    assert out.region_states.shape == (4, r, tiny_config.lstm_hidden_size)
    assert out.loss is None and out.region_loss is None
    # padded frames carry no features
    assert torch.all(out.region_features[~mask] == 0)
    assert torch.all(out.region_features[mask].abs().sum(-1) >= 0)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_padding_does_not_change_a_clips_logits(preset, tiny_config):
    config = tiny_config if preset == "tiny" else MieConfig.from_preset("paper")
    torch.manual_seed(1)
    model = MieForVideoClassification(config).eval()
    pixel_values, mask = _clips(config, [6, 2, 4], seed=3)
    # make the padding of clip 1 garbage: it must still not matter
    pixel_values[1, 2:] = torch.rand_like(pixel_values[1, 2:])
    with torch.no_grad():
        batched = model(pixel_values, frame_mask=mask).logits
        for i, length in enumerate([6, 2, 4]):
            alone = model(pixel_values[i : i + 1, :length]).logits
            torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-5, atol=1e-5)


def _spread(pixel_values, mask, positions, frames, seed=7):
    """Lay each clip's real frames out at `positions[b]` of a `frames`-long timeline, with random
    garbage everywhere else (the holes and the padding): (B, frames, ...) values and mask."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.rand((pixel_values.shape[0], frames, *pixel_values.shape[2:]), generator=g)
    spread_mask = torch.zeros(pixel_values.shape[0], frames, dtype=torch.bool)
    for b, where in enumerate(positions):
        assert len(where) == int(mask[b].sum())
        spread[b, where] = pixel_values[b, : len(where)]
        spread_mask[b, where] = True
    return spread, spread_mask


@pytest.mark.parametrize("input_mode", ["frames", "onset_difference"])
def test_a_clip_with_holes_is_read_as_its_real_frames(input_mode, tiny_config):
    """False frames inside a clip are skipped as if absent: the same logits as the clip with them
    cut out, per-frame outputs at the input's positions and zero at the holes. Clip 0 starts
    with a hole, so an onset difference taken from frame 0 instead of the first real frame fails."""
    config = MieConfig.from_dict({**tiny_config.to_dict(), "input_mode": input_mode})
    torch.manual_seed(3)
    model = MieForVideoClassification(config).eval()
    compact, compact_mask = _clips(config, [5, 3], seed=4)
    # clip 0: holes at 0, 3, 6 inside a 9-frame timeline, padding after 8; clip 1: a hole at 1
    holey, holey_mask = _spread(compact, compact_mask, [[1, 2, 4, 5, 7], [0, 2, 3]], 9)
    labels = torch.tensor([2, 4])
    region_labels = torch.tensor([config.region_labels(int(y)) for y in labels])
    with torch.no_grad():
        expected = model(compact, frame_mask=compact_mask, labels=labels, region_labels=region_labels)
        out = model(holey, frame_mask=holey_mask, labels=labels, region_labels=region_labels)
        stage2 = model(region_features=out.region_features, frame_mask=holey_mask)
    torch.testing.assert_close(out.logits, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.region_states, expected.region_states, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.region_loss, expected.region_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, expected.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stage2.logits, expected.logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.frame_mask, holey_mask)
    for name in ("region_features", "region_logits"):
        got, want = getattr(out, name), getattr(expected, name)
        assert got.shape[:2] == holey.shape[:2]
        assert torch.all(got[~holey_mask] == 0), name
        # boolean indexing walks each clip's real frames in order, in both layouts
        torch.testing.assert_close(got[holey_mask], want[compact_mask], rtol=1e-5, atol=1e-5)
    assert out.region_features[holey_mask].abs().sum() > 0  # a dead network would match trivially


def test_onset_difference_is_taken_from_each_clips_first_real_frame(tiny_config):
    config = MieConfig.from_dict({**tiny_config.to_dict(), "input_mode": "onset_difference"})
    pixel_values, _ = _clips(config, [4, 4])
    mask = torch.tensor([[False, False, True, True], [True, False, True, True]])
    seen = region_cnn_input(config, pixel_values, frame_mask=mask)
    torch.testing.assert_close(seen[0], pixel_values[0] - pixel_values[0, 2])
    torch.testing.assert_close(seen[1], pixel_values[1] - pixel_values[1, 0])
    assert torch.all(seen[0, 2] == 0) and torch.all(seen[1, 0] == 0)


@pytest.mark.parametrize("input_mode", ["frames", "onset_difference"])
def test_a_prefix_mask_keeps_the_path_it_always_had(input_mode, tiny_config):
    """Real frames first, padding after: bit-identical to the padded computation this model ran
    before masks could have holes (CNN on the real frames, onset = frame 0, LSTM state gathered
    at the last real frame), and equal to each clip run alone without padding."""
    config = MieConfig.from_dict({**tiny_config.to_dict(), "input_mode": input_mode})
    torch.manual_seed(4)
    model = MieForVideoClassification(config).eval()
    pixel_values, mask = _clips(config, [6, 2, 4], seed=5)
    pixel_values[~mask] = torch.rand_like(pixel_values[~mask])  # garbage padding must not matter
    features = torch.rand(3, 6, config.num_regions, config.region_feature_size)
    compacted, lengths = compact_frames(features, mask)
    assert compacted is features and lengths.tolist() == [6, 2, 4]
    with torch.no_grad():
        out = model(pixel_values, frame_mask=mask)
        feats, _ = model.region_cnn(region_cnn_input(config, pixel_values)[mask])
        padded = feats.new_zeros(*mask.shape, *feats.shape[1:])
        padded[mask] = feats
        old_logits, _ = model.temporal(padded, mask.sum(1))
        assert torch.equal(out.region_features, padded)
        assert torch.equal(out.logits, old_logits)
        for i, length in enumerate([6, 2, 4]):
            alone = model(pixel_values[i : i + 1, :length]).logits
            torch.testing.assert_close(out.logits[i : i + 1], alone, rtol=1e-5, atol=1e-5)


def test_every_parameter_receives_a_gradient(tiny_config):
    torch.manual_seed(0)
    model = MieForVideoClassification(tiny_config).train()
    pixel_values, mask = _clips(tiny_config, [4, 2, 3])
    labels = torch.tensor([0, 3, 4])
    region_labels = torch.tensor([tiny_config.region_labels(int(y)) for y in labels])
    out = model(pixel_values, frame_mask=mask, labels=labels, region_labels=region_labels)
    assert out.loss is not None and out.region_loss is not None
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_region_features_path_matches_pixel_path(tiny_config, tiny_model):
    pixel_values, mask = _clips(tiny_config, [3, 5])
    with torch.no_grad():
        full = tiny_model(pixel_values, frame_mask=mask)
        stage2 = tiny_model(region_features=full.region_features, frame_mask=mask)
    torch.testing.assert_close(full.logits, stage2.logits)
    assert stage2.region_logits is None


def test_loss_only_with_labels_and_focal_loss_math(tiny_config, tiny_model):
    pixel_values, mask = _clips(tiny_config, [3, 2])
    out = tiny_model(pixel_values, frame_mask=mask, labels=torch.tensor([1, 4]))
    alpha = torch.tensor(tiny_config.focal_alpha)
    expected = focal_loss(out.logits, torch.tensor([1, 4]), tiny_config.focal_gamma, alpha)
    torch.testing.assert_close(out.loss, expected)

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 1])
    # gamma 0 is weighted cross-entropy
    w = torch.tensor([1.0, 3.0, 1.0])
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none") * w[labels]
    torch.testing.assert_close(focal_loss(logits, labels, 0.0, w), ce.mean())
    # gamma > 0 down-weights the confident, correct first sample relative to the second
    per = focal_loss(logits, labels, 2.0, reduction="none")
    p = logits.softmax(-1)[torch.arange(2), labels]
    torch.testing.assert_close(per, -(1 - p) ** 2 * p.log())


def test_inverse_frequency_alpha():
    alpha = inverse_frequency_alpha([0] * 6 + [1] * 3 + [2] * 1, 3)
    assert alpha[0] < alpha[1] < alpha[2]
    assert sum(alpha) == pytest.approx(3.0)
    assert alpha[1] / alpha[0] == pytest.approx(2.0) and alpha[2] / alpha[0] == pytest.approx(6.0)
    # a class missing from a fold gets the largest present weight, not infinity
    missing = inverse_frequency_alpha([0, 0, 1], 3)
    assert missing[2] == pytest.approx(missing[1]) and all(a < 10 for a in missing)


def test_bad_inputs_are_refused_with_clear_messages(tiny_config, tiny_model):
    pixel_values, mask = _clips(tiny_config, [3, 2])
    with pytest.raises(ValueError, match="pixel_values must be"):
        tiny_model(pixel_values[:, :, :2])
    with pytest.raises(ValueError, match=r"frame_mask must be \(batch, frames\) = \(2, 3\)"):
        tiny_model(pixel_values, frame_mask=mask[:, :2])
    empty = mask.clone()
    empty[1] = False  # clip 1 has no True frame: nothing to read, whatever its holes
    with pytest.raises(ValueError, match=r"at least one real frame .* clips \[1\] have none"):
        tiny_model(pixel_values, frame_mask=empty)
    with pytest.raises(ValueError, match="at least one real frame"):
        tiny_model(region_features=torch.rand(2, 3, 3, tiny_config.region_feature_size), frame_mask=empty)
    with pytest.raises(ValueError, match="exactly one"):
        tiny_model()


def test_paper_preset_parameter_count_matches_the_paper():
    model = MieForVideoClassification(MieConfig.from_preset("paper"))
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # PyTorch's LSTM has two bias vectors per gate, Keras one: +4 * 120 per region.
    keras_count = count - 6 * 4 * 120
    assert abs(count - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.005, count
    assert abs(keras_count - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.005, keras_count
    fast = sum(p.numel() for p in MieForVideoClassification(MieConfig.from_preset("fast")).parameters())
    assert fast < count / 2


@pytest.mark.parametrize("preset", ["tiny", "tiny-rgb-odd", "paper", "fast"])
def test_batched_region_cnn_matches_per_region_reference(preset, tiny_config):
    if preset.startswith("tiny"):
        config = tiny_config
        if preset == "tiny-rgb-odd":  # the grouped (not depthwise) conv1, odd sizes for the pooling
            config = MieConfig.from_dict({**tiny_config.to_dict(), "num_channels": 3, "crop_scale": 0.85})
            assert (config.crop_size[0] // 2) % 2 == 1  # the second pooling meets an odd height
    else:
        config = MieConfig.from_preset(preset)
    torch.manual_seed(2)
    batched = MieForVideoClassification(config).region_cnn.eval()
    reference = MieRegionCNNReference(config).load_from_batched(batched).eval()
    # more frames than one chunk, and not a multiple of it
    x = torch.rand(batched.frames_per_chunk(*config.crop_size) * 2 + 3, config.num_regions, config.num_channels, *config.crop_size)
    with torch.no_grad():
        f1, l1 = batched(x)
        f2, l2 = reference(x)
    torch.testing.assert_close(f1, f2, rtol=0, atol=1e-5)
    torch.testing.assert_close(l1, l2, rtol=0, atol=1e-5)
    assert f1.abs().max() > 0  # a dead network would match trivially
    # with gradients the batched CNN takes other kernels (grouped conv1, indexed pooling)
    f3, l3 = batched(x)
    torch.testing.assert_close(f3.detach(), f2, rtol=0, atol=1e-5)
    torch.testing.assert_close(l3.detach(), l2, rtol=0, atol=1e-5)


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="allowed values"):
        MieConfig.from_preset("huge")
    with pytest.raises(ValueError, match="num_channels"):
        MieConfig(num_channels=2)
    with pytest.raises(ValueError, match="box"):
        MieConfig(regions=[{"name": "a", "box": [0, 0, 500, 10], "emotions": ["negative"]}])
    with pytest.raises(ValueError, match="not labels"):
        MieConfig(regions=[{"name": "a", "box": [0, 0, 10, 10], "emotions": ["joy"]}])
    with pytest.raises(ValueError, match="repeats"):
        MieConfig(regions=[{"name": "a", "box": [0, 0, 10, 10], "emotions": []}] * 2)
    with pytest.raises(ValueError, match="focal_alpha"):
        MieConfig(focal_alpha=[1.0, 2.0])
    paper = MieConfig.from_preset("paper")
    assert paper.crop_size == (80, 160)
    assert paper.region_crop_sizes == [(80, 100), (80, 100), (80, 120), (60, 60), (60, 60), (60, 160)]
    assert MieConfig.from_preset("fast").crop_size == (40, 80)
    assert MieConfig.from_preset("fast", lstm_hidden_size=33).lstm_hidden_size == 33


def test_region_labels_from_table_and_from_action_units():
    config = MieConfig()
    not_me = config.not_me_id
    positive = config.label2id["positive"]
    # the table: cheeks and mouth answer to positive
    assert config.region_labels(positive) == [not_me, not_me, not_me, positive, positive, positive]
    # a clip's own AUs decide when present: AU1+AU2 act on the brows only
    surprise = config.label2id["surprise"]
    assert config.region_labels(surprise, [1, 2]) == [surprise, surprise] + [not_me] * 4
    with pytest.raises(ValueError):
        config.region_labels(7)


# ---------------------------------------------------------------------------- save / load
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_config_factory):
    """A tiny model saved with save_pretrained, with an input and its logits stored beside it."""
    tiny_config = tiny_config_factory()
    folder = tmp_path_factory.mktemp("saved") / "model"
    torch.manual_seed(5)
    model = MieForVideoClassification(tiny_config).eval()
    # fitted feature statistics are buffers that must travel with the weights
    model.temporal.fit_feature_statistics(torch.rand(50, tiny_config.num_regions, tiny_config.region_feature_size) * 3)
    model.save_pretrained(folder)
    pixel_values, mask = _clips(tiny_config, [4, 2], seed=9)
    with torch.no_grad():
        logits = model(pixel_values, frame_mask=mask).logits
    torch.save({"pixel_values": pixel_values, "frame_mask": mask, "logits": logits}, folder.parent / "io.pt")
    return folder


def test_save_pretrained_writes_safetensors_auto_map_and_code(saved_model):
    names = {p.name for p in saved_model.iterdir()}
    assert {"config.json", "model.safetensors", "configuration_mie.py", "modeling_mie.py"} <= names
    assert not any(n.endswith(".bin") for n in names)
    auto_map = json.loads((saved_model / "config.json").read_text())["auto_map"]
    assert auto_map["AutoConfig"] == "configuration_mie.MieConfig"
    assert auto_map["AutoModel"] == "modeling_mie.MieForVideoClassification"
    assert auto_map["AutoModelForVideoClassification"] == "modeling_mie.MieForVideoClassification"


def test_from_pretrained_gives_identical_logits(saved_model):
    from transformers import AutoModel, AutoModelForVideoClassification

    io = torch.load(saved_model.parent / "io.pt")
    reference = None
    for loader in (MieForVideoClassification, AutoModelForVideoClassification, AutoModel):
        model = loader.from_pretrained(saved_model).eval()
        assert isinstance(model, MieForVideoClassification)
        state = model.state_dict()
        if reference is None:
            reference = state
            assert torch.all(state["temporal.feature_std"] != 1)  # the fitted buffers came back
        assert all(torch.equal(state[k], reference[k]) for k in reference)
        with torch.no_grad():
            logits = model(io["pixel_values"], frame_mask=io["frame_mask"]).logits
        # bit-identical weights; oneDNN may pick other kernels for other memory alignments
        torch.testing.assert_close(logits, io["logits"], rtol=0, atol=1e-6)


# Runs in a fresh interpreter where `import modeling_mie` fails, so only the code files saved
# beside the weights can define the model.
_REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_mie"] = None  # the package cannot be imported
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification
    try:
        import modeling_mie  # noqa: F401
        raise SystemExit("the package was importable")
    except ImportError:
        pass
    source, io_path = sys.argv[1], sys.argv[2]
    io = torch.load(io_path)
    config = AutoConfig.from_pretrained(source, trust_remote_code=True)
    assert type(config).__module__.startswith("transformers_modules"), type(config).__module__
    for auto in (AutoModelForVideoClassification, AutoModel):
        model = auto.from_pretrained(source, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(io["pixel_values"], frame_mask=io["frame_mask"]).logits
        torch.testing.assert_close(logits, io["logits"], rtol=0, atol=1e-6)
    print("REMOTE-OK", type(model).__name__)
    """
)


def _run_isolated(args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(env_extra or {})
    env["PYTHONPATH"] = ""
    proc = subprocess.run(
        [sys.executable, "-c", _REMOTE_SCRIPT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REMOTE-OK MieForVideoClassification" in proc.stdout
    return proc


def test_remote_code_loads_without_the_package(saved_model, tmp_path):
    _run_isolated(
        [str(saved_model), str(saved_model.parent / "io.pt")],
        env_extra={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
    )


def test_hub_cache_snapshot_loads_by_repo_id_offline(saved_model, tmp_path):
    """A folder laid out like the Hub cache (refs/main, snapshots/<commit>, blobs) loads by id."""
    repo_dir = tmp_path / "hf" / "hub" / "models--mie-test--tiny-mie"
    commit = hashlib.sha1(b"mie-test").hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for path in saved_model.iterdir():
        data = path.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    _run_isolated(
        ["mie-test/tiny-mie", str(saved_model.parent / "io.pt")],
        env_extra={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
    )


def test_every_name_the_package_offers_lazily_resolves():
    """`from modeling_mie import X` for each lazily imported name: a module split that moves X must
    move its entry in `_LAZY` too (a split once left render_synthetic_clip pointing at synthetic)."""
    import modeling_mie

    broken = []
    for name, module in modeling_mie._LAZY.items():
        try:
            value = getattr(modeling_mie, name)
        except (AttributeError, ImportError) as err:
            broken.append(f"{name} (from {module}): {err}")
            continue
        assert getattr(value, "__name__", name) == name or not callable(value), name
    assert not broken, broken
