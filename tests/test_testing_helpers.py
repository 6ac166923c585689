"""The checks the assignment tests are built from fail when they should, with the promised messages."""
import pytest
import torch
from torch import nn

from mnistkit.testing import (
    assert_gradients_flow,
    assert_parameter_count,
    assert_runs_on_device,
    assert_shape,
    first_mismatch,
)

Failed = pytest.fail.Exception


class Good(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) + torch.zeros(2, device=x.device)


class MakesCpuTensor(Good):
    def forward(self, x):
        return self.fc(x) + torch.zeros(2)


class HardCodesCuda(Good):
    def forward(self, x):
        return self.fc(x).cuda()


class Detached(Good):
    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(4, 2)


def test_shape_message_says_expected_and_got():
    with pytest.raises(Failed, match=r"output: expected shape \(64, 10\), got \(64, 50\)"):
        assert_shape(torch.zeros(64, 50), (64, 10), "output")


def test_device_check_passes_a_device_agnostic_model():
    assert_runs_on_device(Good, torch.randn(3, 4), "meta")


@pytest.mark.parametrize("model", [MakesCpuTensor, HardCodesCuda])
def test_device_check_catches_device_bugs_without_a_gpu(model):
    with pytest.raises(Failed, match="on device 'meta'"):
        assert_runs_on_device(model, torch.randn(3, 4), "meta")


def test_gradient_check_names_unused_layers():
    model = Detached()
    with pytest.raises(Failed, match=r"no gradient reached \['unused.weight', 'unused.bias'\]"):
        assert_gradients_flow(model, model(torch.randn(3, 4)).sum())


def test_parameter_count_message_lists_the_parameters():
    with pytest.raises(Failed, match=r"expected 11 trainable parameters, got 10.*fc.weight"):
        assert_parameter_count(Good(), 11)


def test_first_mismatch_names_the_row():
    rows = [("input", (1, 28, 28), (1, 28, 28)), ("conv1", (10, 24, 24), (10, 26, 26))]
    assert first_mismatch(rows) == "row 1 (conv1): expected shape (10, 24, 24), got (10, 26, 26)"
    assert first_mismatch(rows[:1]) is None


def test_shape_check_refuses_tensor_look_alikes():
    class Agreeable(torch.Tensor):
        @property
        def shape(self):
            return (64, 10)

    with pytest.raises(Failed, match="expected a torch.Tensor, got Agreeable"):
        assert_shape(torch.zeros(3).as_subclass(Agreeable), (64, 10), "output")
