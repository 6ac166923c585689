"""Fixtures of assignment 3 (VGG-like CNN): the student's module, a seeded Net, the student's shape table,
the layout of the table and the contract's rules.

The forward-pass tracer and the shape-table checks are those of ``mnistkit.tracing``: it records every
convolution, pooling, padding, batch norm, dropout and linear operation of one forward pass, whether it
comes from a module (``nn.Conv2d``, ``nn.MaxPool2d``, ...) or from a functional call (``F.conv2d``,
``F.max_pool2d``, ...), and names the layer each belongs to (``features.conv3``). The network's real shapes
are checked against your ``shape_table`` here, and against the table of the assignment by the grader.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mnistkit.testing import call_student, import_student
from mnistkit.tracing import FORMULA, Trace, fmt, row_failure, table_rows, trace_forward, trace_random

MODULE = "vgg"

# The rows of the shape table (vgg.py's docstring and README.md): name, kind, number of operations of that
# kind the row covers. A "conv"/"pool"/"linear"/"dropout" row is the output of the last of its operations
# in the forward pass; "flatten" is the input of the first linear layer; "predicted" is output.argmax(dim=1).
LAYOUT = [
    ("input", "input", 0),
    ("conv1", "conv", 1),
    ("pool1", "pool", 1),
    ("conv2", "conv", 1),
    ("pool2", "pool", 1),
    ("conv3+conv4", "conv", 2),
    ("pool3", "pool", 1),
    ("conv5+conv6", "conv", 2),
    ("pool4", "pool", 1),
    ("conv7+conv8", "conv", 2),
    ("pool5", "pool", 1),
    ("flatten", "flatten", 0),
    ("fc1", "linear", 1),
    ("dropout1", "dropout", 1),
    ("fc2", "linear", 1),
    ("dropout2", "dropout", 1),
    ("fc3", "linear", 1),
    ("predicted class", "predicted", 0),
]
ROW_NAMES = [name for name, _, _ in LAYOUT]
# Rows the contract states outright (the rest the student derives): per image, without the batch dimension.
KNOWN_ROWS = {0: (1, 28, 28), 11: (512,), 16: (10,), 17: ()}
PARAMETERS = 9_287_242


def make_table(shapes) -> list:
    """Table entries (name, kind, shape without batch, count) for ``table_rows`` from 18 per-image shapes."""
    return [(name, kind, tuple(shape), count) for (name, kind, count), shape in zip(LAYOUT, shapes)]


# ------------------------------------------------------------------------------------------- rules
def _pairs(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def module_violations(net: nn.Module) -> list:
    """Layers that break the contract: 3x3 convolutions with stride 1, 2x2 max-pooling without padding."""
    found = []
    for path, m in net.named_modules():
        name = f"{path} ({type(m).__name__})"
        if isinstance(m, nn.modules.conv._ConvNd):
            if m.transposed or not isinstance(m, nn.Conv2d):
                found.append(f"{name}: use nn.Conv2d")
            if tuple(m.kernel_size) != (3, 3):
                found.append(f"{name} has kernel_size={tuple(m.kernel_size)}: every convolution is 3x3")
            if tuple(m.stride) != (1, 1):
                found.append(f"{name} has stride={tuple(m.stride)}: keep the default stride 1")
            if tuple(m.dilation) != (1, 1):
                found.append(f"{name} has dilation={tuple(m.dilation)}: keep the default dilation 1")
        elif isinstance(m, (nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)):
            found.append(f"{name} is adaptive pooling: use nn.MaxPool2d(2)")
        elif isinstance(m, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
            if isinstance(m, nn.modules.pooling._AvgPoolNd):
                found.append(f"{name} is average pooling: the blocks use max-pooling, nn.MaxPool2d(2)")
            if _pairs(m.kernel_size) != (2, 2):
                found.append(f"{name} has kernel_size={m.kernel_size!r}: the pooling is 2x2")
            if m.stride is not None and _pairs(m.stride) != _pairs(m.kernel_size):
                found.append(f"{name} has stride={m.stride!r}: leave the stride out (it then equals the kernel)")
            if _pairs(m.padding) != (0, 0):
                found.append(f"{name} has padding={m.padding!r}: pooling takes no padding")
            if _pairs(getattr(m, "dilation", 1)) != (1, 1):
                found.append(f"{name} has dilation={m.dilation!r}: keep the default dilation 1")
            if m.ceil_mode:
                found.append(f"{name} has ceil_mode=True: the table's pooling rounds down (5 -> 2)")
    return found


def forward_violations(trace: Trace) -> list:
    """The same contract checked on what forward() really calls (modules and F.conv2d/F.max_pool2d alike)."""
    found = []
    for op in trace.ops:
        p = op.params
        name = op.name()
        if op.kind == "conv":
            if op.func != "conv2d":
                found.append(f"{name} calls {op.func}: use a 2-d convolution (nn.Conv2d or F.conv2d)")
            if p["kernel"] != (3, 3):
                found.append(f"{name} runs a convolution with kernel {p['kernel']}: every convolution is 3x3")
            if p["stride"] != (1, 1):
                found.append(f"{name} runs a convolution with stride={p['stride']}: use stride 1")
            if p["dilation"] != (1, 1):
                found.append(f"{name} runs a convolution with dilation={p['dilation']}: use dilation 1")
        elif op.kind == "pool":
            if p["adaptive"]:
                found.append(f"{name} calls {op.func}: use max-pooling with kernel 2")
                continue
            if not p["max"]:
                found.append(f"{name} calls {op.func}: the blocks use max-pooling")
            if p.get("kernel") != (2, 2) or p.get("stride") != (2, 2):
                found.append(f"{name} pools with kernel {p.get('kernel')} and stride {p.get('stride')}: "
                             "use kernel 2 and stride 2")
            if p.get("padding", (0, 0)) != (0, 0):
                found.append(f"{name} pools with padding={p['padding']}: pooling takes no padding")
            if p.get("dilation", (1, 1)) != (1, 1):
                found.append(f"{name} pools with dilation={p['dilation']}: use dilation 1")
            if p.get("ceil_mode"):
                found.append(f"{name} pools with ceil_mode=True: the table's pooling rounds down")
    return found


# ------------------------------------------------------------------------------------- your table
def student_table(vgg, batch: int) -> list:
    """``vgg.shape_table(batch)`` checked for form: 18 rows of (name, shape), shapes as int tuples from ``batch``.

    Returns the 18 shapes without the batch dimension; fails with a message naming the first malformed row.
    """
    rows = call_student(f"shape_table({batch})", vgg.shape_table, batch)
    if not isinstance(rows, (list, tuple)):
        pytest.fail(f"shape_table({batch}) returned {type(rows).__name__}; expected a list of "
                    f"{len(LAYOUT)} (name, shape) pairs", pytrace=False)
    if len(rows) != len(LAYOUT):
        pytest.fail(f"shape_table({batch}) returned {len(rows)} rows; the table has {len(LAYOUT)}: "
                    + ", ".join(ROW_NAMES), pytrace=False)
    shapes = []
    for index, row in enumerate(rows):
        where_ = f"shape_table({batch}), row {index} ({ROW_NAMES[index]})"
        if not (isinstance(row, (tuple, list)) and len(row) == 2 and isinstance(row[0], str)):
            pytest.fail(f"{where_}: expected a (name, shape) pair such as ('{ROW_NAMES[index]}', ({batch}, ...)), "
                        f"got {row!r}", pytrace=False)
        shape = row[1]
        if isinstance(shape, torch.Size):
            shape = tuple(shape)
        if not (isinstance(shape, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool)
                                                         for v in shape)):
            pytest.fail(f"{where_}: the shape must be a tuple of ints, got {shape!r}", pytrace=False)
        if len(shape) == 0 or shape[0] != batch:
            pytest.fail(f"{where_}: a shape starts with the batch size {batch}, got {tuple(shape)}", pytrace=False)
        shapes.append(tuple(shape[1:]))
    return shapes


def table_difference(mine: list, reference: list, batch: int, what: str, other: str) -> str | None:
    """The first row where two per-image tables differ, in words; ``None`` if they agree."""
    for index, (a, b) in enumerate(zip(mine, reference)):
        if tuple(a) != tuple(b):
            return (f"row {index} ({ROW_NAMES[index]}): {what} says {fmt((batch, *a), batch)}, {other} says "
                    f"{fmt((batch, *b), batch)} (B = {batch})")
    return None


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def vgg():
    """The student's vgg.py, imported once (a failure here fails each test that needs it)."""
    return import_student(MODULE)


@pytest.fixture
def make_net(vgg):
    """Build ``vgg.Net()`` with a fixed seed; errors become clear test failures."""

    def _make(seed: int = 0):
        torch.manual_seed(seed)
        return call_student("Net()", vgg.Net)

    return _make


@pytest.fixture
def trace_net(make_net):
    """``trace_net(batch)``: trace one eval-mode forward pass of a fresh Net on ``batch`` random images."""

    def _trace(batch: int = 2, *, train: bool = False) -> Trace:
        return trace_random(make_net(), batch, train=train)

    return _trace


class _Kit:
    """The helpers above and mnistkit.tracing's, for the test modules (which cannot import this conftest by name)."""

    LAYOUT = LAYOUT
    ROW_NAMES = ROW_NAMES
    KNOWN_ROWS = KNOWN_ROWS
    PARAMETERS = PARAMETERS
    FORMULA = FORMULA
    fmt = staticmethod(fmt)
    make_table = staticmethod(make_table)
    trace_forward = staticmethod(trace_forward)
    table_rows = staticmethod(table_rows)
    row_failure = staticmethod(row_failure)
    module_violations = staticmethod(module_violations)
    forward_violations = staticmethod(forward_violations)
    student_table = staticmethod(student_table)
    table_difference = staticmethod(table_difference)


@pytest.fixture(scope="session")
def kit():
    """Shape-table and rule helpers of this assignment (see tests/conftest.py and mnistkit/tracing.py)."""
    return _Kit
