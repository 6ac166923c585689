"""Fixtures shared by the tests of the analysis assignment (shipped in the handout).

Your analysis.py reaches the tests as the grader sees it: the probe (tests/plan.py) builds your networks
and exports them with torch.export, and calls your functions; the tests judge what it recorded. Your
``results.jsonl``, ``report.md`` and ``plot_<name>.png`` / ``plot_<name>.json`` are read as data and
checked by ``analysis_checks.py``, with the kit's own ``grid.toml``, ``runs.py`` and ``plots.py`` (the
grader uses its copies of those, not yours).
"""
from __future__ import annotations

from pathlib import Path

import pytest

import analysis_checks as checks
import plan
import runs as kit_runs
from analysis_contract import train_probe_network
from mnistkit.checks import fail


@pytest.fixture(scope="session")
def studies(request):
    """The studies of the kit's grid.toml, expanded to their runs."""
    return kit_runs.load_grid(Path(request.config.rootpath) / kit_runs.GRID_FILE)


@pytest.fixture(scope="session")
def results_path(submitted) -> Path:
    """Where the submitted results.jsonl is (it may not exist)."""
    return submitted(kit_runs.RESULTS_FILE)


@pytest.fixture(scope="session")
def results(results_path):
    """``{run key: row}`` of the valid rows of results.jsonl (the last row of a repeated run counts); empty
    when the file is missing, so that each test fails with its own message."""
    rows, _ = checks.valid_rows(results_path)
    return kit_runs.latest_rows(rows)


@pytest.fixture
def mlp(probe):
    """``mlp(item_id)``: a fresh copy of one of your networks of tests/plan.py (a runnable exported graph); a
    build_mlp that raised or could not be exported fails the test with the reason."""
    return lambda item_id: probe.network(item_id)


@pytest.fixture(scope="session")
def mnist_data(mnist_train, mnist_test):
    """The training and test images (``uint8``, normalised one batch at a time) and their labels, as
    train.py loads them (``runs.load_data``)."""
    (train_images, train_labels), (test_images, test_labels) = mnist_train, mnist_test
    if len(train_labels) != checks.MNIST_TRAIN_SIZE:
        fail(f"the training data have {len(train_labels)} images, not the {checks.MNIST_TRAIN_SIZE:,} of MNIST "
             "in their official order, so runs cannot be re-run here")
    return train_images, train_labels.long(), test_images, test_labels.long()


@pytest.fixture
def check_reruns(probe, plan_seed, results_path, results, mnist_data):
    """``check_reruns(kind)``: re-train the runs the plan chose for the ``"visible"`` or ``"hidden"`` honesty
    check with your exported networks and fail unless each reproduces its row of results.jsonl."""

    def _check(kind: str) -> None:
        if not results_path.is_file():
            fail(f"{kit_runs.RESULTS_FILE} not found: run `python sweep.py` to create it (the honesty check re-trains "
                 "some of its rows and compares them with what you submit)")
        chosen = [(kit_runs.RunConfig.from_dict(c), s) for c, s in plan.reruns(kind, plan_seed, results_path)]
        index = {kit_runs.run_key(c, s): i for i, (c, s) in enumerate(chosen)}

        def rerun(config, seed):
            return train_probe_network(probe, plan.rerun_id(kind, index[kit_runs.run_key(config, seed)]), config,
                                       seed, mnist_data, f"re-running {checks.describe(config, seed)}")

        checks.check_reruns(chosen, results, rerun)

    return _check
