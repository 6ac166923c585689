import dataclasses

import pytest

from autograder.config import AccuracyCheck, AssignmentConfig, ConfigError, list_assignments, load_assignment
from mnistkit.train import BUDGET_KEYS, Budget, budget_of


def test_config_every_assignment_loads_and_is_complete():
    names = list_assignments()
    assert "mlp" in names
    for name in names:
        config = load_assignment(name)
        assert config.visible_tests() and config.hidden_tests()
        for stub in config.handout.stubs:
            assert (config.solution_dir / stub).is_file(), f"{name}: solutions/{name}/{stub} is missing"
            assert stub in config.submission.files
        for file in config.handout.files:
            assert (config.root / "handout" / file).exists()
        assert (config.root / "README.md").is_file()
        for check in config.accuracy.values():
            assert 0 < check.threshold < 1 and check.measured, f"{name}: thresholds must say how they were measured"


def test_config_unknown_assignment_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown assignment 'nope'; known: .*mlp"):
        load_assignment("nope")


def test_config_rejects_unknown_keys(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "assignment.toml").write_text(
        'name = "x"\ntitle = "t"\n[submission]\nfiles = ["x.py"]\ntypo = 1\n[handout]\nstubs = ["x.py"]\n'
    )
    with pytest.raises(ConfigError, match=r"\[submission\]: unknown key\(s\) \['typo'\]"):
        load_assignment("x", assignments_dir=tmp_path)


def test_config_fields_carry_descriptions():
    for cls in (AssignmentConfig,):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no description"


def test_config_budget_keys_are_those_of_the_accuracy_checks():
    """The keys mnistkit reads as the grader's budget are exactly the budget keys an [accuracy.*] table accepts."""
    budget_fields = {f.name for f in dataclasses.fields(Budget)}
    check_fields = {f.name for f in dataclasses.fields(AccuracyCheck)}
    assert set(BUDGET_KEYS) == budget_fields & check_fields
    check = {"threshold": 0.9, "description": "d", "measured": "m", "epochs": 0.5, "batch_size": 32, "subset": 64}
    assert budget_of(check) == Budget(epochs=0.5, batch_size=32, subset=64)
