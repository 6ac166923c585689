"""``python -m autograder``: a thin command line over the library (it parses, calls, prints)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mnistkit.paths import DATA_DIR_ENV, MNISTUnavailableError

from .config import ConfigError, list_assignments, load_assignment

EXIT_USAGE = 2


def _release(args: argparse.Namespace) -> int:
    from .assign import release_assignment, release_notebook, write_nbgrader_course
    from .gradescope import build_gradescope_zip

    configs = [load_assignment(name) for name in args.assignments or list_assignments()]
    for config in configs:
        target = release_assignment(config, out_dir=Path(args.out))
        notebook = release_notebook(config, out_dir=Path(args.out))
        autograder = build_gradescope_zip(config, out_dir=Path(args.out))
        print(f"released {config.name}: {target}, {notebook} and the Gradescope autograder {autograder}")
    if not args.no_nbgrader:
        course = write_nbgrader_course(configs, Path(args.out) / "nbgrader")
        print(f"nbgrader course folder (instructors only: it holds the solutions and hidden tests): {course}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from .grade import grade_path

    outcomes = grade_path(Path(args.path), out_dir=Path(args.out), assignment=args.assignment,
                          data_dir=args.data_dir, jobs=args.jobs, unsafe=args.unsafe, threads=args.threads,
                          lean=args.lean, sandbox=args.sandbox)
    for o in outcomes:
        print(f"{o.name:30s} {o.assignment:10s} {o.score:6g} / {o.max_score:<6g} {o.status:12s} {o.seconds:6.1f} s")
    print(f"graded {len(outcomes)} submission(s); gradebooks (gradebook-<assignment>-csv.csv) in {args.out}")
    return 0


def _gradescope(args: argparse.Namespace) -> int:
    if args.prepare:
        from .grade import prepare

        print(f"kept the tests and MNIST of {args.assignment} in {prepare(args.assignment)}")
        return 0
    from .gradescope import run_gradescope

    print(f"results: {run_gradescope(Path(args.root), assignment=args.assignment, threads=args.threads)}")
    return 0


def _gradebook(args: argparse.Namespace) -> int:
    from .gradebook import load_roster, write_gradebooks

    roster = load_roster(Path(args.roster)) if args.roster else None
    ids = dict(pair.split("=", 1) for pair in args.id)
    written, problems = write_gradebooks(Path(args.graded), args.format, roster=roster, out=Path(args.out or args.graded),
                                         ids=ids)
    for path in written:
        print(f"wrote {path}")
    for line in problems.lines():
        print(f"note: {line}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from .review import ReviewError, build_review, gradescope_text, rubric_of

    graded = Path(args.graded) if args.graded else None
    try:
        if args.print_rubric:
            print(gradescope_text(rubric_of(graded, args.assignment)))
            return 0
        if graded is None:
            raise ReviewError("name the graded folder (the --out of `grade`)")
        site = build_review(graded, assignment=args.assignment)
    except ReviewError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"review site: {site / 'index.html'} (serve it with: python -m http.server -d {site})")
    print(f"score sheet to fill in: {site / 'manual-scores.csv'}; then: python -m autograder merge {args.graded}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .review import ReviewError, merge_manual

    sheet = Path(args.manual) if args.manual else Path(args.graded) / "review" / "manual-scores.csv"
    try:
        report = merge_manual(Path(args.graded), sheet, assignment=args.assignment, formats=tuple(args.format or ()))
    except ReviewError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"merged {report.cells} score(s) from {report.sheet_rows} row(s) of {sheet} into {len(report.updated)} "
          f"{report.assignment} submission(s); results.json (re-signed), feedback.md, gradebooks and summary rewritten")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .assign import release_assignment
    from .assign.submission import build_submission
    from .grade import grade_path

    out = Path(args.out)
    names = args.assignments or list_assignments()
    for name in names:
        config = load_assignment(name)
        handout = release_assignment(config, out_dir=out / "dist")
        print(f"released {name}: {handout}")
        for kind in ("reference", "stub"):
            target = build_submission(config, handout, out / "submissions" / f"{name}-{kind}.zip",
                                      kind=kind, data_dir=args.data_dir)
            print(f"built the {kind} submission: {target}")
    outcomes = grade_path(out / "submissions", out_dir=out / "graded", data_dir=args.data_dir, jobs=args.jobs,
                          unsafe=args.unsafe)
    for o in outcomes:
        print(f"{o.name:30s} {o.score:6g} / {o.max_score:<6g} {o.status:12s} {o.seconds:6.1f} s")
    print(f"feedback and results.json per submission, and the gradebooks: {out / 'graded'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="mnist-kit: release and grade")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (default: False)")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = f"folder holding MNIST/raw/ (default: ${DATA_DIR_ENV} or ./data; downloaded if missing)"

    release = sub.add_parser("release", help="write one verified handout zip per assignment")
    release.add_argument("assignments", nargs="*", help="assignments to release (default: all)")
    release.add_argument("--out", default="dist",
                         help="folder for the zips, notebooks/ and nbgrader/ (default: dist)")
    release.add_argument("--no-nbgrader", action="store_true",
                         help="skip the nbgrader course folder, which collects every test once (default: False)")
    release.set_defaults(run=_release)

    grade = sub.add_parser("grade", help="grade a submission zip or notebook, or a folder of them")
    grade.add_argument("path", help="a submission .zip or .ipynb, or a folder of them")
    grade.add_argument("--out", required=True, help="folder for results.json, feedback.md and the gradebooks")
    grade.add_argument("--assignment", default=None,
                       help="assignment of every zip (default: guessed per zip from its file names)")
    grade.add_argument("--data-dir", default=None, help=data_help)
    grade.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel (default: 1)")
    grade.add_argument("--unsafe", action="store_true",
                       help="grade without a sandbox where none is available: only for code you trust (default: False)")
    grade.add_argument("--threads", type=int, default=None,
                       help="torch threads per submission (default: the cores divided by --jobs)")
    grade.add_argument("--sandbox", choices=("bwrap", "user", "unsafe"), default=None,
                       help="the sandbox of student code (default: $MNISTKIT_SANDBOX, else the strongest that works)")
    grade.add_argument("--lean", action="store_true",
                       help="one process at a time, for small machines such as Gradescope's (default: False)")
    grade.set_defaults(run=_grade)

    gradescope = sub.add_parser("gradescope", help="grade inside Gradescope's container (what run_autograder calls)")
    gradescope.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", "/autograder"),
                            help="Gradescope's folder with submission/ and results/ (default: $AUTOGRADER_ROOT or /autograder)")
    gradescope.add_argument("--assignment", required=True, help="the assignment this autograder grades")
    gradescope.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    gradescope.add_argument("--prepare", action="store_true",
                            help="grade nothing: keep the tests and MNIST in $MNISTKIT_GRADER_CACHE for every run "
                                 "(what setup.sh calls) (default: False)")
    gradescope.set_defaults(run=_gradescope)

    book = sub.add_parser("gradebook", help="write the gradebooks of a graded folder in a format an LMS imports")
    book.add_argument("graded", help="a folder written by `grade` (one folder per submission with results.json)")
    book.add_argument("--format", choices=("canvas", "moodle", "gradescope", "csv"), default="csv",
                      help="the LMS to import into (default: csv)")
    book.add_argument("--roster", default=None,
                      help="CSV with file, id, name, email, login, section columns (default: students named after files)")
    book.add_argument("--id", action="append", default=[], metavar="ASSIGNMENT=ID",
                      help="the assignment's id in the LMS, e.g. mlp=12345 for Canvas (default: none)")
    book.add_argument("--out", default=None, help="folder for the files (default: the graded folder)")
    book.set_defaults(run=_gradebook)

    demo = sub.add_parser("demo", help="release, build the reference and the stub submissions, grade them")
    demo.add_argument("assignments", nargs="*", help="assignments to demonstrate (default: all)")
    demo.add_argument("--out", default="demo", help="folder for everything the demo writes (default: demo)")
    demo.add_argument("--data-dir", default=None, help=data_help)
    demo.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel (default: 1)")
    demo.add_argument("--unsafe", action="store_true",
                      help="grade without a sandbox where none is available (default: False)")
    demo.set_defaults(run=_demo)

    review = sub.add_parser("review", help="write GRADED/review/: a site to read and grade the reports by hand, "
                                           "and the score sheet manual-scores.csv")
    review.add_argument("graded", nargs="?", default=None, help="a folder written by `grade`")
    review.add_argument("--assignment", default=None,
                        help="the assignment to review (default: the only one in the folder with a rubric.toml)")
    review.add_argument("--print-rubric", action="store_true",
                        help="print the rubric as Gradescope question text and stop (default: False)")
    review.set_defaults(run=_review)

    merge = sub.add_parser("merge", help="fold the scores of manual-scores.csv into results.json, feedback.md, "
                                         "the gradebooks and the summary")
    merge.add_argument("graded", help="a folder written by `grade`")
    merge.add_argument("--manual", default=None,
                       help="the filled-in score sheet (default: GRADED/review/manual-scores.csv)")
    merge.add_argument("--assignment", default=None,
                       help="the assignment of the sheet (default: the only one in the folder with a rubric.toml)")
    merge.add_argument("--format", action="append", choices=("canvas", "moodle", "gradescope", "csv"), default=None,
                       help="gradebook formats to rewrite besides csv, repeatable (default: csv only, as `grade` writes)")
    merge.set_defaults(run=_merge)

    listing = sub.add_parser("list", help="list the assignments")
    listing.set_defaults(run=lambda args: print("\n".join(list_assignments())) or 0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .grade import UsageError
    from .gradebook import RosterError

    try:
        return args.run(args)
    except (UsageError, ConfigError, RosterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MNISTUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
