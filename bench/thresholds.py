"""Measure an assignment's reference accuracy under each grading budget, over several seeds.

    python bench/thresholds.py mlp --seeds 5

For every [accuracy.<check>] of the assignment that has a training budget, train the reference ``Net``
of solutions/<name>/ with that budget for each seed, exactly as the graded test does (mnistkit.train.fit
on whole tensors, then predict on the 10,000 test images shuffled and with faint pixel noise, as the
grader draws them, with the seed as the draw), and print mean, min and seconds per run. The threshold in
assignment.toml is then min minus a stated margin.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("assignment", help="assignment name, e.g. mlp")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default: 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    args = parser.parse_args(argv)

    import torch

    from autograder.config import load_assignment
    from autograder.grade.evaldata import perturb
    from mnistkit.data import load_mnist, normalize
    from mnistkit.train import BUDGET_KEYS, Budget, accuracy, fit, predict

    torch.set_num_threads(args.threads)
    config = load_assignment(args.assignment)
    sys.path.insert(0, str(config.solution_dir))
    module = importlib.import_module(Path(config.handout.stubs[0]).stem)
    train_images, train_labels = load_mnist(train=True, data_dir=args.data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=args.data_dir)
    train_images = normalize(train_images)
    for name, check in config.accuracy.items():
        if check.epochs is None:
            continue
        budget = Budget(**{k: getattr(check, k) for k in BUDGET_KEYS if getattr(check, k) is not None})
        scores, seconds = [], []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = module.Net()
            start = time.perf_counter()
            fit(model, train_images, train_labels, budget=budget, seed=seed)
            seconds.append(time.perf_counter() - start)
            images, labels = perturb(test_images.numpy(), test_labels.numpy(), seed)
            predictions = predict(model, normalize(torch.from_numpy(images)))
            scores.append(accuracy(predictions, torch.from_numpy(labels)))
            print(f"  {name} seed {seed}: {scores[-1]:.2%} in {seconds[-1]:.1f} s")
        print(f"{args.assignment}.{name}: mean {statistics.mean(scores):.2%}, min {min(scores):.2%}, "
              f"max {max(scores):.2%} over {args.seeds} seeds; {statistics.mean(seconds):.1f} s per run "
              f"({args.threads} threads); threshold in assignment.toml: {check.threshold:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
