"""docs/AUTHORING.md, followed step by step: its worked example, a sixth assignment, is written into a copy of
the kit, released, worked on as a student would, and graded: the reference gets full marks, the stub none.

Every file of the example is a fenced block of the document whose first line names its path (``# file:
PATH`` or ``<!-- file: PATH -->``), and the commands are the document's own, so the document cannot
drift from what the kit does. If this test fails, fix the document (or the kit), not the test.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parent.parent
DOC = KIT / "docs" / "AUTHORING.md"
NAME = "sixth"
NOT_COPIED = {".venv", ".git", "data", "dist", "demo", "graded", "build"}  # at the top of the kit
FILE_LINE = re.compile(r"^(?:# file: (?P<code>\S+)|<!-- file: (?P<markup>\S+) -->)$")
COMMAND = re.compile(rf"^\.venv/bin/python -m autograder (release|demo) {NAME}$", re.MULTILINE)


def example_files(text: str) -> dict[str, str]:
    """Path -> content of every fenced block whose first line is a ``file:`` line (that line left out)."""
    files: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^(`{3,})[\w-]*$", lines[index])
        if not fence:
            index += 1
            continue
        end = next((n for n in range(index + 1, len(lines)) if lines[n] == fence.group(1)), len(lines))
        body = lines[index + 1:end]
        named = FILE_LINE.match(body[0]) if body else None
        if named:
            files[named.group("code") or named.group("markup")] = "\n".join(body[1:]) + "\n"
        index = end + 1
    return files


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == KIT
    return {n for n in names if (top and n in NOT_COPIED) or n in ("__pycache__", ".pytest_cache", ".ruff_cache",
                                                                   ".hypothesis") or n.endswith(".pyc")}


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_worked_example_lists_every_part_of_an_assignment():
    files = example_files(DOC.read_text(encoding="utf-8"))
    assert sorted(files) == sorted([
        f"solutions/{NAME}/{NAME}.py", f"assignments/{NAME}/assignment.toml", f"assignments/{NAME}/README.md",
        f"assignments/{NAME}/tests/plan.py", f"assignments/{NAME}/tests/{NAME}_contract.py",
        f"assignments/{NAME}/tests/conftest.py", f"assignments/{NAME}/tests/visible/test_{NAME}.py",
        f"assignments/{NAME}/tests/hidden/test_{NAME}_hidden.py",
    ])
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")


@pytest.mark.slow
def test_following_authoring_md_builds_an_assignment_that_grades(tmp_path, data_dir):
    text = DOC.read_text(encoding="utf-8")
    kit = tmp_path / "kit"
    shutil.copytree(KIT, kit, ignore=_ignore)
    assert not (kit / "assignments" / NAME).exists(), f"the kit already has an assignment {NAME!r}"
    for path, content in example_files(text).items():  # steps 1 to 8
        target = kit / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNISTKIT_")}
    env.update(PYTHONPATH=os.pathsep.join([str(kit), str(kit / "student_template")]),  # the copy's own code
               MNIST_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")

    commands = COMMAND.findall(text)
    assert commands[-2:] == ["release", "demo"], f"step 9 should release, then demo: {commands}"
    released = _run([sys.executable, "-m", "autograder", "release", NAME], kit, env)  # step 9
    assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
    for made in (f"{NAME}.zip", f"notebooks/{NAME}.ipynb", f"gradescope/{NAME}.zip", "nbgrader"):
        assert (kit / "dist" / made).exists(), made

    # the student's side: the stub is readable, and every visible test fails on it, saying where to look
    with zipfile.ZipFile(kit / "dist" / f"{NAME}.zip") as archive:
        archive.extractall(tmp_path / "student")
        stub = archive.read(f"{NAME}/{NAME}.py").decode()
        assert f"{NAME}/tests/test_{NAME}_hidden.py" not in archive.namelist()
    assert '    # TODO: subtract each column\'s mean' in stub and 'raise NotImplementedError("standardize")' in stub
    assert "### " not in stub and "np.where(std > 0" not in stub
    handout = tmp_path / "student" / NAME
    tested = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], handout,
                  {k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert tested.returncode == 1, tested.stdout[-3000:]
    assert " passed" not in tested.stdout.splitlines()[-1], "a visible test passes on the stub"
    assert f"not written yet (NotImplementedError: standardize); see the TODO comment in {NAME}.py" in tested.stdout

    demo = _run([sys.executable, "-m", "autograder", "demo", NAME], kit, env, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    printed = " ".join(demo.stdout.split())
    claims = re.findall(rf"`({NAME}-(?:reference|stub) +[\d.]+ / [\d.]+)`", text)
    assert len(claims) == 2, "AUTHORING.md should say what demo prints for the reference and the stub"
    for claim in claims:
        assert " ".join(claim.split()) in printed, f"AUTHORING.md says `{claim}`; demo printed:\n{demo.stdout}"
    graded = kit / "demo" / "graded"
    reference = json.loads((graded / f"{NAME}-reference" / "results.json").read_text())
    stub_result = json.loads((graded / f"{NAME}-stub" / "results.json").read_text())
    missed = [t["name"] for t in reference["tests"] if t["score"] < t["max_score"]]
    assert not missed, f"the reference lost points on {missed}"
    assert reference["score"] > sum(t["max_score"] for t in reference["tests"])  # and earned the bonus
    assert stub_result["score"] == 0
    assert all("not written yet" in t["output"] for t in stub_result["tests"] if t["max_score"] or "bonus" in t["name"])
