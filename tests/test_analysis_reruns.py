"""The analysis honesty check (``analysis_checks.check_reruns``) names what was done to results.jsonl.

Fast: the re-runs are stand-ins (a function returning rows), not trainings; the end-to-end cases are in
tests/mutants_analysis.py.
"""
from __future__ import annotations

import sys

import pytest

from autograder.config import KIT_ROOT

sys.path[:0] = [str(KIT_ROOT / "assignments" / "analysis" / "handout"),
                str(KIT_ROOT / "assignments" / "analysis" / "tests")]
import analysis_checks as checks  # noqa: E402
import runs  # noqa: E402

Failed = pytest.fail.Exception
CONFIG = {**runs.RunConfig().as_dict(), "epochs": 1}


def _row(seed: int, train_loss: float, test_acc: float = 0.95) -> dict:
    history = [{"epoch": 1, "train_loss": train_loss, "train_acc": 0.9, "val_loss": 0.3, "val_acc": 0.91}]
    return {"config": dict(CONFIG), "seed": seed, "parameters": 42_000, "history": history,
            "test_loss": 0.2, "test_acc": test_acc, "versions": {"torch": "x"}}


def _results(*rows) -> dict:
    return {runs.run_key(r["config"], r["seed"]): r for r in rows}


def _rerun_from(truth: dict, called: list):
    def rerun(config, seed):
        called.append(seed)
        return truth[runs.run_key(config, seed)]

    return rerun


def test_check_reruns_honest_rows_pass():
    rows = [_row(0, 0.40), _row(1, 0.41)]
    called = []
    checks.check_reruns([(CONFIG, 0), (CONFIG, 1)], _results(*rows), _rerun_from(_results(*rows), called))
    assert called == [0, 1]


def test_check_reruns_chosen_copy_is_called_a_copy_even_within_tolerance():
    """Seed 1 holds seed 0's numbers; its own re-run differs from them by less than the tolerances (after one
    epoch two seeds can), and the test accuracy by more: the message still says copied, not edited."""
    honest = [_row(0, 0.4000), _row(1, 0.4004, test_acc=0.94)]
    copied = _row(1, 0.4000)
    called = []
    with pytest.raises(Failed, match="hold the numbers of other runs") as failure:
        checks.check_reruns([(CONFIG, 0), (CONFIG, 1)], _results(honest[0], copied),
                            _rerun_from(_results(*honest), called))
    assert "seed=1: its numbers are those of the row of" in str(failure.value)
    assert "edited" not in str(failure.value)
    assert called == [0], "a copy is not re-trained"


def test_check_reruns_unchosen_copy_fails_too():
    rows = [_row(0, 0.40), _row(1, 0.40)]
    with pytest.raises(Failed, match="hold the numbers of other runs"):
        checks.check_reruns([(CONFIG, 0)], _results(*rows), _rerun_from(_results(*rows), []))


def test_check_reruns_edited_test_accuracy_is_named():
    truth = _results(_row(0, 0.40))
    edited = _results(_row(0, 0.40, test_acc=0.96))
    with pytest.raises(Failed, match="the test results of rows of results.jsonl were edited by hand"):
        checks.check_reruns([(CONFIG, 0)], edited, _rerun_from(truth, []))


def test_check_reruns_other_seed_is_not_reproduced():
    truth = _results(_row(0, 0.40))
    other = _results(_row(0, 0.43))
    with pytest.raises(Failed, match="did not reproduce them"):
        checks.check_reruns([(CONFIG, 0)], other, _rerun_from(truth, []))
