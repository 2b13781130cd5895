"""`python train/loso.py` end to end on the synthetic tiny profile: outputs, honesty, resume, workers, Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling_mie.metrics import read_megc_log

REPO = Path(__file__).resolve().parents[1]
# one worker runs the whole module, so the module's LOSO run is made once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("loso")
SUBJECTS = [f"casme2/sub0{i}" for i in (1, 2, 3)] + [f"samm/00{i}" for i in (6, 7, 9)] + [f"smic/s{i}" for i in (1, 2, 3)]
# a short schedule: the test checks the machinery, not accuracy
QUICK = ["--stage1-epochs", "2", "--stage2-epochs", "8", "--num-frames", "8", "--threads", "1"]


def loso(*args, check=True):
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train" / "loso.py"), *map(str, args)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def full_run(synthetic_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("loso") / "run"
    cache = tmp_path_factory.mktemp("cache")
    proc = loso("--dataset", f"synthetic={synthetic_tiny.root}", "--output-dir", out, "--cache-dir", cache, *QUICK)
    return out, cache, proc


def test_every_output_file_is_written(full_run):
    out, _, proc = full_run
    assert "mie LOSO | preset fast" in proc.stdout and "9 subjects; 9 folds" in proc.stdout
    assert "| full | 30 | 9 |" in proc.stdout
    for name in ("run.json", "config_used.json", "results.json", "results.md", "predictions.log", "confusion_matrix.png",
                 "reliability.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for key in SUBJECTS:
        stem = key.replace("/", "__")
        assert (out / "folds" / f"{stem}.json").is_file() and (out / "folds" / f"{stem}.log").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["folds"] == 9 and results["clips"] == 30
    calibration = results["calibration"]
    assert calibration["clips"] == 30 and 0 <= calibration["ece_after"] <= 1 and calibration["temperature"] > 0
    assert "calibration: ECE" in proc.stdout and "temperature scaling" in (out / "results.md").read_text()
    assert set(results["scores"]) == {"full", "casme2", "samm", "smic"}
    assert sum(map(sum, results["confusion_matrix"])) == 30
    assert len(read_megc_log(out / "predictions.log")) == 30
    used = json.loads((out / "config_used.json").read_text())
    assert used["schedule"]["stage1_epochs"] == 2 and used["model_config"]["model_type"] == "mie"
    assert used["cnn_kernels"] == "auto"
    fold = json.loads((out / "folds" / "samm__007.json").read_text())
    assert fold["cnn_kernels"] == "pytorch" and fold["device"].startswith("cpu")  # what ran the region CNN
    assert "| full | 30 | 9 |" in (out / "results.md").read_text()


def test_no_held_out_subject_reaches_either_stage(full_run):
    out, _, _ = full_run
    for key in SUBJECTS:
        fold = json.loads((out / "folds" / (key.replace("/", "__") + ".json")).read_text())
        others = sorted(set(SUBJECTS) - {key})
        assert fold["fold"] == key
        assert fold["stage1_subjects"] == others, key
        assert fold["stage2_subjects"] == others, key
        assert fold["train_clips"] + fold["test_clips"] == 30


def test_final_model_folder_is_hub_ready_and_loads(full_run):
    out, _, _ = full_run
    from modeling_mie.hub import validate_model_folder

    model_dir = out / "model"
    assert validate_model_folder(model_dir) == []
    card = (model_dir / "README.md").read_text()
    assert "SYNTHETIC" in card.upper() and "model-index" in card
    cal = json.loads((out / "results.json").read_text())["calibration"]
    assert f"`temperature` = {cal['temperature']:.4f}" in card and f"{cal['ece_after']:.4f} scaled" in card
    from huggingface_hub import ModelCard

    results = json.loads((out / "results.json").read_text())
    metrics = {(r.dataset_config, r.metric_type): r.metric_value for r in ModelCard.load(model_dir / "README.md").data.eval_results}
    assert metrics[("full", "uf1")] == pytest.approx(results["scores"]["full"]["uf1"], abs=1e-4)
    from transformers import AutoImageProcessor, AutoModelForVideoClassification

    model = AutoModelForVideoClassification.from_pretrained(model_dir)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    assert model.config.crop_size == tuple(processor.crop_size)
    # the processor asks for frames the way the model was trained: 8 evenly spaced
    assert processor.frame_sampling == "uniform" and processor.num_frames == 8
    assert model.temporal.feature_std.ne(1).any()  # stage 2 fitted its standardisation
    # its confidence is calibrated on the run's out-of-fold predictions
    assert model.config.temperature == pytest.approx(results["calibration"]["temperature"], abs=1e-4)
    assert model.config.trained_motion_peak is None  # grey crops: no motion peak to compare with


def test_a_flow_model_records_how_far_its_training_clips_moved():
    from modeling_mie.loso import trained_motion_peak

    rows = [{"motion_peak": float(v)} for v in range(1, 101)] + [{"motion_peak": float("nan")}]
    assert trained_motion_peak(rows) == pytest.approx(99.01)
    assert trained_motion_peak([{"motion_peak": float("nan")}, {}]) is None


def test_resume_skips_finished_folds_and_redoes_a_lost_one(full_run, synthetic_tiny):
    out, cache, _ = full_run
    lost = out / "folds" / "samm__007.json"
    before = json.loads(lost.read_text())
    kept = out / "folds" / "casme2__sub01.json"
    kept_mtime = kept.stat().st_mtime_ns
    lost.unlink()
    common = ["--dataset", f"synthetic={synthetic_tiny.root}", "--output-dir", out, "--cache-dir", cache, *QUICK]
    # without --resume an existing run is refused, with a clear message and no traceback
    refused = loso(*common, "--no-final", check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr and "Traceback" not in refused.stderr
    proc = loso(*common, "--resume", "--no-final")
    assert "8 folds already finished" in proc.stdout
    assert kept.stat().st_mtime_ns == kept_mtime
    again = json.loads(lost.read_text())
    assert again["predictions"] == before["predictions"]  # deterministic given the seed
    # other settings: refused
    changed = loso(*common, "--resume", "--no-final", "--seed", "7", check=False)
    assert changed.returncode == 2 and "seed" in changed.stderr


def test_parallel_workers_and_ray_give_the_same_folds(full_run, synthetic_tiny, tmp_path):
    out, cache, _ = full_run
    folds = ["casme2/sub02", "smic/s1"]
    common = ["--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", cache, "--folds", *folds, "--no-final", *QUICK]
    loso(*common, "--output-dir", tmp_path / "workers", "--workers", "2")
    import ray  # noqa: F401 - the `all` extra installs it; the Ray path is tested, not skipped
    loso(*common, "--output-dir", tmp_path / "ray", "--ray", "local")
    for key in folds:
        name = key.replace("/", "__") + ".json"
        reference = json.loads((out / "folds" / name).read_text())["predictions"]
        assert json.loads((tmp_path / "workers" / "folds" / name).read_text())["predictions"] == reference
        assert json.loads((tmp_path / "ray" / "folds" / name).read_text())["predictions"] == reference


def test_stacked_folds_give_the_folds_trained_one_by_one(full_run, synthetic_tiny, tmp_path):
    """--stack-folds 3: stage 1 of three folds as one stacked model gives each fold what the
    module's fold-by-fold run gave it (to rounding), says which folds stacked, and resumes."""
    out, cache, _ = full_run
    folds = ["casme2/sub01", "samm/006", "smic/s2"]
    run = tmp_path / "stacked"
    common = ["--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", cache, "--folds", *folds, "--no-final",
              "--output-dir", run, "--stack-folds", "3", *QUICK]
    proc = loso(*common)
    assert "stage 1 of 3 folds at once" in proc.stdout
    assert json.loads((run / "config_used.json").read_text())["stack_folds"] == 3

    def fold(root, key):
        return json.loads((root / "folds" / (key.replace("/", "__") + ".json")).read_text())

    for key in folds:
        stacked, alone = fold(run, key), fold(out, key)
        assert stacked["stage1_stacked_with"] == folds
        assert [p["prediction"] for p in stacked["predictions"]] == [p["prediction"] for p in alone["predictions"]]
        np.testing.assert_allclose(
            [p["probabilities"] for p in stacked["predictions"]], [p["probabilities"] for p in alone["predictions"]],
            atol=2e-4,
        )
        np.testing.assert_allclose(stacked["losses"]["stage1_cnn"], alone["losses"]["stage1_cnn"], rtol=1e-4)
        assert stacked["stage1_subjects"] == alone["stage1_subjects"] and key not in stacked["stage1_subjects"]
    lost = run / "folds" / "samm__006.json"
    lost.unlink()
    proc = loso(*common, "--resume")
    assert "2 folds already finished" in proc.stdout
    assert "stage1_stacked_with" not in fold(run, "samm/006")  # alone this time: the only fold left
    assert [p["prediction"] for p in fold(run, "samm/006")["predictions"]] == [
        p["prediction"] for p in fold(out, "samm/006")["predictions"]
    ]
    refused = loso(*common[:-len(QUICK)], "--stack-folds", "0", check=False)
    assert refused.returncode == 2 and "--stack-folds must be >= 1" in refused.stderr
    refused = loso(*common[:-len(QUICK)], "--stack-folds", "many", check=False)
    assert refused.returncode == 2 and "--stack-folds many: give auto or a whole number" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "celebA=/tmp"], "Unknown dataset"),
        (["--dataset", "casme2=/no/such/folder"], "does not exist"),
        (["--dataset", "casme2"], "NAME=PATH"),
    ],
)
def test_bad_arguments_give_clear_errors(tmp_path, args, message):
    proc = loso(*args, "--output-dir", tmp_path / "out", check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_fold_is_refused(synthetic_tiny, full_run, tmp_path):
    _, cache, _ = full_run
    proc = loso("--dataset", f"synthetic={synthetic_tiny.root}", "--output-dir", tmp_path / "o", "--cache-dir", cache,
                "--folds", "casme2/sub99", check=False)
    assert proc.returncode == 2 and "no such subject" in proc.stderr


def test_push_to_hub_from_the_command(full_run, synthetic_tiny, tmp_path):
    """--push-to-hub uploads the final model folder (card last) to the Hub at HF_ENDPOINT."""
    from hub_server import LocalHub

    out, cache, _ = full_run
    with LocalHub(tmp_path / "hub") as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
        proc = subprocess.run(
            [sys.executable, str(REPO / "train" / "loso.py"), "--dataset", f"synthetic={synthetic_tiny.root}",
             "--output-dir", str(out), "--cache-dir", str(cache), *QUICK, "--resume", "--push-to-hub", "mie-test/loso"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "", **env}, timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "final model already trained" in proc.stdout and "pushed to the Hub" in proc.stdout
        repo = hub.store.repos["mie-test/loso"]
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_mie.py", "README.md"} <= set(repo.head.files)
        assert repo.commits[-1].changed == ["README.md"]  # the card lands last, in its own commit


def test_evaluate_scores_a_trained_model_on_a_dataset(full_run, synthetic_tiny, tmp_path):
    out, cache, _ = full_run
    from modeling_mie.metrics import uar, uf1

    env = {**os.environ, "PYTHONPATH": ""}
    result = tmp_path / "scores.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train" / "evaluate.py"), "--model", str(out / "model"),
         "--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", str(cache), "--output", str(result)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| full | 30 | 9 |" in proc.stdout
    record = json.loads(result.read_text())
    labels = record["labels"]
    truth = [labels.index(c["label"]) for c in record["clips"]]
    predicted = [labels.index(max(c["probabilities"], key=c["probabilities"].get)) for c in record["clips"]]
    assert len(truth) == 30
    assert record["scores"]["full"]["uf1"] == pytest.approx(uf1(truth, predicted))
    assert record["scores"]["full"]["uar"] == pytest.approx(uar(truth, predicted))
    # --card records the scores in the model's card, under the LOSO table; again replaces them
    import shutil

    model_copy = tmp_path / "model"
    shutil.copytree(out / "model", model_copy)
    for _ in range(2):
        carded = subprocess.run(
            [sys.executable, str(REPO / "train" / "evaluate.py"), "--model", str(model_copy),
             "--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", str(cache), "--card"],
            capture_output=True, text=True, env=env, timeout=900,
        )
        assert carded.returncode == 0, carded.stderr[-4000:]
    card = (model_copy / "README.md").read_text()
    line = f"UF1 {record['scores']['full']['uf1']:.4f} / UAR {record['scores']['full']['uar']:.4f} over 30 clips"
    assert card.count(line) == 1 and card.index("| full |") < card.index(line) < card.index("## Data")
    bad = subprocess.run(
        [sys.executable, str(REPO / "train" / "evaluate.py"), "--model", str(tmp_path / "none"),
         "--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", str(cache)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert bad.returncode == 2 and "error: Could not load a mie model" in bad.stderr


def test_report_leakage_keeps_per_epoch_predictions_and_changes_no_prediction(full_run, synthetic_tiny, tmp_path):
    """--report-leakage only watches: the folds' predictions are those of the run without it, the
    last epoch's probabilities are the honest ones, and the claimed best-epoch score is reported."""
    out, cache, _ = full_run
    folds = ["casme2/sub01", "samm/006", "smic/s2"]
    leak = tmp_path / "leak"
    proc = loso("--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", cache, "--folds", *folds, "--no-final",
                *QUICK, "--report-leakage", "--output-dir", leak)
    honest_hits = leaky_hits = 0
    for key in folds:
        name = key.replace("/", "__") + ".json"
        record = json.loads((leak / "folds" / name).read_text())
        assert record["predictions"] == json.loads((out / "folds" / name).read_text())["predictions"]
        epochs = np.array(record["epoch_probabilities"])
        assert epochs.shape == (8, record["test_clips"], 3)  # --stage2-epochs 8
        np.testing.assert_allclose(epochs[-1], [p["probabilities"] for p in record["predictions"]], atol=1e-4)
        labels = np.array([p["label"] for p in record["predictions"]])
        honest_hits += int((epochs[-1].argmax(1) == labels).sum())
        leaky_hits += int((epochs.argmax(2) == labels).sum(1).max())
    results = json.loads((leak / "results.json").read_text())
    claimed = results["leakage"]["scores"]["full"]
    assert results["leakage"]["epochs"] == 8 and set(results["leakage"]["best_epoch_per_fold"]) == set(folds)
    assert results["leakage"]["gap"]["full"]["uf1"] == claimed["uf1"] - results["scores"]["full"]["uf1"]
    assert leaky_hits >= honest_hits
    assert "Leakage report" in (leak / "results.md").read_text() and "leakage: best epoch per subject" in proc.stdout
    assert "95 % intervals" in (leak / "results.md").read_text()
    lo, hi = results["bootstrap"]["scopes"]["full"]["uf1"]
    assert lo <= results["scores"]["full"]["uf1"] <= hi
    # a run made without the report is not resumed with it (its folds have no epochs to report)
    again = loso("--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", cache, "--folds", *folds, "--no-final",
                 *QUICK, "--report-leakage", "--resume", "--output-dir", out, check=False)
    assert again.returncode == 2 and "report_epochs" in again.stderr
