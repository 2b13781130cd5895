"""What a LOSO run's numbers mean: the leakage a best-epoch protocol would add, the spread over
seeds, and 95 % bootstrap intervals over subjects.

Leakage. Many public micro-expression codes train each held-out subject's fold for a number
of epochs, score that subject's clips after every epoch, and keep the best epoch's predictions
(HTNet's `main_HTNet.py` keeps the epoch whose count of correct test clips is highest, the
later epoch on a tie). That is selection on the test set. With `--report-leakage` a fold also
keeps its held-out clips' probabilities after every epoch (`epoch_probabilities` in the fold
file) only so that this module can say what that protocol would have claimed: for each fold the
epoch with the most correct held-out clips (the latest of equals), pooled over folds and scored
as MEGC 2019 does. The honest score is always the last epoch's; nothing is ever chosen from
these predictions.

Intervals. Subjects, not clips, are the independent units of a LOSO run, so the bootstrap
draws subjects with replacement (as many as there are), pools the drawn subjects' clips (a
subject drawn twice counts twice) and computes UF1 and UAR; the interval is the 2.5th and 97.5th
percentiles of 2000 draws. Per database, the draw is over that database's subjects. With several
seeds, each draw scores every seed on the same subjects and averages them: the interval is that
of the mean over seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .loso import _fold_predictions, collect_results
from .metrics import _per_class, confusion_matrix, megc_scores

#: Bootstrap draws and their seed: fixed, so a results file is reproducible.
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0


# ---------------------------------------------------------------------------- leakage
def best_epoch_predictions(fold: dict) -> tuple[list[int], int] | None:
    """The held-out predictions at the epoch a best-epoch-per-subject protocol keeps, and that
    epoch (1-based), or None when the fold kept no per-epoch predictions."""
    epochs = fold.get("epoch_probabilities")
    if not epochs:
        return None
    probabilities = np.asarray(epochs, np.float64)  # (epochs, clips, classes)
    labels = np.array([p["label"] for p in fold["predictions"]])
    predictions = probabilities.argmax(-1)  # (epochs, clips)
    correct = (predictions == labels[None]).sum(1)
    # the latest epoch among the best (HTNet's `<=`)
    best = int(len(correct) - 1 - np.argmax(correct[::-1]))
    return predictions[best].tolist(), best + 1


def leaky_folds(folds: Sequence[dict]) -> list[dict] | None:
    """Copies of `folds` whose predictions are those of each fold's best epoch on its own test
    clips; None unless every fold kept per-epoch predictions."""
    out = []
    for fold in folds:
        chosen = best_epoch_predictions(fold)
        if chosen is None:
            return None
        predictions, epoch = chosen
        out.append({
            **fold,
            "best_epoch": epoch,
            "predictions": [{**p, "prediction": int(q)} for p, q in zip(fold["predictions"], predictions)],
        })
    return out


def leakage_summary(folds: Sequence[dict], num_classes: int) -> dict | None:
    """The scores a best-epoch-per-subject protocol would claim, the honest scores and the gap
    (leaky minus honest) for the full set and each database; None without per-epoch predictions."""
    leaky = leaky_folds(folds)
    if leaky is None:
        return None
    honest = megc_scores([p for f in folds for p in _fold_predictions(f)], num_classes)
    claimed = megc_scores([p for f in leaky for p in _fold_predictions(f)], num_classes)
    epochs = [f["best_epoch"] for f in leaky]
    return {
        "protocol": "best epoch per held-out subject (most correct test clips, latest of equals)",
        "epochs": len(folds[0]["epoch_probabilities"]),
        "best_epoch_per_fold": {f["fold"]: f["best_epoch"] for f in leaky},
        "best_epoch_median": float(np.median(epochs)),
        "scores": claimed,
        "gap": {
            name: {k: claimed[name][k] - honest[name][k] for k in ("uf1", "uar")} for name in honest
        },
    }


# ---------------------------------------------------------------------------- bootstrap
def _confusions(folds: Sequence[dict], num_classes: int) -> tuple[list[str], list[str], np.ndarray]:
    """Per fold: its key, its database and its (classes, classes) confusion counts."""
    matrices = [
        confusion_matrix([p["label"] for p in f["predictions"]], [p["prediction"] for p in f["predictions"]], num_classes)
        for f in folds
    ]
    return [f["fold"] for f in folds], [f["database"] for f in folds], np.stack(matrices)


def bootstrap_intervals(
    runs: Sequence[Sequence[dict]],
    num_classes: int,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict:
    """95 % intervals of UF1 and UAR over subjects, for the full set and each database.

    `runs` holds one list of fold records per seed, over the same subjects; each draw takes
    subjects with replacement and scores every seed's pooled predictions of them; the mean over
    seeds is the draw's value. Returns {"full": {"uf1": [lo, hi], "uar": [lo, hi]}, "casme2": ...}.
    """
    per_run = [_confusions(folds, num_classes) for folds in runs]
    keys, databases, _ = per_run[0]
    for other_keys, _, _ in per_run[1:]:
        if sorted(other_keys) != sorted(keys):
            raise ValueError("Every seed's run must hold the same folds to be bootstrapped together.")
    order = [{k: i for i, k in enumerate(run[0])} for run in per_run]
    stacked = np.stack([run[2][[o[k] for k in keys]] for run, o in zip(per_run, order)])  # (seeds, folds, c, c)
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    scopes = {"full": np.arange(len(keys))}
    for db in sorted(set(databases)):
        scopes[db] = np.array([i for i, d in enumerate(databases) if d == db])
    out = {}
    for name, members in scopes.items():
        # (draws, members) counts of how often each subject is drawn
        counts = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=draws)
        pooled = np.einsum("dm,smij->dsij", counts, stacked[:, members])  # (draws, seeds, c, c)
        f1, recall = (score.mean(-1) for score in _per_class(pooled))
        out[name] = {
            "uf1": [float(np.percentile(f1.mean(1), tail)), float(np.percentile(f1.mean(1), 100 - tail))],
            "uar": [float(np.percentile(recall.mean(1), tail)), float(np.percentile(recall.mean(1), 100 - tail))],
        }
    return {"level": level, "draws": draws, "unit": "subject", "scopes": out}


# ---------------------------------------------------------------------------- seeds
def seeds_summary(runs: dict[int, Sequence[dict]], num_classes: int) -> dict:
    """Mean and sample standard deviation (n - 1) over seeds of UF1 / UAR (honest, and leaky when
    every run kept per-epoch predictions), and the bootstrap interval of the mean."""
    seeds = sorted(runs)
    honest = {s: megc_scores([p for f in runs[s] for p in _fold_predictions(f)], num_classes) for s in seeds}
    leaks = {s: leakage_summary(runs[s], num_classes) for s in seeds}
    scopes = list(honest[seeds[0]])

    def spread(per_seed: dict[int, dict]) -> dict:
        out = {}
        for name in scopes:
            out[name] = {}
            for metric in ("uf1", "uar"):
                values = np.array([per_seed[s][name][metric] for s in seeds])
                out[name][metric] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "per_seed": [float(v) for v in values],
                }
        return out

    summary = {
        "seeds": seeds,
        "honest": spread(honest),
        "bootstrap": bootstrap_intervals([runs[s] for s in seeds], num_classes),
        "clips": honest[seeds[0]]["full"]["clips"],
        "subjects": honest[seeds[0]]["full"]["subjects"],
    }
    if all(leaks[s] is not None for s in seeds):
        summary["leaky"] = spread({s: leaks[s]["scores"] for s in seeds})
        summary["leaky_protocol"] = leaks[seeds[0]]["protocol"]
        summary["epochs"] = leaks[seeds[0]]["epochs"]
    return summary


def _pm(cell: dict) -> str:
    """"mean ± std" over seeds, or the one value of a single seed."""
    return f"{cell['mean']:.4f} ± {cell['std']:.4f}" if len(cell.get("per_seed", ())) > 1 else f"{cell['mean']:.4f}"


def seeds_markdown(summary: dict, title: str = "LOSO over seeds") -> str:
    """A Markdown table of `seeds_summary`: per scope, UF1 and UAR mean ± std, the 95 % interval,
    and the leaky score and gap when there is one."""
    leaky = summary.get("leaky")
    lines = [
        f"# {title}",
        "",
        f"Seeds {', '.join(map(str, summary['seeds']))}; {summary['subjects']} subjects, {summary['clips']} clips. "
        "Mean ± sample standard deviation over seeds; 95 % interval: bootstrap over subjects "
        f"({summary['bootstrap']['draws']} draws) of the mean over seeds.",
        "",
    ]
    head = "| data | UF1 | UF1 95 % | UAR | UAR 95 % |"
    rule = "|---|---:|---:|---:|---:|"
    if leaky:
        head += " UF1 best-epoch (leaky) | gap | UAR best-epoch (leaky) | gap |"
        rule += "---:|---:|---:|---:|"
    lines += [head, rule]
    for name, cell in summary["honest"].items():
        ci = summary["bootstrap"]["scopes"][name]
        row = (
            f"| {name} | {_pm(cell['uf1'])} | {ci['uf1'][0]:.3f}-{ci['uf1'][1]:.3f} | {_pm(cell['uar'])} | "
            f"{ci['uar'][0]:.3f}-{ci['uar'][1]:.3f} |"
        )
        if leaky:
            lk = leaky[name]
            row += (
                f" {_pm(lk['uf1'])} | {lk['uf1']['mean'] - cell['uf1']['mean']:+.4f} | {_pm(lk['uar'])} | "
                f"{lk['uar']['mean'] - cell['uar']['mean']:+.4f} |"
            )
        lines.append(row)
    if leaky:
        lines += [
            "",
            f"Leaky columns: what a protocol keeping the {summary['leaky_protocol']} among the "
            f"{summary['epochs']} epochs would claim. Reported only: the honest columns use the last epoch, "
            "fixed in advance.",
        ]
    return "\n".join(lines) + "\n"


def read_run_folds(run_dir: Path) -> list[dict]:
    """The fold records of a finished run folder (its `results.json` names the folds)."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    return collect_results(run_dir, results["fold_keys"])


__all__ = [
    "BOOTSTRAP_DRAWS",
    "REPORTED_TABLE2",
    "TABLE2_METHODS",
    "best_epoch_predictions",
    "bootstrap_intervals",
    "leakage_summary",
    "leaky_folds",
    "read_run_folds",
    "seeds_markdown",
    "seeds_summary",
    "table2_markdown",
]


# ---------------------------------------------------------------------------- the seed paper's table
#: Table 2 methods in the order the table lists them, with their display names.
TABLE2_METHODS = {
    "lbptop": "LBP-TOP + SVM",
    "biwoof": "Bi-WOOF + SVM",
    "offapexnet": "OFF-ApexNet",
    "dual_inception": "Dual-Inception",
    "ststnet": "STSTNet",
    "aouayeb": "Aouayeb et al. (this project)",
}
TABLE2_SCOPES = (("full", "Full"), ("smic", "SMIC"), ("casme2", "CASME II"), ("samm", "SAMM"))
#: (UF1, UAR) as published on the MEGC 2019 composite (full, SMIC, CASME II, SAMM): the seed
#: paper's Table 2 and the MEGC 2019 summary it draws on. Reported, not reproduced here.
REPORTED_TABLE2 = {
    "lbptop": {"full": (0.588, 0.579), "smic": (0.200, 0.528), "casme2": (0.703, 0.743), "samm": (0.395, 0.410)},
    "biwoof": {"full": (0.630, 0.623), "smic": (0.573, 0.583), "casme2": (0.781, 0.803), "samm": (0.521, 0.514)},
    "offapexnet": {"full": (0.720, 0.710), "smic": (0.682, 0.670), "casme2": (0.876, 0.868), "samm": (0.541, 0.539)},
    "dual_inception": {"full": (0.732, 0.728), "smic": (0.665, 0.673), "casme2": (0.862, 0.856), "samm": (0.587, 0.566)},
    "ststnet": {"full": (0.735, 0.761), "smic": (0.680, 0.701), "casme2": (0.838, 0.869), "samm": (0.659, 0.681)},
    "aouayeb": {"full": (0.902, 0.902), "smic": (0.889, 0.883), "casme2": (0.986, 0.986), "samm": (0.786, 0.810)},
}


def table2_markdown(
    results: dict[str, dict],
    data: str,
    seconds: dict[str, float] | None = None,
    fold_seconds: dict[str, float] | None = None,
) -> str:
    """The seed paper's Table 2 layout: per method, UF1 / UAR on the full composite, SMIC,
    CASME II and SAMM measured here (mean ± std over seeds) above the published figures (marked
    reported); then the 95 % intervals, the leakage gap and the time. `results` maps a method name
    to its `seeds_summary` (the `results.json` of `train/loso.py --seeds`); `seconds` the wall-clock
    of its runs, `fold_seconds` the seconds of its folds summed (one process each)."""
    names = [m for m in TABLE2_METHODS if m in results]
    seeds = next(iter(results.values()))["seeds"] if results else []
    lines = [
        "# Table 2, measured: the compared methods under one leak-free LOSO",
        "",
        f"Data: {data}. Every method ran the same {next(iter(results.values()))['subjects'] if results else 0} "
        f"leave-one-subject-out folds; seeds {', '.join(map(str, seeds))}; mean ± sample standard deviation over "
        "seeds. `reported` rows are the published figures on the real MEGC 2019 composite, for reference: they "
        "are not reproduced here, and synthetic clips are not comparable with them.",
        "",
        "| method | Full UF1 | Full UAR | SMIC UF1 | SMIC UAR | CASME II UF1 | CASME II UAR | SAMM UF1 | SAMM UAR |",
        "|---|" + "---:|" * 8,
    ]
    for name in names:
        honest = results[name]["honest"]
        cells = []
        for scope, _ in TABLE2_SCOPES:
            for metric in ("uf1", "uar"):
                cells.append(_pm(honest[scope][metric]) if scope in honest else "-")
        lines.append(f"| {TABLE2_METHODS[name]} | " + " | ".join(cells) + " |")
        reported = REPORTED_TABLE2.get(name)
        if reported:
            cells = [f"{reported[scope][i]:.3f}" for scope, _ in TABLE2_SCOPES for i in (0, 1)]
            lines.append("| &nbsp;&nbsp;*reported* | " + " | ".join(f"*{c}*" for c in cells) + " |")
    lines += [
        "",
        "## Intervals and leakage (full composite)",
        "",
        "95 %: bootstrap over subjects of the mean over seeds. Best-epoch: what keeping each held-out subject's "
        "best epoch on its own test clips would have claimed (reported only, never used); gap = best-epoch minus "
        "honest. The SVMs train no epochs: nothing to select.",
        "",
        "| method | UF1 | UF1 95 % | UF1 best-epoch | gap | UAR | UAR 95 % | UAR best-epoch | gap | wall | folds |",
        "|---|" + "---:|" * 10,
    ]
    for name in names:
        r = results[name]
        h, ci = r["honest"]["full"], r["bootstrap"]["scopes"]["full"]
        leak = r.get("leaky", {}).get("full")
        row = [TABLE2_METHODS[name], _pm(h["uf1"]), f"{ci['uf1'][0]:.3f}-{ci['uf1'][1]:.3f}"]
        row += [_pm(leak["uf1"]), f"{leak['uf1']['mean'] - h['uf1']['mean']:+.4f}"] if leak else ["-", "-"]
        row += [_pm(h["uar"]), f"{ci['uar'][0]:.3f}-{ci['uar'][1]:.3f}"]
        row += [_pm(leak["uar"]), f"{leak['uar']['mean'] - h['uar']['mean']:+.4f}"] if leak else ["-", "-"]
        for table in (seconds, fold_seconds):
            row.append(_duration(table[name]) if table and table.get(name) is not None else "-")
        lines.append("| " + " | ".join(row) + " |")
    if seconds or fold_seconds:
        wall = sum(v for v in (seconds or {}).values() if v is not None)
        folds = sum(v for v in (fold_seconds or {}).values() if v is not None)
        lines += [
            "",
            f"Time on this machine: wall, the wall-clock of `train/table2.py`'s runs of the method (all seeds, "
            f"inputs and data loading included; {_duration(wall)} in all); folds, the seconds of its folds summed, "
            f"each fold one process ({_duration(folds)} in all; with `--workers N` the wall-clock is about this / N).",
        ]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.2f} h"
