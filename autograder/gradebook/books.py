"""Gradebooks per assignment, in the formats LMSs import, rebuilt from the results.json of a graded folder.

For each assignment found in ``GRADED/*/results.json`` it writes ``gradebook-<assignment>-<format>.csv``
(one row per student and the assignment's total) and, for every format, ``gradebook-<assignment>-tests.csv``
(one column per test). The formats:

* ``canvas``: ``Student, ID, SIS User ID, SIS Login ID, Section, <title> (<canvas id>)``, then a
  ``Points Possible`` row; Canvas matches students by SIS User ID and imports the column into the
  assignment with that id (without an id it creates a new assignment).
* ``moodle``: one identifier column (``useremail``, or ``username`` when the roster has no emails) and one
  numeric column per grade item; Moodle's "Import grades from CSV" maps them in one step.
* ``gradescope``: ``Name, SID, Email, <title>``, the columns of Gradescope's score import.
* ``csv``: every field: student, id, name, email, assignment, score, max_score, status, submission.

Students of the roster without a submission, submissions not in the roster, and two submissions of one
student are listed in :class:`GradebookProblems` (and in ``gradebook-problems.txt``), never dropped
silently: a student with two submissions gets the higher score, and both are named.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .roster import Roster, Student

FORMATS = ("canvas", "moodle", "gradescope", "csv")
RESULTS = "results.json"


@dataclass
class GradebookProblems:
    missing: list = field(default_factory=list)  # (assignment, student): in the roster, no submission
    unknown: list = field(default_factory=list)  # (assignment, submission): not in the roster
    duplicates: list = field(default_factory=list)  # (assignment, student, [submissions]): kept the best

    def lines(self) -> list[str]:
        out = [f"{a}: {s.name or s.id or s.email} ({s.id or s.email}) has no submission" for a, s in self.missing]
        out += [f"{a}: {sub} is not in the roster (graded, but left out of the LMS file)" for a, sub in self.unknown]
        out += [f"{a}: {s.name or s.id} has {len(subs)} submissions ({', '.join(subs)}); the higher score is used"
                for a, s, subs in self.duplicates]
        return out

    def __bool__(self) -> bool:
        return bool(self.missing or self.unknown or self.duplicates)


@dataclass
class Entry:
    student: Student
    submission: str
    score: float
    max_score: float
    status: str
    tests: list


def _write(path: Path, rows: list[list]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(partial, path)
    return path


def _collect(graded: Path, roster: Roster | None, problems: GradebookProblems) -> dict:
    """{assignment: {"title", "max_score", "entries": {student key: Entry}}} from the results.json files."""
    books: dict = {}
    for path in sorted(Path(graded).glob(f"*/{RESULTS}")):
        results = json.loads(path.read_text(encoding="utf-8"))
        extra = results.get("extra_data", {})
        assignment = extra.get("assignment")
        if not assignment:
            continue
        submission = extra.get("submission", path.parent.name)
        book = books.setdefault(assignment, {"title": extra.get("title", assignment), "max_score": extra.get("max_score", 0),
                                             "entries": {}, "submissions": {}})
        identity = extra.get("identity") or {}
        student = roster.match(submission, identity) if roster else Student(
            identity.get("sid") or submission, identity.get("name") or submission, identity.get("email", ""),
            file=submission)
        if student is None:
            problems.unknown.append((assignment, submission))
            continue
        key = student.id or student.email.lower()
        entry = Entry(student, submission, float(results.get("score", 0)), float(extra.get("max_score", 0)),
                      extra.get("status", ""), results.get("tests", []))
        book["submissions"].setdefault(key, []).append(submission)
        if key not in book["entries"] or entry.score > book["entries"][key].score:
            book["entries"][key] = entry
    for assignment, book in books.items():
        for key, subs in book["submissions"].items():
            if len(subs) > 1:
                problems.duplicates.append((assignment, book["entries"][key].student, subs))
        if roster:
            for student in roster.students:
                if (student.id or student.email.lower()) not in book["entries"]:
                    problems.missing.append((assignment, student))
    return books


def _students(book: dict, roster: Roster | None) -> list[tuple[Student, "Entry | None"]]:
    """Every student of the book: the roster's order (with None for no submission), else by name."""
    if roster:
        return [(s, book["entries"].get(s.id or s.email.lower())) for s in roster.students]
    return [(e.student, e) for _, e in sorted(book["entries"].items())]


def _score(entry) -> str:
    return "" if entry is None else f"{entry.score:g}"


def write_gradebooks(graded: Path, fmt: str = "csv", *, roster: Roster | None = None, out: Path | None = None,
                     ids: dict | None = None) -> tuple[list[Path], GradebookProblems]:
    """Write every assignment's gradebook of ``graded`` in ``fmt`` (and its per-test detail) into ``out``.

    ``ids`` maps an assignment to its id in the LMS (Canvas's assignment id). Returns the files written
    and the problems found (also written to ``gradebook-problems.txt`` when there are any).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown gradebook format {fmt!r}; use one of {', '.join(FORMATS)}")
    graded, out, ids = Path(graded), Path(out or graded), dict(ids or {})
    out.mkdir(parents=True, exist_ok=True)
    problems = GradebookProblems()
    written = []
    for assignment, book in sorted(_collect(graded, roster, problems).items()):
        title, maximum = book["title"], book["max_score"]
        students = _students(book, roster)
        column = f"{title} ({ids[assignment]})" if assignment in ids else title
        if fmt == "canvas":
            rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column],
                    ["Points Possible", "", "", "", "", f"{maximum:g}"]]
            rows += [[s.name or s.id, "", s.id, s.login, s.section, _score(e)] for s, e in students]
        elif fmt == "moodle":
            by_email = all(s.email for s, _ in students)
            rows = [["useremail" if by_email else "username", assignment]]
            rows += [[s.email if by_email else (s.login or s.id), _score(e)] for s, e in students]
        elif fmt == "gradescope":
            rows = [["Name", "SID", "Email", title]] + [[s.name, s.id, s.email, _score(e)] for s, e in students]
        else:
            rows = [["student", "id", "name", "email", "assignment", "score", "max_score", "status", "submission"]]
            rows += [[s.name or s.id, s.id, s.name, s.email, assignment, _score(e), f"{maximum:g}",
                      e.status if e else "missing", e.submission if e else ""] for s, e in students]
        written.append(_write(out / f"gradebook-{assignment}-{fmt}.csv", rows))
        tests = next((e.tests for _, e in students if e and e.tests), [])
        names = [t["name"] for t in tests]
        detail = [["student", "id", "submission", "score", *names],
                  ["max_score", "", "", f"{maximum:g}", *[f"{t['max_score']:g}" for t in tests]]]
        for s, e in students:
            scores = {t["name"]: t["score"] for t in (e.tests if e else [])}
            detail.append([s.name or s.id, s.id, e.submission if e else "", _score(e),
                           *[f"{scores[n]:g}" if n in scores else "" for n in names]])
        written.append(_write(out / f"gradebook-{assignment}-tests.csv", detail))
    report = out / "gradebook-problems.txt"
    if problems:
        report.write_text("\n".join(problems.lines()) + "\n", encoding="utf-8")
        written.append(report)
    elif report.exists():
        report.unlink()
    return written, problems
