"""Checks shared by the assignment tests, with messages a student can act on.

Every check says what was expected and what was got, in the student's terms (layer, shape, formula),
and never reveals a reference value that is not already part of the assignment's contract.
"""
from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pytest
import torch
from torch import nn


def import_student(name: str):
    """Import the student's module ``name`` (``name.py`` in the handout folder) or fail with a clear message.

    Exceptions raised while importing (a syntax error, a missing package, code that crashes at import)
    become one test failure that names the file and line, instead of a traceback into pytest.
    """
    try:
        if name in sys.modules:
            return sys.modules[name]
        return importlib.import_module(name)
    except SyntaxError as err:
        message = f"{name}.py has a syntax error at line {err.lineno}: {err.msg}"
    except ModuleNotFoundError as err:
        if err.name == name:
            message = f"{name}.py was not found: the file must be named exactly {name}.py"
        else:
            message = f"importing {name}.py failed: {err}"
    except (KeyboardInterrupt, pytest.fail.Exception):
        raise
    except BaseException as err:  # noqa: BLE001 - anything a student module raises at import, SystemExit too
        message = f"importing {name}.py raised {type(err).__name__}: {err}{where(err)}"
    pytest.fail(message, pytrace=False)


def where(err: BaseException) -> str:
    """`` (at file.py:LINE in func)`` for the innermost frame of ``err`` in a student's file, or ``''``."""
    frames = traceback.extract_tb(err.__traceback__)
    here = Path.cwd().resolve()
    for frame in reversed(frames):
        path = Path(frame.filename)
        try:
            inside = path.resolve().parent == here
        except OSError:
            inside = False
        if inside and not path.name.startswith(("test_", "conftest")):
            return f" (at {path.name}:{frame.lineno} in {frame.name})"
    return ""


def call_student(what: str, fn: Callable, *args, **kwargs):
    """Call student code; turn an exception into a failure that says what was being done and where."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        message = f"{what}: not written yet (NotImplementedError: {err})"
    except (KeyboardInterrupt, pytest.fail.Exception):
        raise
    except Exception as err:  # noqa: BLE001
        message = f"{what} raised {type(err).__name__}: {err}{where(err)}"
    pytest.fail(message, pytrace=False)


def require_tensor(value, what: str) -> None:
    """Fail unless ``value`` is a plain ``torch.Tensor`` (or ``numpy.ndarray``), not a look-alike.

    A subclass could redefine ``shape`` or ``__eq__`` to agree with anything; real tensors cannot.
    """
    if type(value) not in (torch.Tensor, nn.Parameter, np.ndarray):
        pytest.fail(f"{what}: expected a torch.Tensor, got {type(value).__name__}", pytrace=False)


def assert_shape(tensor, expected: Sequence[int], what: str) -> None:
    """Fail with ``"<what>: expected shape (64, 10), got (64, 50)"`` unless ``tensor`` has ``expected`` shape."""
    require_tensor(tensor, what)
    actual = tuple(int(n) for n in tensor.shape)
    if actual != tuple(expected):
        pytest.fail(f"{what}: expected shape {tuple(expected)}, got {actual}", pytrace=False)


def assert_dtype(tensor, expected: torch.dtype, what: str) -> None:
    require_tensor(tensor, what)
    if tensor.dtype != expected:
        pytest.fail(f"{what}: expected dtype {expected}, got {tensor.dtype}", pytrace=False)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def assert_parameter_count(model: nn.Module, expected: int, hint: str = "") -> None:
    actual = count_parameters(model)
    if actual != expected:
        detail = {name: tuple(p.shape) for name, p in model.named_parameters()}
        pytest.fail(
            f"expected {expected:,} trainable parameters, got {actual:,}. Your parameters: {detail}. {hint}".strip(),
            pytrace=False,
        )


def assert_gradients_flow(model: nn.Module, loss: torch.Tensor) -> None:
    """Backpropagate ``loss`` and require a finite, non-zero gradient on every parameter."""
    model.zero_grad(set_to_none=True)
    call_student("loss.backward()", loss.backward)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        pytest.fail(f"no gradient reached {missing}: are these layers used in forward()?", pytrace=False)
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p.grad).all()]
    if bad:
        pytest.fail(f"non-finite (NaN or inf) gradient in {bad}", pytrace=False)
    zero = [n for n, p in model.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0]
    if zero:
        pytest.fail(f"the gradient of {zero} is exactly zero: is something detached or multiplied by 0?", pytrace=False)


def assert_runs_on_device(model_factory: Callable[[], nn.Module], example: torch.Tensor, device: str) -> None:
    """Build a model, move it and ``example`` to ``device``, run forward and backward there.

    On ``device="meta"`` this needs no GPU and still catches the usual GPU bugs: a tensor created inside
    ``forward`` without ``device=`` lands on the CPU and cannot be mixed with meta tensors, and ``.cuda()``
    or ``.numpy()`` fail. The output must come back on ``device``.
    """
    model = call_student("building the model", model_factory)
    target = torch.device(device)
    model = call_student(f"model.to({device!r})", model.to, target)
    stray = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type != target.type]
    if stray:
        pytest.fail(f"after model.to({device!r}) these stay on another device: {stray}; register them as "
                    "nn.Parameter or with register_buffer", pytrace=False)
    x = example.to(target)
    out = call_student(f"forward on device {device!r} (a tensor created without device=x.device?)", model, x)
    if out.device.type != target.type:
        pytest.fail(f"forward on {device!r} returned a tensor on {out.device}", pytrace=False)
    call_student(f"backward on device {device!r}", out.float().sum().backward)


def first_mismatch(rows: Iterable[tuple[str, tuple, tuple]]) -> str | None:
    """Given ``(layer, expected_shape, actual_shape)`` rows, describe the first that differs, else ``None``."""
    for index, (layer, expected, actual) in enumerate(rows):
        if tuple(expected) != tuple(actual):
            return f"row {index} ({layer}): expected shape {tuple(expected)}, got {tuple(actual)}"
    return None
