"""A judge forked from the warm parent (autograder/grade/warm_server.py) runs as a cold one would: same folder,
environment, limits, threads and exit code; it is killed at its time limit; it runs cold if the parent ended."""
import os
import sys
import time
from pathlib import Path

import pytest

from autograder.grade.judge import Judge, JudgeServer
from autograder.testrun import judge_env

CHECKS = '''
import os, resource, sys

def test_sees_its_folder_and_environment():
    assert os.getcwd() == os.environ["WANT_CWD"]
    assert os.getcwd() in sys.path  # as `python -m pytest` started there
    assert os.environ.get("FROM_GRADER") is None
    print("limit", resource.getrlimit(resource.RLIMIT_AS)[0], "session", os.getsid(0) == os.getpid())

def test_threads_as_asked():
    import torch
    print("threads", torch.get_num_threads())

def test_can_fail():
    assert os.environ.get("FAIL") != "1", "failed as asked"

def test_can_hang():
    if os.environ.get("HANG") == "1":
        import time
        time.sleep(600)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("server-home")
    os.environ["FROM_GRADER"] = "1"  # the grader's own environment never reaches a judge
    try:
        warm = JudgeServer(judge_env(threads=1, home=home), log_file=home / "server.log")
    finally:
        del os.environ["FROM_GRADER"]
    yield warm
    warm.close()


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir(parents=True)
    (tmp_path / "tests" / "test_checks.py").write_text(CHECKS)
    return tmp_path


def _judge(folder: Path, server, log_name: str, **extra) -> Judge:
    command = [sys.executable, "-m", "pytest", "tests", "-q", "-s", "-p", "no:cacheprovider", "-p", "pytest_timeout"]
    env = {**judge_env(threads=2, home=folder), "WANT_CWD": str(folder), **extra}
    return Judge(command, cwd=folder, env=env, memory_gb=5, log_file=folder / log_name, server=server)


def test_judge_forked_runs_as_a_cold_one(server, tmp_path):
    folder = _folder(tmp_path)
    runs = {}
    for kind, parent in (("cold", None), ("warm", server)):
        judge = _judge(folder, parent, f"{kind}.log", FAIL="1").start()
        assert (judge.forked is not None) == (kind == "warm")
        runs[kind] = judge.finish(timeout=120)
    for run in runs.values():
        assert run.returncode == 1 and not run.timed_out
        assert "1 failed, 3 passed" in run.output and "failed as asked" in run.output
        assert f"limit {5 * 2**30} session True" in run.output
        assert "threads 2" in run.output


def test_judge_forked_passes_with_exit_code_zero(server, tmp_path):
    run = _judge(_folder(tmp_path), server, "warm.log").start().finish(timeout=120)
    assert run.returncode == 0 and "4 passed" in run.output


def test_judge_forked_is_killed_at_its_time_limit(server, tmp_path):
    judge = _judge(_folder(tmp_path), server, "warm.log", HANG="1").start()
    run = judge.finish(timeout=8)
    assert run.timed_out and run.returncode is None and run.seconds < 60
    assert judge.forked.ended.is_set() and judge.forked.exit == -9


def test_judge_runs_cold_when_the_warm_parent_ended(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    warm = JudgeServer(judge_env(threads=1, home=home), log_file=home / "server.log")
    judge = _judge(_folder(tmp_path), warm, "warm.log", HANG="1").start()
    time.sleep(1)
    warm.process.kill()
    pid = judge.forked.pid
    run = judge.finish(timeout=8)  # lost, then run again cold: that one hangs too, and is killed
    assert run.timed_out and judge.process is not None and judge.process.returncode is not None
    assert not _running(pid)  # the forked one died with its parent
    assert _judge(_folder(tmp_path / "again"), warm, "late.log").start().forked is None  # cold from the start


def test_judge_server_kills_its_judges_when_the_grader_closes_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    warm = JudgeServer(judge_env(threads=1, home=home), log_file=home / "server.log")
    judge = _judge(_folder(tmp_path), warm, "warm.log", HANG="1").start()
    deadline = time.monotonic() + 60
    while judge.forked.pid is None and time.monotonic() < deadline:
        time.sleep(0.1)
    warm.close()
    assert warm.process.returncode == 0 and not _running(judge.forked.pid)
