"""Run the required grid of grid.toml and append one row per run to results.jsonl; resumes where it stopped.

    python sweep.py                 # every run of grid.toml that results.jsonl does not hold yet
    python sweep.py --study lr      # only the runs of one study (lr, depth, width, overfit, schedule)
    python sweep.py --dry-run       # say what is missing and how long it should take, run nothing
    python sweep.py --jobs 2        # two runs at a time, one per CPU core

Each finished run is written to the results file at once, so stopping the sweep (Ctrl-C, a closed laptop)
loses only the runs in progress: run the same command again and it skips what is done. A line cut short by
an interrupted write is removed (the file is backed up to results.jsonl.bak first).
"""
import argparse
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from tqdm import tqdm

from runs import (GRID_FILE, RESULTS_FILE, append_row, grid_runs, latest_rows, load_data, load_grid, read_results,
                  run_key, train_run)

SECONDS_PER_EPOCH_ESTIMATE = 1.3  # one epoch of 59,500 images through a small network, on one CPU core

_worker_data = None


def _init_worker(data_dir):
    global _worker_data
    _worker_data = load_data(data_dir)


def _run_in_worker(config, seed):
    return train_run(config, seed, *_worker_data)


def estimate_seconds(runs) -> float:
    """A rough guess of the time the runs take on one core (wider networks cost more per image)."""
    seconds = 0.0
    for config, _ in runs:
        images = config.epochs * (config.train_size or 59_500)
        seconds += SECONDS_PER_EPOCH_ESTIMATE * images / 59_500 * (1 + (config.width / 200) ** 1.5)
    return seconds


def drop_bad_lines(path, bad) -> None:
    """Remove unreadable lines from the results file, keeping a backup."""
    numbers = {number for number, _ in bad}
    backup = f"{path}.bak"
    shutil.copyfile(path, backup)
    with open(backup, encoding="utf-8") as handle:
        lines = [line for number, line in enumerate(handle, start=1) if number not in numbers]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    print(f"removed {len(numbers)} unreadable line(s) from {path} (backup: {backup}):", file=sys.stderr)
    for number, problem in bad[:5]:
        print(f"  line {number}: {problem}", file=sys.stderr)


def describe(config, seed) -> str:
    return (f"{config.activation} {config.depth}x{config.width} {config.optimizer} lr={config.lr:g} "
            f"{config.scheduler} dropout={config.dropout:g} {config.epochs} ep seed={seed}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the missing runs of the grid, appending to the results file")
    parser.add_argument("--grid", default=GRID_FILE, metavar="FILE",
                        help=f"grid of runs (default: {GRID_FILE})")
    parser.add_argument("--results", default=RESULTS_FILE, metavar="FILE",
                        help=f"results file to read and append to (default: {RESULTS_FILE})")
    parser.add_argument("--study", action="append", default=None, metavar="NAME",
                        help="run only this study; repeat for several (default: all studies)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="runs at the same time, each on one CPU core (default: 1)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what is missing and stop (default: False)")
    parser.add_argument("--data-dir", default=None, metavar="PATH",
                        help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    args = parser.parse_args(argv)

    studies = load_grid(args.grid)
    if args.study:
        unknown = sorted(set(args.study) - set(studies))
        if unknown:
            parser.error(f"unknown study {unknown}; the grid has {sorted(studies)}")
        studies = {name: studies[name] for name in args.study}
    runs = grid_runs(studies)
    rows, bad = read_results(args.results)
    if bad and not args.dry_run:
        drop_bad_lines(args.results, bad)
    done = latest_rows(rows)
    missing = [(config, seed) for config, seed in runs if run_key(config, seed) not in done]
    print(f"{len(runs)} runs in {', '.join(studies)}: {len(runs) - len(missing)} already in {args.results}, "
          f"{len(missing)} to run (about {estimate_seconds(missing) / 60 / max(1, args.jobs):.0f} min)")
    if args.dry_run or not missing:
        return 0

    start = time.perf_counter()
    finished = 0
    bar = tqdm(total=len(missing), unit="run", desc="sweep")
    try:
        if args.jobs <= 1:
            data = load_data(args.data_dir)
            for config, seed in missing:
                bar.set_description(describe(config, seed))
                row = train_run(config, seed, *data)
                append_row(row, args.results)
                finished += 1
                bar.set_postfix(test_acc=f"{row['test_acc']:.2%}")
                bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_init_worker,
                                       initargs=(args.data_dir,))
            try:
                pending = {pool.submit(_run_in_worker, config, seed) for config, seed in missing}
                while pending:
                    complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in complete:
                        row = future.result()
                        append_row(row, args.results)
                        finished += 1
                        bar.set_postfix(test_acc=f"{row['test_acc']:.2%}")
                        bar.update(1)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
    except NotImplementedError as err:
        bar.close()
        print(f"analysis.py is not finished yet: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: {finished} run(s) saved in {args.results}; run the same command again to resume")
        return 130
    bar.close()
    print(f"ran {finished} run(s) in {time.perf_counter() - start:.0f} s; results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
