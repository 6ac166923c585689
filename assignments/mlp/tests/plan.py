"""What the probe computes with a student's mlp.py (public: the grader runs the same plan, with its own seed).

The network, exported for images (N, 1, 28, 28) and flat input (N, 784), in train and eval mode, with the
submitted mnist_agent.pt loaded into it; and one_hot, exported for 10 to 15 classes.
"""
from mnistkit.probe import Function, Network, Plan

IMAGE = [[1, 28, 28], "float32"]
FLAT = [[784], "float32"]
ONE_HOT_CLASSES = range(10, 16)


def make_plan(seed: int, files: dict) -> Plan:
    items = [Network("net", "Net", inputs={"image": IMAGE, "flat": FLAT}, weights="mnist_agent.pt")]
    items += [Function(f"one_hot/{n}", "one_hot", args=[{"input": "labels"}, n], inputs={"labels": [[], "int64"]})
              for n in ONE_HOT_CLASSES]
    return Plan("mlp", items, seed=seed, files=["mlp.py"])
