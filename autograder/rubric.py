"""The rubric of an assignment's report: ``assignments/<name>/rubric.toml``, the single source of its manual grading.

Schema::

    assignment = "analysis"          # must be the folder's name
    report = "report.md"             # the submitted file the rubric grades; its template is handout/<report>
    title = "The report (graded by hand)"

    [[question]]
    id = "Q1"                        # a "## Q1. <title>" heading of the template
    title = "Activation functions"
    plots = ["plot_lr.png"]          # the figures the answer is about (shown with the rubric)

    [[question.criterion]]
    id = "Q1a"                       # the column of manual-scores.csv; unique in the rubric
    name = "Best activation, with numbers"
    points = 2                       # a grader gives any score from 0 to this
    earns = "what earns the points"

The question's own wording is read from the report template (its quoted ``>`` lines), so the handout and
the rubric can never tell two stories. :func:`gradescope_text` prints the rubric as the text of Gradescope's
manual questions.
"""
from __future__ import annotations

import hashlib
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from mnistkit._toml import tomllib

from .config import ASSIGNMENTS_DIR

RUBRIC_FILE = "rubric.toml"
ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")


class ReviewError(ValueError):
    """A review or merge that cannot be done as asked (bad rubric, bad score sheet, unknown folder); nothing was written."""


@dataclass(frozen=True)
class Criterion:
    id: str
    name: str
    points: float
    earns: str
    question: str  # the question's id


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    text: str  # the template's quoted question, without the ">" marks
    plots: tuple[str, ...]
    criteria: tuple[Criterion, ...]

    @property
    def points(self) -> float:
        return sum(c.points for c in self.criteria)


@dataclass(frozen=True)
class Rubric:
    assignment: str
    report: str
    title: str
    questions: tuple[Question, ...]
    digest: str  # sha256 of rubric.toml (recorded with the scores given under it)

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for q in self.questions for c in q.criteria)

    @property
    def points(self) -> float:
        return sum(q.points for q in self.questions)

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)


def template_questions(text: str) -> dict[str, tuple[str, str]]:
    """``{id: (title, quoted question)}`` of a report in the template's layout (``## Q1. Title`` then ``>`` lines)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    questions: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^##\s+(Q\d+)\b\.?\s*(.*)$", line)
        if heading:
            current = heading.group(1)
            questions[current] = (heading.group(2).strip(), [])
        elif line.startswith("## "):
            current = None
        elif current is not None and line.lstrip().startswith(">"):
            questions[current][1].append(line.lstrip()[1:].strip())
    return {q: (title, " ".join(lines).strip()) for q, (title, lines) in questions.items()}


def rubric_path(assignment: str, *, assignments_dir: Path = ASSIGNMENTS_DIR) -> Path:
    return Path(assignments_dir) / assignment / RUBRIC_FILE


def find_rubric(assignment: str, *, assignments_dir: Path = ASSIGNMENTS_DIR) -> Rubric | None:
    """The assignment's rubric, or None when it has none (its report, if any, is not graded by hand)."""
    if not rubric_path(assignment, assignments_dir=assignments_dir).is_file():
        return None
    return load_rubric(assignment, assignments_dir=assignments_dir)


def load_rubric(assignment: str, *, assignments_dir: Path = ASSIGNMENTS_DIR) -> Rubric:
    """Read and check ``assignments/<assignment>/rubric.toml`` against the report template.

    Raises:
        ReviewError: no rubric, or it does not follow the schema (names the field), or its questions are
            not the template's.
    """
    path = rubric_path(assignment, assignments_dir=assignments_dir)
    if not path.is_file():
        raise ReviewError(f"{assignment} has no rubric ({path}): its report is not graded by hand")
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ReviewError(f"{path}: not valid TOML: {err}") from err

    def need(table: dict, key: str, kind: type, where: str):
        value = table.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
            raise ReviewError(f"{path}: {where}: `{key}` must be a {'non-empty string' if kind is str else kind.__name__}")
        return value.strip() if isinstance(value, str) else value

    if need(raw, "assignment", str, "top level") != assignment:
        raise ReviewError(f"{path}: `assignment` is {raw['assignment']!r}, but the rubric is in {assignment}'s folder")
    report = need(raw, "report", str, "top level")
    template = Path(assignments_dir) / assignment / "handout" / report
    if not template.is_file():
        raise ReviewError(f"{path}: the report template {template} does not exist")
    asked = template_questions(template.read_text(encoding="utf-8"))
    seen: set[str] = set()
    questions = []
    for index, q in enumerate(raw.get("question") or [], start=1):
        if not isinstance(q, dict):
            raise ReviewError(f"{path}: question {index} is not a table ([[question]])")
        qid = need(q, "id", str, f"question {index}")
        if qid not in asked:
            raise ReviewError(f"{path}: question {qid} is not a question of {template.name} "
                              f"(it asks {', '.join(asked) or 'nothing'})")
        if qid in seen:
            raise ReviewError(f"{path}: question {qid} appears twice")
        seen.add(qid)
        plots = q.get("plots", [])
        if not isinstance(plots, list) or not all(isinstance(p, str) for p in plots):
            raise ReviewError(f"{path}: question {qid}: `plots` must be a list of file names")
        criteria = []
        for number, c in enumerate(q.get("criterion") or [], start=1):
            where = f"question {qid}, criterion {number}"
            if not isinstance(c, dict):
                raise ReviewError(f"{path}: {where} is not a table ([[question.criterion]])")
            cid = need(c, "id", str, where)
            if not ID.match(cid):
                raise ReviewError(f"{path}: {where}: id {cid!r} must be a letter then letters, digits, '_', '.' "
                                  "or '-' (at most 32): it is a column of the score sheet")
            if cid in seen:
                raise ReviewError(f"{path}: id {cid} is used twice")
            seen.add(cid)
            points = c.get("points")
            if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points) or points <= 0:
                raise ReviewError(f"{path}: {where} ({cid}): `points` must be a positive number")
            criteria.append(Criterion(cid, need(c, "name", str, where), float(points),
                                      " ".join(need(c, "earns", str, where).split()), qid))
        if not criteria:
            raise ReviewError(f"{path}: question {qid} has no criterion ([[question.criterion]])")
        title = q.get("title") if isinstance(q.get("title"), str) and q["title"].strip() else asked[qid][0]
        questions.append(Question(qid, title.strip(), asked[qid][1], tuple(plots), tuple(criteria)))
    missing = [q for q in asked if q not in seen]
    if missing:
        raise ReviewError(f"{path}: no criteria for {', '.join(missing)} of {template.name}: every question the "
                          "report asks is graded")
    title = raw.get("title") if isinstance(raw.get("title"), str) else f"{report} (graded by hand)"
    return Rubric(assignment, report, title, tuple(questions), hashlib.sha256(data).hexdigest())


def points_text(value: float) -> str:
    return f"{value:g} point{'s' if value != 1 else ''}"


def gradescope_text(rubric: Rubric) -> str:
    """The rubric as the text of Gradescope's manual questions: one question per report question, with its
    points, the question as the students read it, and one rubric item per criterion (positive scoring)."""
    lines = [f"{rubric.title}: {rubric.assignment}, {rubric.report}, {points_text(rubric.points)} in all",
             f"(from assignments/{rubric.assignment}/{RUBRIC_FILE}; in Gradescope add one question per block, "
             "with these points, and use positive scoring)", ""]
    for number, q in enumerate(rubric.questions, start=1):
        lines.append(f"Question {number}: {q.id}. {q.title} ({points_text(q.points)})")
        lines += textwrap.wrap(q.text, 100, initial_indent="  ", subsequent_indent="  ")
        if q.plots:
            lines.append(f"  Figures: {', '.join(q.plots)}")
        lines.append("  Rubric items:")
        for c in q.criteria:
            lines.append(f"    +{c.points:g}  {c.id}: {c.name}")
            lines += textwrap.wrap(c.earns, 96, initial_indent="          ", subsequent_indent="          ")
        lines.append("")
    return "\n".join(lines)
