"""The seed paper's Table 2, measured: every compared method and the project's model under one leak-free LOSO.

    python train/table2.py --dataset synthetic=data/synthetic --output-dir runs/table2 --workers 2
    python train/table2.py --dataset casme2=/data/CASME2 --dataset samm=/data/SAMM --dataset smic=/data/SMIC \\
        --megc2019 --output-dir runs/table2 [--seeds 0 1 2] [--methods lbptop ststnet ...] [--preset fast|paper]

Runs `train/loso.py --method M --seeds ... --report-leakage --no-final` for each method into
OUTPUT/M (the same loaders, region cache, folds and seeds for all), then writes OUTPUT/table2.md
and table2.json: UF1 and UAR on the full composite, SMIC, CASME II and SAMM (mean +- std over
seeds) beside the figures each method's paper reported, the 95 % bootstrap intervals over
subjects, the score a best-epoch-per-subject protocol would have claimed and the gap, and the
time each method took. Rerunning the command resumes: finished folds are kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modeling_mie.errors import MieInputError
from modeling_mie.files import write_json_atomically
from modeling_mie.loso_report import (
    TABLE2_METHODS,
    read_run_folds,
    seeds_summary,
    table2_markdown,
)

TIMES_FILE = "times.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python train/table2.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH", required=True,
                        help="as train/loso.py: casme2=, samm=, smic= (repeat) or synthetic=")
    parser.add_argument("--megc2019", action="store_true", help="the official MEGC 2019 composite list")
    parser.add_argument("--output-dir", type=Path, required=True, help="one folder per method, and table2.md")
    parser.add_argument("--methods", nargs="+", default=list(TABLE2_METHODS), choices=list(TABLE2_METHODS),
                        metavar="METHOD", help=f"which rows (default all: {' '.join(TABLE2_METHODS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="N", help="seeds (default 0 1 2)")
    parser.add_argument("--workers", type=int, default=1, help="folds in parallel in local processes")
    parser.add_argument("--cache-dir", type=Path, default=None, help="region-crop cache, as train/loso.py")
    parser.add_argument("--preset", default="fast", help="fast (default: CPU schedules) or paper (the papers' schedules, for a GPU or a long run); "
                        "see docs/baselines.md")
    parser.add_argument("--device", default="auto",
                        help="where the project's model and the compared CNNs train (train/loso.py --device)")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table from finished runs")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def loso_command(args, method: str) -> list[str]:
    command = [sys.executable, str(REPO / "train" / "loso.py"), "--method", method]
    for spec in args.dataset:
        command += ["--dataset", spec]
    if args.megc2019:
        command.append("--megc2019")
    if args.cache_dir:
        command += ["--cache-dir", str(args.cache_dir)]
    command += [
        "--output-dir", str(args.output_dir / method), "--seeds", *map(str, args.seeds), "--report-leakage",
        "--resume", "--no-final", "--workers", str(args.workers),
    ]
    command += ["--preset", args.preset, "--device", args.device]  # the SVMs stay on the CPU whatever it says
    return command


def read_times(output_dir: Path) -> dict:
    path = output_dir / TIMES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def method_summary(method_dir: Path, seeds: list[int]) -> dict | None:
    """The method's summary over `seeds`: its results.json when it holds those seeds, else built
    from the finished seed runs (`--table-only --seeds 0` tables the seeds finished so far); None
    when a seed is not finished."""
    path = method_dir / "results.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        if summary.get("seeds") == seeds:
            return summary
    runs = [method_dir / f"seed-{seed}" for seed in seeds]
    if not all((run / "results.json").is_file() for run in runs):
        return None
    first = json.loads((runs[0] / "results.json").read_text())
    summary = seeds_summary({seed: read_run_folds(run) for seed, run in zip(seeds, runs)}, len(first["labels"]))
    summary.update({"method": first.get("method", method_dir.name), "data": first.get("data", "")})
    return summary


def run_timed(command: list[str], output_dir: Path, times: dict, method: str) -> int:
    """Run `command`, keeping its wall-clock in times.json (updated every 30 s, so a run that is
    killed still counts the time it had; every invocation on a method adds an entry)."""
    entry = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0, "exit": None}
    times.setdefault(method, []).append(entry)
    began = time.time()
    proc = subprocess.Popen(command)
    try:
        while True:
            try:
                entry["exit"] = proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                entry["seconds"] = time.time() - began
                write_json_atomically(output_dir / TIMES_FILE, times)
    finally:
        if proc.poll() is None:
            proc.terminate()
        entry["seconds"] = time.time() - began
        write_json_atomically(output_dir / TIMES_FILE, times)
    return entry["exit"]


def run_fold_seconds(method_dir: Path, summary: dict) -> float:
    """Seconds the method's folds took, summed over folds and seeds (one process each): the
    compute, whatever the workers and interruptions."""
    total = 0.0
    for seed in summary["seeds"]:
        path = method_dir / f"seed-{seed}" / "results.json"
        total += json.loads(path.read_text())["seconds"]["total"]
    return total


def main(args) -> int:
    output_dir = args.output_dir.expanduser().resolve()
    args.output_dir = output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    times = read_times(output_dir)
    start = time.time()
    for method in [m for m in TABLE2_METHODS if m in args.methods]:
        if args.table_only:
            break
        results = output_dir / method / "results.json"
        if results.is_file() and json.loads(results.read_text()).get("seeds") == sorted(args.seeds):
            print(f"== {method}: finished earlier ({results})")
            continue
        command = loso_command(args, method)
        print(f"== {method}: {' '.join(command[1:])}", flush=True)
        code = run_timed(command, output_dir, times, method)
        if code != 0:
            raise MieInputError(
                f"train/loso.py --method {method} stopped (exit {code}); its output is above. Fix the cause and "
                "run the same command again: finished folds are kept."
            )
    summaries, data = {}, ""
    for method in TABLE2_METHODS:
        if method not in args.methods:
            continue
        summary = method_summary(output_dir / method, sorted(args.seeds))
        if summary is not None:
            summaries[method] = summary
            data = summary.get("data", data)
    if not summaries:
        raise MieInputError(f"No finished method in {output_dir}; run without --table-only first.")
    seconds = {m: sum(t["seconds"] for t in times.get(m, [])) or None for m in summaries}
    fold_seconds = {m: run_fold_seconds(output_dir / m, summaries[m]) for m in summaries}
    text = table2_markdown(summaries, data, seconds, fold_seconds)
    (output_dir / "table2.md").write_text(text, encoding="utf-8")
    write_json_atomically(output_dir / "table2.json", {
        "methods": summaries, "wall_seconds": seconds, "fold_seconds": fold_seconds, "data": data,
        "command": [sys.executable, *sys.argv],
    })
    print()
    print(text)
    print(f"table: {output_dir / 'table2.md'} ({time.time() - start:.0f} s this time)")
    return 0


def cli(argv=None) -> int:
    args = parse_args(argv)
    try:
        return main(args)
    except MieInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue; finished folds are kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
