"""Measure the accuracy thresholds of mlp, cnn and vgg on their reference solutions, as the grader judges.

For each assignment and accuracy check with a training budget, it does exactly what the graded test does:
export the reference ``Net`` (``mnistkit.graph``), initialise its layers afresh with
``mnistkit.graph.reinitialise(net, seed)``, train it with ``mnistkit.train.fit`` and the budget of
``[accuracy.<check>]`` of ``assignments/<name>/assignment.toml``, predict the official test images (or the
check's fixed ``eval_subset`` sample) and score them. It prints the accuracy and seconds per seed, then
mean, min and max: a threshold is the min minus a stated margin.

    python bench/thresholds.py                                  # mlp, cnn, vgg CPU checks, seeds 0-4
    python bench/thresholds.py --assignments vgg --seeds 3
    python bench/thresholds.py --assignments vgg --checks full --device cuda

Seed 0 is the run the graded test makes. Pin the threads (``--threads``, default 1) so that the seconds
compare with a grading machine's single core.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPU_CHECKS = {"vgg": {"full"}}  # checks graded only with CUDA (their tests are marked gpu)


def export_reference(name: str):
    """The reference Net of solutions/<name>/<name>.py, exported as the probe exports a student's."""
    import torch

    from mnistkit.graph import ExportSpec, export_network, network_from

    sys.path.insert(0, str(ROOT / "solutions" / name))
    module = __import__(name)
    torch.manual_seed(0)
    description, tensors = export_network(module.Net(), ExportSpec({"image": ((1, 28, 28), "float32")}),
                                          files=(f"{name}.py",))
    return lambda: network_from(description, tensors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", default="mlp,cnn,vgg", help="assignments to measure (default: mlp,cnn,vgg)")
    parser.add_argument("--checks", default=None, help="accuracy checks to measure (default: all but GPU-only ones)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="device to train on (default: cpu)")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    args = parser.parse_args(argv)

    import torch

    from autograder.config import load_assignment
    from mnistkit.data import load_mnist, sample_indices
    from mnistkit.graph import reinitialise
    from mnistkit.train import Budget, accuracy, fit, predict

    torch.set_num_threads(args.threads)
    train_images, train_labels = load_mnist(train=True, data_dir=args.data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=args.data_dir)
    for name in args.assignments.split(","):
        config = load_assignment(name)
        make = export_reference(name)
        for check_name, check in config.accuracy.items():
            if check.epochs is None:
                continue  # no training budget: judged on the student's own weights
            if args.checks is None and check_name in GPU_CHECKS.get(name, set()):
                continue
            if args.checks is not None and check_name not in args.checks.split(","):
                continue
            budget = Budget(**{k: getattr(check, k) for k in ("epochs", "batch_size", "lr", "subset")
                               if getattr(check, k) is not None})
            picked = sample_indices(len(test_labels), check.eval_subset)
            print(f"== {name} [{check_name}]: {budget}; judged on {len(picked):,} images, threshold {check.threshold:.2%}")
            results = []
            for seed in range(args.seeds):
                net = make()
                reinitialise(net, seed=seed)
                start = time.perf_counter()
                fit(net, train_images, train_labels, budget=budget, seed=seed, device=args.device)
                got = accuracy(predict(net, test_images[picked], device=args.device, batch_size=500), test_labels[picked])
                seconds = time.perf_counter() - start
                results.append(got)
                print(f"  seed {seed}: {got:.2%} ({seconds:.1f} s)", flush=True)
            print(f"  mean {statistics.mean(results):.2%}, min {min(results):.2%}, max {max(results):.2%}; "
                  f"margin over the threshold {100 * (min(results) - check.threshold):.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
