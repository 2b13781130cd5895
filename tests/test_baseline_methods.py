"""The compared methods as LOSO methods on the synthetic tiny set: each learns (above chance on
held-out subjects), folds are honest, inputs are computed once, `--seeds` and the Table 2 command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling_mie import MieConfig, MieInputError
from modeling_mie.baselines import methods
from modeling_mie.metrics import uf1

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("baselines")


def command(script: str, *args, check=True):
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, str(REPO / "train" / script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def tiny_rows(synthetic_tiny, tmp_path_factory):
    """The tiny set's rows as `train/loso.py` sees them (region cache of the fast preset)."""
    from modeling_mie.loso import prepare_data

    cache = tmp_path_factory.mktemp("baseline-cache")
    data = prepare_data({"synthetic": synthetic_tiny.root}, False, MieConfig.from_preset("fast"), cache)
    return data, cache


@pytest.fixture(scope="module")
def flow_inputs(tiny_rows):
    data, cache = tiny_rows
    folder = cache / "baselines"
    counts = methods.prepare_inputs(data.rows, "biwoof", folder, progress=False)
    return data.rows, folder, counts


def loso_uf1(rows, fit_predict) -> float:
    """Pooled UF1 of leave-one-subject-out predictions of `fit_predict(train_mask, test_mask)`."""
    subjects = np.array([r["subject"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    predictions = np.empty_like(labels)
    for subject in sorted(set(subjects)):
        test = subjects == subject
        predictions[test] = fit_predict(~test, test)
    return uf1(labels, predictions)


def test_flow_inputs_are_computed_once_and_flag_estimated_apexes(flow_inputs):
    rows, folder, counts = flow_inputs
    assert counts["clips"] == 30 and counts["computed"] == 30
    assert counts["apex_estimated"] == sum(bool(r["apex_estimated"]) for r in rows) > 0  # SMIC: no annotated apex
    again = methods.prepare_inputs(rows, "ststnet", folder, progress=False)  # the CNNs share Bi-WOOF's flow
    assert again["computed"] == 0
    flow = np.load(methods.input_path(folder, rows[0], "flow"))
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32 and np.abs(flow).max() > 0.05
    assert methods.load_inputs(folder, rows, "biwoof").shape == (30, 200)
    assert methods.load_inputs(folder, rows, "offapexnet").shape == (30, 3, 28, 28)


def test_an_apex_on_the_onset_moves_to_the_middle_frame():
    row = {"onset_index": 4, "apex_index": 4, "offset_index": 20, "frames": ["f"] * 30, "subject": "s", "clip": "c"}
    assert methods.clip_positions(row) == (4, 12, 20, True)
    assert methods.clip_positions({**row, "apex_index": 9}) == (4, 9, 20, False)
    with pytest.raises(MieInputError, match="no frame after its onset"):
        methods.clip_positions({**row, "onset_index": 29, "apex_index": 29, "offset_index": 29})
    with pytest.raises(MieInputError, match="Unknown method"):
        methods.check_method("htnet")


@pytest.mark.parametrize("name", ["offapexnet", "ststnet", "dual_inception"])
def test_each_flow_cnn_learns_the_tiny_set_above_chance_on_held_out_subjects(flow_inputs, name):
    from dataclasses import replace

    from modeling_mie.baselines.flownets import PAPER_SCHEDULES, train_flow_net

    rows, folder, _ = flow_inputs
    x = methods.load_inputs(folder, rows, name)
    y = np.array([r["label"] for r in rows])
    # a short schedule (the paper's is for hundreds of clips); a larger rate keeps it short
    schedule = replace(PAPER_SCHEDULES[name], epochs=60, batch_size=8, lr=1e-3)

    def fit_predict(train, test):
        return train_flow_net(name, x[train], y[train], x[test], seed=0, schedule=schedule).probabilities.argmax(1)

    score = loso_uf1(rows, fit_predict)
    assert score > 0.5, f"{name}: UF1 {score:.3f} on held-out subjects (chance about 0.33)"


def test_svm_baselines_learn_and_seeds_and_table_command(synthetic_tiny, tiny_rows, tmp_path):
    """`train/loso.py --method lbptop|biwoof --seeds` on the tiny set: honest folds, above-chance
    UF1, a summary over seeds; then `train/table2.py` writes the table from those runs."""
    _, cache = tiny_rows
    out = tmp_path / "table"
    for method in ("lbptop", "biwoof"):
        proc = command("loso.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--cache-dir", cache, "--method",
                       method, "--seeds", "0", "1", "--report-leakage", "--resume", "--no-final", "--output-dir",
                       out / method, "--threads", "1")
        assert f"method {method}" in proc.stdout
        summary = json.loads((out / method / "results.json").read_text())
        assert summary["seeds"] == [0, 1] and summary["method"] == method
        honest = summary["honest"]["full"]["uf1"]
        assert honest["mean"] > 0.5, f"{method}: UF1 {honest['mean']:.3f} on held-out subjects (chance about 0.33)"
        assert honest["std"] == 0.0  # nothing random in an SVM: every seed agrees
        assert "leaky" not in summary  # no epochs, nothing a best-epoch protocol could pick
        lo, hi = summary["bootstrap"]["scopes"]["full"]["uf1"]
        assert lo <= honest["mean"] <= hi
        for seed in (0, 1):
            run = out / method / f"seed-{seed}"
            for path in (run / "folds").glob("*.json"):
                record = json.loads(path.read_text())
                assert record["fold"] not in record["train_subjects"] and len(record["train_subjects"]) == 8
                assert record["method"] == method and record["device"] == "cpu"  # scikit-learn's SVMs
                # SMIC has no annotated apex: its clips use the estimated one, flagged per prediction
                apexes = {p["apex"] for p in record["predictions"]}
                if record["database"] != "samm":  # (one tiny SAMM apex lies past its frames: clamped, estimated)
                    assert apexes == {"estimated" if record["database"] == "smic" else "annotated"}, record["fold"]
            assert not (run / "model").exists()
    table = command("table2.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--output-dir", out,
                    "--methods", "lbptop", "biwoof", "--seeds", "0", "1", "--cache-dir", cache)
    assert "finished earlier" in table.stdout
    text = (out / "table2.md").read_text()
    assert "| LBP-TOP + SVM |" in text and "| Bi-WOOF + SVM |" in text
    assert "*0.588*" in text and "*0.630*" in text  # the reported figures beside the measured ones
    assert json.loads((out / "table2.json").read_text())["methods"].keys() == {"lbptop", "biwoof"}
    # the seeds finished so far can be tabled on their own, from the seed runs
    command("table2.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--output-dir", out, "--table-only",
            "--methods", "lbptop", "--seeds", "1")
    one = json.loads((out / "table2.json").read_text())["methods"]["lbptop"]
    assert one["seeds"] == [1] and "seeds 1;" in (out / "table2.md").read_text()
    assert one["honest"]["full"]["uf1"]["mean"] == pytest.approx(
        json.loads((out / "lbptop" / "seed-1" / "results.json").read_text())["scores"]["full"]["uf1"])


def test_bad_method_arguments_are_clear(synthetic_tiny, tmp_path):
    proc = command("loso.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--method", "htnet",
                   "--output-dir", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
    proc = command("loso.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--seeds", "0", "0",
                   "--output-dir", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "each seed once" in proc.stderr
    # the compared methods train in float32 and fold by fold: the project's options are refused, in one line
    proc = command("loso.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--method", "ststnet",
                   "--precision", "bf16", "--output-dir", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "--method ststnet trains in fp32" in proc.stderr and "Traceback" not in proc.stderr
    proc = command("loso.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--method", "ststnet",
                   "--stack-folds", "2", "--output-dir", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "trains its folds one by one" in proc.stderr
    proc = command("table2.py", "--dataset", f"synthetic={synthetic_tiny.root}", "--output-dir", tmp_path / "t",
                   "--table-only", check=False)
    assert proc.returncode == 2 and "No finished method" in proc.stderr
    # a method whose run stops: the table command says so, and its time is kept
    proc = command("table2.py", "--dataset", f"synthetic={tmp_path}", "--output-dir", tmp_path / "t",
                   "--methods", "lbptop", check=False)
    assert proc.returncode == 2 and "--method lbptop stopped (exit 2)" in proc.stderr
    times = json.loads((tmp_path / "t" / "times.json").read_text())
    assert times["lbptop"][0]["exit"] == 2 and times["lbptop"][0]["seconds"] > 0


def test_a_cnn_run_resumes_with_the_same_settings_and_not_with_others(tmp_path):
    from modeling_mie.loso import TRAINING_PRESETS, check_or_write_run, run_identity

    rows = [{"subject": "casme2/sub01", "clip": "EP01", "label": 0, "cache_key": "k"}]
    config = MieConfig.from_preset("fast")
    identity = run_identity(config, TRAINING_PRESETS["fast"], rows, 0, True, method="ststnet", report_epochs=True)
    assert check_or_write_run(tmp_path, identity, resume=False) == 0
    # the schedule holds tuples (Adam's betas), which the run file stores as lists
    assert check_or_write_run(tmp_path, identity, resume=True) == 0
    other = run_identity(config, TRAINING_PRESETS["fast"], rows, 0, True, method="ststnet", report_epochs=True, preset="paper")
    with pytest.raises(MieInputError, match="method differ"):
        check_or_write_run(tmp_path, other, resume=True)
