"""pytest plugin loaded in the student's process by the grader (as ``-p _mnistkit_report``).

It only observes: it writes the collected tests (``$MNISTKIT_MANIFEST``) or one JSON line per test phase
(``$MNISTKIT_REPORT``) as each phase ends, so a run that is killed halfway keeps what it finished. It
decides nothing: the grader, in another process, turns these lines into scores. This file is standalone
(standard library and pytest only) because it is copied next to the student's code.
"""
from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import _pytest.outcomes
import _pytest.python
import _pytest.reports
import _pytest.runner
import pytest

MAX_MESSAGE = 2000


def _watched() -> dict[str, object]:
    """The testing tools a submission could patch to fake a pass, looked up afresh each time."""
    import unittest

    def attr(owner, name):
        # the raw attribute (a classmethod object stays itself); None where this pytest has no such thing
        return vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)

    tools = {
        "pytest.fail": pytest.fail,
        "pytest.raises": pytest.raises,
        "pytest.approx": pytest.approx,
        "_pytest.outcomes.fail": _pytest.outcomes.fail,
        "_pytest.outcomes.Failed": _pytest.outcomes.Failed,
        "_pytest.runner.CallInfo.from_call": attr(_pytest.runner.CallInfo, "from_call"),
        "_pytest.runner.call_and_report": attr(_pytest.runner, "call_and_report"),
        "_pytest.runner.runtestprotocol": attr(_pytest.runner, "runtestprotocol"),
        "_pytest.reports.TestReport.from_item_and_call": attr(_pytest.reports.TestReport, "from_item_and_call"),
        "_pytest.python.pytest_pyfunc_call": attr(_pytest.python, "pytest_pyfunc_call"),
        "unittest.TestCase.assertEqual": unittest.TestCase.assertEqual,
        "unittest.TestCase.assertTrue": unittest.TestCase.assertTrue,
        "_mnistkit_report.pytest_runtest_makereport": globals().get("pytest_runtest_makereport"),
    }
    for module, names in (("torch", ("equal", "allclose", "isfinite")), ("torch.testing", ("assert_close",)),
                          ("numpy", ("allclose", "array_equal")), ("numpy.testing", ("assert_allclose", "assert_array_equal")),
                          ("mnistkit.testing", ("assert_shape", "assert_parameter_count", "assert_gradients_flow",
                                                "assert_runs_on_device", "call_student", "import_student")),
                          ("mnistkit.tracing", ("trace_forward", "trace_random", "table_rows", "row_failure"))):
        try:
            imported = __import__(module, fromlist=["_"])
        except Exception:  # noqa: BLE001 - a tool that is not installed cannot be patched
            continue
        for name in names:
            tools[f"{module}.{name}"] = getattr(imported, name, None)
    return tools


_SNAPSHOT: dict[str, object] = {}
_STATE = {"tampered": ""}


def _tampering() -> str:
    """Names of watched tools that no longer are what they were before any student code ran."""
    if not _SNAPSHOT:
        return ""
    now = _watched()
    changed = [name for name, tool in _SNAPSHOT.items() if now.get(name) is not tool]
    return ", ".join(changed)


def _append(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def _title(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    params = f" [{item.callspec.id}]" if hasattr(item, "callspec") else ""
    return (first or item.name) + params


def pytest_collection_finish(session: pytest.Session) -> None:
    """Record the manifest (collect-only run) or, when grading, hide the test sources from the student.

    Tests import student code only inside fixtures, so collection finishes before any student code runs:
    this is the moment to snapshot the testing tools and to delete the test files from the disk.
    """
    _SNAPSHOT.update(_watched())
    if os.environ.get("MNISTKIT_REPORT"):
        for item in session.items:
            Path(str(item.path)).unlink(missing_ok=True)
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
        text = str(excinfo.value.msg)
    else:
        text = excinfo.exconly()
        frames = [f for f in traceback.extract_tb(excinfo.tb) if Path(f.filename).resolve().parent == Path.cwd().resolve()]
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
    changed = _tampering()
    if changed and not _STATE["tampered"]:
        _STATE["tampered"] = changed
    record = {
        "nodeid": item.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "message": _message(report, call),
        "duration": round(report.duration, 3),
    }
    if _STATE["tampered"]:
        record.update(outcome="failed", tampered=_STATE["tampered"],
                      message=f"the submission replaced testing tools ({_STATE['tampered']}); no test can be trusted")
    _append(path, record)
