"""Turn the judge's report into scores.

A test earns its points only if the judge (the grader's own process) reported that it passed. A test
with no report (the judge was stopped first) earns nothing and says why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..testrun import TestSpec


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    spec: TestSpec
    score: float
    status: str  # passed | failed | skipped | not run
    message: str
    seconds: float = 0.0
    properties: dict = field(default_factory=dict)

    def to_gradescope(self, number: int) -> dict:
        return {
            "name": self.spec.title + (" (bonus)" if self.spec.bonus else ""),
            "number": str(number),
            "score": round(self.score, 4),
            "max_score": self.spec.max_score,
            "status": "passed" if self.status == "passed" else "failed",
            "output": self.message or ("passed" if self.status == "passed" else self.status),
            "visibility": "after_published" if self.spec.hidden else "visible",
            "extra_data": {"nodeid": self.spec.nodeid, "outcome": self.status, "seconds": round(self.seconds, 3),
                           "points": self.spec.points, "bonus": self.spec.bonus, "check": self.spec.accuracy,
                           **self.properties},
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


def score_tests(manifest: list[TestSpec], reports: dict[str, list[dict]], *, ended: str) -> list[TestResult]:
    results = []
    for spec in manifest:
        phases = {r.get("when"): r for r in reports.get(spec.nodeid, [])}
        seconds = sum(float(r.get("duration", 0) or 0) for r in phases.values())
        properties = dict(phases.get("call", {}).get("properties") or {})
        failed = next((p for p in ("setup", "call", "teardown") if phases.get(p, {}).get("outcome") == "failed"), None)
        skipped = next((p for p in ("setup", "call") if phases.get(p, {}).get("outcome") == "skipped"), None)
        if failed:
            message = str(phases[failed].get("message", ""))
            if failed == "teardown":
                message = f"error after the test: {message}"
            results.append(TestResult(spec, 0.0, "failed", message, seconds, properties))
        elif skipped:
            results.append(TestResult(spec, 0.0, "skipped", f"skipped: {phases[skipped].get('message', '')}", seconds))
        elif phases.get("call", {}).get("outcome") == "passed" and "teardown" in phases:
            results.append(TestResult(spec, spec.points, "passed", "", seconds, properties))
        else:
            results.append(TestResult(spec, 0.0, "not run", f"did not finish: {ended}", seconds))
    return results
