"""A forward-pass tracer and the shape-table checks built on it (the CNN assignments' tests use them).

:func:`trace_forward` runs one forward pass and records every convolution, pooling, padding, batch norm,
dropout and linear operation in the order they happen, whether they come from a module (``nn.Conv2d``,
``nn.MaxPool2d``, ...) or from a functional call (``F.conv2d``, ``F.max_pool2d``, ``F.pad``, ...): a
:class:`~torch.overrides.TorchFunctionMode` sees every torch function, and forward hooks on the modules
name the layer each operation belongs to (``conv1``, ``features.3``), so messages can say which of your
layers is off.

A shape table is a list of rows ``(label, kind, shape)`` or ``(label, kind, shape, count)``, ``shape``
without the batch dimension. :func:`table_rows` lines the traced operations up with it and
:func:`row_failure` says, for one row, what was expected, what was got, the output-size formula with the
numbers of the layer, and which row is the first one off. Each assignment's ``tests/conftest.py`` holds
its own table and rules (which strides, paddings and kernels are allowed).

:func:`print_layer_shapes` is the ``--shapes`` printout of the handouts' ``train.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .testing import where

FORMULA = "H_out = floor((H_in + 2*padding - kernel)/stride) + 1"
# A table row's kind in words (also the kinds of Op that rows are read from, with "pad" and "norm" besides).
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
    in_shape: tuple  # shape of the operation's input tensor, batch dimension included
    out_shape: tuple | None  # shape of its output tensor (the first one of a tuple), None if not a tensor
    params: dict = field(default_factory=dict)  # see _params: kernel, stride, padding, dilation, ... as pairs

    def name(self) -> str:
        """``"conv1 (Conv2d)"`` for a module's operation, ``"F.max_pool2d in forward()"`` for a functional call."""
        if self.layer == "forward":
            return f"F.{self.func} in forward()"
        return f"{self.layer} ({self.module_type})"


@dataclass
class Trace:
    """What one forward pass did: the input's shape, its operations in call order, and its result."""

    input_shape: tuple  # shape of the input, batch dimension included
    ops: list  # the Op of every recorded operation, in call order
    output: torch.Tensor | None  # what forward returned, None if it raised
    error: str | None  # "ValueError: ... (at cnn.py:LINE in forward)" if forward raised, else None


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


def as_pair(value, default):
    """A layer argument as a pair of ints: ``3`` -> ``(3, 3)``, ``[2]`` -> ``(2, 2)``, ``(1, 2)`` -> ``(1, 2)``.

    ``default`` for ``None`` or an empty sequence; a string (``padding="same"``) is returned as it is.
    """
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value) * (2 if len(value) == 1 else 1)
    return (int(value), int(value))


def _params(func: str, args: tuple, kwargs: dict) -> dict:
    """The arguments of one call of torch function ``func`` that the checks read, defaults filled in."""
    _, names = _SIGNATURES[func]
    bound = dict(zip(names, args[1:]))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    if _SIGNATURES[func][0] == "conv":
        weight = bound.get("weight")
        kernel = tuple(weight.shape[2:]) if isinstance(weight, torch.Tensor) else None
        return {
            "kernel": kernel,
            "stride": as_pair(bound.get("stride"), (1, 1)),
            "padding": as_pair(bound.get("padding"), (0, 0)),
            "dilation": as_pair(bound.get("dilation"), (1, 1)),
            "groups": int(bound.get("groups", 1) or 1),
            "transposed": func == "conv_transpose2d",
        }
    if _SIGNATURES[func][0] == "pool":
        kernel = as_pair(bound.get("kernel_size"), None)
        return {
            "kernel": kernel,
            "stride": as_pair(bound.get("stride"), kernel),
            "padding": as_pair(bound.get("padding"), (0, 0)),
            "dilation": as_pair(bound.get("dilation"), (1, 1)),
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
    """Appends an :class:`Op` to ``ops`` for every call of a function of ``_SIGNATURES`` on a tensor.

    ``stack`` holds ``(module path, class name)`` of the modules being run (the innermost last).
    """

    def __init__(self, stack: list, ops: list):
        super().__init__()
        self.stack = stack
        self.ops = ops

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _SIGNATURES and args and isinstance(args[0], torch.Tensor):
            first = result[0] if isinstance(result, tuple) else result
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
        return result


def trace_forward(net: nn.Module, x: torch.Tensor) -> Trace:
    """Run ``net(x)`` once and record its operations (module forward hooks name the layers).

    An exception of the student's forward ends up in :attr:`Trace.error` (the operations before it are
    kept), except ``NotImplementedError``, which fails the test right away: ``forward`` is not written yet.
    """
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


def trace_random(net: nn.Module, batch: int, *, train: bool = False) -> Trace:
    """Trace one forward pass of ``net`` (in train or eval mode) on ``batch`` random images ``(batch, 1, 28, 28)``.

    The images are drawn after ``torch.manual_seed(batch)``, without autograd.
    """
    net.train(train)
    torch.manual_seed(batch)
    with torch.no_grad():
        return trace_forward(net, torch.randn(batch, 1, 28, 28))


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
    """One row of a shape table next to what the traced forward pass did there."""

    index: int
    label: str
    kind: str
    expected: tuple  # with the batch dimension
    actual: tuple | None
    ops: list  # the operations this row was read from
    problem: str = ""  # why ``actual`` is missing or of the wrong kind

    @property
    def ok(self) -> bool:
        """The row was read from the right kind of operation and its shape is the expected one."""
        return not self.problem and self.actual is not None and tuple(self.actual) == tuple(self.expected)


def table_rows(trace: Trace, table, batch: int) -> list:
    """Line the traced operations up with ``table`` (rows of label, kind, shape[, count]).

    Args:
        trace: the forward pass of a batch of ``batch`` images (:func:`trace_forward`).
        table: rows ``(label, kind, shape)`` or ``(label, kind, shape, count)``, ``shape`` without the batch
            dimension. ``kind`` is ``"input"`` (the input), ``"conv"``, ``"pool"``, ``"linear"`` or
            ``"dropout"`` (the output of the last of the next ``count`` operations of that kind, 1 if not
            given), ``"flatten"`` (the input of the next linear layer) or ``"predicted"``
            (``output.argmax(dim=1)``). Operations of the other kinds are skipped.
        batch: the batch size, put in front of every expected shape.

    Returns:
        One :class:`Row` per table row, in order.
    """
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


# ---------------------------------------------------------------------------------- train.py --shapes
def print_layer_shapes(model: nn.Module, batch: int = 2) -> None:
    """Print the output shape of every layer (leaf module) of ``model`` for ``batch`` random images.

    Runs one eval-mode forward pass on ``(batch, 1, 28, 28)`` and prints one line per leaf module call, in
    call order, then the shape of what ``forward`` returned. Functional calls (``F.max_pool2d``) are not
    listed. An exception of ``forward`` (``NotImplementedError`` until ``Net`` is written) propagates.
    """
    lines = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: lines.append(
        f"  {name:<24} {type(m).__name__:<14} {tuple(o.shape) if torch.is_tensor(o) else type(o).__name__}"))
        for name, module in model.named_modules() if name and not list(module.children())]
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.randn(batch, 1, 28, 28))
    finally:
        for hook in hooks:
            hook.remove()
    print(f"input {(batch, 1, 28, 28)}; output shape of each module, in call order (functional calls such as "
          "F.max_pool2d are not listed):")
    print("\n".join(lines))
    print(f"  {'output of forward()':<39} {tuple(out.shape)}")
