"""Model card rendering, Hub folder checks, and a real push / download round trip against tests/hub_server.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from conftest import REPO, SHARED
from hub_server import LocalHub
from modeling_mie import MieForVideoClassification, MieInputError, MieProcessor
from modeling_mie.hub import default_template_path, push_folder_to_hub, render_model_card, validate_model_folder

# megc_scores-shaped results for three databases; values chosen so 4-decimal rounding shows.
RESULTS = {
    "full": {"uf1": 0.612345, "uar": 0.598765, "clips": 442, "subjects": 68},
    "casme2": {"uf1": 0.70001, "uar": 0.71234, "clips": 145, "subjects": 24},
    "samm": {"uf1": 0.55557, "uar": 0.56789, "clips": 133, "subjects": 28},
    "smic": {"uf1": 0.50123, "uar": 0.52345, "clips": 164, "subjects": 16},
}
SYNTHETIC_STATEMENT = "not a real micro-expression recogniser"


def _card(config, *, synthetic: bool, model_id: str = "mie-test/tiny-mie", **overrides) -> str:
    kwargs = dict(
        model_id=model_id,
        data_description="The synthetic `tiny` profile, seed 0.",
        protocol="One fold per subject, seed 0.",
        preset="fast",
        config=config,
        training={"stage1_epochs": 3, "learning_rate": 1e-3, "note": "a|b"},
        limitations="Tiny test model.",
        synthetic=synthetic,
    )
    kwargs.update(overrides)
    return render_model_card(RESULTS, **kwargs)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tiny_config_factory) -> Path:
    """A Hub-ready folder: tiny model + processor (remote-code files) + rendered README.md."""
    folder = tmp_path_factory.mktemp("hub") / "tiny-mie"
    torch.manual_seed(0)
    model = MieForVideoClassification(tiny_config_factory()).eval()
    # Fitted feature statistics are buffers: the round trip must carry them too.
    config = model.config
    model.temporal.fit_feature_statistics(torch.rand(50, config.num_regions, config.region_feature_size) * 3)
    model.save_pretrained(folder)
    MieProcessor.from_config(model.config).save_pretrained(folder)
    (folder / "README.md").write_text(_card(model.config, synthetic=True), encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------ model card
def test_template_copy_in_package_matches_repository_root():
    root = (REPO / "model_card.md").read_bytes()
    assert default_template_path().read_bytes() == root, (
        "modeling_mie/resources/model_card.md differs from model_card.md: "
        "run `cp model_card.md modeling_mie/resources/model_card.md`."
    )


@pytest.mark.parametrize("synthetic", [True, False])
def test_card_model_index_round_trips(tmp_path, tiny_config, synthetic):
    path = tmp_path / "README.md"
    path.write_text(_card(tiny_config, synthetic=synthetic), encoding="utf-8")
    data = ModelCard.load(path).data

    assert data.library_name == "transformers"
    assert data.pipeline_tag == "video-classification"
    assert data.license == "apache-2.0"
    assert "micro-expression" in data.tags
    assert ("synthetic-data" in data.tags) is synthetic
    assert data.model_name == "mie-test/tiny-mie"
    got = {(r.dataset_config, r.metric_type): r for r in data.eval_results}
    assert set(got) == {(db, m) for db in RESULTS for m in ("uf1", "uar")}
    for (db, metric), result in got.items():
        assert result.metric_value == pytest.approx(round(RESULTS[db][metric], 4), abs=1e-12)
        assert result.task_type == "video-classification"
        assert result.dataset_split == "loso"
        assert result.dataset_args == {"clips": RESULTS[db]["clips"], "subjects": RESULTS[db]["subjects"]}
    full = got[("full", "uf1")]
    if synthetic:
        assert full.dataset_type == "mie-synthetic" and "synthetic" in full.dataset_name
    else:
        assert full.dataset_type == "megc2019"
        assert full.dataset_name == "MEGC 2019 composite (SMIC + CASME II + SAMM)"
        assert got[("samm", "uar")].dataset_name.endswith("SAMM part")


def test_card_body(tiny_config):
    synthetic = _card(tiny_config, synthetic=True)
    real = _card(tiny_config, synthetic=False)

    assert SYNTHETIC_STATEMENT in synthetic and "SYNTHETIC" in synthetic
    assert SYNTHETIC_STATEMENT not in real and "SYNTHETIC" not in real
    # The statement comes before anything else of the body, where nobody can miss it.
    assert synthetic.index(SYNTHETIC_STATEMENT) < synthetic.index("## Model")
    for card in (synthetic, real):
        assert "python train/loso.py --dataset casme2=" in card and "--megc2019" in card
        assert 'AutoModelForVideoClassification.from_pretrained("mie-test/tiny-mie", trust_remote_code=True)' in card
        assert 'AutoProcessor.from_pretrained("mie-test/tiny-mie", trust_remote_code=True)' in card
        assert "| full | 0.6123 | 0.5988 | 442 | 68 |" in card
        assert "| SAMM" in card and "| 0.5556 | 0.5679 | 133 | 28 |" in card
        # Regions and labels come from the config, not from the paper's defaults.
        assert "| middle | 4, 12, 20, 28 | 16 x 16 | negative |" in card
        assert "negative, positive, surprise, fear, other" in card
        assert "| note | a\\|b |" in card  # a "|" in a value must not split the table cell
        assert "Tiny test model." in card and "seed 0." in card
        assert "selection on the test set" in card  # the caveat on published numbers
        assert "{{" not in card and "{%" not in card
    # The order of the per-database rows is the MEGC tables' order.
    assert real.index("| SMIC |") < real.index("| CASME II |") < real.index("| SAMM |")


def test_card_carries_the_published_results_table():
    """The context table is DATASETS.md's "Published results" table, row for row."""
    datasets_md = SHARED / "DATASETS.md"
    if not datasets_md.is_file():
        pytest.skip(f"{datasets_md} is not beside the checkout; it is the source the table was copied from.")
    text = datasets_md.read_text(encoding="utf-8").split("## Published results", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| ") and "/" in line]
    assert len(rows) == 6
    template = default_template_path().read_text(encoding="utf-8")
    for row in rows:
        assert row in template


def test_card_with_custom_template_and_bad_results(tmp_path, tiny_config):
    template = tmp_path / "card.md"
    template.write_text("---\n{{ card_data }}\n---\n\n# {{ model_id }} on {{ dataset_name }}\n", encoding="utf-8")
    card = _card(tiny_config, synthetic=False, template_path=template, dataset_name="My data", dataset_type="mine")
    assert "# mie-test/tiny-mie on My data" in card
    path = tmp_path / "README.md"
    path.write_text(card, encoding="utf-8")
    assert {r.dataset_type for r in ModelCard.load(path).data.eval_results} == {"mine"}

    template.write_text("---\n{{ card_data }}\n---\n{{ misspelt_name }}\n", encoding="utf-8")
    with pytest.raises(Exception, match="misspelt_name"):
        _card(tiny_config, synthetic=False, template_path=template)
    with pytest.raises(ValueError, match="megc_scores"):
        render_model_card({"smic": RESULTS["smic"]}, **{k: v for k, v in _card_kwargs(tiny_config).items()})
    with pytest.raises(ValueError, match="uar"):
        render_model_card({"full": {"uf1": 0.5, "clips": 1, "subjects": 1}}, **_card_kwargs(tiny_config))


def _card_kwargs(config) -> dict:
    return dict(model_id="m/x", data_description="d", protocol="p", preset="fast", config=config,
                training={}, limitations="", synthetic=False)


# --------------------------------------------------------------------------------- folder checks
def test_validate_model_folder(model_folder, tmp_path):
    assert validate_model_folder(model_folder) == []

    assert "not a folder" in validate_model_folder(tmp_path / "nope")[0]

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("configuration_mie.py", "modeling_mie.py", "processing_mie.py", "landmarks.py", "video.py"):
        (broken / name).write_bytes((model_folder / name).read_bytes())
    # config.json whose auto_map lacks AutoModel; errors.py (imported by processing_mie.py) absent.
    config = (model_folder / "config.json").read_text().replace('"AutoModel":', '"NotAutoModel":')
    (broken / "config.json").write_text(config)
    (broken / "preprocessor_config.json").write_bytes((model_folder / "preprocessor_config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x00" * 4)
    (broken / "README.md").write_text("# no metadata\n")
    problems = "\n".join(validate_model_folder(broken))
    assert "auto_map lacks AutoModel" in problems and "AutoModelForVideoClassification" not in problems
    assert "model.safetensors is too short" in problems
    assert "errors.py is missing" in problems
    assert "README.md has no YAML header" in problems


# ------------------------------------------------------------------------------------ round trip
_DOWNLOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from huggingface_hub import snapshot_download
    from safetensors.torch import save_file
    from transformers import AutoModelForVideoClassification, AutoProcessor

    repo_id, io_path, out_path = sys.argv[1:4]
    torch.set_num_threads(1)
    model = AutoModelForVideoClassification.from_pretrained(repo_id, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)
    io = torch.load(io_path)
    with torch.no_grad():
        logits = model(io["pixel_values"], frame_mask=io["frame_mask"]).logits
    tensors = {f"state.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file({**tensors, "logits": logits}, out_path)
    print("MODULES", type(model).__module__, type(processor).__module__)
    print("SNAPSHOT", snapshot_download(repo_id))
    """
)


def test_push_then_download_round_trip(model_folder, tmp_path):
    from safetensors.torch import load_file

    repo_id = "mie-test/tiny-mie"
    model = MieForVideoClassification.from_pretrained(model_folder).eval()
    config = model.config
    torch.manual_seed(1)
    # (batch, frames, regions, channels, height, width); the second clip has 2 padded frames.
    pixel_values = torch.rand(2, 6, config.num_regions, config.num_channels, *config.crop_size)
    frame_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    torch.save({"pixel_values": pixel_values, "frame_mask": frame_mask}, tmp_path / "io.pt")

    with LocalHub(tmp_path / "hub") as hub:
        url = push_folder_to_hub(model_folder, repo_id, token=hub.token, endpoint=hub.url)
        repo = hub.store.repos[repo_id]
        assert url.endswith(repo.head.oid)
        # README.md alone in the last commit; every other file in the one before it.
        assert repo.head.changed == ["README.md"]
        others = sorted(p.name for p in model_folder.iterdir() if p.name != "README.md")
        assert sorted(repo.commits[-2].changed) == others
        assert ("POST", "/api/validate-yaml") in hub.requests

        # Pushing again changes nothing: no new commit, and the returned URL is still the head.
        assert push_folder_to_hub(model_folder, repo_id, token=hub.token, endpoint=hub.url) == url
        assert len(repo.commits) == 3  # initial commit, files, card

        # Download in a clean process: only HF_ENDPOINT leads to the server, a fresh HF_HOME
        # holds nothing, and the package is not importable, so the remote code must load.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
                   PYTHONPATH="", OMP_NUM_THREADS="1")
        out = tmp_path / "downloaded.safetensors"
        proc = subprocess.run(
            [sys.executable, "-c", _DOWNLOAD_SCRIPT, repo_id, str(tmp_path / "io.pt"), str(out)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("MODULES", "SNAPSHOT")))
    model_module, processor_module = lines["MODULES"].split()
    assert model_module.startswith("transformers_modules") and processor_module.startswith("transformers_modules")

    # Every file came back byte for byte (the snapshot also holds the repo's .gitattributes).
    snapshot = Path(lines["SNAPSHOT"])
    for path in model_folder.iterdir():
        assert (snapshot / path.name).read_bytes() == path.read_bytes(), path.name

    downloaded = load_file(out)
    state = model.state_dict()
    assert {k.removeprefix("state.") for k in downloaded if k.startswith("state.")} == set(state)
    for key, value in state.items():
        assert torch.equal(downloaded[f"state.{key}"], value), key
    with torch.no_grad():
        logits = model(pixel_values, frame_mask=frame_mask).logits
    assert logits.shape == (2, config.num_labels)
    torch.testing.assert_close(downloaded["logits"], logits, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------- errors
def test_push_refuses_bad_folders(tmp_path):
    with pytest.raises(MieInputError, match="not a folder.*save_pretrained"):
        push_folder_to_hub(tmp_path / "missing", "mie-test/x", token="t", endpoint="http://127.0.0.1:9")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MieInputError) as error:
        push_folder_to_hub(tmp_path / "empty", "mie-test/x", token="t", endpoint="http://127.0.0.1:9")
    message = str(error.value)
    assert "config.json is missing" in message and "model.safetensors is missing" in message
    assert "README.md is missing" in message


def test_push_refuses_bad_repo_id(model_folder):
    with pytest.raises(MieInputError, match="namespace/name"):
        push_folder_to_hub(model_folder, "no-namespace", token="t", endpoint="http://127.0.0.1:9")


def test_push_without_token_says_how_to_log_in(model_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # No token anywhere huggingface_hub looks: environment, then the token file of HF_HOME.
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with LocalHub(tmp_path / "hub") as hub:
        with pytest.raises(MieInputError, match="hf auth login.*HF_TOKEN"):
            push_folder_to_hub(model_folder, "mie-test/x", endpoint=hub.url)
        assert hub.requests == []  # refused before any request


def test_push_with_a_refused_token(model_folder, tmp_path):
    with LocalHub(tmp_path / "hub") as hub:
        with pytest.raises(MieInputError, match=r"refused the token \(HTTP 401\).*hf auth login"):
            push_folder_to_hub(model_folder, "mie-test/x", token="hf_wrong", endpoint=hub.url)
        assert hub.store.repos == {}


def test_push_to_an_unreachable_endpoint(model_folder):
    # A port that was free a moment ago: connection refused, at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MieInputError, match="Could not reach the Hub at http://127.0.0.1:.*HF_ENDPOINT"):
        push_folder_to_hub(model_folder, "mie-test/x", token="t", endpoint=f"http://127.0.0.1:{port}")
