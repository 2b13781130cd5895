"""Score a trained model on a labelled dataset it was not trained on (UF1 / UAR, MEGC 2019).

    python train/evaluate.py --model runs/synthetic/model --dataset synthetic=data/synthetic-heldout \\
        [--megc2019] [--cache-dir DIR] [--output results.json] [--card]

The dataset is read and cropped as `train/loso.py` reads it (same loaders, same region cache,
the model's own geometry and input), every clip is predicted with the frames chosen as in
training (the processor's saved `num_frames`), and UF1 / UAR are printed for the whole set and
each database. Use it for data kept apart from training: a held-out synthetic style
(`python -m modeling_mie.synthetic --style heldout --seed 1`), or another database. `--card`
also records the scores in the model folder's card (README.md), under its LOSO figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (written by train/loso.py) or Hub id")
    parser.add_argument(
        "--dataset", action="append", required=True, metavar="NAME=PATH",
        help="as in train/loso.py: casme2=..., samm=..., smic=..., or synthetic=... (repeatable)",
    )
    parser.add_argument("--megc2019", action="store_true", help="read the MEGC 2019 composite list (as train/loso.py)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="region cache (default: the user cache)")
    parser.add_argument("--workers", type=int, default=1, help="processes cropping clips into the cache")
    parser.add_argument("--output", type=Path, default=None, help="also write the scores and predictions as JSON")
    parser.add_argument("--card", action="store_true", help="record the scores in the model folder's card (README.md)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from modeling_mie.errors import MieInputError

    try:
        return _run(args)
    except MieInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import numpy as np
    import torch

    from modeling_mie.errors import MieInputError
    from modeling_mie.loso import load_clip_tensors, parse_dataset_specs, prepare_data
    from modeling_mie.metrics import ClipPrediction, format_scores_table, megc_scores
    from modeling_mie.modeling_mie import MieForVideoClassification
    from modeling_mie.processing_mie import MieProcessor
    from modeling_mie.training import predict_clips

    start = time.time()
    datasets = parse_dataset_specs(args.dataset)
    try:
        model = MieForVideoClassification.from_pretrained(args.model).eval()
        processor = MieProcessor.from_pretrained(args.model)
    except (OSError, ValueError) as err:
        raise MieInputError(
            f"Could not load a mie model from {args.model!r} ({err}); pass --model with a folder written by "
            "train/loso.py or a Hub id."
        ) from err
    config = model.config
    num_frames = int(processor.num_frames or 0) if processor.frame_sampling in ("uniform", "interpolate") else 0
    cache_dir = args.cache_dir
    if cache_dir is None:
        from modeling_mie.landmarks import user_cache_dir

        cache_dir = user_cache_dir() / "regions"
    data = prepare_data(datasets, args.megc2019, config, cache_dir.expanduser(), num_proc=args.workers)
    clips = load_clip_tensors(data.cache_path, data.rows, config)
    with torch.no_grad():
        probabilities = predict_clips(model, clips, num_frames).numpy()
    names = [config.id2label[i] for i in range(config.num_labels)]
    predictions = [
        ClipPrediction(c.database, c.list_subject, c.clip_id, int(c.label), int(np.argmax(p)))
        for c, p in zip(clips, probabilities)
    ]
    scores = megc_scores(predictions, num_classes=config.num_labels)
    print(f"model {args.model} ({config.input_mode}) on {data.description}: {len(clips)} clips")
    print(format_scores_table(scores))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "model": str(args.model),
            "data": data.description,
            "scores": scores,
            "labels": names,
            "clips": [
                {"database": c.database, "subject": c.list_subject, "clip": c.clip_id, "label": names[c.label],
                 "probabilities": dict(zip(names, (round(float(v), 4) for v in p)))}
                for c, p in zip(clips, probabilities)
            ],
        }
        args.output.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if args.card:
        from modeling_mie.hub import record_card_evaluation

        parts = ", ".join(
            f"{name} {scores[name]['uf1']:.4f} / {scores[name]['uar']:.4f}" for name in scores if name != "full"
        )
        command = " ".join(["python", "train/evaluate.py", *sys.argv[1:]])
        text = (
            f"On data kept apart from training, {data.description}: UF1 {scores['full']['uf1']:.4f} / UAR "
            f"{scores['full']['uar']:.4f} over {len(clips)} clips (per database, UF1 / UAR: {parts}). Command: `{command}`."
        )
        print(f"recorded in {record_card_evaluation(args.model, 'dataset:' + '+'.join(sorted(p.name for p in datasets.values())), text)}")
    print(f"done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
