"""Grade one submission zip or a folder of them.

For each zip: extract the listed files defensively, lay out the handout with the visible and hidden
tests, run pytest on it in a separate limited process that never sees the evaluation labels, score what
that process reports (and the predictions it recorded) here, and write results.json and feedback.md.
One bad submission never stops the batch: whatever happens is turned into its own score and message.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..config import (
    KIT_ROOT, TEMPLATE_DIR, AssignmentConfig, ConfigError, GradingSpec, list_assignments, load_assignment,
)
from .evaldata import GradingData, file_sha256, prepare_grading_data, seed_for
from .harness import harness_env, pytest_command
from .manifest import TestSpec, collect_manifest
from .output import (
    RESULTS, feedback_markdown, results_json, write_gradebook, write_submission_outputs, write_summary,
)
from .sandbox import Limits, Mounts, run_limited
from .scoring import TestResult, read_reports, score_tests
from .notebook_submission import guess_names, is_notebook, notebook_files
from .unpack import Extraction, SubmissionError, extract_submission, list_names, suggest
from .workspace import build_workspace

log = logging.getLogger(__name__)


class UsageError(ValueError):
    """The grader was called wrongly (bad path, unknown assignment); nothing was graded."""


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
    """What a grading run shares across submissions: data, manifests, limits."""

    out_dir: Path
    data_folder: Path
    data_dir: str | Path | None
    threads: int
    assignment: AssignmentConfig | None = None
    grading: GradingSpec | None = None
    manifests: dict[str, list[TestSpec]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _data: GradingData | None = None

    def data(self) -> GradingData:
        """MNIST for the students' processes, loaded the first time an assignment needs it."""
        with self.lock:
            if self._data is None:
                self._data = prepare_grading_data(self.data_folder, data_dir=self.data_dir)
            return self._data

    def config_for(self, zip_path: Path) -> AssignmentConfig | None:
        """The assignment given on the command line, else the one whose stub names are all in the zip."""
        if self.assignment is not None:
            config = self.assignment
        else:
            names = set(list_names(zip_path)) | guess_names(zip_path, MAX_NOTEBOOK_BYTES)
            matches = [c for c in map(load_assignment, list_assignments()) if set(c.handout.stubs) <= names]
            if len(matches) != 1:
                return None
            config = matches[0]
        return dataclasses.replace(config, grading=self.grading) if self.grading else config

    def manifest(self, config: AssignmentConfig) -> list[TestSpec]:
        with self.lock:
            if config.name not in self.manifests:
                self.manifests[config.name] = collect_manifest(config)
            return self.manifests[config.name]

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


MAX_NOTEBOOK_BYTES = 20 * 2**20  # only for guessing the assignment; grading applies the assignment's own limit


def submission_name(zip_path: Path, *, with_suffix: bool = False) -> str:
    """The folder name of a submission's results: its file name without the suffix, made safe.

    ``with_suffix`` keeps the suffix (``alice.ipynb``), for a folder that holds ``alice.zip`` too.
    """
    stem = zip_path.name if with_suffix else zip_path.stem
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", stem) or "submission"


def submission_names(paths: list[Path]) -> dict[Path, str]:
    """A distinct results folder per submission, even for ``alice.zip`` and ``alice.ipynb`` side by side."""
    stems: dict[str, int] = {}
    for path in paths:
        stems[submission_name(path)] = stems.get(submission_name(path), 0) + 1
    return {p: submission_name(p, with_suffix=stems[submission_name(p)] > 1) for p in paths}


def grade_path(
    path: Path, *, out_dir: Path, assignment: str | None = None, data_dir: str | Path | None = None, jobs: int = 1,
    grading: GradingSpec | None = None,
) -> list[SubmissionOutcome]:
    """Grade ``path`` (a zip or notebook, or a folder of them) into ``out_dir``; write ``out_dir/gradebook.csv``.

    ``grading`` replaces every assignment's own limits (the kit's tests use it to shorten timeouts).

    Raises:
        UsageError: ``path`` does not exist or holds no zip, or ``assignment`` is unknown.
        mnistkit.data.MNISTUnavailableError: MNIST cannot be loaded (names the --data-dir option).
    """
    path = Path(path)
    if path.is_file():
        zips = [path]
    elif path.is_dir():
        zips = sorted(p for p in path.iterdir() if p.suffix.lower() in (".zip", ".ipynb") and p.is_file())
        if not zips:
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
    with tempfile.TemporaryDirectory(prefix="grading-data-") as data_tmp:
        batch = Batch(out_dir, Path(data_tmp), data_dir, threads=max(1, (os.cpu_count() or 1) // jobs),
                      assignment=config, grading=grading)
        if config is not None and config.grading.mnist:
            batch.data()  # a missing MNIST is misuse: say so before grading anything
        if config is not None:
            batch.manifest(config)  # a kit bug in the tests shows up here, before any submission
        names = submission_names(zips)
        if jobs == 1:
            outcomes = [grade_submission(z, batch=batch, name=names[z]) for z in zips]
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                outcomes = list(pool.map(lambda z: grade_submission(z, batch=batch, name=names[z]), zips))
    write_gradebook(out_dir)
    write_summary(out_dir)
    return outcomes


def grade_submission(zip_path: Path, *, batch: Batch, name: str | None = None) -> SubmissionOutcome:
    """Grade one zip or notebook into ``<out_dir>/<name>``; never raises for anything the submission does."""
    name = name or submission_name(zip_path)
    folder = batch.out_dir / name
    start = time.monotonic()
    config = batch.config_for(zip_path)
    if config is None:
        stubs = ", ".join(sorted({s for a in list_assignments() for s in load_assignment(a).handout.stubs}))
        message = (f"could not tell which assignment {zip_path.name} is for: it holds none of {stubs} "
                   "at its top level (or the grader was not told with --assignment)")
        return _write(folder, name, "", [], message, "ungradable", time.monotonic() - start, {})
    stamp = {"zip_sha256": file_sha256(zip_path), "kit_fingerprint": batch.fingerprint(config)}
    previous = _previous_outcome(folder, name, stamp)
    if previous is not None:
        log.info("%s: unchanged since it was graded; kept its results", name)
        return previous
    try:
        tests, output, extra = _grade_in_tempdir(zip_path, config, batch, seed_for(stamp["zip_sha256"]))
        extra.update(stamp)
        status = "graded"
    except SubmissionError as err:
        tests = [TestResult(s, 0.0, "not run", str(err)) for s in batch.manifest(config)]
        output, status, extra = str(err), "ungradable", {}
    except Exception:  # noqa: BLE001 - a grader bug must not stop the batch; it is reported as such
        log.exception("grading %s failed", zip_path)
        tests = [TestResult(s, 0.0, "not run", "internal grader error") for s in batch.manifest(config)]
        output = "The grader failed on this submission (not your fault); your instructor has the details."
        status, extra = "grader-error", {"traceback": traceback.format_exc()[-4000:]}
    return _write(folder, name, config, tests, output, status, time.monotonic() - start, extra)


def _previous_outcome(folder: Path, name: str, stamp: dict) -> SubmissionOutcome | None:
    """The outcome already written for this very zip by this very kit, if any (resuming a batch)."""
    try:
        results = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
        extra = results["extra_data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(extra.get(key) != value for key, value in stamp.items()) or extra.get("status") != "graded":
        return None
    return SubmissionOutcome(name, extra["assignment"], results["score"], extra["max_score"], "unchanged",
                             float(results.get("execution_time", 0.0)), folder)


def _grade_in_tempdir(zip_path: Path, config: AssignmentConfig, batch: Batch, seed: int):
    manifest = batch.manifest(config)
    wanted = config.submission.files + config.submission.optional
    with tempfile.TemporaryDirectory(prefix=f"grade-{config.name}-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "submitted").mkdir()
        if is_notebook(zip_path):
            extraction = Extraction()
        else:
            extraction = extract_submission(zip_path, tmp_path / "submitted", wanted=wanted,
                                            max_file_bytes=int(config.submission.max_file_mb * 2**20))
        notebook_files(zip_path, tmp_path / "submitted", config, extraction)
        notes = list(extraction.notes)
        for missing in extraction.missing(config.submission.files):
            if is_notebook(zip_path) and missing not in config.handout.stubs:
                notes.append(f"{missing} is missing: a notebook alone carries only the files of its %%writefile "
                             f"cells; submit a zip that holds the notebook and {missing}")
            elif not is_notebook(zip_path):
                notes.append(f"{missing} is missing from the zip{suggest(missing, extraction.names)}")
        work = tmp_path / "work"
        build_workspace(config, work, extraction.files)
        evidence = tmp_path / "evidence"
        evidence.mkdir()
        (tmp_path / "report").mkdir()
        report = tmp_path / "report" / "report.jsonl"
        env = harness_env(tmp_path, threads=batch.threads)
        env.update({"MNISTKIT_MODE": "grade", "MNISTKIT_EVIDENCE_DIR": str(evidence), "MNISTKIT_REPORT": str(report)})
        readable = [tmp_path / "harness"]
        eval_set = None
        if config.grading.mnist:
            (tmp_path / "eval").mkdir()
            data = batch.data()
            eval_set = data.eval_set(tmp_path / "eval", seed)
            env.update({"MNISTKIT_TRAIN_FILE": str(data.train_file), "MNISTKIT_EVAL_FILE": str(eval_set.file)})
            readable += [data.train_file.parent, eval_set.file.parent]
        limits = Limits(wall_seconds=config.grading.timeout_total, memory_bytes=int(config.grading.memory_gb * 2**30))
        mounts = Mounts(writable=(evidence, report.parent), readable=tuple(readable))
        run = run_limited(pytest_command(config), cwd=work, env=env, limits=limits, mounts=mounts,
                          log_file=tmp_path / "pytest.log")
        tests = score_tests(manifest, read_reports(report), config=config, data=eval_set,
                            evidence=evidence, ended=run.describe_end())
    if run.timed_out or (run.returncode not in (0, 1)):
        notes.append(f"Note: {run.describe_end()}; tests that had not finished score 0.")
    extra = {"isolation": run.isolation, "pytest_seconds": round(run.seconds, 2), "returncode": run.returncode,
             "log_tail": run.output[-3000:]}
    return tests, "\n".join(notes), extra


def _write(folder: Path, name: str, config: AssignmentConfig | str, tests: list[TestResult], output: str,
           status: str, seconds: float, extra: dict) -> SubmissionOutcome:
    assignment = config.name if isinstance(config, AssignmentConfig) else config
    title = config.title if isinstance(config, AssignmentConfig) else "mnist-kit"
    results = results_json(tests=tests, output=output, seconds=seconds, extra={
        "assignment": assignment, "submission": name, "status": status, "grader_version": __version__, **extra,
    })
    write_submission_outputs(folder, results, feedback_markdown(results, title=title, submission=name))
    log.info("%s: %g / %g (%s, %.1f s)", name, results["score"], results["extra_data"]["max_score"], status, seconds)
    return SubmissionOutcome(name, assignment, results["score"], results["extra_data"]["max_score"], status, seconds, folder)
