"""The grader's process decides: reports only take points away, accuracy needs real predictions."""
import numpy as np

from autograder.config import load_assignment
from autograder.grade.evaldata import EvalSet
from autograder.grade.manifest import TestSpec
from autograder.grade.scoring import score_tests

CONFIG = load_assignment("mlp")
LABELS = np.arange(100) % 10
DATA = EvalSet(file=None, labels=LABELS)


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


def test_eval_set_is_shuffled_noisy_and_repeatable():
    from autograder.grade.evaldata import NOISE, perturb

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    labels = np.arange(50)
    a_images, a_labels = perturb(images, labels, seed=1)
    b_images, b_labels = perturb(images, labels, seed=1)
    c_images, c_labels = perturb(images, labels, seed=2)
    assert np.array_equal(a_images, b_images) and np.array_equal(a_labels, b_labels)
    assert not np.array_equal(a_labels, c_labels)
    assert sorted(a_labels) == list(range(50))
    originals = images[a_labels].astype(int)
    assert not any(np.array_equal(a_images[i], images[a_labels[i]]) for i in range(50)), "every image must change"
    assert np.abs(a_images.astype(int) - originals).max() <= NOISE


def test_scoring_zeroes_everything_when_tools_were_replaced(tmp_path):
    records = _passed("test_a") + [{**_passed("test_b")[1], "tampered": "pytest.fail"}]
    results = _score([_spec("test_a"), _spec("test_b")], records, tmp_path)
    assert [r.score for r in results] == [0.0, 0.0]
    assert all("replaced testing tools (pytest.fail)" in r.message for r in results)


def test_scoring_judges_the_eval_subset_sample_the_student_predicted(tmp_path):
    import dataclasses

    from mnistkit.data import sample_indices

    check = dataclasses.replace(CONFIG.accuracy["trained"], eval_subset=20)
    config = dataclasses.replace(CONFIG, accuracy={**CONFIG.accuracy, "trained": check})
    picked = sample_indices(len(LABELS), 20).numpy()
    assert len(set(picked.tolist())) == 20 and list(picked) != list(range(20))  # a sample, not the first 20
    assert (sample_indices(len(LABELS), 20).numpy() == picked).all()  # the same in every process
    np.save(tmp_path / "test_acc.npy", LABELS[picked])
    reports = {r["nodeid"]: [] for r in _passed("test_acc")}
    for r in _passed("test_acc"):
        reports[r["nodeid"]].append(r)
    [result] = score_tests([_spec("test_acc", accuracy="trained")], reports, config=config, data=DATA,
                           evidence=tmp_path, ended="killed")
    assert result.score == 2.0 and "accuracy 100.00% on the 20 evaluation images" in result.message
    np.save(tmp_path / "test_acc.npy", LABELS[:20])  # the first 20 instead of the sample: mostly wrong
    [result] = score_tests([_spec("test_acc", accuracy="trained")], reports, config=config, data=DATA,
                           evidence=tmp_path, ended="killed")
    assert result.score == 0
