"""Notebook handouts, built from the same sources as the .py handout: a student notebook and an nbgrader one.

Every notebook is one ordered list of :class:`Cell` made by :func:`cells`:

1. how to use the notebook (markdown);
2. *setup* (code): the handout's support files (``mnistkit``, tests, scripts, ``assignment.toml``) as one
   embedded zip, unpacked into the working folder; then :func:`mnistkit.notebook.prepare` installs what
   Colab lacks and fetches MNIST, and ``%load_ext mnistkit.notebook`` adds the ``%%run_tests`` magic;
3. the handout README, one markdown cell per ``##`` section;
4. one ``%%writefile <stub>`` cell per file to write, and one per editable text file it submits;
5. the commands of ``[notebook] run`` as ``!`` cells (training scripts and the like);
6. the tests: a ``%%run_tests --preamble`` cell with the test file's imports and helpers, then one
   ``%%run_tests`` cell per test function; the nbgrader notebook adds the hidden ones, each between
   ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``;
7. how to submit (student notebook only).

The three flavours differ only in the code cells' bodies: the student notebook has the stubs (stripped
by :func:`strip_solutions`, exactly the .py handout's), the reference notebook the solutions, and the
nbgrader source notebook the solutions with nbgrader's markers and each hint as a comment above them.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mnistkit.notebook import MAGIC, PREAMBLE_FLAG, RUN_STEP, cell_source

from ..config import AssignmentConfig
from .render import rendered_readme
from .release import ZIP_DATE, add_visible_tests, copy_handout_files, copy_template, render_values
from .strip import BEGIN, END, find_regions, strip_solutions, todo_comment

STUDENT, REFERENCE, NBGRADER = "student", "reference", "nbgrader"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
TEXT_SUFFIXES = (".md", ".txt", ".toml", ".json", ".py", ".csv")
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


@dataclass
class Cell:
    """One cell and its part in the assignment (``role``), which decides its nbgrader metadata."""

    kind: str  # "markdown" | "code"
    source: str
    role: str  # readme | setup | solution | file | run | preamble | test | submit
    grade_id: str = ""
    points: float = 0.0


# -- the pieces ------------------------------------------------------------------------------------------

def readme_sections(text: str) -> list[str]:
    """The README split before every ``## `` heading outside code fences; joined back they are the README."""
    sections: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if line.startswith("## ") and not fenced and any(s.strip() for s in sections[-1]):
            sections.append([])
        sections[-1].append(line)
    return ["".join(s) for s in sections]


def editable_files(config: AssignmentConfig) -> list[str]:
    """Handout text files the student edits and submits (a report, say): they become ``%%writefile`` cells."""
    return [name for name in config.handout.files
            if name in config.submission.files and name.endswith(TEXT_SUFFIXES)
            and (config.root / "handout" / name).is_file()]


def support_bundle(config: AssignmentConfig) -> bytes:
    """The handout's files minus the stubs, the editable files and the README, as a reproducible zip."""
    with tempfile.TemporaryDirectory(prefix=f"bundle-{config.name}-") as staging:
        root = Path(staging)
        for step in (copy_template, copy_handout_files, add_visible_tests, render_values):
            step(config, root)
        for name in ("README.md", *editable_files(config)):
            (root / name).unlink(missing_ok=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        return buffer.getvalue()


def bundle_files(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def bundle_of(notebook: dict) -> dict[str, bytes]:
    """The support files embedded in the notebook's setup cell (empty when there is none)."""
    for cell in notebook.get("cells", []):
        source = cell_source(cell)
        if cell.get("cell_type") == "code" and 'BUNDLE = """' in source:
            encoded = source.split('BUNDLE = """', 1)[1].split('"""', 1)[0]
            return bundle_files(base64.b64decode("".join(encoded.split())))
    return {}


def setup_source(config: AssignmentConfig) -> str:
    encoded = base64.b64encode(support_bundle(config)).decode("ascii")
    lines = [encoded[i:i + 100] for i in range(0, len(encoded), 100)]
    return "\n".join([
        "# @title Setup: run this cell first { display-mode: \"form\" }",
        "# It unpacks the handout's support files (the mnistkit package, the visible tests, the scripts) into",
        "# this folder, installs the packages this runtime lacks, fetches MNIST and adds the %%run_tests magic.",
        "# It never touches the files you write in the cells below.",
        "import base64, importlib, io, zipfile",
        "BUNDLE = \"\"\"",
        *lines,
        "\"\"\"",
        "zipfile.ZipFile(io.BytesIO(base64.b64decode(BUNDLE))).extractall()",
        "importlib.invalidate_caches()  # the new mnistkit folder is importable at once",
        "from mnistkit.notebook import prepare",
        f"prepare(mnist={config.grading.mnist})",
        "%load_ext mnistkit.notebook",
    ])


def split_tests(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a test module into its preamble (imports, constants, helpers) and its test functions.

    A test function's source runs from its first decorator (or the comment lines right above it) to its
    last line. The preamble is everything else except the module docstring.
    """
    tree = ast.parse(text)
    lines = text.splitlines()
    taken: set[int] = set()
    tests: list[tuple[str, str]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            while start > 1 and lines[start - 2].lstrip().startswith("#"):
                start -= 1
            span = range(start, node.end_lineno + 1)
            taken.update(span)
            tests.append((node.name, "\n".join(lines[start - 1:node.end_lineno]) + "\n"))
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        taken.update(range(first.lineno, first.end_lineno + 1))
    kept = [line for number, line in enumerate(lines, start=1) if number not in taken]
    preamble = "\n".join(kept).strip("\n")
    while "\n\n\n\n" in preamble:
        preamble = preamble.replace("\n\n\n\n", "\n\n\n")
    return preamble + "\n", tests


def nbgrader_solution(text: str, *, filename: str) -> str:
    """The solution with nbgrader's markers only: the ``### HINT:`` lines become the stub's ``# TODO:``
    comment above the region (nbgrader keeps it when it clears the solution)."""
    lines = text.splitlines()
    out: list[str] = []
    cursor = 0
    for region in find_regions(text, filename=filename):
        out.extend(lines[cursor:region.begin - 1])
        out.extend(todo_comment(region))
        out.append(f"{region.indent}{BEGIN}")
        out.extend(lines[region.first_code_line - 1:region.end - 1])  # the code, without the hint lines
        out.append(f"{region.indent}{END}")
        cursor = region.end
    out.extend(lines[cursor:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _code_body(config: AssignmentConfig, name: str, flavour: str) -> str:
    source = config.solution_dir / name
    text = source.read_text(encoding="utf-8")
    if flavour == STUDENT:
        return strip_solutions(text, filename=str(source))
    if flavour == NBGRADER:
        return nbgrader_solution(text, filename=str(source))
    return text


def _points(config: AssignmentConfig) -> dict[tuple[str, str], float]:
    """Points per (test file, function), summed over parametrised cases, from the grader's own manifest."""
    from ..testrun import collect_manifest  # a subprocess: only the nbgrader notebook needs it

    points: dict[tuple[str, str], float] = {}
    for spec in collect_manifest(config):
        key = (Path(spec.file).name, spec.function.split("[")[0])
        points[key] = points.get(key, 0.0) + spec.max_score
    return points


# -- the notebook ----------------------------------------------------------------------------------------

def cells(config: AssignmentConfig, *, flavour: str) -> list[Cell]:
    """Every cell of the ``flavour`` notebook (student, reference or nbgrader), in order."""
    stubs = ", ".join(f"`{name}`" for name in config.handout.stubs)
    intro = "\n".join([
        f"# {config.title}: the notebook",
        "",
        "This notebook is the handout in cells; it runs in Colab or Jupyter. Work through it top to bottom:",
        "",
        "1. Run the **setup** cell first. It unpacks the support files into this folder and fetches MNIST.",
        f"2. Write your code in the `%%writefile` cell(s) of {stubs}. Running such a cell saves it as that "
        "file; the tests and the grader read the file, so keep the `%%writefile` line.",
        "3. Run the test cells (`%%run_tests`). A failing test says what it expected and what your code gave.",
        "4. Submit as the last cell says.",
        "",
        "The README of the handout follows, section by section.",
    ])
    result = [Cell("markdown", intro, "readme", "intro"), Cell("code", setup_source(config), "setup", "setup")]
    readme = rendered_readme(config)
    result += [Cell("markdown", text.strip("\n"), "readme", f"readme-{i}") for i, text in
               enumerate(readme_sections(readme), start=1)]
    result.append(Cell("markdown", "## Your code", "readme", "your-code"))
    for name in config.handout.stubs:
        body = _code_body(config, name, flavour)
        result.append(Cell("code", f"%%writefile {name}\n{body}", "solution", _grade_id(name)))
    for name in editable_files(config):
        body = (config.root / "handout" / name).read_text(encoding="utf-8")
        result.append(Cell("code", f"%%writefile {name}\n{body}", "file", _grade_id(name)))
    if config.notebook.run:
        result.append(Cell("markdown", "## Run it\n\nThe handout's scripts, as the README describes them "
                           "(`%run_step` runs a command with this notebook's own Python and stops the notebook "
                           "if it fails).", "readme", "run-it"))
        result += [Cell("code", f"%{RUN_STEP} {command}", "run", f"run-{i}")
                   for i, command in enumerate(config.notebook.run, 1)]
    result.append(Cell("markdown", "## Tests\n\nThe visible tests, one function per cell. The grader runs "
                       "them and hidden tests of the same contract.", "readme", "tests"))
    points = _points(config) if flavour == NBGRADER else {}
    for path in config.visible_tests():
        result += _test_cells(path, points, hidden=False)
    if flavour == NBGRADER:
        for path in config.hidden_tests():
            result += _test_cells(path, points, hidden=True)
    if flavour != NBGRADER:
        result.append(Cell("markdown", _SUBMIT, "readme", "submit-how"))
        result.append(Cell("code", _SUBMIT_CODE, "submit", "submit"))
    return result


_SUBMIT = """## Submit

Run the next cell: it checks your files and packs the ones the grader wants into
`<assignment>-submission.zip` in this folder (in Colab it also downloads it). Upload that zip. A notebook
alone (File > Download > .ipynb) is accepted too: the grader takes your code from its `%%writefile` cells,
but files your scripts produce (trained weights, results) only travel in the zip."""

_SUBMIT_CODE = f"""%{RUN_STEP} python -m mnistkit.submit
try:
    from google.colab import files  # only in Colab
    import glob
    files.download(glob.glob("*-submission.zip")[0])
except ImportError:
    pass"""


def _grade_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _test_cells(path: Path, points: dict[tuple[str, str], float], *, hidden: bool) -> list[Cell]:
    preamble, tests = split_tests(path.read_text(encoding="utf-8"))
    result = []
    if not hidden:
        result.append(Cell("code", f"%%{MAGIC} {PREAMBLE_FLAG}\n{preamble}", "preamble", f"preamble-{path.stem}"))
    for name, source in tests:
        if hidden and points.get((path.name, name), 0.0) <= 0:
            continue  # nbgrader hides tests only in graded cells; a hidden test worth nothing is left out
        if hidden:
            source = f"{HIDDEN_BEGIN}\n{preamble}\n\n{source}{HIDDEN_END}\n"
        result.append(Cell("code", f"%%{MAGIC}\n{source}", "test", name, points.get((path.name, name), 0.0)))
    return result


def _nbgrader_metadata(cell: Cell) -> dict | None:
    base = {"grade": False, "grade_id": cell.grade_id, "locked": False, "schema_version": 3, "solution": False,
            "task": False}
    if cell.role in ("readme", "setup", "preamble"):
        return {**base, "locked": True}
    if cell.role in ("solution", "file"):
        return {**base, "solution": True}
    if cell.role == "test":
        if cell.points <= 0:  # GPU-only and bonus tests run but carry no nbgrader points
            return {**base, "locked": True}
        return {**base, "grade": True, "locked": True, "points": cell.points}
    return None


def to_notebook(config: AssignmentConfig, cell_list: list[Cell], *, flavour: str) -> dict:
    """An nbformat 4 notebook (a plain dict) of ``cell_list``."""
    out = []
    for cell in cell_list:
        metadata: dict = {}
        if flavour == NBGRADER and (nbgrader := _nbgrader_metadata(cell)) is not None:
            metadata["nbgrader"] = nbgrader
        if cell.role == "setup":
            metadata["cellView"] = "form"  # Colab folds the long setup cell
            metadata["jupyter"] = {"source_hidden": True}
        entry = {"cell_type": cell.kind, "id": _grade_id(cell.grade_id)[:64] or f"cell-{len(out)}",
                 "metadata": metadata, "source": cell.source}
        if cell.kind == "code":
            entry.update(execution_count=None, outputs=[])
        out.append(entry)
    metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"},
                "mnistkit": {"assignment": config.name, "flavour": flavour}, "accelerator": "GPU",
                "colab": {"provenance": []}}
    return {"cells": out, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def build_notebook(config: AssignmentConfig, *, flavour: str) -> dict:
    return to_notebook(config, cells(config, flavour=flavour), flavour=flavour)


def write_notebook(notebook: dict, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(target)
    return target


NBGRADER_CONFIG = '''# nbgrader configuration written by mnist-kit (`make release`). This course folder is for instructors:
# source/ holds the reference solutions and the hidden tests. nbgrader generate_assignment <name> writes
# the student version into release/; nbgrader autograde <name> --create grades submitted/<student>/<name>/.
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "mnist-kit"
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE (see the TODO comment above)\\nraise NotImplementedError()"}}
# Test cells train networks: allow each cell as long as the kit allows a test.
c.Execute.timeout = {timeout}
'''


def write_nbgrader_course(configs: list[AssignmentConfig], out_dir: Path) -> Path:
    """``out_dir/nbgrader_config.py`` and ``out_dir/source/<name>/<name>.ipynb`` for every assignment."""
    if out_dir.exists():
        shutil.rmtree(out_dir / "source", ignore_errors=True)
    for config in configs:
        write_notebook(build_notebook(config, flavour=NBGRADER), out_dir / "source" / config.name / f"{config.name}.ipynb")
    timeout = int(max(c.grading.timeout_per_test for c in configs) * 2)
    (out_dir / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(timeout=timeout),
                                                encoding="utf-8")
    return out_dir
