"""Fixtures shared by the tests of the analysis assignment (shipped in the handout).

What the tests read from the handout folder: your ``analysis.py``, ``results.jsonl``, ``report.md`` and the
``plot_<name>.png`` / ``plot_<name>.json`` files, plus the kit's own ``grid.toml``, ``runs.py``,
``plots.py`` and ``checks.py`` (the grader uses its copies of those, not yours).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import runs as kit_runs
from mnistkit.testing import call_student, import_student


@pytest.fixture(scope="session")
def analysis():
    """Your analysis.py, imported once (a failure here fails each test that needs it)."""
    return import_student("analysis")


@pytest.fixture(scope="session")
def root(request) -> Path:
    return Path(request.config.rootpath)


@pytest.fixture(scope="session")
def studies(root):
    """The studies of the kit's grid.toml, expanded to their runs."""
    return kit_runs.load_grid(root / kit_runs.GRID_FILE)


@pytest.fixture(scope="session")
def results(root):
    """``{run key: row}`` of the valid rows of results.jsonl (the last row of a repeated run counts); empty
    when the file is missing, so that each test fails with its own message."""
    rows, _ = kit_runs.read_results(root / kit_runs.RESULTS_FILE)
    return kit_runs.latest_rows(rows)


@pytest.fixture
def make_mlp(analysis):
    """``make_mlp(*args, seed=0, **kwargs)``: the student's ``build_mlp`` with a fixed seed, errors as failures."""

    def _make(*args, seed: int = 0, **kwargs):
        torch.manual_seed(seed)
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        return call_student(f"build_mlp({shown})", analysis.build_mlp, *args, **kwargs)

    return _make
