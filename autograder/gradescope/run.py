"""What runs inside Gradescope's container for every submission (``run_autograder``).

Gradescope puts the student's upload in ``/autograder/submission`` (loose files, a zip, or a notebook, as
the student uploaded them) and their identity in ``/autograder/submission_metadata.json``, and reads
``/autograder/results/results.json``. ``$AUTOGRADER_ROOT`` moves ``/autograder`` (the kit's test uses a
temporary folder). Grading is the kit's own, lean (one process at a time: the default container has
768 MB): the probe in the sandbox, then the judge.
"""
from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

SUBMISSION = "submission"
METADATA = "submission_metadata.json"
RESULTS = Path("results") / "results.json"


def submitted_file(folder: Path, work: Path) -> Path:
    """The one file to grade: the zip or notebook the student uploaded, else a zip of the loose files."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__MACOSX" not in p.parts)
    uploads = [p for p in files if p.suffix.lower() in (".zip", ".ipynb") and p.parent == folder]
    if len(uploads) == 1 and len(files) == 1:
        return uploads[0]
    target = work / "submission.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, arcname=path.relative_to(folder).as_posix())
    return target


def identity(root: Path) -> dict:
    """The submitter from Gradescope's metadata: name, email, sid (empty strings when unknown)."""
    try:
        metadata = json.loads((root / METADATA).read_text(encoding="utf-8"))
        user = (metadata.get("users") or [{}])[0]
    except (OSError, ValueError, AttributeError, IndexError):
        return {}
    return {k: str(user.get(k) or "") for k in ("name", "email", "sid")} | {
        "submission_id": str(metadata.get("id", "")), "created_at": str(metadata.get("created_at", ""))}


def to_gradescope(results: dict, who: dict) -> dict:
    """Our results.json as Gradescope reads it (its schema), with leaderboard entries from the accuracy checks."""
    tests = []
    leaderboard = []
    for test in results["tests"]:
        tests.append({key: test[key] for key in ("name", "number", "score", "max_score", "status", "output", "visibility")}
                     | {"output_format": "text"})
        extra = test.get("extra_data", {})
        if isinstance(extra.get("accuracy"), (int, float)):
            leaderboard.append({"name": f"accuracy, {extra.get('check') or 'check'} (%)",
                                "value": round(100 * extra["accuracy"], 2), "order": "desc"})
    extra = results.get("extra_data", {})
    return {
        "score": results["score"],
        "execution_time": results.get("execution_time", 0),
        "output": results.get("output") or f"{extra.get('title', '')}: {results['score']:g} / {extra.get('max_score', 0):g}",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "leaderboard": leaderboard,
        "extra_data": {"student": who, "assignment": extra.get("assignment"), "sandbox": extra.get("sandbox"),
                       "isolation": extra.get("isolation"), "status": extra.get("status"),
                       "max_score": extra.get("max_score"), "signature": extra.get("signature")},
    }


def run_gradescope(root: Path, *, assignment: str, threads: int = 1) -> Path:
    """Grade ``<root>/submission`` for ``assignment``; write ``<root>/results/results.json``; return its path."""
    from ..grade import grade_path

    root = Path(root)
    target = root / RESULTS
    target.parent.mkdir(parents=True, exist_ok=True)
    who = identity(root)
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        work = Path(tmp)
        source = submitted_file(root / SUBMISSION, work)
        out = work / "graded"
        [outcome] = grade_path(source, out_dir=out, assignment=assignment, threads=threads, lean=True)
        results = json.loads((outcome.folder / "results.json").read_text(encoding="utf-8"))
    gradescope = to_gradescope(results, who)
    partial = target.with_name(".results.json.part")
    partial.write_text(json.dumps(gradescope, indent=2) + "\n", encoding="utf-8")
    partial.replace(target)
    log.info("%s: %g points -> %s", assignment, gradescope["score"], target)
    return target
