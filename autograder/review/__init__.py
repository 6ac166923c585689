"""Grading by hand what the tests cannot: the review site, the rubric, and merging the teacher's scores.

    python -m autograder review GRADED [--assignment analysis]     # GRADED/review/: the site, manual-scores.csv
    python -m autograder merge GRADED --manual manual-scores.csv   # the scores into results.json and the rest

* :mod:`.rubric`: ``assignments/<name>/rubric.toml``, the single source of what each report question is worth
  (also printed as Gradescope question text).
* :mod:`.render`: a student's Markdown as sanitised HTML (markdown-it-py, then nh3).
* :mod:`.site`: the static site, one page per student, and the blank score sheet.
* :mod:`.manual`: reading the score sheet, storing it (``GRADED/manual-scores.json``, signed) and folding it
  into each submission's results (:func:`apply_manual`, which the grader also calls when it writes results).
"""
from ..results.manual import MANUAL_STORE, apply_manual
from .manual import merge_manual
from ..rubric import ReviewError, Rubric, find_rubric, gradescope_text, load_rubric
from .site import SHEET, build_review, rubric_of

__all__ = ["MANUAL_STORE", "SHEET", "ReviewError", "Rubric", "apply_manual", "build_review", "find_rubric",
           "gradescope_text", "load_rubric", "merge_manual", "rubric_of"]
