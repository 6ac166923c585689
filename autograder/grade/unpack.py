"""Read a submission zip defensively and extract only the files the assignment asks for.

Nothing in the zip is trusted: names are matched by their last path component (so files one folder deep,
as macOS's "Compress" makes them, are found), ``__MACOSX`` and dot-files are ignored, absolute paths,
``..`` and symlinks are never written, and every file is read with a size cap that does not believe the
zip's own size fields (a zip bomb stops at the cap).
"""
from __future__ import annotations

import difflib
import logging
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

MAX_MEMBERS = 2000


class SubmissionError(Exception):
    """The zip cannot be graded at all (not a zip, unreadable); the message is for the student."""


@dataclass
class Extraction:
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def missing(self, required: tuple[str, ...]) -> list[str]:
        return [name for name in required if name not in self.files]


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p == "__MACOSX" or p.startswith(".") or p == "__pycache__" for p in parts)


def list_names(zip_path: Path) -> list[str]:
    """Base names of the regular files in the zip (junk excluded), for guessing the assignment."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()[:MAX_MEMBERS]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    names = []
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if parts and not info.is_dir() and not _is_junk(parts):
            names.append(parts[-1])
    return names


def extract_submission(
    zip_path: Path, dest: Path, *, wanted: tuple[str, ...], max_file_bytes: int
) -> Extraction:
    """Extract the members of ``zip_path`` whose base name is in ``wanted`` into ``dest`` (flat).

    Raises:
        SubmissionError: the file is not a readable zip.
    """
    result = Extraction()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise SubmissionError(f"{zip_path.name} is not a valid zip file ({err})") from err
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            result.notes.append(f"the zip holds {len(infos)} entries; only the first {MAX_MEMBERS} were looked at")
            infos = infos[:MAX_MEMBERS]
        for info in infos:
            raw = info.filename.replace("\\", "/")
            parts = PurePosixPath(raw).parts
            if info.is_dir() or not parts:
                continue
            if raw.startswith("/") or ".." in parts or (len(raw) > 1 and raw[1] == ":"):
                result.notes.append(f"ignored {raw!r}: absolute paths and '..' are not allowed in a submission")
                continue
            if _is_junk(parts):
                continue
            base = parts[-1]
            result.names.append(raw)
            if stat.S_ISLNK(info.external_attr >> 16):
                result.notes.append(f"ignored {raw!r}: symbolic links are not allowed in a submission")
                continue
            if base not in wanted:
                continue
            if base in result.files:
                result.notes.append(f"ignored {raw!r}: {base} appears more than once; the first one is graded")
                continue
            target = dest / base
            try:
                target.write_bytes(read_member_capped(archive, info, max_file_bytes))
            except _TooBig:
                target.unlink(missing_ok=True)
                result.notes.append(f"ignored {raw!r}: larger than the {max_file_bytes / 2**20:.0f} MB limit per file")
                continue
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as err:
                target.unlink(missing_ok=True)
                result.notes.append(f"could not read {raw!r} from the zip: {err}")
                continue
            if len(parts) > 1:
                result.notes.append(f"found {base} in the folder {'/'.join(parts[:-1])}/; put it at the top level of the zip")
            result.files[base] = target
    return result


class _TooBig(Exception):
    pass


def suggest(missing: str, names: list[str]) -> str:
    """`` (found 'MLP.py': rename it to mlp.py)`` when a close name is in the zip, else ``''``."""
    bases = [PurePosixPath(n).name for n in names]
    lower = {b.lower(): b for b in bases}
    if missing.lower() in lower:
        return f" (found {lower[missing.lower()]!r}: rename it to {missing})"
    close = difflib.get_close_matches(missing, bases, n=1, cutoff=0.6)
    return f" (found {close[0]!r}: rename it to {missing})" if close else ""


def read_member_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The bytes of one member, read in chunks and refused beyond ``cap`` whatever the zip claims."""
    if info.file_size > cap:
        raise _TooBig
    chunks, size = [], 0
    with archive.open(info) as source:
        while chunk := source.read(1 << 20):
            size += len(chunk)
            if size > cap:
                raise _TooBig
            chunks.append(chunk)
    return b"".join(chunks)
