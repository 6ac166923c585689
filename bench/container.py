"""A command run under a container's limits, as Gradescope runs its autograder: a memory cgroup (no swap)
and a CPU quota, made with the kernel's cgroups (v2, or v1's memory and cpu controllers) as root.

    with Container(memory_mb=768, cpus=0.5) as box:
        outcome = box.run(command, env)   # wall seconds, exit code, peak memory charged, OOM kills

The peak is what the kernel charged to the cgroup (anonymous memory and the page cache it read), the
figure a container's limit is checked against; libraries already in the page cache were charged to
whoever read them first, so the caches are dropped first where root may.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass
class Outcome:
    seconds: float
    returncode: int
    peak_bytes: int
    oom_kills: int


class ContainerUnavailable(RuntimeError):
    """No cgroup this process may create (not root, or no memory/cpu controller)."""


def _read_int(path: Path, key: str | None = None) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    if key is None:
        return int(text.split()[0])
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class Container:
    def __init__(self, *, memory_mb: int, cpus: float):
        self.memory = memory_mb * 2**20
        self.quota = int(cpus * 100_000)
        self.name = f"mnistkit-bench-{uuid.uuid4().hex[:8]}"
        self.folders: list[Path] = []

    def __enter__(self) -> "Container":
        try:
            if (ROOT / "cgroup.controllers").is_file():  # v2: one folder, both controllers
                (ROOT / "cgroup.subtree_control").write_text("+memory +cpu")
                folder = ROOT / self.name
                folder.mkdir()
                self.folders = [folder]
                (folder / "memory.max").write_text(str(self.memory))
                (folder / "memory.swap.max").write_text("0")
                (folder / "cpu.max").write_text(f"{self.quota} 100000")
            else:  # v1: a folder per controller
                memory, cpu = ROOT / "memory" / self.name, ROOT / "cpu" / self.name
                memory.mkdir()
                self.folders = [memory]
                cpu.mkdir()
                self.folders.append(cpu)
                (memory / "memory.limit_in_bytes").write_text(str(self.memory))
                (cpu / "cpu.cfs_period_us").write_text("100000")
                (cpu / "cpu.cfs_quota_us").write_text(str(self.quota))
        except OSError as err:
            self.__exit__()
            raise ContainerUnavailable(f"cannot make a cgroup under {ROOT}: {err}") from err
        return self

    def __exit__(self, *exc) -> None:
        for folder in reversed(self.folders):
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)  # its last processes are still exiting
        self.folders = []

    def _peak(self) -> tuple[int, int]:
        folder = self.folders[0]
        if folder.parent == ROOT:
            return _read_int(folder / "memory.peak"), _read_int(folder / "memory.events", "oom_kill")
        return _read_int(folder / "memory.max_usage_in_bytes"), _read_int(folder / "memory.oom_control", "oom_kill")

    def run(self, command: list[str], env: dict) -> Outcome:
        """Run ``command`` inside the cgroups (it joins them before it starts) and wait for it."""
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3")
        except OSError:
            pass
        procs = [str(folder / "cgroup.procs") for folder in self.folders]

        def join() -> None:
            for path in procs:
                with open(path, "w") as handle:
                    handle.write(str(os.getpid()))

        start = time.perf_counter()
        done = subprocess.run(command, env=env, preexec_fn=join, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak, kills = self._peak()
        return Outcome(seconds, done.returncode, peak, kills)
