"""The scores a teacher gave by hand, stored signed in ``GRADED/manual-scores.json``, folded into results.

``merge`` (autograder.review) writes the store; the grader calls :func:`apply_manual` whenever it writes a
submission's results, so re-grading a batch keeps the merged scores. Once an assignment has manual scores,
every submission of it carries every rubric criterion as a test (``visibility: after_published``); a
criterion not graded yet scores 0 and says so, so that all results of the assignment share one maximum.
When the report changed since it was graded by hand, the scores are kept and
``extra_data.manual.report_changed`` says so.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

from ..rubric import ReviewError, Rubric, find_rubric, points_text
from .signing import KEY_FILE

log = logging.getLogger(__name__)

MANUAL_STORE = "manual-scores.json"
FILES = "files"  # <GRADED>/<name>/files/: the submitted files, as graded
MANUAL_NAME = "(graded by hand)"


def read_key(graded: Path) -> bytes | None:
    """The grader's key of ``graded`` if there is one (never creates it, unlike ``signing.load_key``)."""
    try:
        key = bytes.fromhex((Path(graded) / KEY_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return key if len(key) >= 32 else None


def report_sha256(folder: Path, rubric: Rubric) -> str | None:
    path = Path(folder) / FILES / rubric.report
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# ------------------------------------------------------------------------------------------------ the store
def _store_mac(store: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in store.items() if k != "signature"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, b"manual-scores:" + body.encode(), hashlib.sha256).hexdigest()


def load_store(graded: Path, key: bytes) -> dict:
    """``GRADED/manual-scores.json``: ``{"assignments": {assignment: {"rubric", "submissions": {name: entry}}}}``.

    Raises:
        ReviewError: it exists but cannot be read or does not carry this grader's signature.
    """
    path = Path(graded) / MANUAL_STORE
    if not path.is_file():
        return {"format": 1, "assignments": {}}
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
        claimed = store["signature"]
        ok = isinstance(claimed, str) and hmac.compare_digest(claimed, _store_mac(store, key))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReviewError(f"{path} cannot be read ({err}); move it away and merge the score sheets again") from err
    if not ok:
        raise ReviewError(f"{path} does not carry this grader's signature (written by someone else, or edited): "
                          "move it away and merge the score sheets again")
    return store


def _signed_store(store: dict, key: bytes) -> dict:
    body = {k: v for k, v in store.items() if k != "signature"}
    return {**body, "signature": _store_mac(body, key)}


# ------------------------------------------------------------------------------------------- the results
def is_manual(test: dict) -> bool:
    return bool((test.get("extra_data") or {}).get("manual"))


def strip_manual(results: dict) -> dict:
    """``results`` as the autograder wrote them: without manual tests, with the autograded total and maximum."""
    extra = dict(results.get("extra_data", {}))
    manual = extra.pop("manual", None)
    tests = [t for t in results.get("tests", []) if not is_manual(t)]
    if isinstance(manual, dict) and "autograded_max_score" in manual:
        extra["max_score"] = manual["autograded_max_score"]
    return {**results, "tests": tests, "score": round(sum(t["score"] for t in tests), 4), "extra_data": extra}


def with_manual(results: dict, rubric: Rubric, given: dict | None, *, report_sha: str | None = None) -> dict:
    """``results`` (signed or not) with one test per rubric criterion, scored from ``given`` (unsigned result).

    ``given``: ``{"scores": {criterion id: points}, "comment": str, "report_sha256": str}`` or None (nothing
    graded yet for this submission).
    """
    base = strip_manual(results)
    base["extra_data"].pop("signature", None)
    given = given or {}
    scores = given.get("scores") or {}
    tests = list(base["tests"])
    graded = 0
    for criterion in rubric.criteria:
        extra = {"manual": True, "criterion": criterion.id, "question": criterion.question,
                 "points": criterion.points}
        if criterion.id in scores:
            score = max(0.0, min(float(scores[criterion.id]), criterion.points))
            graded += 1
            status = "passed" if score >= criterion.points else "failed"
            output = f"{score:g} of {points_text(criterion.points)}, graded by hand. What earns them: {criterion.earns}"
            extra["outcome"] = "graded"
        else:
            score, status = 0.0, "failed"
            output = f"not graded yet: {rubric.report} is graded by hand ({points_text(criterion.points)})"
            extra["outcome"] = "not graded"
        tests.append({"name": f"{rubric.report} {criterion.id}: {criterion.name} {MANUAL_NAME}",
                      "number": str(len(tests) + 1), "score": round(score, 4), "max_score": criterion.points,
                      "status": status, "output": output, "visibility": "after_published", "extra_data": extra})
    comment = str(given.get("comment") or "").strip()
    if comment:
        tests.append({"name": f"{rubric.report}: the grader's comments {MANUAL_NAME}", "number": str(len(tests) + 1),
                      "score": 0.0, "max_score": 0.0, "status": "passed", "output": comment,
                      "visibility": "after_published",
                      "extra_data": {"manual": True, "criterion": None, "outcome": "comment", "points": 0}})
    manual_score = round(sum(t["score"] for t in tests if is_manual(t)), 4)
    stored_sha = given.get("report_sha256")
    extra = {**base["extra_data"], "max_score": base["extra_data"].get("max_score", 0) + rubric.points,
             "manual": {"score": manual_score, "max_score": rubric.points, "graded": graded,
                        "criteria": len(rubric.criteria), "autograded_score": base["score"],
                        "autograded_max_score": base["extra_data"].get("max_score", 0),
                        "rubric_sha256": rubric.digest,
                        "report_changed": bool(stored_sha and report_sha and stored_sha != report_sha)}}
    return {**base, "tests": tests, "score": round(sum(t["score"] for t in tests), 4), "extra_data": extra}


def _active(entry: dict | None) -> bool:
    """Whether an assignment's stored entry holds any score or comment (else its results stay as autograded)."""
    return bool(entry) and any(g.get("scores") or g.get("comment") for g in entry.get("submissions", {}).values())


def apply_manual(results: dict, out_dir: Path) -> dict:
    """``results`` (about to be signed and written into ``out_dir``) with the teacher's merged scores, if any.

    Called by the grader for every submission it writes. Never raises: a store that cannot be trusted or
    read is logged and left out (``extra_data.manual_problem`` says why), and the results go on as graded.
    """
    out_dir = Path(out_dir)
    try:
        extra = results.get("extra_data", {})
        assignment, name = extra.get("assignment"), extra.get("submission")
        if not assignment or not (out_dir / MANUAL_STORE).is_file():
            return results
        key = read_key(out_dir)
        if key is None:
            raise ReviewError(f"{out_dir / KEY_FILE} is missing")
        entry = load_store(out_dir, key)["assignments"].get(assignment)
        if not _active(entry):
            return results
        rubric = find_rubric(assignment)
        if rubric is None:
            raise ReviewError(f"manual scores are stored for {assignment}, which has no rubric any more")
        given = entry.get("submissions", {}).get(name)
        return with_manual(results, rubric, given, report_sha=report_sha256(out_dir / str(name), rubric))
    except Exception as err:  # noqa: BLE001 - the batch goes on; the teacher sees the problem in the log
        log.warning("manual scores left out of %s: %s", results.get("extra_data", {}).get("submission"), err)
        return {**results, "extra_data": {**results.get("extra_data", {}), "manual_problem": str(err)}}


