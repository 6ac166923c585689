"""What the probe computes with a student's im2col.py (public: the grader runs the same plan, with its own seed).

Every input is a float64 numpy array of the plan (``Plan.arrays``); the random ones are drawn from the
plan's seed (0 on your machine, a seed of the grader's own for each submission), so the same tests see
new numbers in the grader. The items, in order:

* the course's worked example, with ``pad=1`` and pre-padded with ``pad=0`` (im2col and Convolution);
* the visible ``CASES``: im2col, col2im, and Convolution(W, b).forward(x) then .backward(dout), .dW, .db;
* the edge cases of the output shape and the invalid inputs (each must raise ValueError; the probe
  records the exception, its message and where it came from);
* the gradient check's forward and backward (stride 2, pad 1);
* for the hidden property tests, ``PROPERTY_CASES`` random windows per property (:func:`random_windows`,
  :func:`random_pools`): im2col, col2im, Convolution forward, and forward then backward;
* the bonus: Pooling forward, and forward then backward, on ``POOL_CASES`` and on random pools.

A chain of calls on one layer (construct, forward, backward) is one item: after a step raises, the rest
of that item is not run. Everything else is one call per step of an ``independent`` item, or an item of
its own, so that one failure hides nothing unrelated.
"""
from __future__ import annotations

import numpy as np

from mnistkit.probe import Calls, Plan, seeded_rng

MODULE = "im2col"

# The course's worked example: the 3x3 image 1..9 (padded with one ring of zeros) and the anti-diagonal filter.
COURSE_IMAGE = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
COURSE_PADDED = np.pad(COURSE_IMAGE, [(0, 0), (0, 0), (1, 1), (1, 1)])
COURSE_FILTER = np.array([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]).reshape(1, 1, 3, 3)

# (N, C, H, W, filter_h, filter_w, stride, pad): square and not, strided, padded, 1-wide windows.
CASES = [
    (2, 3, 5, 5, 3, 3, 1, 1),
    (1, 2, 7, 5, 3, 1, 2, 0),
    (3, 1, 6, 8, 2, 4, 2, 2),
]
CASE_FILTERS = 4  # FN of the visible Convolution cases

EDGE_CASES = [
    (2, 3, 4, 4, 1, 1, 1, 0),  # 1x1 window: one row per pixel
    (1, 2, 3, 3, 5, 5, 1, 1),  # the window covers the whole padded image: one row per image
    (3, 1, 7, 10, 1, 4, 3, 0),
    (1, 1, 1, 1, 3, 3, 1, 1),
]

# Invalid input: (x shape, filter_h, filter_w, stride, pad); each im2col call must raise ValueError.
INVALID_IM2COL = {
    "visible": [((1, 1, 3, 3), 4, 4, 1, 0), ((1, 1, 6, 6), 3, 3, 2, 0), ((3, 5, 5), 3, 3, 1, 0)],
    "non-integer": [((2, 3, 6, 6), 3, 3, 2, 0), ((1, 1, 5, 6), 3, 3, 2, 0), ((1, 1, 7, 7), 2, 2, 3, 1)],
    "too-large": [((1, 2, 3, 3), 5, 5, 1, 0), ((1, 1, 2, 4), 3, 3, 1, 0), ((1, 1, 4, 4), 1, 7, 1, 1)],
    "ndim": [((3, 5, 5), 3, 3, 1, 0), ((1, 1, 1, 5, 5), 3, 3, 1, 0), ((25,), 3, 3, 1, 0)],
}
# col2im: (col shape, input_shape, stride, the shape the message must name); a 3x3 window, pad 0.
INVALID_COL2IM = [
    ((4, 8), (1, 1, 4, 4), 1, (4, 8)),  # 4 windows of 9 entries expected
    ((5, 9), (1, 1, 4, 4), 1, (5, 9)),
    ((4, 9), (1, 1, 6, 6), 2, (1, 1, 6, 6)),  # 6 - 3 = 3 is not a multiple of 2
]
# Convolution(W of shape (2, 3, 3, 3), stride, pad=0).forward(x): (x shape, stride, shapes the message must name).
INVALID_CONV_W = (2, 3, 3, 3)
INVALID_CONV = [
    ((1, 2, 5, 5), 1, [(1, 2, 5, 5), (2, 3, 3, 3)]),  # 2 channels, the filters expect 3
    ((3, 5, 5), 1, [(3, 5, 5)]),
    ((1, 3, 6, 6), 2, [(1, 3, 6, 6)]),
]

# The gradient check: x (N, C, H, W), FN filters of F x F, stride, pad.
GRADCHECK = (2, 2, 5, 5, 3, 3, 2, 1)  # N, C, H, W, FN, F, stride, pad

# Bonus: ((N, C, H, W), pool, stride) with a square pool.
POOL_CASES = [((2, 3, 6, 6), 2, 2), ((1, 2, 7, 5), 3, 2)]

PROPERTY_CASES = 45  # random windows per hidden property test


# ------------------------------------------------------------------------------------------- shapes
def out_size(case) -> tuple[int, int]:
    """``(out_h, out_w)`` of a case ``(N, C, H, W, filter_h, filter_w, stride, pad)``."""
    N, C, H, W, fh, fw, stride, pad = case
    return (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1


def col_shape(case) -> tuple[int, int]:
    """The shape of im2col's matrix for ``case``: ``(N*out_h*out_w, C*filter_h*filter_w)``."""
    N, C, H, W, fh, fw, stride, pad = case
    out_h, out_w = out_size(case)
    return N * out_h * out_w, C * fh * fw


def pool_out_shape(shape, pool_h, pool_w, stride) -> tuple[int, int, int, int]:
    N, C, H, W = shape
    return N, C, (H - pool_h) // stride + 1, (W - pool_w) // stride + 1


def random_windows(seed: int, name: str, count: int = PROPERTY_CASES) -> list[tuple]:
    """``(N, C, H, W, filter_h, filter_w, stride, pad)`` where the window fits exactly (H, W >= 1).

    filter_h, filter_w in 1-4, stride 1-3, pad 0-2, N and C 1-3, and 1 to 5 more output rows (and
    columns) than the fewest that give a side of at least 1.
    """
    rng = seeded_rng(seed, "windows", name)
    cases = []
    for _ in range(count):
        fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride, pad = int(rng.integers(1, 4)), int(rng.integers(0, 3))

        def side(filter_size):
            lowest = max(1, -(-(2 * pad + 1 - filter_size) // stride) + 1)  # the fewest outputs with a side >= 1
            out = int(rng.integers(lowest, lowest + 5))
            return (out - 1) * stride + filter_size - 2 * pad

        H, W = side(fh), side(fw)
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 4)), H, W, fh, fw, stride, pad))
    return cases


def random_filters(seed: int, name: str, count: int = PROPERTY_CASES) -> list[int]:
    """The number of filters FN (1-4) of each random Convolution case."""
    rng = seeded_rng(seed, "filters", name)
    return [int(rng.integers(1, 5)) for _ in range(count)]


def random_pools(seed: int, name: str, count: int = PROPERTY_CASES) -> list[tuple]:
    """``(N, C, H, W, pool_h, pool_w, stride)`` with an exact fit, no padding (pool and stride 1-3)."""
    rng = seeded_rng(seed, "pools", name)
    cases = []
    for _ in range(count):
        pool_h, pool_w, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        H = (int(rng.integers(1, 5)) - 1) * stride + pool_h
        W = (int(rng.integers(1, 5)) - 1) * stride + pool_w
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 4)), H, W, pool_h, pool_w, stride))
    return cases


# ------------------------------------------------------------------------------------------- the items
def array(name: str) -> dict:
    return {"array": name}


def ref(name: str) -> dict:
    return {"ref": name}


def shape_arg(shape) -> dict:
    return {"tuple": [int(s) for s in shape]}


def call(target: str, name: str, *args) -> dict:
    return {"call": target, "args": list(args), "as": name}


def conv_steps(key: str, stride: int, pad: int, *, backward: bool) -> list:
    """``layer = Convolution(W, b, stride, pad)``, ``out = layer.forward(x)`` and, with ``backward``,
    ``dx = layer.backward(dout)`` and the layer's ``dW`` and ``db``; the arrays are ``<key>/W`` and so on."""
    steps = [call("Convolution", "layer", array(f"{key}/W"), array(f"{key}/b"), stride, pad),
             call("layer.forward", "out", array(f"{key}/x"))]
    if backward:
        steps += [call("layer.backward", "dx", array(f"{key}/dout")),
                  {"get": "layer.dW", "as": "dW"}, {"get": "layer.db", "as": "db"}]
    return steps


def pool_steps(key: str, pool_h: int, pool_w: int, stride: int, *, backward: bool) -> list:
    steps = [call("Pooling", "layer", pool_h, pool_w, stride), call("layer.forward", "out", array(f"{key}/x"))]
    if backward:
        steps.append(call("layer.backward", "dx", array(f"{key}/dout")))
    return steps


class _Builder:
    def __init__(self, seed: int):
        self.seed = seed
        self.arrays: dict[str, np.ndarray] = {}
        self.items: list[Calls] = []

    def randn(self, key: str, shape) -> dict:
        self.arrays[key] = seeded_rng(self.seed, "array", key).standard_normal(tuple(shape))
        return array(key)

    def fixed(self, key: str, value: np.ndarray) -> dict:
        self.arrays[key] = np.array(value, dtype=np.float64)
        return array(key)

    def add(self, item_id: str, steps: list, *, independent: bool = False) -> None:
        self.items.append(Calls(item_id, steps, independent=independent))

    def conv(self, key: str, case, FN: int, *, backward: bool) -> None:
        N, C, H, W, fh, fw, stride, pad = case
        self.randn(f"{key}/x", (N, C, H, W))
        self.randn(f"{key}/W", (FN, C, fh, fw))
        self.randn(f"{key}/b", (FN,))
        if backward:
            self.randn(f"{key}/dout", (N, FN, *out_size(case)))
        self.add(key, conv_steps(key, stride, pad, backward=backward))

    def pool(self, key: str, shape, pool_h: int, pool_w: int, stride: int, *, backward: bool) -> None:
        self.randn(f"{key}/x", shape)
        if backward:
            self.randn(f"{key}/dout", pool_out_shape(shape, pool_h, pool_w, stride))
        self.add(key, pool_steps(key, pool_h, pool_w, stride, backward=backward))


def im2col_step(b: _Builder, key: str, case, name: str) -> dict:
    N, C, H, W, fh, fw, stride, pad = case
    return call("im2col", name, b.randn(f"{key}/x", (N, C, H, W)), fh, fw, stride, pad)


def col2im_step(b: _Builder, key: str, case, name: str) -> dict:
    N, C, H, W, fh, fw, stride, pad = case
    return call("col2im", name, b.randn(f"{key}/col", col_shape(case)), shape_arg((N, C, H, W)), fh, fw, stride, pad)


def make_plan(seed: int, files: dict) -> Plan:
    b = _Builder(seed)
    # The worked example: im2col and Convolution (pad=1), and the same pre-padded (pad=0).
    b.add("worked/im2col", [call("im2col", "col", b.fixed("worked/im2col/x", COURSE_IMAGE), 3, 3, 1, 1)])
    b.add("prepadded/im2col", [call("im2col", "col", b.fixed("prepadded/im2col/x", COURSE_PADDED), 3, 3, 1, 0)])
    for key, image, pad in (("worked/conv", COURSE_IMAGE, 1), ("prepadded/conv", COURSE_PADDED, 0)):
        b.fixed(f"{key}/x", image)
        b.fixed(f"{key}/W", COURSE_FILTER)
        b.fixed(f"{key}/b", np.zeros(1))
        b.add(key, conv_steps(key, 1, pad, backward=False))
    # The visible cases.
    for k, case in enumerate(CASES):
        b.add(f"case{k}/im2col", [im2col_step(b, f"case{k}/im2col", case, "col")])
        b.add(f"case{k}/col2im", [col2im_step(b, f"case{k}/col2im", case, "image")])
    # Edge cases of the output shape, and invalid input.
    b.add("edge/im2col", [im2col_step(b, f"edge/{i}", case, f"e{i}") for i, case in enumerate(EDGE_CASES)],
          independent=True)
    invalid = []
    for group, cases in INVALID_IM2COL.items():
        for i, (shape, fh, fw, stride, pad) in enumerate(cases):
            invalid.append(call("im2col", f"{group}/{i}", b.randn(f"invalid/{group}/{i}", shape), fh, fw, stride, pad))
    b.add("invalid/im2col", invalid, independent=True)
    b.add("invalid/col2im", [call("col2im", f"c{i}", b.randn(f"invalid/col2im/{i}", col), shape_arg(shape), 3, 3, stride, 0)
                             for i, (col, shape, stride, _) in enumerate(INVALID_COL2IM)], independent=True)
    # Hidden properties of im2col and col2im: random windows, one call each.
    b.add("prop/im2col", [im2col_step(b, f"prop/im2col/{i}", case, f"c{i}")
                          for i, case in enumerate(random_windows(seed, "im2col"))], independent=True)
    for name in ("col2im-adjoint", "col2im-sums"):
        b.add(f"prop/{name}", [col2im_step(b, f"prop/{name}/{i}", case, f"c{i}")
                               for i, case in enumerate(random_windows(seed, name))], independent=True)
    # Convolution: the visible cases, invalid input, the pre-padded example, the gradient check, random windows.
    for k, case in enumerate(CASES):
        b.conv(f"case{k}/conv-forward", case, CASE_FILTERS, backward=False)
        b.conv(f"case{k}/conv-backward", case, CASE_FILTERS, backward=True)
    for i, (shape, stride, _) in enumerate(INVALID_CONV):
        key = f"invalid/conv{i}"
        b.add(key, [call("Convolution", "layer", b.randn(f"{key}/W", INVALID_CONV_W), b.randn(f"{key}/b", INVALID_CONV_W[:1]),
                         stride, 0),
                    call("layer.forward", "out", b.randn(f"{key}/x", shape))])
    N, C, H, W, FN, F, stride, pad = GRADCHECK
    b.conv("gradcheck", (N, C, H, W, F, F, stride, pad), FN, backward=True)
    for i, (case, FN) in enumerate(zip(random_windows(seed, "conv-forward"), random_filters(seed, "conv-forward"))):
        b.conv(f"prop/conv-forward/{i}", case, FN, backward=False)
    for i, (case, FN) in enumerate(zip(random_windows(seed, "conv-backward"), random_filters(seed, "conv-backward"))):
        b.conv(f"prop/conv-backward/{i}", case, FN, backward=True)
    # Bonus: Pooling.
    for k, (shape, pool, stride) in enumerate(POOL_CASES):
        b.pool(f"pool{k}/forward", shape, pool, pool, stride, backward=False)
        b.pool(f"pool{k}/backward", shape, pool, pool, stride, backward=True)
    for i, (N, C, H, W, ph, pw, stride) in enumerate(random_pools(seed, "pool-forward")):
        b.pool(f"prop/pool-forward/{i}", (N, C, H, W), ph, pw, stride, backward=False)
    for i, (N, C, H, W, ph, pw, stride) in enumerate(random_pools(seed, "pool-backward")):
        b.pool(f"prop/pool-backward/{i}", (N, C, H, W), ph, pw, stride, backward=True)
    return Plan(MODULE, b.items, b.arrays, seed=seed, files=[f"{MODULE}.py"])
