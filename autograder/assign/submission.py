"""Play the student: build a submission zip from a released handout, the way a student would.

``reference``: put the reference solution over the stubs, run the assignment's reference commands (for
example ``python mnist.py`` to train and save the weights), then ``python -m mnistkit.submit``.
``stub``: submit the untouched handout. The kit's own tests and ``demo`` grade both.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..config import AssignmentConfig

log = logging.getLogger(__name__)


class SubmissionBuildError(RuntimeError):
    """A reference command or the submit command failed."""


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> None:
    if timeout <= 0:
        raise SubmissionBuildError(f"{' '.join(command)} was not run in {cwd}: the reference commands used up "
                                   "their time limit ([reference] timeout of assignment.toml)")
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise SubmissionBuildError(f"{' '.join(command)} did not finish in {cwd} within the {timeout:.0f} s left of "
                                   "the reference commands' time limit ([reference] timeout of assignment.toml)") from err
    if done.returncode != 0:
        raise SubmissionBuildError(f"{' '.join(command)} failed in {cwd}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def build_submission(
    config: AssignmentConfig, handout_zip: Path, out_zip: Path, *, kind: str, data_dir: str | Path | None = None
) -> Path:
    """Unzip ``handout_zip``, fill it in (``kind='reference'``) or not (``'stub'``), submit to ``out_zip``."""
    if kind not in ("reference", "stub"):
        raise ValueError(f"kind must be 'reference' or 'stub', got {kind!r}")
    # One torch thread: these runs are small, and often run beside other work on few cores, where a
    # second thread spin-waiting for a busy core makes torch several times slower.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("MNISTKIT_REFERENCE_THREADS", "1"),
           "OMP_WAIT_POLICY": "PASSIVE"}
    if data_dir is not None:
        env["MNIST_DATA_DIR"] = str(Path(data_dir).resolve())
    with tempfile.TemporaryDirectory(prefix=f"{kind}-{config.name}-") as tmp:
        with zipfile.ZipFile(handout_zip) as archive:
            archive.extractall(tmp)
        handout = Path(tmp) / config.name
        if kind == "reference":
            for name in config.handout.stubs:
                shutil.copy2(config.solution_dir / name, handout / name)
            deadline = time.monotonic() + config.reference.timeout  # for all the commands together
            for command in config.reference.commands:
                command = [sys.executable if part == "python" else part for part in command]
                log.info("%s: running %s", config.name, " ".join(command))
                _run(command, cwd=handout, env=env, timeout=deadline - time.monotonic())
        out_zip.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "mnistkit.submit", "--output", str(out_zip.resolve())],
             cwd=handout, env=env, timeout=120)
    return out_zip
