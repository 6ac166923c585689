"""Build the reference submission of the analysis assignment in a handout-like folder, and test it there.

    python solutions/analysis/make_reference_submission.py /tmp/analysis_ref --pytest
    python solutions/analysis/make_reference_submission.py /tmp/analysis_ref --results cached.jsonl --pytest

The folder gets what a student works in (student_template, assignment.toml, the handout files, the
reference analysis.py) plus every test, visible and hidden, flat in tests/. Then the [reference] commands
of assignment.toml run there, exactly as `python -m autograder demo` and the kit's end-to-end test run
them: the sweep of grid.toml, the three train.py runs of question 7, plots.py, and a generated report.
With --pytest the visible and hidden tests finally run in the folder.

--results FILE starts from an existing results file (e.g. one cached by CI, keyed by the hashes of
solutions/analysis/analysis.py, the handout's runs.py and grid.toml, and the torch version): the sweep
then runs only what FILE lacks. Nothing is committed: every artefact comes from the reference solution.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent.parent
ASSIGNMENT = KIT / "assignments" / "analysis"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


def assemble(folder: Path) -> None:
    """The handout layout, with the reference solution in place of the stub and all tests in tests/."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(KIT / "student_template", folder, dirs_exist_ok=True, ignore=IGNORED)
    shutil.copy2(ASSIGNMENT / "assignment.toml", folder)
    shutil.copytree(ASSIGNMENT / "handout", folder, dirs_exist_ok=True, ignore=IGNORED)
    tests = folder / "tests"
    tests.mkdir(exist_ok=True)
    for support in (ASSIGNMENT / "tests").glob("*.py"):  # conftest.py, plan.py, analysis_contract.py, ...
        shutil.copy2(support, tests)
    for kind in ("visible", "hidden"):
        for test in (ASSIGNMENT / "tests" / kind).glob("test_*.py"):
            shutil.copy2(test, tests)
    shutil.copy2(KIT / "solutions" / "analysis" / "analysis.py", folder)
    sys.path.insert(0, str(KIT))
    from autograder.assign.render import render  # pytest.ini's values, filled in as the release does
    from autograder.config import load_assignment

    ini = folder / "pytest.ini"
    ini.write_text(render(ini.read_text(encoding="utf-8"), load_assignment("analysis"), where="pytest.ini"),
                   encoding="utf-8")


def reference_commands() -> list[list[str]]:
    sys.path.insert(0, str(KIT / "student_template"))
    from mnistkit._toml import tomllib

    with open(ASSIGNMENT / "assignment.toml", "rb") as handle:
        commands = tomllib.load(handle)["reference"]["commands"]
    return [[sys.executable if part == "python" else part for part in command] for command in commands]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to build the submission (created; reused if it exists)")
    parser.add_argument("--results", type=Path, default=None, help="start from this results file (default: none)")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR)")
    parser.add_argument("--pytest", action="store_true", help="run the visible and hidden tests at the end")
    args = parser.parse_args()

    folder = args.folder.resolve()
    assemble(folder)
    if args.results:
        shutil.copyfile(args.results, folder / "results.jsonl")
    env = {**os.environ, **({"MNIST_DATA_DIR": str(Path(args.data_dir).resolve())} if args.data_dir else {})}
    start = time.perf_counter()
    for command in reference_commands():
        shown = "-c <fill in report.md>" if command[1] == "-c" else " ".join(command[1:])
        print(f"$ python {shown}", flush=True)
        began = time.perf_counter()
        subprocess.run(command, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"  ({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"reference submission in {folder} ({time.perf_counter() - start:.0f} s)")
    if not args.pytest:
        return 0
    start = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=folder,
                          env=env).returncode
    print(f"pytest: exit {code} in {time.perf_counter() - start:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
