"""What a student does with a handout, done for real: unzip, pytest, train, submit."""
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest


def _unzip(zip_path, dest):
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(dest)


def _run(args, cwd, data_dir, timeout=600):
    env = {**os.environ, "MNIST_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_student_stub_fails_every_visible_test_with_a_hint(released, assignments, data_dir, tmp_path):
    for config in assignments:
        _unzip(released[config.name], tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:  # one torch thread each (_run)
        runs = list(pool.map(lambda config: _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                                 tmp_path / config.name, data_dir), assignments))
    for config, done in zip(assignments, runs):
        assert done.returncode == 1, f"{config.name}: {done.stdout[-3000:]}"
        assert "not written yet (NotImplementedError: " in done.stdout
        assert " passed" not in done.stdout.splitlines()[-1], f"{config.name}: a visible test passes on the stub"


@pytest.mark.slow
def test_student_with_the_solution_passes_and_submits(released, data_dir, tmp_path):
    from autograder.config import load_assignment

    config = load_assignment("mlp")
    _unzip(released["mlp"], tmp_path)
    handout = tmp_path / "mlp"
    shutil.copy2(config.solution_dir / "mlp.py", handout / "mlp.py")
    trained = _run(["mnist.py", "--epochs", "2"], handout, data_dir)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "epoch 2: train loss" in trained.stdout and (handout / "mnist_agent.pt").is_file()
    tested = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], handout, data_dir)
    assert tested.returncode == 0, tested.stdout[-3000:]
    submitted = _run(["-m", "mnistkit.submit"], handout, data_dir)
    assert submitted.returncode == 0, submitted.stderr
    with zipfile.ZipFile(handout / "mlp-submission.zip") as archive:
        assert sorted(archive.namelist()) == ["mlp.py", "mnist_agent.pt"]


def test_student_submit_warns_about_missing_files_and_stubs(released, data_dir, tmp_path):
    _unzip(released["mlp"], tmp_path)
    done = _run(["-m", "mnistkit.submit"], tmp_path / "mlp", data_dir)
    assert done.returncode == 0
    assert "mnist_agent.pt is missing" in done.stdout
    assert "mlp.py still has unwritten parts: Net.__init__, Net.forward, one_hot" in done.stdout
