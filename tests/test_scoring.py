"""The grader's process decides: reports only take points away, accuracy needs real predictions."""
import numpy as np

from autograder.config import load_assignment
from autograder.grade.evaldata import GradingData
from autograder.grade.manifest import TestSpec
from autograder.grade.scoring import score_tests

CONFIG = load_assignment("mlp")
LABELS = np.arange(100) % 10
DATA = GradingData(train_file=None, eval_file=None, eval_labels=LABELS)


def _spec(name, points=2.0, accuracy=None):
    return TestSpec(f"tests/t.py::{name}", "t.py", name, name, points, accuracy, False, False)


def _passed(name):
    return [{"nodeid": f"tests/t.py::{name}", "when": w, "outcome": "passed", "message": ""} for w in ("setup", "call", "teardown")]


def _score(specs, records, evidence):
    reports = {}
    for r in records:
        reports.setdefault(r["nodeid"], []).append(r)
    return score_tests(specs, reports, config=CONFIG, data=DATA, evidence=evidence, ended="killed")


def test_scoring_passed_test_earns_its_points(tmp_path):
    [result] = _score([_spec("test_a")], _passed("test_a"), tmp_path)
    assert (result.score, result.status) == (2.0, "passed")


def test_scoring_unreported_test_earns_nothing_and_says_why(tmp_path):
    [result] = _score([_spec("test_a")], [], tmp_path)
    assert (result.score, result.status, result.message) == (0.0, "not run", "did not finish: killed")


def test_scoring_reported_pass_of_unknown_test_is_ignored(tmp_path):
    results = _score([_spec("test_a")], _passed("test_forged"), tmp_path)
    assert [r.score for r in results] == [0.0]


def test_scoring_failed_teardown_fails_the_test(tmp_path):
    records = _passed("test_a")
    records[2] = {**records[2], "outcome": "failed", "message": "boom"}
    [result] = _score([_spec("test_a")], records, tmp_path)
    assert result.score == 0 and "boom" in result.message


def test_scoring_accuracy_pass_without_predictions_earns_nothing(tmp_path):
    [result] = _score([_spec("test_acc", accuracy="trained")], _passed("test_acc"), tmp_path)
    assert result.score == 0 and result.message == "no predictions were recorded"


def test_scoring_accuracy_is_computed_here_from_the_predictions(tmp_path):
    good = LABELS.copy()
    good[:5] = (good[:5] + 1) % 10  # 95% right
    np.save(tmp_path / "test_acc.npy", good)
    [result] = _score([_spec("test_acc", accuracy="trained")], _passed("test_acc"), tmp_path)
    assert result.score == 2.0 and "accuracy 95.00%" in result.message
    np.save(tmp_path / "test_acc.npy", np.zeros(100, dtype=np.int64))
    [result] = _score([_spec("test_acc", accuracy="trained")], _passed("test_acc"), tmp_path)
    assert result.score == 0 and "accuracy 10.00%" in result.message


def test_scoring_rejects_predictions_of_the_wrong_shape_or_type(tmp_path):
    np.save(tmp_path / "test_acc.npy", LABELS[:50])
    [result] = _score([_spec("test_acc", accuracy="trained")], _passed("test_acc"), tmp_path)
    assert result.score == 0 and "expected 100 integer predictions" in result.message
    np.save(tmp_path / "test_acc.npy", np.array([object()] * 100))
    [result] = _score([_spec("test_acc", accuracy="trained")], _passed("test_acc"), tmp_path)
    assert result.score == 0
