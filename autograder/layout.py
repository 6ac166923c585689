"""The handout's layout, shared by releasing and grading (neither imports the other).

A handout folder, as students get it and as the grader rebuilds it::

    <folder>/  assignment.toml  README.md  pytest.ini  requirements.txt  mnistkit/  <handout files>
               tests/  conftest.py  plan.py  test_<visible>.py        (+ the hidden tests, when grading)

Each function adds one part, so release and grading compose the same steps.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .config import TEMPLATE_DIR, AssignmentConfig

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


def copy_template(config: AssignmentConfig, folder: Path) -> None:
    """The shared student template (mnistkit, pytest.ini, requirements), assignment.toml and the README."""
    shutil.copytree(TEMPLATE_DIR, folder, ignore=IGNORED, dirs_exist_ok=True)
    shutil.copy2(config.root / "assignment.toml", folder / "assignment.toml")
    shutil.copy2(config.root / "README.md", folder / "README.md")


def copy_handout_files(config: AssignmentConfig, folder: Path) -> None:
    """Files the assignment ships unchanged (training scripts and the like)."""
    for name in config.handout.files:
        source = config.root / "handout" / name
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            shutil.copy2(source, target)


def support_files(config: AssignmentConfig) -> list[Path]:
    """The tests' public support files: ``tests/conftest.py``, ``tests/plan.py`` and any other module there."""
    return sorted(p for p in (config.root / "tests").glob("*.py"))


def add_tests(config: AssignmentConfig, folder: Path, *, hidden: bool) -> None:
    """``tests/``: the support files and the visible tests, and the hidden tests if ``hidden``."""
    tests = folder / "tests"
    tests.mkdir(exist_ok=True)
    files = [*support_files(config), *config.visible_tests(), *(config.hidden_tests() if hidden else [])]
    for path in files:
        shutil.copy2(path, tests / path.name)


def add_files(folder: Path, files: dict[str, Path], allowed: set[str]) -> None:
    """Copy ``files`` (name -> path) into ``folder``, only under the ``allowed`` names."""
    for name, path in files.items():
        if name in allowed:
            shutil.copy2(path, folder / name)


def build_judge_folder(config: AssignmentConfig, folder: Path) -> None:
    """The handout as released, with the hidden tests added; no student file."""
    folder.mkdir(parents=True, exist_ok=True)
    copy_template(config, folder)
    copy_handout_files(config, folder)
    add_tests(config, folder, hidden=True)
