"""Gradescope without Gradescope: the autograder zip installs into a fresh venv and grades as Gradescope would.

For each assignment the test builds ``dist/gradescope/<assignment>.zip``, lays out a Gradescope-like root
in a temporary folder (``$AUTOGRADER_ROOT`` moves ``/autograder``), runs the zip's own ``setup.sh`` steps
that need neither the network nor root (a fresh venv, the kit, MNIST's cache, the sandbox's access) with
the heavy packages (torch) lent from the kit's own environment, then the zip's ``run_autograder`` for the
reference and for the stub, as uploaded by a student: full marks and 0, and results.json checked field
by field against Gradescope's schema.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.config import list_assignments, load_assignment
from autograder.gradescope import build_gradescope_zip

pytestmark = pytest.mark.slow
TOP = {"score", "execution_time", "output", "output_format", "visibility", "stdout_visibility", "tests",
       "leaderboard", "extra_data"}
TEST = {"name", "number", "score", "max_score", "status", "output", "visibility", "output_format"}


def _run(command, env, timeout=1200):
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def gradescope_venv(tmp_path_factory):
    """One fresh venv made by the zip's own ``venv`` step, with the kit's packages (torch) lent through a .pth."""
    root = tmp_path_factory.mktemp("gradescope-venv")
    config = load_assignment(list_assignments()[0])
    archive = build_gradescope_zip(config, out_dir=root / "dist")
    source = root / "autograder" / "source"
    _unzip(archive, source)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root / "autograder"), "MNISTKIT_SETUP_STEPS": "venv",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    _run(["bash", str(source / "setup.sh")], env)
    venv = root / "autograder" / "venv"
    lib = next((venv / "lib").glob("python3*")) / "site-packages"
    for bundled in [*lib.glob("setuptools*"), *lib.glob("pkg_resources"), *lib.glob("_distutils_hack")]:
        shutil.rmtree(bundled) if bundled.is_dir() else bundled.unlink()  # the kit's newer setuptools builds
    (lib / "zz-kit-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(dest)
        for info in zipped.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                (dest / info.filename).chmod(mode)


def _root(tmp_path: Path, venv: Path, name: str, data_dir: Path) -> tuple[Path, dict]:
    root = tmp_path / "autograder"
    archive = build_gradescope_zip(load_assignment(name), out_dir=tmp_path / "dist")
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
    assert "setup.sh" in names and "run_autograder" in names, "the scripts must be at the zip's root"
    assert not any(n.startswith("kit/solutions/") or n.startswith("kit/tests/") for n in names)
    _unzip(archive, root / "source")
    (root / "venv").symlink_to(venv)
    raw = root / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (Path(data_dir) / "MNIST" / "raw").iterdir():
        if path.is_file() and not path.name.endswith(".gz"):
            shutil.copy2(path, raw / path.name)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MNISTKIT_SETUP_STEPS": "kit",
           "PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_DEPS": "1", "PIP_NO_INDEX": "1"}  # pip reads "0" as "no isolation"
    env.pop("MNIST_DATA_DIR", None)
    _run(["bash", str(root / "source" / "setup.sh")], env)
    return root, env


def _set_up_and_grade(root: Path, env: dict, name: str, submissions: Path) -> dict:
    """The rest of ``setup.sh`` (MNIST and the tests kept, the sandbox's access), then :func:`_grade_both`;
    under ``"kept"`` what ``/autograder/cache`` held after the setup and after the runs."""
    _run(["bash", str(root / "source" / "setup.sh")], {**env, "MNISTKIT_SETUP_STEPS": "data sandbox"})
    kept = root / "cache"
    [manifest] = kept.glob("manifests/*.json")
    specs = json.loads(manifest.read_text())
    specs[0]["title"] += KEPT_MARK  # shows in results.json only if the runs read this file
    manifest.write_text(json.dumps(specs))
    before = _listing(kept)
    graded = _grade_both(root, env, name, submissions)
    return {**graded, "kept": (before, _listing(kept), kept.stat().st_mode & 0o777)}


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def _submit(root: Path, upload: Path, *, loose: bool) -> None:
    folder = root / "submission"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    if loose:
        with zipfile.ZipFile(upload) as archive:
            archive.extractall(folder)
    else:
        shutil.copy2(upload, folder / upload.name)
    (root / "submission_metadata.json").write_text(json.dumps({
        "id": 123, "created_at": "2026-12-01T10:00:00", "assignment": {"title": "kit test"},
        "users": [{"name": "Ada Lovelace", "email": "ada@example.org", "sid": "s0001"}]}))


def _check_schema(results: dict) -> None:
    assert set(results) == TOP
    assert isinstance(results["score"], (int, float)) and isinstance(results["execution_time"], (int, float))
    assert results["output_format"] == "text" and results["visibility"] == "visible"
    assert results["stdout_visibility"] == "hidden"
    numbers = []
    for test in results["tests"]:
        assert set(test) == TEST, set(test) ^ TEST
        assert isinstance(test["name"], str) and test["name"]
        assert test["status"] in ("passed", "failed") and test["visibility"] in ("visible", "after_published")
        assert 0 <= test["score"] and isinstance(test["max_score"], (int, float)) and isinstance(test["output"], str)
        numbers.append(test["number"])
    assert len(set(numbers)) == len(numbers)
    for entry in results["leaderboard"]:
        assert set(entry) == {"name", "value", "order"} and entry["order"] in ("asc", "desc")
    assert results["extra_data"]["student"]["email"] == "ada@example.org"
    assert results["extra_data"]["student"]["sid"] == "s0001"


KEPT_MARK = " [as kept]"
KINDS = (("reference", True, True), ("stub", False, False))  # (submission, uploaded as loose files, full marks)


def _grade_both(root: Path, env: dict, name: str, submissions: Path) -> dict:
    """``{kind: results.json}``: the reference (loose files) and then the stub (a zip) graded in ``root``."""
    run = [str(root / "source" / "run_autograder")]
    assert os.stat(run[0]).st_mode & stat.S_IXUSR
    graded = {}
    for kind, loose, _ in KINDS:
        _submit(root, submissions / f"{name}-{kind}.zip", loose=loose)
        _run(run, env)
        graded[kind] = json.loads((root / "results" / "results.json").read_text())
    return graded


@pytest.fixture(scope="module")
def gradescope_results(gradescope_venv, submissions, data_dir, tmp_path_factory):
    """``{assignment: {kind: results.json}}``. The kit is installed into the one venv for each root, one
    root after the other; then the rest of each root's setup and its grading run two assignments at a time:
    ``run_autograder`` uses one torch thread, as on Gradescope's half CPU, so two of them fill this
    machine's two cores. The longest first (by ``timeout_total``), so that the two finish about together."""
    names = sorted(list_assignments(), key=lambda name: -load_assignment(name).grading.timeout_total)
    roots = {name: _root(tmp_path_factory.mktemp(f"gradescope-{name}"), gradescope_venv, name, data_dir)
             for name in names}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_set_up_and_grade, root, env, name, submissions)
                   for name, (root, env) in roots.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list_assignments())
def test_gradescope_runs_read_what_setup_kept(name, gradescope_results):
    """setup.sh keeps the tests (and MNIST) in /autograder/cache, closed to the sandbox's uids; the runs
    read them (a title marked in the kept list shows in results.json) and write nothing there."""
    before, after, mode = gradescope_results[name]["kept"]
    assert mode == 0o700
    assert any(path.startswith("mnist/") for path, _ in before) == load_assignment(name).grading.mnist
    assert after == before, "a run wrote into the kept folder"
    for kind, _, _ in KINDS:
        first = gradescope_results[name][kind]["tests"][0]
        assert first["name"].endswith(KEPT_MARK), f"the {kind}'s run collected the tests again"


@pytest.mark.parametrize("name", list_assignments())
def test_gradescope_zip_grades_reference_full_and_stub_zero(name, gradescope_results):
    for kind, _, full in KINDS:
        results = gradescope_results[name][kind]
        _check_schema(results)
        maximum = results["extra_data"]["max_score"]
        if full:
            assert results["score"] >= maximum > 0, [(t["name"], t["output"]) for t in results["tests"]
                                                     if t["score"] < t["max_score"]]
            if load_assignment(name).accuracy:
                assert results["leaderboard"], "the accuracy checks feed the leaderboard"
        else:
            assert results["score"] == 0
        hidden = [t for t in results["tests"] if t["visibility"] == "after_published"]
        assert hidden, "hidden tests are shown after publication only"
