"""train/spot_eval.py on synthetic long videos in the CAS(ME)^2 layout: predictions per video,
the MEGC and STR tables, resuming, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "train"))

import spot_eval  # noqa: E402


@pytest.fixture(scope="module")
def long_set(tmp_path_factory, landmarker_path):
    """Two 8 s CAS(ME)^2-layout videos of one subject (one with expressions, one of blinks only)."""
    from modeling_mie.synthetic_long import generate_long_videos
    from modeling_mie.synthetic_long_plan import plan_long_videos

    out = tmp_path_factory.mktemp("long_set")
    plan = plan_long_videos(["casme_sq"], subjects=1, videos_per_subject=2, seconds=8.0, seed=3)
    generate_long_videos(out, plan, workers=1)
    return out, plan


def test_every_video_is_spotted_scored_and_a_rerun_resumes(long_set, tmp_path, capsys):
    root, plan = long_set
    out = tmp_path / "run"
    assert spot_eval.main(["--dataset", f"casme_sq={root / 'CASME_sq'}", "--output-dir", str(out), "--no-recognise", "--quiet"]) == 0
    predictions = sorted((out / "predictions" / "casme_sq").glob("*.csv"))
    assert len(predictions) == len(plan.videos) == 2
    text = (out / "results.md").read_text()
    assert "| CAS(ME)^2 | 2 | overall |" in text and "Published numbers" in text
    data = json.loads((out / "results.json").read_text())
    overall = data["groups"]["casme_sq"]["spotting"]["overall"]
    # every annotated expression is counted once, as a hit or a miss
    expressions = sum(len(v.expressions) for v in plan.videos)
    assert overall["tp"] + overall["fn"] == expressions
    assert json.loads((out / "spot_settings.json").read_text())["z_on"] > 0
    # a second run keeps the predictions (same file, untouched) and scores them again
    before = [p.stat().st_mtime_ns for p in predictions]
    capsys.readouterr()
    assert spot_eval.main(["--dataset", f"casme_sq={root / 'CASME_sq'}", "--output-dir", str(out), "--no-recognise", "--quiet"]) == 0
    assert [p.stat().st_mtime_ns for p in predictions] == before
    assert "interval(s)," not in capsys.readouterr().out  # nothing was spotted again


def test_a_wrong_dataset_gets_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "train" / "spot_eval.py"), "--dataset", f"casme2={tmp_path}", "--output-dir", str(tmp_path / "o"),
         "--no-recognise"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "NAME one of casme_sq, samm_lv, casme3_a" in result.stderr
    result = subprocess.run(
        [sys.executable, str(REPO / "train" / "spot_eval.py"), "--dataset", f"casme_sq={tmp_path / 'none'}", "--output-dir",
         str(tmp_path / "o"), "--no-recognise"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.startswith("error:")
