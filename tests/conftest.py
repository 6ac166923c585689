"""Fixtures of the kit's own tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.config import KIT_ROOT, list_assignments, load_assignment

SHARED_MNIST = KIT_ROOT.parent / "shared" / "mnist"


def mnist_dir() -> Path:
    """$MNIST_DATA_DIR, else the read-only copy beside the repository, else ./data (downloaded)."""
    if os.environ.get("MNIST_DATA_DIR"):
        return Path(os.environ["MNIST_DATA_DIR"])
    if (SHARED_MNIST / "MNIST" / "raw").is_dir():
        return SHARED_MNIST
    return KIT_ROOT / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return mnist_dir()


@pytest.fixture(scope="session")
def assignments():
    return [load_assignment(name) for name in list_assignments()]


@pytest.fixture(scope="session")
def released(tmp_path_factory, assignments):
    """Every assignment released once for the session: {name: zip path}."""
    from autograder.assign import release_assignment

    out = tmp_path_factory.mktemp("dist")
    return {config.name: release_assignment(config, out_dir=out) for config in assignments}


@pytest.fixture(scope="session")
def build_submissions(released, data_dir, tmp_path_factory):
    """``build_submissions(*names)``: the reference and the untouched-stub submissions of these assignments,
    built as a student would (once per session), in one folder; returns that folder.

    The missing ones are built two at a time, the longest first: each build runs one torch thread
    (:func:`autograder.assign.submission.build_submission`), so two fill this machine's two cores."""
    from concurrent.futures import ThreadPoolExecutor

    from autograder.assign.submission import build_submission

    folder = tmp_path_factory.mktemp("submissions")

    def _build(*names):
        missing = [(load_assignment(name), kind) for name in names for kind in ("reference", "stub")
                   if not (folder / f"{name}-{kind}.zip").is_file()]
        missing.sort(key=lambda job: -job[0].reference.timeout if job[1] == "reference" else 0)
        with ThreadPoolExecutor(max_workers=2) as pool:
            built = [pool.submit(build_submission, config, released[config.name], folder / f"{config.name}-{kind}.zip",
                                 kind=kind, data_dir=data_dir) for config, kind in missing]
            for future in built:
                future.result()
        return folder

    return _build


@pytest.fixture(scope="session")
def mlp_submissions(build_submissions):
    """The mlp reference and stub submissions (``mlp-reference.zip``, ``mlp-stub.zip``)."""
    return build_submissions("mlp")


@pytest.fixture(scope="session")
def submissions(build_submissions, assignments):
    """The reference and the untouched-stub submission of every assignment, built as a student would."""
    return build_submissions(*[config.name for config in assignments])


@pytest.fixture(scope="session", autouse=True)
def shared_training(tmp_path_factory):
    """One folder of trained predictions for every batch the session grades (the grader's cache,
    :meth:`autograder.grade.grade.Batch.train_cache`): a reference network trained by one test's batch is
    not trained again by the next. Mode 0700, outside every sandbox."""
    from autograder.grade.grade import TRAIN_CACHE_ENV

    folder = tmp_path_factory.mktemp("trained")
    folder.chmod(0o700)
    previous = os.environ.get(TRAIN_CACHE_ENV)
    os.environ[TRAIN_CACHE_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(TRAIN_CACHE_ENV, None)
    else:
        os.environ[TRAIN_CACHE_ENV] = previous


def pytest_configure(config):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))  # tests/hostile.py, the corpus


# `make test` runs the kit's tests on two xdist workers (`-n 2`). The tests that run student code in the
# grader's sandbox all go to one worker, one after the other: they share the session's built submissions and
# trained networks, and the hostile corpus checks that no sandboxed process outlives its batch, which another
# worker's probes would break. Every other module goes whole to a worker, so that its fixtures (an nbgrader
# course, a released handout) are made once. (pytest-xdist's own `xdist_group` marks do not reach its
# scheduler under pytest 9.2, hence a scheduler of ours, which sees node ids only.)
SANDBOXED = (
    "tests/test_authoring.py", "tests/test_bench_container.py", "tests/test_end_to_end.py", "tests/test_gradebook.py",
    "tests/test_gradescope.py", "tests/test_hostile.py", "tests/test_mutants.py", "tests/test_review.py",
    "tests/test_sandbox.py", "tests/test_notebook.py::test_student_notebook_runs_top_to_bottom_submits_and_grades_full",
)
SANDBOX_GROUP = "sandbox"


def worker_group(nodeid: str) -> str:
    """The unit of work one xdist worker takes whole: the sandbox group, else the test's module."""
    return SANDBOX_GROUP if nodeid.startswith(SANDBOXED) else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SandboxTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return SandboxTogether(config, log)


@pytest.fixture(autouse=True)
def _sandbox_only_in_its_group(request, monkeypatch):
    """On an xdist worker, a test outside the sandbox group that starts the sandbox in its own process
    (``run_limited``) fails, saying why; a grader it starts as a subprocess is not seen."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or worker_group(request.node.nodeid) == SANDBOX_GROUP:
        return
    from autograder.grade import grade as grading, sandbox

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} runs the grader's sandbox: add it to SANDBOXED "
                             "(tests/conftest.py), so that it runs on the sandbox group's worker")

    monkeypatch.setattr(sandbox, "run_limited", refuse)
    monkeypatch.setattr(grading, "run_limited", refuse)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    """Two xdist workers on two cores: torch in each test process takes one thread (two each run 2-4x slower)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
