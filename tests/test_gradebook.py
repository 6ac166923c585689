"""Gradebooks an LMS imports in one step: Canvas, Moodle, Gradescope and plain CSV, with or without a roster."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.gradebook import RosterError, load_roster, write_gradebooks


def _graded(folder: Path, name: str, assignment: str, score: float, *, maximum: float = 10.0, identity=None):
    """A results.json as the grader writes it (only the fields the gradebooks read)."""
    extra = {"assignment": assignment, "title": f"Assignment {assignment}", "submission": name, "status": "graded",
             "max_score": maximum, **({"identity": identity} if identity else {})}
    tests = [{"name": "shape", "score": min(score, 4.0), "max_score": 4.0},
             {"name": "accuracy", "score": max(0.0, score - 4.0), "max_score": maximum - 4.0}]
    (folder / name).mkdir(parents=True)
    (folder / name / "results.json").write_text(json.dumps({"score": score, "tests": tests, "extra_data": extra}))


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def graded(tmp_path):
    folder = tmp_path / "graded"
    _graded(folder, "alice", "mlp", 10)
    _graded(folder, "bob", "mlp", 4)
    _graded(folder, "alice-2", "mlp", 7)  # alice's second submission
    _graded(folder, "mallory", "mlp", 9)  # not in the roster
    _graded(folder, "alice-cnn", "cnn", 8, maximum=12)
    return folder


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("file,id,name,email,login,section\n"
                    "alice.zip,s1,Alice Ada,alice@example.org,aada,A\n"
                    "bob.zip,s2,Bob Byte,bob@example.org,bbyte,B\n"
                    ",s3,Carol Core,carol@example.org,ccore,A\n")
    return load_roster(path)


def test_gradebook_canvas_follows_the_import_format(graded, roster):
    written, _ = write_gradebooks(graded, "canvas", roster=roster, ids={"mlp": "4711"})
    rows = _rows(graded / "gradebook-mlp-canvas.csv")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Assignment mlp (4711)"]
    assert rows[1][0] == "Points Possible" and rows[1][-1] == "10"
    assert rows[2:] == [["Alice Ada", "", "s1", "aada", "A", "10"], ["Bob Byte", "", "s2", "bbyte", "B", "4"],
                        ["Carol Core", "", "s3", "ccore", "A", ""]]
    assert graded / "gradebook-mlp-tests.csv" in written


def test_gradebook_moodle_has_one_identifier_and_one_numeric_column(graded, roster):
    write_gradebooks(graded, "moodle", roster=roster)
    rows = _rows(graded / "gradebook-mlp-moodle.csv")
    assert rows[0] == ["useremail", "mlp"]
    assert rows[1:3] == [["alice@example.org", "10"], ["bob@example.org", "4"]]
    assert all(r[1] == "" or float(r[1]) >= 0 for r in rows[1:])


def test_gradebook_gradescope_and_csv_formats(graded, roster):
    write_gradebooks(graded, "gradescope", roster=roster)
    assert _rows(graded / "gradebook-mlp-gradescope.csv")[0] == ["Name", "SID", "Email", "Assignment mlp"]
    write_gradebooks(graded, "csv", roster=roster)
    rows = list(csv.DictReader(open(graded / "gradebook-mlp-csv.csv")))
    assert {r["id"]: r["status"] for r in rows} == {"s1": "graded", "s2": "graded", "s3": "missing"}


def test_gradebook_lists_missing_unknown_and_duplicate_students(graded, roster):
    _, problems = write_gradebooks(graded, "csv", roster=roster)
    lines = "\n".join(problems.lines())
    assert "Carol Core (s3) has no submission" in lines
    assert "mallory is not in the roster" in lines
    assert "Alice Ada has 2 submissions (alice, alice-2); the higher score is used" in lines
    report = (graded / "gradebook-problems.txt").read_text()
    assert "mallory" in report and "Carol Core" in report


def test_gradebook_two_submissions_of_one_student_keep_the_higher_score(tmp_path):
    folder = tmp_path / "graded"
    _graded(folder, "a1", "mlp", 6, identity={"email": "ada@example.org", "sid": "s9", "name": "Ada"})
    _graded(folder, "a2", "mlp", 8, identity={"email": "ada@example.org", "sid": "s9", "name": "Ada"})
    roster_file = tmp_path / "roster.csv"
    roster_file.write_text("id,name,email\ns9,Ada,ada@example.org\n")
    _, problems = write_gradebooks(folder, "csv", roster=load_roster(roster_file))
    rows = list(csv.DictReader(open(folder / "gradebook-mlp-csv.csv")))
    assert [(r["id"], r["score"], r["submission"]) for r in rows] == [("s9", "8", "a2")]
    assert "Ada has 2 submissions (a1, a2); the higher score is used" in "\n".join(problems.lines())


def test_gradebook_without_roster_names_students_after_their_files(graded):
    _, problems = write_gradebooks(graded, "canvas")
    rows = _rows(graded / "gradebook-mlp-canvas.csv")
    assert [r[2] for r in rows[2:]] == ["alice", "alice-2", "bob", "mallory"] and not problems
    detail = _rows(graded / "gradebook-cnn-tests.csv")
    assert detail[0] == ["student", "id", "submission", "score", "shape", "accuracy"]
    assert detail[1] == ["max_score", "", "", "12", "4", "8"] and detail[2][-1] == "4"


def test_gradebook_roster_errors_are_clear(tmp_path):
    bad = tmp_path / "roster.csv"
    bad.write_text("name\nAda\n")
    with pytest.raises(RosterError, match="needs an 'id' or an 'email' column"):
        load_roster(bad)
    bad.write_text("id,name\ns1,Ada\ns1,Ada again\n")
    with pytest.raises(RosterError, match="line 3: the student s1 is listed twice"):
        load_roster(bad)


def test_gradebook_cli_writes_the_format_and_notes_problems(graded, tmp_path, capsys):
    roster_file = tmp_path / "roster.csv"
    roster_file.write_text("file,id,name,email\nalice,s1,Alice,alice@example.org\n")
    assert main(["gradebook", str(graded), "--format", "canvas", "--roster", str(roster_file), "--id", "mlp=12"]) == 0
    out = capsys.readouterr().out
    assert "gradebook-mlp-canvas.csv" in out and "note: mlp: bob is not in the roster" in out
    assert _rows(graded / "gradebook-mlp-canvas.csv")[0][-1] == "Assignment mlp (12)"


@pytest.mark.slow
def test_gradebook_of_a_graded_batch_of_several_assignments(submissions, data_dir, tmp_path):
    """A real batch (mlp and im2col, reference and stub): one gradebook per assignment in every format."""
    from autograder.grade import grade_path

    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("mlp-reference", "mlp-stub", "im2col-reference", "im2col-stub"):
        (batch / f"{name}.zip").write_bytes((submissions / f"{name}.zip").read_bytes())
    out = tmp_path / "out"
    outcomes = {o.name: o for o in grade_path(batch, out_dir=out, data_dir=data_dir, jobs=2)}
    for fmt in ("canvas", "moodle", "gradescope", "csv"):
        written, problems = write_gradebooks(out, fmt)
        assert {p.name for p in written} >= {f"gradebook-mlp-{fmt}.csv", f"gradebook-im2col-{fmt}.csv"}
        assert not problems
    rows = _rows(out / "gradebook-mlp-canvas.csv")
    assert rows[1][-1] == f"{outcomes['mlp-reference'].max_score:g}"
    assert sorted(r[-1] for r in rows[2:]) == sorted([f"{outcomes['mlp-reference'].score:g}", "0"])
