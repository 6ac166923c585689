"""The judges' warm parent: a process of the grader's that imports torch and pytest once, then forks one
judge per submission.

A judge started cold spends about 3 s of CPU importing torch, ``torch.export``, numpy and pytest before
it checks anything; a batch pays that once per submission. This process pays it once per grader
process. It runs no student code: like every judge it only reads the probe's recorded data. It is run
as a script (``python warm_server.py``), never imported, so that it holds none of the kit's modules: a
judge imports ``mnistkit`` from its own folder, exactly as a cold one does.

Protocol (JSON lines): requests on stdin, ``{"op": "run", "id", "args", "cwd", "env", "log", "memory"}``
or ``{"op": "kill", "id"}``; replies on stdout, ``{"id", "pid"}`` once a judge is forked and
``{"id", "exit"}`` once it has ended (the exit code, or minus the signal that ended it). When stdin
closes (the grader ended) it kills the judges still running and exits; a judge whose parent died is
killed by the kernel (``PR_SET_PDEATHSIG``).

A judge is ``python -m pytest ARGS`` in a session of its own, in ``cwd``, with exactly ``env``, its
output in ``log``, its address space capped at ``memory`` bytes, the way :class:`judge.Judge` starts one.
"""
import ctypes
import gc
import importlib
import json
import os
import resource
import select
import signal
import sys
import traceback

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
# What every judge imports (the checks, the exported graphs, pytest); nothing of the kit's own
PRELOAD = ("numpy", "torch", "torch.fx", "torch.export", "pytest", "tqdm")


def run_judge(request: dict, keep_closed: list[int], parent: int) -> None:
    """In the forked child: become the judge that ``request`` describes; never returns."""
    code = 3
    try:
        for fd in keep_closed:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with its parent
        if os.getppid() != parent:
            os._exit(3)
        resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # as `python -m pytest` started there
        sys.argv = ["pytest", *request["args"]]
        if "torch" in sys.modules and os.environ.get("OMP_NUM_THREADS", "").isdigit():  # read at torch's load
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        import pytest

        code = int(pytest.main(request["args"]))
    except BaseException:  # noqa: BLE001 - whatever happened, it ends here with its trace in the log
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)  # the grader reads replies only: what prints goes nowhere
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # What was imported moves to the collector's permanent generation: a judge's garbage collections
    # (pytest runs some at its end) no longer walk torch's objects, nor copy the pages that hold them.
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    server_pid = os.getpid()
    running: dict[int, str] = {}  # pid -> request id
    pending = b""

    def reply(**message) -> None:
        replies.write(json.dumps(message) + "\n")

    def reap() -> None:
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            reply(id=running.pop(pid), exit=os.waitstatus_to_exitcode(status))

    def handle(request: dict) -> None:
        if request["op"] == "run":
            pid = os.fork()
            if pid == 0:
                run_judge(request, [replies.fileno(), wake_read, wake_write], server_pid)
            running[pid] = request["id"]
            reply(id=request["id"], pid=pid)
        elif request["op"] == "kill":
            for pid, job in running.items():
                if job == request["id"]:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    while True:
        ready, _, _ = select.select([0, wake_read], [], [])
        if wake_read in ready:
            while True:
                try:
                    if not os.read(wake_read, 4096):
                        break
                except BlockingIOError:
                    break
        if 0 in ready:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                handle(json.loads(line))
        reap()
    for pid in list(running):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while running:
        pid, _ = os.waitpid(-1, 0)
        running.pop(pid, None)


if __name__ == "__main__":
    serve()
