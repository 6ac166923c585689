"""How the student's process is started: its command line and its (minimal) environment."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..config import AssignmentConfig

PLUGIN_NAME = "_mnistkit_report"
_PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "run" / "report_plugin.py"


def install_plugin(folder: Path) -> Path:
    """Copy the report plugin into ``folder`` (outside the workspace) and return that folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_PLUGIN_SOURCE, folder / f"{PLUGIN_NAME}.py")
    return folder


def harness_env(private: Path, *, threads: int) -> dict[str, str]:
    """A clean environment: no grader secrets, the plugin on the path, threads pinned."""
    plugin_dir = install_plugin(private / "harness")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(plugin_dir),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(threads),
        # Idle OpenMP threads sleep instead of spinning: on a busy machine a spinning thread that waits
        # for a descheduled one made torch 10-100x slower (bench: 53 s vs 0.6 s for the same training).
        "OMP_WAIT_POLICY": "PASSIVE",
        "MKL_NUM_THREADS": str(threads),
        "MNISTKIT_THREADS": str(threads),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    if not env["CUDA_VISIBLE_DEVICES"]:
        del env["CUDA_VISIBLE_DEVICES"]
    return env


def pytest_command(config: AssignmentConfig, *, collect_only: bool = False) -> list[str]:
    command = [
        sys.executable, "-m", "pytest", "tests", "-p", PLUGIN_NAME, "-p", "no:cacheprovider",
        "-o", "addopts=--strict-markers", "-q", "--no-header", "-rN",
        f"--timeout={config.grading.timeout_per_test:g}",
    ]
    if collect_only:
        command.append("--collect-only")
    return command
