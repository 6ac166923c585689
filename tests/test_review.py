"""Grading the analysis report by hand: the rubric, the review site (in a real headless browser), and merging
the teacher's scores into results.json, feedback.md, the gradebooks and the summary.

The fast tests use synthetic graded folders (results.json signed with the folder's key, files/ as the grader
keeps them); the slow ones grade real analysis submissions (the reference takes minutes to build: a sweep).
"""
from __future__ import annotations

import csv
import http.server
import io
import json
import re
import shutil
import subprocess
import threading
import zipfile
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from autograder.cli import EXIT_USAGE, main
from autograder.results.files import feedback_markdown
from autograder.results.summary import write_summary
from autograder.results.signing import load_key, sign, verify
from autograder.gradebook import write_gradebooks
from autograder.review import ReviewError, apply_manual, build_review, gradescope_text, load_rubric, merge_manual
from autograder.review.manual import MANUAL_STORE
from autograder.review.render import render_markdown
from autograder.rubric import template_questions
from autograder.review.site import CSP

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs a headless browser at /usr/bin/chromium")
RUBRIC = load_rubric("analysis")
IDS = [c.id for c in RUBRIC.criteria]


# --------------------------------------------------------------------------------------------- helpers
def _png(path: Path, colour=(31, 119, 180), size=(320, 240)) -> Path:
    """A colourful stand-in for a plot: a saturated band on white."""
    image = Image.new("RGB", size, "white")
    for x in range(size[0]):
        for y in range(size[1] // 3, 2 * size[1] // 3):
            image.putpixel((x, y), colour)
    image.save(path)
    return path


def _test(name, score, max_score, output="", hidden=False):
    return {"name": name, "number": "0", "score": score, "max_score": max_score,
            "status": "passed" if score >= max_score else "failed", "output": output or ("passed" if score >= max_score else "failed"),
            "visibility": "after_published" if hidden else "visible",
            "extra_data": {"outcome": "passed" if score >= max_score else "failed", "points": max_score, "bonus": False}}


def _synthetic(graded: Path, students: dict[str, str], *, plots=("plot_lr.png", "plot_depth.png")) -> Path:
    """A graded folder as `grade` writes it: per student a signed results.json, feedback.md and files/."""
    graded.mkdir(parents=True)
    key = load_key(graded)
    for index, (name, report) in enumerate(students.items()):
        tests = [_test("build_mlp builds the layers in order", 3, 3),
                 _test("every run of grid.toml is in results.jsonl", 0 if index else 2, 2,
                       "results.jsonl misses 4 runs of the lr study: tanh at 0.01 (seeds 0, 1, 2) ..."),
                 _test("a re-trained row reproduces its numbers", index % 2 * 4, 4, "row 7 differs: test_acc", hidden=True)]
        for number, test in enumerate(tests, start=1):
            test["number"] = str(number)
        results = sign({"score": sum(t["score"] for t in tests), "execution_time": 1.0, "output": "", "visibility": "visible",
                        "stdout_visibility": "hidden", "tests": tests,
                        "extra_data": {"assignment": "analysis", "title": "Assignment: analysis", "submission": name,
                                       "status": "graded", "max_score": 9}}, key)
        folder = graded / name
        (folder / "files").mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (folder / "feedback.md").write_text(feedback_markdown(results, title="Assignment: analysis", submission=name))
        if report is not None:
            (folder / "files" / "report.md").write_text(report)
        for plot in plots:
            _png(folder / "files" / plot)
        (folder / "files" / "results.jsonl").write_text("{}\n")
    write_gradebooks(graded, "csv")
    write_summary(graded)
    return graded


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _sheet(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _fill(rows: list[list[str]], scores: dict[str, dict], comments: dict[str, str] | None = None) -> list[list[str]]:
    header = rows[0]
    columns = {re.sub(r" \(.*\)$", "", title): index for index, title in enumerate(header)}
    out = [list(header)]
    for row in rows[1:]:
        row = list(row)
        for cid, value in scores.get(row[0], {}).items():
            row[columns[cid]] = str(value)
        if comments and row[0] in comments:
            row[columns["comment"]] = comments[row[0]]
        out.append(row)
    return out


def _write_sheet(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _results(graded: Path, name: str) -> dict:
    return json.loads((graded / name / "results.json").read_text())


def _manual_tests(results: dict) -> list[dict]:
    return [t for t in results["tests"] if t.get("extra_data", {}).get("manual")]


REPORT = """# Report: analysing an MLP on MNIST

## Q1. Activation functions

> Which activation function reaches the best test accuracy?

LeakyReLU reaches **95.0%** at lr 0.003, see the figure:

![learning rate](plot_lr.png)

| activation | best lr |
| --- | --: |
| relu | 0.003 |
"""


# ------------------------------------------------------------------------------------------------ rubric
def test_analysis_rubric_grades_every_question_of_the_report_template():
    template = (Path(__file__).parents[1] / "assignments" / "analysis" / "handout" / "report.md").read_text()
    asked = template_questions(template)
    assert [q.id for q in RUBRIC.questions] == list(asked) == [f"Q{n}" for n in range(1, 8)]
    assert len(set(IDS)) == len(IDS) and all(c.points > 0 and len(c.earns.split()) >= 12 for c in RUBRIC.criteria)
    for question in RUBRIC.questions:
        assert question.text == asked[question.id][1] and question.criteria
    assert RUBRIC.points == sum(c.points for c in RUBRIC.criteria) == 25
    text = gradescope_text(RUBRIC)
    assert "25 points in all" in text and all(f"{c.id}: {c.name}" in text for c in RUBRIC.criteria)


def test_review_prints_the_rubric_as_gradescope_question_text(capsys):
    assert main(["review", "--print-rubric", "--assignment", "analysis"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The report (graded by hand): analysis") and "Question 7: Q7." in out and "+2  Q7b:" in out
    assert main(["review", "--print-rubric"]) == EXIT_USAGE
    assert "--assignment" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('id = "Q7"', 'id = "Q9"'), "Q9 is not a question of report.md"),
    (lambda t: t.replace('id = "Q1b"', 'id = "Q1a"'), "id Q1a is used twice"),
    (lambda t: t.replace("points = 2", "points = -1", 1), r"\(Q1a\): `points` must be a positive number"),
    (lambda t: t[:t.index('[[question]]\nid = "Q7"')], "no criteria for Q7"),
    (lambda t: t.replace('id = "Q2a"', 'id = "Q2 a"'), "is a column of the score sheet"),
])
def test_a_broken_rubric_is_a_clear_error(tmp_path, change, message):
    source = Path(__file__).parents[1] / "assignments" / "analysis"
    (tmp_path / "analysis" / "handout").mkdir(parents=True)
    shutil.copy(source / "handout" / "report.md", tmp_path / "analysis" / "handout" / "report.md")
    (tmp_path / "analysis" / "rubric.toml").write_text(change((source / "rubric.toml").read_text()))
    with pytest.raises(ReviewError, match=message):
        load_rubric("analysis", assignments_dir=tmp_path)


# ------------------------------------------------------------------------------------------------ render
def test_student_markdown_is_rendered_and_sanitised():
    hostile = REPORT + """
<script>document.title = "pwned"</script>

<img src="x.png" onerror="document.title='pwned'"> <b onclick="alert(1)">bold</b> <sup>2</sup>

![beacon](http://127.0.0.1:9/beacon.png) ![inline](data:image/png;base64,iVBORw0KGgo=) ![up](../../secret.png)

<img src="http://127.0.0.1:9/raw.png"> <img srcset="http://127.0.0.1:9/set.png 1x"> <IMG SRC="jav&#x09;ascript:x">

<style>body { background: url(http://127.0.0.1:9/css.png) }</style><link rel="stylesheet" href="http://127.0.0.1:9/x.css">

<iframe src="http://127.0.0.1:9/frame"></iframe><base href="http://127.0.0.1:9/"><meta http-equiv="refresh" content="0">

<svg><image href="http://127.0.0.1:9/svg.png"/></svg><a href="javascript:alert(1)">js</a> [fine](https://example.com)

<div style="background-image: url(http://127.0.0.1:9/style.png)">styled</div>
"""
    html = render_markdown(hostile, images={"plot_lr.png": "files/plot_lr.png"})
    assert "<h2>Q1. Activation functions</h2>" in html and "<strong>95.0%</strong>" in html
    assert '<td style="text-align:right">0.003</td>' in html  # Markdown's own table alignment survives
    assert '<img src="files/plot_lr.png" alt="learning rate">' in html
    for gone in ("<script", "pwned", "onerror", "onclick", "<style", "<link", "<iframe", "<base", "<meta", "<svg",
                 "javascript:", "srcset", "background"):
        assert gone not in html.lower(), gone
    assert not re.search(r"""(src|href)\s*=\s*["']?http://127\.0\.0\.1:9""", html), html
    assert re.findall(r'<img[^>]*src="([^"]*)"', html) == ["files/plot_lr.png"]
    assert "[image not shown: 'http://127.0.0.1:9/beacon.png' is not a file of this submission (beacon)]" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">fine</a>' in html


# ------------------------------------------------------------------------------------------ review site
def test_review_site_shows_each_report_its_plots_the_rubric_and_the_failed_tests(tmp_path, capsys):
    graded = _synthetic(tmp_path / "graded", {"alice": REPORT, "bob": None})
    (graded / "alice" / "files" / "plot_fake.png").write_text("<script>not an image</script>")
    assert main(["review", str(graded)]) == 0
    assert "manual-scores.csv" in capsys.readouterr().out
    site = graded / "review"
    index = (site / "index.html").read_text()
    assert 'href="alice/index.html"' in index and 'href="bob/index.html"' in index and "7 / 9" in index
    alice = (site / "alice" / "index.html").read_text()
    head = alice[alice.index("<head>"):alice.index("</head>")]
    assert head.split("\n")[1] == f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    assert "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'" in CSP
    assert "LeakyReLU reaches <strong>95.0%</strong>" in alice
    assert sorted(p.name for p in (site / "alice" / "files").iterdir()) == ["plot_depth.png", "plot_lr.png"]
    assert 'src="files/plot_depth.png"' in alice and "plot_fake.png" not in alice
    assert all(f"<b>{cid}</b>" in alice for cid in IDS)
    assert "every run of grid.toml is in results.jsonl" not in alice  # alice passed it
    bob = (site / "bob" / "index.html").read_text()
    assert "results.jsonl misses 4 runs of the lr study" in bob and "report.md was not submitted" in bob
    rows = _sheet(site / "manual-scores.csv")
    assert rows[0] == ["submission", "autograded", *[f"{c.id} ({c.points:g})" for c in RUBRIC.criteria], "comment"]
    assert [r[:2] for r in rows[1:]] == [["alice", "5"], ["bob", "7"]] and all(set(r[2:]) == {""} for r in rows[1:])
    assert not list(graded.glob(".review-*"))


def test_review_needs_a_graded_folder_with_a_rubric(tmp_path, capsys):
    assert main(["review", str(tmp_path / "missing")]) == EXIT_USAGE
    assert "not a folder written by `grade`" in capsys.readouterr().err
    assert main(["review", str(tmp_path)]) == EXIT_USAGE
    assert "has a rubric" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- merge
def test_merge_round_trip_folds_the_scores_into_every_output(tmp_path, capsys):
    graded = _synthetic(tmp_path / "graded", {"alice": REPORT, "bob": REPORT, "carol": None})
    build_review(graded)
    merge_manual(graded, graded / "review" / "manual-scores.csv")  # the blank sheet: nothing graded by hand yet
    assert _results(graded, "alice")["score"] == 5 and _results(graded, "alice")["extra_data"]["max_score"] == 9
    assert not _manual_tests(_results(graded, "alice"))
    png_before = (graded / "scores.png").read_bytes()
    sheet = _write_sheet(tmp_path / "filled.csv", _fill(_sheet(graded / "review" / "manual-scores.csv"),
                         {"alice": {"Q1a": 2, "Q1b": 1.5, "Q7c": 1}, "bob": {"Q1a": 0}}, {"alice": "Quote more numbers."}))
    assert main(["merge", str(graded), "--manual", str(sheet)]) == 0
    assert "merged 4 score(s)" in capsys.readouterr().out
    key = load_key(graded)
    alice = _results(graded, "alice")
    assert verify(alice, key)
    manual = _manual_tests(alice)
    assert [t["extra_data"]["criterion"] for t in manual] == [*IDS, None]  # every criterion, then the comment
    assert all(t["visibility"] == "after_published" for t in manual)
    given = {t["extra_data"]["criterion"]: t["score"] for t in manual}
    assert given["Q1a"] == 2 and given["Q1b"] == 1.5 and given["Q7c"] == 1 and given["Q2a"] == 0
    assert manual[-1]["output"] == "Quote more numbers."
    assert alice["score"] == 5 + 4.5 and alice["extra_data"]["max_score"] == 9 + 25
    assert alice["extra_data"]["manual"] == {**alice["extra_data"]["manual"], "score": 4.5, "graded": 3, "max_score": 25}
    assert [t["number"] for t in alice["tests"]] == [str(n) for n in range(1, len(alice["tests"]) + 1)]
    carol = _results(graded, "carol")  # not graded by hand yet: every criterion at 0, same maximum for all
    assert verify(carol, key) and carol["extra_data"]["max_score"] == 34 and carol["score"] == 3
    assert {t["extra_data"]["outcome"] for t in _manual_tests(carol)} == {"not graded"}
    feedback = (graded / "alice" / "feedback.md").read_text()
    assert "**Score: 9.5 / 34**" in feedback and "Q1b: Largest learning rate, explained by the shape (graded by hand)" in feedback
    assert "| 1.5 / 2 |" in feedback and "Quote more numbers." in feedback
    book = {r["submission"]: r for r in csv.DictReader(open(graded / "gradebook-analysis-csv.csv"))}
    assert book["alice"]["score"] == "9.5" and book["alice"]["max_score"] == "34" and book["bob"]["score"] == "7"
    detail = _sheet(graded / "gradebook-analysis-tests.csv")
    column = next(i for i, name in enumerate(detail[0]) if name.startswith("report.md Q1b:"))
    assert detail[1][column] == "2" and [r[column] for r in detail[2:]] == ["1.5", "0", "0"]
    summary = (graded / "summary.md").read_text()
    assert "| criterion (graded by hand) | mean points |" in summary
    assert "| report.md Q1a: Best activation, with numbers (graded by hand) | 1.00 of 2 (2 graded) |" in summary
    assert "mean 6.5," in summary and (graded / "scores.png").read_bytes() != png_before

    # A second, partial sheet: its cells overwrite, its empty cells keep what was merged before.
    build_review(graded)
    rows = _sheet(graded / "review" / "manual-scores.csv")
    assert rows[1][rows[0].index("Q1b (2)")] == "1.5" and rows[1][-1] == "Quote more numbers."  # prefilled
    second = _write_sheet(tmp_path / "second.csv", [rows[0], ["bob"] + [""] * (len(rows[0]) - 1)])
    second_rows = _fill(_sheet(second), {"bob": {"Q2a": 1}})
    merge_manual(graded, _write_sheet(second, second_rows))
    bob = {t["extra_data"]["criterion"]: t["score"] for t in _manual_tests(_results(graded, "bob"))}
    assert bob["Q1a"] == 0 and bob["Q2a"] == 1
    assert _results(graded, "alice")["score"] == 9.5
    again = _snapshot(graded)
    merge_manual(graded, second)  # merging the same sheet twice changes nothing but the rewritten summaries
    assert {k: v for k, v in _snapshot(graded).items() if k.endswith(("results.json", "feedback.md"))} == \
           {k: v for k, v in again.items() if k.endswith(("results.json", "feedback.md"))}


@pytest.mark.parametrize("edit, message", [
    (lambda rows: _fill(rows, {"alice": {"Q1a": 3}}), r"line 2, Q1a \(alice\): 3 is above the criterion's 2 points"),
    (lambda rows: _fill(rows, {"bob": {"Q2b": -1}}), r"line 3, Q2b \(bob\): -1 is not a score from 0 to 1"),
    (lambda rows: _fill(rows, {"bob": {"Q2b": "good"}}), r"'good' is not a number of points"),
    (lambda rows: rows + [["mallory"] + [""] * (len(rows[0]) - 1)], r"line 4: unknown submission 'mallory'"),
    (lambda rows: [[*rows[0][:-1], "Q8a (2)", "comment"]] + [[*r[:-1], "1", r[-1]] for r in rows[1:]],
     r"unknown criterion 'Q8a \(2\)'.*the rubric of analysis has Q1a, Q1b"),
    (lambda rows: rows + [rows[1]], r"line 4: alice has a second row \(the first is line 2\)"),
    (lambda rows: [["student", *rows[0][1:]]] + rows[1:], r"no 'submission' column"),
])
def test_merge_refuses_bad_sheets_and_changes_nothing(tmp_path, edit, message, capsys):
    graded = _synthetic(tmp_path / "graded", {"alice": REPORT, "bob": REPORT})
    build_review(graded)
    merge_manual(graded, _write_sheet(tmp_path / "first.csv", _fill(_sheet(graded / "review" / "manual-scores.csv"),
                                                                      {"alice": {"Q1a": 1}})))
    rows = _fill(_sheet(graded / "review" / "manual-scores.csv"), {"alice": {"Q1b": 2}})  # a valid cell as well
    sheet = _write_sheet(tmp_path / "bad.csv", edit(rows))
    before = _snapshot(graded)
    with pytest.raises(ReviewError, match=message):
        merge_manual(graded, sheet)
    assert main(["merge", str(graded), "--manual", str(sheet)]) == EXIT_USAGE
    assert "nothing was written" in capsys.readouterr().err
    assert _snapshot(graded) == before


def test_merge_refuses_results_or_stored_scores_it_did_not_sign(tmp_path):
    graded = _synthetic(tmp_path / "graded", {"alice": REPORT, "bob": REPORT})
    build_review(graded)
    sheet = _write_sheet(tmp_path / "s.csv", _fill(_sheet(graded / "review" / "manual-scores.csv"), {"bob": {"Q1a": 2}}))
    merge_manual(graded, sheet)
    store = json.loads((graded / MANUAL_STORE).read_text())
    store["assignments"]["analysis"]["submissions"]["bob"]["scores"]["Q1b"] = 2  # a student's wish
    (graded / MANUAL_STORE).write_text(json.dumps(store))
    before = _snapshot(graded)
    with pytest.raises(ReviewError, match="manual-scores.json does not carry this grader's signature"):
        merge_manual(graded, sheet)
    assert _snapshot(graded) == before
    # ... and the grader ignores the forged store when it writes results (and says so)
    results = apply_manual(_results(graded, "alice"), graded)
    assert "does not carry this grader's signature" in results["extra_data"]["manual_problem"]

    graded = _synthetic(tmp_path / "other", {"alice": REPORT})
    forged = _results(graded, "alice")
    forged["score"] = 9
    (graded / "alice" / "results.json").write_text(json.dumps(forged))
    build_review(graded)
    assert "NOT VALID" in (graded / "review" / "index.html").read_text()
    before = _snapshot(graded)
    with pytest.raises(ReviewError, match="alice/results.json does not carry this grader's signature"):
        merge_manual(graded, graded / "review" / "manual-scores.csv")
    assert _snapshot(graded) == before


def test_the_grader_reapplies_merged_scores_when_it_writes_results(tmp_path):
    """grade.py's _write (every submission graded again) keeps what was merged, signed."""
    from autograder.grade.grade import _write
    from autograder.config import load_assignment

    graded = _synthetic(tmp_path / "graded", {"alice": REPORT})
    build_review(graded)
    merge_manual(graded, _write_sheet(tmp_path / "s.csv", _fill(_sheet(graded / "review" / "manual-scores.csv"),
                                                                  {"alice": {"Q3a": 2, "Q3b": 1}}, {"alice": "ok"})))
    key = load_key(graded)
    batch = SimpleNamespace(out_dir=graded, key=key, mode="bwrap")
    outcome = _write(batch, graded / "alice", "alice", load_assignment("analysis"), [], "re-graded", "graded", 1.0, {})
    results = _results(graded, "alice")
    assert verify(results, key) and outcome.score == results["score"] == 3
    assert {t["extra_data"]["criterion"]: t["score"] for t in _manual_tests(results)}["Q3a"] == 2
    assert "Q3b: Why depth hurts Sigmoid more (graded by hand)" in (graded / "alice" / "feedback.md").read_text()
    assert results["extra_data"]["manual"]["report_changed"] is False
    (graded / "alice" / "files" / "report.md").write_text(REPORT + "\nA new answer.\n")  # a new submission
    _write(batch, graded / "alice", "alice", load_assignment("analysis"), [], "", "graded", 1.0, {})
    assert _results(graded, "alice")["extra_data"]["manual"]["report_changed"] is True
    build_review(graded)
    assert "changed since it was graded by hand" in (graded / "review" / "alice" / "index.html").read_text()


# ------------------------------------------------------------------------------------ the real browser
class _Counter(http.server.BaseHTTPRequestHandler):
    """Counts every request (the "remote" server a hostile report tries to reach)."""

    seen: list = []

    def _any(self):
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        buffer = io.BytesIO()
        Image.new("RGB", (1, 1), (255, 0, 0)).save(buffer, "PNG")
        self.wfile.write(buffer.getvalue())

    do_GET = do_POST = do_HEAD = do_OPTIONS = _any

    def log_message(self, *args):
        pass


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(handler) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def beacon():
    """A local server on PORT that counts the requests it gets: (port, list of requests)."""
    handler = type("Beacon", (_Counter,), {"seen": []})
    server = _serve(handler)
    yield server.server_address[1], handler.seen
    server.shutdown()


def _chromium(tmp_path: Path, url: str, *, screenshot: Path | None = None) -> str:
    profile = tmp_path / f"chrome-{len(list(tmp_path.glob('chrome-*')))}"
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
               "--virtual-time-budget=3000"]
    command += [f"--screenshot={screenshot}", "--window-size=1280,2000"] if screenshot else ["--dump-dom"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if screenshot:
        assert screenshot.is_file(), done.stderr[-2000:]
    return done.stdout


def _saturated_pixels(path: Path) -> int:
    """Pixels of a clear colour: the plots have them, the page's own grey layout and text do not."""
    import numpy as np

    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())


def _dark_pixels(path: Path) -> int:
    import numpy as np

    return int((np.asarray(Image.open(path).convert("L")) < 100).sum())


@needs_chromium
def test_the_content_security_policy_alone_stops_scripts_and_remote_loads(tmp_path, beacon):
    """The second line of defence: even unsanitised HTML under the page's policy runs nothing and loads nothing."""
    from autograder.review.site import page

    port, seen = beacon
    raw = (f'<p id="text">unsanitised</p><script>document.title="pwned";</script>'
           f'<img src="http://127.0.0.1:{port}/img.png" onerror="document.title=\'pwned\'">'
           f'<link rel="stylesheet" href="http://127.0.0.1:{port}/x.css">'
           f'<div style="background:url(http://127.0.0.1:{port}/bg.png);height:20px"></div>')
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "raw.html").write_text(page("csp test", raw))
    site = _serve(partial(_Quiet, directory=str(tmp_path / "site")))
    try:
        dom = _chromium(tmp_path, f"http://127.0.0.1:{site.server_address[1]}/raw.html")
    finally:
        site.shutdown()
    assert "<title>csp test</title>" in dom and '<p id="text">unsanitised</p>' in dom  # the script did not run
    assert seen == []


def _hostile_report(report: str, port: int) -> str:
    """The reference's report (every question answered) with an attack on the review site in its first answer."""
    attack = f"""The hostile student's own words: LeakyReLU wins.

<script>document.title = "pwned"; var d = document.createElement("div"); d.id = "pwned";
document.body.appendChild(d); new Image().src = "http://127.0.0.1:{port}/script-ran";</script>

<img src="nothing-here.png" onerror="document.title='pwned'; new Image().src='http://127.0.0.1:{port}/onerror-ran'">

![x](http://127.0.0.1:{port}/beacon.png)

<img src="http://127.0.0.1:{port}/raw-img.png"> <img srcset="http://127.0.0.1:{port}/srcset.png 1x">

<style>body {{ background: url(http://127.0.0.1:{port}/style.png) }}</style>
<link rel="stylesheet" href="http://127.0.0.1:{port}/link.css">
<iframe src="http://127.0.0.1:{port}/frame"></iframe>
<base href="http://127.0.0.1:{port}/">
<meta http-equiv="refresh" content="0; url=http://127.0.0.1:{port}/refresh">
<video poster="http://127.0.0.1:{port}/poster.png"></video>
<svg><image href="http://127.0.0.1:{port}/svg.png"/></svg>

![the learning rate](plot_lr.png)

"""
    assert "\n## Q2." in report
    return report.replace("\n## Q2.", "\n" + attack + "## Q2.", 1)


@pytest.fixture(scope="module")
def beacon_server():
    handler = type("ModuleBeacon", (_Counter,), {"seen": []})
    server = _serve(handler)
    yield server.server_address[1], handler.seen
    server.shutdown()


@pytest.fixture(scope="module")
def real_graded(build_submissions, data_dir, tmp_path_factory, beacon_server):
    """The analysis reference, the stub and a hostile report (the reference's zip with its report replaced), graded."""
    from autograder.grade import grade_path

    port, _ = beacon_server
    built = build_submissions("analysis")
    folder = tmp_path_factory.mktemp("review-submissions")
    for kind in ("reference", "stub"):
        shutil.copy(built / f"analysis-{kind}.zip", folder / f"analysis-{kind}.zip")
    with zipfile.ZipFile(built / "analysis-reference.zip") as old, \
            zipfile.ZipFile(folder / "analysis-hostile.zip", "w") as new:
        for name in old.namelist():
            data = old.read(name)
            new.writestr(name, _hostile_report(data.decode(), port) if name == "report.md" else data)
    out = tmp_path_factory.mktemp("review-graded")
    outcomes = {o.name: o for o in grade_path(folder, out_dir=out, data_dir=data_dir, jobs=2)}
    return folder, out, outcomes


@pytest.mark.slow
@needs_chromium
def test_review_site_of_real_submissions_in_a_headless_browser(real_graded, beacon_server, tmp_path):
    _, graded, outcomes = real_graded
    port, seen = beacon_server
    assert outcomes["analysis-reference"].score == outcomes["analysis-reference"].max_score > 0
    assert outcomes["analysis-stub"].score == 0
    site = build_review(graded)
    assert sorted(p.name for p in (site / "analysis-hostile" / "files").iterdir()) == \
           ["plot_depth.png", "plot_lr.png", "plot_overfit.png", "plot_schedules.png", "plot_width.png"]
    hostile_html = (site / "analysis-hostile" / "index.html").read_text()
    assert not re.search(rf"""(src|href|srcset|poster)\s*=\s*["']?[^"'>]*127\.0\.0\.1:{port}""", hostile_html)

    server = _serve(partial(_Quiet, directory=str(site)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        index = _chromium(tmp_path, f"{base}/index.html")
        pages = {}
        for name in ("analysis-reference", "analysis-stub", "analysis-hostile"):
            shot = tmp_path / f"{name}.png"
            pages[name] = (_chromium(tmp_path, f"{base}/{name}/index.html"),
                           _chromium(tmp_path, f"{base}/{name}/index.html", screenshot=shot), shot)
    finally:
        server.shutdown()
    assert all(f'href="{name}/index.html"' in index for name in pages) and "89 / 89" in index

    dom, _, shot = pages["analysis-hostile"]
    assert "<title>analysis-hostile: report.md</title>" in dom  # the script did not change it
    assert 'id="pwned"' not in dom and "<script" not in dom and "onerror" not in dom
    assert "The hostile student's own words: LeakyReLU wins." in dom
    assert f"[image not shown: 'http://127.0.0.1:{port}/beacon.png' is not a file of this submission (x)]" in dom
    assert '<img src="files/plot_lr.png" alt="the learning rate">' in dom
    assert seen == [], f"the page made remote requests: {seen}"

    dom, _, shot = pages["analysis-reference"]
    assert "Reference submission: this answer was generated by the kit." in dom
    assert all(f'src="files/plot_{p}.png"' in dom for p in ("lr", "depth", "width", "overfit", "schedules"))
    assert "Every autograded test passed." in dom and all(f"<b>{cid}</b>" in dom for cid in IDS)
    skipped = [t for t in _results(graded, "analysis-reference")["tests"] if t["extra_data"]["outcome"] == "skipped"]
    assert all(t["name"] in dom for t in skipped)  # listed as skipped (the CUDA check without a GPU), not as failed
    reference_colour = _saturated_pixels(shot)
    stub_dom, _, stub_shot = pages["analysis-stub"]
    assert "The submission holds no image." in stub_dom and "Autograded tests that did not pass" in stub_dom
    # the five plots are drawn (about 5,000 clearly coloured pixels at this size), and only they are colourful
    assert _saturated_pixels(stub_shot) < 100 < 2000 < reference_colour
    assert _saturated_pixels(pages["analysis-hostile"][2]) > reference_colour  # + the plot its report shows inline
    assert _dark_pixels(shot) > 20_000 and _dark_pixels(stub_shot) > 20_000  # and the text of the pages


@pytest.mark.slow
def test_merge_round_trip_on_real_results_survives_regrading(real_graded, data_dir, tmp_path):
    from autograder.grade import grade_path

    submissions, graded, _ = real_graded
    build_review(graded)
    names = ["analysis-hostile", "analysis-reference", "analysis-stub"]
    rows = _sheet(graded / "review" / "manual-scores.csv")
    assert [r[0] for r in rows[1:]] == names
    sheet = _write_sheet(tmp_path / "filled.csv", _fill(rows, {
        "analysis-reference": {cid: c.points for cid, c in zip(IDS, RUBRIC.criteria)},
        "analysis-stub": {"Q1a": 0, "Q1b": 0.5}, "analysis-hostile": {"Q1a": 1}}, {"analysis-hostile": "No <script>, please."}))
    bad = _write_sheet(tmp_path / "bad.csv", _fill(rows, {"analysis-stub": {"Q7b": 2.5}}))
    before = _snapshot(graded)
    assert main(["merge", str(graded), "--manual", str(bad)]) == EXIT_USAGE
    assert _snapshot(graded) == before

    assert main(["merge", str(graded), "--manual", str(sheet)]) == 0
    key = load_key(graded)
    expected = {"analysis-reference": 89 + 25, "analysis-stub": 0.5, "analysis-hostile": 89 + 1}
    for name, score in expected.items():
        results = _results(graded, name)
        assert verify(results, key) and results["score"] == score and results["extra_data"]["max_score"] == 89 + 25
        assert len([t for t in _manual_tests(results) if t["max_score"]]) == len(IDS)
    assert "| report.md Q1b: Largest learning rate, explained by the shape (graded by hand) | 0.5 / 2 |" in \
           (graded / "analysis-stub" / "feedback.md").read_text()
    book = {r["submission"]: r["score"] for r in csv.DictReader(open(graded / "gradebook-analysis-csv.csv"))}
    assert book == {name: f"{score:g}" for name, score in expected.items()}
    assert "| report.md Q1a: Best activation, with numbers (graded by hand) | 1.00 of 2 (3 graded) |" in \
           (graded / "summary.md").read_text()

    # Grade the batch again: unchanged zips keep their results, and the stub, graded afresh, gets its scores back.
    (graded / "analysis-stub" / "results.json").unlink()
    outcomes = {o.name: o for o in grade_path(submissions, out_dir=graded, data_dir=data_dir, jobs=2)}
    assert outcomes["analysis-stub"].status == "graded"  # the others: "unchanged" (or graded again if the kit changed)
    for name, score in expected.items():
        results = _results(graded, name)
        assert verify(results, key) and results["score"] == score, name
    assert "graded by hand" in (graded / "summary.md").read_text()
    book = {r["submission"]: r["score"] for r in csv.DictReader(open(graded / "gradebook-analysis-csv.csv"))}
    assert book == {name: f"{score:g}" for name, score in expected.items()}
