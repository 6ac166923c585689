"""Run the handout's tests from a notebook (Colab, Jupyter, nbgrader): the kernel side of the notebooks.

A released notebook is the handout in cells. Its first cell unpacks the support files, then calls
:func:`prepare` and loads this module as an IPython extension (``%load_ext mnistkit.notebook``), which
adds two magics::

    %%run_tests --preamble      the imports and helpers every test cell below needs (remembered)
    %%run_tests                 one or more pytest test functions: run them now, raise if any fails
    %run_step python mnist.py   a handout command, with the kernel's own Python; raise if it fails

A test cell is written to a temporary file under ``tests/`` (so ``tests/conftest.py`` and the handout's
pytest plugin apply, exactly as with ``pytest`` in a terminal) and run with pytest *in the kernel*, so
that torch is imported once. The student's modules (``%%writefile mlp.py`` cells) are re-imported by every
test cell, so a fix is picked up without restarting. A failing cell raises :class:`TestsFailed`, which is
what nbgrader counts as a failed test cell.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = "run_tests"
PREAMBLE_FLAG = "--preamble"
RUN_STEP = "run_step"  # %run_step python mnist.py: the kernel's own Python; a failure stops the notebook
# The first line of a cell that IPython writes to a file: %%writefile [-a|--append] NAME
WRITEFILE = re.compile(r"^%%writefile(?P<append>\s+(?:-a|--append))?\s+(?P<name>\S+)\s*$")
REQUIREMENTS = "requirements.txt"  # the handout's: the single list of what the tests need
# pip names whose import name is not the pip name in lower case with "-" as "_"
IMPORT_NAMES = {"pillow": "PIL", "scikit-learn": "sklearn", "pyyaml": "yaml", "opencv-python": "cv2",
                "beautifulsoup4": "bs4"}


def _marker_holds(marker: str) -> bool:
    """Whether an environment marker (``python_version < "3.11"``) holds here; unknown markers hold."""
    try:
        from packaging.markers import Marker

        return Marker(marker).evaluate()
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - an odd marker: install rather than skip
        return True
    match = re.fullmatch(r"""\s*python_version\s*(<=|>=|==|!=|<|>)\s*['"](\d+)\.(\d+)['"]\s*""", marker)
    if not match:
        return True
    here, there = sys.version_info[:2], (int(match.group(2)), int(match.group(3)))
    return {"<": here < there, "<=": here <= there, ">": here > there, ">=": here >= there,
            "==": here == there, "!=": here != there}[match.group(1)]


def requirements(folder: Path = Path(".")) -> dict[str, str]:
    """The packages of ``requirements.txt`` in ``folder`` that apply here: import name -> requirement.

    ``torch>=2.6  # comment`` gives ``{"torch": "torch>=2.6"}``; blank lines, comments, pip options
    (``-e .``, ``-r other.txt``) and requirements whose marker does not hold are left out.
    """
    path = Path(folder) / REQUIREMENTS
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        spec, _, marker = line.partition(";")
        if marker and not _marker_holds(marker):
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
        if name:
            pip = name.group(0).lower()
            found[IMPORT_NAMES.get(pip, pip.replace("-", "_").replace(".", "_"))] = spec.strip().replace(" ", "")
    return found

def cell_source(cell) -> str:
    """The text of a notebook cell (``source`` is a string or a list of lines); ``''`` when malformed."""
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(source, list):
        source = "".join(part for part in source if isinstance(part, str))
    return source if isinstance(source, str) else ""


def written_files(notebook, *, origins: dict[str, int] | None = None) -> dict[str, str]:
    """The files the notebook's ``%%writefile`` code cells write when run top to bottom: name -> text.

    As IPython does, a later cell for the same name replaces the file and ``-a`` appends to it; the
    file holds the cell's lines after the magic line. Malformed cells are ignored. ``origins``, if
    given, receives the 1-based number of the cell that last wrote each file.
    """
    files: dict[str, str] = {}
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else []
    for number, cell in enumerate(cells if isinstance(cells, list) else [], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        first, _, body = cell_source(cell).partition("\n")
        match = WRITEFILE.match(first.strip())
        if match is None:
            continue
        name = match.group("name").strip("'\"")
        body = body if body.endswith("\n") or not body else body + "\n"
        files[name] = files.get(name, "") + body if match.group("append") else body
        if origins is not None:
            origins[name] = number
    return files


class StepFailed(RuntimeError):
    """A ``%run_step`` command exited with an error; raising stops "Run all" at this cell."""


def run_step(command: str) -> None:
    """Run a handout command (``python mnist.py``) with the kernel's own interpreter, output shown live.

    ``python`` means ``sys.executable``: a Jupyter whose kernel is a venv that is not activated would
    otherwise run another Python (one without torch) and carry on. A non-zero exit raises
    :class:`StepFailed` with the command and its last lines, which stops the notebook there.
    """
    import shlex

    words = shlex.split(command)
    if words and words[0] in ("python", "python3"):
        words[0] = sys.executable
    process = subprocess.Popen(words, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    for line in process.stdout:
        print(line, end="")
        tail = (tail + [line.rstrip()])[-15:]
    if process.wait() != 0:
        shown = "\n".join(tail)
        raise StepFailed(f"`{command}` failed with exit code {process.returncode}; fix it before going on:\n{shown}")


class TestsFailed(AssertionError):
    """Some test of the cell failed; the message lists each one with its reason."""

    __test__ = False  # not a pytest test class


def prepare(*, mnist: bool = True, install: bool = True) -> None:
    """Install the packages of the handout's ``requirements.txt`` that are missing (Colab lacks a few) and
    fetch MNIST once. Run it in the handout's folder (the notebook's setup cell unpacks it there).

    Args:
        mnist: load both MNIST splits now (downloads them into ``$MNIST_DATA_DIR`` or ``./data`` when
            missing), so that the first test does not stall on a download.
        install: ``pip install`` the missing packages; with ``False`` only report them.
    """
    missing = [pip for module, pip in requirements().items() if importlib.util.find_spec(module) is None]
    if missing and install:
        print(f"installing {', '.join(missing)} ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    elif missing:
        print(f"missing packages: {', '.join(missing)}; install them with pip")
    if mnist:
        from .data import load_mnist, resolve_data_dir

        for train in (True, False):
            images, _ = load_mnist(train=train)
        print(f"MNIST is ready in {resolve_data_dir().resolve()}")


def stub_modules(folder: Path = Path(".")) -> list[str]:
    """Module names of the files the student writes (``[handout] stubs`` of ``assignment.toml``)."""
    from ._toml import tomllib

    with open(folder / "assignment.toml", "rb") as handle:
        config = tomllib.load(handle)
    return [Path(name).stem for name in config["handout"]["stubs"]]


class _Outcomes:
    """pytest plugin that keeps each test's outcome and the short reason of a failure."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0
        self.skipped = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            lines = report.longreprtext.strip().splitlines()
            # a traceback's "E   ..." lines, or the whole message of a check that failed without one
            reason = [line[1:].strip() for line in lines if line.startswith("E ")] or lines
            name = report.nodeid.split("::")[-1]
            where = "" if report.when == "call" else f" (in {report.when})"
            self.failed.append(f"{name}{where}: " + "\n    ".join(reason[:12] or ["failed"]))
        elif report.when == "call" and report.passed:
            self.passed += 1
        elif report.skipped:
            self.skipped += 1


def run_tests(source: str, *, preamble: str = "", folder: Path = Path(".")) -> _Outcomes:
    """Run the pytest test functions in ``source`` (after ``preamble``) as a test file of the handout.

    Raises:
        TestsFailed: a test failed or errored, or the cell defines no test; the message says which and why.
    """
    import pytest

    if not re.search(r"^\s*def test_", source, re.MULTILINE):
        print("no test in this cell")
        return _Outcomes()
    text = f"{preamble.rstrip()}\n\n\n{source.strip()}\n" if preamble else source
    tests_dir = folder / "tests"
    tests_dir.mkdir(exist_ok=True)
    module = f"test_cell_{hashlib.sha256(text.encode()).hexdigest()[:10]}"
    path = tests_dir / f"{module}.py"
    path.write_text(text, encoding="utf-8")
    for name in [*stub_modules(folder), module, f"tests.{module}"]:
        sys.modules.pop(name, None)  # the student's latest %%writefile, not a stale import
    outcomes = _Outcomes()
    try:
        # without pytest's unraisable-exception report: its garbage collections walk every object of
        # the kernel (torch's, the notebook's), a growing half of each cell's time
        code = pytest.main([str(path), "-q", "--no-header", "-p", "no:cacheprovider", "-p", "no:unraisableexception",
                            "--capture=sys", "-rN", "--tb=short"], plugins=[outcomes])
    finally:
        path.unlink(missing_ok=True)
    if outcomes.failed:
        raise TestsFailed("\n".join(outcomes.failed))
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or not (outcomes.passed or outcomes.skipped):
        raise TestsFailed(f"pytest could not run this cell (exit code {int(code)}); see its output above")
    return outcomes


_state = {"preamble": ""}


def _run_tests_magic(line: str, cell: str) -> None:
    if PREAMBLE_FLAG in line.split():
        compile(cell, "<test preamble>", "exec")  # a broken preamble fails here, not in every test cell
        _state["preamble"] = cell
        return
    run_tests(cell, preamble=_state["preamble"])


def load_ipython_extension(ipython) -> None:
    """``%load_ext mnistkit.notebook``: register the ``%%run_tests`` cell magic and the ``%run_step`` line magic."""
    ipython.register_magic_function(_run_tests_magic, magic_kind="cell", magic_name=MAGIC)
    ipython.register_magic_function(run_step, magic_kind="line", magic_name=RUN_STEP)
