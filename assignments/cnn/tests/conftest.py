"""Fixtures of assignment 2 (simple CNN): the student's network as the probe exported it (tests/plan.py)."""
import pytest

from mnistkit.tracing import trace_random


@pytest.fixture
def make_net(probe):
    """``make_net()``: a fresh copy of the student's Net (built after torch.manual_seed(0)), as a runnable
    exported graph; a Net that cannot be built or exported fails the test with the reason."""
    return lambda: probe.network("net")


@pytest.fixture
def trace_net(make_net):
    """``trace_net(batch, train=False)``: the operations of one forward pass of a fresh Net on random images."""
    return lambda batch=3, *, train=False: trace_random(make_net(), batch, train=train)


def pytest_generate_tests(metafunc):
    """Tests that take ``table_row`` run once per row of the shape table (row 0, the input, excluded)."""
    if "table_row" in metafunc.fixturenames:
        from cnn_contract import ROW_IDS, TABLE

        metafunc.parametrize("table_row", list(range(1, len(TABLE))), ids=ROW_IDS)
