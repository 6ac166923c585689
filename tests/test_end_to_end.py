"""The whole course cycle, for real: release -> student submits -> grader grades a folder of zips.

Every reference solution earns full marks, every untouched stub earns zero without crashing the grader,
and broken submissions in the same batch get their clear message without disturbing the others.
"""
import csv
import functools
import json
import zipfile

import pytest

from autograder.config import GradingSpec
from autograder.grade import grade_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(submissions, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("graded")
    outcomes = grade_path(submissions, out_dir=out, data_dir=data_dir, jobs=2)
    return out, {o.name: o for o in outcomes}


def _results(out, name):
    return json.loads((out / name / "results.json").read_text())


def test_reference_solutions_earn_full_marks(graded, assignments):
    out, outcomes = graded
    for config in assignments:
        results = _results(out, f"{config.name}-reference")
        failed = [(t["name"], t["output"]) for t in results["tests"]
                  if t["extra_data"]["outcome"] not in ("passed", "skipped") or t["score"] < t["max_score"]]
        assert not failed, f"{config.name} reference lost points: {failed}"
        assert results["score"] >= results["extra_data"]["max_score"] > 0  # bonus points come on top


def test_stubs_earn_zero_with_a_message_for_every_test(graded, assignments):
    out, _ = graded
    for config in assignments:
        results = _results(out, f"{config.name}-stub")
        assert results["score"] == 0, [(t["name"], t["score"]) for t in results["tests"] if t["score"]]
        assert results["extra_data"]["status"] == "graded"
        for test in results["tests"]:
            assert test["output"], f"{config.name}: {test['name']} failed without a message"
            assert test["extra_data"]["outcome"] != "not run", f"{config.name}: the stub crashed the run: {test}"


def test_results_json_follows_gradescope_format(graded):
    out, outcomes = graded
    for name in outcomes:
        results = _results(out, name)
        assert {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"} <= results.keys()
        for test in results["tests"]:
            assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= test.keys()
            assert test["visibility"] in ("visible", "after_published")
            bonus = test["name"].endswith("(bonus)")
            assert 0 <= test["score"] and (bonus or test["score"] <= test["max_score"])
        assert (out / name / "feedback.md").read_text().startswith("# ")


def test_gradebook_has_one_row_per_submission_per_assignment(graded, assignments):
    out, outcomes = graded
    rows = []
    for config in assignments:
        with open(out / f"gradebook-{config.name}-csv.csv") as handle:
            book = list(csv.DictReader(handle))
        assert sorted(r["submission"] for r in book) == [f"{config.name}-reference", f"{config.name}-stub"]
        assert {r["assignment"] for r in book} == {config.name}
        rows += book
        with open(out / f"gradebook-{config.name}-tests.csv") as handle:
            detail = list(csv.reader(handle))
        assert detail[1][0] == "max_score" and len(detail) == 4
    for row in rows:
        assert float(row["score"]) == outcomes[row["submission"]].score


def _variant(source, target, replace: dict[str, str | None], folder: str = ""):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name in replace and replace[name] is None:
                continue
            data = replace.get(name, old.read(name))
            new.writestr(folder + replace.get(f"rename:{name}", name), data)
    return target


def test_broken_submissions_get_clear_messages_and_spare_the_batch(submissions, data_dir, tmp_path):
    reference = submissions / "mlp-reference.zip"
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a-not-a-zip.zip").write_text("definitely not a zip")
    _variant(reference, batch / "b-syntax-error.zip", {"mlp.py": "class Net(:\n    pass\n"})
    _variant(reference, batch / "c-import-error.zip", {"mlp.py": "raise RuntimeError('boom at import')\n"})
    _variant(reference, batch / "d-wrong-name.zip", {"rename:mlp.py": "MLP.py"})
    _variant(reference, batch / "g-nested-folder.zip", {}, folder="my-homework/")
    _variant(reference, batch / "h-exits-at-import.zip", {"mlp.py": "import os\nos._exit(0)\n"})
    (batch / "z-reference.zip").write_bytes(reference.read_bytes())
    out = tmp_path / "out"
    limits = GradingSpec(timeout_per_test=120, timeout_total=300, memory_gb=8)
    outcomes = {o.name: o for o in grade_path(batch, out_dir=out, assignment="mlp", data_dir=data_dir, grading=limits,
                                              jobs=2)}

    def messages(name):
        results = _results(out, name)
        return results, results["output"] + "\n" + "\n".join(t["output"] for t in results["tests"])

    full = outcomes["z-reference"].max_score
    assert outcomes["z-reference"].score == full
    assert outcomes["g-nested-folder"].score == full
    assert "top level" in messages("g-nested-folder")[1]

    results, text = messages("a-not-a-zip")
    assert results["score"] == 0 and "not a valid zip" in text and results["extra_data"]["status"] == "ungradable"
    results, text = messages("b-syntax-error")
    assert "syntax error at line 1" in text
    results, text = messages("c-import-error")
    assert "RuntimeError: boom at import" in text
    results, text = messages("d-wrong-name")
    assert "rename it to mlp.py" in text
    # only the tests that need the agent file alone score; everything needing mlp.py is 0
    assert outcomes["d-wrong-name"].score == 0
    results, text = messages("h-exits-at-import")
    assert results["score"] == 0 and "ended early" in text
    assert all(o.score == 0 for n, o in outcomes.items() if n[0] in "abcdh")


def test_endless_loops_are_stopped_and_scored_zero(submissions, data_dir, tmp_path):
    reference = submissions / "mlp-reference.zip"
    batch = tmp_path / "batch"
    batch.mkdir()
    _variant(reference, batch / "endless-import.zip", {"mlp.py": "while True:\n    pass\n"})
    _variant(reference, batch / "swallows-timeouts.zip",
             {"mlp.py": "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n"})
    out = tmp_path / "out"
    limits = GradingSpec(timeout_per_test=4, timeout_total=20, memory_gb=8)
    outcomes = {o.name: o for o in grade_path(batch, out_dir=out, assignment="mlp", data_dir=data_dir, grading=limits,
                                              jobs=2)}
    endless = _results(out, "endless-import")
    assert outcomes["endless-import"].score == 0
    assert "Timeout" in endless["tests"][0]["output"]
    swallowed = _results(out, "swallows-timeouts")
    assert outcomes["swallows-timeouts"].score == 0 and outcomes["swallows-timeouts"].seconds < 90
    assert all("time limit" in t["output"] for t in swallowed["tests"] if t["max_score"])


def test_class_summary_has_pass_rates_and_distribution(graded):
    out, outcomes = graded
    summary = (out / "summary.md").read_text()
    assert "## mlp: 2 submission(s)" in summary and "| test | passed |" in summary
    assert "(50%)" in summary  # every mlp test: the reference passes it, the stub does not
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regrading_is_deterministic_and_resumes(submissions, data_dir, tmp_path):
    # One torch thread, as in the batches graded with -j 2 above: the session's trained predictions are shared.
    grade = functools.partial(grade_path, assignment="mlp", data_dir=data_dir, threads=1)
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "ref.zip").write_bytes((submissions / "mlp-reference.zip").read_bytes())
    first = grade(batch, out_dir=tmp_path / "a")
    second = grade(batch, out_dir=tmp_path / "b")

    def scores(folder):
        results = json.loads((folder / "ref" / "results.json").read_text())
        return [(t["name"], t["score"], t["output"]) for t in results["tests"]]

    assert scores(tmp_path / "a") == scores(tmp_path / "b")
    assert first[0].score == second[0].score == first[0].max_score
    again = grade(batch, out_dir=tmp_path / "a")
    assert again[0].status == "unchanged" and again[0].score == first[0].score
    (batch / "ref.zip").write_bytes((submissions / "mlp-stub.zip").read_bytes())
    changed = grade(batch, out_dir=tmp_path / "a")
    assert changed[0].status == "graded" and changed[0].score == 0
