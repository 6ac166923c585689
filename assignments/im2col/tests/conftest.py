"""Fixtures of the im2col assignment. This file ships in the handout: it is how the tests see your im2col.py.

Your im2col.py is run by the probe: tests/plan.py lists every call the tests need (on your machine it runs
right here when pytest starts, with seed 0; the grader runs it in a sandbox, with a seed of its own), and
the tests judge what it recorded: the arrays your functions returned, or the exceptions they raised.

The ``student`` fixture is your im2col.py as the tests see it (tests/im2col_contract.py): the text of the
file, checked statically for the contract's rules (numpy only; no Python loop over the images or the
output pixels), and the probe's records, checked to be float64 ``numpy.ndarray``s of the right shapes.
The expected values are computed by the tests with torch, in float64, from the same input arrays.
"""
import pytest

from im2col_contract import FILE, Student


@pytest.fixture(scope="session")
def student(probe, submitted) -> Student:
    """The submitted im2col.py (its text) and what the probe recorded of its calls."""
    return Student(probe, submitted(FILE))


@pytest.fixture(scope="session")
def randn(plan_seed):
    """``randn(*shape, seed=0)``: a float64 tensor of standard normal numbers for the tests' own use (never
    shown to your code), drawn from the plan's seed and ``seed``."""
    import torch

    def _randn(*shape, seed: int = 0):
        generator = torch.Generator().manual_seed((plan_seed * 1_000_003 + seed) % 2**62)
        return torch.randn(*shape, dtype=torch.float64, generator=generator)

    return _randn
