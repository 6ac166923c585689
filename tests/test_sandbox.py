"""The student's process is limited, isolated by its mode, and always killed in time; collect copies plain files only."""
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.config import KIT_ROOT
from autograder.grade import sandbox
from autograder.grade.sandbox import (
    USER_UIDS,
    CollectError,
    Limits,
    Mounts,
    NoSandbox,
    RunResult,
    choose_mode,
    collect,
    interpreter_problem,
    run_limited,
)


def _run(folder: Path, code: str, *, mode: str = "unsafe", mounts: Mounts = Mounts(), **limits) -> RunResult:
    """Run ``python -c code`` in ``folder/work`` (created) under ``mode``; the log goes to ``folder/log``."""
    work = folder / "work"
    work.mkdir(exist_ok=True)
    return run_limited([sys.executable, "-I", "-c", code], cwd=work, env={"PATH": "/usr/bin:/bin"},
                       limits=Limits(**limits), log_file=folder / "log", mode=mode, mounts=mounts)


def _report(result: RunResult) -> dict:
    """The JSON the sandboxed code printed as its last line."""
    assert result.returncode == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def need(mode: str) -> None:
    """Skip unless ``mode`` can run here; bubblewrap must run on CI (``$CI`` set)."""
    if mode == "bwrap" and not sandbox._bwrap_works():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap cannot run here, but CI must test the bwrap sandbox (install bubblewrap and "
                        "allow unprivileged user namespaces)")
        pytest.skip("bubblewrap is not installed or cannot run here (unprivileged user namespaces disabled?)")
    if mode == "user":
        if os.geteuid() != 0:
            pytest.skip("the user mode needs the grader to run as root")
        problem = interpreter_problem(USER_UIDS[0])
        if problem:
            pytest.skip(problem)


@pytest.fixture
def open_folder():
    """A folder others may pass through (0711), like the grader's batch folder in user mode."""
    folder = Path(tempfile.mkdtemp(prefix="mnistkit-sandbox-test-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _bounded_process_count() -> bool:
    """Whether something bounds a fork bomb here: RLIMIT_NPROC (not for root) or a writable pids cgroup."""
    if os.geteuid() != 0:
        return True
    cgroups = sandbox._Cgroups(Limits())
    try:
        return any(d.parent.name == "pids" for d in cgroups.dirs)
    finally:
        cgroups.kill_and_remove()


# ------------------------------------------------------------------------------------------ limits
def test_sandbox_kills_an_endless_loop_at_the_wall_clock_limit(tmp_path):
    result = _run(tmp_path, "import os\nos.fork()\nwhile True: pass", wall_seconds=2)
    assert result.timed_out and result.returncode is None and 2 <= result.seconds < 10
    assert result.describe_end() == "the run was stopped after the 2 s time limit"
    assert result.mode == "unsafe" and result.isolation.startswith("none: --unsafe")


def test_sandbox_limits_memory(tmp_path):
    result = _run(tmp_path, "x = bytearray(3 * 2**30)\nprint('allocated')", memory_bytes=2**30)
    assert not result.timed_out and result.returncode != 0
    assert "MemoryError" in result.output and "allocated" not in result.output


def test_sandbox_limits_written_file_size(tmp_path):
    code = "f = open('big', 'wb')\nfor _ in range(100): f.write(b'x' * 2**20)\n"
    result = _run(tmp_path, code, file_bytes=2**20)
    assert result.returncode != 0 and "File too large" in result.output
    assert (tmp_path / "work" / "big").stat().st_size <= 2**20


def test_sandbox_captures_output_and_exit_code(tmp_path):
    result = _run(tmp_path, "print('hello'); raise SystemExit(3)")
    assert result.returncode == 3 and not result.timed_out and "hello" in result.output
    assert result.describe_end() == "the process exited with code 3"
    assert (tmp_path / "log").read_text().startswith("hello")


def test_sandbox_keeps_only_the_end_of_a_long_output(tmp_path):
    result = _run(tmp_path, "import sys\nsys.stdout.write('x' * 200_000 + 'END')")
    assert len(result.output) == sandbox.OUTPUT_CAP and result.output.endswith("END")


def test_sandbox_describes_a_killed_process():
    result = RunResult(-9, False, 1.0, "", "", "unsafe")
    assert result.describe_end() == "the process was killed by SIGKILL (out of memory or CPU time?)"


def test_sandbox_contains_a_fork_bomb_and_leaves_nothing_behind(tmp_path):
    if not _bounded_process_count():
        pytest.skip("root without a writable pids cgroup: nothing would bound the number of processes")
    code = ("import os, time\nfor _ in range(2000):\n    try:\n        os.fork()\n    except OSError:\n        break\n"
            "open(f'alive-{os.getpid()}', 'w').close()\ntime.sleep(600)\n")
    result = _run(tmp_path, code, wall_seconds=3, processes=64)
    assert result.timed_out
    time.sleep(0.5)
    work = tmp_path / "work"
    survivors = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == work:
                survivors.append(int(proc.name))
        except OSError:
            pass
    assert not survivors
    assert 1 <= len(list(work.glob("alive-*"))) <= 64 + 1


def test_sandbox_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(ValueError, match="unknown sandbox mode 'docker'"):
        _run(tmp_path, "pass", mode="docker")


def test_sandbox_mode_can_be_forced_but_unsafe_needs_consent(monkeypatch):
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "unsafe")
    with pytest.raises(NoSandbox, match="also needs --unsafe"):
        choose_mode()
    assert choose_mode(unsafe=True) == "unsafe"
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "chroot")
    with pytest.raises(NoSandbox, match="is not one of bwrap, user, unsafe"):
        choose_mode(unsafe=True)
    monkeypatch.delenv(sandbox.SANDBOX_ENV)
    expected = "bwrap" if sandbox._bwrap_works() else ("user" if os.geteuid() == 0 else "unsafe")
    assert choose_mode(unsafe=True) == expected


def test_sandbox_mode_named_by_the_caller_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "chroot")
    assert choose_mode(unsafe=True, forced="unsafe") == "unsafe"
    with pytest.raises(NoSandbox, match="--sandbox=unsafe also needs --unsafe"):
        choose_mode(forced="unsafe")
    monkeypatch.setattr(sandbox, "_bwrap_works", lambda: False)
    with pytest.raises(NoSandbox, match="--sandbox=bwrap: bubblewrap is not installed"):
        choose_mode(forced="bwrap")


# ------------------------------------------------------------------------------------------ bwrap
def test_sandbox_bwrap_shows_only_its_mounts(tmp_path):
    need("bwrap")
    (tmp_path / "secret.txt").write_text("hidden tests")
    assert (KIT_ROOT / "solutions").is_dir(), "the kit's solutions, which the sandbox must not show"
    readable, writable = tmp_path / "plan", tmp_path / "out"
    readable.mkdir()
    writable.mkdir()
    (readable / "plan.json").write_text("{}")
    code = f"""
import json, os
def can_write(path):
    try:
        open(path, "w").close()
        return True
    except OSError:
        return False
print(json.dumps({{
    "secret": os.path.exists({str(tmp_path / "secret.txt")!r}),
    "solutions": os.path.exists({str(KIT_ROOT / "solutions")!r}),
    "plan": open({str(readable / "plan.json")!r}).read(),
    "write_plan": can_write({str(readable / "new")!r}),
    "write_out": can_write({str(writable / "result.json")!r}),
    "write_work": can_write("here"),
    "uid": os.getuid(),
}}))
"""
    result = _run(tmp_path, code, mode="bwrap", mounts=Mounts(writable=(writable,), readable=(readable,)))
    assert result.mode == "bwrap" and result.isolation.startswith("bubblewrap")
    report = _report(result)
    assert report == {"secret": False, "solutions": False, "plan": "{}", "write_plan": False, "write_out": True,
                      "write_work": True, "uid": 65534}
    assert (writable / "result.json").is_file() and (tmp_path / "work" / "here").is_file()


def test_sandbox_bwrap_has_no_network(tmp_path):
    need("bwrap")
    code = """
import json, socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    reached = True
except OSError as err:
    reached = False
print(json.dumps({"reached": reached, "interfaces": sorted(name for _, name in socket.if_nameindex())}))
"""
    report = _report(_run(tmp_path, code, mode="bwrap"))
    assert report == {"reached": False, "interfaces": ["lo"]}


def test_sandbox_bwrap_reports_a_signal_as_a_signal(tmp_path):
    need("bwrap")
    result = _run(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", mode="bwrap")
    assert result.returncode == -9 and "SIGKILL" in result.describe_end()


# ------------------------------------------------------------------------------------------ user mode
def test_sandbox_user_mode_runs_as_another_uid_and_cannot_read_a_closed_folder(open_folder):
    need("user")
    secret = open_folder / "secret"
    secret.mkdir(mode=0o700)
    (secret / "answers.txt").write_text("hidden tests")
    (open_folder / "public.txt").write_text("handout")
    (open_folder / "public.txt").chmod(0o644)
    code = f"""
import json, os
def try_(f):
    try:
        f()
        return "ok"
    except OSError as err:
        return type(err).__name__
print(json.dumps({{
    "uid": os.getuid(), "euid": os.geteuid(),
    "read": try_(lambda: open({str(secret / "answers.txt")!r}).read()),
    "list": try_(lambda: os.listdir({str(secret)!r})),
    "public": try_(lambda: open({str(open_folder / "public.txt")!r}).read()),
    "write_work": try_(lambda: open("mine", "w").close()),
}}))
"""
    result = _run(open_folder, code, mode="user")
    report = _report(result)
    assert USER_UIDS[0] <= report["uid"] < USER_UIDS[1] and report["euid"] == report["uid"]
    assert report["read"] == report["list"] == "PermissionError"
    assert report["public"] == report["write_work"] == "ok", "only the closed folder is out of reach"
    assert f"unprivileged uid {report['uid']}" in result.isolation
    assert (open_folder / "work" / "mine").stat().st_uid == report["uid"]
    assert not sandbox.processes_of(report["uid"])


SURVIVOR = """
import os, time
pid = os.fork()
if pid == 0:
    os.setsid()
    with open("heartbeat", "ab", buffering=0) as beat:
        for _ in range(6000):
            beat.write(b".")
            time.sleep(0.1)
    os._exit(0)
while not os.path.exists("heartbeat") or os.path.getsize("heartbeat") < 2:
    time.sleep(0.05)
print("parent done")
"""


@pytest.mark.parametrize("mode", ["user", "bwrap"])
def test_sandbox_kills_a_detached_survivor(open_folder, mode):
    need(mode)
    result = _run(open_folder, SURVIVOR, mode=mode, wall_seconds=60)
    assert result.returncode == 0 and not result.timed_out and result.seconds < 30, result.output
    beat = open_folder / "work" / "heartbeat"
    size = beat.stat().st_size
    time.sleep(1.0)
    assert beat.stat().st_size == size, "a process of the run survived it and keeps writing"


# ------------------------------------------------------------------------------------------ collect
def test_sandbox_collect_copies_plain_files_and_leaves_out_links(tmp_path):
    source, target = tmp_path / "out", tmp_path / "copied"
    (source / "item000").mkdir(parents=True)
    (source / "item000" / "result.json").write_text('{"id": "a"}')
    (source / "finished").write_bytes(b"")
    (tmp_path / "grader-secret").write_text("key")
    (source / "link").symlink_to(tmp_path / "grader-secret")
    (source / "folder-link").symlink_to(tmp_path)
    os.mkfifo(source / "pipe")
    notes = collect(source, target, max_bytes=2**20)
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert copied == ["finished", "item000", "item000/result.json"]
    assert (target / "item000" / "result.json").read_text() == '{"id": "a"}'
    assert sorted(notes) == ["folder-link is not a plain folder: left out", "link is not a plain file: left out",
                             "pipe is not a plain file: left out"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_sandbox_collect_refuses_more_than_max_bytes_or_files(tmp_path):
    source = tmp_path / "out"
    source.mkdir()
    for name in ("a", "b"):
        (source / name).write_bytes(b"x" * 600)
    with pytest.raises(CollectError, match="the probe wrote more than"):
        collect(source, tmp_path / "small", max_bytes=1000)
    with pytest.raises(CollectError, match="the probe wrote more than 1 files"):
        collect(source, tmp_path / "few", max_bytes=2**20, max_files=1)
    assert collect(source, tmp_path / "enough", max_bytes=1200) == []
