"""What train.py, sweep.py, plots.py and the tests share: one training run, the results file, the grid.

You do not need to change anything here. The pieces:

* :class:`RunConfig`: one configuration (network, optimiser, schedule, budget). With a seed it names a run.
* :func:`train_run`: train one configuration with one seed on in-memory MNIST and return the row that is
  stored in the results file. It is deterministic: the same configuration, seed and data give the same
  numbers on the same machine (it pins torch to one thread while it runs).
* :func:`read_results` / :func:`append_row` / :func:`check_row`: the results file, JSON lines
  (``results.jsonl``: one JSON object per line, one line per run).
* :func:`load_grid`: the runs that ``grid.toml`` asks for; :func:`choose_runs`: the ones the grader re-runs.

A row of ``results.jsonl`` looks like this (one line in the file; wrapped here)::

    {"schema": "analysis-run/1",
     "config": {"activation": "relu", "depth": 2, "width": 50, "batchnorm": false, "dropout": 0.0,
                "init": "default", "optimizer": "adam", "lr": 0.001, "scheduler": "none", "epochs": 1,
                "batch_size": 128, "train_size": 0, "val_size": 500},
     "seed": 0,
     "history": [{"epoch": 1, "lr": 0.001, "train_loss": 0.41, "train_acc": 0.88,
                  "val_loss": 0.22, "val_acc": 0.93}],
     "test_loss": 0.21, "test_acc": 0.94, "parameters": 42310, "seconds": 1.9,
     "versions": {"python": "3.12.3", "torch": "2.4.0"}}

``history`` has one entry per epoch: ``lr`` is the learning rate after the epoch's last step, the train
loss and accuracy are averaged over the epoch's batches (in train mode), the validation ones are measured
after the epoch (in eval mode) on the ``val_size`` held-out training images.

torch is imported only when data are loaded or a run trains: reading the grid and the results file
(``plots.py``, the grader's plan of checks) does not need it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from mnistkit._toml import tomllib

if TYPE_CHECKING:
    import torch

SCHEMA = "analysis-run/1"
RESULTS_FILE = "results.jsonl"
GRID_FILE = "grid.toml"
SPLIT_SEED = 0  # the validation images are the same for every run
EXPONENTIAL_FINAL = 0.01  # the exponential schedule ends at 1% of the initial learning rate
OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULERS = ("none", "exponential", "cosine")
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
MNIST_TRAIN_SIZE = 60_000


@dataclass(frozen=True)
class RunConfig:
    """One configuration of the analysis; the defaults are those of ``python train.py``."""

    activation: str = "relu"
    depth: int = 2
    width: int = 50
    batchnorm: bool = False
    dropout: float = 0.0
    init: str = "default"
    optimizer: str = "adam"
    lr: float = 0.001
    scheduler: str = "none"
    epochs: int = 1
    batch_size: int = 128
    train_size: int = 0  # train on the first N of the non-validation images; 0 = all of them
    val_size: int = 500

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        """Build a config from a dict, checking names and types; ``ValueError`` says what is wrong."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ValueError(f"unknown configuration key(s) {unknown}; known: {sorted(fields)}")
        values = {}
        for name, value in raw.items():
            kind = type(fields[name].default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not kind:
                raise ValueError(f"configuration {name!r} must be {kind.__name__}, got {value!r}")
            values[name] = value
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1 or self.train_size < 0 or self.val_size < 1:
            raise ValueError("epochs, batch_size and val_size must be >= 1 and train_size >= 0")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_key(config: RunConfig | dict, seed: int) -> str:
    """The identity of a run: its configuration and seed as one canonical string."""
    raw = config.as_dict() if isinstance(config, RunConfig) else dict(config)
    return json.dumps({**raw, "seed": seed}, sort_keys=True)


# --------------------------------------------------------------------------------------------- data
def load_data(data_dir=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 60,000 training and the 10,000 test images, normalised ``(N, 1, 28, 28)``, with their labels."""
    from mnistkit.data import load_mnist, normalize

    train_images, train_labels = load_mnist(train=True, data_dir=data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=data_dir)
    return normalize(train_images), train_labels.long(), normalize(test_images), test_labels.long()


def split(images: torch.Tensor, labels: torch.Tensor, val_size: int, train_size: int = 0):
    """Hold out ``val_size`` training images for validation, always the same ones.

    A fixed random permutation (seed ``SPLIT_SEED``) of the training images is cut in two: its first
    ``val_size`` images are the validation set, the rest the training set, of which only the first
    ``train_size`` are kept when ``train_size`` is not 0. Returns ``(train_x, train_y, val_x, val_y)``.
    """
    import torch

    if val_size >= len(labels):
        raise ValueError(f"val_size {val_size} leaves no training images out of {len(labels)}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_index, train_index = order[:val_size], order[val_size:]
    if train_size:
        train_index = train_index[:train_size]
    return images[train_index], labels[train_index], images[val_index], labels[val_index]


# --------------------------------------------------------------------------------------------- training
def make_optimizer(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    """``sgd`` (plain, no momentum), ``adam`` or ``rmsprop``, each with PyTorch's other defaults."""
    import torch

    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    """A schedule stepped after every optimisation step, over ``total_steps`` steps in all.

    * ``none``: the learning rate stays at its initial value.
    * ``exponential``: multiplied by the same factor ``gamma`` after every step, chosen so that after the
      last step it is ``EXPONENTIAL_FINAL`` (1%) of the initial value (``ExponentialLR``).
    * ``cosine``: follows half a cosine from the initial value down to 0 at the last step
      (``CosineAnnealingLR`` with ``T_max = total_steps``).
    """
    import torch

    if name == "none":
        return None
    if name == "exponential":
        gamma = EXPONENTIAL_FINAL ** (1.0 / total_steps)
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {name!r}")


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` in eval mode on ``images`` and ``labels``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss_sum = 0.0
    correct = 0
    with torch.no_grad():
        for chunk in range(0, len(labels), batch_size):
            x = images[chunk : chunk + batch_size]
            y = labels[chunk : chunk + batch_size]
            log_probs = F.log_softmax(model(x), dim=1)
            loss_sum += F.nll_loss(log_probs, y, reduction="sum").item()
            correct += (log_probs.argmax(dim=1) == y).sum().item()
    return loss_sum / len(labels), correct / len(labels)


def default_builder() -> Callable:
    from analysis import build_mlp  # your analysis.py, imported when the first run starts

    return build_mlp


def train_run(
    config: RunConfig,
    seed: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    test_images: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
    *,
    build: Callable | None = None,
    progress: bool = False,
    threads: int = 1,
) -> dict:
    """Train ``config`` with ``seed`` and return its results row (see the module docstring).

    Args:
        config: the configuration.
        seed: seeds the weight initialisation, dropout and the order of the batches.
        images, labels: the 60,000 normalised training images and labels; :func:`split` takes the
            validation images out of them.
        test_images, test_labels: the test set; ``test_loss`` and ``test_acc`` are ``None`` without it.
        build: the network builder, ``build_mlp`` of your ``analysis.py`` unless given.
        progress: show a progress bar over the optimisation steps.
        threads: torch threads during the run (1 keeps the numbers identical from run to run).
    """
    import torch
    import torch.nn.functional as F

    from mnistkit.data import batches
    from mnistkit.train import seed_everything

    config.validate()
    build = build or default_builder()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        train_x, train_y, val_x, val_y = split(images, labels, config.val_size, config.train_size)
        generator = seed_everything(seed)
        model = build(config.depth, config.width, config.activation, batchnorm=config.batchnorm,
                      dropout=config.dropout, init=config.init)
        optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
        steps_per_epoch = -(-len(train_y) // config.batch_size)
        scheduler = make_scheduler(config.scheduler, optimizer, config.epochs * steps_per_epoch)
        bar = _bar(config.epochs * steps_per_epoch, progress)
        history = []
        for epoch in range(1, config.epochs + 1):
            model.train()
            loss_sum = 0.0
            correct = 0
            for index in batches(len(train_y), config.batch_size, shuffle=True, generator=generator):
                x, y = train_x[index], train_y[index]
                optimizer.zero_grad(set_to_none=True)
                log_probs = F.log_softmax(model(x), dim=1)
                loss = F.nll_loss(log_probs, y)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                loss_sum += loss.item() * len(y)
                correct += (log_probs.argmax(dim=1) == y).sum().item()
                bar.update(1)
            val_loss, val_acc = evaluate(model, val_x, val_y)
            history.append({
                "epoch": epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": loss_sum / len(train_y),
                "train_acc": correct / len(train_y),
                "val_loss": val_loss,
                "val_acc": val_acc,
            })
            bar.set_postfix(train_loss=f"{history[-1]['train_loss']:.4f}", val_acc=f"{val_acc:.2%}")
        bar.close()
        test_loss = test_acc = None
        if test_images is not None and test_labels is not None:
            test_loss, test_acc = evaluate(model, test_images, test_labels)
        parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "schema": SCHEMA,
        "config": config.as_dict(),
        "seed": seed,
        "history": history,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "parameters": parameters,
        "seconds": round(time.perf_counter() - start, 3),
        "versions": {"python": platform.python_version(), "torch": torch.__version__.split("+")[0]},
    }


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="training", leave=False)


# --------------------------------------------------------------------------------------------- results file
def check_row(row) -> list[str]:
    """Everything wrong with one results row (empty when it is valid)."""
    if not isinstance(row, dict):
        return [f"a row must be a JSON object, got {type(row).__name__}"]
    problems = []
    if row.get("schema") != SCHEMA:
        problems.append(f"schema must be {SCHEMA!r}, got {row.get('schema')!r}")
    try:
        config = RunConfig.from_dict(row.get("config"))
    except (ValueError, TypeError) as err:
        return problems + [f"config: {err}"]
    missing = sorted(f.name for f in dataclasses.fields(RunConfig) if f.name not in row["config"])
    if missing:
        problems.append(f"config lacks {missing}")
    if type(row.get("seed")) is not int:
        problems.append(f"seed must be an integer, got {row.get('seed')!r}")
    history = row.get("history")
    if not isinstance(history, list) or len(history) != config.epochs:
        problems.append(f"history must list {config.epochs} epoch(s), got {_short(history)}")
        history = []
    for number, entry in enumerate(history, start=1):
        if not isinstance(entry, dict) or sorted(entry) != sorted(HISTORY_FIELDS):
            problems.append(f"history[{number - 1}] must have exactly the keys {list(HISTORY_FIELDS)}")
            continue
        if entry["epoch"] != number:
            problems.append(f"history[{number - 1}]['epoch'] must be {number}, got {entry['epoch']!r}")
        for name in ("lr", "train_loss", "val_loss"):
            if not _finite(entry[name]) or entry[name] < 0:
                problems.append(f"epoch {number}: {name} must be a finite number >= 0, got {entry[name]!r}")
        for name in ("train_acc", "val_acc"):
            if not _finite(entry[name]) or not 0.0 <= entry[name] <= 1.0:
                problems.append(f"epoch {number}: {name} must be a fraction in [0, 1], got {entry[name]!r}")
    if not _finite(row.get("test_acc")) or not 0.0 <= row["test_acc"] <= 1.0:
        problems.append(f"test_acc must be a fraction in [0, 1], got {row.get('test_acc')!r}")
    if not _finite(row.get("test_loss")) or row["test_loss"] < 0:
        problems.append(f"test_loss must be a finite number >= 0, got {row.get('test_loss')!r}")
    if type(row.get("parameters")) is not int or row["parameters"] < 1:
        problems.append(f"parameters must be a positive integer, got {row.get('parameters')!r}")
    if not _finite(row.get("seconds")) or row["seconds"] < 0:
        problems.append(f"seconds must be a number >= 0, got {row.get('seconds')!r}")
    return problems


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def read_results(path: str | os.PathLike = RESULTS_FILE) -> tuple[list[dict], list[tuple[int, str]]]:
    """Read a results file: ``(rows, bad)``, where ``bad`` lists ``(line number, problem)`` of the lines
    that are not valid rows (a run killed while it wrote its line leaves one). A missing file is empty."""
    rows, bad = [], []
    path = Path(path)
    if not path.is_file():
        return rows, bad
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append((number, f"not valid JSON ({err.msg})"))
                continue
            problems = check_row(row)
            if problems:
                bad.append((number, "; ".join(problems)))
            else:
                rows.append(row)
    return rows, bad


def latest_rows(rows: Iterable[dict]) -> dict[str, dict]:
    """Rows by :func:`run_key`; when a run appears more than once, its last row counts."""
    return {run_key(row["config"], row["seed"]): row for row in rows}


def append_row(row: dict, path: str | os.PathLike = RESULTS_FILE) -> None:
    """Append one row as one line, flushed to disk at once (an interrupted sweep keeps finished runs)."""
    path = Path(path)
    text = json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n"
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # a line cut short by an interrupted write: start a new one
                text = "\n" + text
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


# --------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Study:
    """One study of ``grid.toml``: the axes it varies, its fixed settings, its seeds and its runs."""

    name: str
    title: str
    axes: dict  # name -> list of values, in the file's order
    runs: tuple  # ((RunConfig, seed), ...)


def load_grid(path: str | os.PathLike = GRID_FILE) -> dict[str, Study]:
    """The studies of a grid file, each expanded to its runs.

    ``[defaults]`` holds a value for every configuration key and ``seeds``. Each ``[studies.<name>]``
    overrides some of them; a key given a list is an axis, and the study runs every combination of its
    axes with every seed.
    """
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    defaults = dict(raw.get("defaults", {}))
    default_seeds = defaults.pop("seeds", [0])
    studies = {}
    for name, table in raw.get("studies", {}).items():
        table = dict(table)
        title = table.pop("title", name)
        seeds = table.pop("seeds", default_seeds)
        axes = {k: v for k, v in table.items() if isinstance(v, list)}
        fixed = {**defaults, **{k: v for k, v in table.items() if not isinstance(v, list)}}
        runs = []
        for values in product(*axes.values()):
            config = RunConfig.from_dict({**fixed, **dict(zip(axes, values))})
            runs.extend((config, seed) for seed in seeds)
        studies[name] = Study(name, title, axes, tuple(runs))
    return studies


def grid_runs(studies: dict[str, Study]) -> list[tuple[RunConfig, int]]:
    """Every run of the grid once, in the order of the file (a run shared by two studies runs once)."""
    seen, runs = set(), []
    for study in studies.values():
        for config, seed in study.runs:
            key = run_key(config, seed)
            if key not in seen:
                seen.add(key)
                runs.append((config, seed))
    return runs


def rerun_candidates(studies: dict[str, Study]) -> list[tuple[RunConfig, int]]:
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


def choose_runs(studies: dict[str, Study], count: int, salt: str) -> list[tuple[RunConfig, int]]:
    """``count`` of the :func:`rerun_candidates` picked at random, reproducibly from ``salt``."""
    candidates = {run_key(c, s): (c, s) for c, s in rerun_candidates(studies)}
    keys = sorted(candidates)
    rng = random.Random(hashlib.sha256(salt.encode("utf-8")).hexdigest())
    return [candidates[k] for k in rng.sample(keys, min(count, len(keys)))]
