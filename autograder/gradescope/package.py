"""Build ``dist/gradescope/<assignment>.zip`` in Gradescope's autograder format.

At the zip's root: ``setup.sh`` (Gradescope runs it once, as root, on its Ubuntu 22.04 image, to build the
grading environment), ``run_autograder`` (run per submission) and ``kit/``, the grader's source (the
``autograder`` and ``mnistkit`` packages, ``pyproject.toml`` and this one assignment; never the
solutions or the kit's own tests). ``setup.sh`` installs CPU torch pinned as in the Makefile, the kit,
and MNIST (fetched with torchvision at setup time, so grading never touches the network), and opens
the path to the interpreter for the unprivileged uids the grader runs student code as (Gradescope's
container usually cannot run bubblewrap). Its steps (``MNISTKIT_SETUP_STEPS``) can be run one by one,
which the kit's own test does without network or root.
"""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from ..config import KIT_ROOT, AssignmentConfig

ZIP_DATE = (2024, 1, 1, 0, 0, 0)
TORCH = "torch==2.14.1"
TORCHVISION = "torchvision==0.29.1"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
IGNORED = ("__pycache__", ".pyc", ".pytest_cache", ".hypothesis")

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, to build the grading environment of {name} (mnist-kit).
# Steps, in order (MNISTKIT_SETUP_STEPS picks some): system venv torch kit data sandbox.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
VENV="$ROOT/venv"
STEPS="${{MNISTKIT_SETUP_STEPS:-system venv torch kit data sandbox}}"
step() {{ [[ " $STEPS " == *" $1 "* ]]; }}
if step system; then   # needs root and the network
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip bubblewrap >/dev/null
fi
if step venv; then
  python3 -m venv "$VENV"
fi
if step torch; then    # the CPU build, pinned as in the kit's Makefile (no CUDA wheels)
  "$VENV/bin/pip" install --quiet {torch} {torchvision} --index-url {index}
fi
if step kit; then
  "$VENV/bin/pip" install --quiet -e "$SOURCE/kit"   # editable: the grader reads its assignments from there
fi
if step data; then     # MNIST now, so that grading never needs the network; with the list of tests, kept
  mkdir -p "$ROOT/data"  # for every run (which would compute both again: about 12 s of CPU per submission)
  mkdir -p -m 700 "$ROOT/cache"
  MNIST_DATA_DIR="${{MNIST_DATA_DIR:-$ROOT/data}}" MNISTKIT_GRADER_CACHE="$ROOT/cache" \
    "$VENV/bin/python" -m autograder gradescope --assignment {name} --prepare
fi
if step sandbox; then  # student code runs as unprivileged uids: let them reach the interpreter
  "$VENV/bin/python" - <<'PY'
import stat, sys
from pathlib import Path
for path in {{Path(sys.executable).resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}}:
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
PY
fi
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission, write /autograder/results/results.json.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
export MNIST_DATA_DIR="${{MNIST_DATA_DIR:-$ROOT/data}}" MNISTKIT_GRADER_CACHE="$ROOT/cache" OMP_WAIT_POLICY=PASSIVE
exec "$ROOT/venv/bin/python" -m autograder gradescope --root "$ROOT" --assignment {name} --threads {threads}
"""


def _kit_files(config: AssignmentConfig):
    """(path in the zip, file) of the kit's source for one assignment."""
    roots = [KIT_ROOT / "autograder", KIT_ROOT / "student_template", config.root]
    yield "kit/pyproject.toml", KIT_ROOT / "pyproject.toml"
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not any(part in IGNORED or part.endswith(".pyc") for part in path.parts):
                yield f"kit/{path.relative_to(KIT_ROOT).as_posix()}", path


def build_gradescope_zip(config: AssignmentConfig, *, out_dir: Path, threads: int = 1) -> Path:
    """Write ``<out_dir>/gradescope/<name>.zip`` (reproducibly) and return its path."""
    target = Path(out_dir) / "gradescope" / f"{config.name}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.part")
    scripts = {"setup.sh": SETUP.format(name=config.name, torch=TORCH, torchvision=TORCHVISION, index=CPU_INDEX),
               "run_autograder": RUN.format(name=config.name, threads=threads)}
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in scripts.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
        for name, path in _kit_files(config):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(target)
    return target
