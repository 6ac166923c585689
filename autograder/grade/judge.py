"""The judge's process: the grader's own pytest run of the visible and hidden tests over what the probe recorded.

It runs in a process of the grader's (not in a sandbox: no student code runs there), in a folder that
holds the kit's copies of the handout, ``assignment.toml`` and every test, but none of the student's
files: those it reads as data from the submission folder, and the student's networks and values from
the probe's output (both handed over by environment variables, see :mod:`mnistkit.pytest_plugin`).
Its limits only guard the grader against networks that are too large or too slow. Its folder, command
and environment are :mod:`autograder.testrun`'s.

A judge is forked from the grader's warm parent (:class:`JudgeServer`, which imported torch and pytest
once) when there is one, else started cold; both run the same pytest with the same folder, environment
and limits.
"""
from __future__ import annotations

import itertools
import json
import logging
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).with_name("warm_server.py")


@dataclass
class JudgeRun:
    returncode: int | None
    timed_out: bool
    seconds: float
    output: str


@dataclass
class _Forked:
    """One judge forked by the warm parent: its pid once forked, its exit code once ended."""

    id: str
    pid: int | None = None
    exit: int | None = None
    lost: bool = False  # the warm parent ended before this judge did
    ended: threading.Event = field(default_factory=threading.Event)


class JudgeServer:
    """The judges' warm parent (:mod:`.warm_server`), a process of the grader's started with ``env``.

    :meth:`submit` forks a judge there; a judge whose parent ended is reported ``lost`` (its
    :class:`Judge` then runs cold). One per grader process (:func:`autograder.grade.reuse.judge_server`).
    """

    def __init__(self, env: dict[str, str], *, log_file: Path):
        with open(log_file, "ab") as sink:
            self.process = subprocess.Popen([sys.executable, str(SERVER_SCRIPT)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=sink, env=env, cwd=env["HOME"],
                                            start_new_session=True)
        self.lock = threading.Lock()
        self.jobs: dict[str, _Forked] = {}
        self.ids = itertools.count()
        self.reader = threading.Thread(target=self._read, name="judge-server", daemon=True)
        self.reader.start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self.reader.is_alive()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if not isinstance(message, dict) or "id" not in message:
                log.warning("the judges' warm parent wrote %r: not a reply, ignored", line[:200])
                continue
            with self.lock:
                job = self.jobs.get(message["id"])
                if job is not None and "exit" in message:
                    del self.jobs[message["id"]]
            if job is None:
                continue
            if "pid" in message:
                job.pid = message["pid"]
            if "exit" in message:
                job.exit = message["exit"]
                job.ended.set()
        with self.lock:
            lost, self.jobs = list(self.jobs.values()), {}
        for job in lost:
            job.lost = True
            job.ended.set()

    def _send(self, message: dict) -> bool:
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def submit(self, args: list[str], *, cwd: Path, env: dict[str, str], log_file: Path,
               memory: int) -> _Forked | None:
        """Fork ``python -m pytest ARGS`` there; None when the warm parent is gone."""
        with self.lock:
            if not self.alive:
                return None
            job = _Forked(str(next(self.ids)))
            self.jobs[job.id] = job
            if self._send({"op": "run", "id": job.id, "args": args, "cwd": str(cwd), "env": env,
                           "log": str(log_file), "memory": memory}):
                return job
            del self.jobs[job.id]
            return None

    def kill(self, job: _Forked) -> None:
        with self.lock:
            self._send({"op": "kill", "id": job.id})

    def close(self) -> None:
        """End the warm parent (it kills the judges still running)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Judge:
    """The judge's pytest process: started early (:meth:`start`, it loads torch while the probe runs),
    released by :meth:`release` once the probe's output is in place, awaited by :meth:`finish`.

    ``command`` is ``python -m pytest ARGS``; with a ``server`` the judge is forked from it."""

    def __init__(self, command: list[str], *, cwd: Path, env: dict[str, str], memory_gb: float, log_file: Path,
                 server: JudgeServer | None = None):
        self.command, self.cwd, self.env, self.log_file, self.server = command, cwd, env, log_file, server
        self.limit = int(max(memory_gb, 4.0) * 2**30)
        self.ready = Path(env["MNISTKIT_PROBE_READY"]) if "MNISTKIT_PROBE_READY" in env else None
        self.process: subprocess.Popen | None = None
        self.forked: _Forked | None = None
        self.started = 0.0

    def start(self) -> "Judge":
        self.started = time.monotonic()
        if self.server is not None and self.command[1:3] == ["-m", "pytest"]:
            self.forked = self.server.submit(self.command[3:], cwd=self.cwd, env=self.env, log_file=self.log_file,
                                             memory=self.limit)
            if self.forked is not None:
                return self
        return self._start_cold()

    def _start_cold(self) -> "Judge":
        def bound() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

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
        deadline = time.monotonic() + timeout
        if self.forked is not None:
            returncode, timed_out = self._finish_forked(timeout)
            if not self.forked.lost:
                return self._run(returncode, timed_out)
            log.warning("the judges' warm parent ended; this judge runs again, cold")
            self.forked = None
            self._start_cold()
        timed_out = False
        try:
            self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.process.kill()
            self.process.wait()
        return self._run(None if timed_out else self.process.returncode, timed_out)

    def _finish_forked(self, timeout: float) -> tuple[int | None, bool]:
        if self.forked.ended.wait(timeout):
            return self.forked.exit, False
        self.server.kill(self.forked)
        self.forked.ended.wait(30)
        return None, True

    def _run(self, returncode: int | None, timed_out: bool) -> JudgeRun:
        written = self.log_file.read_bytes() if self.log_file.is_file() else b""
        output = written[-64 * 1024:].decode("utf-8", errors="replace")
        return JudgeRun(returncode, timed_out, time.monotonic() - self.started, output)

    def kill(self) -> None:
        if self.forked is not None and not self.forked.ended.is_set():
            self.server.kill(self.forked)
            self.forked.ended.wait(30)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
