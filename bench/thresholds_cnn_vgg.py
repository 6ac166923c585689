"""Measure the accuracy thresholds of the cnn and vgg assignments on their reference solutions.

For each assignment and accuracy check it trains the reference ``Net`` of ``solutions/<name>/<name>.py``
exactly as the grader's test does (``torch.manual_seed(seed); Net()``, then ``mnistkit.train.fit`` with the
budget of ``[accuracy.<check>]`` in ``assignments/<name>/assignment.toml`` and ``seed``), predicts the
official test images with ``mnistkit.train.predict``, and prints the accuracy and the seconds per run for
each seed, then mean/min accuracy and a threshold (min minus the margin, rounded down).

The images are judged the way the grader judges them: by default each seed meets its own evaluation set
made by ``autograder.grade.evaldata.perturb`` (the 10,000 test images shuffled and with faint noise on every
pixel); ``--eval plain`` judges the unchanged test images instead, as a student's local ``pytest`` does.

    python bench/thresholds_cnn_vgg.py                          # cnn and vgg CPU checks, seeds 0-4
    python bench/thresholds_cnn_vgg.py --assignments vgg --seeds 3 --subset 1024
    python bench/thresholds_cnn_vgg.py --assignments vgg --checks full --device cuda

Seed 0 is the run the grader's test makes with the reference. Pin the threads (``--threads``, default 1)
so that seconds are comparable with a grading machine's single core.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "student_template"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mnistkit._toml import tomllib  # noqa: E402
from mnistkit.data import load_mnist, normalize, sample_indices  # noqa: E402
from mnistkit.train import BUDGET_KEYS, Budget, accuracy, fit, predict  # noqa: E402

from autograder.grade.evaldata import perturb  # noqa: E402

GPU_CHECKS = {"vgg": {"full"}}  # checks graded only with CUDA (their tests are marked gpu)


def load_reference(name: str, path: Path | None = None):
    path = path or ROOT / "solutions" / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_checks(name: str) -> dict:
    with open(ROOT / "assignments" / name / "assignment.toml", "rb") as handle:
        return tomllib.load(handle).get("accuracy", {})


def budget_of(check: dict, args: argparse.Namespace) -> Budget:
    fields = {k: check[k] for k in BUDGET_KEYS if k in check}
    for key in BUDGET_KEYS:
        override = getattr(args, key)
        if override is not None:
            fields[key] = override
    return Budget(**fields)


def eval_set(test: tuple, seed: int, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised evaluation images and labels for ``seed``: perturbed as by the grader, or plain."""
    images, labels = test
    if how == "perturbed":
        shifted, labels = perturb(images.numpy(), labels.numpy(), seed)
        images, labels = torch.from_numpy(shifted), torch.from_numpy(labels)
    return normalize(images), labels


def run(module, budget: Budget, seed: int, data, device: str, eval_limit: int | None,
        how: str, fit_seed: int | None = None) -> tuple[float, float, float]:
    (images, labels), test = data
    test_images, test_labels = eval_set(test, seed, how)
    judged = sample_indices(len(test_labels), eval_limit)  # the sample the grader judges, as in judged_images
    test_images, test_labels = test_images[judged], test_labels[judged]
    torch.manual_seed(seed)
    net = module.Net()
    start = time.perf_counter()
    fit(net, images, labels, budget=budget, seed=seed if fit_seed is None else fit_seed, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    trained = time.perf_counter()
    got = accuracy(predict(net, test_images, device=device, batch_size=100), test_labels)
    return got, trained - start, time.perf_counter() - trained


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Measure reference accuracies for the cnn and vgg thresholds")
    parser.add_argument("--assignments", nargs="+", default=["cnn", "vgg"], metavar="NAME",
                        help="assignments to measure (default: cnn vgg)")
    parser.add_argument("--checks", nargs="+", default=None, metavar="CHECK",
                        help="accuracy checks to measure (default: every check that trains on the CPU)")
    parser.add_argument("--solution", default=None, metavar="FILE",
                        help="train the Net of FILE instead of the reference, e.g. a variant a student might write "
                             "(default: solutions/<name>/<name>.py)")
    parser.add_argument("--seeds", type=int, default=5, metavar="N",
                        help="train with N seeds, 0 .. N-1 unless --first-seed says otherwise (default: 5)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="start the seeds at S, to extend an earlier measurement (default: 0)")
    parser.add_argument("--fit-seed", type=int, default=None, metavar="S",
                        help="train every run with this seed of fit (shuffling, dropout) while only the weight "
                             "initialisation follows the run's seed, as the grader does for networks that differ "
                             "only in how they create their layers (default: the run's seed)")
    parser.add_argument("--margin", type=float, default=0.01, metavar="FRACTION",
                        help="threshold = min accuracy minus this, rounded down to 0.1 points (default: 0.01)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch CPU threads (default: 1)")
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help="device to train and predict on, e.g. cuda (default: cpu)")
    parser.add_argument("--data-dir", default=None, metavar="PATH",
                        help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    parser.add_argument("--eval", default="perturbed", choices=["perturbed", "plain"],
                        help="evaluation images: perturbed per seed as by the grader, or the plain test set "
                             "(default: perturbed)")
    parser.add_argument("--eval-limit", type=int, default=None, metavar="N",
                        help="judge on a fixed sample of N evaluation images, for quick exploration (default: the "
                             "check's eval_subset, else all)")
    parser.add_argument("--epochs", type=float, default=None, metavar="E",
                        help="override the budget's epochs (default: as in assignment.toml)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="override the budget's batch size (default: as in assignment.toml)")
    parser.add_argument("--lr", type=float, default=None, metavar="LR",
                        help="override the budget's peak learning rate (default: as in assignment.toml)")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="override the budget's training subset (default: as in assignment.toml)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    train = load_mnist(train=True, data_dir=args.data_dir)
    test = load_mnist(train=False, data_dir=args.data_dir)
    data = ((normalize(train[0]), train[1]), test)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, {args.eval} evaluation "
          f"images{f' (a sample of {args.eval_limit})' if args.eval_limit else ''}", flush=True)

    for name in args.assignments:
        module = load_reference(name, Path(args.solution) if args.solution else None)
        for check_name, check in load_checks(name).items():
            if args.checks is not None and check_name not in args.checks:
                continue
            if args.checks is None and (check_name in GPU_CHECKS.get(name, set()) or "epochs" not in check):
                continue
            budget = budget_of(check, args)
            print(f"\n{name} [accuracy.{check_name}] {budget} (threshold now {check['threshold']})", flush=True)
            results = []
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            for seed in seeds:
                got, train_s, predict_s = run(module, budget, seed, data, args.device,
                                              args.eval_limit or check.get("eval_subset"), args.eval, args.fit_seed)
                results.append((got, train_s, predict_s))
                print(f"  seed {seed}: accuracy {got:.2%}, train {train_s:.1f} s, predict {predict_s:.1f} s",
                      flush=True)
            accs = [r[0] for r in results]
            threshold = math.floor((min(accs) - args.margin) * 1000) / 1000
            print(f"  mean {statistics.mean(accs):.2%}, min {min(accs):.2%}, max {max(accs):.2%} over seeds "
                  f"{seeds[0]}-{seeds[-1]}; train {statistics.mean(r[1] for r in results):.1f} s, predict "
                  f"{statistics.mean(r[2] for r in results):.1f} s per run; threshold with margin "
                  f"{args.margin:.3f}: {threshold}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
