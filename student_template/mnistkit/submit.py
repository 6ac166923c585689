"""Build your submission zip:  python -m mnistkit.submit

Run it in the handout folder. It packs exactly the files listed under [submission] in assignment.toml
(top level, nothing else), warns about missing files and Python files that do not compile, and writes
``<assignment>-submission.zip``. Upload that file.
"""
from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

from ._toml import tomllib

# The line a handout stub puts where code is to be written, below its TODO comment:
#     raise NotImplementedError("Owner.part")
_STUB = re.compile(r"""^\s*raise NotImplementedError\(['"]([\w.]+)['"]\)\s*$""", re.MULTILINE)


def build_submission(folder: Path, *, output: Path | None = None) -> tuple[Path, list[str]]:
    """Zip the submission files of the handout in ``folder``; return the zip path and warnings."""
    with open(folder / "assignment.toml", "rb") as handle:
        config = tomllib.load(handle)
    spec = config["submission"]
    output = output or folder / f"{config['name']}-submission.zip"
    warnings: list[str] = []
    names = [n for n in spec["files"] if (folder / n).is_file()]
    names += [n for n in spec.get("optional", []) if (folder / n).is_file()]
    for name in spec["files"]:
        if not (folder / name).is_file():
            warnings.append(f"{name} is missing: the checks that need it will score 0")
    for name in names:
        if name.endswith(".py"):
            source = (folder / name).read_text(encoding="utf-8", errors="replace")
            try:
                compile(source, name, "exec")
            except SyntaxError as err:
                warnings.append(f"{name} has a syntax error at line {err.lineno}: {err.msg}")
            unwritten = _STUB.findall(source)
            if unwritten:
                warnings.append(f"{name} still has unwritten parts: {', '.join(unwritten)} "
                                "(see their TODO comments; they score 0, fine for a bonus you skip)")
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(folder / name, arcname=name)
    return output, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistkit.submit", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=".", help="the handout folder (default: .)")
    parser.add_argument("--output", default=None,
                        help="zip to write (default: <assignment>-submission.zip in the folder)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not (folder / "assignment.toml").is_file():
        print(f"error: {folder.resolve()} has no assignment.toml; run this in the handout folder", file=sys.stderr)
        return 2
    output, warnings = build_submission(folder, output=Path(args.output) if args.output else None)
    for warning in warnings:
        print(f"warning: {warning}")
    with zipfile.ZipFile(output) as archive:
        listed = ", ".join(archive.namelist()) or "nothing"
    print(f"wrote {output} ({listed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
