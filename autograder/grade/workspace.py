"""Lay out the folder a submission is graded in: the handout as released, the tests, the student's files.

The layout is the handout's, so tests run exactly as on the student's machine::

    work/  assignment.toml  conftest.py  pytest.ini  mnistkit/  <handout files>  tests/  <student files>

The student's files are copied last and only under the names the assignment lists, so a submission
cannot bring its own conftest.py, pytest.ini or mnistkit.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..assign.release import copy_handout_files, copy_template
from ..config import AssignmentConfig


def add_all_tests(config: AssignmentConfig, work: Path) -> None:
    """tests/conftest.py plus the visible and the hidden tests."""
    tests = work / "tests"
    tests.mkdir(exist_ok=True)
    conftest = config.root / "tests" / "conftest.py"
    if conftest.is_file():
        shutil.copy2(conftest, tests / "conftest.py")
    for path in [*config.visible_tests(), *config.hidden_tests()]:
        shutil.copy2(path, tests / path.name)


def build_workspace(config: AssignmentConfig, work: Path, student_files: dict[str, Path]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    copy_template(config, work)
    copy_handout_files(config, work)
    add_all_tests(config, work)
    allowed = set(config.submission.files) | set(config.submission.optional)
    for name, path in student_files.items():
        if name in allowed:
            shutil.copy2(path, work / name)
