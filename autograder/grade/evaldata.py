"""The data a grading run hands to students' processes, prepared by the grader.

The student's process gets the training images with their labels (``train.npz``, once per batch) and
evaluation images *without* labels (``eval.npy``, one set per submission). The labels of the evaluation
images stay in the grader's memory.

The evaluation set is the official 10,000 test images, shuffled, with faint noise on every pixel, drawn
with a seed derived from the submission's own bytes: the same zip always meets the same set (grading is
repeatable), but no submission can know its set in advance, so a table of the public test labels, by
position or by exact pixels, gains nothing. Thresholds are measured on sets drawn this way.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NOISE = 8  # grey levels out of 255: invisible to a network, fatal to a table keyed by exact pixels


def perturb(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``images`` ``(N, 28, 28)`` and add faint uniform noise (-8..8 grey levels) to every pixel."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    noise = rng.integers(-NOISE, NOISE + 1, size=images.shape, dtype=np.int16)
    noisy = np.clip(images[order].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return noisy, labels[order]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seed_for(zip_sha256: str, secret: str = "") -> int:
    """A 63-bit seed from the submission's hash (and an optional secret of the course)."""
    digest = hashlib.sha256(f"{secret}:{zip_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class GradingData:
    train_file: Path
    test_images: np.ndarray
    test_labels: np.ndarray

    def eval_set(self, folder: Path, seed: int) -> "EvalSet":
        """Write this submission's evaluation images (no labels) into ``folder``; keep the labels here."""
        images, labels = perturb(self.test_images, self.test_labels, seed)
        path = folder / "eval.npy"
        np.save(path, images)
        path.chmod(0o444)
        return EvalSet(path, labels)


@dataclass(frozen=True)
class EvalSet:
    file: Path
    labels: np.ndarray

    def accuracy(self, predictions: np.ndarray) -> float:
        return float((predictions == self.labels).mean())


def prepare_grading_data(folder: Path, *, data_dir: str | Path | None) -> GradingData:
    """Load MNIST through torchvision; write the training set for the students' processes into ``folder``.

    Raises:
        mnistkit.data.MNISTUnavailableError: MNIST is missing and cannot be downloaded.
    """
    from mnistkit.data import load_mnist

    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = load_mnist(train=True, data_dir=data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=data_dir)
    train_file = folder / "train.npz"
    np.savez(train_file, images=train_images.numpy(), labels=train_labels.numpy())
    train_file.chmod(0o444)
    log.info("grading data ready in %s", folder)
    return GradingData(train_file, test_images.numpy(), test_labels.numpy().astype(np.int64))
