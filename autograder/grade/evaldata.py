"""The data a grading run hands to students' processes, prepared once per batch by the grader.

The student's process gets the training images with their labels (``train.npz``) and the evaluation
images *without* labels (``eval.npy``). The labels of the evaluation images stay in the grader's memory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GradingData:
    train_file: Path
    eval_file: Path
    eval_labels: np.ndarray

    def accuracy(self, predictions: np.ndarray) -> float:
        return float((predictions == self.eval_labels).mean())


def prepare_grading_data(folder: Path, *, data_dir: str | Path | None) -> GradingData:
    """Load MNIST through torchvision and write the student-side files into ``folder``.

    Raises:
        mnistkit.data.MNISTUnavailableError: MNIST is missing and cannot be downloaded.
    """
    from mnistkit.data import load_mnist

    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = load_mnist(train=True, data_dir=data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=data_dir)
    train_file = folder / "train.npz"
    eval_file = folder / "eval.npy"
    np.savez(train_file, images=train_images.numpy(), labels=train_labels.numpy())
    np.save(eval_file, test_images.numpy())
    for path in (train_file, eval_file):
        path.chmod(0o444)
    log.info("grading data ready in %s", folder)
    return GradingData(train_file, eval_file, test_labels.numpy().astype(np.int64))
