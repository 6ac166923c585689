"""bench/container.py: the container the Gradescope bench grades in really holds its limits."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from container import Container, ContainerUnavailable  # noqa: E402

ALLOCATE = "import sys; block = bytearray(int(sys.argv[1]) * 2**20); block[::4096] = b'x' * len(block[::4096])"


def _box(**limits) -> Container:
    box = Container(**limits)
    try:
        return box.__enter__()
    except ContainerUnavailable as err:  # the bench needs root on Linux; it says so and skips the section too
        pytest.skip(f"no cgroup can be made here: {err}")


def test_container_kills_what_exceeds_its_memory():
    box = _box(memory_mb=64, cpus=1.0)
    try:
        small = box.run([sys.executable, "-c", ALLOCATE, "8"], dict(os.environ))
        large = box.run([sys.executable, "-c", ALLOCATE, "256"], dict(os.environ))
    finally:
        box.__exit__()
    assert small.returncode == 0 and small.oom_kills == 0
    assert large.returncode != 0 and large.oom_kills >= 1, large


def test_container_limits_the_cpu():
    spin = "import time; end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    box = _box(memory_mb=256, cpus=0.25)
    try:
        outcome = box.run([sys.executable, "-c", spin], dict(os.environ))
    finally:
        box.__exit__()
    assert outcome.returncode == 0
    assert outcome.seconds > 1.2, f"half a CPU-second at a quarter of a CPU took only {outcome.seconds:.2f} s"
