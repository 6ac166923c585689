"""Who each graded submission belongs to: from its file name, or from a roster CSV.

A roster is a CSV with a header; the columns the kit reads (case-insensitive):

    file       the submission's file name or its stem (``alice.zip``, ``alice``); it also matches the
               stems that continue it after ``-`` or ``_`` (``alice-mlp``, ``alice_2``); optional
    id         the student's id (SIS user id, student number)
    name       the student's name, as the LMS shows it
    email      the student's email (Moodle matches on it; Gradescope's metadata too)
    login      the LMS login (Canvas's SIS Login ID, Moodle's username); optional
    section    the section (Canvas); optional

A submission is matched to a roster row by ``file``, else by the email or id in its Gradescope metadata.
Without a roster each submission is its own student, named after its file.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("file", "id", "name", "email", "login", "section")


class RosterError(ValueError):
    """A roster that cannot be read; the message says which line and why."""


@dataclass(frozen=True)
class Student:
    id: str
    name: str
    email: str = ""
    login: str = ""
    section: str = ""
    file: str = ""


@dataclass
class Roster:
    students: list

    def match(self, submission: str, identity: dict | None) -> Student | None:
        """The roster row of a submission (its results folder name, its Gradescope identity), or None."""
        stem = submission.rsplit(".", 1)[0] if submission.endswith((".zip", ".ipynb")) else submission
        for student in self.students:
            if not student.file:
                continue
            mine = student.file.rsplit(".", 1)[0] if student.file.endswith((".zip", ".ipynb")) else student.file
            if stem == mine or stem.startswith((f"{mine}-", f"{mine}_")):
                return student
        identity = identity or {}
        for student in self.students:
            if identity.get("email") and student.email.lower() == str(identity["email"]).lower():
                return student
            if identity.get("sid") and student.id == str(identity["sid"]):
                return student
        return None


def load_roster(path: Path) -> Roster:
    """Read a roster CSV (see the module docstring).

    Raises:
        RosterError: the file is missing, has neither an id nor an email column, or a row lacks both.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RosterError(f"the roster {path} cannot be read: {err}") from err
    if not rows:
        raise RosterError(f"the roster {path} holds no students")
    header = {k.strip().lower() for k in rows[0] if k}
    if not header & {"id", "email"}:
        raise RosterError(f"the roster {path} needs an 'id' or an 'email' column; it has {sorted(header)}")
    students, seen = [], set()
    for number, row in enumerate(rows, start=2):
        values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        student = Student(values.get("id", ""), values.get("name", ""), values.get("email", ""),
                          values.get("login", ""), values.get("section", ""), values.get("file", ""))
        if not student.id and not student.email:
            raise RosterError(f"{path}, line {number}: neither an id nor an email")
        key = student.id or student.email.lower()
        if key in seen:
            raise RosterError(f"{path}, line {number}: the student {key} is listed twice")
        seen.add(key)
        students.append(student)
    return Roster(students)
