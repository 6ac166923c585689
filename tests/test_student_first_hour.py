"""A student's first hour with a handout: idle threads asleep, the documented commands working, no dead ends.

Each test unzips a released handout and runs what its README tells students to run, in a fresh process
whose environment is a student's (no ``OMP_WAIT_POLICY``, no ``MNIST_DATA_DIR``, the venv not on PATH).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.config import load_assignment

SCRIPTS = {"mlp": "mnist.py", "cnn": "train.py", "vgg": "train.py"}


def _handout(released, name: str, folder: Path, *, solution: bool = True) -> Path:
    with zipfile.ZipFile(released[name]) as archive:
        archive.extractall(folder)
    handout = folder / name
    if solution:
        config = load_assignment(name)
        for stub in config.handout.stubs:
            shutil.copy2(config.solution_dir / stub, handout / stub)
    return handout


def _student_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MNIST_DATA_DIR", "OMP_NUM_THREADS")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run(args, cwd, env, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_handout_script_runs_with_idle_threads_asleep(released, data_dir, tmp_path, name):
    """The training script, run without OMP_WAIT_POLICY in its environment, still lets idle threads sleep."""
    handout = _handout(released, name, tmp_path)
    done = _run([SCRIPTS[name], "--dry-run", "--data-dir", str(data_dir)], handout, _student_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(idle threads sleep)" in done.stdout.splitlines()[0], done.stdout[:300]


@pytest.mark.slow
def test_training_test_runs_with_idle_threads_asleep(released, data_dir, tmp_path):
    """pytest's header says the handout's plugin put idle threads to sleep before torch loaded; the test trains."""
    handout = _handout(released, "mlp", tmp_path)
    done = _run(["-m", "pytest", "-p", "no:cacheprovider", "-k", "test_net_trained_accuracy", f"--data-dir={data_dir}"],
                handout, _student_env())
    assert done.returncode == 0, done.stdout[-3000:]
    assert "idle threads sleep" in done.stdout and "1 passed" in done.stdout


@pytest.fixture(scope="module")
def student_venv(tmp_path_factory):
    """A fresh venv, with the heavy packages (torch) lent from the kit's own environment through a .pth."""
    import sysconfig

    venv = tmp_path_factory.mktemp("student-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    lib = next((venv / "lib").glob("python3*")) / "site-packages"
    for bundled in [*lib.glob("setuptools*"), *lib.glob("pkg_resources"), *lib.glob("_distutils_hack")]:
        shutil.rmtree(bundled) if bundled.is_dir() else bundled.unlink()  # the kit's newer setuptools builds
    (lib / "zz-kit-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"


def test_pytest_data_dir_option_works_with_a_space_and_a_folder_outside(released, data_dir, tmp_path, student_venv):
    """`pytest --data-dir PATH`, as the README writes it, with PATH outside the handout folder.

    The handout's requirements.txt ends with `-e .`, which registers its pytest plugin: the rest of the
    requirements are lent by the kit's environment here (no network).
    """
    handout = _handout(released, "mlp", tmp_path / "work")
    assert (handout / "requirements.txt").read_text().strip().endswith("-e .")
    env = _student_env(PIP_NO_BUILD_ISOLATION="0", PIP_NO_INDEX="1")
    install = subprocess.run([str(student_venv), "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."],
                             cwd=handout, env=env, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    outside = tmp_path / "elsewhere" / "mnist"
    shutil.copytree(Path(data_dir) / "MNIST", outside / "MNIST")
    done = subprocess.run([str(student_venv), "-m", "pytest", "-p", "no:cacheprovider", "--data-dir", str(outside),
                           "-k", "one_hot"], cwd=handout, env=_student_env(), capture_output=True, text=True,
                          timeout=600)
    assert "unrecognized arguments" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 0 and "passed" in done.stdout, done.stdout[-3000:]


def test_missing_mnist_is_said_once_and_leaves_no_empty_folder(released, tmp_path):
    """Without MNIST and without the network: one clear error, and no empty data/ folder left behind."""
    handout = _handout(released, "mlp", tmp_path)
    env = _student_env(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")
    done = _run(["mnist.py", "--dry-run"], handout, env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("--data-dir PATH") == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (handout / "data").exists()


def _notebook_cells(name: str, *, solution: bool):
    from autograder.assign.notebook import REFERENCE, STUDENT, build_notebook

    config = load_assignment(name)
    notebook = build_notebook(config, flavour=STUDENT)
    if solution:  # the student wrote the code: the reference's %%writefile cells
        reference = {c["id"]: c["source"] for c in build_notebook(config, flavour=REFERENCE)["cells"]}
        written = {stub.replace(".", "-") for stub in config.handout.stubs}
        for cell in notebook["cells"]:
            if cell["id"] in written:
                cell["source"] = reference[cell["id"]]
    return notebook


def _execute_without_venv_on_path(notebook: dict, folder: Path, data_dir: Path):
    """Run the notebook in a kernel of the kit's venv while PATH does not hold that venv (an unactivated venv)."""
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.from_dict(notebook)
    venv_bin = str(Path(sys.executable).parent)
    saved = dict(os.environ)
    os.environ["PATH"] = os.pathsep.join(p for p in saved.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    os.environ["MNIST_DATA_DIR"] = str(data_dir)
    try:
        client = NotebookClient(node, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
        error = None
        try:
            client.execute()
        except Exception as err:  # noqa: BLE001 - nbclient's CellExecutionError, judged by the caller
            error = err
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return node, error


@pytest.mark.slow
def test_notebook_run_step_uses_the_kernels_python_and_a_failure_stops_it(data_dir, tmp_path):
    """`%run_step python mnist.py` runs with the kernel's interpreter; a failing step stops the notebook there."""
    keep = ("setup", "mlp-py", "run-1")
    good = _notebook_cells("mlp", solution=True)
    good["cells"] = [c for c in good["cells"] if c["id"] in keep or c["cell_type"] == "markdown"]
    run = next(c for c in good["cells"] if c["id"] == "run-1")
    assert run["source"].startswith("%run_step python mnist.py")
    run["source"] += " --dry-run"
    work = tmp_path / "good"
    work.mkdir()
    _, error = _execute_without_venv_on_path(good, work, data_dir)
    assert error is None, error
    assert (work / "mnist_agent.pt").is_file()

    bad = _notebook_cells("mlp", solution=False)  # the stub: mnist.py fails at Net()
    work = tmp_path / "bad"
    work.mkdir()
    executed, error = _execute_without_venv_on_path(bad, work, data_dir)
    assert error is not None and "StepFailed" in str(error) and "failed with exit code" in str(error), error
    assert "NotImplementedError" in str(error)
    ids = [c["id"] for c in executed.cells]
    after = executed.cells[ids.index("run-1") + 1:]
    assert all(c.get("execution_count") is None for c in after if c["cell_type"] == "code")
    assert not list(work.glob("*-submission.zip"))
