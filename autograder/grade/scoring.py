"""Turn the student's process's observations into scores, in the grader's process.

A test earns its points only if the student's process reported it passed; an accuracy test also needs
predictions that reach the threshold when the grader scores them with labels it alone holds. A test
with no report (the process died or was killed first) earns nothing and says why.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistkit.data import sample_indices

from ..config import AssignmentConfig
from .evaldata import EvalSet
from .manifest import TestSpec


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    spec: TestSpec
    score: float
    status: str  # passed | failed | skipped | not run
    message: str
    seconds: float = 0.0

    def to_gradescope(self) -> dict:
        return {
            "name": self.spec.title + (" (bonus)" if self.spec.bonus else ""),
            "score": round(self.score, 4),
            "max_score": self.spec.max_score,
            "status": "passed" if self.status == "passed" else "failed",
            "output": self.message or ("passed" if self.status == "passed" else self.status),
            "visibility": "after_published" if self.spec.hidden else "visible",
            "extra_data": {"nodeid": self.spec.nodeid, "outcome": self.status, "seconds": round(self.seconds, 3)},
        }


def read_reports(path: Path) -> dict[str, list[dict]]:
    """Phase records per node id; unreadable lines are skipped."""
    records: dict[str, list[dict]] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            records.setdefault(str(record["nodeid"]), []).append(record)
        except (ValueError, KeyError, TypeError):
            continue
    return records


def evidence_file(folder: Path, spec: TestSpec) -> Path:
    return folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", spec.function) + ".npy")


def judge_accuracy(spec: TestSpec, config: AssignmentConfig, data: EvalSet | None, evidence: Path) -> tuple[bool, str]:
    check = config.accuracy.get(spec.accuracy)
    if check is None or data is None:
        return False, f"the kit has no evaluation set for the accuracy check {spec.accuracy!r}"
    path = evidence_file(evidence, spec)
    if not path.is_file():
        return False, "no predictions were recorded"
    try:
        predictions = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        return False, f"the recorded predictions could not be read ({err})"
    labels = data.labels[sample_indices(len(data.labels), check.eval_subset).numpy()]
    expected = labels.shape
    if predictions.shape != expected or not np.issubdtype(predictions.dtype, np.integer):
        return False, f"expected {expected[0]:,} integer predictions, got shape {predictions.shape} of {predictions.dtype}"
    got = float((predictions == labels).mean())
    verdict = f"accuracy {got:.2%} on the {expected[0]:,} evaluation images (required: {check.threshold:.2%})"
    return got >= check.threshold, verdict


def score_tests(
    manifest: list[TestSpec], reports: dict[str, list[dict]], *, config: AssignmentConfig,
    data: EvalSet | None, evidence: Path, ended: str,
) -> list[TestResult]:
    tampered = next((r["tampered"] for rs in reports.values() for r in rs if r.get("tampered")), None)
    if tampered:
        message = f"0 for every test: the submission replaced testing tools ({tampered})"
        return [TestResult(spec, 0.0, "failed", message) for spec in manifest]
    results = []
    for spec in manifest:
        phases = {r.get("when"): r for r in reports.get(spec.nodeid, [])}
        seconds = sum(float(r.get("duration", 0) or 0) for r in phases.values())
        failed = next((p for p in ("setup", "call", "teardown") if phases.get(p, {}).get("outcome") == "failed"), None)
        skipped = next((p for p in ("setup", "call") if phases.get(p, {}).get("outcome") == "skipped"), None)
        if failed:
            message = str(phases[failed].get("message", ""))
            if failed == "teardown":
                message = f"error after the test: {message}"
            results.append(TestResult(spec, 0.0, "failed", message, seconds))
        elif skipped:
            results.append(TestResult(spec, 0.0, "skipped", f"skipped: {phases[skipped].get('message', '')}", seconds))
        elif phases.get("call", {}).get("outcome") == "passed" and "teardown" in phases:
            if spec.accuracy:
                ok, verdict = judge_accuracy(spec, config, data, evidence)
                results.append(TestResult(spec, spec.points if ok else 0.0, "passed" if ok else "failed", verdict, seconds))
            else:
                results.append(TestResult(spec, spec.points, "passed", "", seconds))
        else:
            results.append(TestResult(spec, 0.0, "not run", f"did not finish: {ended}", seconds))
    return results
