"""The student's process is limited and always killed in time."""
import os
import sys
from pathlib import Path

from autograder.grade.sandbox import Limits, run_limited


def _run(tmp_path, code, **limits):
    return run_limited([sys.executable, "-c", code], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                       limits=Limits(**limits), log_file=tmp_path / "log")


def test_sandbox_kills_an_endless_loop_at_the_wall_clock_limit(tmp_path):
    result = _run(tmp_path, "import os\nos.fork()\nwhile True: pass", wall_seconds=2)
    assert result.timed_out and result.seconds < 10
    assert "time limit" in result.describe_end()


def test_sandbox_limits_memory(tmp_path):
    result = _run(tmp_path, "x = bytearray(3 * 2**30)\nprint('allocated')", memory_bytes=2**30)
    assert not result.timed_out and result.returncode != 0 and "MemoryError" in result.output


def test_sandbox_limits_written_file_size(tmp_path):
    code = "f = open('big', 'wb')\nfor _ in range(100): f.write(b'x' * 2**20)\n"
    result = _run(tmp_path, code, file_bytes=2**20)
    assert result.returncode != 0
    assert (tmp_path / "big").stat().st_size <= 2**20


def test_sandbox_captures_output_and_exit_code(tmp_path):
    result = _run(tmp_path, "print('hello'); raise SystemExit(3)")
    assert result.returncode == 3 and "hello" in result.output and "code 3" in result.describe_end()


def test_sandbox_contains_a_fork_bomb_and_leaves_nothing_behind(tmp_path):
    code = ("import os, time\nfor _ in range(2000):\n    try:\n        os.fork()\n    except OSError:\n        break\n"
            "open(f'alive-{os.getpid()}', 'w').close()\ntime.sleep(600)\n")
    result = _run(tmp_path, code, wall_seconds=5, processes=64)
    assert result.timed_out
    import time

    time.sleep(1)
    survivors = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == tmp_path:
                survivors.append(int(proc.name))
        except OSError:
            pass
    assert not survivors
    assert len(list(tmp_path.glob("alive-*"))) <= 64 + 1
