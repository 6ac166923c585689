"""The kit's one training loop, on whole tensors: the grader's fixed-budget training and the analysis runs.

The data are already in memory as one tensor, so an epoch is a loop over index slices: no
``DataLoader``, no per-sample transform. The loss is ``nll_loss(log_softmax(output))``, which is right
both for networks that return log-probabilities and for networks that return raw scores.

* :func:`train_loop`: the loop itself. An optimiser by name, a learning-rate schedule stepped after every
  optimisation step, a budget in epochs (fractional: the last one stops part-way), a history of one
  :class:`EpochStats` per epoch with an ``on_epoch`` callback (the analysis validates there), a progress bar.
* :func:`fit`: the grader's training with a :class:`Budget` (Adam, one-cycle or constant schedule), used by
  the accuracy checks; :func:`grader_budget` reads an accuracy check's budget from assignment.toml and
  :func:`train_as_grader` trains and judges a network with it (``python train.py --grader-budget``).
* :func:`evaluate` (mean loss and accuracy) and :func:`predict` (classes), in eval mode.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._toml import tomllib
from .data import batches, normalize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """A fixed training budget: the same for every submission of an assignment."""

    epochs: float = field(default=1.0, metadata={"help": "passes over the training images (may be fractional)"})
    batch_size: int = field(default=128, metadata={"help": "images per optimisation step"})
    lr: float = field(default=3e-3, metadata={"help": "peak learning rate of Adam"})
    schedule: str = field(default="onecycle", metadata={"help": "'onecycle' or 'constant'"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam's L2 penalty"})
    subset: int | None = field(default=None, metadata={"help": "train on the first N images only"})


# The keys of an ``[accuracy.<check>]`` table of assignment.toml that set the grader's budget (the rest of
# Budget keeps its defaults: Adam with a one-cycle schedule, no weight decay). autograder/config.py's
# AccuracyCheck accepts exactly these besides threshold, description and measured.
BUDGET_KEYS = ("epochs", "batch_size", "lr", "subset")


def budget_of(check: dict) -> Budget:
    """The :class:`Budget` of one ``[accuracy.<check>]`` table of assignment.toml (a dict as read by tomllib)."""
    return Budget(**{k: check[k] for k in BUDGET_KEYS if k in check})


def grader_budget(check: str = "trained", path: str = "assignment.toml") -> tuple[Budget, float]:
    """The grader's fixed budget from ``[accuracy.<check>]`` of the assignment.toml at ``path``, and its threshold."""
    with open(path, "rb") as handle:
        config = tomllib.load(handle)["accuracy"][check]
    return budget_of(config), float(config["threshold"])


OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "onecycle", "exponential", "cosine")  # "none" is a synonym of "constant"
EXPONENTIAL_FINAL = 0.01  # the exponential schedule ends at 1% of the initial learning rate


@dataclass
class EpochStats:
    """One epoch of :func:`train_loop`: training loss and accuracy averaged over its batches (train mode)."""

    epoch: int
    loss: float
    accuracy: float
    seconds: float
    lr: float = 0.0  # the learning rate after the epoch's last step
    metrics: dict = field(default_factory=dict)  # what ``on_epoch`` returned (e.g. validation loss and accuracy)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global generator (weight init, dropout) and return a generator for shuffling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_optimizer(name: str, parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``sgd`` (plain, no momentum), ``adam`` or ``rmsprop``, each with PyTorch's other defaults."""
    kinds = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    if name not in kinds:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return kinds[name](parameters, lr=lr, weight_decay=weight_decay)


def make_schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    """A learning-rate schedule stepped after every optimisation step, over ``total_steps`` steps in all.

    * ``constant`` (or ``none``): no schedule, the learning rate stays at the optimiser's (returns None).
    * ``onecycle``: up from lr/25 to the optimiser's lr and down to almost 0 (``OneCycleLR``).
    * ``exponential``: multiplied by the same factor after every step, so that after the last step it is
      ``EXPONENTIAL_FINAL`` (1%) of the initial value (``ExponentialLR``).
    * ``cosine``: half a cosine from the initial value down to 0 at the last step (``CosineAnnealingLR``).
    """
    schedules = torch.optim.lr_scheduler
    if name in ("constant", "none"):
        return None
    if name == "onecycle":
        return schedules.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"], total_steps=total_steps)
    if name == "exponential":
        return schedules.ExponentialLR(optimizer, gamma=EXPONENTIAL_FINAL ** (1.0 / total_steps))
    if name == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=total_steps)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


def train_loop(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    lr: float,
    generator: torch.Generator,
    optimizer: str = "adam",
    schedule: str = "constant",
    epochs: float = 1.0,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[EpochStats], dict | None] | None = None,
    progress: bool = False,
) -> list[EpochStats]:
    """Train ``model`` in place on ``images`` and ``labels`` ``(N,)`` and return one :class:`EpochStats` per epoch.

    ``images`` are MNIST's own ``uint8`` ``(N, 28, 28)`` (normalised one batch at a time) or already
    normalised ``float32`` ``(N, 1, 28, 28)``, on ``device``. Every epoch visits the images in a new
    random order drawn from ``generator``; dropout draws from torch's global generator, so seed both first
    (:func:`seed_everything`). ``epochs`` passes over the data make ``round(epochs * batches per epoch)``
    optimisation steps (at least one), the last epoch stopping part-way when ``epochs`` is fractional;
    ``schedule`` (:func:`make_schedule`) spans them all. After each epoch ``on_epoch(stats)`` may return a
    dict of more numbers (the model is in whatever mode it left it): they go to ``stats.metrics`` and the
    progress bar, and the next epoch puts the model back in train mode.
    """
    device = torch.device(device)
    model.to(device)
    n = len(labels)
    total_steps = max(1, round(epochs * -(-n // batch_size)))
    optim = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    scheduler = make_schedule(schedule, optim, total_steps)

    history: list[EpochStats] = []
    step = 0
    bar = _progress_bar(total_steps, progress)
    while step < total_steps:
        model.train()
        start = time.perf_counter()
        losses, sizes = [], []
        correct = torch.zeros((), dtype=torch.long, device=device)
        for index in batches(n, batch_size, shuffle=True, generator=generator):
            if step == total_steps:
                break
            index = index.to(device)
            x = as_input(images[index])
            y = labels[index]
            optim.zero_grad(set_to_none=True)
            log_probs = F.log_softmax(model(x), dim=1)
            loss = F.nll_loss(log_probs, y)
            loss.backward()
            optim.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())  # no .item() per step: the GPU keeps going
            sizes.append(len(y))
            correct += (log_probs.argmax(dim=1) == y).sum()
            step += 1
            bar.update(1)
        seen = sum(sizes)
        loss_sum = sum(value * size for value, size in zip(torch.stack(losses).tolist(), sizes))  # in float64
        stats = EpochStats(len(history) + 1, loss_sum / seen, correct.item() / seen, 0.0, optim.param_groups[0]["lr"])
        stats.metrics = dict((on_epoch(stats) if on_epoch else None) or {})
        stats.seconds = time.perf_counter() - start
        bar.set_postfix(loss=f"{stats.loss:.4f}", acc=f"{stats.accuracy:.2%}",
                        **{k: f"{v:.2%}" if k.endswith("acc") else f"{v:.4f}" for k, v in stats.metrics.items()})
        log.info("epoch %d: loss %.4f, accuracy %.2f%% (%.1f s) %s", stats.epoch, stats.loss, 100 * stats.accuracy,
                 stats.seconds, stats.metrics or "")
        history.append(stats)
    bar.close()
    return history


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    budget: Budget,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[EpochStats]:
    """Train ``model`` in place with Adam and the fixed ``budget`` (the grader's training), seeded by ``seed``.

    ``images`` and ``labels`` as :func:`train_loop` takes them (on any device: they are moved to ``device``).
    Returns one :class:`EpochStats` per epoch (mean training loss and accuracy over that epoch).
    """
    if budget.schedule not in ("onecycle", "constant"):
        raise ValueError(f"unknown schedule {budget.schedule!r}; use 'onecycle' or 'constant'")
    if budget.subset is not None:
        images, labels = images[: budget.subset], labels[: budget.subset]
    generator = seed_everything(seed)
    return train_loop(model, images.to(device), labels.to(device), lr=budget.lr, generator=generator,
                      optimizer="adam", schedule=budget.schedule, epochs=budget.epochs, batch_size=budget.batch_size,
                      weight_decay=budget.weight_decay, device=device, progress=progress)


def as_input(images: torch.Tensor) -> torch.Tensor:
    """A batch as networks take it: ``uint8`` ``(B, 28, 28)`` is normalised to ``float32`` ``(B, 1, 28, 28)``."""
    return normalize(images) if images.dtype == torch.uint8 else images


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, *, device: torch.device | str = "cpu", batch_size: int = 1000
) -> torch.Tensor:
    """Predicted class ``(N,)`` (``int64``, on the CPU) for ``images`` (as :func:`fit` takes them), in eval mode."""
    device = torch.device(device)
    model.to(device)
    model.eval()
    out = [model(as_input(chunk.to(device))).argmax(dim=1).cpu() for chunk in images.split(batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, device: torch.device | str = "cpu",
    batch_size: int = 1000,
) -> tuple[float, float]:
    """Mean loss (``nll_loss`` of ``log_softmax``) and accuracy of ``model`` in eval mode on ``images``
    (as :func:`train_loop` takes them) and ``labels``."""
    device = torch.device(device)
    model.to(device)
    model.eval()
    loss_sum = 0.0
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = as_input(images[start : start + batch_size].to(device))
        y = labels[start : start + batch_size].to(device)
        log_probs = F.log_softmax(model(x), dim=1)
        loss_sum += F.nll_loss(log_probs, y, reduction="sum").item()
        correct += (log_probs.argmax(dim=1) == y).sum().item()
    return loss_sum / len(labels), correct / len(labels)


def train_as_grader(
    model: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    check: str = "trained",
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
) -> float:
    """Train ``model`` exactly as the grader does and judge it (``python train.py --grader-budget``).

    The grader never runs your module: it exports it (:mod:`mnistkit.graph`), gives its layers fresh
    initial values (``reinitialise``, seed 0), trains that graph with the budget of ``[accuracy.<check>]``
    in ./assignment.toml (seed 0) and predicts the test images. ``train_images``/``test_images`` are
    ``uint8`` ``(N, 28, 28)`` or normalised ``(N, 1, 28, 28)``, the labels ``(N,)``; ``batch_size`` is the
    batch of :func:`predict`. Prints the budget, then the test accuracy next to the threshold and the
    seconds taken; returns the accuracy.
    """
    from .graph import ExportSpec, export_network, network_from, reinitialise

    budget, threshold = grader_budget(check)
    print(f"training as the grader does: {budget}")
    start = time.perf_counter()
    description, tensors = export_network(model.cpu(), ExportSpec({"image": ((1, 28, 28), "float32")}))
    if description["errors"]:
        raise RuntimeError("the grader could not export your Net: " + "; ".join(description["errors"].values()))
    net = network_from(description, tensors)
    reinitialise(net, seed=0)
    fit(net, train_images, train_labels, budget=budget, seed=0, device=device, progress=True)
    got = accuracy(predict(net, test_images, device=device, batch_size=batch_size), test_labels)
    verdict = "pass" if got >= threshold else "below"
    print(f"test accuracy {got:.2%} ({verdict} the threshold {threshold:.2%}), "
          f"{time.perf_counter() - start:.1f} s")
    return got


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``predictions`` equal to ``labels`` (both ``(N,)``)."""
    if predictions.shape != labels.shape:
        raise ValueError(f"expected {tuple(labels.shape)} predictions, got {tuple(predictions.shape)}")
    return (predictions == labels).double().mean().item()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: object) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="training", leave=False)
