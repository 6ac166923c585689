"""Fast training and prediction on whole tensors (the grader's training loop, shared with handouts).

The data are already in memory as one normalised tensor, so an epoch is a loop over index slices: no
``DataLoader``, no per-sample transform. The loss is ``nll_loss(log_softmax(output))``, which is right
both for networks that return log-probabilities and for networks that return raw scores.

:func:`grader_budget` reads the grader's fixed budget of an accuracy check from assignment.toml, and
:func:`train_as_grader` trains and judges a network with it (``python train.py --grader-budget``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

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


@dataclass
class EpochStats:
    epoch: int
    loss: float
    accuracy: float
    seconds: float


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global generator (weight init, dropout) and return a generator for shuffling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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
    """Train ``model`` in place with Adam on ``images`` and ``labels`` ``(N,)``.

    ``images`` are MNIST's own ``uint8`` ``(N, 28, 28)`` (normalised one batch at a time, so the data set
    stays at a quarter of the memory) or already normalised ``float32`` ``(N, 1, 28, 28)``. Returns one
    :class:`EpochStats` per epoch (mean training loss and accuracy over that epoch).
    """
    device = torch.device(device)
    if budget.subset is not None:
        images, labels = images[: budget.subset], labels[: budget.subset]
    generator = seed_everything(seed)
    images = images.to(device)
    labels = labels.to(device)
    model.to(device)
    n = len(labels)
    steps_per_epoch = -(-n // budget.batch_size)
    total_steps = max(1, round(budget.epochs * steps_per_epoch))
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    scheduler = None
    if budget.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=budget.lr, total_steps=total_steps)
    elif budget.schedule != "constant":
        raise ValueError(f"unknown schedule {budget.schedule!r}; use 'onecycle' or 'constant'")

    history: list[EpochStats] = []
    step = 0
    epoch = 0
    bar = _progress_bar(total_steps, progress)
    while step < total_steps:
        epoch += 1
        model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for index in batches(n, budget.batch_size, shuffle=True, generator=generator):
            if step == total_steps:
                break
            index = index.to(device)
            x = as_input(images[index])
            y = labels[index]
            optimizer.zero_grad(set_to_none=True)
            log_probs = F.log_softmax(model(x), dim=1)
            loss = F.nll_loss(log_probs, y)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (log_probs.argmax(dim=1) == y).sum()
            seen += len(y)
            step += 1
            bar.update(1)
        stats = EpochStats(epoch, loss_sum.item() / seen, correct.item() / seen, time.perf_counter() - start)
        bar.set_postfix(loss=f"{stats.loss:.4f}", acc=f"{stats.accuracy:.2%}")
        log.info("epoch %d: loss %.4f, accuracy %.2f%% (%.1f s)", epoch, stats.loss, 100 * stats.accuracy, stats.seconds)
        history.append(stats)
    bar.close()
    return history


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
