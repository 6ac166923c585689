"""Fixtures of assignment 3 (VGG-like CNN): the student's module, a seeded Net, the student's shape table,
and a forward-pass tracer.

The tracer runs one forward pass and records every convolution, pooling, padding, batch norm, dropout
and linear operation in the order they happen, whether they come from a module (``nn.Conv2d``,
``nn.MaxPool2d``, ...) or from a functional call (``F.conv2d``, ``F.max_pool2d``, ...). Forward hooks on the
modules name the layer each operation belongs to (``features.conv3``), so messages can say which of your
layers is off. The network's real shapes are checked against your ``shape_table`` here, and against the
table of the assignment by the grader.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnistkit.testing import call_student, import_student, where

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

FORMULA = "H_out = floor((H_in + 2*padding - kernel)/stride) + 1"
KIND_NAMES = {
    "conv": "a convolution",
    "pool": "a pooling",
    "linear": "a linear layer",
    "dropout": "a dropout",
    "flatten": "the flattened input of the first linear layer",
}


def make_table(shapes) -> list:
    """Table entries (name, kind, shape without batch, count) for ``table_rows`` from 18 per-image shapes."""
    return [(name, kind, tuple(shape), count) for (name, kind, count), shape in zip(LAYOUT, shapes)]


# --------------------------------------------------------------------------------------------- tracer
@dataclass
class Op:
    """One traced operation of a forward pass."""

    kind: str  # conv, pool, linear, dropout, pad, norm
    func: str  # torch function name: conv2d, max_pool2d, avg_pool2d, linear, pad, ...
    layer: str  # module path (e.g. "conv1", "features.0") or "forward" for a functional call
    module_type: str  # class name of that module ("Conv2d"), "" for a functional call
    in_shape: tuple
    out_shape: tuple | None
    params: dict = field(default_factory=dict)

    def name(self) -> str:
        if self.layer == "forward":
            return f"F.{self.func} in forward()"
        return f"{self.layer} ({self.module_type})"


@dataclass
class Trace:
    input_shape: tuple
    ops: list
    output: torch.Tensor | None
    error: str | None


_SIGNATURES = {
    # name: (kind, positional parameter names after the input)
    "conv2d": ("conv", ("weight", "bias", "stride", "padding", "dilation", "groups")),
    "conv1d": ("conv", ("weight", "bias", "stride", "padding", "dilation", "groups")),
    "conv3d": ("conv", ("weight", "bias", "stride", "padding", "dilation", "groups")),
    "conv_transpose2d": ("conv", ("weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")),
    "max_pool2d": ("pool", ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    "max_pool2d_with_indices": ("pool", ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    "avg_pool2d": ("pool", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")),
    "lp_pool2d": ("pool", ("norm_type", "kernel_size", "stride", "ceil_mode")),
    "adaptive_max_pool2d": ("pool", ("output_size", "return_indices")),
    "adaptive_max_pool2d_with_indices": ("pool", ("output_size", "return_indices")),
    "adaptive_avg_pool2d": ("pool", ("output_size",)),
    "fractional_max_pool2d": ("pool", ("kernel_size", "output_size", "output_ratio", "return_indices")),
    "linear": ("linear", ("weight", "bias")),
    "batch_norm": ("norm", ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")),
    "dropout": ("dropout", ("p", "training", "inplace")),
    "pad": ("pad", ("pad", "mode", "value")),
    "constant_pad_nd": ("pad", ("pad", "value")),
}


def _pair(value, default):
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value) * (2 if len(value) == 1 else 1)
    return (int(value), int(value))


def _params(func: str, args: tuple, kwargs: dict) -> dict:
    _, names = _SIGNATURES[func]
    bound = dict(zip(names, args[1:]))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    if _SIGNATURES[func][0] == "conv":
        weight = bound.get("weight")
        kernel = tuple(weight.shape[2:]) if isinstance(weight, torch.Tensor) else None
        return {
            "kernel": kernel,
            "stride": _pair(bound.get("stride"), (1, 1)),
            "padding": _pair(bound.get("padding"), (0, 0)),
            "dilation": _pair(bound.get("dilation"), (1, 1)),
            "groups": int(bound.get("groups", 1) or 1),
            "transposed": func == "conv_transpose2d",
        }
    if _SIGNATURES[func][0] == "pool":
        kernel = _pair(bound.get("kernel_size"), None)
        return {
            "kernel": kernel,
            "stride": _pair(bound.get("stride"), kernel),
            "padding": _pair(bound.get("padding"), (0, 0)),
            "dilation": _pair(bound.get("dilation"), (1, 1)),
            "ceil_mode": bool(bound.get("ceil_mode", False)),
            "adaptive": func.startswith(("adaptive", "fractional")),
            "max": "max" in func,
        }
    if _SIGNATURES[func][0] == "pad":
        return {"pad": tuple(int(v) for v in bound.get("pad", ()))}
    if _SIGNATURES[func][0] == "norm":
        return {"features": int(args[0].shape[1]) if args[0].dim() > 1 else None,
                "training": bool(bound.get("training", False))}
    if _SIGNATURES[func][0] == "dropout":
        return {"p": float(bound.get("p", 0.5)), "training": bool(bound.get("training", True))}
    return {}


class _Recorder(TorchFunctionMode):
    def __init__(self, stack: list, ops: list):
        super().__init__()
        self.stack = stack
        self.ops = ops

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _SIGNATURES and args and isinstance(args[0], torch.Tensor):
            first = out[0] if isinstance(out, tuple) else out
            layer, module_type = self.stack[-1] if self.stack else ("forward", "")
            op = Op(
                kind=_SIGNATURES[name][0],
                func=name,
                layer=layer,
                module_type=module_type,
                in_shape=tuple(args[0].shape),
                out_shape=tuple(first.shape) if isinstance(first, torch.Tensor) else None,
                params=_params(name, args, kwargs),
            )
            self.ops.append(op)
        return out


def trace_forward(net: nn.Module, x: torch.Tensor) -> Trace:
    """Run ``net(x)`` once and record its operations (module forward hooks name the layers)."""
    stack: list = []
    ops: list = []
    handles = []
    for path, module in net.named_modules():
        if module is net:
            continue

        def pre(mod, inputs, path=path):
            stack.append((path, type(mod).__name__))

        def post(mod, inputs, output):
            if stack:
                stack.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    output, error = None, None
    try:
        with _Recorder(stack, ops):
            output = net(x)
    except NotImplementedError as err:
        pytest.fail(f"Net.forward: not written yet (NotImplementedError: {err})", pytrace=False)
    except Exception as err:  # noqa: BLE001 - student code
        error = f"{type(err).__name__}: {err}{where(err)}"
    finally:
        for handle in handles:
            handle.remove()
    return Trace(tuple(x.shape), ops, output, error)


# --------------------------------------------------------------------------------------- shape rows
def fmt(shape, batch: int | None = None) -> str:
    """``(B, 10, 24, 24)`` for a shape whose first entry is the batch size ``batch``."""
    if shape is None:
        return "nothing"
    shape = tuple(shape)
    if batch is not None and shape and shape[0] == batch:
        return "(" + ", ".join(["B", *map(str, shape[1:])]) + ")"
    return str(shape)


def formula(op: Op) -> str:
    """The output-size formula with the numbers of ``op`` (a conv or pooling), for the height."""
    p = op.params
    h_in = op.in_shape[-2] if len(op.in_shape) >= 3 else None
    if op.kind not in ("conv", "pool") or h_in is None or not p.get("kernel") or p.get("adaptive"):
        return ""
    if isinstance(p.get("padding"), str):
        return f"; it uses padding={p['padding']!r}"
    k, s, pad, d = p["kernel"][0], p["stride"][0], p["padding"][0], p["dilation"][0]
    if p.get("transposed"):
        return f"; it is a transposed convolution (kernel {k}, stride {s}, padding {pad})"
    span = d * (k - 1) + 1
    h_out = math.floor((h_in + 2 * pad - span) / s) + 1
    kernel_text = f"{k}" if d == 1 else f"{span} (kernel {k} with dilation {d})"
    return (f"; {op.name()} has kernel {kernel_text}, stride {s}, padding {pad}: "
            f"{FORMULA} = floor(({h_in} + 2*{pad} - {span})/{s}) + 1 = {h_out}")


@dataclass
class Row:
    index: int
    label: str
    kind: str
    expected: tuple  # with the batch dimension
    actual: tuple | None
    ops: list  # the operations this row was read from
    problem: str = ""  # why ``actual`` is missing or of the wrong kind

    @property
    def ok(self) -> bool:
        return not self.problem and self.actual is not None and tuple(self.actual) == tuple(self.expected)


def table_rows(trace: Trace, table, batch: int) -> list:
    """Line the traced operations up with ``table`` (rows of label, kind, shape[, count])."""
    kinds = {entry[1] for entry in table} & {"conv", "pool", "linear", "dropout"}
    ops = [op for op in trace.ops if op.kind in kinds]
    after = f" (it stopped with {trace.error})" if trace.error else ""
    rows = []
    cursor = 0
    for index, entry in enumerate(table):
        label, kind, shape = entry[:3]
        count = entry[3] if len(entry) > 3 else 1
        expected = (batch, *shape)
        if kind == "input":
            rows.append(Row(index, label, kind, expected, trace.input_shape, []))
            continue
        if kind == "predicted":
            actual = None
            problem = ""
            if trace.output is None:
                problem = f"there is no output{after}"
            elif trace.output.dim() < 2:
                problem = f"the output has shape {fmt(trace.output.shape, batch)}, so argmax(dim=1) is undefined"
            else:
                actual = tuple(trace.output.argmax(dim=1).shape)
            rows.append(Row(index, label, kind, expected, actual, [], problem))
            continue
        if kind == "flatten":
            nxt = ops[cursor] if cursor < len(ops) else None
            if nxt is None or nxt.kind != "linear":
                found = f"{KIND_NAMES[nxt.kind]} ({nxt.name()})" if nxt else f"no further layer{after}"
                rows.append(Row(index, label, kind, expected, None, [],
                                f"the flattened features should go into a linear layer next; there is {found}"))
                continue
            rows.append(Row(index, label, kind, expected, nxt.in_shape, [nxt]))
            continue
        taken = ops[cursor : cursor + count]
        cursor += count
        wrong = [op for op in taken if op.kind != kind]
        if len(taken) < count:
            plain = KIND_NAMES[kind].split(" ", 1)[1]
            what = f"only {len(taken)} more {plain}(s) where this row needs {count}" if count > 1 else f"no more {plain}"
            rows.append(Row(index, label, kind, expected, None, taken,
                            f"your forward has {what} for this row{after}"))
        elif wrong:
            op = wrong[0]
            rows.append(Row(index, label, kind, expected, op.out_shape, taken,
                            f"the layer here is {KIND_NAMES[op.kind]} ({op.name()}), not {KIND_NAMES[kind]}"))
        else:
            rows.append(Row(index, label, kind, expected, taken[-1].out_shape, taken))
    return rows


def describe(row: Row, batch: int) -> str:
    """One line about a row: expected shape, actual shape, and the formula with the layer's numbers."""
    head = f"row {row.index} ({row.label}): expected shape {fmt(row.expected, batch)}"
    if row.problem:
        return f"{head}, but {row.problem}"
    text = f"{head}, got {fmt(row.actual, batch)}"
    if row.kind in ("conv", "pool"):
        text += "".join(formula(op) for op in row.ops)
        if row.actual is not None and len(row.actual) == len(row.expected) and row.actual[1] != row.expected[1]:
            text += f"; channels: expected {row.expected[1]}, got {row.actual[1]}"
    elif row.kind == "linear" and row.ops:
        text += f" from {row.ops[-1].name()}"
    return text


def row_failure(rows: list, index: int, batch: int) -> str | None:
    """The message for row ``index`` if it is off (naming the first row that is off), else ``None``."""
    row = rows[index]
    if row.ok:
        return None
    message = describe(row, batch)
    first = next(r for r in rows if not r.ok)
    if first.index < row.index:
        got = first.problem or f"got {fmt(first.actual, batch)}"
        message += (f". The first row that is off is row {first.index} ({first.label}: expected "
                    f"{fmt(first.expected, batch)}, {got}); the rows after it follow from it, so fix that one first")
    return message + f" (B = {batch})"


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
        net = make_net()
        net.train(train)
        torch.manual_seed(batch)
        with torch.no_grad():
            return trace_forward(net, torch.randn(batch, 1, 28, 28))

    return _trace


class _Kit:
    """The helpers above, for the test modules (which cannot import this conftest by name)."""

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
    """Shape-table and rule helpers of this assignment (see the functions of tests/conftest.py)."""
    return _Kit
