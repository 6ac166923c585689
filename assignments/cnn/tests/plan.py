"""What the probe computes with a student's cnn.py (public: the grader runs the same plan, with its own seed).

The network, built after torch.manual_seed(0) and exported for images (B, 1, 28, 28) in train and eval mode.
"""
from mnistkit.probe import Network, Plan


def make_plan(seed: int, files: dict) -> Plan:
    return Plan("cnn", [Network("net", "Net")], seed=seed, files=["cnn.py"])
