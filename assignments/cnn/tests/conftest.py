"""Fixtures of assignment 2 (simple CNN): the student's module, a seeded Net, the shape table and the rules.

The forward-pass tracer and the shape-table checks are those of ``mnistkit.tracing``: it records every
convolution, pooling, padding and linear operation of one forward pass, whether it comes from a module
(``nn.Conv2d``, ``nn.MaxPool2d``, ...) or from a functional call (``F.conv2d``, ``F.max_pool2d``,
``torch.flatten``, ...), and names the layer each belongs to (``conv1``, ``features.3``). Here: the shape
table of the assignment, which that record is checked against, and its rule (no stride, no padding).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mnistkit.testing import call_student, import_student
from mnistkit.tracing import FORMULA, Trace, as_pair, fmt, row_failure, table_rows, trace_forward, trace_random

MODULE = "cnn"

# The shape table of the contract (cnn.py's docstring and README.md), per row: label, kind, shape without
# the batch dimension. A "conv"/"pool"/"linear" row is the output of the next such operation of the forward
# pass; "flatten" is the input of the first linear layer.
TABLE = [
    ("input", "input", (1, 28, 28)),
    ("conv1 + BatchNorm2d", "conv", (10, 24, 24)),
    ("max-pooling + ReLU", "pool", (10, 12, 12)),
    ("conv2 + BatchNorm2d", "conv", (20, 8, 8)),
    ("max-pooling + ReLU", "pool", (20, 4, 4)),
    ("flatten", "flatten", (320,)),
    ("fc1 + BatchNorm1d + ReLU", "linear", (50,)),
    ("fc2 + log_softmax", "linear", (10,)),
]
PARAMETERS = 22_000


# ------------------------------------------------------------------------------------------- rules
def _nonzero(value) -> bool:
    if isinstance(value, str):
        return value != "valid"
    return any(int(v) != 0 for v in (value if isinstance(value, (tuple, list)) else (value,)))


def _not_one(value) -> bool:
    return any(int(v) != 1 for v in (value if isinstance(value, (tuple, list)) else (value,)))


_PAD_LAYERS = tuple(
    cls for cls in (getattr(nn.modules.padding, n, None)
                    for n in ("_ConstantPadNd", "_ReflectionPadNd", "_ReplicationPadNd", "_CircularPadNd"))
    if cls is not None
)


def module_violations(net: nn.Module) -> list:
    """Layers built with stride, padding or dilation (the rule: none of them; pick kernel sizes instead)."""
    found = []
    for path, m in net.named_modules():
        name = f"{path} ({type(m).__name__})"
        if isinstance(m, nn.modules.conv._ConvNd):
            if m.transposed:
                found.append(f"{name} is a transposed convolution: use nn.Conv2d")
            if _not_one(m.stride):
                found.append(f"{name} has stride={tuple(m.stride)}: keep the default stride 1")
            if _nonzero(m.padding):
                found.append(f"{name} has padding={m.padding!r}: keep the default padding 0")
            if _not_one(m.dilation):
                found.append(f"{name} has dilation={tuple(m.dilation)}: keep the default dilation 1")
        elif isinstance(m, (nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)):
            found.append(f"{name} is adaptive pooling: use nn.MaxPool2d with a kernel size you choose")
        elif isinstance(m, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
            if isinstance(m, nn.modules.pooling._AvgPoolNd):
                found.append(f"{name} is average pooling: the blocks use max-pooling (nn.MaxPool2d)")
            if _nonzero(m.padding):
                found.append(f"{name} has padding={m.padding!r}: pooling takes no padding")
            if m.stride is not None and as_pair(m.stride, None) != as_pair(m.kernel_size, None):
                found.append(f"{name} has stride={m.stride!r} and kernel_size={m.kernel_size!r}: leave the "
                             "stride out (it then equals the kernel size)")
            if _not_one(getattr(m, "dilation", 1)):
                found.append(f"{name} has dilation={m.dilation!r}: keep the default dilation 1")
            if m.ceil_mode:
                found.append(f"{name} has ceil_mode=True, which pads implicitly: keep the default False")
        elif isinstance(m, _PAD_LAYERS):
            found.append(f"{name} is a padding layer: no padding anywhere")
    return found


def forward_violations(trace: Trace) -> list:
    """The same rule checked on what forward() really calls (modules and F.conv2d/F.max_pool2d alike)."""
    found = []
    for op in trace.ops:
        p = op.params
        name = op.name()
        if op.kind == "conv":
            if op.func != "conv2d":
                found.append(f"{name} calls {op.func}: use a 2-d convolution (nn.Conv2d or F.conv2d)")
            if p["stride"] != (1, 1):
                found.append(f"{name} runs a convolution with stride={p['stride']}: use stride 1")
            if _nonzero(p["padding"]):
                found.append(f"{name} runs a convolution with padding={p['padding']!r}: use no padding")
            if p["dilation"] != (1, 1):
                found.append(f"{name} runs a convolution with dilation={p['dilation']}: use dilation 1")
        elif op.kind == "pool":
            if p["adaptive"]:
                found.append(f"{name} calls {op.func}: use max-pooling with a kernel size you choose")
                continue
            if not p["max"]:
                found.append(f"{name} calls {op.func}: the blocks use max-pooling")
            if _nonzero(p.get("padding", 0)):
                found.append(f"{name} pools with padding={p['padding']}: pooling takes no padding")
            if p.get("stride") != p.get("kernel"):
                found.append(f"{name} pools with kernel {p.get('kernel')} and stride {p.get('stride')}: leave "
                             "the stride out (it then equals the kernel size)")
            if p.get("dilation", (1, 1)) != (1, 1):
                found.append(f"{name} pools with dilation={p['dilation']}: use dilation 1")
            if p.get("ceil_mode"):
                found.append(f"{name} pools with ceil_mode=True, which pads implicitly")
        elif op.kind == "pad" and _nonzero(p["pad"]):
            found.append(f"{name} pads the input by {p['pad']}: no padding anywhere")
    return found


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def cnn():
    """The student's cnn.py, imported once (a failure here fails each test that needs it)."""
    return import_student(MODULE)


@pytest.fixture
def make_net(cnn):
    """Build ``cnn.Net()`` with a fixed seed; errors become clear test failures."""

    def _make(seed: int = 0):
        torch.manual_seed(seed)
        return call_student("Net()", cnn.Net)

    return _make


@pytest.fixture
def trace_net(make_net):
    """``trace_net(batch)``: trace one eval-mode forward pass of a fresh Net on ``batch`` random images."""

    def _trace(batch: int = 3, *, train: bool = False) -> Trace:
        return trace_random(make_net(), batch, train=train)

    return _trace


class _Kit:
    """The helpers above and mnistkit.tracing's, for the test modules (which cannot import this conftest by name)."""

    TABLE = TABLE
    PARAMETERS = PARAMETERS
    FORMULA = FORMULA
    fmt = staticmethod(fmt)
    trace_forward = staticmethod(trace_forward)
    table_rows = staticmethod(table_rows)
    row_failure = staticmethod(row_failure)
    module_violations = staticmethod(module_violations)
    forward_violations = staticmethod(forward_violations)


@pytest.fixture(scope="session")
def kit():
    """Shape-table and rule helpers of this assignment (see tests/conftest.py and mnistkit/tracing.py)."""
    return _Kit


def pytest_generate_tests(metafunc):
    """Tests that take ``table_row`` run once per row of the shape table (row 0, the input, excluded)."""
    if "table_row" in metafunc.fixturenames:
        rows = range(1, len(TABLE))
        ids = [f"row{i}-" + TABLE[i][0].split(" ")[0].replace("-", "") for i in rows]
        metafunc.parametrize("table_row", list(rows), ids=ids)
