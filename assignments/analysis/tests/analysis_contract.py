"""The contract of the analysis assignment as data the tests check against (analysis.py's docstring says it in words),
and the helpers that read what the probe recorded (tests/plan.py) in its terms.

The layers and their order are judged on the exported graph's operations (:mod:`mnistkit.tracing`), the
reported module table (``GraphNet.modules_table``) only names modules in messages and tells whether one
module object is used twice.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import runs as kit_runs
from mnistkit.checks import fail
from mnistkit.graph import GraphNet
from mnistkit.layers import Layer, reused_modules
from mnistkit.probe import ArrayValue, Raised, Unrepresentable, not_written

IN_FEATURES = 784
NUM_CLASSES = 10
LEAKY_SLOPE = 0.01
# The module each activation name stands for, and the word the traced forward pass uses for it.
MODULES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "leakyrelu": "LeakyReLU"}
TOKENS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "leakyrelu": f"LeakyReLU({LEAKY_SLOPE:g})"}
FUNCTIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
             "leakyrelu": lambda x: F.leaky_relu(x, LEAKY_SLOPE)}


def reference_parameters(depth: int, width: int, batchnorm: bool = False) -> int:
    hidden = IN_FEATURES * width + width + (depth - 1) * (width * width + width)
    return hidden + NUM_CLASSES * width + NUM_CLASSES + (2 * width * depth if batchnorm else 0)


def formula_hint(depth: int, width: int, batchnorm: bool, got: int) -> str:
    """A hint naming the usual mistake when ``expected_parameters(depth, width, batchnorm)`` returned ``got``
    (``""`` when it is none of them)."""
    difference = got - reference_parameters(depth, width, batchnorm)
    if difference == -(depth * width + NUM_CLASSES):
        return " (the biases are not counted: every nn.Linear(a, b) has b of them)"
    if batchnorm and difference == 2 * width * depth:
        return (" (BatchNorm1d's running mean and variance are buffers, not parameters: it has 2 trainable parameters "
                "per unit, its weight and bias)")
    if batchnorm and difference == -2 * width * depth:
        return " (BatchNorm1d's weight and bias, 2 trainable parameters per unit, are not counted)"
    if difference == width * width + width:
        return " (it counts one nn.Linear(width, width) too many: depth hidden layers have depth - 1 of them)"
    if depth > 1 and difference == -(width * width + width):
        return " (it counts one nn.Linear(width, width) too few: depth hidden layers have depth - 1 of them)"
    return ""


def pytorch_default(weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether an nn.Linear's weight and bias are as PyTorch initialises them: both uniform within
    ``+-1/sqrt(fan_in)`` (the weights' standard deviation about a third of that range), the biases not zero."""
    bound = weight.shape[1] ** -0.5
    uniform_std = bound / 3**0.5
    return bool(bias is not None and 0 < bias.abs().max().item() <= bound + 1e-6
                and weight.abs().max().item() <= bound + 1e-6 and abs(weight.std().item() - uniform_std) < 0.1 * uniform_std)


def shown(*args, **kwargs) -> str:
    """``build_mlp(2, 20, 'tanh', batchnorm=True)``'s argument list as text."""
    return ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])


def call_text(item) -> str:
    """The call a Network item of the plan makes, as the student would write it."""
    return f"{item.build}({shown(*item.args, **item.kwargs)})"


def layers(depth: int, width: int, activation: str, batchnorm: bool = False, dropout: float = 0.0) -> list:
    """The contract of ``build_mlp(depth, width, activation, batchnorm, dropout)`` for :func:`layer_problems`."""
    hidden = [*([f"BatchNorm({width})"] if batchnorm else []), TOKENS[activation],
              *([f"Dropout({dropout:g})"] if dropout else [])]
    sizes = [IN_FEATURES] + [width] * depth
    return ([Layer("linear", in_features=sizes[i], out_features=width, then=[hidden]) for i in range(depth)]
            + [Layer("linear", in_features=width, out_features=NUM_CLASSES, then=[["log_softmax(dim=1)"]])])


def module_names(depth: int, activation: str, batchnorm: bool = False, dropout: float = 0.0) -> list[str]:
    """The modules of the contract's nn.Sequential, in order."""
    hidden = ["Linear", *(["BatchNorm1d"] if batchnorm else []), MODULES[activation], *(["Dropout"] if dropout else [])]
    return ["Flatten", *hidden * depth, "Linear", "LogSoftmax"]


def top_modules(net: GraphNet) -> list[str]:
    """The class names of the network's top-level modules in order, as reported (a module used twice is
    listed twice)."""
    return [e["type"].rsplit(".", 1)[-1] for e in net.modules_table if e["path"] and "." not in e["path"]]


def root_type(net: GraphNet) -> str:
    """The class name of the built module itself, as reported."""
    roots = [e["type"].rsplit(".", 1)[-1] for e in net.modules_table if not e["path"]]
    return roots[0] if roots else "?"


def modules_hint(net: GraphNet, expected: list[str]) -> str:
    """``"; expected modules [...], your modules: [...]"`` when the reported modules differ, else ``""``."""
    got = top_modules(net)
    return f"; expected modules {expected}, your modules: {got}" if got != expected else ""


def reused_activation(net: GraphNet) -> str | None:
    """A message when one activation module object serves several hidden layers, else ``None``.

    A layer's number counts the linear layers up to the module, in the network's module order.
    """
    pairs = reused_modules(net.modules_table, types=tuple(MODULES.values()))
    if not pairs:
        return None
    first, _, kind = pairs[0]
    paths = [first] + [second for one, second, _ in pairs if one == first]
    table = [(e["path"], e["type"].rsplit(".", 1)[-1]) for e in net.modules_table]
    numbers = []
    for path in paths:
        index = next(i for i, (p, _) in enumerate(table) if p == path)
        numbers.append(str(sum(1 for _, t in table[:index] if t == "Linear")))

    def joined(words):
        return ", ".join(words[:-1]) + " and " + words[-1]

    where = joined([repr(p) for p in paths])
    used = (f"layers {joined(numbers)} ({where})" if "0" not in numbers and len(set(numbers)) == len(numbers)
            else where)
    return f"the same {kind} module is used by {used}: create one per layer with make_activation"


def graph_nodes(net: GraphNet, what: str):
    """The saved graph (eval mode if exported) of ``net``; a failure with the export's error if there is none."""
    if not net.graphs:
        error = next(iter(net.errors.values()), "no graph was exported")
        fail(f"{what} could not be exported: {error}")
    keys = sorted(net.graphs, key=lambda k: (not k.endswith("/eval"), k))
    return net.graphs[keys[0]]


def linear_layers(net: GraphNet, what: str) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """``(weight name, weight, bias)`` of every linear layer, in the order forward runs them (from the graph)."""
    graph = graph_nodes(net, what)
    targets = {e["name"]: e["target"] for e in graph.inputs if e["kind"] != "input"}

    def state(arg):
        if isinstance(arg, dict) and arg.get("node") in targets:
            return targets[arg["node"]]
        return None

    found = []
    for node in graph.nodes:
        if node["op"] != "aten.linear.default":
            continue
        weight = state(node["args"][1]) if len(node["args"]) > 1 else None
        bias = state(node["args"][2]) if len(node["args"]) > 2 else None
        if weight is None:
            fail(f"{what}: a linear layer's weight is computed in forward ({node['where'] or 'see the graph'}); "
                 "use nn.Linear layers")
        found.append((weight, net.state_tensor(weight).detach(), net.state_tensor(bias).detach() if bias else None))
    return found


def expect_value_error(value, what: str) -> None:
    """Fail unless the recorded step ``value`` is a ValueError that was raised; ``what`` names the call."""
    if isinstance(value, Raised):
        if value.type == "ValueError":
            return
        if value.type == "NotImplementedError":
            fail(f"{what} is {not_written(value.message, value.origin)}")
        at = f" (at {value.origin})" if value.origin and not value.origin.startswith("library:") else ""
        fail(f"{what} raised {value.type}: {value.message}, expected ValueError{at}")
    fail(f"{what} returned instead of raising ValueError")


def value_of(value, what: str):
    """A recorded step's value, or a failure saying what the call raised."""
    if isinstance(value, Raised):
        if value.type == "NotImplementedError":
            fail(f"{what}: {not_written(value.message, value.origin)}")
        at = f" (at {value.origin})" if value.origin and not value.origin.startswith("library:") else ""
        fail(f"{what} raised {value.type}: {value.message}{at}")
    return value


def number_of(value, what: str) -> int:
    """A recorded int (expected_parameters' result), or a failure saying what came back instead."""
    value = value_of(value, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        kind = value.kind if isinstance(value, Unrepresentable) else (
            value.type if isinstance(value, ArrayValue) else type(value).__name__)
        fail(f"{what} returned {value!r} ({kind}); expected an int")
    return int(value)


def torch_nn_step(steps, name: str, what: str) -> None:
    """Fail with a clear message when a step building a model with ``analysis.nn`` failed."""
    value = steps.get(name)
    if isinstance(value, Raised):
        fail(f"{what}: this check builds its model with torch.nn as your analysis.py imports it "
             f"(`from torch import nn`, as in the stub), and that failed: {value.type}: {value.message}")


def tensor_of(value, what: str) -> torch.Tensor:
    value = value_of(value, what)
    if not isinstance(value, ArrayValue):
        fail(f"{what} is not a tensor ({value!r})")
    return torch.from_numpy(value.array.copy())


# ------------------------------------------------------------------------------------------ training
def train_probe_network(probe, item_id: str, config, seed: int, data: tuple, what: str) -> dict:
    """``runs.train_run(config, seed, ...)`` with the probe's network of ``item_id`` as the built model.

    The network was built by the student's build_mlp after ``torch.manual_seed(seed)``; torch's random state
    right after that build is restored, so dropout draws what it drew in the student's own run.
    """
    item = probe.item(item_id)
    net = probe.network(item_id)
    rng = probe.rng_after(item_id)
    built = dict(zip(("depth", "width", "activation"), item.args), batchnorm=False, dropout=0.0, init="default")
    built.update(item.kwargs)

    def build(depth, width, activation, batchnorm=False, dropout=0.0, init="default"):
        wanted = dict(depth=depth, width=width, activation=activation, batchnorm=batchnorm, dropout=dropout, init=init)
        if wanted != built:
            raise RuntimeError(f"the kit's plan built {built} for {item_id}, the run needs {wanted}")
        torch.set_rng_state(rng)
        return net

    train_x, train_y, test_x, test_y = data
    try:
        return kit_runs.train_run(config, seed, train_x, train_y, test_x, test_y, build=build)
    except Exception as err:  # noqa: BLE001 - an operator of the student's graph failed
        text = str(err).strip().splitlines()[0][:600] if str(err).strip() else ""
        message = f"{what}: training {call_text(item)} raised {type(err).__name__}: {text}"
    fail(message)
