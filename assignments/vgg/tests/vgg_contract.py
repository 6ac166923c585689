"""The contract of assignment 3 as data and rules the tests check against (vgg.py's docstring says it in words).

The rows of the shape table, the layers in order, and the rules: 3x3 convolutions with stride 1, 2x2
max-pooling without padding. The rules read the operations of the exported graph (mnistkit.tracing), so
they hold for modules and functional calls alike.
"""
from mnistkit import rules
from mnistkit.checks import call_value, fail
from mnistkit.layers import Layer
from mnistkit.tracing import fmt

# The rows of the table: name, kind, number of operations of that kind the row covers. A "conv"/"pool"/
# "linear"/"dropout" row is the output of the last of its operations in the forward pass; "flatten" is the
# input of the first linear layer; "predicted" is output.argmax(dim=1).
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
# conv1 is among them: the docstring's table and the README say it grows the picture from 28 to 30 ("watch
# row 1"), so a first padding of another size is caught by a visible test even with a table computed for it.
KNOWN_ROWS = {0: (1, 28, 28), 1: (64, 30, 30), 11: (512,), 16: (10,), 17: ()}
PARAMETERS = 9_287_242
CHANNELS = [(1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
LAYERS = [
    *[Layer("conv", in_channels=i, out_channels=o, kernel=3,
            then=[[f"BatchNorm({o})", "ReLU", "MaxPool2d(2)"]] if n in (0, 1, 3, 5, 7) else [[f"BatchNorm({o})", "ReLU"]])
      for n, (i, o) in enumerate(CHANNELS)],
    Layer("linear", in_features=512, out_features=100, then=[["ReLU", "Dropout(0.2)"]]),
    Layer("linear", in_features=100, out_features=100, then=[["ReLU", "Dropout(0.2)"]]),
    Layer("linear", in_features=100, out_features=10, then=[["log_softmax(dim=1)"]]),
]


def make_table(shapes) -> list:
    """Table entries (name, kind, shape without batch, count) for ``table_rows`` from 18 per-image shapes."""
    return [(name, kind, tuple(shape), count) for (name, kind, count), shape in zip(LAYOUT, shapes)]


def convolution_violations(trace) -> list:
    """Convolutions forward() runs that are not 3x3 with stride 1 and no dilation."""
    return rules.convolution_violations(trace, kernel=(3, 3))


def pooling_violations(trace) -> list:
    """Poolings forward() runs that are not 2x2 max-pooling with stride 2 and no padding."""
    return rules.pooling_violations(trace, kernel=(2, 2), ceil_reason="the table's pooling rounds down (5 -> 2)")


def forward_violations(trace) -> list:
    """Everything forward() runs against the contract's rules (convolutions, then poolings)."""
    return convolution_violations(trace) + pooling_violations(trace)


def student_table(probe, batch: int) -> list:
    """The student's ``shape_table(batch)`` checked for form: 18 rows of (name, shape), shapes as int tuples.

    Returns the 18 shapes without the batch dimension; fails with a message naming the first malformed row.
    """
    rows = call_value(probe.steps("shape_table").get(f"b{batch}"), f"shape_table({batch})")
    if not isinstance(rows, (list, tuple)):
        fail(f"shape_table({batch}) returned {type(rows).__name__}; expected a list of {len(LAYOUT)} (name, shape) pairs")
    if len(rows) != len(LAYOUT):
        fail(f"shape_table({batch}) returned {len(rows)} rows; the table has {len(LAYOUT)}: " + ", ".join(ROW_NAMES))
    shapes = []
    for index, row in enumerate(rows):
        where = f"shape_table({batch}), row {index} ({ROW_NAMES[index]})"
        if not (isinstance(row, (tuple, list)) and len(row) == 2 and isinstance(row[0], str)):
            fail(f"{where}: expected a (name, shape) pair such as ('{ROW_NAMES[index]}', ({batch}, ...)), got {row!r}")
        shape = row[1]
        if not (isinstance(shape, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
            fail(f"{where}: the shape must be a tuple of ints, got {shape!r}")
        if len(shape) == 0 or shape[0] != batch:
            fail(f"{where}: a shape starts with the batch size {batch}, got {tuple(shape)}")
        shapes.append(tuple(shape[1:]))
    return shapes


def table_difference(mine: list, reference: list, batch: int, what: str, other: str) -> str | None:
    """The first row where two per-image tables differ, in words; ``None`` if they agree."""
    for index, (a, b) in enumerate(zip(mine, reference)):
        if tuple(a) != tuple(b):
            return (f"row {index} ({ROW_NAMES[index]}): {what} says {fmt((batch, *a), batch)}, {other} says "
                    f"{fmt((batch, *b), batch)} (B = {batch})")
    return None


def out_size_value(probe, index: int, case) -> object:
    size, kernel, stride, padding = case
    return call_value(probe.steps("out_size").get(f"c{index}"),
                      f"out_size({size}, kernel={kernel}, stride={stride}, padding={padding})")
