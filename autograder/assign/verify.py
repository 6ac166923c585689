"""Verify a released handout zip: it holds the stubs as generated and no solution or hidden test."""
from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from ..config import AssignmentConfig
from .strip import BEGIN, END, HINT, solution_code_lines, strip_solutions


class LeakError(RuntimeError):
    """A handout that would give students a solution or a hidden test, or a stub that drifted."""


def hidden_test_names(config: AssignmentConfig) -> set[str]:
    """Names of the test functions defined only in hidden test files."""
    names: set[str] = set()
    for path in config.hidden_tests():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    for path in config.visible_tests():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names -= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return names


def verify_handout(zip_path: Path, config: AssignmentConfig) -> None:
    """Raise :class:`LeakError` listing every problem found in ``zip_path``."""
    problems: list[str] = []
    secret_lines: dict[str, str] = {}
    for name in config.handout.stubs:
        source = config.solution_dir / name
        for line in solution_code_lines(source.read_text(encoding="utf-8"), filename=str(source)):
            secret_lines[line] = name
    hidden_files = {p.name for p in config.hidden_tests()}
    hidden_names = hidden_test_names(config)
    prefix = f"{config.name}/"

    with zipfile.ZipFile(zip_path) as archive:
        members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        for name in config.handout.stubs:
            if prefix + name not in members:
                problems.append(f"stub {name} is missing")
                continue
            source = config.solution_dir / name
            expected = strip_solutions(source.read_text(encoding="utf-8"), filename=str(source))
            if archive.read(prefix + name).decode("utf-8") != expected:
                problems.append(f"stub {name} differs from what stripping {source.name} produces")
        for member in members:
            if not member.startswith(prefix):
                problems.append(f"{member} is outside the top folder {prefix}")
            if Path(member).name in hidden_files:
                problems.append(f"{member} is a hidden test file")
            if member.split("/")[1:2] == ["solutions"]:
                problems.append(f"{member} is under solutions/")
            try:
                text = archive.read(member).decode("utf-8")
            except UnicodeDecodeError:
                continue
            for marker in (BEGIN, END, HINT):
                if marker in text:
                    problems.append(f"{member} contains the solution marker {marker!r}")
            stripped = {line.strip() for line in text.splitlines()}
            for line in stripped & secret_lines.keys():
                problems.append(f"{member} contains solution code of {secret_lines[line]}: {line!r}")
            for test in hidden_names:
                if f"def {test}(" in text:
                    problems.append(f"{member} defines the hidden test {test}")
    if problems:
        raise LeakError(f"{zip_path.name} failed verification:\n  " + "\n  ".join(problems))
