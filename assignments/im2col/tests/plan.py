"""What the probe computes with a student's im2col.py (public: the grader runs the same plan, with its own seed).

Every input is a float64 numpy array of the plan (``Plan.arrays``); the random ones are drawn from the
plan's seed (0 on your machine, a seed of the grader's own for each submission), so the same tests see
new numbers in the grader. The items, in order:

* ``im2col``: every im2col call, one step each: the course's worked example (``pad=1``) and the same
  pre-padded (``pad=0``), the visible ``CASES``, the ``EDGE_CASES``, the invalid inputs (each must raise
  ValueError; the probe records the exception, its message and where it came from), and
  ``PROPERTY_CASES`` random windows (:func:`random_windows`) for the hidden property test;
* ``col2im``: every col2im call, the same way (visible cases, invalid input, random windows);
* Convolution(W, b, stride, pad).forward(x): the worked example and pre-padded, the visible cases, invalid
  input, then the random cases;
* forward then .backward(dout), .dW, .db: the visible cases, the gradient check (stride 2, pad 1), the
  random cases (``dout`` has the output's shape, from the formula);
* the bonus: Pooling forward, and forward then backward, on ``POOL_CASES`` and on random pools
  (:func:`random_pools`).

The calls of im2col are one item, and so are those of col2im: each call is a step of its own, so one
that raises hides nothing. A chain of calls on one layer (construct, forward, backward) stops at the
first step that raises; the random cases of a property are one such chain, in the order the test
checks them (it stops at the first failure too). Each item has its own time limit, and the items run in
the order above, so that a part that never returns costs as few other parts their results as possible.
"""
from __future__ import annotations

from typing import NamedTuple

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
class Site(NamedTuple):
    """Where the calls of one Convolution or Pooling case are: the Calls ``item``, the ``key`` its arrays
    start with (``<key>/x``, ``<key>/W``, ``<key>/b``, ``<key>/dout``) and the ``suffix`` of its step names
    (``layer<suffix>``, ``out<suffix>``, ``dx<suffix>``, ``dW<suffix>``, ``db<suffix>``)."""

    item: str
    key: str
    suffix: str = ""


def site(item: str, index: int | None = None) -> Site:
    """The case of an item of its own (``index`` None) or case ``index`` of a chain of random cases."""
    return Site(item, item) if index is None else Site(item, f"{item}/{index}", str(index))


def array(name: str) -> dict:
    return {"array": name}


def shape_arg(shape) -> dict:
    return {"tuple": [int(s) for s in shape]}


def call(target: str, name: str, *args) -> dict:
    return {"call": target, "args": list(args), "as": name}


def conv_steps(where: Site, stride: int, pad: int, *, backward: bool) -> list:
    """``layer = Convolution(W, b, stride, pad)``, ``out = layer.forward(x)`` and, with ``backward``,
    ``dx = layer.backward(dout)`` and the layer's ``dW`` and ``db``."""
    k, s = where.key, where.suffix
    steps = [call("Convolution", f"layer{s}", array(f"{k}/W"), array(f"{k}/b"), stride, pad),
             call(f"layer{s}.forward", f"out{s}", array(f"{k}/x"))]
    if backward:
        steps += [call(f"layer{s}.backward", f"dx{s}", array(f"{k}/dout")),
                  {"get": f"layer{s}.dW", "as": f"dW{s}"}, {"get": f"layer{s}.db", "as": f"db{s}"}]
    return steps


def pool_steps(where: Site, pool_h: int, pool_w: int, stride: int, *, backward: bool) -> list:
    k, s = where.key, where.suffix
    steps = [call("Pooling", f"layer{s}", pool_h, pool_w, stride),
             call(f"layer{s}.forward", f"out{s}", array(f"{k}/x"))]
    if backward:
        steps.append(call(f"layer{s}.backward", f"dx{s}", array(f"{k}/dout")))
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

    def conv(self, where: Site, case, FN: int, *, backward: bool) -> list:
        """The arrays of a Convolution case (random x, W, b and dout of the output's shape) and its steps."""
        N, C, H, W, fh, fw, stride, pad = case
        self.randn(f"{where.key}/x", (N, C, H, W))
        self.randn(f"{where.key}/W", (FN, C, fh, fw))
        self.randn(f"{where.key}/b", (FN,))
        if backward:
            self.randn(f"{where.key}/dout", (N, FN, *out_size(case)))
        return conv_steps(where, stride, pad, backward=backward)

    def pool(self, where: Site, shape, pool_h: int, pool_w: int, stride: int, *, backward: bool) -> list:
        self.randn(f"{where.key}/x", shape)
        if backward:
            self.randn(f"{where.key}/dout", pool_out_shape(shape, pool_h, pool_w, stride))
        return pool_steps(where, pool_h, pool_w, stride, backward=backward)

    def im2col(self, step: str, case) -> dict:
        N, C, H, W, fh, fw, stride, pad = case
        return call("im2col", step, self.randn(f"im2col/{step}/x", (N, C, H, W)), fh, fw, stride, pad)

    def col2im(self, step: str, case) -> dict:
        N, C, H, W, fh, fw, stride, pad = case
        col = self.randn(f"col2im/{step}/col", col_shape(case))
        return call("col2im", step, col, shape_arg((N, C, H, W)), fh, fw, stride, pad)


def make_plan(seed: int, files: dict) -> Plan:
    b = _Builder(seed)
    # im2col: every call in one item (each step on its own: one that raises hides nothing).
    steps = [call("im2col", "worked", b.fixed("im2col/worked/x", COURSE_IMAGE), 3, 3, 1, 1),
             call("im2col", "prepadded", b.fixed("im2col/prepadded/x", COURSE_PADDED), 3, 3, 1, 0)]
    steps += [b.im2col(f"case{k}", case) for k, case in enumerate(CASES)]
    steps += [b.im2col(f"edge/{i}", case) for i, case in enumerate(EDGE_CASES)]
    for group, cases in INVALID_IM2COL.items():
        for i, (shape, fh, fw, stride, pad) in enumerate(cases):
            x = b.randn(f"im2col/invalid/{group}/{i}/x", shape)
            steps.append(call("im2col", f"invalid/{group}/{i}", x, fh, fw, stride, pad))
    steps += [b.im2col(f"prop/{i}", case) for i, case in enumerate(random_windows(seed, "im2col"))]
    b.add("im2col", steps, independent=True)
    # col2im, the same way.
    steps = [b.col2im(f"case{k}", case) for k, case in enumerate(CASES)]
    for i, (col, shape, stride, _) in enumerate(INVALID_COL2IM):
        steps.append(call("col2im", f"invalid/{i}", b.randn(f"col2im/invalid/{i}/col", col), shape_arg(shape), 3, 3,
                          stride, 0))
    for name in ("adjoint", "sums"):
        steps += [b.col2im(f"{name}/{i}", case) for i, case in enumerate(random_windows(seed, f"col2im-{name}"))]
    b.add("col2im", steps, independent=True)
    # Convolution.forward: the worked example (pad=1) and pre-padded (pad=0), the visible cases, invalid input,
    # then the random cases as one chain (after a step raises, the rest is not run: the test stops there too).
    for item, image, pad in (("worked/conv", COURSE_IMAGE, 1), ("prepadded/conv", COURSE_PADDED, 0)):
        b.fixed(f"{item}/x", image)
        b.fixed(f"{item}/W", COURSE_FILTER)
        b.fixed(f"{item}/b", np.zeros(1))
        b.add(item, conv_steps(site(item), 1, pad, backward=False))
    for k, case in enumerate(CASES):
        b.add(f"case{k}/conv-forward", b.conv(site(f"case{k}/conv-forward"), case, CASE_FILTERS, backward=False))
    for i, (shape, stride, _) in enumerate(INVALID_CONV):
        item = f"invalid/conv{i}"
        W, bias = b.randn(f"{item}/W", INVALID_CONV_W), b.randn(f"{item}/b", INVALID_CONV_W[:1])
        b.add(item, [call("Convolution", "layer", W, bias, stride, 0),
                     call("layer.forward", "out", b.randn(f"{item}/x", shape))])
    cases = zip(random_windows(seed, "conv-forward"), random_filters(seed, "conv-forward"))
    b.add("prop/conv-forward", [step for i, (case, FN) in enumerate(cases)
                                for step in b.conv(site("prop/conv-forward", i), case, FN, backward=False)])
    # Convolution.backward (after forward): the visible cases, the gradient check, the random cases.
    for k, case in enumerate(CASES):
        b.add(f"case{k}/conv-backward", b.conv(site(f"case{k}/conv-backward"), case, CASE_FILTERS, backward=True))
    N, C, H, W, FN, F, stride, pad = GRADCHECK
    b.add("gradcheck", b.conv(site("gradcheck"), (N, C, H, W, F, F, stride, pad), FN, backward=True))
    cases = zip(random_windows(seed, "conv-backward"), random_filters(seed, "conv-backward"))
    b.add("prop/conv-backward", [step for i, (case, FN) in enumerate(cases)
                                 for step in b.conv(site("prop/conv-backward", i), case, FN, backward=True)])
    # Bonus: Pooling, last (a Pooling that never returns costs no other part its results).
    for direction, backward in (("forward", False), ("backward", True)):
        for k, (shape, pool, stride) in enumerate(POOL_CASES):
            item = f"pool{k}/{direction}"
            b.add(item, b.pool(site(item), shape, pool, pool, stride, backward=backward))
        item = f"prop/pool-{direction}"
        b.add(item, [step for i, (N, C, H, W, ph, pw, stride) in enumerate(random_pools(seed, f"pool-{direction}"))
                     for step in b.pool(site(item, i), (N, C, H, W), ph, pw, stride, backward=backward)])
    return Plan(MODULE, b.items, b.arrays, seed=seed, files=[f"{MODULE}.py"])
