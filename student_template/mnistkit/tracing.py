"""What a network's forward pass does, layer by layer, and the shape-table checks built on it.

:func:`trace_forward` runs one forward pass of an exported network (:class:`mnistkit.graph.GraphNet`) and
records every operation of its graph in the order they run: its kind (convolution, pooling, linear layer,
batch norm, dropout, activation, ...), its arguments (kernel, stride, padding, dilation as pairs), the
shapes going in and out, and the layer (module) of the student's network it belongs to (``conv1``,
``features.3``), whether it came from a module (``nn.Conv2d``) or a functional call (``F.conv2d``).

A shape table is a list of rows ``(label, kind, shape)`` or ``(label, kind, shape, count)``, ``shape``
without the batch dimension. :func:`table_rows` lines the traced operations up with it and
:func:`row_failure` says, for one row, what was expected, what was got, the output-size formula with the
numbers of the layer, and which row is the first one off.

:func:`print_layer_shapes` is the ``--shapes`` printout of the handouts' ``train.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import fx, nn

FORMULA = "H_out = floor((H_in + 2*padding - kernel)/stride) + 1"
# A table row's kind in words (also the kinds of Op that rows are read from, with the others besides).
KIND_NAMES = {
    "conv": "a convolution",
    "pool": "a pooling",
    "linear": "a linear layer",
    "dropout": "a dropout",
    "norm": "a batch norm",
    "act": "an activation",
    "output": "a (log-)softmax",
    "pad": "a padding",
    "other": "an operation",
    "flatten": "the flattened input of the first linear layer",
}


# --------------------------------------------------------------------------------------------- tracer
_KINDS = {
    "conv": ("conv1d", "conv2d", "conv3d", "conv_transpose2d"),
    "pool": ("max_pool2d", "max_pool2d_with_indices", "max_pool1d", "avg_pool2d", "lp_pool2d",
             "adaptive_avg_pool2d", "adaptive_max_pool2d"),
    "linear": ("linear",),
    "norm": ("batch_norm", "layer_norm", "group_norm", "instance_norm"),
    "dropout": ("dropout", "dropout_", "feature_dropout", "alpha_dropout"),
    "pad": ("constant_pad_nd", "pad"),
    "act": ("relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
            "gelu", "elu", "elu_", "selu", "silu", "silu_", "softplus", "hardtanh", "hardtanh_", "threshold",
            "prelu", "mish", "hardswish"),
    "output": ("log_softmax", "softmax", "_log_softmax", "_softmax", "log_sigmoid"),
    # what nn.Linear(...) or nn.Conv2d(...) created inside forward runs to draw its weights: not a layer of
    # its own (the checks name such layers through mnistkit.checks.inline_layers)
    "init": ("empty", "uniform_", "normal_"),
    "shape": ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "t",
              "contiguous", "expand", "expand_as", "view_as", "reshape_as", "clone", "detach", "detach_", "alias",
              "sym_size", "sym_numel", "numel", "_to_copy", "to", "type_as", "lift_fresh_copy", "getitem"),
}
KIND_OF = {name: kind for kind, names in _KINDS.items() for name in names}
# Activations by the name a student knows them by (the module class), for messages.
ACTIVATION_NAMES = {"relu": "ReLU", "relu_": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU",
                    "leaky_relu_": "LeakyReLU", "sigmoid": "Sigmoid", "sigmoid_": "Sigmoid", "tanh": "Tanh",
                    "tanh_": "Tanh", "gelu": "GELU", "elu": "ELU", "elu_": "ELU", "selu": "SELU", "silu": "SiLU",
                    "silu_": "SiLU", "softplus": "Softplus", "hardtanh": "Hardtanh", "hardtanh_": "Hardtanh",
                    "threshold": "Threshold", "prelu": "PReLU", "mish": "Mish", "hardswish": "Hardswish"}


@dataclass
class Op:
    """One traced operation of a forward pass."""

    kind: str  # conv, pool, linear, norm, dropout, pad, act, output, init, shape, other
    func: str  # the ATen operator's name: conv2d, max_pool2d, linear, relu, ...
    layer: str  # module path (e.g. "conv1", "features.0") or "forward" for a call in forward itself
    module_type: str  # class name of that module ("Conv2d"), "" for a call in forward
    in_shape: tuple  # shape of the operation's first tensor argument, batch dimension included
    out_shape: tuple | None  # shape of its output tensor (the first one of a tuple), None if not a tensor
    params: dict = field(default_factory=dict)  # see _params: kernel, stride, padding, ... as pairs
    where: str = ""  # "cnn.py:41": the line of the student's file, when known

    def name(self) -> str:
        """``"conv1 (Conv2d)"`` for a module's operation, ``"F.max_pool2d in forward()"`` for a functional call."""
        if self.layer == "forward":
            return f"F.{self.func.rstrip('_')} in forward()"
        return f"{self.layer} ({self.module_type})"

    def word(self) -> str:
        """What a student calls it: ``ReLU``, ``Dropout``, ``MaxPool2d``, ``Linear``, ``log_softmax``."""
        if self.kind == "act":
            return ACTIVATION_NAMES.get(self.func, self.func)
        return {"conv": "Conv2d", "linear": "Linear", "dropout": "Dropout", "pad": "padding",
                "norm": "BatchNorm" if self.func == "batch_norm" else self.func}.get(self.kind) or (
            ("MaxPool2d" if self.params.get("max") else "AvgPool2d") if self.kind == "pool" else self.func)


@dataclass
class Trace:
    """What one forward pass did: the input's shape, its operations in call order, and its result."""

    input_shape: tuple  # shape of the input, batch dimension included
    ops: list  # the Op of every recorded operation, in call order
    output: torch.Tensor | None  # what forward returned, None if it raised
    error: str | None  # "RuntimeError: ... (in fc2 (Linear) at mlp.py:40)" if forward raised, else None

    def layers(self) -> list:
        """The operations that compute (everything but shape changes and weights drawn inside forward), in order."""
        return [op for op in self.ops if op.kind not in ("shape", "init")]


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


def bind(target, args: tuple, kwargs: dict) -> dict:
    """The arguments of an ATen call by name, defaults filled in from the operator's schema."""
    bound = {}
    schema = getattr(target, "_schema", None)
    if schema is None:
        return bound
    for index, argument in enumerate(schema.arguments):
        if index < len(args):
            bound[argument.name] = args[index]
        elif argument.name in kwargs:
            bound[argument.name] = kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _params(func: str, kind: str, bound: dict) -> dict:
    """The arguments of one call that the checks read, as pairs and plain numbers."""
    first = bound.get("input", bound.get("self"))
    if kind == "conv":
        weight = bound.get("weight")
        return {
            "kernel": tuple(weight.shape[2:]) if isinstance(weight, torch.Tensor) else None,
            "in_channels": int(weight.shape[1]) if isinstance(weight, torch.Tensor) and weight.dim() > 1 else None,
            "out_channels": int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None,
            "stride": as_pair(bound.get("stride"), (1, 1)),
            "padding": as_pair(bound.get("padding"), (0, 0)),
            "dilation": as_pair(bound.get("dilation"), (1, 1)),
            "groups": int(bound.get("groups", 1) or 1),
            "bias": isinstance(bound.get("bias"), torch.Tensor),
            "transposed": func == "conv_transpose2d",
        }
    if kind == "pool":
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
    if kind == "linear":
        weight = bound.get("weight")
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else (None, None)
        return {"in_features": shape[-1], "out_features": shape[0], "bias": isinstance(bound.get("bias"), torch.Tensor)}
    if kind == "pad":
        return {"pad": tuple(int(v) for v in bound.get("pad", ()))}
    if kind == "norm":
        return {"features": int(first.shape[1]) if isinstance(first, torch.Tensor) and first.dim() > 1 else None,
                "training": bool(bound.get("training", False))}
    if kind == "dropout":
        return {"p": float(bound.get("p", 0.5)), "training": bool(bound.get("train", True))}
    if kind == "act":
        return {"negative_slope": float(bound.get("negative_slope", 0.01))} if "leaky" in func else {}
    if kind == "output":
        dim = bound.get("dim")
        rank = first.dim() if isinstance(first, torch.Tensor) else 2
        return {"dim": (int(dim) % rank) if isinstance(dim, int) and rank else dim, "log": "log" in func}
    return {}


def _layer(node: dict) -> tuple[str, str]:
    module = node.get("module") or []
    path, kind = module[-1] if module else ("", "")
    return (path or "forward", kind.rsplit(".", 1)[-1] if path else "")


def trace_forward(net, x: torch.Tensor) -> Trace:
    """Run the network's graph (of its current mode) on ``x`` once and record every operation.

    A failure of the forward pass ends up in :attr:`Trace.error`; the operations before it are kept.
    """
    from .graph import GraphMissing

    ops: list = []
    try:
        graph = net.graph_for(x)
    except (GraphMissing, ValueError) as err:
        return Trace(tuple(x.shape), ops, None, str(err))
    module = graph.module(x.device)

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            if n.op == "call_function":
                saved = graph.saved_node(n.name) or {}
                func = saved.get("op", str(n.target)).removeprefix("aten.").split(".")[0]
                func = func.removeprefix("operator.")
                kind = KIND_OF.get(func, "other")
                args, kwargs = self.fetch_args_kwargs_from_env(n)
                bound = bind(n.target, args, kwargs)
                first = next((a for a in args if isinstance(a, torch.Tensor)), None)
                if func == "add_" and first is not None and first.dim() == 0 and not first.is_floating_point():
                    kind = "shape"  # BatchNorm counting its batches: bookkeeping, not computation
                out = result[0] if isinstance(result, (tuple, list)) and result else result
                layer, module_type = _layer(saved)
                ops.append(Op(kind, func, layer, module_type, _shape(first) or (), _shape(out),
                              _params(func, kind, bound), saved.get("where", "")))
            return result

    output, error = None, None
    try:
        with torch.no_grad():
            output = Recorder(module).run(*net.arguments(graph, x))
        if isinstance(output, (tuple, list)) and len(output) == 1:
            output = output[0]
    except Exception as err:  # noqa: BLE001 - an operator of the student's graph failed
        last = ops[-1] if ops else None
        place = f" (after {last.name()}{' at ' + last.where if last.where else ''})" if last else ""
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:400]}{place}"
    return Trace(tuple(x.shape), ops, output, error)


def trace_random(net, batch: int, *, train: bool = False) -> Trace:
    """Trace one forward pass of ``net`` (in train or eval mode) on ``batch`` random images ``(batch, 1, 28, 28)``.

    The images are drawn after ``torch.manual_seed(batch)``.
    """
    net.train(train)
    torch.manual_seed(batch)
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
