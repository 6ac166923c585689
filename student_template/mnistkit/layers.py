"""The order of a network's layers, checked against a contract with messages a teaching assistant would write.

A contract is a list of :class:`Layer`: the weighted layers (linear or convolution) in order, each with
its sizes and what may follow it before the next weighted layer, as sequences of *tokens* such as
``"ReLU"``, ``"Dropout(0.2)"``, ``"BatchNorm(10)"``, ``"MaxPool2d(2)"`` or ``"log_softmax(dim=1)"``. A token
without parentheses (``"Dropout"``) accepts any arguments. :func:`layer_problems` reads the traced
forward pass (:func:`mnistkit.tracing.trace_forward`) and returns what differs, first problem first::

    fc2 (Linear) is followed by Dropout(0.2), expected ReLU then Dropout(0.2)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .tracing import Op, Trace

WEIGHTED = ("linear", "conv")


@dataclass
class Layer:
    """One weighted layer of a contract and what may follow it (alternatives, each a list of tokens)."""

    kind: str  # "linear" or "conv"
    then: list = field(default_factory=lambda: [[]])
    optional: tuple = ()  # tokens allowed anywhere after the layer besides those of ``then``
    in_features: int | None = None
    out_features: int | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    kernel: int | None = None

    def size_text(self) -> str:
        if self.kind == "linear":
            return f"{self.in_features} -> {self.out_features}"
        return f"{self.in_channels} -> {self.out_channels} channels, kernel {self.kernel}"


def token(op: Op) -> str:
    """The word for one operation, as the contract writes it."""
    p = op.params
    if op.kind == "dropout":
        return f"Dropout({p.get('p', 0.5):g})"
    if op.kind == "norm":
        return f"BatchNorm({p.get('features')})" if op.func == "batch_norm" else op.func
    if op.kind == "act" and "leaky" in op.func:
        return f"LeakyReLU({p.get('negative_slope', 0.01):g})"
    if op.kind == "pool":
        kernel = p.get("kernel") or ("?",)
        k = kernel[0] if len(set(kernel)) == 1 else kernel
        name = "MaxPool2d" if p.get("max") else ("AdaptivePool" if p.get("adaptive") else "AvgPool2d")
        stride = p.get("stride")
        same = stride == p.get("kernel")
        extra = "" if same and p.get("padding") in ((0, 0), 0) else f", stride={stride}, padding={p.get('padding')}"
        return f"{name}({k}{extra})"
    if op.kind == "output":
        return f"{'log_softmax' if p.get('log') else 'softmax'}(dim={p.get('dim')})"
    return op.word()


def matches(pattern: str, actual: str) -> bool:
    return pattern == actual or ("(" not in pattern and actual.split("(")[0] == pattern)


def _is_output(token: str) -> bool:
    return token.split("(")[0] in ("log_softmax", "softmax")


def _follows(expected: list, optional: tuple, actual: list) -> bool:
    """Whether ``actual`` tokens follow the ``expected`` ones (``optional`` ones anywhere).

    The final (log-)softmax is judged by the log-probability tests, with their own message; here any
    (log-)softmax stands for the expected one, so that one mistake costs one test.
    """
    kept = [t for t in actual if not any(matches(o, t) for o in optional)]
    if len(kept) >= 2 and kept[-2].startswith("softmax(") and kept[-1] == "log":
        kept = [*kept[:-2], "log_" + kept[-2]]  # log(softmax(x)): the log-probability tests judge it
    if expected and kept and _is_output(expected[-1]) and _is_output(kept[-1]):
        kept = [*kept[:-1], expected[-1]]
    return len(kept) == len(expected) and all(matches(e, a) for e, a in zip(expected, kept))


def _joined(tokens: list) -> str:
    return " then ".join(tokens) if tokens else "nothing"


def _weighted_text(op: Op) -> str:
    p = op.params
    if op.kind == "linear":
        return f"{p.get('in_features')} -> {p.get('out_features')}"
    kernel = p.get("kernel") or ("?",)
    return f"{p.get('in_channels')} -> {p.get('out_channels')} channels, kernel {kernel[0]}"


def layer_problems(trace: Trace, contract: list, *, before: tuple = ()) -> list:
    """What in the traced forward pass differs from ``contract`` (empty when nothing does).

    ``before`` lists tokens allowed before the first weighted layer (nothing else than reshaping, by default).
    """
    if trace.error:
        return [f"forward raised {trace.error}"]
    ops = trace.layers()
    weighted = [i for i, op in enumerate(ops) if op.kind in WEIGHTED]
    problems = []
    kinds = {layer.kind for layer in contract}
    expected_text = " -> ".join(layer.size_text() for layer in contract)
    if len(weighted) != len(contract) or any(ops[i].kind != layer.kind for i, layer in zip(weighted, contract)):
        got = ", ".join(f"{ops[i].name()} ({_weighted_text(ops[i])})" for i in weighted) or "none"
        what = " and ".join(sorted({"linear layers" if k == "linear" else "convolutions" for k in kinds}))
        problems.append(f"expected {len(contract)} {what} in this order ({expected_text}); your forward runs "
                        f"{len(weighted)}: {got}")
        return problems
    first = ops[: weighted[0]]
    stray = [token(op) for op in first if not any(matches(b, token(op)) for b in before)]
    if stray:
        problems.append(f"before {ops[weighted[0]].name()} your forward runs {_joined(stray)}; expected only "
                        "reshaping of the input there")
    for number, (index, layer) in enumerate(zip(weighted, contract), start=1):
        op = ops[index]
        wanted = {"in_features": op.params.get("in_features"), "out_features": op.params.get("out_features"),
                  "in_channels": op.params.get("in_channels"), "out_channels": op.params.get("out_channels"),
                  "kernel": (op.params.get("kernel") or (None,))[0]}
        wrong = [k for k, v in wanted.items() if getattr(layer, k) is not None and getattr(layer, k) != v]
        if wrong:
            problems.append(f"{op.name()} (weighted layer {number}) has {_weighted_text(op)}, expected "
                            f"{layer.size_text()}")
        end = weighted[number] if number < len(weighted) else len(ops)
        after = [token(o) for o in ops[index + 1 : end]]
        if not any(_follows(alternative, layer.optional, after) for alternative in layer.then):
            problems.append(f"{op.name()} is followed by {_joined(after)}, expected {_joined(layer.then[0])}")
    return problems


def reused_modules(modules_table: list, types: tuple = ()) -> list:
    """Pairs of paths that hold the very same module object (``nn.ReLU`` created once and used twice)."""
    seen: dict[int, str] = {}
    pairs = []
    for entry in modules_table:
        if not entry["path"] or (types and entry["type"].rsplit(".", 1)[-1] not in types):
            continue
        first = seen.setdefault(entry["id"], entry["path"])
        if first != entry["path"]:
            pairs.append((first, entry["path"], entry["type"].rsplit(".", 1)[-1]))
    return pairs
