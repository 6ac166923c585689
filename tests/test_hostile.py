"""The corpus of hostile and broken submissions (tests/hostile.py), graded as one batch with -j 2 per sandbox
mode, the modes' batches side by side.

Each case ends with the score it earned (zero for what it faked) and a clear message; nothing leaks;
the reference graded in the same batch keeps its full marks; no process outlives the batch. The whole
corpus runs under bubblewrap, and the cases whose defence depends on the sandbox run again in the
unprivileged-user mode (the grader is root without bubblewrap: Docker, Gradescope). Where a mode is not
available the tests fail under CI (``$CI`` set) and skip elsewhere, saying why.
"""
import json
import os
import socket
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.config import KIT_ROOT, GradingSpec, load_assignment
from autograder.grade import grade_path
from autograder.grade.sandbox import USER_UIDS, NoSandbox, choose_mode
from autograder.results.signing import KEY_FILE, load_key, verify
from hostile import EXPECT, FAKED, SANDBOX_CASES, Corpus
from mnistkit.data import load_mnist

pytestmark = pytest.mark.slow
LIMITS = GradingSpec(timeout_per_test=30, timeout_total=120, memory_gb=6)


class _Listener:
    """A TCP server on the host's loopback that counts who reaches it."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self):
        self.stop.set()
        self.thread.join()
        self.server.close()


def _unavailable(mode: str) -> str | None:
    """Why the sandbox ``mode`` cannot run here (the grader's own refusal), if it cannot."""
    try:
        choose_mode(forced=mode)
    except NoSandbox as err:
        return str(err)
    return None


def _require(mode: str) -> None:
    reason = _unavailable(mode)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the {mode} sandbox must be tested in CI: {reason}")
        pytest.skip(reason)


def _stub_text() -> str:
    from autograder.assign.strip import strip_solutions

    config = load_assignment("mlp")
    return strip_solutions((config.solution_dir / "mlp.py").read_text())


def _probes_alive() -> list[int]:
    """Processes still running the probe (of any submission), or of a sandbox uid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            owner = entry.stat().st_uid
        except OSError:
            continue
        if b"mnistkit.probe" in command or USER_UIDS[0] <= owner < USER_UIDS[1]:
            found.append(int(entry.name))
    return found


MODES = ["bwrap", "user"]
CASES = [(mode, case) for mode in MODES for case in sorted(EXPECT) if mode == "bwrap" or case in SANDBOX_CASES]


def _grade_batch(mode, mlp_submissions, data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"hostile-{mode}")
    out = tmp_path_factory.mktemp(f"hostile-{mode}-out")
    listener = _Listener()
    images, labels = load_mnist(train=False, data_dir=data_dir)
    config = load_assignment("mlp")
    context = {"out_dir": str(out), "solution": str(config.solution_dir / "mlp.py"),
               "hidden_test": str(config.hidden_tests()[0]), "key_file": str(out / KEY_FILE),
               "port": listener.port, "kit": str(KIT_ROOT), "data_dir": str(Path(data_dir).resolve()),
               "stub": _stub_text(), "test_images": images, "test_labels": labels}
    names = None if mode == "bwrap" else set(SANDBOX_CASES)
    Corpus(mlp_submissions / "mlp-reference.zip", context).build(folder, names)
    (folder / "zz-reference.zip").write_bytes((mlp_submissions / "mlp-reference.zip").read_bytes())
    try:
        outcomes = grade_path(folder, out_dir=out, assignment="mlp", data_dir=data_dir, jobs=2, grading=LIMITS,
                              sandbox=mode)
    finally:
        listener.close()
    return mode, out, {o.name: o for o in outcomes}, listener


@pytest.fixture(scope="module")
def hostile_batches(mlp_submissions, data_dir, tmp_path_factory):
    """``{mode: (mode, out, outcomes, listener)}``: the corpus graded in every sandbox mode that runs here.

    The modes' batches are graded side by side (each two submissions at a time): many cases spend their
    time waiting on a limit (the endless sleep, the fork bomb), so four gradings keep the two cores busy."""
    modes = [mode for mode in MODES if _unavailable(mode) is None]
    with ThreadPoolExecutor(max_workers=len(modes) or 1) as pool:
        futures = {mode: pool.submit(_grade_batch, mode, mlp_submissions, data_dir, tmp_path_factory) for mode in modes}
        batches = {mode: future.result() for mode, future in futures.items()}
    time.sleep(2)  # a process that escaped would keep writing for 40 s
    return batches


@pytest.fixture
def hostile_batch(request, hostile_batches):
    """The corpus graded in the sandbox mode the test is parametrized with (``mode``)."""
    mode = request.node.callspec.params["mode"]
    _require(mode)
    return hostile_batches[mode]


def _results(out, name):
    return json.loads((out / name / "results.json").read_text())


def _text(out, name):
    results = _results(out, name)
    return results["output"] + "\n" + "\n".join(t["output"] for t in results["tests"])


@pytest.mark.parametrize("mode, case", CASES, ids=[f"{mode}-{case}" for mode, case in CASES])
def test_hostile_case_gets_its_score_and_message(hostile_batch, mode, case):
    _, out, outcomes, _ = hostile_batch
    full = outcomes["zz-reference"].max_score
    expected, text = EXPECT[case]
    score = outcomes[case].score
    if expected == "full":
        assert score == full, _text(out, case)
    elif expected == "partial":
        assert 0 < score < full, (score, _text(out, case))
    elif expected == "fakes":
        faked = [t for t in _results(out, case)["tests"] if t["extra_data"]["nodeid"].split("::")[-1] in FAKED[case]]
        assert faked and all(t["score"] == 0 for t in faked), [(t["name"], t["score"], t["output"]) for t in faked]
    else:
        assert score == expected, (score, _text(out, case))
    assert text in _text(out, case)


@pytest.mark.parametrize("mode", MODES)
def test_hostile_batch_spares_the_reference(hostile_batch, mode):
    mode, out, outcomes, _ = hostile_batch
    reference = _results(out, "zz-reference")
    assert outcomes["zz-reference"].score == outcomes["zz-reference"].max_score == reference["score"]
    assert reference["extra_data"]["sandbox"] == mode
    assert verify(reference, load_key(out)), "the reference's results were rewritten by someone else"
    assert not (out / "planted.txt").exists()


@pytest.mark.parametrize("mode", MODES)
def test_hostile_nothing_outlives_the_batch(hostile_batch, mode):
    mode, out, outcomes, _ = hostile_batch
    assert not _probes_alive()
    survivor = _results(out, "cheat-survives-the-run")
    assert survivor["score"] == outcomes["cheat-survives-the-run"].score and verify(survivor, load_key(out))


@pytest.mark.parametrize("mode", MODES)
def test_hostile_network_was_never_reached(hostile_batch, mode):
    _, _, _, listener = hostile_batch
    assert listener.connections == 0


def test_hostile_lookup_tables_would_work_without_the_checks(data_dir):
    """The nearest-neighbour cheats are real: on the public test images their tables give the right labels."""
    images, labels = load_mnist(train=False, data_dir=data_dir)
    x = (images[:300].reshape(-1, 784).float() / 255 - 0.1307) / 0.3081
    table = (images.reshape(-1, 784).float() / 255 - 0.1307) / 0.3081
    nearest = (x @ table.T - 0.5 * (table * table).sum(dim=1)).argmax(dim=1)
    assert (labels[nearest] == labels[:300]).float().mean() > 0.99


def test_resume_regrades_a_forged_result(mlp_submissions, data_dir, tmp_path):
    """A results.json written by anyone but this grader (a forged score with the right stamp) is not kept."""
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "ref.zip").write_bytes((mlp_submissions / "mlp-stub.zip").read_bytes())
    out = tmp_path / "out"
    [first] = grade_path(batch, out_dir=out, assignment="mlp", data_dir=data_dir, grading=LIMITS)
    results = _results(out, "ref")
    forged = {**results, "score": 33.0}
    forged["extra_data"] = {**results["extra_data"], "signature": "0" * 64}
    (out / "ref" / "results.json").write_text(json.dumps(forged))
    [again] = grade_path(batch, out_dir=out, assignment="mlp", data_dir=data_dir, grading=LIMITS)
    assert first.score == 0 and again.status == "graded" and again.score == 0
    assert verify(_results(out, "ref"), load_key(out))
    [kept] = grade_path(batch, out_dir=out, assignment="mlp", data_dir=data_dir, grading=LIMITS)
    assert kept.status == "unchanged"


def test_hidden_tests_never_enter_the_sandbox(mlp_submissions, tmp_path):
    """The probe's folders hold the handout, the plan and the student's files: no hidden test, no solution."""
    from autograder.grade.grade import Batch, Grading, lay_out, unpack

    config = load_assignment("mlp")
    batch = Batch(tmp_path / "out", tmp_path, None, 1, "bwrap", b"k" * 32)
    grading = Grading(mlp_submissions / "mlp-reference.zip", config, batch, tmp_path / "g", 1)
    grading.folder.mkdir()
    unpack(grading)
    lay_out(grading)
    visible = [grading.shared(name) for name in ("plan", "work", "probe-out")]
    text = "\n".join(p.read_text(errors="replace") for root in visible for p in root.rglob("*") if p.is_file())
    for hidden in config.hidden_tests():
        assert hidden.name not in text and not [p for root in visible for p in root.rglob(hidden.name)]
        for line in hidden.read_text().splitlines():
            if len(line.strip()) > 40 and line.strip().startswith(("fail(", "pytest.mark", "def test_")):
                assert line.strip() not in text, line
    with zipfile.ZipFile(mlp_submissions / "mlp-reference.zip") as archive:
        assert sorted(p.name for p in (grading.shared("work")).iterdir() if p.suffix in (".py", ".pt")) == sorted(
            ["mlp.py", "mnist.py", "mnist_agent.pt"]) and "mlp.py" in archive.namelist()
