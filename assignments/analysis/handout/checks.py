"""Checks the tests of the analysis assignment use (shipped in the handout; the grader uses the kit's copy).

Use them yourself before you submit, e.g. ``python -c "import checks; print(checks.unanswered(open('report.md').read()))"``.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from pathlib import Path

import pytest
import torch

import runs as kit_runs
from mnistkit.testing import call_student

REPORT_FILE = "report.md"
QUESTIONS = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7")
MIN_ANSWER_WORDS = 3

# Re-running a row of results.jsonl must reproduce it within these tolerances (README, "What the grader
# checks"). Measured with bench/analysis_grid.py tolerance on the runs of rerun_candidates(): re-running them
# with 2 threads instead of 1, or with every weight nudged by one part in a million (a stand-in for another
# CPU's rounding), moved every loss by less than 0.03% and no validation accuracy at all; even nudges of one
# part in 10,000 stayed below 0.06%. Another seed moved the training loss by 0.4% to 7%.
RERUN_LOSS_RTOL = 0.002  # relative, on the training and validation losses of every epoch
RERUN_ACC_ATOL = 0.003  # absolute, on the training and validation accuracies of every epoch


def expect_value_error(what: str, fn, *args, **kwargs) -> None:
    """Fail unless ``fn(*args, **kwargs)`` raises ``ValueError``; ``what`` names the call in the message."""
    outcome = None
    try:
        fn(*args, **kwargs)
        outcome = "returned instead of raising ValueError"
    except ValueError:
        return
    except NotImplementedError as err:
        outcome = f"is not written yet (NotImplementedError: {err})"
    except Exception as err:  # noqa: BLE001 - whatever a student's code raises
        outcome = f"raised {type(err).__name__}: {err}, expected ValueError"
    pytest.fail(f"{what} {outcome}", pytrace=False)


def linear_layers(model) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def module_types(model) -> list[str]:
    """Names of the top-level modules of an ``nn.Sequential``, in order."""
    return [type(m).__name__ for m in model.children()]


def missing_runs(studies, results, names=None) -> list[str]:
    """Descriptions of the grid's runs that results.jsonl lacks (a run shared by two studies counts once)."""
    missing, seen = [], set()
    for name, study in studies.items():
        if names is not None and name not in names:
            continue
        for config, seed in study.runs:
            key = kit_runs.run_key(config, seed)
            if key not in results and key not in seen:
                seen.add(key)
                missing.append(f"{name}: {describe(config, seed)}")
    return missing


def describe(config, seed) -> str:
    c = config if isinstance(config, dict) else config.as_dict()
    return (f"activation={c['activation']} depth={c['depth']} width={c['width']} lr={c['lr']:g} "
            f"scheduler={c['scheduler']} dropout={c['dropout']:g} epochs={c['epochs']} "
            f"train_size={c['train_size']} seed={seed}")


def rerun_candidates(studies) -> list:
    """The runs the honesty check may re-train: one epoch at a learning rate of at most 0.001, width <= 100.

    Only these: their numbers barely move when the arithmetic differs a little (another CPU, another
    number of threads), so a re-run on the grader's machine reproduces an honest row closely. At larger
    learning rates or over several epochs, rounding differences grow as much as changing the seed would.
    """
    runs = []
    for name in ("lr", "depth"):
        for config, seed in studies[name].runs:
            if config.epochs == 1 and config.lr <= 0.001 and config.width <= 100 and config.train_size == 0:
                runs.append((config, seed))
    return runs


def choose_runs(studies, count: int, salt: str) -> list:
    """``count`` of the :func:`rerun_candidates` picked at random, reproducibly from ``salt``."""
    candidates = {kit_runs.run_key(c, s): (c, s) for c, s in rerun_candidates(studies)}
    keys = sorted(candidates)
    rng = random.Random(hashlib.sha256(salt.encode("utf-8")).hexdigest())
    return [candidates[k] for k in rng.sample(keys, min(count, len(keys)))]


def rerun_mismatches(row: dict, again: dict) -> list[str]:
    """How a re-run row differs from the submitted one beyond the tolerances (empty when it matches)."""
    problems = []
    if row.get("parameters") != again["parameters"]:
        problems.append(f"parameters: submitted {row.get('parameters')}, re-run {again['parameters']}")
    for mine, theirs in zip(row["history"], again["history"]):
        epoch = mine["epoch"]
        for name in ("train_loss", "val_loss"):
            if not math.isclose(mine[name], theirs[name], rel_tol=RERUN_LOSS_RTOL, abs_tol=1e-6):
                problems.append(f"epoch {epoch} {name}: submitted {mine[name]:.5f}, re-run {theirs[name]:.5f}")
        for name in ("train_acc", "val_acc"):
            if abs(mine[name] - theirs[name]) > RERUN_ACC_ATOL:
                problems.append(f"epoch {epoch} {name}: submitted {mine[name]:.4f}, re-run {theirs[name]:.4f}")
    return problems


def check_reruns(analysis, studies, results, mnist_train, chosen) -> None:
    """Re-train each chosen run with the student's build_mlp and fail unless it reproduces the submitted row."""
    images, labels = mnist_train
    if len(labels) != kit_runs.MNIST_TRAIN_SIZE:
        pytest.fail(f"the training data have {len(labels)} images, not the {kit_runs.MNIST_TRAIN_SIZE:,} of MNIST "
                    "in their official order, so runs cannot be re-run here", pytrace=False)
    failures = []
    for config, seed in chosen:
        key = kit_runs.run_key(config, seed)
        if key not in results:
            failures.append(f"run {describe(config, seed)} is not in {kit_runs.RESULTS_FILE}")
            continue
        again = call_student(f"re-running {describe(config, seed)} with your build_mlp", kit_runs.train_run,
                             config, seed, images, labels, build=analysis.build_mlp)
        problems = rerun_mismatches(results[key], again)
        if problems:
            theirs = (results[key].get("versions") or {}).get("torch")
            if theirs != again["versions"]["torch"]:
                problems.insert(0, f"(the row was made with torch {theirs}, the re-run used torch "
                                   f"{again['versions']['torch']})")
            failures.append(f"run {describe(config, seed)}: " + "; ".join(problems[:4]))
    if failures:
        pytest.fail("re-running rows of results.jsonl with the same configuration and seed did not reproduce "
                    f"them (tolerance: {RERUN_LOSS_RTOL:.1%} on losses, {100 * RERUN_ACC_ATOL:.1f} points on accuracies). "
                    "Rows must come from `python sweep.py` / `python train.py` with the analysis.py you submit:\n"
                    + "\n".join(failures), pytrace=False)


def read_report(root: Path) -> str:
    path = root / REPORT_FILE
    if not path.is_file():
        pytest.fail(f"{REPORT_FILE} not found: fill in the report template and submit it", pytrace=False)
    return path.read_text(encoding="utf-8")


def report_answers(text: str) -> dict[str, str]:
    """``{question id: answer}`` of a report in the template's layout.

    A question starts at a heading ``## Q<n>. ...``; its answer is the text up to the next ``## `` heading,
    without the quoted question (lines starting with ``>``) and without HTML comments.
    """
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    answers = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^##\s+(Q\d+)\b", line)
        if heading:
            current = heading.group(1)
            answers[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None and not line.lstrip().startswith(">"):
            answers[current].append(line)
    return {q: "\n".join(lines).strip() for q, lines in answers.items()}


def unanswered(text: str) -> list[str]:
    answers = report_answers(text)
    return [q for q in QUESTIONS if len(answers.get(q, "").split()) < MIN_ANSWER_WORDS]


def png_text_chunks(path: Path) -> dict[str, str]:
    """The ``tEXt`` entries of a PNG file; ``ValueError`` when it is not a PNG."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("it does not start with the PNG signature")
    chunks, offset = {}, 8
    seen_image = False
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if len(body) != length:
            raise ValueError("it is truncated")
        if kind == b"tEXt" and b"\x00" in body:
            key, value = body.split(b"\x00", 1)
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        seen_image |= kind == b"IDAT"
        offset += 12 + length
        if kind == b"IEND":
            break
    else:
        raise ValueError("it has no IEND chunk (truncated?)")
    if not seen_image:
        raise ValueError("it holds no image data")
    return chunks


def same_data(a, b, rel: float = 1e-9) -> bool:
    """Equal JSON values, floats compared with a relative tolerance."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_data(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_data(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b
