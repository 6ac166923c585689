"""Fixtures of assignment 2 (simple CNN): the student's module, a seeded Net, and a forward-pass tracer.

The tracer runs one forward pass and records every convolution, pooling, padding, batch norm, dropout
and linear operation in the order they happen, whether they come from a module (``nn.Conv2d``, ``nn.MaxPool2d``, ...)
or from a functional call (``F.conv2d``, ``F.max_pool2d``, ``torch.flatten``, ...). Forward hooks on the
modules name the layer each operation belongs to (``conv1``, ``features.3``), so messages can say which of
your layers is off. The shape table of the assignment is checked against that record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnistkit.testing import call_student, import_student, where

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

FORMULA = "H_out = floor((H_in + 2*padding - kernel)/stride) + 1"
KIND_NAMES = {
    "conv": "a convolution",
    "pool": "a pooling",
    "linear": "a linear layer",
    "dropout": "a dropout",
    "flatten": "the flattened input of the first linear layer",
}


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
            if m.stride is not None and _pair(m.stride, None) != _pair(m.kernel_size, None):
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
        net = make_net()
        net.train(train)
        torch.manual_seed(batch)
        with torch.no_grad():
            return trace_forward(net, torch.randn(batch, 1, 28, 28))

    return _trace


class _Kit:
    """The helpers above, for the test modules (which cannot import this conftest by name)."""

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
    """Shape-table and rule helpers of this assignment (see the functions of tests/conftest.py)."""
    return _Kit


def pytest_generate_tests(metafunc):
    """Tests that take ``table_row`` run once per row of the shape table (row 0, the input, excluded)."""
    if "table_row" in metafunc.fixturenames:
        rows = range(1, len(TABLE))
        ids = [f"row{i}-" + TABLE[i][0].split(" ")[0].replace("-", "") for i in rows]
        metafunc.parametrize("table_row", list(rows), ids=ids)
