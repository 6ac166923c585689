"""pytest plugin of the judge: the grader's own pytest run over the probe's data (``-p autograder.grade.report_plugin``).

It writes the collected tests (``$MNISTKIT_MANIFEST``, a collect-only run) or one JSON line per test
phase (``$MNISTKIT_REPORT``) as each phase ends, so a judge that is stopped halfway keeps what it
finished. No student code runs in this process: the tests read data the probe recorded.
"""
from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import pytest

MAX_MESSAGE = 2000


def _append(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _title(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    params = f" [{item.callspec.id}]" if hasattr(item, "callspec") else ""
    return (first or item.name) + params


def pytest_collection_finish(session: pytest.Session) -> None:
    path = os.environ.get("MNISTKIT_MANIFEST")
    if not path:
        return
    for item in session.items:
        points = item.get_closest_marker("points")
        accuracy = item.get_closest_marker("accuracy")
        _append(path, {
            "nodeid": item.nodeid,
            "file": Path(str(item.path)).name,
            "function": item.name,
            "title": _title(item),
            "points": float(points.args[0]) if points else 0.0,
            "accuracy": accuracy.args[0] if accuracy else None,
            "gpu": item.get_closest_marker("gpu") is not None,
            "bonus": item.get_closest_marker("bonus") is not None,
        })


def _message(report: pytest.TestReport, call: pytest.CallInfo) -> str:
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    excinfo = call.excinfo
    if excinfo is None:
        return str(report.longreprtext)[-MAX_MESSAGE:]
    if isinstance(excinfo.value, pytest.fail.Exception):
        return str(excinfo.value.msg)[:MAX_MESSAGE]
    text = excinfo.exconly()
    frames = traceback.extract_tb(excinfo.tb)
    if frames:
        text += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})"
    return text[:MAX_MESSAGE]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    path = os.environ.get("MNISTKIT_REPORT")
    if not path:
        return
    report = outcome.get_result()
    _append(path, {
        "nodeid": item.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "message": _message(report, call),
        "duration": round(report.duration, 3),
        "properties": {k: v for k, v in report.user_properties if isinstance(v, (int, float, str))},
    })
