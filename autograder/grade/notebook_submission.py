"""Take a student's code out of a notebook submission (an ``.ipynb`` alone, or inside a zip).

A notebook handout saves each file the student writes with a ``%%writefile <name>`` cell, so the
notebook's module contract is those cells: the file is what running the notebook top to bottom would
write. Nothing in the notebook is executed here; the files are then graded exactly like a .py
submission. A file present in the zip itself wins over a notebook cell of the same name.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePosixPath

from mnistkit.notebook import written_files

from ..config import AssignmentConfig
from .unpack import MAX_MEMBERS, Extraction, SubmissionError, _is_junk, _TooBig, read_member_capped

SUFFIX = ".ipynb"


def is_notebook(path: Path) -> bool:
    return path.suffix.lower() == SUFFIX


def too_big(name: str, max_bytes: int) -> str:
    """The note for a notebook over the size limit (its outputs, images mostly, make it large)."""
    return (f"{name} is larger than the {max_bytes / 2**20:g} MB limit per file, so its %%writefile cells were "
            "not read: clear its outputs (Edit > Clear all outputs) and save it again")


def read_capped(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``; :class:`SubmissionError` when it is larger than ``max_bytes``."""
    if path.stat().st_size > max_bytes:
        raise SubmissionError(too_big(path.name, max_bytes))
    return path.read_bytes()


def notebook_in_zip(zip_path: Path, max_bytes: int) -> tuple[str, bytes] | None:
    """``(name, bytes)`` of the first notebook in the zip (junk folders skipped), or ``None``.

    Raises:
        SubmissionError: that notebook is larger than ``max_bytes`` (the message says so, with the limit).
    """
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist()[:MAX_MEMBERS]:
                parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                if info.is_dir() or not parts or _is_junk(parts) or not parts[-1].lower().endswith(SUFFIX):
                    continue
                try:
                    return info.filename, read_member_capped(archive, info, max_bytes)
                except _TooBig:
                    raise SubmissionError(too_big(info.filename, max_bytes)) from None
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
        return None
    return None


def oversized_notebook(path: Path, max_bytes: int) -> str | None:
    """The :func:`too_big` note when ``path`` is, or its zip holds, a notebook over ``max_bytes``; else ``None``."""
    try:
        if is_notebook(path):
            read_capped(path, max_bytes)
        else:
            notebook_in_zip(path, max_bytes)
    except SubmissionError as err:
        return str(err)
    except OSError:
        return None
    return None


def parse_notebook(data: bytes, name: str) -> dict:
    """The notebook as JSON; :class:`SubmissionError` with the reason when it is not one."""
    try:
        notebook = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{name} is not a notebook: it is not UTF-8 text ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise SubmissionError(f"{name} is not a readable notebook: invalid JSON at line {err.lineno}, "
                              f"column {err.colno} ({err.msg}); download it again from Colab or Jupyter") from err
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise SubmissionError(f"{name} is not a Jupyter notebook (no list of cells)")
    return notebook


def guess_names(path: Path, max_bytes: int) -> set[str]:
    """File names a notebook submission provides (its ``%%writefile`` cells), to guess the assignment."""
    try:
        if is_notebook(path):
            notebook = parse_notebook(read_capped(path, max_bytes), path.name)
        else:
            found = notebook_in_zip(path, max_bytes)
            if found is None:
                return set()
            notebook = parse_notebook(found[1], found[0])
    except (SubmissionError, OSError):
        return set()
    return {PurePosixPath(n).name for n in written_files(notebook)}


def files_from_notebook(notebook: dict, name: str, config: AssignmentConfig, dest: Path,
                        extraction: Extraction) -> None:
    """Write the notebook's ``%%writefile`` files that the assignment wants and the zip lacks into ``dest``.

    Adds to ``extraction`` the files written and a note for each (which cell, and any syntax error).
    """
    origins: dict[str, int] = {}
    written = written_files(notebook, origins=origins)
    wanted = set(config.submission.files) | set(config.submission.optional)
    by_base = {PurePosixPath(path).name: path for path in written}
    for base, path in sorted(by_base.items()):
        if base not in wanted or base in extraction.files:
            continue
        text = written[path]
        target = dest / base
        target.write_text(text, encoding="utf-8")
        extraction.files[base] = target
        cell = origins[path]
        extraction.notes.append(f"{base} was taken from the `%%writefile {path}` cell (cell {cell}) of {name}")
        if base.endswith(".py"):
            try:
                compile(text, base, "exec")
            except SyntaxError as err:
                line = (err.lineno or 0) + 1
                extraction.notes.append(f"{base} does not compile: {err.msg}, at line {line} of cell {cell} of "
                                        f"{name}; every test that imports it scores 0")
    for stub in config.handout.stubs:
        if stub not in extraction.files:
            extraction.notes.append(
                f"{name} has no `%%writefile {stub}` cell: keep that line at the top of the cell that holds "
                f"your code, so that running the cell saves it as {stub}")


def notebook_files(source: Path, dest: Path, config: AssignmentConfig, extraction: Extraction) -> None:
    """Complete ``extraction`` from the notebook submission ``source`` (an .ipynb, or a zip holding one).

    Raises:
        SubmissionError: ``source`` is an .ipynb that is not a readable notebook.
    """
    max_bytes = int(config.submission.max_file_mb * 2**20)
    if is_notebook(source):
        files_from_notebook(parse_notebook(read_capped(source, max_bytes), source.name), source.name, config,
                            dest, extraction)
        return
    if all(stub in extraction.files for stub in config.handout.stubs):
        return
    try:
        found = notebook_in_zip(source, max_bytes)
        if found is None:
            return
        member, data = found
        notebook = parse_notebook(data, member)
    except SubmissionError as err:  # too large, or not a notebook
        extraction.notes.append(str(err))
        return
    files_from_notebook(notebook, member, config, dest, extraction)
