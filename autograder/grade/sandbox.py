"""Run the probe on a student's code in a separate, limited process, and always get control back.

Isolation, strongest available first (the results record which was in force):

1. **bwrap** (bubblewrap): new user, network, PID, IPC and UTS namespaces; the system and Python are
   mounted read-only; the probe sees its plan (read-only), its work folder and its output folder, and a
   private ``/tmp``. Nothing else of the host is visible: not the kit (solutions, hidden tests), not the
   other submissions, not the output folder, not the grader's key. When the probe's first process ends,
   the kernel ends every process of its PID namespace.
2. **user** (the grader is root but bubblewrap cannot run: Docker, Gradescope's container): the probe
   runs as a fresh unprivileged uid that owns only its work and output folders, in a private network
   namespace where the kernel allows one. The grader's own folders are mode 0700 and the kit's secret
   folders are closed to others (:func:`protect`), so that uid can read neither. When the run ends,
   every process of that uid is killed (``kill(-1)`` from a process of that uid, until none is left) and
   files it left in the shared temporary folders are removed.
3. **unsafe** (``--unsafe``, for grading one's own code): the probe runs as the grader's user with
   limits only. Without bubblewrap and without root the grader refuses to run (:class:`NoSandbox`)
   unless told so.

Limits in every mode (``setrlimit`` before the probe starts): address space, CPU seconds, size of a
written file, open files, processes, no core dumps; where the v1 ``pids`` and ``memory`` cgroups are
writable, the whole process tree is also bounded in count and memory. At the wall-clock limit the
process group and everything in the cgroups are killed.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OUTPUT_CAP = 64 * 1024
SANDBOX_ENV = "MNISTKIT_SANDBOX"  # "bwrap", "user" or "unsafe" forces a mode (default: the strongest)
MODES = ("bwrap", "user", "unsafe")
DESCRIPTIONS = {
    "bwrap": "bubblewrap (no network, read-only system, private /tmp, only its own folders visible) + rlimits",
    "user": "unprivileged uid {uid} (own folders only, kit and grader folders closed){network} + rlimits",
    "unsafe": "none: --unsafe (the grader's own user, network and file system) + rlimits",
}
USER_UIDS = (2_000_000, 3_000_000)  # the range fresh uids are drawn from in user mode
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
CLONE_NEWNET = 0x40000000


class NoSandbox(RuntimeError):
    """No isolation is possible here and ``--unsafe`` was not given; the message says what to do."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 300.0
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 256 * 2**20
    open_files: int = 256
    processes: int = 512


@dataclass(frozen=True)
class Mounts:
    """Host folders the sandboxed command may use: read-only ones, and writable ones it then owns."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    output: str
    isolation: str
    mode: str

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
            return f"the process was killed by {name}{hint}"
        return f"the process exited with code {self.returncode}"


# ------------------------------------------------------------------------------------------- choosing
def _works(command: list[str]) -> bool:
    try:
        return subprocess.run([*command, "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.cache
def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    return bool(bwrap) and _works([bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--"])


def choose_mode(*, unsafe: bool = False, forced: str | None = None) -> str:
    """The strongest isolation that works here: ``bwrap``, else ``user`` (root), else ``unsafe`` if allowed.

    ``forced`` (else ``$MNISTKIT_SANDBOX``) names the mode instead (``unsafe`` only with ``unsafe=True``).

    Raises:
        NoSandbox: nothing isolates here and ``unsafe`` is false, or the forced mode cannot run here.
    """
    source = "--sandbox" if forced else SANDBOX_ENV
    forced = forced or os.environ.get(SANDBOX_ENV)
    if forced:
        if forced not in MODES:
            raise NoSandbox(f"{source}={forced!r} is not one of {', '.join(MODES)}")
        if forced == "unsafe" and not unsafe:
            raise NoSandbox(f"{source}=unsafe also needs --unsafe")
        if forced == "bwrap" and not _bwrap_works():
            raise NoSandbox(f"{source}=bwrap: bubblewrap is not installed or cannot run here (apt install bubblewrap)")
        if forced == "user" and os.geteuid() != 0:
            raise NoSandbox("the user mode needs the grader to run as root (it starts the probe as another uid)")
        return forced
    if _bwrap_works():
        return "bwrap"
    if os.geteuid() == 0:
        return "user"
    if unsafe:
        return "unsafe"
    raise NoSandbox(
        "no sandbox for student code here: bubblewrap is not installed (or cannot run) and the grader is not "
        "root. Install it (apt install bubblewrap), or grade as root, where student code runs as an "
        "unprivileged user. To grade without isolation, on code you trust, pass --unsafe.")


def interpreter_problem(uid: int) -> str | None:
    """Why a process of ``uid`` could not run this Python (a folder on the way that others cannot enter)."""
    paths = [Path(sys.executable).resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    for path in paths:
        for folder in [*reversed(path.parents), path]:
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
                return (f"{folder} is closed to other users (mode {stat.filemode(mode)}), so uid {uid} cannot run "
                        f"{sys.executable}: allow traversal with `chmod o+x {folder}`, or install bubblewrap")
    return None


def protect(paths) -> list[str]:
    """Close ``paths`` to other users (``chmod o-rwx``), for the user mode; returns the ones changed."""
    changed = []
    for path in paths:
        path = Path(path)
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & 0o007:
            path.chmod(stat.S_IMODE(mode) & ~0o007)
            changed.append(str(path))
    if changed:
        log.info("closed to other users for the user-mode sandbox: %s", ", ".join(changed))
    return changed


# ------------------------------------------------------------------------------------------- cgroups
class _Cgroups:
    """Per-run cgroups (v1 ``pids`` and ``memory``, where writable): bound the whole process tree, not one
    process, and find every process of the run to kill it, even one that left the process group."""

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, limits: Limits):
        self.dirs: list[Path] = []
        self.sweep()
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

    @classmethod
    def sweep(cls) -> None:
        """Remove the empty cgroups of graders that were killed before they could remove their own."""
        for controller in ("pids", "memory"):
            for folder in (cls.ROOT / controller).glob("mnistkit-*"):
                owner = folder.name.split("-")[1]
                if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                    try:
                        folder.rmdir()
                    except OSError:
                        pass

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


# ------------------------------------------------------------------------------------------- user mode
def fresh_uid() -> int:
    """A uid in :data:`USER_UIDS` that no process uses now (so one run never meets another's leftovers)."""
    for _ in range(100):
        uid = secrets.randbelow(USER_UIDS[1] - USER_UIDS[0]) + USER_UIDS[0]
        if not processes_of(uid):
            return uid
    raise RuntimeError("no free uid for the sandbox")


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid``: a child that becomes ``uid`` sends SIGKILL to all it may signal."""
    for _ in range(100):
        if not processes_of(uid):
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.02)
    log.warning("processes of uid %d survived: %s", uid, processes_of(uid))


def remove_files_of(uid: int, roots=SHARED_TMP, *, keep=()) -> None:
    """Delete what ``uid`` left in the shared temporary folders, except under ``keep`` (the run's own folders)."""
    kept = tuple(str(Path(k).resolve()) for k in keep)
    for root in roots:
        for folder, dirs, files in os.walk(root, topdown=True):
            dirs[:] = [d for d in dirs if not os.path.join(folder, d).startswith(kept)]
            for name in [*files, *dirs]:
                path = os.path.join(folder, name)
                try:
                    if os.lstat(path).st_uid == uid:
                        if os.path.isdir(path) and not os.path.islink(path):
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            os.unlink(path)
                except OSError:
                    pass


def _own(paths, uid: int) -> None:
    for top in paths:
        for folder, dirs, files in os.walk(top):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, uid, uid)


def _unshare_network() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


@functools.cache
def _network_isolation_works() -> bool:
    """Whether a child of this (root) process can get a network namespace of its own."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if _unshare_network() else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


# ------------------------------------------------------------------------------------------- running
def _limit(limits: Limits, cpu_seconds: int, processes: int, cgroups: _Cgroups, uid: int | None):
    def apply() -> None:
        cgroups.join()
        if uid is not None:
            _unshare_network()  # best effort; recorded by the parent
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _system_paths() -> list[Path]:
    """What the probe needs to run Python: the system, the interpreter, and every package folder in use."""
    paths = [Path(p) for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")]
    paths += [Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent]
    paths += [Path(p) for p in sys.path if p and Path(p).name in ("site-packages", "dist-packages")]
    return [p for p in dict.fromkeys(paths) if p.exists()]


def _bwrap_prefix(cwd: Path, mounts: Mounts) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--setenv", "TMPDIR", "/tmp", "--setenv", "HOME", "/tmp"]
    for path in _system_paths():
        args += ["--ro-bind", str(path), str(path)]
    for path in mounts.readable:
        args += ["--ro-bind", str(path), str(path)]
    for path in (cwd, *mounts.writable):
        args += ["--bind", str(path), str(path)]
    return args + ["--chdir", str(cwd), "--"]


def run_limited(
    command: list[str], *, cwd: Path, env: dict[str, str], limits: Limits, log_file: Path, mode: str,
    mounts: Mounts = Mounts(),
) -> RunResult:
    """Run ``command`` isolated by ``mode`` (:func:`choose_mode`) with ``limits``; kill it at the wall-clock limit.

    In ``user`` mode ``cwd`` and the writable mounts are handed to a fresh uid for the run; afterwards
    they belong to that (dead) uid, and the caller copies out what it needs (:func:`collect`).
    """
    if mode not in MODES:
        raise ValueError(f"unknown sandbox mode {mode!r}")
    prefix, uid, env = [], None, dict(env)
    if mode == "bwrap":
        prefix = _bwrap_prefix(cwd, mounts)
        isolation = DESCRIPTIONS["bwrap"]
    elif mode == "user":
        uid = fresh_uid()
        home = cwd / ".home"
        home.mkdir(exist_ok=True)
        env.update({"HOME": str(home), "TMPDIR": str(home)})
        _own([cwd, *mounts.writable], uid)
        network = "" if _network_isolation_works() else "; the network is shared (no network namespace here)"
        isolation = DESCRIPTIONS["user"].format(uid=uid, network=network or ", no network")
    else:
        isolation = DESCRIPTIONS["unsafe"]
    cpu_seconds = int(limits.wall_seconds * (os.cpu_count() or 1)) + 10
    processes = limits.processes if uid is not None else _user_tasks() + limits.processes
    cgroups = _Cgroups(limits)
    start = time.monotonic()
    try:
        with open(log_file, "wb") as sink:
            process = subprocess.Popen(
                prefix + command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_limit(limits, cpu_seconds, processes, cgroups, uid),
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
        if uid is not None:
            kill_uid(uid)
            remove_files_of(uid, keep=(cwd, *mounts.writable))
    isolation += cgroups.describe()
    seconds = time.monotonic() - start
    returncode = process.returncode
    if mode == "bwrap" and returncode is not None and returncode > 128:
        returncode = -(returncode - 128)  # bwrap reports a child killed by signal N as 128 + N
    with open(log_file, "rb") as handle:
        handle.seek(max(0, log_file.stat().st_size - OUTPUT_CAP))
        output = handle.read().decode("utf-8", errors="replace")
    return RunResult(None if timed_out else returncode, timed_out, seconds, output, isolation, mode)


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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CollectError(ValueError):
    """The sandbox's output holds something other than plain files and folders, or too much."""


def collect(source: Path, target: Path, *, max_bytes: int, max_files: int = 4000) -> list[str]:
    """Copy the regular files and folders of ``source`` into a new ``target`` owned by the grader.

    Symbolic links, devices, sockets and the like are left out (and named in the returned notes), and
    files are opened without following links, so nothing the probe wrote can make the grader read a
    file of its choosing. Beyond ``max_bytes`` in all or ``max_files`` entries, CollectError.
    """
    notes, total, count = [], 0, 0
    target.mkdir(mode=0o700, parents=True)
    for folder, dirs, files in os.walk(source, followlinks=False):
        relative = Path(folder).relative_to(source)
        for name in sorted(dirs):
            path = Path(folder) / name
            if stat.S_ISDIR(os.lstat(path).st_mode):
                (target / relative / name).mkdir(mode=0o700)
            else:
                notes.append(f"{relative / name} is not a plain folder: left out")
        for name in sorted(files):
            count += 1
            if count > max_files:
                raise CollectError(f"the probe wrote more than {max_files} files")
            path = Path(folder) / name
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                notes.append(f"{relative / name} is not a plain file: left out")
                continue
            total += info.st_size
            if total > max_bytes:
                raise CollectError(f"the probe wrote more than {max_bytes / 2**20:.0f} MB")
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle, open(target / relative / name, "wb") as sink:
                shutil.copyfileobj(handle, sink)
    return notes
