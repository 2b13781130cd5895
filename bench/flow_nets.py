"""Seconds to train one LOSO fold of each flow CNN baseline with its paper schedule, on CPU threads or a GPU.

One fold of the MEGC 2019 composite set trains on about 435 clips (442 minus the held-out
subject's) and predicts the rest. This trains each net of `modeling_mie.baselines.FLOW_NETS` on
435 random (3, 28, 28) inputs with random labels (the time does not depend on the values) for the
epochs, batch size and learning rate of `PAPER_SCHEDULES`, predicts 7 held-out rows, and prints
the wall time, the time per epoch and the number of Adam steps. For OFF-ApexNet it also prints
what the paper's 3,000 epochs would take at the measured rate, the reason its schedule is shorter
here (docs/baselines.md). The machine's load average is printed before and after: on a machine
shared with other work the times are upper bounds.

Last line: `offapexnet_s=<s> ststnet_s=<s> dual_inception_s=<s>` (one fold each).

`--device cuda` trains there (`train/loso.py --method ... --device cuda`); 68 folds are printed too.

Usage: python bench/flow_nets.py [--threads 1] [--rows 435] [--nets offapexnet ststnet dual_inception]
       [--epochs N]   (override every schedule's epochs, for a quick per-epoch rate)  [--device cpu|cuda[:N]]
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np
import torch

from modeling_mie.baselines import FLOW_NETS, PAPER_SCHEDULES, train_flow_net

#: OFF-ApexNet's epoch count as the paper is usually cited (docs/baselines.md), for the extrapolation.
OFFAPEXNET_PAPER_EPOCHS = 3000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rows", type=int, default=435, help="training rows of the fold (default 435)")
    parser.add_argument("--test-rows", type=int, default=7, help="held-out rows predicted (default 7)")
    parser.add_argument("--nets", nargs="+", default=list(FLOW_NETS), choices=FLOW_NETS)
    parser.add_argument("--epochs", type=int, default=None, help="override every schedule's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict[str, float]:
    from modeling_mie.devices import describe_device, resolve_device
    from modeling_mie.errors import MieInputError

    try:
        device = resolve_device(args.device)
    except MieInputError as err:
        raise SystemExit(f"error: {err}") from None
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train_x = rng.random((args.rows, 3, 28, 28), dtype=np.float32)
    train_y = rng.integers(0, 3, args.rows)
    test_x = rng.random((args.test_rows, 3, 28, 28), dtype=np.float32)
    print(f"torch {torch.__version__}, {describe_device(device, 'fp32')}, {torch.get_num_threads()} thread(s), "
          f"{args.rows} training rows, load average before: {os.getloadavg()[0]:.2f}")
    seconds = {}
    for name in args.nets:
        schedule = PAPER_SCHEDULES[name]
        if args.epochs is not None:
            schedule = dataclasses.replace(schedule, epochs=args.epochs)
        outcome = train_flow_net(name, train_x, train_y, test_x, seed=args.seed, schedule=schedule, device=device)
        steps = schedule.epochs * -(-args.rows // schedule.batch_size)
        per_epoch = outcome.seconds / schedule.epochs
        seconds[name] = outcome.seconds
        line = (f"{name:15s} epochs {schedule.epochs:4d}  batch {schedule.batch_size:3d}  lr {schedule.lr:g}  "
                f"Adam steps {steps:5d}  fold {outcome.seconds:7.1f} s  ({per_epoch:.3f} s/epoch; "
                f"68 folds {68 * outcome.seconds / 3600:.2f} h)")
        if name == "offapexnet":
            line += f"; {OFFAPEXNET_PAPER_EPOCHS} epochs would take {OFFAPEXNET_PAPER_EPOCHS * per_epoch / 60:.0f} min"
        print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(" ".join(f"{name}_s={s:.1f}" for name, s in seconds.items()))
    return seconds


if __name__ == "__main__":
    main(parse_args())
