"""Measurement: does a larger movement of the same action units change the answer?

Plans synthetic clips (megc2019 profile with head motion, a seed no model was trained on), renders
each clip with its planned amplitude and with the same action units at 2x and 4x that amplitude
(`SyntheticClip.amplitude`; everything else identical: identity, timing, head motion, noise),
and asks each model. Prints per model and factor the accuracy and the share of clips whose answer
is the same as at 1x, then one line per model:

    amplitude <model>: accuracy_1x=<a> accuracy_2x=<b> accuracy_4x=<c> same_as_1x_2x=<d> same_as_1x_4x=<e>

Real expressions are larger than the synthetic micro ones (docs/method.md, "Motion input"); a
model whose answer follows the amplitude rather than the action units will not carry over.

Usage: python bench/amplitude.py --model A [--model B ...] [--clips 60] [--seed 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MIE_FACE_LANDMARKER", str(REPO.parent / "shared" / "assets" / "face_landmarker.task"))

FACTORS = (1.0, 2.0, 4.0)


def pick_clips(plan, count: int) -> list:
    """`count` listed clips, the same number per class, spread over the three databases."""
    rng = np.random.default_rng(0)
    per_class = count // 3
    picked = []
    for label in (0, 1, 2):
        group = [c for c in plan.clips if c.label == label and c.kind == "micro"]
        order = rng.permutation(len(group))[:per_class]
        picked += [group[i] for i in sorted(order)]
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model folder (repeatable)")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2, help="plan seed (not the training data's)")
    args = parser.parse_args()

    import torch

    from modeling_mie import MieForVideoClassification, MieProcessor
    from modeling_mie.synthetic import load_base_faces
    from modeling_mie.synthetic_faces import render_synthetic_clip
    from modeling_mie.synthetic_plan import plan_synthetic_dataset

    plan = plan_synthetic_dataset("megc2019", args.seed, head_motion=True)
    clips = pick_clips(plan, args.clips)
    faces = load_base_faces()
    models = {m: MieForVideoClassification.from_pretrained(m).eval() for m in args.model}
    processors = {m: MieProcessor.from_pretrained(m) for m in args.model}
    answers = {m: {f: [] for f in FACTORS} for m in args.model}
    truth = []
    for i, clip in enumerate(clips):
        truth.append(clip.label)
        for factor in FACTORS:
            scaled = dataclasses.replace(clip, amplitude=clip.amplitude * factor)
            frames, _ = render_synthetic_clip(plan, scaled, faces)
            for name, model in models.items():
                inputs = processors[name](frames, return_tensors="pt", fps=clip.fps)
                with torch.no_grad():
                    logits = model(pixel_values=inputs["pixel_values"], frame_mask=inputs["frame_mask"]).logits
                answers[name][factor].append(int(logits.argmax(-1)))
        print(f"clip {i + 1}/{len(clips)} {clip.key} label {clip.label}: " + "; ".join(
            f"{Path(n).name} " + "/".join(str(answers[n][f][-1]) for f in FACTORS) for n in models
        ), flush=True)
    truth = np.array(truth)
    for name in models:
        got = {f: np.array(answers[name][f]) for f in FACTORS}
        acc = {f: float((got[f] == truth).mean()) for f in FACTORS}
        same = {f: float((got[f] == got[1.0]).mean()) for f in FACTORS[1:]}
        print(
            f"amplitude {name}: accuracy_1x={acc[1.0]:.3f} accuracy_2x={acc[2.0]:.3f} accuracy_4x={acc[4.0]:.3f} "
            f"same_as_1x_2x={same[2.0]:.3f} same_as_1x_4x={same[4.0]:.3f}"
        )


if __name__ == "__main__":
    main()
