"""MNIST as whole tensors: read once, normalise once, batch by slicing.

Every handout and the grader load MNIST through :func:`load_mnist`. It asks torchvision for the data
set (downloading it when it is missing) and returns the raw ``uint8`` images and ``int64`` labels as
two tensors, so that training never goes through a per-sample ``DataLoader`` transform.

Where the data lives, in order of precedence:

1. the ``data_dir`` argument (the ``--data-dir`` flag of the scripts and of ``pytest``);
2. the ``MNIST_DATA_DIR`` environment variable;
3. ``./data`` next to where you run the command.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch

from .paths import CACHE_FILES, DATA_DIR_ENV, DEFAULT_DATA_DIR, MNISTUnavailableError, resolve_data_dir

log = logging.getLogger(__name__)

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "MNISTUnavailableError", "batches", "load_cached", "load_mnist",
           "normalize", "resolve_data_dir", "sample_indices", "write_cache"]
MEAN = 0.1307
STD = 0.3081
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


def load_mnist(
    *, train: bool, data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split as whole tensors.

    Args:
        train: ``True`` for the 60,000 training digits, ``False`` for the official 10,000 test digits.
        data_dir: folder in torchvision's layout (``<data_dir>/MNIST/raw/...``); see the module doc.
        download: let torchvision download the files when they are missing.

    Returns:
        ``(images, labels)``: ``images`` is ``uint8`` of shape ``(N, 28, 28)`` with values 0..255,
        ``labels`` is ``int64`` of shape ``(N,)`` with values 0..9.

    Raises:
        MNISTUnavailableError: the files are missing and could not be downloaded. The message names the
            ``--data-dir`` option and the ``MNIST_DATA_DIR`` variable.
    """
    from torchvision import datasets  # imported here: torchvision costs a second at import

    root = resolve_data_dir(data_dir)
    split = "training" if train else "test"
    existed = root.exists()
    try:
        dataset = datasets.MNIST(str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:
        if not existed:
            _remove_empty(root)  # a failed download leaves no empty data/ folder behind
        raise MNISTUnavailableError(
            f"MNIST ({split} split) is not in {root.resolve()} and could not be downloaded ({err}). "
            f"Point the kit at a folder that holds MNIST/raw/ with --data-dir PATH or by setting "
            f"{DATA_DIR_ENV}=PATH, or connect to the internet so that torchvision can download it."
        ) from None  # the message says it all; a chained traceback would repeat it
    log.info("loaded MNIST %s split from %s: %d images", split, root, len(dataset.targets))
    return dataset.data.clone(), dataset.targets.clone()


def _remove_empty(root: Path) -> None:
    """Remove ``root`` if it holds no file (only the empty folders a failed download made)."""
    if root.is_dir() and not any(p.is_file() for p in root.rglob("*")):
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
        root.rmdir()


def write_cache(folder: Path, *, data_dir: str | os.PathLike | None = None) -> Path:
    """Save both MNIST splits as ``.npy`` files in ``folder`` (``uint8`` images, ``int64`` labels).

    The grader does this once per process, in a folder of its own, so that every check it runs reads
    MNIST by memory-mapping instead of parsing the IDX files again.
    """
    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for train, (images_name, labels_name) in CACHE_FILES.items():
        images, labels = load_mnist(train=train, data_dir=data_dir)
        np.save(folder / images_name, images.numpy())
        np.save(folder / labels_name, labels.numpy())
    return folder


def load_cached(folder: Path, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One split from a :func:`write_cache` folder, memory-mapped: ``(uint8 (N, 28, 28), int64 (N,))``."""
    import numpy as np

    images_name, labels_name = CACHE_FILES[train]
    images = np.load(Path(folder) / images_name, mmap_mode="r", allow_pickle=False)
    labels = np.load(Path(folder) / labels_name, allow_pickle=False)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels).long()


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Turn ``uint8`` images of shape ``(N, 28, 28)`` into ``float32`` ``(N, 1, 28, 28)``.

    Pixels are scaled to [0, 1] and then standardised with the training set's mean 0.1307 and standard
    deviation 0.3081, exactly what ``ToTensor()`` followed by ``Normalize((0.1307,), (0.3081,))`` does.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}")
    x = images.to(torch.float32).div_(255.0)
    x = x.sub_(MEAN).div_(STD)
    return x.unsqueeze(1)


def batches(
    n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Index tensors that cover ``range(n)`` in batches of ``batch_size`` (the last one may be short)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def sample_indices(total: int, n: int | None) -> torch.Tensor:
    """Positions of the ``n`` evaluation images an accuracy check judges, out of ``total``.

    A fixed random sample (seed 0), so that the student's process and the grader pick the same images;
    ``arange(total)`` when ``n`` is ``None`` or not smaller than ``total``. Returns ``int64`` of shape ``(n,)``.
    """
    if n is None or n >= total:
        return torch.arange(total)
    generator = torch.Generator().manual_seed(0)
    return torch.randperm(total, generator=generator)[:n]


def main(argv: list[str] | None = None) -> int:
    """``python -m mnistkit.data cache FOLDER [--data-dir PATH]``: write the .npy cache (exit 3 without MNIST)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mnistkit.data", description="MNIST as .npy files")
    parser.add_argument("command", choices=["cache"], help="what to do: cache = write both splits as .npy files")
    parser.add_argument("folder", type=Path, help="where the .npy files go")
    parser.add_argument("--data-dir", default=None, help=f"folder holding MNIST/raw/ (default: ${DATA_DIR_ENV} or ./data)")
    args = parser.parse_args(argv)
    try:
        write_cache(args.folder, data_dir=args.data_dir)
    except MNISTUnavailableError as err:
        print(err, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
