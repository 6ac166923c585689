"""The judge's report becomes scores: a test earns its points only if the judge reported that it passed."""
import json

from autograder.testrun import TestSpec
from autograder.grade.scoring import read_reports, score_tests


def _spec(name, points=2.0, *, hidden=False, bonus=False):
    return TestSpec(f"tests/t.py::{name}", "t.py", name, f"title of {name}", points, None, False, hidden, bonus)


def _phases(name, outcomes=("passed", "passed", "passed"), **call):
    records = [{"nodeid": f"tests/t.py::{name}", "when": when, "outcome": outcome, "message": "", "duration": 0.5}
               for when, outcome in zip(("setup", "call", "teardown"), outcomes)]
    if len(records) > 1:
        records[1].update(call)
    return records


def _score(specs, records, ended="the judge was stopped after the 600 s time limit"):
    reports = {}
    for record in records:
        reports.setdefault(record["nodeid"], []).append(record)
    return score_tests(specs, reports, ended=ended)


def test_scoring_passed_test_earns_its_points():
    [result] = _score([_spec("test_a")], _phases("test_a"))
    assert (result.score, result.status, result.message, result.seconds) == (2.0, "passed", "", 1.5)


def test_scoring_unreported_test_earns_nothing_and_says_why():
    [result] = _score([_spec("test_a")], [], ended="killed by SIGKILL")
    assert (result.score, result.status, result.message) == (0.0, "not run", "did not finish: killed by SIGKILL")


def test_scoring_pass_without_teardown_is_not_finished():
    [result] = _score([_spec("test_a")], _phases("test_a")[:2], ended="killed")
    assert (result.score, result.status) == (0.0, "not run")


def test_scoring_reported_pass_of_an_unknown_test_is_ignored():
    results = _score([_spec("test_a")], _phases("test_forged"))
    assert [(r.spec.function, r.score) for r in results] == [("test_a", 0.0)]


def test_scoring_failed_call_gives_its_message():
    [result] = _score([_spec("test_a")], _phases("test_a", ("passed", "failed", "passed"),
                                                    message="output: expected shape (64, 10), got (64, 50)"))
    assert (result.score, result.status, result.message) == (0.0, "failed", "output: expected shape (64, 10), got (64, 50)")


def test_scoring_failed_setup_or_teardown_fails_the_test():
    records = _phases("test_a", ("failed",))
    records[0]["message"] = "make_net: Net() raised ValueError"
    [result] = _score([_spec("test_a")], records)
    assert (result.score, result.status, result.message) == (0.0, "failed", "make_net: Net() raised ValueError")
    records = _phases("test_a", ("passed", "passed", "failed"))
    records[2]["message"] = "boom"
    [result] = _score([_spec("test_a")], records)
    assert (result.score, result.status, result.message) == (0.0, "failed", "error after the test: boom")


def test_scoring_skipped_test_earns_nothing():
    records = _phases("test_gpu", ("passed", "skipped", "passed"), message="no CUDA here")
    [result] = _score([_spec("test_gpu")], records)
    assert (result.score, result.status, result.message) == (0.0, "skipped", "skipped: no CUDA here")


def test_scoring_keeps_the_properties_of_the_call():
    [result] = _score([_spec("test_acc")], _phases("test_acc", properties={"accuracy": 0.97}))
    assert result.properties == {"accuracy": 0.97}
    assert result.to_gradescope(1)["extra_data"]["accuracy"] == 0.97


def test_scoring_gradescope_entries_show_points_visibility_and_bonus():
    results = _score([_spec("test_a"), _spec("test_h", 3.0, hidden=True), _spec("test_b", 1.0, bonus=True)],
                     _phases("test_a") + _phases("test_h", ("passed", "failed", "passed"), message="wrong")
                     + _phases("test_b"))
    a, h, b = [r.to_gradescope(i) for i, r in enumerate(results, 1)]
    assert a == {"name": "title of test_a", "number": "1", "score": 2.0, "max_score": 2.0, "status": "passed",
                 "output": "passed", "visibility": "visible",
                 "extra_data": {"nodeid": "tests/t.py::test_a", "outcome": "passed", "seconds": 1.5, "points": 2.0,
                                "bonus": False, "check": None}}
    assert (h["score"], h["max_score"], h["status"], h["output"], h["visibility"]) == (
        0.0, 3.0, "failed", "wrong", "after_published")
    assert (b["name"], b["score"], b["max_score"]) == ("title of test_b (bonus)", 1.0, 0.0)


def test_scoring_read_reports_skips_unreadable_lines(tmp_path):
    path = tmp_path / "report.jsonl"
    assert read_reports(path) == {}
    lines = [json.dumps(r) for r in _phases("test_a")] + ["{half a line", json.dumps({"when": "call"}), "[]"]
    path.write_text("\n".join(lines) + "\n")
    reports = read_reports(path)
    assert list(reports) == ["tests/t.py::test_a"] and len(reports["tests/t.py::test_a"]) == 3
    [result] = score_tests([_spec("test_a")], reports, ended="")
    assert result.score == 2.0
