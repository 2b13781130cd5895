"""ONNX Runtime against eager PyTorch on the same checkpoint, in one run; last line `speedup=<x>`.

Exports the checkpoint (default: the bundled one) to a temporary .onnx file with
`modeling_mie.export`, checks that the logits agree, then times whole classifier calls (region
CNNs, LSTMs, fusion) on random crops of the exported frame count: one clip (what the app and
`predict` do) and a batch of 8 clips, half of them padded. Both runtimes get the same thread
count, set explicitly (`--threads`, default 1): on this project's 2-core machine two threads
per runtime oversubscribe the cores as soon as anything else runs. Timing alternates the two
runtimes in rounds, so a change in the machine's load hits both alike; medians are reported.

Last line: `speedup=<eager/ORT, one clip> speedup_batch8=<eager/ORT, batch 8> max_abs_diff=<x> threads=<n>`.

Usage: python bench/onnx_runtime.py [--model DIR] [--frames N] [--threads 1] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "checkpoints" / "mie-synthetic-megc2019"))
    parser.add_argument("--frames", type=int, default=None, help="frames exported (default: the processor's)")
    parser.add_argument("--threads", type=int, default=1, help="threads for BOTH runtimes (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="timing rounds (median reported)")
    args = parser.parse_args()

    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    from modeling_mie import MieForVideoClassification
    from modeling_mie.export import example_inputs, export_onnx
    from modeling_mie.onnx_runtime import OnnxMieModel

    model = MieForVideoClassification.from_pretrained(args.model).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "mie.onnx"
        info = export_onnx(args.model, path, frames=args.frames, check=False)
        frames = info["frames"]
        ort_model = OnnxMieModel(path, num_threads=args.threads)
        one = example_inputs(model.config, frames, batch=1, seed=0)
        eight = example_inputs(model.config, frames, batch=8, seed=1)
        one_np = tuple(t.numpy() for t in one)
        eight_np = tuple(t.numpy() for t in eight)
        with torch.inference_mode():
            diff = max(
                float(abs(ort_model(*one_np).logits - model(pixel_values=one[0], frame_mask=one[1]).logits.numpy()).max()),
                float(abs(ort_model(*eight_np).logits - model(pixel_values=eight[0], frame_mask=eight[1]).logits.numpy()).max()),
            )
            runs = {
                "eager, 1 clip": lambda: model(pixel_values=one[0], frame_mask=one[1]),
                "ORT, 1 clip": lambda: ort_model(*one_np),
                "eager, 8 clips": lambda: model(pixel_values=eight[0], frame_mask=eight[1]),
                "ORT, 8 clips": lambda: ort_model(*eight_np),
            }
            for fn in runs.values():  # first-call set-up (oneDNN primitives, ORT's arena)
                fn()
            times = {name: [] for name in runs}
            for _ in range(args.repeats):
                for name, fn in runs.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    c = model.config
    print(f"{Path(args.model).name}: {frames} frames x {c.num_regions} regions of {c.crop_size[0]}x{c.crop_size[1]}, "
          f"{args.threads} thread(s) each (torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}), load average {os.getloadavg()[0]:.2f}")
    for name, ms in med.items():
        print(f"{name:16s} {ms:8.1f} ms")
    print(f"speedup={med['eager, 1 clip'] / med['ORT, 1 clip']:.2f} "
          f"speedup_batch8={med['eager, 8 clips'] / med['ORT, 8 clips']:.2f} max_abs_diff={diff:.1e} threads={args.threads}")


if __name__ == "__main__":
    main()
