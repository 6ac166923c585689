"""Release: build one handout zip per assignment as an ordered list of small steps.

    copy_template -> copy_handout_files -> write_stubs -> add_visible_tests -> render_values -> zip_handout
    -> verify_handout

Each step takes the assignment's config and the staging folder and can be run and tested alone.
"""
from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

from ..config import AssignmentConfig
from ..layout import add_tests, copy_handout_files, copy_template
from .render import render
from .strip import strip_solutions
from .verify import verify_handout, verify_notebook

log = logging.getLogger(__name__)

# Fixed timestamp so that releasing the same sources twice gives byte-identical zips.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def write_stubs(config: AssignmentConfig, handout: Path) -> None:
    """The student stubs, generated from the reference solution by stripping its marked regions."""
    for name in config.handout.stubs:
        source = config.solution_dir / name
        stub = strip_solutions(source.read_text(encoding="utf-8"), filename=str(source))
        (handout / name).write_text(stub, encoding="utf-8")


def add_visible_tests(config: AssignmentConfig, handout: Path) -> None:
    """The tests' support files (conftest, plan) and the visible tests, never the hidden ones."""
    add_tests(config, handout, hidden=False)


def render_values(config: AssignmentConfig, handout: Path) -> None:
    """README.md and pytest.ini with the values of assignment.toml and the tests filled in (autograder.assign.render),
    and requirements.txt with the assignment's own packages ([handout] requirements) before its last line."""
    requirements = handout / "requirements.txt"
    lines = requirements.read_text(encoding="utf-8").splitlines()
    last = next(i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "-e .")
    requirements.write_text("\n".join([*lines[:last - 1], *config.handout.requirements, *lines[last - 1:]]) + "\n",
                            encoding="utf-8")
    for name in ("README.md", "pytest.ini"):
        path = handout / name
        path.write_text(render(path.read_text(encoding="utf-8"), config, where=f"{config.name}/{name}"),
                        encoding="utf-8")


def zip_handout(config: AssignmentConfig, handout: Path, out_dir: Path) -> Path:
    """Zip the staged handout as ``<out_dir>/<name>.zip`` with one top folder ``<name>/``, reproducibly."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{config.name}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in handout.rglob("*") if p.is_file()):
            arcname = f"{config.name}/{path.relative_to(handout).as_posix()}"
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.external_attr = (0o755 if path.suffix == ".sh" else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(target)
    return target


STEPS = (copy_template, copy_handout_files, write_stubs, add_visible_tests, render_values)


def release_notebook(config: AssignmentConfig, *, out_dir: Path) -> Path:
    """The verified student notebook ``<out_dir>/notebooks/<name>.ipynb`` (same sources as the zip)."""
    from .notebook import STUDENT, build_notebook, write_notebook

    target = write_notebook(build_notebook(config, flavour=STUDENT), out_dir / "notebooks" / f"{config.name}.ipynb")
    verify_notebook(target, config)
    log.info("released the notebook of %s -> %s", config.name, target)
    return target


def release_assignment(config: AssignmentConfig, *, out_dir: Path) -> Path:
    """Run every step for one assignment; return the verified ``<out_dir>/<name>.zip``."""
    with tempfile.TemporaryDirectory(prefix=f"release-{config.name}-") as staging:
        handout = Path(staging) / config.name
        handout.mkdir()
        for step in STEPS:
            log.debug("%s: %s", config.name, step.__name__)
            step(config, handout)
        target = zip_handout(config, handout, out_dir)
    verify_handout(target, config)
    log.info("released %s -> %s", config.name, target)
    return target
