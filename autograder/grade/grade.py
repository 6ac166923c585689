"""Grade one submission or a folder of them, as an ordered list of small steps.

    unpack -> lay_out -> start_judge -> run_probe -> judge -> (write)

* :func:`unpack`: take the files the assignment lists out of the zip or notebook, defensively.
* :func:`lay_out`: make the probe's plan (from ``tests/plan.py`` and a seed drawn with the grader's key),
  the sandbox's work folder (the handout and the student's files) and the judge's folder (the handout
  and every test, no student file).
* :func:`start_judge`: start the judge's process early, so that it loads torch while the probe runs (forked
  from the grader's warm parent of judges, :func:`.reuse.judge_server`, which loaded torch once).
* :func:`run_probe`: run the probe on the student's code in the sandbox; copy what it wrote, plain files
  only, into a folder of the grader's.
* :func:`judge`: the grader's own pytest run of the visible and hidden tests over that data.

Each step takes the :class:`Grading` of one submission and fills in its part, so each can be run and
tested alone. Results are written signed (:mod:`.signing`). One bad submission never stops the batch:
whatever happens becomes its own score and message.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mnistkit.paths import MNISTUnavailableError
from mnistkit.probe import FINISHED, Plan, load_plan

from .. import __version__
from ..config import (
    ASSIGNMENTS_DIR, KIT_ROOT, SOLUTIONS_DIR, TEMPLATE_DIR, AssignmentConfig, ConfigError, GradingSpec,
    list_assignments, load_assignment,
)
from ..gradebook import write_gradebooks
from ..layout import add_files, build_judge_folder, copy_handout_files, copy_template
from ..results.files import RESULTS, feedback_markdown, results_json, write_submission_outputs
from ..results.manual import apply_manual
from ..results.signing import file_sha256, load_key, seed_for, sign, verify
from ..results.summary import write_summary
from ..testrun import ManifestError, TestSpec, collect_manifest, judge_command, judge_env
from . import reuse
from .judge import Judge
from .notebook_submission import guess_names, is_notebook, notebook_files, oversized_notebook
from .sandbox import (
    CollectError, Limits, Mounts, NoSandbox, RunResult, choose_mode, collect, interpreter_problem, protect,
    run_limited,
)
from .scoring import TestResult, read_reports, score_tests
from .unpack import Extraction, SubmissionError, extract_submission, list_names, suggest

log = logging.getLogger(__name__)

# A folder of trained predictions shared by batches (the grader's environment only; see Batch.train_cache)
TRAIN_CACHE_ENV = "MNISTKIT_GRADER_TRAIN_CACHE"
MAX_NOTEBOOK_BYTES = 20 * 2**20  # only for guessing the assignment; grading applies the assignment's own limit


class UsageError(ValueError):
    """The grader was called wrongly (bad path, unknown assignment, no sandbox); nothing was graded."""


@dataclass
class SubmissionOutcome:
    name: str
    assignment: str
    score: float
    max_score: float
    status: str
    seconds: float
    folder: Path


@dataclass
class Batch:
    """What a grading run shares across submissions: the sandbox mode, the key, manifests, MNIST."""

    out_dir: Path
    tmp: Path  # the grader's own temporary folder (mode 0700): one folder per submission
    data_dir: str | Path | None
    threads: int
    mode: str
    key: bytes
    assignment: AssignmentConfig | None = None
    grading: GradingSpec | None = None
    lean: bool = False  # one process at a time (small machines): no prefetching, the judge after the probe
    manifests: dict[str, Future] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _mnist: Future | None = None
    _mnist_folder: Path | None = None
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))

    def mnist_folder(self) -> Path:
        """Where MNIST is (being) written as .npy files, in a folder of the grader's own; starts writing it,
        unless this process wrote it for an earlier batch (:mod:`.reuse`)."""
        with self.lock:
            if self._mnist is None:
                self._mnist_folder = reuse.mnist_cache(self.data_dir)
                if self._mnist_folder is not None:
                    self._mnist = _done(self._mnist_folder)
                else:
                    self._mnist_folder = reuse.new_mnist_folder()
                    self._mnist = self._pool.submit(_write_mnist_cache, self._mnist_folder, self.data_dir)
            return self._mnist_folder

    def train_cache(self) -> Path:
        """The batch's folder of trained predictions (mode 0700, the grader's own: the sandbox never sees it).

        Judges of submissions whose exported networks compute the same thing share one training there
        (:func:`mnistkit.checks.trained_predictions`); it goes with the batch's temporary folder, unless
        the grader's environment names a longer-lived one (:data:`TRAIN_CACHE_ENV`, which the kit's own
        tests set so that their batches share): a folder of the grader's own, closed to everyone else.
        """
        shared = reuse.env_folder(TRAIN_CACHE_ENV)
        if shared is not None:
            return shared
        with self.lock:
            folder = self.tmp / "trained"
            folder.mkdir(mode=0o700, exist_ok=True)
            return folder

    def mnist(self) -> Path:
        """MNIST's folder, once written (raises MNISTUnavailableError when it cannot be loaded)."""
        self.mnist_folder()
        return self._mnist.result()

    def prefetch(self, config: AssignmentConfig | None) -> None:
        """Start what the batch will need (MNIST, the assignment's test list) in the background."""
        if self.lean:
            return
        if config is None or config.grading.mnist:
            self.mnist_folder()
        if config is not None:
            self._manifest_future(config)

    def config_for(self, path: Path) -> AssignmentConfig | None:
        """The assignment given on the command line, else the one whose stub names are all in the zip."""
        if self.assignment is not None:
            config = self.assignment
        else:
            names = set(list_names(path)) | guess_names(path, MAX_NOTEBOOK_BYTES)
            matches = [c for c in map(load_assignment, list_assignments()) if set(c.handout.stubs) <= names]
            if len(matches) != 1:
                return None
            config = matches[0]
        return dataclasses.replace(config, grading=self.grading) if self.grading else config

    def _manifest_future(self, config: AssignmentConfig) -> Future:
        fingerprint = self.fingerprint(config)
        with self.lock:
            if config.name not in self.manifests:
                kept = reuse.manifest(config.root, fingerprint)
                self.manifests[config.name] = (_done(kept) if kept is not None else
                                               self._pool.submit(_collect_manifest, config, fingerprint))
            return self.manifests[config.name]

    def manifest(self, config: AssignmentConfig) -> list[TestSpec]:
        return self._manifest_future(config).result()

    def fingerprint(self, config: AssignmentConfig) -> str:
        """Hash of everything that decides a grade: the kit's code, the assignment, its limits."""
        with self.lock:
            if config.name not in self.fingerprints:
                digest = hashlib.sha256(f"{__version__}:{config.grading}".encode())
                roots = [KIT_ROOT / "autograder", TEMPLATE_DIR, config.root, config.solution_dir]
                for path in sorted(p for root in roots for p in root.rglob("*") if p.is_file()):
                    if "__pycache__" not in path.parts:
                        digest.update(path.relative_to(KIT_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
                self.fingerprints[config.name] = digest.hexdigest()[:16]
            return self.fingerprints[config.name]


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _collect_manifest(config: AssignmentConfig, fingerprint: str) -> list[TestSpec]:
    specs = collect_manifest(config)
    reuse.keep_manifest(config.root, fingerprint, specs)
    return specs


def _write_mnist_cache(folder: Path, data_dir) -> Path:
    """``python -m mnistkit.data cache``, in a process of its own (the grader's process never loads torch);
    kept for the process's later batches (:mod:`.reuse`)."""
    command = [sys.executable, "-m", "mnistkit.data", "cache", str(folder)]
    if data_dir is not None:
        command += ["--data-dir", str(Path(data_dir).resolve())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode == 3:
        raise MNISTUnavailableError(done.stderr.strip())
    if done.returncode != 0:
        raise RuntimeError(f"writing the MNIST cache failed:\n{done.stderr[-3000:]}")
    reuse.keep_mnist_cache(data_dir, folder)
    return folder


@dataclass
class Grading:
    """One submission's grading, filled in step by step."""

    source: Path
    config: AssignmentConfig
    batch: Batch
    folder: Path  # this submission's temporary folder
    seed: int
    files: dict = field(default_factory=dict)  # submitted name -> path (the extracted files)
    notes: list = field(default_factory=list)
    plan: Plan | None = None
    probe_run: RunResult | None = None
    probe_ended: str = ""
    tests: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    judge: Judge | None = None

    def path(self, name: str) -> Path:
        """A place of the grader's own (mode 0700): the submitted files, the probe's copied output, the judge."""
        private = self.folder / "grader"
        private.mkdir(mode=0o700, exist_ok=True)
        return private / name

    def shared(self, name: str) -> Path:
        """A place the sandbox reaches: ``plan`` (read-only), ``work`` and ``probe-out`` (its own)."""
        return self.folder / name


# --------------------------------------------------------------------------------------------- the steps
def unpack(g: Grading) -> None:
    """The files the assignment lists, into ``submitted/``; notes on what is missing or odd."""
    config = g.config
    submitted = g.path("submitted")
    submitted.mkdir(mode=0o700)
    wanted = config.submission.files + config.submission.optional
    if is_notebook(g.source):
        extraction = Extraction()
    else:
        extraction = extract_submission(g.source, submitted, wanted=wanted,
                                        max_file_bytes=int(config.submission.max_file_mb * 2**20))
    notebook_files(g.source, submitted, config, extraction)
    g.notes += extraction.notes
    for missing in extraction.missing(config.submission.files):
        if is_notebook(g.source) and missing not in config.handout.stubs:
            g.notes.append(f"{missing} is missing: a notebook alone carries only the files of its %%writefile "
                           f"cells; submit a zip that holds the notebook and {missing}")
        elif not is_notebook(g.source):
            g.notes.append(f"{missing} is missing from the zip{suggest(missing, extraction.names)}")
    g.files = dict(extraction.files)


def lay_out(g: Grading) -> None:
    """The plan (``plan/``), the sandbox's ``work/`` and ``probe-out/``, and the judge's ``judge/``."""
    config = g.config
    g.plan = load_plan(config.root / "tests", seed=g.seed, files=g.files, timeout=config.grading.timeout_per_test)
    g.plan.save(g.shared("plan"))
    work = g.shared("work")
    work.mkdir()
    copy_template(config, work)
    copy_handout_files(config, work)
    add_files(work, g.files, set(config.submission.files) | set(config.submission.optional))
    g.shared("probe-out").mkdir()
    build_judge_folder(config, g.path("judge"))
    if g.batch.mode == "user":
        g.folder.chmod(0o711)  # the probe's uid may pass through to its own folders, and list nothing
        for root, _dirs, files in os.walk(g.shared("plan")):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)


def start_judge(g: Grading) -> None:
    """Start the judge now, so that it loads torch and collects the tests while the probe runs; it waits.

    On a lean batch the judge starts only after the probe (one process at a time, less memory).
    """
    if not g.batch.lean:
        _start_judge(g)


def _start_judge(g: Grading) -> None:
    config = g.config
    if g.batch.lean:
        g.batch.manifest(config)
        if config.grading.mnist:
            g.batch.mnist()
    mnist = g.batch.mnist_folder() if config.grading.mnist else None
    g.batch._manifest_future(config)
    g.path("home").mkdir(mode=0o700)
    env = judge_env(threads=g.batch.threads, home=g.path("home"), plan=g.shared("plan"), probe=g.path("probe"),
                    submission=g.path("submitted"), mnist=mnist, report=g.path("report.jsonl"),
                    ready=g.path("probe-ready"), train_cache=g.batch.train_cache() if config.grading.mnist else None)
    server = None if g.batch.lean else reuse.judge_server()  # lean: no resident parent holding torch
    g.judge = Judge(judge_command(config), cwd=g.path("judge"), env=env, memory_gb=config.grading.memory_gb,
                    log_file=g.path("judge.log"), server=server).start()


def run_probe(g: Grading) -> None:
    """Run ``python -m mnistkit.probe`` in the sandbox, then copy its output (plain files only) to ``probe/``."""
    config = g.config
    limits = Limits(wall_seconds=config.grading.timeout_total, memory_bytes=int(config.grading.memory_gb * 2**30))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(g.batch.threads), "MKL_NUM_THREADS": str(g.batch.threads),
        "MNISTKIT_THREADS": str(g.batch.threads), "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": "",
    }
    command = [sys.executable, "-m", "mnistkit.probe", str(g.shared("plan")), str(g.shared("probe-out"))]
    g.probe_run = run_limited(command, cwd=g.shared("work"), env=env, limits=limits, mode=g.batch.mode,
                              mounts=Mounts(writable=(g.shared("probe-out"),), readable=(g.shared("plan"),)),
                              log_file=g.path("probe.log"))
    run = g.probe_run
    finished = (g.shared("probe-out") / FINISHED).is_file()
    if run.timed_out or run.returncode != 0 or not finished:
        g.probe_ended = run.describe_end() + ("" if run.timed_out or run.returncode != 0 else " before the probe finished")
        g.notes.append(f"Note: the probe of your code ended early ({run.describe_end()}); the checks of what it "
                       "had not computed score 0.")
    try:
        left_out = collect(g.shared("probe-out"), g.path("probe"), max_bytes=int(config.grading.probe_mb * 2**20))
    except CollectError as err:
        shutil.rmtree(g.path("probe"), ignore_errors=True)
        g.path("probe").mkdir()
        g.probe_ended = str(err)
        g.notes.append(f"Note: {err}; nothing it wrote was used.")
        left_out = []
    g.notes += [f"Note: {note}" for note in left_out[:5]]
    g.extra.update({"isolation": run.isolation, "sandbox": run.mode, "probe_seconds": round(run.seconds, 2),
                    "probe_returncode": run.returncode, "probe_log_tail": run.output[-3000:]})


def judge(g: Grading) -> None:
    """Let the judge (the grader's own pytest run over the probe's data) check; each outcome becomes a score."""
    config = g.config
    if g.judge is None:
        _start_judge(g)
    if config.grading.mnist:
        g.batch.mnist()  # written by now (its failure is the grader's, raised as such)
    g.judge.release(g.probe_ended)
    run = g.judge.finish(timeout=config.grading.timeout_total)
    ended = (f"the checks were stopped after the {config.grading.timeout_total:g} s time limit" if run.timed_out
             else f"the judge exited with code {run.returncode}")
    g.tests = score_tests(g.batch.manifest(config), read_reports(g.path("report.jsonl")), ended=ended)
    if run.timed_out:
        g.notes.append(f"Note: {ended}; checks that had not finished score 0.")
    g.extra.update({"judge_seconds": round(run.seconds, 2), "judge_returncode": run.returncode})
    if run.returncode not in (0, 1):
        g.extra["judge_log_tail"] = run.output[-3000:]


STEPS = (unpack, lay_out, start_judge, run_probe, judge)


# --------------------------------------------------------------------------------------------- the batch
def submission_name(path: Path, *, with_suffix: bool = False) -> str:
    """The folder name of a submission's results: its file name without the suffix, made safe.

    ``with_suffix`` keeps the suffix (``alice.ipynb``), for a folder that holds ``alice.zip`` too.
    """
    stem = path.name if with_suffix else path.stem
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", stem) or "submission"


def submission_names(paths: list[Path]) -> dict[Path, str]:
    """A distinct results folder per submission, even for ``alice.zip`` and ``alice.ipynb`` side by side."""
    stems: dict[str, int] = {}
    for path in paths:
        stems[submission_name(path)] = stems.get(submission_name(path), 0) + 1
    return {p: submission_name(p, with_suffix=stems[submission_name(p)] > 1) for p in paths}


def prepare_mode(out_dir: Path, *, unsafe: bool, forced: str | None = None) -> str:
    """Choose the sandbox (``forced``, else the strongest, :func:`.sandbox.choose_mode`) and make the machine
    fit it: in user mode, close the kit's secrets to others.

    Raises:
        UsageError: no sandbox here (and not ``unsafe``), or the user mode cannot run this Python.
    """
    try:
        mode = choose_mode(unsafe=unsafe, forced=forced)
    except NoSandbox as err:
        raise UsageError(str(err)) from err
    if mode == "user":
        problem = interpreter_problem(2_000_000)
        if problem:
            raise UsageError(f"the user-mode sandbox cannot start: {problem}")
        protect([SOLUTIONS_DIR, ASSIGNMENTS_DIR, out_dir])
    return mode


def grade_path(
    path: Path, *, out_dir: Path, assignment: str | None = None, data_dir: str | Path | None = None, jobs: int = 1,
    grading: GradingSpec | None = None, unsafe: bool = False, threads: int | None = None, lean: bool = False,
    sandbox: str | None = None,
) -> list[SubmissionOutcome]:
    """Grade ``path`` (a zip or notebook, or a folder of them) into ``out_dir``; write the gradebooks.

    ``grading`` replaces every assignment's own limits (the kit's tests use it to shorten timeouts);
    ``unsafe`` allows grading without isolation where no sandbox is available; ``threads`` pins the torch
    threads of each submission (default: the cores divided by ``jobs``); ``lean`` runs one process at a
    time (for small machines such as Gradescope's default container); ``sandbox`` names the sandbox
    (``bwrap``, ``user``; default: ``$MNISTKIT_SANDBOX``, else the strongest that works here).

    Raises:
        UsageError: ``path`` does not exist or holds no submission, ``assignment`` is unknown, or no
            sandbox is available.
        mnistkit.data.MNISTUnavailableError: MNIST cannot be loaded (names the --data-dir option).
    """
    path = Path(path)
    if path.is_file():
        sources = [path]
    elif path.is_dir():
        sources = sorted(p for p in path.iterdir() if p.suffix.lower() in (".zip", ".ipynb") and p.is_file())
        if not sources:
            raise UsageError(f"{path} holds no .zip or .ipynb files")
    else:
        raise UsageError(f"{path} does not exist")
    try:
        config = load_assignment(assignment) if assignment else None
    except ConfigError as err:
        raise UsageError(str(err)) from err
    jobs = max(1, jobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = prepare_mode(out_dir, unsafe=unsafe, forced=sandbox)
    key = load_key(out_dir)
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        if mode == "user":
            Path(tmp).chmod(0o711)  # probes pass through to their own folders, and list nothing
        threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        batch = Batch(out_dir, Path(tmp), data_dir, threads=threads, mode=mode, key=key, assignment=config,
                      grading=grading, lean=lean)
        batch.prefetch(config)  # MNIST and the tests, loaded while the first submission is unpacked and probed
        names = submission_names(sources)
        try:
            if jobs == 1:
                outcomes = [grade_submission(s, batch=batch, name=names[s]) for s in sources]
            else:
                order = longest_first(sources, batch)
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    graded = dict(zip(order, pool.map(lambda s: grade_submission(s, batch=batch, name=names[s]),
                                                      order)))
                outcomes = [graded[s] for s in sources]
        finally:
            batch._pool.shutdown(wait=True, cancel_futures=True)
    write_gradebooks(out_dir, "csv")
    write_summary(out_dir)
    return outcomes


def prepare(assignment: str, *, data_dir: str | Path | None = None) -> Path:
    """Compute ahead, into ``$MNISTKIT_GRADER_CACHE`` (:mod:`.reuse`), what every grading of ``assignment``
    reads: the list of its tests and MNIST's .npy cache (MNIST fetched if missing). Gradescope's setup runs
    it once; every submission's run, a process of its own, then reads both instead of computing them again.

    Raises:
        UsageError: the variable names no folder of this user's with mode 0700, or the assignment is unknown.
        mnistkit.data.MNISTUnavailableError: MNIST cannot be loaded.
    """
    kept = reuse.kept_folder()
    if kept is None:
        raise UsageError(f"${reuse.KEPT_ENV} must name a folder of this user's with mode 0700")
    try:
        config = load_assignment(assignment)
    except ConfigError as err:
        raise UsageError(str(err)) from err
    with tempfile.TemporaryDirectory(prefix="preparing-") as tmp:
        batch = Batch(Path(tmp) / "out", Path(tmp), data_dir, threads=1, mode="unsafe", key=b"", assignment=config)
        try:
            batch.manifest(config)
            if config.grading.mnist:
                batch.mnist()
        finally:
            batch._pool.shutdown(wait=True)
    log.info("%s: the tests and MNIST are kept in %s", assignment, kept)
    return kept


def longest_first(sources: list[Path], batch: Batch) -> list[Path]:
    """``sources`` in the order to start them when several are graded at a time: the assignments with the
    longest time limit first (a vgg trains for minutes where an im2col checks in seconds), the largest zip
    first within one, so that a batch does not end with one long submission graded alone."""
    def cost(source: Path) -> tuple[float, int]:
        try:
            config = batch.config_for(source)
        except Exception:  # noqa: BLE001 - an unreadable file is graded (and reported) like any other
            config = None
        return (config.grading.timeout_total if config else 0.0, source.stat().st_size)

    costs = {source: cost(source) for source in sources}
    return sorted(sources, key=lambda source: costs[source], reverse=True)


def grade_submission(source: Path, *, batch: Batch, name: str | None = None) -> SubmissionOutcome:
    """Grade one zip or notebook into ``<out_dir>/<name>``; never raises for anything the submission does."""
    name = name or submission_name(source)
    folder = batch.out_dir / name
    start = time.monotonic()
    config = batch.config_for(source)
    if config is None:
        stubs = ", ".join(sorted({s for a in list_assignments() for s in load_assignment(a).handout.stubs}))
        message = (f"could not tell which assignment {source.name} is for: it holds none of {stubs} "
                   "at its top level (or the grader was not told with --assignment)")
        message = oversized_notebook(source, MAX_NOTEBOOK_BYTES) or message
        return _write(batch, folder, name, "", [], message, "ungradable", time.monotonic() - start, {})
    stamp = {"zip_sha256": file_sha256(source), "kit_fingerprint": batch.fingerprint(config)}
    previous = _previous_outcome(batch, folder, name, stamp)
    if previous is not None:
        log.info("%s: unchanged since it was graded; kept its results", name)
        return previous
    grading = None
    try:
        with tempfile.TemporaryDirectory(prefix=f"grade-{config.name}-", dir=batch.tmp) as tmp:
            grading = Grading(source, config, batch, Path(tmp), seed_for(batch.key, stamp["zip_sha256"]))
            try:
                for step in STEPS:
                    log.debug("%s: %s", name, step.__name__)
                    step(grading)
            finally:
                if grading.judge is not None:
                    grading.judge.kill()
            _keep_files(grading, folder)
        tests, output, extra, status = grading.tests, "\n".join(grading.notes), {**grading.extra, **stamp}, "graded"
    except SubmissionError as err:
        tests = [TestResult(s, 0.0, "not run", str(err)) for s in batch.manifest(config)]
        output, status, extra = str(err), "ungradable", {}
    except (MNISTUnavailableError, ManifestError):
        raise  # misuse or a kit bug: not this submission's fault, and every other would fail the same way
    except Exception:  # noqa: BLE001 - a grader bug must not stop the batch; it is reported as such
        log.exception("grading %s failed", source)
        tests = [TestResult(s, 0.0, "not run", "internal grader error") for s in batch.manifest(config)]
        output = "The grader failed on this submission (not your fault); your instructor has the details."
        status, extra = "grader-error", {"traceback": traceback.format_exc()[-4000:]}
    return _write(batch, folder, name, config, tests, output, status, time.monotonic() - start, extra)


FILES = "files"  # <out>/<name>/files/: the submitted files, as graded (for the teacher, the review site)


def _keep_files(g: Grading, folder: Path) -> None:
    """Copy the submitted files (already size-capped by unpack) next to the results, replacing older ones."""
    target = folder / FILES
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, path in sorted(g.files.items()):
        shutil.copy2(path, target / name)


def _previous_outcome(batch: Batch, folder: Path, name: str, stamp: dict) -> SubmissionOutcome | None:
    """The outcome this grader already wrote and signed for this very zip and kit, if any (resuming a batch)."""
    try:
        results = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
        extra = results["extra_data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not verify(results, batch.key):
        log.warning("%s: its results.json does not carry this grader's signature; grading it again", name)
        return None
    if any(extra.get(key) != value for key, value in stamp.items()) or extra.get("status") != "graded":
        return None
    return SubmissionOutcome(name, extra["assignment"], results["score"], extra["max_score"], "unchanged",
                             float(results.get("execution_time", 0.0)), folder)


def _write(batch: Batch, folder: Path, name: str, config: AssignmentConfig | str, tests: list[TestResult],
           output: str, status: str, seconds: float, extra: dict) -> SubmissionOutcome:
    assignment = config.name if isinstance(config, AssignmentConfig) else config
    title = config.title if isinstance(config, AssignmentConfig) else "mnist-kit"
    results = results_json(tests=tests, output=output, seconds=seconds, extra={
        "assignment": assignment, "title": title, "submission": name, "status": status,
        "grader_version": __version__, "sandbox": batch.mode, **extra,
    })

    results = sign(apply_manual(results, batch.out_dir), batch.key)
    write_submission_outputs(folder, results, feedback_markdown(results, title=title, submission=name))
    log.info("%s: %g / %g (%s, %.1f s)", name, results["score"], results["extra_data"]["max_score"], status, seconds)
    return SubmissionOutcome(name, assignment, results["score"], results["extra_data"]["max_score"], status, seconds, folder)
