"""pytest plugin of every handout: the ``--data-dir`` option, markers, and the MNIST fixtures.

It runs in two modes with the same tests:

* **local** (a student's ``pytest``): data come from ``--data-dir`` / ``$MNIST_DATA_DIR`` / ``./data``,
  and :func:`judge` compares predictions with the official test labels right away.
* **grade** (``MNISTKIT_MODE=grade``, set by the autograder): training data come from a file the grader
  prepared, the evaluation images come without labels, and :func:`judge` only records the predictions.
  The grader, in another process, scores them against labels this process never sees.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from . import data as mnist_data
from ._toml import tomllib
from .train import Budget, accuracy, budget_of

MODE_ENV = "MNISTKIT_MODE"
TRAIN_FILE_ENV = "MNISTKIT_TRAIN_FILE"
EVAL_FILE_ENV = "MNISTKIT_EVAL_FILE"
EVIDENCE_DIR_ENV = "MNISTKIT_EVIDENCE_DIR"
CONFIG_NAME = "assignment.toml"


def grading() -> bool:
    return os.environ.get(MODE_ENV) == "grade"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--data-dir",
        default=None,
        help=f"folder holding MNIST/raw/ (default: ${mnist_data.DATA_DIR_ENV} or ./data; downloaded if missing)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "points(n): how many points the test is worth when graded",
        "bonus: extra credit: its points count when earned but not in the maximum",
        "accuracy(check): predictions are judged against the threshold of [accuracy.<check>] in assignment.toml",
        "gpu: needs CUDA; skipped with a reason where CUDA is absent",
        "slow: trains a network (seconds to a minute)",
    ):
        config.addinivalue_line("markers", line)
    torch.set_num_threads(int(os.environ.get("MNISTKIT_THREADS", torch.get_num_threads())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available here; test_*_device_check covers device bugs on the CPU")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def load_config(rootdir: Path) -> dict:
    path = Path(rootdir) / CONFIG_NAME
    with open(path, "rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="session")
def assignment_config(request: pytest.FixtureRequest) -> dict:
    """The handout's ``assignment.toml`` (thresholds and training budgets, written in the README too)."""
    return load_config(request.config.rootpath)


@pytest.fixture(scope="session")
def data_dir(request: pytest.FixtureRequest) -> Path:
    return mnist_data.resolve_data_dir(request.config.getoption("--data-dir"))


def _load_or_fail(**kwargs):
    try:
        return mnist_data.load_mnist(**kwargs)
    except mnist_data.MNISTUnavailableError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def mnist_train(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60,000 training images, normalised ``(N, 1, 28, 28)`` float32, and their ``(N,)`` labels."""
    if grading():
        with np.load(os.environ[TRAIN_FILE_ENV], allow_pickle=False) as archive:
            images, labels = torch.from_numpy(archive["images"]), torch.from_numpy(archive["labels"])
    else:
        images, labels = _load_or_fail(train=True, data_dir=data_dir)
    return mnist_data.normalize(images), labels.long()


@pytest.fixture(scope="session")
def eval_images(data_dir: Path) -> torch.Tensor:
    """The images accuracy is judged on, normalised ``(N, 1, 28, 28)``; no labels, in either mode."""
    if grading():
        images = torch.from_numpy(np.load(os.environ[EVAL_FILE_ENV], allow_pickle=False))
    else:
        images, _ = _load_or_fail(train=False, data_dir=data_dir)
    return mnist_data.normalize(images)


@pytest.fixture
def judged_images(request: pytest.FixtureRequest, eval_images: torch.Tensor, assignment_config: dict) -> torch.Tensor:
    """The evaluation images the test's ``@pytest.mark.accuracy(check)`` judges: all of them, or a fixed
    random sample of ``eval_subset`` images when the check sets it (predicting fewer saves time)."""
    _, check = _accuracy_check(request, assignment_config)
    return eval_images[mnist_data.sample_indices(len(eval_images), check.get("eval_subset"))]


@pytest.fixture(scope="session")
def _test_labels(data_dir: Path) -> torch.Tensor:
    _, labels = _load_or_fail(train=False, data_dir=data_dir)
    return labels


def _accuracy_check(request: pytest.FixtureRequest, config: dict) -> tuple[str, dict]:
    marker = request.node.get_closest_marker("accuracy")
    if marker is None:
        raise RuntimeError(f"{request.node.nodeid} uses an accuracy fixture without @pytest.mark.accuracy(check)")
    check = marker.args[0]
    return check, config["accuracy"][check]


@pytest.fixture
def grading_budget(request: pytest.FixtureRequest, assignment_config: dict) -> Budget:
    """The fixed training budget of the test's ``@pytest.mark.accuracy(check)``."""
    _, check = _accuracy_check(request, assignment_config)
    return budget_of(check)


@pytest.fixture
def judge(request: pytest.FixtureRequest, assignment_config: dict):
    """``judge(predictions)``: the test's predicted classes ``(N,)`` for :func:`judged_images`.

    Locally it fails unless the accuracy reaches the check's threshold; in grade mode it records the
    predictions for the grader, which decides.
    """
    name, check = _accuracy_check(request, assignment_config)
    threshold = float(check["threshold"])

    def _judge(predictions: torch.Tensor) -> None:
        predictions = torch.as_tensor(predictions).detach().cpu().long().reshape(-1)
        if grading():
            folder = Path(os.environ[EVIDENCE_DIR_ENV])
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
            np.save(folder / f"{safe}.npy", predictions.numpy())
            return
        labels = request.getfixturevalue("_test_labels")
        labels = labels[mnist_data.sample_indices(len(labels), check.get("eval_subset"))]
        if predictions.shape != labels.shape:
            pytest.fail(f"expected {tuple(labels.shape)} predictions, got {tuple(predictions.shape)}", pytrace=False)
        got = accuracy(predictions, labels)
        if got < threshold:
            pytest.fail(
                f"{name}: accuracy {got:.2%} on the {len(labels):,} test images, below the required {threshold:.2%}",
                pytrace=False,
            )

    return _judge
