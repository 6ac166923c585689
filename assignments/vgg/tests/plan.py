"""What the probe computes with a student's vgg.py (public: the grader runs the same plan, with its own seed).

* the network, built after torch.manual_seed(0) and exported for images (B, 1, 28, 28), train and eval mode;
* out_size on the five worked examples of the visible tests and on 40 random valid cases (from the seed);
* shape_table for batches of 1, 2, 4, 5 and 7.
"""
from mnistkit.probe import Calls, Network, Plan, seeded_rng

EXAMPLES = [(32, 5, 1, 0), (7, 3, 2, 1), (10, 2, 2, 0), (9, 2, 2, 0), (6, 3, 1, 1)]
TABLE_BATCHES = (1, 2, 4, 5, 7)
RANDOM_CASES = 40


def random_cases(seed: int) -> list:
    """``(size, kernel, stride, padding)`` with size 1-40, kernel 1-7, stride 1-4, padding 0-3, the window fitting."""
    rng = seeded_rng(seed, "out_size")
    cases = []
    while len(cases) < RANDOM_CASES:
        size, kernel, stride, padding = (int(rng.integers(1, 41)), int(rng.integers(1, 8)), int(rng.integers(1, 5)),
                                         int(rng.integers(0, 4)))
        if size + 2 * padding >= kernel:
            cases.append((size, kernel, stride, padding))
    return cases


def make_plan(seed: int, files: dict) -> Plan:
    cases = EXAMPLES + random_cases(seed)
    out_size = Calls("out_size", [{"call": "out_size", "args": list(c), "as": f"c{i}"} for i, c in enumerate(cases)],
                     independent=True)
    tables = Calls("shape_table", [{"call": "shape_table", "args": [b], "as": f"b{b}"} for b in TABLE_BATCHES],
                   independent=True)
    return Plan("vgg", [Network("net", "Net"), out_size, tables], seed=seed, files=["vgg.py"])
