"""What one grader process computes once and reuses in every batch it grades: MNIST's ``.npy`` cache and
the assignments' test manifests, and the judges' warm parent.

Grading a folder is one batch; a process that grades many (a long-running grader, the kit's own test
session) would otherwise write MNIST's cache and collect each assignment's tests again for every batch,
about 8 s and 4 s of CPU each. Nothing of a submission is kept here: the cache holds MNIST as the grader
read it, in a folder of the grader's own (mode 0700, removed when the process exits; the sandbox never
sees it), and a manifest is kept under the fingerprint of everything that decides it (the kit's code and
the assignment's files, :meth:`autograder.grade.grade.Batch.fingerprint`), so an edit is collected
afresh. Failures are never kept: the next batch tries again and reports them itself.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from mnistkit.paths import CACHE_FILES

from ..testrun import judge_env
from .judge import JudgeServer

_LOCK = threading.Lock()
_ROOT: list[Path] = []  # the process's private folder, made on first use
_MNIST: dict[tuple, Path] = {}  # (data_dir, $MNIST_DATA_DIR) -> a folder holding every CACHE_FILES entry
_MANIFESTS: dict[tuple, list] = {}  # (assignment root, fingerprint) -> [TestSpec]
_SERVER: list[JudgeServer] = []  # the judges' warm parent, started on first use


def _root() -> Path:
    with _LOCK:
        if not _ROOT:
            folder = Path(tempfile.mkdtemp(prefix="mnistkit-grader-"))  # mode 0700
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _ROOT.append(folder)
        return _ROOT[0]


def _mnist_key(data_dir) -> tuple:
    return (str(Path(data_dir).resolve()) if data_dir is not None else None, os.environ.get("MNIST_DATA_DIR"))


def mnist_cache(data_dir) -> Path | None:
    """The folder of MNIST's cache written earlier in this process for ``data_dir``, if it is still whole."""
    with _LOCK:
        folder = _MNIST.get(_mnist_key(data_dir))
    whole = folder is not None and all((folder / name).is_file() for names in CACHE_FILES.values() for name in names)
    return folder if whole else None


def new_mnist_folder() -> Path:
    """An empty folder (mode 0700) in the process's own, for a cache to be written into."""
    return Path(tempfile.mkdtemp(prefix="mnist-", dir=_root()))


def keep_mnist_cache(data_dir, folder: Path) -> None:
    """Remember ``folder``, now written, as MNIST's cache for ``data_dir``."""
    with _LOCK:
        _MNIST[_mnist_key(data_dir)] = folder


def manifest(root: Path, fingerprint: str) -> list | None:
    with _LOCK:
        return _MANIFESTS.get((str(root), fingerprint))


def keep_manifest(root: Path, fingerprint: str, specs: list) -> None:
    with _LOCK:
        _MANIFESTS[(str(root), fingerprint)] = list(specs)


def judge_server() -> JudgeServer:
    """The process's warm parent of judges (:class:`.judge.JudgeServer`: torch and pytest imported once,
    about 3 s of CPU saved per submission), started on first use, and again if it ended."""
    folder = _root()
    with _LOCK:
        if _SERVER and _SERVER[0].alive:
            return _SERVER[0]
        home = folder / "judge-server"
        home.mkdir(mode=0o700, exist_ok=True)
        server = JudgeServer(judge_env(threads=1, home=home), log_file=folder / "judge-server.log")
        atexit.register(server.close)
        _SERVER[:] = [server]
        return server
