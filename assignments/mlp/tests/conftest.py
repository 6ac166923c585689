import pytest
import torch

from mnistkit.testing import import_student


@pytest.fixture(scope="session")
def mlp():
    """The student's mlp.py, imported once (a failure here fails each test that needs it)."""
    return import_student("mlp")


@pytest.fixture
def make_net(mlp):
    """Build ``mlp.Net()`` with a fixed seed; errors become clear test failures."""
    from mnistkit.testing import call_student

    def _make(seed: int = 0):
        torch.manual_seed(seed)
        return call_student("Net()", mlp.Net)

    return _make
