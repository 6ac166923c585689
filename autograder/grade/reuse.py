"""What one grader process computes once and reuses in every batch it grades: MNIST's ``.npy`` cache and
the assignments' test manifests, and the judges' warm parent.

Grading a folder is one batch; a process that grades many (a long-running grader, the kit's own test
session) would otherwise write MNIST's cache and collect each assignment's tests again for every batch,
about 8 s and 4 s of CPU each. Nothing of a submission is kept here: the cache holds MNIST as the grader
read it, in a folder of the grader's own (mode 0700, removed when the process exits; the sandbox never
sees it), and a manifest is kept under the fingerprint of everything that decides it (the kit's code and
the assignment's files, :meth:`autograder.grade.grade.Batch.fingerprint`), so an edit is collected
afresh. Failures are never kept: the next batch tries again and reports them itself.

Both also outlive the process when ``$MNISTKIT_GRADER_CACHE`` names a folder of the grader's own, closed
to everyone else (mode 0700): Gradescope's ``setup.sh`` fills it once (:func:`.grade.prepare`), and every
submission's ``run_autograder``, a process of its own, reads it instead of computing both again.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from mnistkit.paths import CACHE_FILES

from ..testrun import TestSpec, judge_env
from .judge import JudgeServer

log = logging.getLogger(__name__)
KEPT_ENV = "MNISTKIT_GRADER_CACHE"

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


def private_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of this user's that no one else may read or write (mode 0700)."""
    info = path.stat() if path.is_dir() else None
    return bool(info and info.st_uid == os.getuid() and not info.st_mode & 0o077)


def env_folder(name: str) -> Path | None:
    """The folder ``$name`` names, when it is a :func:`private_folder` (else a warning, and None)."""
    value = os.environ.get(name)
    if not value:
        return None
    if private_folder(Path(value)):
        return Path(value)
    log.warning("%s=%s is not a folder of this user's with mode 0700: not used", name, value)
    return None


def kept_folder() -> Path | None:
    """``$MNISTKIT_GRADER_CACHE``, when it names a :func:`private_folder`."""
    return env_folder(KEPT_ENV)


def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _mnist_key(data_dir) -> tuple:
    return (str(Path(data_dir).resolve()) if data_dir is not None else None, os.environ.get("MNIST_DATA_DIR"))


def _whole(folder: Path | None) -> bool:
    return folder is not None and all((folder / name).is_file() for names in CACHE_FILES.values() for name in names)


def mnist_cache(data_dir) -> Path | None:
    """The folder of MNIST's cache written earlier for ``data_dir`` (by this process, or kept), if still whole."""
    key = _mnist_key(data_dir)
    with _LOCK:
        folder = _MNIST.get(key)
    kept = kept_folder()
    if not _whole(folder) and kept is not None:
        folder = kept / "mnist" / _digest(*key)
    return folder if _whole(folder) else None


def new_mnist_folder() -> Path:
    """An empty folder (mode 0700) in the process's own, for a cache to be written into."""
    return Path(tempfile.mkdtemp(prefix="mnist-", dir=_root()))


def keep_mnist_cache(data_dir, folder: Path) -> None:
    """Remember ``folder``, now written, as MNIST's cache for ``data_dir`` (and copy it to the kept folder)."""
    key = _mnist_key(data_dir)
    with _LOCK:
        _MNIST[key] = folder
    kept = kept_folder()
    if kept is not None:
        target = kept / "mnist" / _digest(*key)
        if not _whole(target):
            target.parent.mkdir(mode=0o700, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            partial = Path(tempfile.mkdtemp(prefix=".part-", dir=target.parent))
            for names in CACHE_FILES.values():
                for name in names:
                    shutil.copyfile(folder / name, partial / name)
            try:
                partial.rename(target)
            except OSError:  # another grader kept it meanwhile
                shutil.rmtree(partial, ignore_errors=True)


def _manifest_file(kept: Path, root: Path, fingerprint: str) -> Path:
    return kept / "manifests" / f"{Path(root).name}-{_digest(str(root))}-{fingerprint}.json"


def manifest(root: Path, fingerprint: str) -> list | None:
    """The tests collected earlier under ``fingerprint`` (by this process, or kept), else None."""
    with _LOCK:
        specs = _MANIFESTS.get((str(root), fingerprint))
    kept = kept_folder()
    if specs is None and kept is not None:
        try:
            rows = json.loads(_manifest_file(kept, root, fingerprint).read_text(encoding="utf-8"))
            specs = [TestSpec(**row) for row in rows]
        except (OSError, ValueError, TypeError):
            return None
        with _LOCK:
            _MANIFESTS[(str(root), fingerprint)] = specs
    return specs


def keep_manifest(root: Path, fingerprint: str, specs: list) -> None:
    with _LOCK:
        _MANIFESTS[(str(root), fingerprint)] = list(specs)
    kept = kept_folder()
    if kept is not None:
        path = _manifest_file(kept, root, fingerprint)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        partial.write_text(json.dumps([dataclasses.asdict(spec) for spec in specs]), encoding="utf-8")
        partial.replace(path)


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
