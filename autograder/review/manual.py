"""The teacher's scores: the score sheet (``manual-scores.csv``), their store, and folding them into results.

* The **sheet** is written by ``review`` (``GRADED/review/manual-scores.csv``): one row per submission,
  one column per rubric criterion (``Q1a (2)``: its id, then its points), a ``comment`` column, and the
  autograded score for reference (ignored when read). An empty cell means "not graded yet".
* ``merge`` reads it, checks all of it before writing anything (a score that is not a number, is negative
  or above the criterion's points, an unknown submission or criterion, a results.json this grader did not
  sign: every problem is listed, and no file changes), then stores the scores in
  ``GRADED/manual-scores.json`` (signed with the grader's key, like results.json) and rewrites each
  submission's results.json (re-signed), feedback.md, the gradebooks and the class summary. A cell filled
  in overwrites the stored score; an empty cell keeps it, so sheets can be merged one batch at a time.
* Once an assignment has manual scores, every submission of it carries every criterion as a test
  (``visibility: after_published``, Gradescope's "hidden until grades are published"); a criterion not
  graded yet scores 0 and says so, so that all results of the assignment have the same maximum.
* The grader calls :func:`apply_manual` when it writes a submission's results, so re-grading a batch keeps
  the merged scores. When the report changed since it was graded by hand (a new zip), the scores are kept
  and ``extra_data.manual.report_changed`` says so; the review site shows it.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..gradebook import write_gradebooks
from ..results.files import FEEDBACK, RESULTS, feedback_markdown
from ..results.manual import (
    MANUAL_STORE, _active, _signed_store, load_store, read_key, report_sha256,
    strip_manual, with_manual,
)
from ..results.signing import KEY_FILE, sign, verify
from ..results.summary import write_summary
from ..rubric import ReviewError, Rubric, find_rubric, load_rubric, points_text

log = logging.getLogger(__name__)

SUBMISSION, AUTOGRADED, COMMENT = "submission", "autograded", "comment"


# ------------------------------------------------------------------------------------------ the graded folder
@dataclass
class Graded:
    """One submission's folder in GRADED."""

    name: str
    folder: Path
    results: dict
    verified: bool

    @property
    def extra(self) -> dict:
        return self.results.get("extra_data", {})

    @property
    def assignment(self) -> str:
        return self.extra.get("assignment") or ""


def graded_submissions(graded: Path, key: bytes | None) -> list[Graded]:
    """Every ``GRADED/<name>/results.json`` that parses, sorted by name."""
    out = []
    for path in sorted(Path(graded).glob(f"*/{RESULTS}")):
        if path.parent.name.startswith("."):
            continue
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("%s cannot be read; left out", path)
            continue
        if not isinstance(results, dict) or not isinstance(results.get("tests"), list):
            continue
        out.append(Graded(path.parent.name, path.parent, results, key is not None and verify(results, key)))
    return out


def resolve_assignment(submissions: list[Graded], assignment: str | None) -> Rubric:
    """The rubric to review or merge with: ``assignment``'s, else that of the only assignment of GRADED that has one."""
    if assignment:
        rubric = load_rubric(assignment)
        if not any(s.assignment == assignment for s in submissions):
            raise ReviewError(f"the folder holds no graded submission of {assignment}")
        return rubric
    present = sorted({s.assignment for s in submissions if s.assignment})
    with_rubric = [a for a in present if find_rubric(a) is not None]
    if len(with_rubric) == 1:
        return load_rubric(with_rubric[0])
    if not with_rubric:
        raise ReviewError(f"none of the assignments graded here ({', '.join(present) or 'none'}) has a rubric "
                          "(assignments/<name>/rubric.toml): there is nothing to grade by hand")
    raise ReviewError(f"several assignments graded here have a rubric ({', '.join(with_rubric)}); "
                      "name one with --assignment")


# -------------------------------------------------------------------------------------------- the sheet
def column(criterion) -> str:
    return f"{criterion.id} ({criterion.points:g})"


def write_sheet(path: Path, rubric: Rubric, rows: list[dict]) -> Path:
    """The score sheet: ``rows`` of ``{"submission", "autograded", "scores": {id: text}, "comment"}``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([SUBMISSION, AUTOGRADED, *[column(c) for c in rubric.criteria], COMMENT])
    for row in rows:
        scores = row.get("scores", {})
        writer.writerow([row["submission"], row.get("autograded", ""),
                         *[_cell(scores.get(c.id, "")) for c in rubric.criteria], row.get("comment", "")])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(partial, path)
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class SheetRow:
    submission: str
    line: int
    scores: dict = field(default_factory=dict)  # criterion id -> float (filled-in cells only)
    comment: str | None = None  # None: the column is absent or the cell empty


def _dialect(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return max((",", ";", "\t"), key=first.count) if first else ","


def read_sheet(path: Path, rubric: Rubric, known: dict[str, str]) -> tuple[list[SheetRow], list[str]]:
    """The rows of a score sheet, and every problem found in it (nothing is raised here).

    ``known`` maps each submission of GRADED to its assignment. The rows keep the cells that are valid, so the
    review, re-reading an earlier sheet to keep what the teacher typed, can ignore the problems.
    """
    path = Path(path)
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        return [], [f"{path} cannot be read: {err}"]
    delimiter = _dialect(text)
    records = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not records:
        return [], [f"{path} is empty: it needs a header row ({SUBMISSION}, the criteria, {COMMENT})"]
    header = [cell.strip() for cell in records[0]]
    columns: dict[int, str] = {}  # index -> criterion id, or the special names
    ids = [c.id for c in rubric.criteria]
    for index, title in enumerate(header):
        name = re.sub(r"\s*\(\s*[-+0-9.,]*\s*(?:points?|pts?)?\s*\)$", "", title).strip()
        lowered = name.lower()
        if lowered in (SUBMISSION, AUTOGRADED, COMMENT):
            name = lowered
        elif name not in ids:
            if name or any(index < len(r) and r[index].strip() for r in records[1:]):
                hint = difflib.get_close_matches(name, ids, n=1)
                problems.append(f"column {index + 1}: unknown criterion {title!r}"
                                f"{f' (did you mean {hint[0]}?)' if hint else ''}; the rubric of "
                                f"{rubric.assignment} has {', '.join(ids)}")
            continue
        if name in columns.values():
            problems.append(f"column {index + 1}: {name} appears twice in the header")
            continue
        columns[index] = name
    if SUBMISSION not in columns.values():
        problems.append(f"the header has no {SUBMISSION!r} column (the first row must be: {SUBMISSION}, "
                        f"{AUTOGRADED}, {', '.join(column(c) for c in rubric.criteria)}, {COMMENT})")
        return [], problems
    rows: list[SheetRow] = []
    seen: dict[str, int] = {}
    for line, record in enumerate(records[1:], start=2):
        cells = {name: (record[i].strip() if i < len(record) else "") for i, name in columns.items()}
        if not any(cells.values()) and not any(c.strip() for c in record):
            continue
        submission = cells[SUBMISSION]
        where = f"line {line}"
        if not submission:
            problems.append(f"{where}: no submission named in the {SUBMISSION!r} column")
            continue
        if submission not in known:
            hint = difflib.get_close_matches(submission, list(known), n=1)
            problems.append(f"{where}: unknown submission {submission!r}: no such folder with a results.json in "
                            f"the graded folder{f' (did you mean {hint[0]}?)' if hint else ''}")
            continue
        if known[submission] != rubric.assignment:
            problems.append(f"{where}: {submission} is a submission of {known[submission] or 'no assignment'}, "
                            f"not {rubric.assignment}")
            continue
        if submission in seen:
            problems.append(f"{where}: {submission} has a second row (the first is line {seen[submission]})")
            continue
        seen[submission] = line
        row = SheetRow(submission, line)
        for name, value in cells.items():
            if name in (SUBMISSION, AUTOGRADED) or not value:
                continue
            if name == COMMENT:
                row.comment = value
                continue
            criterion = rubric.criterion(name)
            try:
                score = float(value.replace(",", ".") if delimiter != "," else value)
            except ValueError:
                problems.append(f"{where}, {name} ({submission}): {value!r} is not a number of points")
                continue
            if not math.isfinite(score) or score < 0:
                problems.append(f"{where}, {name} ({submission}): {value} is not a score from 0 to {criterion.points:g}")
                continue
            if score > criterion.points:
                problems.append(f"{where}, {name} ({submission}): {value} is above the criterion's "
                                f"{points_text(criterion.points)}")
                continue
            row.scores[name] = score
        rows.append(row)
    return rows, problems


# -------------------------------------------------------------------------------------------------- merge
@dataclass
class MergeReport:
    assignment: str
    sheet_rows: int
    cells: int  # scores filled in on the sheet
    updated: list  # submissions whose results were rewritten
    written: list  # every file written
    notes: list = field(default_factory=list)


def _replace_all(files: dict[Path, str]) -> None:
    """Write every file to a temporary name first, then rename them all (no half-written file, ever)."""
    parts = {}
    try:
        for path, text in files.items():
            part = path.with_name(f".{path.name}.merge-part")
            part.write_text(text, encoding="utf-8")
            parts[path] = part
    except BaseException:
        for part in parts.values():
            part.unlink(missing_ok=True)
        raise
    for path, part in parts.items():
        os.replace(part, path)


def merge_manual(graded: Path, sheet: Path, *, assignment: str | None = None,
                 formats: tuple[str, ...] = ("csv",)) -> MergeReport:
    """Fold the score sheet ``sheet`` into the graded folder (see the module's docstring).

    Raises:
        ReviewError: anything wrong with the folder, the sheet or the stored scores, all listed; no file
            was changed then.
    """
    graded, sheet = Path(graded), Path(sheet)
    formats = tuple(dict.fromkeys(("csv", *formats)))  # csv always: `grade` writes it, and rebuilds it
    if not graded.is_dir():
        raise ReviewError(f"{graded} is not a folder written by `grade`")
    if not sheet.is_file():
        raise ReviewError(f"{sheet} does not exist (`review` writes a blank one into {graded / 'review'})")
    key = read_key(graded)
    if key is None:
        raise ReviewError(f"{graded / KEY_FILE} is missing: {graded} was not written by `grade`, or its key was lost")
    submissions = graded_submissions(graded, key)
    rubric = resolve_assignment(submissions, assignment)
    known = {s.name: s.assignment for s in submissions}
    rows, problems = read_sheet(sheet, rubric, known)
    mine = [s for s in submissions if s.assignment == rubric.assignment]
    for s in mine:
        if not s.verified:
            problems.append(f"{s.folder / RESULTS} does not carry this grader's signature: grade it again first")
    try:
        store = load_store(graded, key)
    except ReviewError as err:
        problems.append(str(err))
        store = {}
    if problems:
        raise ReviewError(f"{sheet}: {len(problems)} problem(s); nothing was written:\n  " + "\n  ".join(problems))

    entry = store["assignments"].setdefault(rubric.assignment, {"submissions": {}})
    entry["rubric_sha256"] = rubric.digest
    cells = 0
    for row in rows:
        folder = graded / row.submission
        given = entry["submissions"].setdefault(row.submission, {"scores": {}})
        given.setdefault("scores", {}).update(row.scores)
        cells += len(row.scores)
        if row.comment is not None:
            given["comment"] = row.comment
        if row.scores or row.comment is not None:
            given["report_sha256"] = report_sha256(folder, rubric)
    files: dict[Path, str] = {graded / MANUAL_STORE: json.dumps(_signed_store(store, key), indent=2, sort_keys=True) + "\n"}
    for s in mine:
        results = (with_manual(s.results, rubric, entry["submissions"].get(s.name),
                               report_sha=report_sha256(s.folder, rubric)) if _active(entry) else strip_manual(s.results))
        results = sign(results, key)
        extra = results["extra_data"]
        files[s.folder / RESULTS] = json.dumps(results, indent=2) + "\n"
        files[s.folder / FEEDBACK] = feedback_markdown(results, title=extra.get("title", rubric.assignment),
                                                       submission=extra.get("submission", s.name))
    _replace_all(files)
    written = list(files)
    for fmt in formats:
        books, _problems = write_gradebooks(graded, fmt)  # its problems are the `gradebook` verb's to report
        written += books
    written.append(write_summary(graded))
    notes = []
    others = sorted(p.name for p in graded.glob(f"gradebook-{rubric.assignment}-*.csv")
                    if p.stem.rsplit("-", 1)[-1] not in (*formats, "tests"))
    if others:
        notes.append(f"{', '.join(others)} were written earlier by `gradebook` (perhaps with a roster): run it again "
                     "to include the manual scores")
    return MergeReport(rubric.assignment, len(rows), cells, [s.name for s in mine], written, notes)
