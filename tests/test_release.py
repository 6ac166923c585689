"""Every handout zip holds the generated stubs and never a solution or a hidden test."""
import zipfile

import pytest

from autograder.assign.release import release_assignment
from autograder.assign.strip import strip_solutions
from autograder.assign.verify import LeakError, hidden_test_names, verify_handout


def test_release_writes_one_zip_per_assignment(released, assignments):
    assert sorted(released) == sorted(c.name for c in assignments)
    for path in released.values():
        assert path.is_file() and path.suffix == ".zip"


def test_release_stub_equals_stripped_solution(released, assignments):
    for config in assignments:
        with zipfile.ZipFile(released[config.name]) as archive:
            for stub in config.handout.stubs:
                solution = (config.solution_dir / stub).read_text()
                assert archive.read(f"{config.name}/{stub}").decode() == strip_solutions(solution)


def test_release_holds_no_solution_and_no_hidden_test(released, assignments):
    for config in assignments:
        with zipfile.ZipFile(released[config.name]) as archive:
            names = archive.namelist()
            text = "\n".join(archive.read(n).decode("utf-8", "replace") for n in names)
        assert config.hidden_tests(), f"{config.name} has no hidden tests"
        for hidden in config.hidden_tests():
            assert not any(n.endswith("/" + hidden.name) for n in names)
        for test in hidden_test_names(config):
            assert f"def {test}(" not in text
        assert "BEGIN SOLUTION" not in text and "### HINT" not in text
        for visible in config.visible_tests():
            assert f"{config.name}/tests/{visible.name}" in names
        assert f"{config.name}/README.md" in names and f"{config.name}/requirements.txt" in names


def test_release_is_reproducible(assignments, tmp_path):
    config = assignments[0]
    first = release_assignment(config, out_dir=tmp_path / "a").read_bytes()
    second = release_assignment(config, out_dir=tmp_path / "b").read_bytes()
    assert first == second


def _rezip(source, target, extra: dict[str, str]):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(item, old.read(item))
        for name, text in extra.items():
            new.writestr(name, text)


def test_verify_catches_a_leaked_hidden_test(released, assignments, tmp_path):
    config = assignments[0]
    hidden = config.hidden_tests()[0]
    bad = tmp_path / "bad.zip"
    _rezip(released[config.name], bad, {f"{config.name}/tests/{hidden.name}": hidden.read_text()})
    with pytest.raises(LeakError, match="hidden test"):
        verify_handout(bad, config)


def test_verify_catches_leaked_solution_code(released, assignments, tmp_path):
    config = assignments[0]
    stub = config.handout.stubs[0]
    bad = tmp_path / "bad.zip"
    _rezip(released[config.name], bad, {f"{config.name}/notes.py": (config.solution_dir / stub).read_text()})
    with pytest.raises(LeakError, match="solution"):
        verify_handout(bad, config)


def test_verify_catches_a_drifted_stub(released, assignments, tmp_path):
    config = assignments[0]
    stub = config.handout.stubs[0]
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(released[config.name]) as old, zipfile.ZipFile(bad, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == f"{config.name}/{stub}":
                data += b"\n# edited by hand\n"
            new.writestr(item, data)
    with pytest.raises(LeakError, match="differs from what stripping"):
        verify_handout(bad, config)


def test_reference_timeout_applies_to_all_commands_together(tmp_path):
    """[reference] timeout is the time of every reference command together, as autograder/config.py documents."""
    import dataclasses

    from autograder.assign.submission import SubmissionBuildError, build_submission
    from autograder.config import load_assignment

    config = load_assignment("mlp")
    nap = ("python", "-c", "import time; time.sleep(0.8)")
    config = dataclasses.replace(config, handout=dataclasses.replace(config.handout, stubs=()),
                                 reference=dataclasses.replace(config.reference, commands=(nap, nap), timeout=1.2))
    handout = tmp_path / "handout.zip"
    with zipfile.ZipFile(handout, "w") as archive:
        archive.writestr("mlp/assignment.toml", "")
    # each command alone fits in the limit, the two together do not
    with pytest.raises(SubmissionBuildError, match=r"time limit \(\[reference\] timeout of assignment.toml\)"):
        build_submission(config, handout, tmp_path / "out.zip", kind="reference")
