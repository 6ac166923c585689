"""mnistkit.tracing: the forward tracer and the shape-table messages of the CNN assignments' tests."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistkit.tracing import as_pair, print_layer_shapes, row_failure, table_rows, trace_forward, trace_random

TABLE = [
    ("input", "input", (1, 28, 28)),
    ("conv1", "conv", (4, 24, 24)),
    ("pool", "pool", (4, 12, 12)),
    ("flatten", "flatten", (576,)),
    ("fc", "linear", (10,)),
    ("predicted class", "predicted", ()),
]


class Small(nn.Module):
    def __init__(self, padding=0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5, padding=padding)
        size = (28 + 2 * padding - 4) // 2
        self.fc = nn.Linear(4 * size * size, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        return self.fc(torch.flatten(x, 1))


def test_tracing_records_modules_and_functional_calls_in_order():
    trace = trace_random(Small(), 3)
    assert [(op.kind, op.name()) for op in trace.ops] == [
        ("conv", "conv1 (Conv2d)"), ("pool", "F.max_pool2d in forward()"), ("linear", "fc (Linear)")]
    assert trace.ops[1].params["stride"] == (2, 2) and trace.ops[1].out_shape == (3, 4, 12, 12)
    assert trace.input_shape == (3, 1, 28, 28) and trace.error is None
    assert all(row.ok for row in table_rows(trace, TABLE, 3))


def test_tracing_names_the_first_row_that_is_off_with_the_formula():
    trace = trace_random(Small(padding=1), 2)
    rows = table_rows(trace, TABLE, 2)
    assert row_failure(rows, 0, 2) is None
    assert row_failure(rows, 1, 2) == (
        "row 1 (conv1): expected shape (B, 4, 24, 24), got (B, 4, 26, 26); conv1 (Conv2d) has kernel 5, stride 1, "
        "padding 1: H_out = floor((H_in + 2*padding - kernel)/stride) + 1 = floor((28 + 2*1 - 5)/1) + 1 = 26 (B = 2)")
    assert "The first row that is off is row 1 (conv1: expected (B, 4, 24, 24), got (B, 4, 26, 26))" in (
        row_failure(rows, 2, 2))


def test_tracing_keeps_the_error_of_forward_and_fails_on_not_implemented():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("bad")

    class Stub(nn.Module):
        def forward(self, x):
            raise NotImplementedError("later")

    trace = trace_forward(Broken(), torch.zeros(1, 1, 28, 28))
    assert trace.output is None and trace.error.startswith("ValueError: bad")
    assert "there is no output (it stopped with ValueError: bad" in row_failure(table_rows(trace, TABLE, 1), 5, 1)
    with pytest.raises(pytest.fail.Exception, match=r"Net.forward: not written yet \(NotImplementedError: later\)"):
        trace_forward(Stub(), torch.zeros(1, 1, 28, 28))


def test_tracing_as_pair_and_print_layer_shapes(capsys):
    assert as_pair(3, None) == (3, 3) and as_pair([2], None) == (2, 2) and as_pair("same", None) == "same"
    assert as_pair(None, (1, 1)) == (1, 1)
    print_layer_shapes(Small())
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["conv1", "Conv2d", "(2,", "4,", "24,", "24)"]
    assert lines[-1].split() == ["output", "of", "forward()", "(2,", "10)"]
