"""Verify a released handout zip: it holds the stubs as generated and no solution or hidden test."""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

from ..config import AssignmentConfig
from .render import PLACEHOLDER
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


def _secrets(config: AssignmentConfig) -> dict[str, str]:
    """Every distinctive solution line, mapped to the stub file it belongs to."""
    secret_lines: dict[str, str] = {}
    for name in config.handout.stubs:
        source = config.solution_dir / name
        for line in solution_code_lines(source.read_text(encoding="utf-8"), filename=str(source)):
            secret_lines[line] = name
    return secret_lines


def expected_stub(config: AssignmentConfig, name: str) -> str:
    source = config.solution_dir / name
    return strip_solutions(source.read_text(encoding="utf-8"), filename=str(source))


def leaks(member: str, text: str, config: AssignmentConfig, *, secret_lines: dict[str, str] | None = None,
          hidden_names: set[str] | None = None) -> list[str]:
    """What ``text`` (the file ``member`` of a release) gives away: markers, solution lines, hidden tests."""
    secret_lines = _secrets(config) if secret_lines is None else secret_lines
    hidden_names = hidden_test_names(config) if hidden_names is None else hidden_names
    problems = []
    if "{{" in text and PLACEHOLDER.search(text):
        problems.append(f"{member} holds a value that was not rendered: {PLACEHOLDER.search(text).group(0)}")
    for marker in (BEGIN, END, HINT):
        if marker in text:
            problems.append(f"{member} contains the solution marker {marker!r}")
    stripped = {line.strip() for line in text.splitlines()}
    for line in stripped & secret_lines.keys():
        problems.append(f"{member} contains solution code of {secret_lines[line]}: {line!r}")
    for test in hidden_names:
        if f"def {test}(" in text:
            problems.append(f"{member} defines the hidden test {test}")
    return problems


def verify_handout(zip_path: Path, config: AssignmentConfig) -> None:
    """Raise :class:`LeakError` listing every problem found in ``zip_path``."""
    problems: list[str] = []
    secret_lines = _secrets(config)
    hidden_files = {p.name for p in config.hidden_tests()}
    hidden_names = hidden_test_names(config)
    prefix = f"{config.name}/"

    with zipfile.ZipFile(zip_path) as archive:
        members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        for name in config.handout.stubs:
            if prefix + name not in members:
                problems.append(f"stub {name} is missing")
                continue
            if archive.read(prefix + name).decode("utf-8") != expected_stub(config, name):
                problems.append(f"stub {name} differs from what stripping {name} of the solution produces")
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
            problems += leaks(member, text, config, secret_lines=secret_lines, hidden_names=hidden_names)
    if problems:
        raise LeakError(f"{zip_path.name} failed verification:\n  " + "\n  ".join(problems))


def verify_notebook(path: Path, config: AssignmentConfig) -> None:
    """Raise :class:`LeakError` unless the student notebook ``path`` holds the stubs and nothing secret.

    Every cell is checked, and so is every support file embedded in its setup cell.
    """
    from mnistkit.notebook import cell_source, written_files

    from .notebook import bundle_of

    notebook = json.loads(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    secret_lines = _secrets(config)
    hidden_names = hidden_test_names(config)
    written = written_files(notebook)
    for name in config.handout.stubs:
        if name not in written:
            problems.append(f"no %%writefile {name} cell")
        elif written[name] != expected_stub(config, name):
            problems.append(f"the %%writefile {name} cell differs from what stripping {name} of the solution produces")
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        problems += leaks(f"cell {number}", cell_source(cell), config, secret_lines=secret_lines,
                          hidden_names=hidden_names)
    hidden_files = {p.name for p in config.hidden_tests()}
    for member, data in bundle_of(notebook).items():
        if Path(member).name in hidden_files or Path(member).name in config.handout.stubs:
            problems.append(f"the setup cell embeds {member}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        problems += leaks(f"setup cell file {member}", text, config, secret_lines=secret_lines,
                          hidden_names=hidden_names)
    if problems:
        raise LeakError(f"{path.name} failed verification:\n  " + "\n  ".join(problems))
