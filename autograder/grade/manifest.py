"""The list of graded tests and their points, collected from the kit's own tests, not from a submission.

The judge collects the tests once per assignment (``pytest --collect-only``, no submission needed), so
what a test is worth and which tests exist is decided before any submission is looked at.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config import AssignmentConfig
from .judge import build_judge_folder, judge_command, judge_env


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
