"""Spot-then-recognise evaluation on long-video databases: the MEGC spotting F1 and STRS.

    python train/spot_eval.py --dataset casme_sq=/data/CASME_sq [--dataset samm_lv=/data/SAMMLV] \
        [--samm-emotions SAMM_20181215_Micro_FACS_Codes_v2.xlsx] [--dataset casme3_a=/data/CASME3/part_A] \
        --output-dir runs/spot [--model PATH_OR_HUB_ID] [--no-recognise] [--z-on Z] [--min-motion-px PX] [--overwrite]

Every video of every database is spotted with `modeling_mie.spot` (training-free: nothing is
learned, so there are no folds; its settings are fixed and written beside the results) and its
intervals recognised by the model. Writes:

- `predictions/<database>/<video>.csv`: the spotted intervals of each video (the columns of
  `python -m modeling_mie.spot`); a video whose file exists is not spotted again, so a stopped
  run resumes where it was;
- `results.md` / `results.json`: per database and pooled, the MEGC spotting counts and F1 for
  micro, macro and overall (IoU >= 0.5, one-to-one matching, `modeling_mie.spot_metrics`), the
  STR score (STRS = F1 spot x F1 analysis over the model's classes), and the published numbers
  of the MEGC baselines beside them (real data: a different test, marked as such).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from modeling_mie.errors import MieInputError  # noqa: E402

logger = logging.getLogger("mie.spot_eval")

DATABASES = ("casme_sq", "samm_lv", "casme3_a")
DATABASE_LABELS = {"casme_sq": "CAS(ME)^2", "samm_lv": "SAMM Long Videos", "casme3_a": "CAS(ME)^3 part A"}

#: Published spotting F1 (MaE / ME / overall) on the real databases (../shared/SPOTTING.md
#: section 5: MEGC2020/2021 protocol), for the table's "published" rows.
PUBLISHED = [
    ("MDMD baseline (HE20)", {"casme_sq": (0.1196, 0.0082, 0.0376), "samm_lv": (0.0629, 0.0364, 0.0445)}),
    ("SOFTNet (paper)", {"casme_sq": (0.2410, 0.1173, 0.2022), "samm_lv": (0.2169, 0.1520, 0.1881)}),
    ("OF-FD / He Yuhong MM'21 (MTSN table)", {"casme_sq": (0.3782, 0.1965, 0.3436), "samm_lv": (0.4149, 0.2162, 0.3638)}),
    ("MTSN", {"casme_sq": (0.4104, 0.0808, 0.3620), "samm_lv": (0.3459, 0.0878, 0.2867)}),
]
#: Published STRS (MEGC 2024/2025 STR leaderboards; CAS(ME)^3 + SAMM unseen test set).
PUBLISHED_STRS = [
    ("2024 #1 USTC-IAT", 0.18, 0.11, 0.16),
    ("2024 #2 heyuhong", 0.14, 0.09, 0.12),
    ("2025 MEAN baseline", None, 0.0062, 0.0086),
]


def parse_args(argv=None) -> argparse.Namespace:
    from modeling_mie.spot import SpotSettings

    parser = argparse.ArgumentParser(prog="python train/spot_eval.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", action="append", required=True, metavar="NAME=ROOT",
        help=f"a long-video database and its root; NAME one of {', '.join(DATABASES)} (repeat for several)",
    )
    parser.add_argument("--output-dir", required=True, help="folder for predictions/ and results.md/json")
    parser.add_argument("--model", default=None, help="recognition model folder or Hub id (default: the bundled checkpoint)")
    parser.add_argument("--no-recognise", action="store_true", help="spot only (no STRS)")
    parser.add_argument("--z-on", type=float, default=SpotSettings.z_on, help="robust z-score that starts an interval")
    parser.add_argument("--min-motion-px", type=float, default=SpotSettings.min_motion_px, help="canvas px an interval must move")
    parser.add_argument("--analysis-fps", type=float, default=SpotSettings.analysis_fps, help="frames analysed per second")
    parser.add_argument(
        "--samm-emotions", default=None, metavar="XLSX",
        help="SAMM's micro-expression workbook (SAMM_20181215_Micro_FACS_Codes_v2.xlsx) to give SAMM Long Videos' "
        "intervals their emotions (merged on Filename and Type); without it SAMM has no STRS",
    )
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder for the loaders")
    parser.add_argument("--overwrite", action="store_true", help="spot every video again (default: keep finished ones)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def load(specs: list[str], cache_dir=None, samm_emotions=None) -> list[dict]:
    """Rows (one per video) of the named databases."""
    from modeling_mie import long_videos

    loaders = {
        "casme_sq": long_videos.load_casme_sq,
        "samm_lv": long_videos.load_samm_lv,
        "casme3_a": long_videos.load_casme3_part_a,
    }
    rows = []
    for spec in specs:
        name, sep, root = spec.partition("=")
        if not sep or name not in loaders:
            raise MieInputError(f"--dataset {spec!r}: write NAME=ROOT with NAME one of {', '.join(DATABASES)}.")
        extra = {"emotions": samm_emotions} if name == "samm_lv" and samm_emotions else {}
        rows.extend(loaders[name](root, cache_dir=cache_dir, **extra))
    if not rows:
        raise MieInputError("The datasets hold no video; check the roots given to --dataset.")
    return rows


def video_key(row: dict) -> str:
    return f"{row['database']}/{row['video']}"


def prediction_path(out: Path, row: dict) -> Path:
    return out / "predictions" / row["database"] / (row["video"].replace("/", "__") + ".csv")


def spot_all(rows: list[dict], out: Path, args, model, processor) -> dict[str, float]:
    """Spot every video not spotted yet; returns seconds per video spotted in this run."""
    from modeling_mie.spot import SpotSettings, spot_video, write_csv

    settings = SpotSettings(analysis_fps=args.analysis_fps, z_on=args.z_on, min_motion_px=args.min_motion_px)
    (out / "spot_settings.json").write_text(json.dumps(asdict(settings), indent=2) + "\n")
    seconds = {}
    for i, row in enumerate(rows, start=1):
        target = prediction_path(out, row)
        if target.exists() and not args.overwrite:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        frame = spot_video(
            row["frames_dir"], model, fps=row["fps"], settings=settings, recognise_intervals=model is not None,
            processor=processor, progress=not args.quiet,
        )
        write_csv(frame, target)
        seconds[video_key(row)] = time.perf_counter() - started
        print(
            f"[{i}/{len(rows)}] {video_key(row)}: {len(frame)} interval(s), {len(row['intervals'])} annotated; "
            f"{row['num_frames']} frames in {seconds[video_key(row)]:.1f} s",
            flush=True,
        )
    return seconds


def tables(rows: list[dict], out: Path, labels: list[str] | None) -> dict:
    """Ground truth and predictions as the metric tables, per database and pooled, scored."""
    import pandas as pd

    from modeling_mie.spot_metrics import evaluate_spotting, evaluate_strs

    truth, predicted = [], []
    for row in rows:
        key = video_key(row)
        for it in row["intervals"]:
            truth.append({"database": row["database"], "video": key, "onset": it["onset"], "offset": it["offset"],
                          "kind": it["kind"], "emotion": it["label"] or it["emotion"] or "unknown"})
        frame = pd.read_csv(prediction_path(out, row), keep_default_na=False)
        for rec in frame.to_dict("records"):
            predicted.append({"database": row["database"], "video": key, "onset": int(rec["onset_frame"]),
                              "offset": int(rec["offset_frame"]), "kind": rec["kind"], "emotion": rec["label"] or "none"})
    results = {}
    groups = sorted({r["database"] for r in rows}) + (["all"] if len({r["database"] for r in rows}) > 1 else [])
    for group in groups:
        gt = [t for t in truth if group in ("all", t["database"])]
        pr = [p for p in predicted if group in ("all", p["database"])]
        spotting = evaluate_spotting(gt, pr)
        entry = {"spotting": spotting, "videos": sum(group in ("all", r["database"]) for r in rows)}
        if labels is not None:
            entry["strs"] = evaluate_strs(gt, pr, classes=labels)
            entry["labelled"] = any(t["emotion"] in labels for t in gt)
        results[group] = entry
    return results


def render(results: dict, rows: list[dict], seconds: dict, args, model_name: str | None) -> tuple[str, dict]:
    lines = ["# Spot-then-recognise evaluation", ""]
    lines.append(
        "Spotting: `modeling_mie.spot` (training-free optical-flow spotter; no folds, nothing learned; settings in "
        "`spot_settings.json`). Metric: MEGC spotting F1, IoU >= 0.5 on inclusive frames, one-to-one matching, counts "
        "pooled over videos (`modeling_mie.spot_metrics`)."
    )
    if model_name:
        lines.append(f"Recognition: `{model_name}`; STRS = F1 spot x F1 analysis over the classes {', '.join(args_labels(results))}.")
    lines += ["", "## Spotting", "", "| set | videos | kind | GT | spotted | TP | FP | FN | precision | recall | F1 |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    data = {"groups": {}, "command": " ".join(sys.argv), "model": model_name}
    for group, entry in results.items():
        spotting = entry["spotting"]
        label = "all" if group == "all" else DATABASE_LABELS.get(group, group)
        for kind in ("micro", "macro", "overall"):
            c = getattr(spotting, kind)
            lines.append(
                f"| {label} | {entry['videos']} | {kind} | {c.n_gt} | {c.n_pred} | {c.tp} | {c.fp} | {c.fn} | "
                f"{c.precision:.4f} | {c.recall:.4f} | {c.f1:.4f} |"
            )
        data["groups"][group] = {"videos": entry["videos"], "spotting": spotting.to_dict()}
    if any("strs" in e for e in results.values()):
        lines += ["", "## Spot, then recognise (STRS)", "",
                  "| set | F1 spot | pairs analysed | UF1 | UAR | F1 analysis | STRS |", "|---|---:|---:|---:|---:|---:|---:|"]
        for group, entry in results.items():
            s = entry.get("strs")
            if s is None:
                continue
            label = "all" if group == "all" else DATABASE_LABELS.get(group, group)
            if not entry["labelled"]:
                lines.append(f"| {label} | {s.f1_spot:.4f} | 0 | n/a: no emotion labels (--samm-emotions) | | | |")
                continue
            lines.append(
                f"| {label} | {s.f1_spot:.4f} | {s.n_analysed} | {s.uf1:.4f} | {s.uar:.4f} | {s.f1_analysis:.4f} | {s.strs:.4f} |"
            )
            data["groups"][group]["strs"] = s.to_dict() if entry["labelled"] else None
    lines += ["", "## Published numbers (real data: CAS(ME)^2 and SAMM Long Videos; not comparable to synthetic videos)", "",
              "| method | CAS(ME)^2 MaE / ME / overall | SAMM-LV MaE / ME / overall |", "|---|---|---|"]
    for name, values in PUBLISHED:
        cas, samm = values["casme_sq"], values["samm_lv"]
        lines.append(f"| {name} | {cas[0]:.4f} / {cas[1]:.4f} / {cas[2]:.4f} | {samm[0]:.4f} / {samm[1]:.4f} / {samm[2]:.4f} |")
    lines += ["", "| STR (MEGC leaderboards, unseen test set) | STRS all | SAMM | CAS |", "|---|---:|---:|---:|"]
    for name, overall, samm, cas in PUBLISHED_STRS:
        lines.append(f"| {name} | {'-' if overall is None else f'{overall:.2f}'} | {samm:.4f} | {cas:.4f} |")
    if seconds:
        frames = sum(r["num_frames"] for r in rows if video_key(r) in seconds)
        total = sum(seconds.values())
        lines += ["", f"Spotted {len(seconds)} video(s), {frames} frames, in {total:.0f} s ({frames / max(total, 1e-9):.0f} frames/s) in this run."]
        data["seconds"] = seconds
    lines += ["", f"Command: `{data['command']}`", ""]
    return "\n".join(lines), data


def args_labels(results: dict) -> list[str]:
    for entry in results.values():
        if "strs" in entry:
            return [str(c) for c in entry["strs"].classes]
    return []


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    out = Path(args.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        rows = load(args.dataset, args.cache_dir, args.samm_emotions)
        model = processor = labels = None
        model_name = None
        if not args.no_recognise:
            from modeling_mie.app_support import resolve_model
            from modeling_mie.spot import load_recogniser

            model_name = resolve_model(args.model)
            model, processor = load_recogniser(model_name)
            labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        seconds = spot_all([dict(r) for r in rows], out, args, model, processor)
        results = tables([dict(r) for r in rows], out, labels)
    except (MieInputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text, data = render(results, rows, seconds, args, model_name)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
