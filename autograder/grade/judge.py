"""The judge: the grader's own pytest run of the visible and hidden tests over what the probe recorded.

It runs in a process of the grader's (not in a sandbox: no student code runs there), in a folder that
holds the kit's copies of the handout, ``assignment.toml`` and every test, but none of the student's
files: those it reads as data from the submission folder, and the student's networks and values from
the probe's output (both handed over by environment variables, see :mod:`mnistkit.pytest_plugin`).
Its limits only guard the grader against networks that are too large or too slow.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import KIT_ROOT, AssignmentConfig
from ..layout import add_tests, copy_handout_files, copy_template

PLUGIN = "autograder.grade.report_plugin"


def build_judge_folder(config: AssignmentConfig, folder: Path) -> None:
    """The handout as released, with the hidden tests added; no student file."""
    folder.mkdir(parents=True, exist_ok=True)
    copy_template(config, folder)
    copy_handout_files(config, folder)
    add_tests(config, folder, hidden=True)


def judge_command(config: AssignmentConfig, *, collect_only: bool = False) -> list[str]:
    command = [
        sys.executable, "-m", "pytest", "tests", "-p", "mnistkit.pytest_plugin", "-p", PLUGIN,
        "-p", "no:cacheprovider", "-o", "addopts=--strict-markers", "-q", "--no-header", "-rN",
        f"--timeout={config.grading.timeout_per_test:g}",
    ]
    return command + (["--collect-only"] if collect_only else [])


def judge_env(*, threads: int, home: Path, **paths: Path | str | None) -> dict[str, str]:
    """A clean environment for the judge: threads pinned, idle threads asleep, the data's locations.

    ``paths`` are ``plan``, ``probe``, ``submission``, ``mnist``, ``report``, ``manifest``, ``ended`` and
    ``ready`` (a file the judge waits for before its first check reads the probe's output).
    """
    names = {"plan": "MNISTKIT_PLAN", "probe": "MNISTKIT_PROBE", "submission": "MNISTKIT_SUBMISSION",
             "mnist": "MNISTKIT_MNIST", "report": "MNISTKIT_REPORT", "manifest": "MNISTKIT_MANIFEST",
             "ended": "MNISTKIT_PROBE_ENDED", "ready": "MNISTKIT_PROBE_READY"}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(KIT_ROOT),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "MNISTKIT_THREADS": str(threads),
        # Idle OpenMP threads sleep instead of spinning: on a busy machine a spinning thread that waits
        # for a descheduled one made torch 10-100x slower (bench: 53 s vs 0.6 s for the same training).
        "OMP_WAIT_POLICY": "PASSIVE",
        "MNISTKIT_MODE": "judge",
    }
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    for key, value in paths.items():
        if value is not None:
            env[names[key]] = str(value)
    return env


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
