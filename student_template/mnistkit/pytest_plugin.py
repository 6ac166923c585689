"""pytest plugin of every handout: the ``--data-dir`` option, the markers, and the fixtures the tests use.

The same tests run in two places, with the same fixtures:

* **locally** (a student's ``pytest``, a notebook cell, nbgrader): the ``probe`` fixture runs the
  assignment's plan (``tests/plan.py``) on the student's code right here, and the MNIST fixtures read
  ``--data-dir`` / ``$MNIST_DATA_DIR`` / ``./data``.
* **in the grader** (``MNISTKIT_MODE=judge``): the plan was run earlier, in a sandbox, by the probe; the
  ``probe`` fixture reads what it recorded, and nothing imports the student's files. The grader's own
  process judges.

Either way a test gets the student's networks as exported graphs (:class:`mnistkit.graph.GraphNet`) and
the values their functions returned (:mod:`mnistkit.probe`), so a test cannot tell, and cannot say
something different, on a student's machine and in the grader.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from . import data as mnist_data
from ._toml import tomllib
from .probe import Plan, ProbeFailed, ResultError, Results, load_plan, run_plan
from .train import Budget, accuracy, budget_of

MODE_ENV = "MNISTKIT_MODE"
PLAN_ENV = "MNISTKIT_PLAN"
PROBE_ENV = "MNISTKIT_PROBE"
PROBE_ENDED_ENV = "MNISTKIT_PROBE_ENDED"
READY_ENV = "MNISTKIT_PROBE_READY"  # a file the grader writes once the probe's output is in place
SUBMISSION_ENV = "MNISTKIT_SUBMISSION"
MNIST_CACHE_ENV = "MNISTKIT_MNIST"
CONFIG_NAME = "assignment.toml"
LOCAL_SEED = 0


def judging() -> bool:
    """Whether the tests run in the grader (on recorded data) rather than on a student's machine."""
    return os.environ.get(MODE_ENV) == "judge"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--data-dir",
        default=None,
        help=f"folder holding MNIST/raw/ (default: ${mnist_data.DATA_DIR_ENV} or ./data; downloaded if missing)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "points(n): how many points the test is worth when graded",
        "bonus: extra credit: its points count when earned but not in the maximum",
        "accuracy(check): predictions are judged against the threshold of [accuracy.<check>] in assignment.toml",
        "gpu: needs CUDA; skipped with a reason where CUDA is absent",
        "slow: trains a network (seconds to a minute)",
    ):
        config.addinivalue_line("markers", line)
    threads = os.environ.get("MNISTKIT_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    if judging():
        _refuse_student_imports(config)


class _StudentImportBlocker:
    """In the grader, importing a student's module is a bug of the kit: refuse it loudly."""

    def __init__(self, names: set):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"the grader never imports the student's {name}.py; a check must use the probe's data")
        return None


def _refuse_student_imports(config: pytest.Config) -> None:
    import sys

    try:
        stubs = load_config(handout_root(config))["handout"]["stubs"]
    except (OSError, KeyError, ValueError):
        return
    names = {Path(s).stem for s in stubs if s.endswith(".py")}
    if not any(isinstance(f, _StudentImportBlocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _StudentImportBlocker(names))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("gpu"):
            reason = ("CUDA is not available here: this check trains on a GPU" if item.get_closest_marker("accuracy")
                      else "CUDA is not available here; the device check covers device bugs on the CPU")
            item.add_marker(pytest.mark.skip(reason=reason))


def handout_root(config: pytest.Config) -> Path:
    """The handout folder: pytest's rootdir, or where pytest was started when that holds assignment.toml.

    ``pytest --data-dir PATH`` makes pytest take PATH for a folder of tests while it looks for its
    configuration (before any plugin can say that the option takes a value), so its rootdir becomes PATH;
    the folder the student started pytest in is still the handout.
    """
    for folder in (Path(config.rootpath), Path(config.invocation_params.dir)):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return Path(config.rootpath)


def load_config(rootdir: Path) -> dict:
    with open(Path(rootdir) / CONFIG_NAME, "rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="session")
def assignment_config(request: pytest.FixtureRequest) -> dict:
    """The handout's ``assignment.toml`` (thresholds and training budgets, written in the README too)."""
    return load_config(handout_root(request.config))


# ------------------------------------------------------------------------------------- submitted files
@pytest.fixture(scope="session")
def submission_dir(request: pytest.FixtureRequest) -> Path:
    """Where the submitted files are: the handout folder locally, the grader's copy when judging."""
    return Path(os.environ[SUBMISSION_ENV]) if judging() else handout_root(request.config)


@pytest.fixture(scope="session")
def submitted(submission_dir: Path, assignment_config: dict):
    """``submitted(name)``: the path of a file the assignment's [submission] lists (it may not exist)."""
    spec = assignment_config["submission"]
    allowed = set(spec["files"]) | set(spec.get("optional", []))

    def _path(name: str) -> Path:
        if name not in allowed:
            raise KeyError(f"{name} is not a submitted file of this assignment")
        return submission_dir / name

    return _path


# ------------------------------------------------------------------------------------------ the probe
class Probe:
    """The probe's results, as the tests use them; a failure of the student's code fails the test."""

    def __init__(self, results: Results):
        self.results = results
        self.plan = results.plan

    def _unwrap(self, fn, item_id: str):
        try:
            return fn(item_id)
        except (ProbeFailed, ResultError) as err:
            message = str(err)
        except ValueError as err:  # NetworkFormatError: data that is not of the schema
            message = f"the network {item_id!r} cannot be graded: {err}"
        pytest.fail(message, pytrace=False)

    def network(self, item_id: str):
        """A fresh :class:`~mnistkit.graph.GraphNet` of the item (each call builds a new one)."""
        return self._unwrap(self.results.network, item_id)

    def weights(self, item_id: str) -> dict:
        return self._unwrap(self.results.weights, item_id)

    def rng_after(self, item_id: str) -> torch.Tensor:
        return self._unwrap(self.results.rng_after, item_id)

    def steps(self, item_id: str):
        return self._unwrap(self.results.steps, item_id)

    def item(self, item_id: str):
        return self.plan.item(item_id)


@pytest.fixture(scope="session")
def probe(request: pytest.FixtureRequest, assignment_config: dict, submission_dir: Path) -> Probe:
    """What the assignment's plan computed with the student's code (run here, or read from the grader's probe).

    Run here, the output is reused by the next session of the same process (a notebook's next test cell)
    as long as the plan and every file it may read are unchanged."""
    if judging():
        ended = _wait_until_ready()  # waited for already, after collection (pytest_collection_finish)
        results = Results(Plan.load(Path(os.environ[PLAN_ENV])), Path(os.environ[PROBE_ENV]))
        results.ended = ended
        return Probe(results)
    spec = assignment_config["submission"]
    names = [*spec["files"], *spec.get("optional", [])]
    files = {n: submission_dir / n for n in names if (submission_dir / n).is_file()}
    timeout = assignment_config.get("grading", {}).get("timeout_per_test")
    root = handout_root(request.config)
    plan = load_plan(root / "tests", seed=LOCAL_SEED, files=files, timeout=timeout)
    key = _local_key(plan, root, files)
    if _last_local.get("key") == key:
        return Probe(Results(plan, _last_local["out"]))
    out = Path(tempfile.mkdtemp(prefix="mnistkit-probe-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    previous = os.getcwd()
    os.chdir(root)
    sys.path.insert(0, str(root))  # the student's module, also where pytest.ini's pythonpath did not apply
    try:
        run_plan(plan, out, timeouts=False)
    finally:
        os.chdir(previous)
        sys.path.remove(str(root))
    if "out" in _last_local:
        shutil.rmtree(_last_local["out"], ignore_errors=True)
    _last_local.update(key=key, out=out)  # only a run that ended: one stopped by a timeout is not reused
    return Probe(Results(plan, out))


# A notebook runs one pytest session per test cell, in one kernel: the probe runs again only when its
# plan or a file it may read changed (a %%writefile cell run since), not for every cell.
_last_local: dict = {}


def _local_key(plan: Plan, root: Path, files: dict) -> str:
    """What a local probe's output depends on: the plan, the submitted files, the handout's modules."""
    digest = hashlib.sha256(json.dumps(
        [plan.module, plan.timeout, plan.seed, list(plan.files), [asdict(item) for item in plan.items]],
        sort_keys=True, default=repr).encode())
    for key in sorted(plan.arrays):
        array = np.ascontiguousarray(plan.arrays[key])
        digest.update(f"{key} {array.dtype} {array.shape}".encode())
        digest.update(array.tobytes())
    for path in sorted({Path(p).resolve() for p in [*files.values(), *root.glob("*.py")]}):
        digest.update(f"{path}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def make_net(probe):
    """``make_net(item="net")``: a fresh copy of the student's network of that plan item (``Net()``, built
    after ``torch.manual_seed(0)``) as a runnable exported graph; a network that cannot be built or
    exported fails the test with the reason."""
    return lambda item="net": probe.network(item)


@pytest.fixture
def trace_net(make_net):
    """``trace_net(batch, train=False)``: the operations of one forward pass of a fresh Net on random images."""
    from .tracing import trace_random

    return lambda batch=3, *, train=False, item="net": trace_random(make_net(item), batch, train=train)


@pytest.fixture(scope="session")
def plan_seed(probe) -> int:
    """The seed the plan's random inputs were drawn with (0 on a student's machine, the grader's own when graded)."""
    return probe.plan.seed


def pytest_collection_finish(session: pytest.Session) -> None:
    """When judging, wait here for the probe's output: after the tests are collected, before any test's
    time limit starts (a slow probe is the probe's time limit's business, not the tests')."""
    if judging() and not session.config.option.collectonly:
        _wait_until_ready()


def _wait_until_ready() -> str:
    """The grader starts its judge while the probe still runs (torch loads meanwhile) and writes the
    ready file when the probe's output is in place; it holds how the probe ended ('' if normally)."""
    import time

    ready = os.environ.get(READY_ENV)
    if not ready:
        return os.environ.get(PROBE_ENDED_ENV, "")
    while not Path(ready).is_file():
        time.sleep(0.05)
    return Path(ready).read_text(encoding="utf-8").strip()


# ------------------------------------------------------------------------------------------------ MNIST
@pytest.fixture(scope="session")
def data_dir(request: pytest.FixtureRequest) -> Path:
    return mnist_data.resolve_data_dir(request.config.getoption("--data-dir"))


def _mnist(train: bool, data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    cache = os.environ.get(MNIST_CACHE_ENV)
    if cache:
        return mnist_data.load_cached(Path(cache), train=train)
    try:
        return mnist_data.load_mnist(train=train, data_dir=data_dir)
    except mnist_data.MNISTUnavailableError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def mnist_train(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60,000 training images, ``uint8`` ``(N, 28, 28)``, and their ``int64`` labels ``(N,)``."""
    return _mnist(True, data_dir)


@pytest.fixture(scope="session")
def mnist_test(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 official test images, ``uint8`` ``(N, 28, 28)``, and their labels."""
    return _mnist(False, data_dir)


def _accuracy_check(request: pytest.FixtureRequest, config: dict) -> tuple[str, dict]:
    marker = request.node.get_closest_marker("accuracy")
    if marker is None:
        raise RuntimeError(f"{request.node.nodeid} uses an accuracy fixture without @pytest.mark.accuracy(check)")
    check = marker.args[0]
    return check, config["accuracy"][check]


@pytest.fixture
def grading_budget(request: pytest.FixtureRequest, assignment_config: dict) -> Budget:
    """The fixed training budget of the test's ``@pytest.mark.accuracy(check)``."""
    _, check = _accuracy_check(request, assignment_config)
    return budget_of(check)


@pytest.fixture
def judged_images(request: pytest.FixtureRequest, mnist_test, assignment_config: dict) -> torch.Tensor:
    """The test images the check judges: all 10,000, or its fixed random sample of ``eval_subset``."""
    _, check = _accuracy_check(request, assignment_config)
    images, _ = mnist_test
    return images[mnist_data.sample_indices(len(images), check.get("eval_subset"))]


@pytest.fixture
def judge(request: pytest.FixtureRequest, mnist_test, assignment_config: dict, record_property):
    """``judge(predictions)``: fail unless the predicted classes of :func:`judged_images` reach the threshold."""
    name, check = _accuracy_check(request, assignment_config)
    threshold = float(check["threshold"])
    _, labels = mnist_test
    labels = labels[mnist_data.sample_indices(len(labels), check.get("eval_subset"))]

    def _judge(predictions: torch.Tensor) -> float:
        predictions = torch.as_tensor(predictions).detach().cpu().long().reshape(-1)
        if predictions.shape != labels.shape:
            pytest.fail(f"expected {tuple(labels.shape)} predictions, got {tuple(predictions.shape)}", pytrace=False)
        got = accuracy(predictions, labels)
        record_property("accuracy", round(got, 6))
        if got < threshold:
            pytest.fail(f"{name}: accuracy {got:.2%} on the {len(labels):,} test images, below the required "
                        f"{threshold:.2%}", pytrace=False)
        return got

    return _judge


def pytest_report_header(config: pytest.Config) -> str | None:
    if judging():
        return None
    from . import threads_note

    return f"mnistkit: your code is exported and probed here as the grader's sandbox does it; {threads_note()}"
