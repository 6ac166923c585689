"""Measure the analysis assignment: the required grid's run time, the honesty tolerance, the reference optima.

    python bench/analysis_grid.py time --out /tmp/analysis_results.jsonl      # the whole grid, timed per study
    python bench/analysis_grid.py tolerance --rows 6                          # how much a re-run may move
    python bench/analysis_grid.py optima /tmp/analysis_results.jsonl          # best lr per activation (+ margins)

Runs the reference solution (solutions/analysis/analysis.py) through the handout's own code
(assignments/analysis/handout/runs.py), one torch thread per run, exactly as `python sweep.py` does.
MNIST comes from --data-dir or $MNIST_DATA_DIR. Other jobs on the machine slow the timings down: the
load average before and after is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
for folder in (KIT / "solutions" / "analysis", KIT / "assignments" / "analysis" / "handout", KIT / "student_template",
               KIT / "assignments" / "analysis" / "tests"):
    sys.path.insert(0, str(folder))

import torch  # noqa: E402

import plan  # noqa: E402 - the tests' plan: which runs the honesty check may re-train
import runs  # noqa: E402
from analysis import build_mlp  # noqa: E402

GRID = KIT / "assignments" / "analysis" / "handout" / runs.GRID_FILE


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cmd_time(args) -> None:
    studies = runs.load_grid(GRID)
    data = runs.load_data(args.data_dir)
    out = Path(args.out)
    if out.exists():
        out.unlink()
    print(f"{len(runs.grid_runs(studies))} runs; cores {os.cpu_count()}; load average before: {load_average()}")
    seen = set()
    start = time.perf_counter()
    for name, study in studies.items():
        t0 = time.perf_counter()
        count = 0
        for config, seed in study.runs:
            key = runs.run_key(config, seed)
            if key in seen:
                continue
            seen.add(key)
            row = runs.train_run(config, seed, *data, build=build_mlp, threads=args.threads)
            runs.append_row(row, out)
            count += 1
        print(f"  study {name:9s}: {count:3d} new runs in {time.perf_counter() - t0:6.1f} s")
    total = time.perf_counter() - start
    print(f"grid: {len(seen)} runs in {total:.0f} s ({total / 60:.1f} min) with {args.threads} thread(s) per run; "
          f"load average after: {load_average()}; rows in {out}")


def nudged(scale: float):
    """A builder that multiplies every weight by (1 + scale * noise): what another CPU's rounding does, roughly."""

    def build(*args, **kwargs):
        net = build_mlp(*args, **kwargs)
        state = torch.random.get_rng_state()
        noise_gen = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1 + scale * torch.randn(p.shape, generator=noise_gen))
        torch.random.set_rng_state(state)
        return net

    return build


def differences(a: dict, b: dict) -> dict:
    out = {"train_loss": 0.0, "val_loss": 0.0, "train_acc": 0.0, "val_acc": 0.0, "test_acc": 0.0}
    for x, y in zip(a["history"], b["history"]):
        for name in ("train_loss", "val_loss"):
            out[name] = max(out[name], abs(x[name] - y[name]) / max(abs(x[name]), 1e-12))
        for name in ("train_acc", "val_acc"):
            out[name] = max(out[name], abs(x[name] - y[name]))
    out["test_acc"] = abs(a["test_acc"] - b["test_acc"])
    return out


def cmd_tolerance(args) -> None:
    studies = runs.load_grid(GRID)
    data = runs.load_data(args.data_dir)
    candidates = plan.rerun_candidates(studies)
    chosen = random.Random(args.seed).sample(candidates, min(args.rows, len(candidates)))
    if args.include:
        chosen += [(c, s) for c, s in candidates
                   if (c.activation, c.depth, c.lr, s) in {tuple(json.loads(x)) for x in args.include}]
    print(f"{len(candidates)} candidate runs for the honesty check; re-running {len(chosen)}")
    variants = {
        "same again": lambda c, s: runs.train_run(c, s, *data, build=build_mlp),
        "2 threads": lambda c, s: runs.train_run(c, s, *data, build=build_mlp, threads=2),
        "weights x(1+1e-6 noise)": lambda c, s: runs.train_run(c, s, *data, build=nudged(1e-6)),
        "weights x(1+1e-4 noise)": lambda c, s: runs.train_run(c, s, *data, build=nudged(1e-4)),
        "another seed": lambda c, s: runs.train_run(c, s + 1000, *data, build=build_mlp),
    }
    worst = {name: {} for name in variants}
    fabricated_min = {}
    for config, seed in chosen:
        base = runs.train_run(config, seed, *data, build=build_mlp)
        print(f"{config.activation} depth {config.depth} lr {config.lr:g} {config.scheduler} "
              f"{config.epochs} ep seed {seed}: test {base['test_acc']:.4f}")
        for name, run in variants.items():
            diff = differences(base, run(config, seed))
            for key, value in diff.items():
                worst[name][key] = max(worst[name].get(key, 0.0), value)
            if name == "another seed":
                for key, value in diff.items():
                    fabricated_min[key] = min(fabricated_min.get(key, 1e9), value)
            print(f"    {name:26s} " + " ".join(f"{k} {v:.2e}" for k, v in diff.items()))
    print("\nlargest difference over the rows (losses relative, accuracies absolute):")
    for name, diff in worst.items():
        print(f"  {name:26s} " + " ".join(f"{k} {v:.2e}" for k, v in diff.items()))
    print("smallest difference for another seed: " + " ".join(f"{k} {v:.2e}" for k, v in fabricated_min.items()))


def cmd_optima(args) -> None:
    rows, bad = runs.read_results(args.results)
    by_key = runs.latest_rows(rows)
    study = runs.load_grid(GRID)["lr"]
    table = {}
    for config, seed in study.runs:
        row = by_key.get(runs.run_key(config, seed))
        if row:
            table.setdefault(config.activation, {}).setdefault(config.lr, []).append(row["test_acc"])
    for activation, by_lr in table.items():
        means = {lr: statistics.mean(v) for lr, v in by_lr.items()}
        best = max(means, key=means.get)
        cells = " ".join(f"{lr:g}:{m:.4f}(+-{statistics.pstdev(by_lr[lr]):.4f})" for lr, m in means.items())
        print(f"{activation:10s} best {best:g} ({means[best]:.4f}) | {cells}")
    print(json.dumps({"bad_lines": len(bad), "rows": len(rows)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("time", help="run the whole grid once, timed per study")
    p.add_argument("--out", default="/tmp/analysis_results.jsonl", help="results file to write (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1, as sweep.py)")
    p.set_defaults(func=cmd_time)
    p = sub.add_parser("tolerance", help="re-run rows under small perturbations and with other seeds")
    p.add_argument("--rows", type=int, default=6, help="rows to re-run (default: 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the row choice (default: 0)")
    p.add_argument("--include", action="append", default=[], metavar="JSON",
                   help='also re-run this candidate, e.g. \'["sigmoid", 4, 0.001, 0]\' (activation, depth, lr, seed)')
    p.set_defaults(func=cmd_tolerance)
    p = sub.add_parser("optima", help="best learning rate per activation in a results file")
    p.add_argument("results", help="results file (e.g. the output of `time`)")
    p.set_defaults(func=cmd_optima)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
