"""The judge's process: the grader's own pytest run of the visible and hidden tests over what the probe recorded.

It runs in a process of the grader's (not in a sandbox: no student code runs there), in a folder that
holds the kit's copies of the handout, ``assignment.toml`` and every test, but none of the student's
files: those it reads as data from the submission folder, and the student's networks and values from
the probe's output (both handed over by environment variables, see :mod:`mnistkit.pytest_plugin`).
Its limits only guard the grader against networks that are too large or too slow. Its folder, command
and environment are :mod:`autograder.testrun`'s.
"""
from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class JudgeRun:
    returncode: int | None
    timed_out: bool
    seconds: float
    output: str


class Judge:
    """The judge's pytest process: started early (:meth:`start`, it loads torch while the probe runs),
    released by :meth:`release` once the probe's output is in place, awaited by :meth:`finish`."""

    def __init__(self, command: list[str], *, cwd: Path, env: dict[str, str], memory_gb: float, log_file: Path):
        self.command, self.cwd, self.env, self.log_file = command, cwd, env, log_file
        self.limit = int(max(memory_gb, 4.0) * 2**30)
        self.ready = Path(env["MNISTKIT_PROBE_READY"]) if "MNISTKIT_PROBE_READY" in env else None
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> "Judge":
        def bound() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        self.started = time.monotonic()
        with open(self.log_file, "wb") as sink:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=bound)
        return self

    def release(self, ended: str = "") -> None:
        """Let the checks begin; ``ended`` says how the probe ended when it did not finish normally."""
        if self.ready is not None:
            partial = self.ready.with_name(self.ready.name + ".part")
            partial.write_text(ended, encoding="utf-8")
            partial.replace(self.ready)

    def finish(self, timeout: float) -> JudgeRun:
        """Wait for the checks (at most ``timeout`` seconds from :meth:`release`); kill the judge after that."""
        timed_out = False
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.process.kill()
            self.process.wait()
        output = self.log_file.read_bytes()[-64 * 1024:].decode("utf-8", errors="replace")
        return JudgeRun(None if timed_out else self.process.returncode, timed_out,
                        time.monotonic() - self.started, output)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
