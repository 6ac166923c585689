"""Support code shipped in every mnist-kit handout: MNIST loading, fast training, the probe, tests, submit.

Importing ``mnistkit`` before ``torch`` makes torch's idle worker threads sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``, unless you set it yourself): on a laptop busy with other work, spinning
threads that wait for a descheduled one made training up to ten times slower. The handout's scripts and
its ``pytest`` import mnistkit first; :func:`threads_note` says whether it took effect.
"""
import os
import sys

__version__ = "0.1.0"

_TORCH_FIRST = "torch" in sys.modules  # then OpenMP has read its settings already
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def threads_note() -> str:
    """One line on torch's threads: how many, and whether idle ones sleep (for the scripts' first line)."""
    import torch

    policy = os.environ.get("OMP_WAIT_POLICY", "").upper()
    if _TORCH_FIRST:
        state = "idle threads may spin: import mnistkit before torch"
    elif policy == "PASSIVE":
        state = "idle threads sleep"
    else:
        state = f"idle threads spin (OMP_WAIT_POLICY={policy or 'unset'})"
    return f"torch threads: {torch.get_num_threads()} ({state})"
