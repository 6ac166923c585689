"""Networks as data: export a student's network with ``torch.export``, save it, load it, run it.

The graph of a network crosses the boundary between the student's process and the grader as data, never
as code: the student's process builds the network and calls :func:`export_network`, which writes

* ``<name>.json``: the exported graphs (one per input shape and mode, ``train`` and ``eval``), each a list
  of nodes ``{"name", "op", "args", "kwargs", "module", "where"}``, where ``op`` names an ATen operator
  (``aten.linear.default``) and an argument is a number, a string, a list, or a reference to an earlier
  node; and the names of the network's parameters and buffers, with the layer (module) behind each node;
* ``<name>.safetensors``: the tensors (parameters, buffers, constants), read without pickle.

:func:`load_network` reads both back, checks them against this schema (sizes, names, every operator on
:data:`ALLOWED_OPS`), and returns a :class:`GraphNet`: an ``nn.Module`` whose ``forward`` runs the graph
of its mode (``train()`` / ``eval()``) for the input's shape. Nothing of the student's Python runs there:
only the listed ATen operators, called by ``torch.fx`` code generated here from the validated nodes. So
the grader trains, probes and times the student's network without ever importing the student's file.

The graphs are exported on the ``meta`` device: a tensor that ``forward`` creates without
``device=x.device`` makes that export fail (the bug is recorded in ``device_error``) and the network is
exported on the CPU instead, where the graph remembers the fixed device.
"""
from __future__ import annotations

import copy
import json
import math
import operator
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import fx, nn

SCHEMA = "mnistkit-network/1"
MAX_NODES = 4000
MAX_JSON_BYTES = 8 * 2**20
MAX_TEXT = 2000
STATE_KINDS = ("parameter", "buffer", "constant")
TENSOR_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in TENSOR_DTYPES.items()}
_LAYOUTS = {"strided": torch.strided}
_MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format, "preserve_format": torch.preserve_format,
                   "channels_last": torch.channels_last}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,120}$")

# The ATen operators a graph may use: what ordinary MNIST networks and helpers export to (layers, their
# functional forms, shape and dtype changes, elementwise math, reductions, factories). Anything else (file
# I/O such as aten::from_file, random number generators other than dropout's, custom operators) is refused.
ALLOWED_OPS = frozenset({
    # layers
    "linear.default", "conv1d.default", "conv2d.default", "conv2d.padding", "conv1d.padding",
    "conv_transpose2d.input", "batch_norm.default", "layer_norm.default", "group_norm.default",
    "instance_norm.default", "dropout.default", "dropout_.default", "feature_dropout.default",
    "alpha_dropout.default", "max_pool2d.default", "max_pool2d_with_indices.default", "max_pool1d.default",
    "avg_pool2d.default", "adaptive_avg_pool2d.default", "adaptive_max_pool2d.default",
    "embedding.default",
    # activations and outputs
    "relu.default", "relu_.default", "relu6.default", "leaky_relu.default", "leaky_relu_.default",
    "sigmoid.default", "sigmoid_.default", "tanh.default", "tanh_.default", "gelu.default", "elu.default",
    "elu_.default", "selu.default", "silu.default", "silu_.default", "softplus.default", "hardtanh.default",
    "hardtanh_.default", "threshold.default", "prelu.default", "mish.default", "hardswish.default",
    "log_softmax.int", "softmax.int", "_log_softmax.default", "_softmax.default", "log_sigmoid.default",
    # shapes
    "view.default", "reshape.default", "flatten.using_ints", "unflatten.int", "squeeze.default",
    "squeeze.dim", "squeeze.dims", "unsqueeze.default", "permute.default", "transpose.int", "t.default",
    "contiguous.default", "expand.default", "expand_as.default", "view_as.default", "reshape_as.default",
    "clone.default", "detach.default", "detach_.default", "alias.default", "slice.Tensor", "select.int",
    "narrow.default", "chunk.default", "split.Tensor", "split_with_sizes.default", "unbind.int",
    "cat.default", "stack.default", "repeat.default", "sym_size.int", "sym_numel.default", "numel.default",
    "lift_fresh_copy.default", "_to_copy.default", "to.dtype", "to.device", "to.dtype_layout",
    "type_as.default", "index.Tensor", "index_select.default", "gather.default",
    # arithmetic and comparisons
    "add.Tensor", "add.Scalar", "add_.Tensor", "add_.Scalar", "sub.Tensor", "sub.Scalar", "rsub.Scalar",
    "mul.Tensor", "mul.Scalar", "mul_.Tensor", "mul_.Scalar", "div.Tensor", "div.Scalar", "div.Tensor_mode",
    "div_.Tensor", "div_.Scalar", "neg.default", "pow.Tensor_Scalar", "pow.Tensor_Tensor", "sqrt.default",
    "rsqrt.default", "exp.default", "log.default", "log1p.default", "abs.default", "square.default",
    "reciprocal.default", "clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default",
    "clamp_.default", "maximum.default", "minimum.default", "where.self", "masked_fill.Scalar",
    "floor.default", "ceil.default", "round.default", "sign.default",
    "matmul.default", "mm.default", "bmm.default", "addmm.default", "mv.default", "dot.default",
    "einsum.default", "outer.default",
    "eq.Tensor", "eq.Scalar", "ne.Tensor", "ne.Scalar", "lt.Tensor", "lt.Scalar", "gt.Tensor", "gt.Scalar",
    "le.Tensor", "le.Scalar", "ge.Tensor", "ge.Scalar", "logical_not.default", "logical_and.default",
    # reductions
    "sum.default", "sum.dim_IntList", "mean.default", "mean.dim", "amax.default", "amin.default",
    "max.default", "max.dim", "min.default", "min.dim", "argmax.default", "argmin.default", "var.correction",
    "std.correction", "logsumexp.default", "norm.ScalarOpt_dim", "cumsum.default", "prod.default",
    # factories (their device is remapped to the network's)
    "zeros.default", "ones.default", "full.default", "empty.memory_format", "zeros_like.default",
    "ones_like.default", "full_like.default", "empty_like.default", "arange.default", "arange.start",
    "arange.start_step", "eye.default", "eye.m", "scalar_tensor.default", "one_hot.default",
    "new_zeros.default", "new_ones.default", "new_full.default", "new_empty.default", "fill_.Scalar",
    "zero_.default", "uniform_.default", "normal_.default", "copy_.default", "item.default",
    # more of the same kinds: transposes, checks torch inserts, elementwise math, masks
    "numpy_T.default", "mT.default", "adjoint.default", "_assert_tensor_metadata.default", "_assert_scalar.default",
    "sym_constrain_range_for_size.default", "masked_fill.Tensor", "where.ScalarOther", "where.ScalarSelf",
    "where.Scalar", "flip.default", "roll.default", "tile.default", "repeat_interleave.self_int", "sin.default",
    "cos.default", "erf.default", "logit.default", "sigmoid_backward.default", "log2.default", "exp2.default",
    "trunc.default", "frac.default", "remainder.Scalar", "fmod.Scalar", "bitwise_not.default", "logical_or.default",
    "any.default", "all.default", "any.dim", "all.dim", "sort.default", "topk.default", "kthvalue.default",
    "scatter.value", "scatter.src", "scatter_add.default", "index_add.default", "index_put.default",
    "index_put_.default", "clamp_min_.default", "clamp_max_.default", "softplus.default",
    "hardsigmoid.default", "log_sigmoid_forward.default", "celu.default", "glu.default",
    "feature_alpha_dropout.default", "native_dropout.default", "rand_like.default", "randn_like.default",
    "bernoulli.p", "bernoulli_.float", "unfold.default", "im2col.default", "col2im.default", "pixel_shuffle.default",
    "upsample_nearest2d.vec", "upsample_bilinear2d.vec", "max_pool2d_with_indices_backward.default",
})
_PYTHON_OPS = {
    "operator.getitem": operator.getitem, "operator.mul": operator.mul, "operator.add": operator.add,
    "operator.sub": operator.sub, "operator.floordiv": operator.floordiv, "operator.truediv": operator.truediv,
    "operator.neg": operator.neg, "operator.mod": operator.mod,
}


class NetworkFormatError(ValueError):
    """A saved network that does not follow the schema; the message says what is wrong."""


# ------------------------------------------------------------------------------------------- encoding
def _encode(value):
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, torch.dtype):
        return {"dtype": _DTYPE_NAMES.get(value, str(value))}
    if isinstance(value, torch.device):
        return {"device": value.type}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise TypeError(f"an argument of type {type(value).__name__} ({value!r:.60})")


def _op_name(target) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)  # "aten.linear.default"
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", repr(target))
    return f"{'operator' if module in ('_operator', 'operator') else module}.{name}"


def _student_line(stack_trace: str, files: tuple[str, ...]) -> str:
    """``"mlp.py:33"``: the innermost line of a student file in a node's stack trace, else ``""``."""
    found = ""
    for match in re.finditer(r'File "([^"]+)", line (\d+)', stack_trace or ""):
        if Path(match.group(1)).name in files:
            found = f"{Path(match.group(1)).name}:{match.group(2)}"
    return found


_EXPORT_ASSERTS = (torch.ops.aten._assert_tensor_metadata.default,)


def _graph_json(program, files: tuple[str, ...], device: str) -> dict:
    signature = program.graph_signature
    kinds = {"PARAMETER": "parameter", "BUFFER": "buffer", "CONSTANT_TENSOR": "constant", "USER_INPUT": "input"}
    inputs = []
    for spec in signature.input_specs:
        kind = kinds.get(spec.kind.name)
        if kind is None:
            raise TypeError(f"an input of kind {spec.kind.name}")
        inputs.append({"name": spec.arg.name, "kind": kind, "target": spec.target})
    users = [s for s in signature.output_specs if s.kind.name != "USER_OUTPUT"]
    if users:
        raise TypeError(f"an output of kind {users[0].kind.name}")
    nodes, output = [], None
    for node in program.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            output = _encode(node.args[0])
            continue
        if node.op != "call_function":
            raise TypeError(f"a graph node of kind {node.op}")
        if node.target in _EXPORT_ASSERTS and not node.users:
            continue  # export's own check before .to()/.float()/.cuda(): computes nothing, never loaded
        stack = node.meta.get("nn_module_stack") or {}
        module = [[str(path), str(kind)] for path, kind in stack.values()]
        nodes.append({
            "name": node.name, "op": _op_name(node.target), "args": _encode(node.args),
            "kwargs": {k: _encode(v) for k, v in node.kwargs.items()}, "module": module[-4:],
            "where": _student_line(node.meta.get("stack_trace", ""), files),
        })
    return {"device": device, "inputs": inputs, "nodes": nodes, "output": output}


# ------------------------------------------------------------------------------------------- export
@dataclass
class ExportSpec:
    """The inputs a network is exported for: per name, the shape of one example without the batch."""

    inputs: dict  # name -> (shape tuple, dtype name)
    modes: tuple = ("train", "eval")
    batch: int = 3


_TOO_SMALL = ("Kernel size can't be greater than actual input size", "Output size is too small")
_MATMUL = re.compile(r"got \[\S+, (\d+)\] X \[(\d+), \d+\]|shapes cannot be multiplied \(\S+x(\d+) and (\d+)x\d+\)")


def sizes_along_the_way(module: nn.Module | None, shape: tuple | None) -> str:
    """The picture's height x width after the first layer of ``module`` and after every layer that changes
    it, up to where its forward fails: ``"features.conv1 28x28, features.pool1 14x14, ..."`` (run on a
    batch of two zero images, in eval mode, without gradients; only to explain a failure)."""
    if module is None or shape is None:
        return ""
    sizes: list = []
    leaves = [(name, m) for name, m in module.named_modules() if name and not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: sizes.append((name, getattr(out, "shape", ()))))
             for name, m in leaves]
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()(torch.zeros((2, *shape)))
    except Exception:  # noqa: BLE001 - student code: the failure being explained
        pass
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    shown, last = [], None
    for name, s in sizes:
        size = "x".join(str(int(v)) for v in s[2:]) if len(s) == 4 else None
        if size and size != last:  # where the size changes (and the first layer)
            shown.append(f"{name} {size}")
            last = size
    return ", ".join(shown)


def explain_export_error(err: BaseException, files: tuple[str, ...], module: nn.Module | None = None,
                         shape: tuple | None = None) -> str:
    """The export failure in the student's terms: the construct, and the line of their file (and, for a
    picture that ends up the wrong size, its size after each layer of ``module`` on inputs of ``shape``)."""
    text = f"{type(err).__name__}: {err}"
    line = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).name in files:
            line = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    for match in re.finditer(r'File "([^"]+)", line (\d+), in (\w+)', str(err)):
        if Path(match.group(1)).name in files and not line:
            line = f" (at {Path(match.group(1)).name}:{match.group(2)} in {match.group(3)})"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, NotImplementedError):
        from .probe import not_written

        stub = re.search(r"\(at (\S+:\d+) in \w+\)", line)
        return not_written(str(err), stub.group(1) if stub else "")
    # x.view(64, 784) on a batch of another size: the input's size is symbolic (784*s77), the batch is not
    literal = re.search(r"shape '\[(\d+)(?:, -?\d+)*\]' is invalid for input of size \S*\bs\d+", text)
    if "specialized it to be a constant" in text or "Constraints violated" in text or literal:
        fixed = re.search(r"constant \((\d+)\)", text) or literal
        size = f" to {fixed.group(1)}" if fixed else ""
        return ("the batch size is fixed" + size + line + ": forward must work for any batch size, so "
                "flatten with x.view(-1, ...), x.reshape(x.size(0), -1) or torch.flatten(x, 1)")
    if "data-dependent" in text or "GuardOnDataDependent" in text:
        return ("forward branches on the values of a tensor (a Python if/while on a tensor, .item() or "
                f"bool(tensor)){line}: write forward as ordinary tensor code, the same for every input")
    if any(phrase in text for phrase in _TOO_SMALL):
        sizes = sizes_along_the_way(module, shape)
        return (f"the picture shrinks to nothing before a layer can use it{line} ({first[:200]})"
                + (f"; its size along the way: {sizes}" if sizes else "")
                + ". Check the stride and padding of every convolution and pooling (in nn.Conv2d(in, out, kernel, "
                "stride, padding) the fourth positional argument is the stride: write padding=...)")
    matmul = _MATMUL.search(text)
    if matmul:
        got, want = (matmul.group(1), matmul.group(2)) if matmul.group(1) else (matmul.group(3), matmul.group(4))
        sizes = sizes_along_the_way(module, shape)
        return (f"a linear layer gets {got} features per image where it expects {want}{line}: the layers before "
                "it leave a picture of another size than the shape table says"
                + (f" (its size along the way: {sizes})" if sizes else ""))
    if ".numpy()" in text or "numpy" in first and "not supported" in text:
        return f"forward calls .numpy(){line}: stay with torch tensors inside forward"
    if "device" in text.lower() and ("expected device" in text or "same device" in text or "devices" in text):
        return (f"forward mixes devices{line} ({first[:300]}): create tensors with device=x.device and "
                "layers in __init__, never .cuda() or .cpu() inside forward")
    return f"{first[:600]}{line}"


def _example(spec: ExportSpec, name: str, device: str) -> torch.Tensor:
    shape, dtype = spec.inputs[name]
    dtype = TENSOR_DTYPES[dtype]
    size = (spec.batch, *shape)
    if dtype.is_floating_point:
        return torch.randn(size, dtype=dtype, device=device)
    return torch.zeros(size, dtype=dtype, device=device)


def _export_one(module: nn.Module, x: torch.Tensor):
    import logging

    from torch.export import Dim, export

    batch = Dim("batch", min=1, max=1 << 20)
    tracer = logging.getLogger("torch.__trace")  # torch's structured trace log: noise in test output
    previous, tracer.disabled = tracer.disabled, True
    try:
        return export(module, (x,), dynamic_shapes=({0: batch},), strict=False)
    finally:
        tracer.disabled = previous


def _modules_table(module: nn.Module) -> list[dict]:
    """Every submodule (a module used twice is listed twice, with the same ``id``), with a few attributes."""
    ids: dict[int, int] = {}
    rows = []
    for path, sub in module.named_modules(remove_duplicate=False):
        attrs = {}
        for name in ("p", "negative_slope", "num_features", "dim", "in_features", "out_features",
                     "kernel_size", "stride", "padding", "dilation", "inplace", "momentum", "eps"):
            value = getattr(sub, name, None)
            if isinstance(value, (bool, int, float, str)) or (isinstance(value, tuple) and all(
                    isinstance(v, int) for v in value)):
                attrs[name] = list(value) if isinstance(value, tuple) else value
        rows.append({"path": path, "type": f"{type(sub).__module__}.{type(sub).__qualname__}",
                     "id": ids.setdefault(id(sub), len(ids)), "attrs": attrs})
        if len(rows) >= 500:
            break
    return rows


def export_network(module: nn.Module, spec: ExportSpec, *, files: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Export ``module`` for every input and mode of ``spec``: ``(description, tensors)``.

    ``description`` is the JSON-able dictionary of the schema (graphs, errors, state kinds, modules);
    ``tensors`` maps state names to CPU tensors. ``files`` are the student's file names, so that node
    locations and errors can name their lines. Errors of single graphs are recorded, not raised.
    """
    state: dict[str, dict] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, p in module.named_parameters():
        state[name] = {"kind": "parameter", "requires_grad": bool(p.requires_grad)}
        tensors[name] = p.detach().to("cpu").clone().contiguous()
    for name, b in module.named_buffers():
        state[name] = {"kind": "buffer"}
        tensors[name] = b.detach().to("cpu").clone().contiguous()
    description = {"schema": SCHEMA, "state": state, "graphs": {}, "errors": {}, "device_error": None,
                   "inputs": {k: [list(v[0]), v[1]] for k, v in spec.inputs.items()},
                   "modules": _modules_table(module)}
    stray = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.device.type != "cpu"]
    if stray:
        description["device_error"] = f"these tensors are not on the CPU after Net(): {stray[:5]}"
    meta = None
    try:
        meta = copy.deepcopy(module).to("meta")
        leftover = [n for n, v in vars(meta).items() if isinstance(v, torch.Tensor) and v.device.type != "meta"]
        if leftover:
            description["device_error"] = (
                f"after model.to(device) the tensor attribute(s) {leftover[:5]} stay on the CPU: register them "
                "with nn.Parameter or self.register_buffer, or create them in forward with device=x.device")
            meta = None
    except Exception as err:  # noqa: BLE001 - student code (a module that cannot be copied or moved)
        description["device_error"] = f"the network cannot be moved to another device ({explain_export_error(err, files)})"
    for input_name in spec.inputs:
        for mode in spec.modes:
            key = f"{input_name}/{mode}"
            module.train(mode == "train")
            program, device = None, "meta"
            if meta is not None:
                meta.train(mode == "train")
                try:
                    program = _export_one(meta, _example(spec, input_name, "meta"))
                except Exception as err:  # noqa: BLE001 - student code
                    message = explain_export_error(err, files, module, spec.inputs[input_name][0])
                    if "mixes devices" in message or "device" in message.lower():
                        description["device_error"] = description["device_error"] or message
                    else:
                        description["errors"][key] = message
                        continue
            if program is None:
                device = "cpu"
                try:
                    program = _export_one(module, _example(spec, input_name, "cpu"))
                except Exception as err:  # noqa: BLE001 - student code
                    description["errors"][key] = explain_export_error(err, files, module, spec.inputs[input_name][0])
                    continue
            try:
                graph = _graph_json(program, files, device)
            except TypeError as err:
                description["errors"][key] = f"the exported graph uses {err}, which the kit cannot read"
                continue
            for name, value in program.constants.items():
                if isinstance(value, torch.Tensor):
                    state.setdefault(name, {"kind": "constant"})
                    tensors[name] = value.detach().to("cpu").clone().contiguous()
                else:
                    description["errors"][key] = f"the exported graph holds an object of type {type(value).__name__}"
            if key not in description["errors"]:
                description["graphs"][key] = graph
    module.train()
    return description, tensors


def save_network(folder: Path, name: str, description: dict, tensors: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(description), encoding="utf-8")


# --------------------------------------------------------------------------------------------- loading
def _text(value, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise NetworkFormatError(f"{what} must be a string of at most {limit} characters")
    return value


def _check_name(value, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise NetworkFormatError(f"{what} {value!r:.80} is not a valid name")
    return value


def resolve_op(name: str):
    """The callable behind an operator name of a saved graph, if it is allowed; else NetworkFormatError."""
    if name in _PYTHON_OPS:
        return _PYTHON_OPS[name]
    if not isinstance(name, str) or not name.startswith("aten.") or name[5:] not in ALLOWED_OPS:
        shown = name.removeprefix("aten.").split(".")[0] if isinstance(name, str) else repr(name)
        raise NetworkFormatError(f"forward uses the operator {shown[:80]}, which the grader does not run: write "
                                 "forward with layers and ordinary tensor operations")
    _, op, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, op), overload)


def _decode(value, env: dict, devices: dict, depth: int = 0):
    if depth > 8:
        raise NetworkFormatError("arguments nested too deeply")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _text(value, "a string argument", 100)
    if isinstance(value, list):
        if len(value) > 64:
            raise NetworkFormatError("an argument list longer than 64")
        return [_decode(v, env, devices, depth + 1) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        (tag, inner), = value.items()
        if tag == "node":
            if inner not in env:
                raise NetworkFormatError(f"a reference to {inner!r:.60}, which is not an earlier node")
            return env[inner]
        if tag == "float" and inner in ("inf", "-inf", "nan"):
            return float(inner)
        if tag == "dtype" and inner in TENSOR_DTYPES:
            return TENSOR_DTYPES[inner]
        if tag == "device" and inner in ("cpu", "cuda", "meta", "mps"):
            return devices.get(inner, torch.device(inner))
        if tag == "layout" and inner in _LAYOUTS:
            return _LAYOUTS[inner]
        if tag == "memory_format" and inner in _MEMORY_FORMATS:
            return _MEMORY_FORMATS[inner]
    raise NetworkFormatError(f"an argument {value!r:.80} that is not of the schema")


@dataclass
class Graph:
    """One validated graph: its inputs (state names or the user input) and nodes, as in the saved file."""

    key: str
    device: str  # the device it was exported on: "meta" (devices follow the input) or "cpu"
    inputs: list
    nodes: list
    output: object
    _compiled: dict = field(default_factory=dict, repr=False)
    _info: dict = field(default_factory=dict, repr=False)  # fx node name -> the saved node it was built from

    def fixed_devices(self) -> list[str]:
        """Nodes that put a tensor on a fixed device (the input's device is not followed there)."""
        found = []
        for node in self.nodes:
            values = [*node["args"], *node["kwargs"].values()]
            devices = {v["device"] for v in _walk(values) if isinstance(v, dict) and set(v) == {"device"}}
            if self.device != "meta" and _creates_tensor(node["op"]):
                devices.add(self.device)
            for device in sorted(d for d in devices if d != "meta"):
                where = f" at {node['where']}" if node["where"] else ""
                found.append(f"{node['op'].removeprefix('aten.').split('.')[0]} creates a tensor on '{device}'{where}")
        return found

    def module(self, device: torch.device) -> fx.GraphModule:
        """The graph as generated code, with the export device mapped to ``device``."""
        key = str(device)
        if key not in self._compiled:
            devices = {"meta": device} if self.device == "meta" else {}
            graph = fx.Graph()
            env: dict = {}
            for entry in self.inputs:
                env[entry["name"]] = graph.placeholder(entry["name"])
            for node in self.nodes:
                target = resolve_op(node["op"])
                args = _decode(node["args"], env, devices)
                kwargs = {k: _decode(v, env, devices) for k, v in node["kwargs"].items()}
                env[node["name"]] = graph.call_function(target, tuple(args), kwargs)
                self._info[env[node["name"]].name] = node
            graph.output(_decode(self.output, env, devices))
            self._compiled[key] = fx.GraphModule(nn.Module(), graph)
        return self._compiled[key]

    def state_uses(self) -> dict:
        """For each state tensor the graph reads: the ``(operator, argument)`` pairs that consume it directly."""
        targets = {e["name"]: e["target"] for e in self.inputs if e["kind"] != "input"}
        uses: dict = {}
        for node in self.nodes:
            op = node["op"].removeprefix("aten.").split(".")[0]
            try:
                schema = resolve_op(node["op"])._schema.arguments
            except (AttributeError, NetworkFormatError):
                schema = []
            named = [(schema[i].name if i < len(schema) else str(i), a) for i, a in enumerate(node["args"])]
            for name, value in [*named, *node["kwargs"].items()]:
                for ref in _walk(value):
                    if isinstance(ref, dict) and ref.get("node") in targets:
                        uses.setdefault(targets[ref["node"]], set()).add((op, name))
        return uses

    def saved_node(self, fx_name: str) -> dict | None:
        """The saved node behind a node of :meth:`module`'s graph (same for every device)."""
        return self._info.get(fx_name)


def _walk(value):
    if isinstance(value, list):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def _creates_tensor(op: str) -> bool:
    name = op.removeprefix("aten.").split(".")[0]
    return name in {"zeros", "ones", "full", "empty", "arange", "eye", "scalar_tensor", "_to_copy", "to"}


def _validate_graph(key: str, raw, state: dict) -> Graph:
    if not isinstance(raw, dict) or set(raw) != {"device", "inputs", "nodes", "output"}:
        raise NetworkFormatError(f"graph {key!r}: not of the schema")
    if raw["device"] not in ("meta", "cpu"):
        raise NetworkFormatError(f"graph {key!r}: exported on an unknown device")
    inputs, names = [], set()
    if not isinstance(raw["inputs"], list) or not isinstance(raw["nodes"], list) or len(raw["nodes"]) > MAX_NODES:
        raise NetworkFormatError(f"graph {key!r}: inputs or nodes are not lists (at most {MAX_NODES} nodes)")
    for entry in raw["inputs"]:
        if not isinstance(entry, dict) or set(entry) != {"name", "kind", "target"}:
            raise NetworkFormatError(f"graph {key!r}: an input is not of the schema")
        name = _check_name(entry["name"], f"graph {key!r}: input")
        if entry["kind"] == "input":
            pass
        elif entry["kind"] in STATE_KINDS and entry["target"] in state and state[entry["target"]]["kind"] == entry["kind"]:
            pass
        else:
            raise NetworkFormatError(f"graph {key!r}: input {name} refers to no {entry['kind']} of the network")
        if name in names:
            raise NetworkFormatError(f"graph {key!r}: the name {name} is used twice")
        names.add(name)
        inputs.append(entry)
    if [e["kind"] for e in inputs].count("input") != 1:
        raise NetworkFormatError(f"graph {key!r}: a graph takes exactly one input")
    nodes = []
    for node in raw["nodes"]:
        if not isinstance(node, dict) or set(node) != {"name", "op", "args", "kwargs", "module", "where"}:
            raise NetworkFormatError(f"graph {key!r}: a node is not of the schema")
        name = _check_name(node["name"], f"graph {key!r}: node")
        if name in names:
            raise NetworkFormatError(f"graph {key!r}: the name {name} is used twice")
        try:
            resolve_op(node["op"])
        except NetworkFormatError as err:
            where = node.get("where") if isinstance(node.get("where"), str) else ""
            raise NetworkFormatError(f"{err}{f' (at {where[:100]})' if where else ''}") from None
        if not isinstance(node["args"], list) or not isinstance(node["kwargs"], dict):
            raise NetworkFormatError(f"graph {key!r}: node {name} has malformed arguments")
        for k in node["kwargs"]:
            _check_name(k, f"graph {key!r}: node {name}: keyword")
        module = node["module"]
        if not isinstance(module, list) or len(module) > 8 or not all(
                isinstance(m, list) and len(m) == 2 and all(isinstance(s, str) and len(s) < 300 for s in m)
                for m in module):
            raise NetworkFormatError(f"graph {key!r}: node {name} has a malformed module stack")
        _text(node["where"], f"graph {key!r}: node {name}: location", 200)
        names.add(name)
        nodes.append(node)
    graph = Graph(key, raw["device"], inputs, nodes, raw["output"])
    graph.module(torch.device("cpu"))  # every reference resolves, every argument decodes
    return graph


def load_network(folder: Path, name: str, *, max_bytes: int = 512 * 2**20) -> "GraphNet":
    """Read ``<name>.json`` and ``<name>.safetensors`` from ``folder``, validate them, return a :class:`GraphNet`.

    Raises:
        NetworkFormatError: the files are missing, too large, or not of the schema.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    description_file, tensor_file = folder / f"{name}.json", folder / f"{name}.safetensors"
    for path, cap in ((description_file, MAX_JSON_BYTES), (tensor_file, max_bytes)):
        if not path.is_file():
            raise NetworkFormatError(f"{path.name} is missing")
        if path.stat().st_size > cap:
            raise NetworkFormatError(f"{path.name} is larger than {cap / 2**20:.0f} MB")
    try:
        description = json.loads(description_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise NetworkFormatError(f"{description_file.name} is not valid JSON ({err})") from err
    try:
        tensors = load_file(str(tensor_file))
    except (SafetensorError, OSError, ValueError) as err:
        raise NetworkFormatError(f"{tensor_file.name} cannot be read ({err})") from err
    return network_from(description, tensors)


def network_from(description, tensors: dict) -> "GraphNet":
    """A :class:`GraphNet` from an in-memory description and tensors, validated as :func:`load_network` does."""
    if not isinstance(description, dict) or description.get("schema") != SCHEMA:
        raise NetworkFormatError(f"the network description is not of the schema {SCHEMA}")
    expected = {"schema", "state", "graphs", "errors", "device_error", "inputs", "modules"}
    if set(description) != expected:
        raise NetworkFormatError("the network description has unknown or missing keys")
    state = description["state"]
    if not isinstance(state, dict) or set(state) != set(tensors):
        raise NetworkFormatError("the state listed in the description and the saved tensors differ")
    for key, entry in state.items():
        _text(key, "a state name", 200)
        if not isinstance(entry, dict) or entry.get("kind") not in STATE_KINDS:
            raise NetworkFormatError(f"state {key!r:.80}: unknown kind")
        tensor = tensors[key]
        if tensor.dtype not in _DTYPE_NAMES:
            raise NetworkFormatError(f"state {key!r:.80}: dtype {tensor.dtype} is not allowed")
    inputs = description["inputs"]
    if not isinstance(inputs, dict) or not inputs or len(inputs) > 8:
        raise NetworkFormatError("the network lists no inputs")
    for key, value in inputs.items():
        _check_name(key, "an input")
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], list) and value[1] in TENSOR_DTYPES
                and all(isinstance(s, int) and 0 < s < 1 << 20 for s in value[0]) and len(value[0]) <= 6):
            raise NetworkFormatError(f"input {key}: not a shape and a dtype")
    graphs, errors = description["graphs"], description["errors"]
    if not isinstance(graphs, dict) or not isinstance(errors, dict) or len(graphs) + len(errors) > 32:
        raise NetworkFormatError("graphs and errors must be small dictionaries")
    for key, message in errors.items():
        _text(key, "a graph name", 100)
        _text(message, f"the error of graph {key}")
    if description["device_error"] is not None:
        _text(description["device_error"], "the device error")
    modules = description["modules"]
    if not isinstance(modules, list) or len(modules) > 500:
        raise NetworkFormatError("the module table must be a list of at most 500 entries")
    for entry in modules:
        if not (isinstance(entry, dict) and set(entry) == {"path", "type", "id", "attrs"}
                and isinstance(entry["id"], int) and isinstance(entry["attrs"], dict) and len(entry["attrs"]) <= 20):
            raise NetworkFormatError("a module entry is not of the schema")
        _text(entry["path"], "a module path", 300)
        _text(entry["type"], "a module type", 300)
    validated = {}
    for key, raw in graphs.items():
        _text(key, "a graph name", 100)
        try:
            validated[key] = _validate_graph(key, raw, state)
        except NetworkFormatError:
            raise
        except Exception as err:  # noqa: BLE001 - fx rejects what the checks above did not foresee
            raise NetworkFormatError(f"graph {key!r}: {type(err).__name__}: {err}") from err
    return GraphNet(description, tensors, validated)


# --------------------------------------------------------------------------------------------- running
class GraphNet(nn.Module):
    """A saved network, runnable: ``forward`` runs the graph of the current mode for the input's shape.

    Parameters and buffers are registered (so ``.parameters()``, ``.to(device)``, ``train()``/``eval()``
    and optimisers work as for any module) under positional names; :meth:`named_state` gives them with
    the names of the student's network (``fc1.weight``).
    """

    def __init__(self, description: dict, tensors: dict, graphs: dict):
        super().__init__()
        self.description = description
        self.graphs: dict[str, Graph] = graphs
        self.errors: dict[str, str] = dict(description["errors"])
        self.device_error: str | None = description["device_error"]
        self.input_shapes = {k: (tuple(v[0]), TENSOR_DTYPES[v[1]]) for k, v in description["inputs"].items()}
        self.modules_table = description["modules"]
        self.state_kinds = {k: v["kind"] for k, v in description["state"].items()}
        self._slots: dict[str, str] = {}
        self._params = nn.ParameterList()
        for key, entry in description["state"].items():
            tensor = tensors[key]
            slot = f"s{len(self._slots)}"
            self._slots[key] = slot
            if entry["kind"] == "parameter":
                requires = bool(entry.get("requires_grad", True)) and tensor.is_floating_point()
                self.register_parameter(slot, nn.Parameter(tensor.clone(), requires_grad=requires))
            else:
                self.register_buffer(slot, tensor.clone())

    # -- the student's names ------------------------------------------------------------------------
    def state_tensor(self, key: str) -> torch.Tensor:
        return getattr(self, self._slots[key])

    def named_state(self, kind: str | None = None):
        """``(name, tensor)`` of the network's parameters, buffers and constants (``kind`` filters)."""
        return [(k, self.state_tensor(k)) for k, v in self.state_kinds.items() if kind in (None, v)]

    def trainable_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return [(k, t) for k, t in self.named_state("parameter") if t.requires_grad]

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy ``weights`` (parameters and buffers by the student's names) in, strictly as load_state_dict.

        Raises:
            ValueError: names missing, unexpected, or of another shape (the message lists them).
        """
        wanted = {k for k, v in self.state_kinds.items() if v != "constant"}
        missing, unexpected = sorted(wanted - set(weights)), sorted(set(weights) - wanted)
        problems = []
        if missing:
            problems.append(f"missing {missing[:6]}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:6]}")
        for key in sorted(wanted & set(weights)):
            mine, theirs = self.state_tensor(key), weights[key]
            if tuple(mine.shape) != tuple(theirs.shape):
                problems.append(f"{key} has shape {tuple(theirs.shape)}, the network's is {tuple(mine.shape)}")
        if problems:
            raise ValueError("the weights do not fit the network: " + "; ".join(problems))
        with torch.no_grad():
            for key in wanted:
                self.state_tensor(key).copy_(weights[key].to(self.state_tensor(key).dtype))

    # -- running --------------------------------------------------------------------------------------
    def input_kind(self, x: torch.Tensor) -> str:
        for name, (shape, _) in self.input_shapes.items():
            if tuple(x.shape[1:]) == shape:
                return name
        known = " or ".join(f"(B, {', '.join(map(str, s))})" for s, _ in self.input_shapes.values())
        raise ValueError(f"the network was exported for inputs of shape {known}, not {tuple(x.shape)}")

    def graph_for(self, x: torch.Tensor, mode: str | None = None) -> Graph:
        kind = self.input_kind(x)
        key = f"{kind}/{mode or ('train' if self.training else 'eval')}"
        exported = [k for k in [*self.graphs, *self.errors] if k.startswith(f"{kind}/")]
        if key not in exported and len(exported) == 1:
            key = exported[0]  # a function, exported in one mode only
        if key not in self.graphs:
            raise GraphMissing(self.errors.get(key, f"the network has no exported graph for {key}"))
        return self.graphs[key]

    def arguments(self, graph: Graph, x: torch.Tensor) -> list:
        return [x if e["kind"] == "input" else self.state_tensor(e["target"]) for e in graph.inputs]

    def forward(self, x: torch.Tensor):
        graph = self.graph_for(x)
        out = graph.module(x.device)(*self.arguments(graph, x))
        return out[0] if isinstance(out, (tuple, list)) and len(out) == 1 else out


# Where a network may keep tensors: the weights and statistics of its layers (and the batch counter of
# BatchNorm). A tensor read anywhere else carries data of its own into the computation.
LAYER_ARGUMENTS = {
    ("linear", "weight"), ("linear", "bias"), ("conv1d", "weight"), ("conv1d", "bias"), ("conv2d", "weight"),
    ("conv2d", "bias"), ("conv_transpose2d", "weight"), ("conv_transpose2d", "bias"), ("batch_norm", "weight"),
    ("batch_norm", "bias"), ("batch_norm", "running_mean"), ("batch_norm", "running_var"), ("add_", "self"),
    ("layer_norm", "weight"), ("layer_norm", "bias"), ("prelu", "weight"), ("group_norm", "weight"),
    ("group_norm", "bias"),
}
SMALL_CONSTANT = 16  # elements: a constant such as torch.tensor([0.1307, 0.3081]) carries no data set


def foreign_state(net: "GraphNet") -> list:
    """State tensors that feed something other than a layer's weights (``(name, how it is used)``)."""
    found = {}
    for graph in net.graphs.values():
        for name, uses in graph.state_uses().items():
            if net.state_kinds.get(name) == "constant" and net.state_tensor(name).numel() <= SMALL_CONSTANT:
                continue
            odd = sorted(f"{op}({arg}=...)" for op, arg in uses if (op, arg) not in LAYER_ARGUMENTS)
            if odd:
                found.setdefault(name, odd[0])
    return sorted(found.items())


def reinitialise(net: "GraphNet", seed: int) -> None:
    """Give every layer of ``net`` PyTorch's default initial values, drawn after ``torch.manual_seed(seed)``.

    Linear and convolution layers: weights Kaiming-uniform with ``a = sqrt(5)``, biases uniform in
    ``+-1/sqrt(fan_in)`` (what ``nn.Linear`` and ``nn.Conv2d`` do); BatchNorm: scale 1, shift 0, running
    mean 0, variance 1, batch counter 0. Layers are taken in the order the training graph first uses them.
    """
    torch.manual_seed(seed)
    done: set = set()
    graphs = sorted(net.graphs.values(), key=lambda g: (not g.key.endswith("/train"), g.key))
    with torch.no_grad():
        for graph in graphs:
            targets = {e["name"]: e["target"] for e in graph.inputs if e["kind"] != "input"}
            for node in graph.nodes:
                op = node["op"].removeprefix("aten.").split(".")[0]
                refs = [targets.get(a.get("node")) if isinstance(a, dict) else None for a in node["args"]]
                if op in ("linear", "conv1d", "conv2d", "conv_transpose2d") and refs[1:2] and refs[1]:
                    weight = refs[1]
                    if weight in done:
                        continue
                    done.add(weight)
                    w = net.state_tensor(weight)
                    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                    bias = refs[2] if len(refs) > 2 else None
                    if bias and bias not in done:
                        done.add(bias)
                        fan_in = w[0].numel() if w.dim() > 1 else 1
                        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                        nn.init.uniform_(net.state_tensor(bias), -bound, bound)
                elif op == "batch_norm":
                    for position, value in ((1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0)):
                        name = refs[position] if len(refs) > position else None
                        if name and name not in done:
                            done.add(name)
                            net.state_tensor(name).fill_(value)
        for name, tensor in net.named_state("buffer"):
            if name.endswith("num_batches_tracked"):
                tensor.zero_()


class GraphMissing(RuntimeError):
    """The network has no graph for this input and mode (its export failed; the message says why)."""
