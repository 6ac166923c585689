"""Notebook handouts: the student notebook never drifts from the .py handout, and nbgrader takes the course."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from autograder.assign import LeakError, verify_notebook
from autograder.assign.notebook import (
    HIDDEN_BEGIN, HIDDEN_END, NBGRADER, REFERENCE, STUDENT, build_notebook, bundle_of, nbgrader_solution,
    readme_sections, split_tests, write_nbgrader_course, write_notebook,
)
from autograder.assign.strip import BEGIN, END, HINT
from autograder.config import list_assignments, load_assignment
from autograder.testrun import collect_manifest
from autograder.grade.notebook_submission import files_from_notebook, guess_names, parse_notebook
from autograder.grade.unpack import Extraction, SubmissionError
from mnistkit.notebook import cell_source, written_files

ASSIGNMENTS = list_assignments()


@pytest.fixture(scope="module")
def student_notebooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    return {name: write_notebook(build_notebook(load_assignment(name), flavour=STUDENT), folder / f"{name}.ipynb")
            for name in ASSIGNMENTS}


def _nonblank(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_notebook_is_valid_nbformat_and_verified(student_notebooks, name):
    notebook = nbformat.read(student_notebooks[name], as_version=4)
    nbformat.validate(notebook)
    verify_notebook(student_notebooks[name], load_assignment(name))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_notebook_holds_exactly_the_handout(student_notebooks, released, name):
    """Drift check: setup bundle + %%writefile cells + README cells == the released handout zip, byte for byte."""
    notebook = json.loads(student_notebooks[name].read_text())
    with zipfile.ZipFile(released[name]) as archive:
        handout = {n.split("/", 1)[1]: archive.read(n) for n in archive.namelist() if not n.endswith("/")}
    from_notebook = dict(bundle_of(notebook))
    for file, text in written_files(notebook).items():
        assert file not in from_notebook, f"{file} is both embedded and a %%writefile cell"
        from_notebook[file] = text.encode()
    readme = handout.pop("README.md").decode()
    assert from_notebook == handout
    markdown = "\n".join(cell_source(c) for c in notebook["cells"] if c["id"].startswith("readme-"))
    assert _nonblank(markdown) == _nonblank(readme)


def test_verify_notebook_catches_a_solution_line_and_a_hidden_test(student_notebooks, tmp_path):
    config = load_assignment("mlp")
    notebook = json.loads(student_notebooks["mlp"].read_text())
    solution = (config.solution_dir / "mlp.py").read_text()
    notebook["cells"].append({"cell_type": "markdown", "id": "leak", "metadata": {}, "source": solution})
    leaky = tmp_path / "leaky.ipynb"
    leaky.write_text(json.dumps(notebook))
    with pytest.raises(LeakError, match="solution code of mlp.py"):
        verify_notebook(leaky, config)

    notebook = json.loads(student_notebooks["mlp"].read_text())
    setup = next(c for c in notebook["cells"] if c["id"] == "setup")
    hidden = config.hidden_tests()[0]
    files = bundle_of(notebook) | {f"tests/{hidden.name}": hidden.read_bytes()}
    buffer = __import__("io").BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    head, rest = setup["source"].split('BUNDLE = """', 1)
    setup["source"] = head + 'BUNDLE = """\n' + encoded + '\n"""' + rest.split('"""', 1)[1]
    leaky.write_text(json.dumps(notebook))
    with pytest.raises(LeakError, match=f"embeds tests/{hidden.name}"):
        verify_notebook(leaky, config)


def test_readme_sections_split_at_level_two_headings_outside_fences():
    text = "# T\n\nintro\n\n## A\n\n```\n## not a heading\n```\n\n## B\nend\n"
    sections = readme_sections(text)
    assert "".join(sections) == text
    assert [s.splitlines()[0] for s in sections] == ["# T", "## A", "## B"]


def test_split_tests_keeps_every_line_but_the_docstring():
    text = ('"""Doc."""\nimport pytest\n\nLIMIT = 3\n\n\n# about a\n@pytest.mark.points(2)\ndef test_a():\n'
            '    assert LIMIT == 3\n\n\ndef helper():\n    return 1\n\n\ndef test_b():\n    assert helper() == 1\n')
    preamble, tests = split_tests(text)
    assert [name for name, _ in tests] == ["test_a", "test_b"]
    assert tests[0][1].startswith("# about a\n@pytest.mark.points(2)\ndef test_a():")
    assert "def helper()" in preamble and "LIMIT = 3" in preamble and "Doc." not in preamble
    assert "def test_" not in preamble


def test_nbgrader_solution_keeps_the_hint_as_a_comment_and_only_nbgrader_markers():
    config = load_assignment("mlp")
    text = nbgrader_solution((config.solution_dir / "mlp.py").read_text(), filename="mlp.py")
    assert HINT not in text and text.count(BEGIN) == text.count(END) > 0
    lines = text.splitlines()
    begins = [n for n, line in enumerate(lines) if line.strip() == BEGIN]
    assert text.count("# TODO: ") == len(begins)
    for n in begins:  # the stub's TODO comment, right above the region nbgrader clears
        above = n - 1
        while lines[above].lstrip().startswith("#       "):
            above -= 1
        assert lines[above].lstrip().startswith("# TODO: "), lines[above]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_nbgrader_notebook_points_equal_the_graders(name):
    config = load_assignment(name)
    notebook = build_notebook(config, flavour=NBGRADER)
    nbformat.validate(nbformat.from_dict(notebook))
    graded = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    total = sum(c["metadata"]["nbgrader"]["points"] for c in graded)
    assert total == pytest.approx(sum(spec.max_score for spec in collect_manifest(config)))
    hidden = [c for c in graded if HIDDEN_BEGIN in c["source"]]
    assert hidden and all(c["source"].rstrip().endswith(HIDDEN_END) for c in hidden)
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in notebook["cells"] if "nbgrader" in c["metadata"]]
    assert len(ids) == len(set(ids))


# -- the grader's side -------------------------------------------------------------------------------------

def _notebook(*sources: str) -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
                      for s in sources], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_written_files_follow_ipython_last_cell_wins_and_append():
    notebook = _notebook("%%writefile a.py\nx = 1", "print('not a file')", "%%writefile a.py\nx = 2\n",
                         "%%writefile -a a.py\ny = 3", ["%%writefile b.md\n", "# title\n"])
    notebook["cells"].append({"cell_type": "markdown", "source": "%%writefile c.py\nnope"})
    notebook["cells"].append("not a cell")
    assert written_files(notebook) == {"a.py": "x = 2\ny = 3\n", "b.md": "# title\n"}


def test_files_from_notebook_names_the_cell_of_a_syntax_error(tmp_path):
    config = load_assignment("mlp")
    extraction = Extraction()
    notebook = _notebook("import torch", "%%writefile mlp.py\nimport torch\nclass Net(:\n    pass\n")
    files_from_notebook(notebook, "hw.ipynb", config, tmp_path, extraction)
    assert extraction.files == {"mlp.py": tmp_path / "mlp.py"}
    notes = "\n".join(extraction.notes)
    assert "cell 2 of hw.ipynb" in notes and "does not compile" in notes and "line 3 of cell 2" in notes


def test_files_from_notebook_says_which_writefile_cell_is_missing(tmp_path):
    extraction = Extraction()
    files_from_notebook(_notebook("class Net:\n    pass"), "hw.ipynb", load_assignment("mlp"), tmp_path, extraction)
    assert not extraction.files
    assert "hw.ipynb has no `%%writefile mlp.py` cell" in extraction.notes[0]


def test_prepare_reads_the_handouts_requirements_txt(tmp_path):
    import importlib.util

    from autograder.config import TEMPLATE_DIR
    from mnistkit.notebook import requirements

    (tmp_path / "requirements.txt").write_text(
        "# comment\ntorch>=2.6  # why\npytest-timeout >= 2.2\nPyYAML\nold; python_version < '3.0'\n"
        "new; python_version >= '3.0'\n-e .\n\n")
    assert requirements(tmp_path) == {"torch": "torch>=2.6", "pytest_timeout": "pytest-timeout>=2.2",
                                      "yaml": "PyYAML", "new": "new"}
    template = requirements(TEMPLATE_DIR)  # what every handout ships; each one imports in the kit's venv
    assert {"torch", "pytest", "pytest_timeout", "safetensors"} <= set(template)
    assert [name for name in template if importlib.util.find_spec(name) is None] == []


def test_an_oversized_notebook_is_reported_as_too_large_with_the_limit(tmp_path):
    import dataclasses

    from autograder.grade.notebook_submission import notebook_files, oversized_notebook

    config = load_assignment("mlp")
    config = dataclasses.replace(config, submission=dataclasses.replace(config.submission, max_file_mb=0.5))
    big = json.dumps(_notebook("%%writefile mlp.py\nclass Net:\n    pass\n", "# " + "x" * 2**20))
    (tmp_path / "hw.ipynb").write_text(big)
    with zipfile.ZipFile(tmp_path / "hw.zip", "w") as archive:
        archive.writestr("hw.ipynb", big)
        archive.writestr("mnist_agent.pt", b"weights")
    expected = "hw.ipynb is larger than the 0.5 MB limit per file, so its %%writefile cells were not read"
    extraction = Extraction()
    notebook_files(tmp_path / "hw.zip", tmp_path, config, extraction)
    assert not extraction.files and extraction.notes[0].startswith(expected), extraction.notes
    with pytest.raises(SubmissionError, match=expected):
        notebook_files(tmp_path / "hw.ipynb", tmp_path, config, Extraction())
    assert oversized_notebook(tmp_path / "hw.zip", 2**19).startswith(expected)
    assert oversized_notebook(tmp_path / "hw.zip", 2**22) is None and guess_names(tmp_path / "hw.zip", 2**19) == set()


@pytest.mark.parametrize("data, message", [
    (b"\x89PNG\r\n", "not UTF-8"), (b"{\"cells\": [", "invalid JSON at line 1"), (b"[1, 2]", "no list of cells"),
])
def test_parse_notebook_refuses_what_is_not_a_notebook(data, message):
    with pytest.raises(SubmissionError, match=message):
        parse_notebook(data, "hw.ipynb")


def test_guess_names_reads_a_notebook_alone_or_in_a_zip(student_notebooks, tmp_path):
    assert guess_names(student_notebooks["cnn"], 2**24) == {"cnn.py"}
    packed = tmp_path / "packed.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.write(student_notebooks["vgg"], "folder/vgg.ipynb")
    assert guess_names(packed, 2**24) == {"vgg.py"}
    assert guess_names(packed, 100) == set()  # larger than the cap: not read


# -- nbgrader itself ---------------------------------------------------------------------------------------

def _nbgrader(course: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


# Autograding trains networks in a kernel; the three cheapest assignments prove the round trip.
AUTOGRADED = ("mlp", "cnn", "im2col")  # the longest first


@pytest.fixture(scope="module")
def nbgrader_courses(tmp_path_factory, data_dir):
    """``{name: Future of its course}``: the released nbgrader course (every assignment), one copy per
    assignment so that nbgrader's gradebooks never share a file; in each, nbgrader generates that assignment and, for those
    in ``AUTOGRADED``, autogrades the reference (the released notebook with the solution cells filled in)
    and the untouched release, then exports the grades. Two assignments at a time, one torch thread each;
    a failure is raised by the tests of its assignment only."""
    course = write_nbgrader_course([load_assignment(n) for n in ASSIGNMENTS], tmp_path_factory.mktemp("course"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MNIST_DATA_DIR": str(data_dir), "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    copies = {name: shutil.copytree(course, course.parent / f"course-{name}") for name in ASSIGNMENTS}
    order = [*AUTOGRADED, *(n for n in ASSIGNMENTS if n not in AUTOGRADED)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {name: pool.submit(_generate_and_autograde, copies[name], name, env) for name in order}


def _generate_and_autograde(course: Path, name: str, env: dict) -> Path:
    _nbgrader(course, "generate_assignment", name, "--force", env=env)
    if name not in AUTOGRADED:
        return course
    released = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
    reference = {c["id"]: c["source"] for c in build_notebook(load_assignment(name), flavour=REFERENCE)["cells"]}
    solved = json.loads(json.dumps(released))
    for cell in solved["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            cell["source"] = reference[cell["metadata"]["nbgrader"]["grade_id"]]
    for student, notebook in (("reference", solved), ("stub", released)):
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.ipynb").write_text(json.dumps(notebook))
    _nbgrader(course, "autograde", name, "--create", "--force", env=env)
    _nbgrader(course, "export", "--assignment", name, "--to", f"grades-{name}.csv", env=env)
    return course


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_nbgrader_generate_assignment_hides_solutions_and_hidden_tests(nbgrader_courses, name):
    released = json.loads((nbgrader_courses[name].result() / "release" / name / f"{name}.ipynb").read_text())
    text = "\n".join(cell_source(c) for c in released["cells"])
    config = load_assignment(name)
    assert BEGIN not in text and HIDDEN_BEGIN not in text and "YOUR CODE HERE" in text
    for path in config.hidden_tests():
        for test, _ in split_tests(path.read_text())[1]:
            assert f"def {test}(" not in text


@pytest.mark.slow
@pytest.mark.parametrize("name", AUTOGRADED)
def test_nbgrader_autograde_gives_reference_full_marks_and_release_zero(nbgrader_courses, name):
    course = nbgrader_courses[name].result()
    rows = (course / f"grades-{name}.csv").read_text().splitlines()
    header = rows[0].split(",")
    scores = {r.split(",")[header.index("student_id")]: r.split(",") for r in rows[1:]}
    maximum = sum(spec.max_score for spec in collect_manifest(load_assignment(name)))
    assert float(scores["reference"][header.index("max_score")]) == maximum
    assert float(scores["reference"][header.index("score")]) == maximum, _failures(course, "reference", name)
    assert float(scores["stub"][header.index("score")]) == 0


def _failures(course: Path, student: str, name: str) -> str:
    notebook = json.loads((course / "autograded" / student / name / f"{name}.ipynb").read_text())
    errors = [f"{c['id']}: {o.get('evalue', '')}" for c in notebook["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    return "\n".join(errors)[-3000:]


def test_nbgrader_course_config_is_python(tmp_path):
    course = write_nbgrader_course([load_assignment("im2col")], tmp_path / "course")
    compile((course / "nbgrader_config.py").read_text(), "nbgrader_config.py", "exec")
    assert (course / "source" / "im2col" / "im2col.ipynb").is_file()
    shutil.rmtree(course)


# -- the student notebook, run as a student would ------------------------------------------------------------

def _execute(notebook: dict, folder: Path, data_dir: Path, *, allow_errors: bool = False):
    """Run ``notebook`` top to bottom in a fresh kernel in ``folder`` (nbclient, with a timeout)."""
    from nbclient import NotebookClient

    node = nbformat.from_dict(notebook)
    os.environ.setdefault("MNIST_DATA_DIR", str(data_dir))
    client = NotebookClient(node, timeout=600, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    return node


@pytest.mark.slow
def test_student_notebook_runs_top_to_bottom_submits_and_grades_full(tmp_path, data_dir):
    from autograder.grade import grade_path

    config = load_assignment("im2col")
    notebook = build_notebook(config, flavour=STUDENT)
    reference = {c["id"]: c["source"] for c in build_notebook(config, flavour=REFERENCE)["cells"]}
    for cell in notebook["cells"]:
        if cell["id"] == "im2col-py":
            cell["source"] = reference["im2col-py"]  # the student wrote the code
    work = tmp_path / "colab"
    work.mkdir()
    executed = _execute(notebook, work, data_dir)
    outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "wrote" in outputs and (work / "im2col-submission.zip").is_file()
    with zipfile.ZipFile(work / "im2col-submission.zip") as archive:
        assert archive.read("im2col.py").decode() == written_files(notebook)["im2col.py"]
    saved = tmp_path / "submitted" / "student.ipynb"
    saved.parent.mkdir()
    nbformat.write(executed, saved)  # a notebook downloaded after running is graded like its zip
    shutil.copy(work / "im2col-submission.zip", saved.parent / "student-zip.zip")
    outcomes = {o.name: o for o in grade_path(saved.parent, out_dir=tmp_path / "graded", data_dir=data_dir, jobs=2)}
    assert outcomes["student"].assignment == "im2col"  # guessed from the %%writefile cell
    assert outcomes["student"].score == outcomes["student-zip"].score >= outcomes["student"].max_score > 0


@pytest.mark.slow
def test_student_notebook_with_stubs_fails_its_first_test_with_the_hint(tmp_path, data_dir):
    notebook = build_notebook(load_assignment("im2col"), flavour=STUDENT)
    executed = _execute(notebook, tmp_path, data_dir, allow_errors=True)
    errors = [(c.source.splitlines()[1], o) for c in executed.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors, "the stub notebook ran without a failing test"
    first_test, error = errors[0]
    assert error["ename"] == "TestsFailed"
    assert "not written yet" in error["evalue"] or "NotImplementedError" in error["evalue"], error["evalue"]


def test_student_notebook_is_reproducible(tmp_path):
    config = load_assignment("mlp")
    first = write_notebook(build_notebook(config, flavour=STUDENT), tmp_path / "a.ipynb").read_bytes()
    second = write_notebook(build_notebook(config, flavour=STUDENT), tmp_path / "b.ipynb").read_bytes()
    assert first == second


def test_notebook_test_cells_probe_once_until_the_students_file_changes(released, tmp_path, monkeypatch):
    """A notebook runs one pytest session per test cell, in one kernel: the probe's output is reused from
    cell to cell, and computed again once the student's file changed (the change is what the next cell sees)."""
    from mnistkit import notebook, pytest_plugin

    with zipfile.ZipFile(released["im2col"]) as archive:
        archive.extractall(tmp_path)
    handout = tmp_path / "im2col"
    preamble, tests = split_tests((handout / "tests" / "test_im2col.py").read_text())
    first, second = (source for _, source in tests[:2])
    probed = []
    real = pytest_plugin.run_plan
    monkeypatch.setattr(pytest_plugin, "run_plan", lambda *args, **kwargs: (probed.append(1), real(*args, **kwargs)))
    monkeypatch.chdir(handout)
    for source in (first, second):  # the stub, as released
        with pytest.raises(notebook.TestsFailed, match="NotImplementedError|not written yet"):
            notebook.run_tests(source, preamble=preamble)
    assert len(probed) == 1
    shutil.copy(load_assignment("im2col").solution_dir / "im2col.py", handout / "im2col.py")  # the cell rewritten
    assert notebook.run_tests(first, preamble=preamble).passed == 1
    assert notebook.run_tests(second, preamble=preamble).passed == 1
    assert len(probed) == 2, "the probe ran again for a cell although nothing had changed"
