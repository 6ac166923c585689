"""Run a command on a student's code in a separate, limited process, and always get control back.

Isolation, strongest available first (the result says which was in force):

1. **bubblewrap** (``bwrap``): new user, network, PID, IPC and UTS namespaces; the system and Python are
   mounted read-only; the only writable places are the submission's work folder, its evidence folder and
   a private ``/tmp``; the student's code runs as ``nobody``. Nothing else of the host is visible: not
   the kit's repository (solutions, hidden test sources), not other submissions, not the output folder.
2. **unshare --net** plus rlimits: no network, but the file system is the grader's.
3. rlimits only.

Limits in every mode (``setrlimit`` before the command starts): address space, CPU seconds, size of a
written file, open files, processes, no core dumps. Where the v1 ``pids`` and ``memory`` cgroups are
writable (the grader runs as root), the whole process tree is also bounded in count and memory: the
only bound on a fork bomb when the user is root, since the kernel does not apply RLIMIT_NPROC to root.
The command starts its own session; at the wall-clock limit its process group and everything in its
cgroups are killed.
"""
from __future__ import annotations

import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

OUTPUT_CAP = 64 * 1024
SANDBOX_ENV = "MNISTKIT_SANDBOX"  # "bwrap", "unshare" or "none" forces a mode (default: the strongest)


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 300.0
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 256 * 2**20
    open_files: int = 256
    processes: int = 512


@dataclass(frozen=True)
class Mounts:
    """Host folders the sandboxed command may see (bubblewrap mode); everything else is hidden."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()


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
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            hint = " (out of memory or CPU time?)" if name in ("SIGKILL", "SIGXCPU", "SIGSEGV") else ""
            return f"the test process was killed by {name}{hint}"
        return f"the test process exited with code {self.returncode}"


def _user_tasks() -> int:
    """Threads of this user now (RLIMIT_NPROC counts every thread of the real user id, not just ours)."""
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                pass
    return count


class _Cgroups:
    """Per-run cgroups (v1 ``pids`` and ``memory``, where writable): bound the whole process tree, not one
    process, and find every process of the run to kill it, even one that left the process group."""

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, limits: Limits):
        self.dirs: list[Path] = []
        name = f"mnistkit-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for controller, settings in (("pids", {"pids.max": str(limits.processes)}),
                                     ("memory", {"memory.limit_in_bytes": str(limits.memory_bytes)})):
            folder = self.ROOT / controller / name
            try:
                folder.mkdir()
                for key, value in settings.items():
                    (folder / key).write_text(value)
            except OSError:
                if folder.is_dir():
                    folder.rmdir()
                continue
            self.dirs.append(folder)

    def describe(self) -> str:
        kinds = [d.parent.name for d in self.dirs]
        return f" + cgroups ({', '.join(kinds)})" if kinds else ""

    def join(self) -> None:
        """Called in the child before exec: move it into every cgroup."""
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def kill_and_remove(self) -> None:
        for folder in self.dirs:
            for _ in range(50):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            try:
                folder.rmdir()
            except OSError:
                log.warning("could not remove cgroup %s", folder)


def _limit(limits: Limits, cpu_seconds: int, processes: int, cgroups: _Cgroups):
    def apply() -> None:
        cgroups.join()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run([*command, "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.cache
def available_mode() -> str:
    """The strongest isolation that works on this machine (probed once): 'bwrap', 'unshare' or 'none'."""
    forced = os.environ.get(SANDBOX_ENV)
    if forced:
        return forced
    bwrap = shutil.which("bwrap")
    if bwrap and _works([bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--"]):
        return "bwrap"
    unshare = shutil.which("unshare")
    if unshare and (_works([unshare, "--net"]) or _works([unshare, "--net", "--map-root-user"])):
        return "unshare"
    return "none"


def _system_paths() -> list[Path]:
    paths = [Path(p) for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")]
    paths += [Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent]
    return [p for p in dict.fromkeys(paths) if p.exists()]


def _bwrap_prefix(cwd: Path, mounts: Mounts) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--setenv", "TMPDIR", "/tmp"]
    for path in _system_paths():
        args += ["--ro-bind", str(path), str(path)]
    for path in mounts.readable:
        args += ["--ro-bind", str(path), str(path)]
    for path in (cwd, *mounts.writable):
        args += ["--bind", str(path), str(path)]
    return args + ["--chdir", str(cwd), "--"]


def _prefix(mode: str, cwd: Path, mounts: Mounts) -> tuple[list[str], str]:
    if mode == "bwrap":
        return _bwrap_prefix(cwd, mounts), "bubblewrap (no network, read-only system, private /tmp, user nobody) + rlimits"
    if mode == "unshare":
        unshare = shutil.which("unshare") or "unshare"
        prefix = [unshare, "--net"] if _works([unshare, "--net"]) else [unshare, "--net", "--map-root-user"]
        return prefix, "unshare --net (no network; the file system is shared) + rlimits"
    return [], "rlimits only (no bubblewrap or unshare here: network and file system are shared)"


def run_limited(
    command: list[str], *, cwd: Path, env: dict[str, str], limits: Limits, log_file: Path, mounts: Mounts = Mounts()
) -> RunResult:
    """Run ``command`` in the strongest available sandbox with ``limits``; kill it at the wall-clock limit."""
    mode = available_mode()
    prefix, isolation = _prefix(mode, cwd, mounts)
    cpu_seconds = int(limits.wall_seconds * (os.cpu_count() or 1)) + 10
    processes = _user_tasks() + limits.processes
    cgroups = _Cgroups(limits)
    start = time.monotonic()
    try:
        with open(log_file, "wb") as sink:
            process = subprocess.Popen(
                prefix + command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_limit(limits, cpu_seconds, processes, cgroups),
            )
            timed_out = False
            try:
                process.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(process.pid)
                process.wait()
    finally:
        cgroups.kill_and_remove()
    isolation += cgroups.describe()
    seconds = time.monotonic() - start
    returncode = process.returncode
    if mode == "bwrap" and returncode is not None and returncode > 128:
        returncode = -(returncode - 128)  # bwrap reports a child killed by signal N as 128 + N
    with open(log_file, "rb") as handle:
        handle.seek(max(0, log_file.stat().st_size - OUTPUT_CAP))
        output = handle.read().decode("utf-8", errors="replace")
    return RunResult(None if timed_out else returncode, timed_out, seconds, output, isolation)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
