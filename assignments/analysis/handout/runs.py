"""What train.py, sweep.py and plots.py share: one training run, the results file, the grid.

You do not need to change anything here. The pieces:

* :class:`RunConfig`: one configuration (network, optimiser, schedule, budget). With a seed it names a run.
* :func:`train_run`: train one configuration with one seed on in-memory MNIST and return the row that is
  stored in the results file. The training loop is the kit's (``mnistkit.train.train_loop``, the one the
  grader trains with too). It is deterministic: the same configuration, seed and data give the same
  numbers on the same machine (it pins torch to one thread while it runs).
* :func:`read_results` / :func:`append_row`: the results file, JSON lines (``results.jsonl``: one JSON
  object per line, one line per run).
* :func:`load_grid` / :func:`grid_runs`: the runs that ``grid.toml`` asks for.

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

torch is imported only when data are loaded or a run trains: reading the grid and the results file does
not need it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from mnistkit._toml import tomllib
from mnistkit.jsonl import read_rows

SCHEMA = "analysis-run/1"
RESULTS_FILE = "results.jsonl"
GRID_FILE = "grid.toml"
SPLIT_SEED = 0  # the validation images are the same for every run
OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULERS = ("none", "exponential", "cosine")
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")


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
        if not isinstance(raw, dict):
            raise ValueError(f"a configuration must be a JSON object, got {raw!r}")
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


# --------------------------------------------------------------------------------------------- training
def load_data(data_dir=None):
    """The 60,000 training and the 10,000 test images with their labels.

    The images stay MNIST's own ``uint8`` ``(N, 28, 28)`` (47 MB instead of 188 MB as ``float32``): the
    training loop and :func:`mnistkit.train.evaluate` normalise one batch at a time, to the same numbers.
    """
    from mnistkit.data import load_mnist

    train_images, train_labels = load_mnist(train=True, data_dir=data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=data_dir)
    return train_images, train_labels.long(), test_images, test_labels.long()


def split(images, labels, val_size: int, train_size: int = 0):
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


def train_run(config: RunConfig, seed: int, images, labels, test_images=None, test_labels=None, *,
              build=None, progress: bool = False, threads: int = 1) -> dict:
    """Train ``config`` with ``seed`` and return its results row (see the module docstring).

    Args:
        config: the configuration.
        seed: seeds the weight initialisation, dropout and the order of the batches.
        images, labels: the 60,000 training images (``uint8``, as :func:`load_data` returns them, or
            normalised) and labels; :func:`split` takes the validation images out of them.
        test_images, test_labels: the test set; ``test_loss`` and ``test_acc`` are ``None`` without it.
        build: the network builder, ``build_mlp`` of your ``analysis.py`` unless given.
        progress: show a progress bar over the optimisation steps.
        threads: torch threads during the run (1 keeps the numbers identical from run to run).
    """
    import torch

    from mnistkit.train import evaluate, seed_everything, train_loop

    config.validate()
    if build is None:
        from analysis import build_mlp as build  # your analysis.py
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        train_x, train_y, val_x, val_y = split(images, labels, config.val_size, config.train_size)
        generator = seed_everything(seed)
        model = build(config.depth, config.width, config.activation, batchnorm=config.batchnorm,
                      dropout=config.dropout, init=config.init)

        def validate(stats):
            val_loss, val_acc = evaluate(model, val_x, val_y)
            return {"val_loss": val_loss, "val_acc": val_acc}

        epochs = train_loop(model, train_x, train_y, lr=config.lr, generator=generator, optimizer=config.optimizer,
                            schedule=config.scheduler, epochs=config.epochs, batch_size=config.batch_size,
                            on_epoch=validate, progress=progress)
        history = [{"epoch": e.epoch, "lr": e.lr, "train_loss": e.loss, "train_acc": e.accuracy, **e.metrics}
                   for e in epochs]
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


# --------------------------------------------------------------------------------------------- results file
def _unusable(row) -> str | None:
    """Why a line's JSON value is not a row the scripts can use (``None`` when it is one)."""
    if not isinstance(row, dict):
        return "not a JSON object"
    try:
        RunConfig.from_dict(row.get("config"))
    except ValueError as err:
        return f"config: {err}"
    history = row.get("history")
    if (type(row.get("seed")) is not int or not isinstance(history, list) or not history
            or not all(isinstance(e, dict) and all(_number(e.get(k)) for k in HISTORY_FIELDS) for e in history)
            or not _number(row.get("test_acc"))):
        return "not a row as train.py writes it (its seed, history or test_acc is missing)"
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_results(path: str | os.PathLike = RESULTS_FILE) -> tuple[list[dict], list[tuple[int, str]]]:
    """Read a results file: ``(rows, bad)``, where ``bad`` lists ``(line number, problem)`` of the lines
    that are not rows (a run killed while it wrote its line leaves one). A missing file is empty."""
    return read_rows(path, _unusable)


def latest_rows(rows) -> dict[str, dict]:
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
