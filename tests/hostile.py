"""A corpus of hostile and broken MLP submissions, each with the score it must end with and its message.

Every case is a function that writes one zip into a folder, starting from the reference submission's
files (``mlp.py`` and ``mnist_agent.pt``). ``EXPECT`` says, per case, what grading must give: ``"full"``
(the reference's full marks), ``0``, or ``"partial"`` (some points, not all), and text that must appear
in the feedback.
"""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path


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
    import json

    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": source, "outputs": [],
              "execution_count": None} for i, source in enumerate(sources)]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _module(code: str) -> str:
    """A submission's mlp.py: the hostile ``code`` at import, then the reference network."""
    return code


class Corpus:
    """Builds every case from the reference files; ``context`` carries paths the cheats try to reach."""

    def __init__(self, reference_zip: Path, context: dict[str, str]):
        with zipfile.ZipFile(reference_zip) as archive:
            self.mlp = archive.read("mlp.py").decode()
            self.agent = archive.read("mnist_agent.pt")
        self.context = context

    def good(self, mlp: str | None = None, **extra) -> dict:
        return {"mlp.py": self.mlp if mlp is None else mlp, "mnist_agent.pt": self.agent, **extra}

    def prefixed(self, code: str) -> dict:
        """The reference network with ``code`` run first, at import."""
        return self.good(code + "\n" + self.mlp)

    def appended(self, code: str) -> dict:
        """The reference network with ``code`` run after it, at import (it may rebind Net)."""
        return self.good(self.mlp + "\n" + code)

    def build(self, folder: Path) -> None:
        c = self.context
        cases = {
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
                "_forward = Net.forward\n"
                "Net.forward = lambda self, x: _forward(self, x) * float('nan')\n"),
            "broken-wrong-dtype": self.appended(
                "_forward = Net.forward\n"
                "Net.forward = lambda self, x: _forward(self, x).double()\n"),
            "broken-path-traversal": {**self.good(), "../escaped.py": "x = 1", "/tmp/absolute.py": "x = 1"},
            # slow or greedy
            "greedy-memory-bomb": self.prefixed("hog = bytearray(64 * 2**30)"),
            "greedy-fork-bomb": self.prefixed(
                "import os\nfor _ in range(100000):\n    try:\n        os.fork()\n    except OSError:\n        break\n"
                "import time\ntime.sleep(3600)"),
            "greedy-huge-file": self.prefixed(
                "with open('huge.bin', 'wb') as f:\n    for _ in range(4096):\n        f.write(b'0' * 2**20)"),
            "greedy-sleep-forever": self.prefixed("import time\ntime.sleep(10**6)"),
            # cheating
            "cheat-patches-pytest": self.appended(
                "import pytest\npytest.fail = lambda *a, **k: None\n"
                "class Net(Net):\n    def forward(self, x):\n        return super().forward(x)[:, :5]\n"),
            "cheat-patches-testing-libraries": self.appended(
                "import unittest, numpy.testing, torch.testing\n"
                "unittest.TestCase.assertEqual = lambda *a, **k: None\n"
                "numpy.testing.assert_allclose = lambda *a, **k: None\n"
                "torch.testing.assert_close = lambda *a, **k: None\n"),
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
            "cheat-writes-output-dir": self.prefixed(
                "import json, pathlib\n"
                f"victim = pathlib.Path({c['out_dir']!r}) / 'zz-reference' / 'results.json'\n"
                "try:\n    victim.parent.mkdir(parents=True, exist_ok=True)\n"
                "    victim.write_text(json.dumps({'score': 0, 'tests': []}))\nexcept OSError:\n    pass\n"
                f"try:\n    pathlib.Path({c['out_dir']!r}, 'planted.txt').write_text('x')\nexcept OSError:\n    pass\n"),
            "cheat-reads-secrets": self.prefixed(
                "import glob, os\nfound = []\n"
                f"for path in [{c['solution']!r}, {c['labels']!r}, *glob.glob('tests/*hidden*'), *glob.glob('/tmp/**/*hidden*', recursive=True)]:\n"
                "    try:\n        open(path, 'rb').read(10)\n        found.append(path)\n    except OSError:\n        pass\n"
                "raise RuntimeError(f'secrets read: {found}')"),
            "cheat-opens-network": self.prefixed(
                "import socket\nreached = 'no'\n"
                f"try:\n    socket.create_connection(('127.0.0.1', {c['port']}), timeout=3).sendall(b'leak')\n    reached = 'yes'\n"
                "except OSError:\n    pass\nraise RuntimeError(f'network reached: {reached}')"),
            "cheat-label-table": self.appended(
                "import hashlib\n"
                f"TABLE = {c['label_table']}\n"
                "class Net(Net):\n"
                "    def forward(self, x):\n"
                "        out = super().forward(x)\n"
                "        pixels = ((x.reshape(-1, 784) * 0.3081 + 0.1307) * 255).round().to(torch.uint8)\n"
                "        keys = [hashlib.sha1(bytes(row.tolist())).hexdigest()[:12] for row in pixels]\n"
                "        hits = [TABLE.get(k) for k in keys]\n"
                "        fake = torch.full_like(out, -50.0)\n"
                "        for i, label in enumerate(hits):\n"
                "            fake[i, label if label is not None else 0] = 0.0\n"
                "        return fake\n"),
        }
        for name, entries in cases.items():
            target = folder / f"{name}.zip"
            if entries is None:
                target.write_text("this is a text file with a .zip name\n")
            else:
                write_zip(target, entries)
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


# case -> (expected score: "full", "partial" or 0, text that must appear in the feedback)
EXPECT: dict[str, tuple[object, str]] = {
    "broken-not-a-zip": (0, "not a valid zip"),
    "broken-empty-zip": (0, "mlp.py is missing from the zip"),
    "broken-one-folder-deep": ("full", "put it at the top level"),
    "broken-macosx-junk": ("full", ""),
    "broken-wrong-name": (0, "rename it to mlp.py"),
    "broken-syntax-error": (0, "syntax error at line 1"),
    "broken-import-error": (0, "No module named 'numpyy'"),
    "broken-exception-at-import": (0, "ValueError: exploded at import"),
    "broken-nan-outputs": ("partial", "sum to 1"),
    "broken-wrong-dtype": ("partial", "expected dtype torch.float32, got torch.float64"),
    "broken-path-traversal": ("full", "not allowed in a submission"),
    "broken-symlink": (0, "symbolic links are not allowed"),
    "broken-zip-bomb": ("partial", "limit per file"),
    "greedy-memory-bomb": (0, "MemoryError"),
    "greedy-fork-bomb": (0, ""),
    "greedy-huge-file": (0, "File too large"),
    "greedy-sleep-forever": (0, "Timeout"),
    "cheat-patches-pytest": (0, "replaced testing tools"),
    "cheat-patches-testing-libraries": (0, "replaced testing tools"),
    "cheat-always-equal": ("partial", "expected a torch.Tensor, got Agreeable"),
    "cheat-exits-at-import": (0, "SystemExit"),
    "cheat-os-exit-at-import": (0, "exited with code 0"),
    "cheat-prints-fake-results": (0, "SystemExit"),
    "cheat-writes-output-dir": ("full", ""),
    "cheat-reads-secrets": (0, "secrets read: []"),
    "cheat-opens-network": (0, "network reached: no"),
    "cheat-label-table": ("partial", "accuracy"),
    "notebook-in-zip": ("full", "taken from the `%%writefile mlp.py` cell (cell 2) of homework.ipynb"),
    "notebook-alone": ("partial", "submit a zip that holds the notebook and mnist_agent.pt"),
    "notebook-not-json": (0, "not a readable notebook: invalid JSON at line 1"),
    "notebook-no-writefile": (0, "has no `%%writefile mlp.py` cell"),
    "notebook-syntax-error": (0, "at line 3 of cell 2 of mlp.ipynb"),
}
