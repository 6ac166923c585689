"""Where MNIST lives (no torch needed here, so the grader's own process stays small).

In order of precedence: the ``data_dir`` argument (the ``--data-dir`` flag of the scripts and of
``pytest``), the ``MNIST_DATA_DIR`` environment variable, ``./data`` next to where you run the command.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = "data"
# The .npy files of a cache folder (mnistkit.data.write_cache), per split (train: True)
CACHE_FILES = {True: ("train-images.npy", "train-labels.npy"), False: ("test-images.npy", "test-labels.npy")}


class MNISTUnavailableError(RuntimeError):
    """MNIST is neither on disk nor downloadable; the message says how to point at it."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder MNIST is read from (argument, then ``$MNIST_DATA_DIR``, then ``./data``)."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()
