"""What the tests of the analysis assignment check on the submitted data: results.jsonl, the re-runs of its
rows, the plots and the report. Test support, shipped with the tests (you need not read it).

The judge imports the kit's copies of this file, of the handout's ``runs.py`` and ``plots.py`` and of
``grid.toml``; it never imports the student's.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Callable

import pytest

import runs as kit_runs
from mnistkit.jsonl import read_rows

MNIST_TRAIN_SIZE = 60_000
REPORT_FILE = "report.md"
QUESTIONS = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7")
MIN_ANSWER_WORDS = 3
MAX_PNG_PIXELS = 20_000_000  # the figures are about 0.5 megapixels; a larger image is not one of them

# Re-running a row of results.jsonl must reproduce it within these tolerances (README, "What the grader
# checks"). Measured with bench/analysis_grid.py tolerance on the runs of plan.rerun_candidates(): re-running
# them with 2 threads instead of 1, or with every weight nudged by one part in a million (a stand-in for another
# CPU's rounding), moved every loss by less than 0.03% and no validation accuracy at all; even nudges of one
# part in 10,000 stayed below 0.06%. Another seed moved the training loss by 0.07% to 13% (two of the 54
# pairs of seeds stayed within the tolerances on the training numbers, never on the validation and test ones).
# The test accuracy (10,000 images) moved by at most 0.01 points under the nudges of one part in a million
# and 0.08 points under those of one part in 10,000; another seed moved it by 0 to 22 points. A row that is an
# exact copy of another is called a copy without re-training it (two runs never measure the same numbers).
RERUN_LOSS_RTOL = 0.002  # relative, on the training and validation losses of every epoch and the test loss
RERUN_ACC_ATOL = 0.003  # absolute, on the training and validation accuracies of every epoch
RERUN_TEST_ACC_ATOL = 0.002  # absolute, on the test accuracy: 20 of the 10,000 test images


# ------------------------------------------------------------------------------------------ results.jsonl
def check_row(row) -> list[str]:
    """Everything wrong with one results row (empty when it is valid)."""
    if not isinstance(row, dict):
        return [f"a row must be a JSON object, got {type(row).__name__}"]
    problems = []
    if row.get("schema") != kit_runs.SCHEMA:
        problems.append(f"schema must be {kit_runs.SCHEMA!r}, got {row.get('schema')!r}")
    try:
        config = kit_runs.RunConfig.from_dict(row.get("config"))
    except (ValueError, TypeError) as err:
        return problems + [f"config: {err}"]
    missing = sorted(f.name for f in dataclasses.fields(kit_runs.RunConfig) if f.name not in row["config"])
    if missing:
        problems.append(f"config lacks {missing}")
    if type(row.get("seed")) is not int:
        problems.append(f"seed must be an integer, got {row.get('seed')!r}")
    history = row.get("history")
    if not isinstance(history, list) or len(history) != config.epochs:
        problems.append(f"history must list {config.epochs} epoch(s), got {_short(history)}")
        history = []
    fields = kit_runs.HISTORY_FIELDS
    for number, entry in enumerate(history, start=1):
        if not isinstance(entry, dict) or sorted(entry) != sorted(fields):
            problems.append(f"history[{number - 1}] must have exactly the keys {list(fields)}")
            continue
        if entry["epoch"] != number:
            problems.append(f"history[{number - 1}]['epoch'] must be {number}, got {entry['epoch']!r}")
        for name in ("lr", "train_loss", "val_loss"):
            if not _finite(entry[name]) or entry[name] < 0:
                problems.append(f"epoch {number}: {name} must be a finite number >= 0, got {entry[name]!r}")
        for name in ("train_acc", "val_acc"):
            if not _finite(entry[name]) or not 0.0 <= entry[name] <= 1.0:
                problems.append(f"epoch {number}: {name} must be a fraction in [0, 1], got {entry[name]!r}")
    if not _finite(row.get("test_acc")) or not 0.0 <= row["test_acc"] <= 1.0:
        problems.append(f"test_acc must be a fraction in [0, 1], got {row.get('test_acc')!r}")
    if not _finite(row.get("test_loss")) or row["test_loss"] < 0:
        problems.append(f"test_loss must be a finite number >= 0, got {row.get('test_loss')!r}")
    if type(row.get("parameters")) is not int or row["parameters"] < 1:
        problems.append(f"parameters must be a positive integer, got {row.get('parameters')!r}")
    if not _finite(row.get("seconds")) or row["seconds"] < 0:
        problems.append(f"seconds must be a number >= 0, got {row.get('seconds')!r}")
    return problems


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def valid_rows(path: Path) -> tuple[list[dict], list[tuple[int, str]]]:
    """The valid rows of a results file and ``(line number, problem)`` of every other line (a missing file
    has neither)."""
    return read_rows(path, lambda row: "; ".join(check_row(row)))


def describe(config, seed) -> str:
    c = config if isinstance(config, dict) else config.as_dict()
    return (f"activation={c['activation']} depth={c['depth']} width={c['width']} lr={c['lr']:g} "
            f"scheduler={c['scheduler']} dropout={c['dropout']:g} epochs={c['epochs']} "
            f"train_size={c['train_size']} seed={seed}")


def missing_runs(studies, results, names=None) -> list[str]:
    """Descriptions of the grid's runs that results.jsonl lacks (a run shared by two studies counts once)."""
    missing, seen = [], set()
    for name, study in studies.items():
        if names is not None and name not in names:
            continue
        for config, seed in study.runs:
            key = kit_runs.run_key(config, seed)
            if key not in results and key not in seen:
                seen.add(key)
                missing.append(f"{name}: {describe(config, seed)}")
    return missing


# ------------------------------------------------------------------------------------------ re-runs
TRAINING_NUMBERS = ("train_loss", "train_acc")  # what the training itself measured, epoch by epoch
EVALUATION_NUMBERS = ("val_loss", "val_acc")  # measured after each epoch, in eval mode, from the trained weights


def rerun_mismatches(row: dict, again: dict, names=("train_loss", "val_loss", "train_acc", "val_acc"),
                     parameters: bool = True) -> list[str]:
    """How a re-run row differs from the submitted one beyond the tolerances in its parameter count (unless
    ``parameters`` is false) and in the numbers ``names`` of every epoch (empty when they match)."""
    problems = []
    if parameters and row.get("parameters") != again["parameters"]:
        problems.append(f"parameters: submitted {row.get('parameters')}, re-run {again['parameters']}")
    for mine, theirs in zip(row["history"], again["history"]):
        epoch = mine["epoch"]
        for name in names:
            if name.endswith("_loss"):
                if not math.isclose(mine[name], theirs[name], rel_tol=RERUN_LOSS_RTOL, abs_tol=1e-6):
                    problems.append(f"epoch {epoch} {name}: submitted {mine[name]:.5f}, re-run {theirs[name]:.5f}")
            elif abs(mine[name] - theirs[name]) > RERUN_ACC_ATOL:
                problems.append(f"epoch {epoch} {name}: submitted {mine[name]:.4f}, re-run {theirs[name]:.4f}")
    return problems


def final_mismatches(row: dict, again: dict) -> list[str]:
    """How the re-run's ``test_loss`` and ``test_acc`` differ from the submitted ones beyond the tolerances
    (empty when they match, or when the re-run had no test set)."""
    if again.get("test_loss") is None or again.get("test_acc") is None:
        return []
    problems = []
    if not math.isclose(row["test_loss"], again["test_loss"], rel_tol=RERUN_LOSS_RTOL, abs_tol=1e-6):
        problems.append(f"test_loss: submitted {row['test_loss']:.5f}, re-run {again['test_loss']:.5f}")
    if abs(row["test_acc"] - again["test_acc"]) > RERUN_TEST_ACC_ATOL:
        problems.append(f"test_acc: submitted {row['test_acc']:.4f}, re-run {again['test_acc']:.4f}")
    return problems


def copied_from(row: dict, results: dict) -> str | None:
    """The run (described) of another row of ``results`` with exactly the numbers of ``row``, if any."""
    key = kit_runs.run_key(row["config"], row["seed"])
    for other_key, other in results.items():
        if other_key != key and other["history"] == row["history"]:
            return describe(other["config"], other["seed"])
    return None


def duplicated_rows(results: dict) -> list[tuple[dict, dict]]:
    """``(row, earlier row)`` for every row of ``results`` whose numbers of every epoch are exactly those of an
    earlier row of another run: two runs never measure the very same numbers, so one of the two was copied."""
    first: dict = {}
    pairs = []
    for row in results.values():
        numbers = json.dumps(row["history"], sort_keys=True)
        if numbers in first:
            pairs.append((row, first[numbers]))
        else:
            first[numbers] = row
    return pairs


MAX_COPIES_SHOWN = 5


def check_reruns(chosen, results: dict, rerun: Callable) -> None:
    """Fail unless every chosen run, re-trained by ``rerun(config, seed)`` (which returns a results row as
    ``runs.train_run`` does), reproduces its row of ``results`` (the valid rows by run key): the parameter
    count, the training and validation numbers of every epoch and the test loss and accuracy. Rows that are
    copies of other rows (:func:`duplicated_rows`) fail it too, whichever runs were chosen, and a chosen copy is
    not re-trained: after one epoch two seeds can agree within the tolerances, so only the exact copy says what
    happened."""
    absent = [describe(c, s) for c, s in chosen if kit_runs.run_key(c, s) not in results]
    if absent:
        pytest.fail(f"the honesty check re-trains these runs of grid.toml, and {kit_runs.RESULTS_FILE} does not hold "
                    "them: run `python sweep.py` (it adds the missing runs and resumes where it stopped):\n"
                    + "\n".join(absent), pytrace=False)
    copies = duplicated_rows(results)
    copy_keys = {kit_runs.run_key(row["config"], row["seed"]) for row, _ in copies}
    failures = []  # (kind, text): "edited" (only what was measured after training differs), "copied", "other"
    edited = set()  # which results were edited: "validation", "test"
    for config, seed in chosen:
        if kit_runs.run_key(config, seed) in copy_keys:
            continue  # a copy of another row: said below
        row = results[kit_runs.run_key(config, seed)]
        again = rerun(config, seed)
        trained = rerun_mismatches(row, again, TRAINING_NUMBERS)
        evaluated = rerun_mismatches(row, again, EVALUATION_NUMBERS, parameters=False)
        finals = final_mismatches(row, again)
        if not trained and (evaluated or finals):
            # The same training (every epoch's training loss and accuracy reproduce) gives the same weights, and
            # so the same validation and test numbers: these were changed after the run.
            what = [w for w, found in (("validation", evaluated), ("test", finals)) if found]
            edited.update(what)
            failures.append(("edited", f"run {describe(config, seed)}: only its {' and '.join(what)} results differ "
                                       f"({'; '.join((evaluated + finals)[:5])})"))
        elif trained:
            problems = rerun_mismatches(row, again)
            copied = copied_from(row, results)
            if copied:
                problems.insert(0, f"its numbers are those of the row of {copied}")
            theirs = (row.get("versions") or {}).get("torch")
            if theirs != again["versions"]["torch"]:
                problems.insert(0, f"(the row was made with torch {theirs}, the re-run used torch "
                                   f"{again['versions']['torch']})")
            failures.append(("copied" if copied else "other",
                             f"run {describe(config, seed)}: " + "; ".join((problems + finals)[:5])))
    for row, earlier in copies[:MAX_COPIES_SHOWN]:
        failures.append(("copied", f"run {describe(row['config'], row['seed'])}: its numbers are those of the row of "
                                   f"{describe(earlier['config'], earlier['seed'])}, in every epoch"))
    if len(copies) > MAX_COPIES_SHOWN:
        failures.append(("copied", f"... and {len(copies) - MAX_COPIES_SHOWN} more rows that copy another row"))
    if not failures:
        return
    kinds = {kind for kind, _ in failures}
    tolerance = (f"tolerance: {RERUN_LOSS_RTOL:.1%} on losses, {100 * RERUN_ACC_ATOL:.1f} points on the training and "
                 f"validation accuracies, {100 * RERUN_TEST_ACC_ATOL:.1f} points on the test accuracy")
    if kinds == {"edited"} and edited == {"test"}:
        head = ("the test results of rows of results.jsonl were edited by hand: re-trained with the same "
                "configuration and seed, their training and validation numbers reproduce, but their test loss or "
                f"accuracy do not ({tolerance}). A row holds what its run measured: delete the edited rows and run "
                "`python sweep.py`, which runs them again")
    elif kinds == {"edited"}:
        what = " and ".join(w for w in ("validation", "test") if w in edited)
        head = (f"the {what} results of rows of results.jsonl were edited by hand: re-trained with the same "
                "configuration and seed, their training numbers reproduce (the same training gives the same "
                f"weights), but their {what} numbers do not ({tolerance}). A row holds what its run measured: delete "
                "the edited rows and run `python sweep.py`, which runs them again")
    elif kinds == {"copied"}:
        head = ("rows of results.jsonl hold the numbers of other runs (another seed or configuration): two runs never "
                "measure the very same numbers, and re-trained with their own configuration and seed such rows do not "
                f"reproduce ({tolerance}). Delete them and run `python sweep.py`, which runs them again")
    else:
        head = ("re-running rows of results.jsonl with the same configuration and seed did not reproduce them "
                f"({tolerance}). Rows must come from `python sweep.py` / `python train.py` with the analysis.py you "
                "submit, unedited (another seed, configuration or builder gives other numbers)")
    pytest.fail(head + ":\n" + "\n".join(text for _, text in failures), pytrace=False)


# ------------------------------------------------------------------------------------------ plots
def png_text(path: Path) -> dict[str, str]:
    """The text entries (``tEXt``, ``iTXt``) of a PNG image, read with Pillow after decoding the whole image;
    ``ValueError`` when the file is not a complete PNG image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=["PNG"]) as image:
            width, height = image.size
            if width * height > MAX_PNG_PIXELS:
                raise ValueError(f"it is {width} x {height} pixels, far larger than a figure of plots.py")
            image.load()  # decodes every row: a truncated or corrupt file fails here
            return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
    except UnidentifiedImageError:
        raise ValueError("Pillow does not read it as a PNG image") from None
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow's errors: OSError, SyntaxError, EOFError, zlib.error, ...
        raise ValueError(str(err) or type(err).__name__) from None


def same_data(a, b, rel: float = 1e-9) -> bool:
    """Equal JSON values, floats compared with a relative tolerance."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_data(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_data(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


# ------------------------------------------------------------------------------------------ report
def read_report(path: Path) -> str:
    """The text of the report: ``path`` is report.md itself or the folder holding it."""
    path = Path(path)
    if path.name != REPORT_FILE:
        path = path / REPORT_FILE
    if not path.is_file():
        pytest.fail(f"{REPORT_FILE} not found: fill in the report template and submit it", pytrace=False)
    return path.read_text(encoding="utf-8")


def report_answers(text: str) -> dict[str, str]:
    """``{question id: answer}`` of a report in the template's layout.

    A question starts at a heading ``## Q<n>. ...``; its answer is the text up to the next ``## `` heading,
    without the quoted question (lines starting with ``>``) and without HTML comments.
    """
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    answers = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^##\s+(Q\d+)\b", line)
        if heading:
            current = heading.group(1)
            answers[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None and not line.lstrip().startswith(">"):
            answers[current].append(line)
    return {q: "\n".join(lines).strip() for q, lines in answers.items()}


def unanswered(text: str) -> list[str]:
    """The questions of :data:`QUESTIONS` without an answer of at least :data:`MIN_ANSWER_WORDS` words."""
    answers = report_answers(text)
    return [q for q in QUESTIONS if len(answers.get(q, "").split()) < MIN_ANSWER_WORDS]
