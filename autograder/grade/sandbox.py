"""Run a command on a student's code in a separate, limited process, and always get control back.

Limits (``resource.setrlimit`` in the child before it starts): address space, CPU seconds, size of any
written file, open files, no core dumps. The child starts its own session so that a hard kill after the
wall-clock limit takes its whole process group, children included. Where ``unshare`` can give the child
an empty network namespace, it runs without network; the result says which isolation was in force.
"""
from __future__ import annotations

import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OUTPUT_CAP = 64 * 1024


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 300.0
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 256 * 2**20
    open_files: int = 256


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    output: str
    isolation: str

    def describe_end(self) -> str:
        """One line on how the process ended, for the student."""
        if self.timed_out:
            return f"the run was stopped after the {self.seconds:.0f} s time limit"
        if self.returncode is not None and self.returncode < 0:
            name = signal.Signals(-self.returncode).name if -self.returncode in signal.Signals._value2member_map_ else str(-self.returncode)
            hint = " (out of memory or CPU time?)" if name in ("SIGKILL", "SIGXCPU", "SIGSEGV") else ""
            return f"the test process was killed by {name}{hint}"
        return f"the test process exited with code {self.returncode}"


def _limit(limits: Limits, cpu_seconds: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


@functools.cache
def network_prefix() -> tuple[str, ...]:
    """``unshare --net`` (plus ``--map-root-user`` when not root) if it works here, else ``()``; probed once."""
    tool = shutil.which("unshare")
    if not tool:
        return ()
    for prefix in ((tool, "--net"), (tool, "--net", "--map-root-user")):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            pass
    return ()


def run_limited(command: list[str], *, cwd: Path, env: dict[str, str], limits: Limits, log_file: Path) -> RunResult:
    """Run ``command`` with ``limits``; kill its process group at the wall-clock limit."""
    prefix = list(network_prefix())
    isolation = "separate process with rlimits" + (", no network (unshare --net)" if prefix else ", network NOT isolated")
    cpu_seconds = int(limits.wall_seconds * (os.cpu_count() or 1)) + 10
    start = time.monotonic()
    with open(log_file, "wb") as sink:
        process = subprocess.Popen(
            prefix + command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_limit(limits, cpu_seconds),
        )
        timed_out = False
        try:
            process.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(process.pid)
            process.wait()
    seconds = time.monotonic() - start
    with open(log_file, "rb") as handle:
        handle.seek(max(0, log_file.stat().st_size - OUTPUT_CAP))
        output = handle.read().decode("utf-8", errors="replace")
    return RunResult(None if timed_out else process.returncode, timed_out, seconds, output, isolation)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
