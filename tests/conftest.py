"""Fixtures of the kit's own tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.config import KIT_ROOT, list_assignments, load_assignment

SHARED_MNIST = KIT_ROOT.parent / "shared" / "mnist"


def mnist_dir() -> Path:
    """$MNIST_DATA_DIR, else the read-only copy beside the repository, else ./data (downloaded)."""
    if os.environ.get("MNIST_DATA_DIR"):
        return Path(os.environ["MNIST_DATA_DIR"])
    if (SHARED_MNIST / "MNIST" / "raw").is_dir():
        return SHARED_MNIST
    return KIT_ROOT / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return mnist_dir()


@pytest.fixture(scope="session")
def assignments():
    return [load_assignment(name) for name in list_assignments()]


@pytest.fixture(scope="session")
def released(tmp_path_factory, assignments):
    """Every assignment released once for the session: {name: zip path}."""
    from autograder.assign import release_assignment

    out = tmp_path_factory.mktemp("dist")
    return {config.name: release_assignment(config, out_dir=out) for config in assignments}


@pytest.fixture(scope="session")
def submissions(released, assignments, data_dir, tmp_path_factory):
    """The reference and the untouched-stub submission of every assignment, built as a student would."""
    from autograder.assign.submission import build_submission

    folder = tmp_path_factory.mktemp("submissions")
    for config in assignments:
        for kind in ("reference", "stub"):
            build_submission(config, released[config.name], folder / f"{config.name}-{kind}.zip",
                             kind=kind, data_dir=data_dir)
    return folder


def pytest_configure(config):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))  # tests/hostile.py, the corpus
