"""How the kit's tests are run by the grader's own pytest (the judge): its folder, command and environment,
and the list of graded tests with their points (collected once per assignment, no submission needed).

Neutral ground: releasing (the nbgrader course's points, the handout README's table) and grading both
use it, and neither imports the other.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import KIT_ROOT, AssignmentConfig
from .layout import build_judge_folder

PLUGIN = "autograder.report_plugin"


def judge_command(config: AssignmentConfig, *, collect_only: bool = False) -> list[str]:
    """The judge's pytest: only the plugins it needs (:func:`judge_env` turns off the installed ones'
    loading, which cost each judge about 2 s of CPU: hypothesis, anyio, platformdirs). Without pytest's
    unraisable-exception report, whose garbage collections walk every object torch made."""
    command = [
        sys.executable, "-m", "pytest", "tests", "-p", "pytest_timeout", "-p", "mnistkit.pytest_plugin", "-p", PLUGIN,
        "-p", "no:cacheprovider", "-p", "no:unraisableexception", "-o", "addopts=--strict-markers",
        "-q", "--no-header", "-rN",
        f"--timeout={config.grading.timeout_per_test:g}",
    ]
    return command + (["--collect-only"] if collect_only else [])


def judge_env(*, threads: int, home: Path, **paths: Path | str | None) -> dict[str, str]:
    """A clean environment for the judge: threads pinned, idle threads asleep, the data's locations.

    ``paths`` are ``plan``, ``probe``, ``submission``, ``mnist``, ``report``, ``manifest``, ``ended``,
    ``ready`` (a file the judge waits for before its first check reads the probe's output) and
    ``train_cache`` (the batch's folder of trained predictions, :func:`mnistkit.checks.trained_predictions`).
    """
    names = {"plan": "MNISTKIT_PLAN", "probe": "MNISTKIT_PROBE", "submission": "MNISTKIT_SUBMISSION",
             "mnist": "MNISTKIT_MNIST", "report": "MNISTKIT_REPORT", "manifest": "MNISTKIT_MANIFEST",
             "ended": "MNISTKIT_PROBE_ENDED", "ready": "MNISTKIT_PROBE_READY", "train_cache": "MNISTKIT_TRAIN_CACHE"}
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
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # judge_command names the plugins it loads
    }
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    for key, value in paths.items():
        if value is not None:
            env[names[key]] = str(value)
    return env


@dataclass(frozen=True)
class TestSpec:
    __test__ = False  # not a pytest test class

    nodeid: str
    file: str
    function: str
    title: str
    points: float
    accuracy: str | None
    gpu: bool
    hidden: bool
    bonus: bool = False

    @property
    def max_score(self) -> float:
        """Points in the maximum: a bonus test's points count only when earned."""
        return 0.0 if self.bonus else self.points


class ManifestError(RuntimeError):
    """The kit's own tests could not be collected: a kit bug, not a submission problem."""


def collect_manifest(config: AssignmentConfig) -> list[TestSpec]:
    hidden_files = {p.name for p in config.hidden_tests()}
    with tempfile.TemporaryDirectory(prefix=f"manifest-{config.name}-") as tmp:
        folder = Path(tmp) / "judge"
        build_judge_folder(config, folder)
        manifest = Path(tmp) / "manifest.jsonl"
        env = judge_env(threads=1, home=Path(tmp), manifest=manifest)
        done = subprocess.run(judge_command(config, collect_only=True), cwd=folder, env=env, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0 or not manifest.is_file():
            raise ManifestError(f"collecting the tests of {config.name} failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return [TestSpec(**row, hidden=row["file"] in hidden_files) for row in rows]
