"""The mutation corpus (tests/mutants.py), graded end to end like students' zips.

Per assignment, every mutant's zip is the reference submission of ``build_submissions`` with the module
replaced (for mlp the reference's mnist_agent.pt stays; for analysis its results.jsonl, plots and
report.md), and all of them, with the reference itself, are graded in one batch with ``-j 2``. A wrong
mutant must lose points in exactly the tests its entry names, each saying the mistake; an equivalent one
keeps full marks. ``test_corpus_applies`` checks, fast, that every edit still applies to the reference.
``MUTANTS=name,name pytest tests/test_mutants.py -k vgg`` grades only those (and the reference).
"""
from __future__ import annotations

import json
import os
import time

import pytest

from autograder.config import load_assignment
from autograder.grade import grade_path
from mutants import CORPUS, MODULES, Mutant, MutantError, check, mutant_zip

MIN_WRONG = 12  # realistic wrong variants per assignment, at least
TIMES: dict = {}


def _source(assignment: str) -> str:
    config = load_assignment(assignment)
    return (config.solution_dir / MODULES[assignment]).read_text(encoding="utf-8")


def test_corpus_applies():
    """Every edit applies to the current reference (its old text occurs exactly once, on code lines only)."""
    for assignment, mutants in CORPUS.items():
        source = _source(assignment)
        names = [m.name for m in mutants]
        assert len(names) == len(set(names)), f"{assignment}: two mutants share a name"
        assert sum(not m.equivalent for m in mutants) >= MIN_WRONG, f"{assignment}: fewer than {MIN_WRONG} wrong mutants"
        assert any(m.equivalent for m in mutants), f"{assignment}: no equivalent variant"
        for mutant in mutants:
            changed = mutant.apply(source)
            assert changed != source, f"{assignment}/{mutant.name} changes nothing"
            compile(changed, f"{assignment}/{mutant.name}", "exec")


def test_corpus_rejects_a_moved_reference():
    mutant = Mutant("mlp", "gone", "", (("this text is not in the reference", ""),), {"x": "y"})
    with pytest.raises(MutantError, match="occurs 0 times"):
        mutant.apply(_source("mlp"))
    hint = Mutant("mlp", "hint", "", (("### HINT:", "### HINT: x"),), {"x": "y"})
    with pytest.raises(MutantError, match="marker or hint line|occurs"):
        hint.apply(_source("mlp"))


@pytest.fixture(scope="module")
def graded(build_submissions, data_dir, tmp_path_factory):
    """``graded(assignment)``: ``{name: results.json}`` of the reference and every mutant, graded in one batch."""
    done: dict = {}

    def _grade(assignment: str) -> dict:
        if assignment not in done:
            reference = build_submissions(assignment) / f"{assignment}-reference.zip"
            batch = tmp_path_factory.mktemp(f"mutants-{assignment}")
            (batch / "reference.zip").write_bytes(reference.read_bytes())
            source = _source(assignment)
            for mutant in _chosen(assignment):
                mutant_zip(reference, mutant, source, batch / f"{mutant.name}.zip")
            out = tmp_path_factory.mktemp(f"mutants-{assignment}-graded")
            start = time.monotonic()
            grade_path(batch, out_dir=out, assignment=assignment, jobs=2, data_dir=data_dir)
            TIMES[assignment] = time.monotonic() - start
            print(f"\n{assignment}: {len(_chosen(assignment))} mutants and the reference graded in "
                  f"{TIMES[assignment]:.0f} s")
            done[assignment] = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
        return done[assignment]

    return _grade


def _chosen(assignment: str) -> list:
    """The mutants of ``assignment`` to grade: all, or those named in $MUTANTS (comma-separated; while
    working on a few of them)."""
    names = [n for n in os.environ.get("MUTANTS", "").split(",") if n]
    return [m for m in CORPUS[assignment] if not names or m.name in names]


CASES = [pytest.param(a, m.name, id=f"{a}-{m.name}") for a in CORPUS for m in _chosen(a)]


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize("assignment", list(CORPUS))
def test_reference_keeps_full_marks_in_the_batch(graded, assignment):
    results = graded(assignment)["reference"]
    lost = [(t["name"], t["output"][:300]) for t in results["tests"] if t["score"] < t["max_score"]]
    assert not lost and results["score"] >= results["extra_data"]["max_score"], lost


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize(("assignment", "name"), CASES)
def test_mutant(graded, assignment, name):
    """A wrong mutant loses points where its entry says, with the mistake named; an equivalent one keeps them."""
    mutant = next(m for m in CORPUS[assignment] if m.name == name)
    results = graded(assignment)[name]
    assert results["extra_data"]["status"] == "graded", results["output"]
    problems = check(mutant, results)
    assert not problems, f"{assignment}/{name} ({mutant.why}):\n" + "\n".join(problems)
