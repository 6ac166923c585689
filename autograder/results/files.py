"""What a grading run leaves per submission: results.json (Gradescope's format) and feedback.md.

Every file is written to a temporary name and renamed, so an interrupted run never leaves half a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = "results.json"
FEEDBACK = "feedback.md"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def results_json(*, tests: list, output: str, seconds: float, extra: dict) -> dict:
    """Gradescope's autograder results: total score, per-test name, score, max_score, output, visibility."""
    return {
        "score": round(sum(t.score for t in tests), 4),
        "execution_time": round(seconds, 2),
        "output": output,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [t.to_gradescope(number) for number, t in enumerate(tests, start=1)],
        "extra_data": {**extra, "max_score": sum(t.spec.max_score for t in tests)},
    }


def feedback_markdown(results: dict, *, title: str, submission: str) -> str:
    total = results["score"]
    maximum = results["extra_data"]["max_score"]
    lines = [f"# {title}", "", f"Submission: `{submission}`", "", f"**Score: {total:g} / {maximum:g}**", ""]
    if results["output"]:
        lines += [results["output"], ""]
    lines += ["| test | score | result |", "| --- | --- | --- |"]
    for test in results["tests"]:
        manual = bool((test.get("extra_data") or {}).get("manual"))  # its name says "(graded by hand)"
        hidden = " (hidden)" if test["visibility"] != "visible" and not manual else ""
        message = test["output"].replace("|", "\\|").replace("\n", " ")
        extra = test.get("extra_data", {})
        if extra.get("bonus"):
            score = f"{test['score']:g} bonus (up to {extra.get('points', 0):g})"
        else:
            score = f"{test['score']:g} / {test['max_score']:g}"
        lines.append(f"| {test['name']}{hidden} | {score} | {message} |")
    return "\n".join(lines) + "\n"


def write_submission_outputs(folder: Path, results: dict, feedback: str) -> None:
    write_atomic(folder / FEEDBACK, feedback)
    write_atomic(folder / RESULTS, json.dumps(results, indent=2) + "\n")


