"""The corpus of hostile and broken submissions (tests/hostile.py), graded as one batch with -j 2.

Each ends with the score it earned (zero for a cheat) and a clear message, and the reference graded in
the same batch keeps its full marks.
"""
import hashlib
import json
import socket
import threading

import numpy as np
import pytest

from autograder.config import GradingSpec, KIT_ROOT
from autograder.grade import grade_path
from autograder.grade.sandbox import available_mode
from hostile import EXPECT, Corpus
from mnistkit.data import load_mnist, resolve_data_dir

pytestmark = pytest.mark.slow


def _label_table(data_dir) -> dict[str, int]:
    images, labels = load_mnist(train=False, data_dir=data_dir)
    flat = images.reshape(len(labels), -1).numpy()
    return {hashlib.sha1(bytes(row)).hexdigest()[:12]: int(y) for row, y in zip(flat, labels.tolist())}


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


@pytest.fixture(scope="module")
def hostile_batch(submissions, data_dir, tmp_path_factory):
    if available_mode() != "bwrap":
        pytest.skip("bubblewrap is not installed here: the file-system cheats are only contained under bwrap")
    folder = tmp_path_factory.mktemp("hostile")
    out = tmp_path_factory.mktemp("hostile-out")
    listener = _Listener()
    labels_file = resolve_data_dir(data_dir) / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    context = {"out_dir": str(out), "solution": str(KIT_ROOT / "solutions" / "mlp" / "mlp.py"),
               "labels": str(labels_file), "port": listener.port, "label_table": _label_table(data_dir)}
    Corpus(submissions / "mlp-reference.zip", context).build(folder)
    (folder / "zz-reference.zip").write_bytes((submissions / "mlp-reference.zip").read_bytes())
    limits = GradingSpec(timeout_per_test=60, timeout_total=120, memory_gb=6)
    try:
        outcomes = grade_path(folder, out_dir=out, assignment="mlp", data_dir=data_dir, jobs=2, grading=limits)
    finally:
        listener.close()
    return out, {o.name: o for o in outcomes}, listener, context


def _text(out, name):
    results = json.loads((out / name / "results.json").read_text())
    return results["output"] + "\n" + "\n".join(t["output"] for t in results["tests"])


@pytest.mark.parametrize("case", sorted(EXPECT))
def test_hostile_case_gets_its_score_and_message(hostile_batch, case):
    out, outcomes, _, _ = hostile_batch
    full = outcomes["zz-reference"].max_score
    expected, text = EXPECT[case]
    score = outcomes[case].score
    if expected == "full":
        assert score == full, _text(out, case)
    elif expected == "partial":
        assert 0 < score < full, (score, _text(out, case))
    else:
        assert score == expected, (score, _text(out, case))
    assert text in _text(out, case)


def test_hostile_batch_spares_the_reference(hostile_batch):
    out, outcomes, _, _ = hostile_batch
    reference = json.loads((out / "zz-reference" / "results.json").read_text())
    assert outcomes["zz-reference"].score == outcomes["zz-reference"].max_score == reference["score"]
    assert reference["extra_data"]["isolation"].startswith("bubblewrap")
    assert not (out / "planted.txt").exists()


def test_hostile_network_was_never_reached(hostile_batch):
    _, _, listener, _ = hostile_batch
    assert listener.connections == 0


def test_hostile_label_table_would_work_on_the_public_images(hostile_batch, data_dir):
    """The cheat is real: its table knows every public test image, so only the grader's draw defeats it."""
    _, _, _, context = hostile_batch
    images, labels = load_mnist(train=False, data_dir=data_dir)
    flat = images.reshape(len(labels), -1).numpy()
    hits = [context["label_table"].get(hashlib.sha1(bytes(row)).hexdigest()[:12]) for row in flat[:500]]
    assert hits == labels[:500].tolist()
