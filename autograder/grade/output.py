"""What a grading run leaves behind: results.json (Gradescope's format), feedback.md, gradebook.csv.

Every file is written to a temporary name and renamed, so an interrupted run never leaves half a file.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .scoring import TestResult

RESULTS = "results.json"
FEEDBACK = "feedback.md"
GRADEBOOK = "gradebook.csv"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def results_json(*, tests: list[TestResult], output: str, seconds: float, extra: dict) -> dict:
    """Gradescope's autograder results: total score, per-test name, score, max_score, output, visibility."""
    return {
        "score": round(sum(t.score for t in tests), 4),
        "execution_time": round(seconds, 2),
        "output": output,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [t.to_gradescope() for t in tests],
        "extra_data": {**extra, "max_score": sum(t.spec.points for t in tests)},
    }


def feedback_markdown(results: dict, *, title: str, submission: str) -> str:
    total = results["score"]
    maximum = results["extra_data"]["max_score"]
    lines = [f"# {title}", "", f"Submission: `{submission}`", "", f"**Score: {total:g} / {maximum:g}**", ""]
    if results["output"]:
        lines += [results["output"], ""]
    lines += ["| test | score | result |", "| --- | --- | --- |"]
    for test in results["tests"]:
        hidden = " (hidden)" if test["visibility"] != "visible" else ""
        message = test["output"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {test['name']}{hidden} | {test['score']:g} / {test['max_score']:g} | {message} |")
    return "\n".join(lines) + "\n"


def write_submission_outputs(folder: Path, results: dict, feedback: str) -> None:
    write_atomic(folder / FEEDBACK, feedback)
    write_atomic(folder / RESULTS, json.dumps(results, indent=2) + "\n")


def write_gradebook(out_dir: Path) -> Path:
    """One row per graded submission found under ``out_dir``, one column per test; rebuilt from results.json files."""
    rows = []
    columns: list[str] = []
    for path in sorted(out_dir.glob(f"*/{RESULTS}")):
        results = json.loads(path.read_text(encoding="utf-8"))
        extra = results.get("extra_data", {})
        row = {
            "submission": path.parent.name,
            "assignment": extra.get("assignment", ""),
            "score": results["score"],
            "max_score": extra.get("max_score", ""),
            "status": extra.get("status", ""),
        }
        for test in results["tests"]:
            key = test.get("extra_data", {}).get("nodeid", test["name"])
            if key not in columns:
                columns.append(key)
            row[key] = test["score"]
        rows.append(row)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["submission", "assignment", "score", "max_score", "status", *columns])
    writer.writeheader()
    writer.writerows(rows)
    target = out_dir / GRADEBOOK
    write_atomic(target, buffer.getvalue())
    return target
