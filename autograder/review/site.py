"""The review site: ``GRADED/review/``, static HTML for reading and grading the reports by hand.

    review/index.html              every submission of the assignment: autograded score, failed tests,
                                   report and plots found, score given by hand (once merged)
    review/rubric.html             the rubric alone
    review/<name>/index.html       the report rendered from Markdown, every plot of the submission, the
                                   rubric beside it, and the autograded tests that failed, with their messages
    review/<name>/files/           the submission's images, copied (the only images a page may show)
    review/manual-scores.csv       the score sheet: one row per submission, one column per criterion

Student content is untrusted: it is sanitised (:mod:`.render`), and every page carries a Content-Security-Policy
(no script, no remote load of any kind, images only from the site itself) as a second line of defence. The
site is built in a temporary folder and swapped in whole. Re-building it keeps what the teacher already typed
into ``manual-scores.csv`` and fills in the scores merged before.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..results.manual import FILES, is_manual, load_store, read_key
from ..rubric import ReviewError, Rubric, load_rubric
from .manual import Graded, graded_submissions, read_sheet, resolve_assignment, write_sheet
from .render import escape, render_markdown

SITE = "review"
SHEET = "manual-scores.csv"
CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "WEBP"}
MAX_IMAGE_PIXELS = 40_000_000
MAX_REPORT_BYTES = 2 * 2**20

STYLE = """
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #222; background: #fff; }
header.top { padding: 10px 20px; border-bottom: 1px solid #ccc; background: #f4f4f4; }
header.top h1 { margin: 0; font-size: 20px; }
nav a, a { color: #333; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 420px; gap: 24px; padding: 16px 20px; }
aside { position: sticky; top: 0; align-self: start; max-height: 100vh; overflow: auto; border-left: 1px solid #ccc;
        padding-left: 16px; }
.report { border: 1px solid #ddd; padding: 4px 16px; background: #fff; }
.report img { max-width: 100%; }
.report blockquote { color: #555; border-left: 3px solid #ccc; margin-left: 0; padding-left: 12px; }
.report table, table.list { border-collapse: collapse; }
.report td, .report th, table.list td, table.list th { border: 1px solid #ccc; padding: 3px 8px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; width: 380px; }
.plots img { width: 380px; border: 1px solid #ddd; }
.plots figcaption { font-size: 13px; color: #555; }
.criterion { margin: 4px 0 8px 0; }
.criterion .pts { font-weight: bold; }
.criterion .earns { color: #444; font-size: 13px; }
.given { font-weight: bold; }
.warn { background: #eee; border-left: 4px solid #555; padding: 6px 10px; }
pre.message { white-space: pre-wrap; background: #f6f6f6; padding: 6px; font-size: 13px; }
.muted { color: #666; }
"""


def page(title: str, body: str) -> str:
    """A complete page; the policy comes first in <head>, before anything a browser could act on."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        "<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


@dataclass
class Student:
    graded: Graded
    images: dict  # file name -> URL relative to the student's page
    report: str | None  # sanitised HTML
    report_note: str

    @property
    def name(self) -> str:
        return self.graded.name


def _image_ok(path: Path) -> bool:
    """A real raster image of the format its name says, of a sane size (Pillow checks, nothing is trusted)."""
    expected = IMAGE_FORMATS.get(path.suffix.lower())
    if expected is None or not path.is_file() or path.is_symlink():
        return False
    try:
        with Image.open(path) as image:
            if image.format != expected or image.width * image.height > MAX_IMAGE_PIXELS:
                return False
            image.verify()
    except Exception:  # noqa: BLE001 - anything Pillow refuses is not shown
        return False
    return True


def _prepare(s: Graded, rubric: Rubric, target: Path) -> Student:
    """Copy the submission's images into ``target/files`` and render its report."""
    files = s.folder / FILES
    images: dict[str, str] = {}
    if files.is_dir():
        for path in sorted(files.iterdir()):
            if _image_ok(path):
                (target / FILES).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / FILES / path.name)
                images[path.name] = f"{FILES}/{path.name}"
    report_path = files / rubric.report
    report, note = None, ""
    if report_path.is_file() and not report_path.is_symlink():
        data = report_path.read_bytes()[:MAX_REPORT_BYTES]
        report = render_markdown(data.decode("utf-8", errors="replace"), images=images)
        if report_path.stat().st_size > MAX_REPORT_BYTES:
            note = f"{rubric.report} is longer than {MAX_REPORT_BYTES // 2**20} MB; only its start is shown."
    else:
        note = f"{rubric.report} was not submitted (or not kept: grade this folder again with this kit)."
    return Student(s, images, report, note)


def _score(results: dict) -> tuple[float, float]:
    """The autograded score and maximum (without anything merged by hand)."""
    manual = results.get("extra_data", {}).get("manual") or {}
    if "autograded_score" in manual:
        return manual["autograded_score"], manual["autograded_max_score"]
    return results.get("score", 0), results.get("extra_data", {}).get("max_score", 0)


def _skipped(test: dict) -> bool:
    return (test.get("extra_data") or {}).get("outcome") == "skipped"


def _failed(results: dict) -> list[dict]:
    """The autograded tests that failed or did not run (skipped ones, such as the CUDA check here, are not)."""
    return [t for t in results.get("tests", []) if not is_manual(t) and not _skipped(t)
            and (t.get("status") != "passed" or (t.get("score", 0) < t.get("max_score", 0)))]


def _given(results: dict) -> dict:
    """criterion id -> score given by hand (from the merged results)."""
    return {t["extra_data"]["criterion"]: t["score"] for t in results.get("tests", [])
            if is_manual(t) and t["extra_data"].get("outcome") == "graded"}


def _rubric_html(rubric: Rubric, given: dict | None = None, *, plots: dict | None = None) -> str:
    given = given or {}
    out = [f"<h2>Rubric: {escape(rubric.title)}</h2>",
           f"<p class=\"muted\">{rubric.points:g} points in all; scores go into {SHEET} (one column per criterion "
           "id), then <code>python -m autograder merge</code>.</p>"]
    for q in rubric.questions:
        out.append(f"<section class=\"question\"><h3>{escape(q.id)}. {escape(q.title)} "
                   f"<span class=\"muted\">({q.points:g} points)</span></h3>")
        out.append(f"<p class=\"muted\">{escape(q.text)}</p>")
        if q.plots:
            links = []
            for plot in q.plots:
                if plots is None:
                    links.append(escape(plot))
                elif plot in plots:
                    links.append(f"<a href=\"#plot-{escape(plot)}\">{escape(plot)}</a>")
                else:
                    links.append(f"{escape(plot)} <em>(not submitted)</em>")
            out.append(f"<p>Figures: {', '.join(links)}</p>")
        for c in q.criteria:
            mark = (f" <span class=\"given\">given {given[c.id]:g} / {c.points:g}</span>" if c.id in given else "")
            out.append(f"<div class=\"criterion\"><span class=\"pts\">+{c.points:g}</span> <b>{escape(c.id)}</b> "
                       f"{escape(c.name)}{mark}<div class=\"earns\">{escape(c.earns)}</div></div>")
        out.append("</section>")
    return "\n".join(out)


def _student_page(st: Student, rubric: Rubric, previous: str | None, following: str | None) -> str:
    results = st.graded.results
    extra = results.get("extra_data", {})
    score, maximum = _score(results)
    manual = extra.get("manual") or {}
    nav = ["<a href=\"../index.html\">all submissions</a>"]
    if previous:
        nav.append(f"<a href=\"../{escape(previous)}/index.html\">previous: {escape(previous)}</a>")
    if following:
        nav.append(f"<a href=\"../{escape(following)}/index.html\">next: {escape(following)}</a>")
    who = (extra.get("identity") or {}).get("name")
    head = [f"<header class=\"top\"><nav>{' | '.join(nav)}</nav>",
            f"<h1>{escape(st.name)}{f' ({escape(who)})' if who else ''}</h1>",
            f"<p>{escape(extra.get('title', rubric.assignment))}: autograded <b>{score:g} / {maximum:g}</b> "
            f"({escape(extra.get('status', ''))})"]
    if manual:
        head.append(f"; by hand {manual.get('score', 0):g} / {manual.get('max_score', 0):g} "
                    f"({manual.get('graded', 0)} of {manual.get('criteria', 0)} criteria graded)")
    head.append("</p></header>")
    warnings = []
    if not st.graded.verified:
        warnings.append("This results.json does not carry this grader's signature: do not trust its scores; "
                        "grade the submission again.")
    if manual.get("report_changed"):
        warnings.append(f"{rubric.report} changed since it was graded by hand (a new submission): check the "
                        "scores given before.")
    if st.report_note:
        warnings.append(st.report_note)
    main = ["<main>"] + [f"<p class=\"warn\">{escape(w)}</p>" for w in warnings]
    main.append(f"<h2>Plots ({len(st.images)})</h2>")
    if st.images:
        main.append("<div class=\"plots\">")
        for name, url in st.images.items():
            main.append(f"<figure id=\"plot-{escape(name)}\"><a href=\"{escape(url)}\"><img src=\"{escape(url)}\" "
                        f"alt=\"{escape(name)}\"></a><figcaption>{escape(name)}</figcaption></figure>")
        main.append("</div>")
    else:
        main.append("<p class=\"muted\">The submission holds no image.</p>")
    main.append(f"<h2>{escape(rubric.report)}</h2>")
    if st.report is not None:
        main.append(f"<article class=\"report\">\n{st.report}\n</article>")
    failed = _failed(results)
    main.append(f"<h2>Autograded tests that did not pass ({len(failed)} of "
                f"{sum(1 for t in results.get('tests', []) if not is_manual(t))})</h2>")
    if failed:
        main.append("<table class=\"list\"><tr><th>test</th><th>score</th><th>message</th></tr>")
        for t in failed:
            hidden = " <span class=\"muted\">(hidden)</span>" if t.get("visibility") != "visible" else ""
            main.append(f"<tr><td>{escape(t.get('name', ''))}{hidden}</td>"
                        f"<td>{t.get('score', 0):g} / {t.get('max_score', 0):g}</td>"
                        f"<td><pre class=\"message\">{escape(t.get('output', ''))}</pre></td></tr>")
        main.append("</table>")
    else:
        main.append("<p>Every autograded test passed.</p>")
    skipped = [t for t in results.get("tests", []) if not is_manual(t) and _skipped(t)]
    if skipped:
        main.append("<p class=\"muted\">Skipped: " + "; ".join(
            f"{escape(t.get('name', ''))} ({escape(t.get('output', ''))})" for t in skipped) + "</p>")
    if results.get("output"):
        main.append(f"<h3>Grader's notes</h3><pre class=\"message\">{escape(results['output'])}</pre>")
    main.append("</main>")
    aside = f"<aside>{_rubric_html(rubric, _given(results), plots=st.images)}</aside>"
    body = "\n".join(head) + "\n<div class=\"layout\">\n" + "\n".join(main) + "\n" + aside + "\n</div>"
    return page(f"{st.name}: {rubric.report}", body)


def _index_page(students: list[Student], rubric: Rubric) -> str:
    rows = ["<table class=\"list\"><tr><th>submission</th><th>autograded</th><th>status</th><th>tests not passed</th>"
            f"<th>{escape(rubric.report)}</th><th>plots</th><th>by hand</th><th>signature</th></tr>"]
    for st in students:
        results = st.graded.results
        extra = results.get("extra_data", {})
        score, maximum = _score(results)
        manual = extra.get("manual") or {}
        by_hand = (f"{manual.get('score', 0):g} / {manual.get('max_score', 0):g} ({manual.get('graded', 0)}/"
                   f"{manual.get('criteria', 0)})" if manual else "not merged")
        rows.append(
            f"<tr><td><a href=\"{escape(st.name)}/index.html\">{escape(st.name)}</a></td>"
            f"<td>{score:g} / {maximum:g}</td><td>{escape(extra.get('status', ''))}</td>"
            f"<td>{len(_failed(results))}</td><td>{'yes' if st.report is not None else 'missing'}</td>"
            f"<td>{len(st.images)}</td><td>{by_hand}</td><td>{'valid' if st.graded.verified else 'NOT VALID'}</td></tr>")
    rows.append("</table>")
    body = (f"<header class=\"top\"><h1>Review: {escape(rubric.assignment)}, {len(students)} submission(s)</h1>"
            f"<p><a href=\"rubric.html\">the rubric</a> | <a href=\"{SHEET}\">{SHEET}</a> (fill it in, then "
            "<code>python -m autograder merge GRADED --manual " + SHEET + "</code>)</p></header>\n"
            "<div style=\"padding: 16px 20px\">" + "\n".join(rows) + "</div>")
    return page(f"Review: {rubric.assignment}", body)


def _sheet_rows(graded: Path, key: bytes | None, rubric: Rubric, mine: list[Graded], old_sheet: Path) -> list[dict]:
    """A row per submission: the scores merged before, overlaid with what an earlier sheet already holds."""
    stored: dict = {}
    if key is not None:
        try:
            stored = load_store(graded, key)["assignments"].get(rubric.assignment, {}).get("submissions", {})
        except ReviewError:
            stored = {}
    typed: dict = {}
    if old_sheet.is_file():
        old_rows, _problems = read_sheet(old_sheet, rubric, {s.name: s.assignment for s in mine})
        typed = {row.submission: row for row in old_rows}
    rows = []
    for s in mine:
        given = stored.get(s.name, {})
        scores = {cid: float(v) for cid, v in (given.get("scores") or {}).items()}
        comment = given.get("comment", "")
        if s.name in typed:
            scores.update(typed[s.name].scores)
            if typed[s.name].comment is not None:
                comment = typed[s.name].comment
        score, maximum = _score(s.results)
        rows.append({"submission": s.name, "autograded": f"{score:g}", "scores": scores,
                     "comment": comment})
    return rows


def rubric_of(graded: Path | None, assignment: str | None) -> Rubric:
    """The rubric of ``assignment``, else of the only assignment graded in ``graded`` that has one."""
    if graded is None:
        if not assignment:
            raise ReviewError("name the assignment (--assignment) or a graded folder to find it in")
        return load_rubric(assignment)
    if not Path(graded).is_dir():
        raise ReviewError(f"{graded} is not a folder written by `grade`")
    return resolve_assignment(graded_submissions(Path(graded), read_key(Path(graded))), assignment)


def build_review(graded: Path, *, assignment: str | None = None) -> Path:
    """Write ``GRADED/review/`` for ``assignment`` (default: the only assignment of GRADED with a rubric).

    Raises:
        ReviewError: not a graded folder, no (or an ambiguous) assignment with a rubric, a broken rubric.
    """
    graded = Path(graded)
    if not graded.is_dir():
        raise ReviewError(f"{graded} is not a folder written by `grade`")
    site = graded / SITE
    if (site / "results.json").exists():
        raise ReviewError(f"{site} is a graded submission's folder (a zip named {SITE}.zip?): rename that zip "
                          "and grade it again, the review site needs this name")
    key = read_key(graded)
    submissions = graded_submissions(graded, key)
    rubric = resolve_assignment(submissions, assignment)
    mine = [s for s in submissions if s.assignment == rubric.assignment]
    build = graded / f".{SITE}-{secrets.token_hex(4)}"
    build.mkdir()
    try:
        students = []
        for s in mine:
            (build / s.name).mkdir()
            students.append(_prepare(s, rubric, build / s.name))
        for index, st in enumerate(students):
            previous = students[index - 1].name if index > 0 else None
            following = students[index + 1].name if index + 1 < len(students) else None
            (build / st.name / "index.html").write_text(_student_page(st, rubric, previous, following), encoding="utf-8")
        (build / "index.html").write_text(_index_page(students, rubric), encoding="utf-8")
        (build / "rubric.html").write_text(page(f"Rubric: {rubric.assignment}", "<div style=\"padding: 16px 20px\">"
                                                + _rubric_html(rubric) + "</div>"), encoding="utf-8")
        write_sheet(build / SHEET, rubric, _sheet_rows(graded, key, rubric, mine, site / SHEET))
        old = graded / f".{SITE}-old-{secrets.token_hex(4)}"
        if site.exists():
            os.replace(site, old)
        os.replace(build, site)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return site
