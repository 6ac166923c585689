"""Fixtures of the im2col assignment. This file ships in the handout: it is how your im2col.py is called.

Every test reaches your code through the ``student`` fixture, which enforces the contract of im2col.py:

* **numpy only.** Before anything runs, your file is read (not executed) and checked: it may import only
  the modules in ``ALLOWED_IMPORTS``, and must not use ``FORBIDDEN_NAMES`` (``eval``, ``__import__``, ...),
  names or attributes that start and end with ``__`` (other than ``__init__``, ``__name__``, ``__doc__``),
  frame or traceback attributes, or anything called ``torch``. A problem inside one of the graded parts
  (``im2col``, ``col2im``, ``Convolution``, ``Pooling``) fails the checks that use that part; a problem
  anywhere else in the file (at the top level, in ``output_size`` or in a helper of yours) fails them all.
* **torch is out of reach.** Your module is imported, and each of its functions runs, with torch taken out
  of ``sys.modules`` and its import blocked, so ``import torch`` fails with a message saying why.
* **numpy results.** Every result must be a ``numpy.ndarray`` (exactly that type) of dtype float64 (the
  tests pass float64 input).
* **no loop over images or output pixels.** ``student.count_lines`` counts the lines of im2col.py that run
  during a call (``sys.settrace``); ``student.assert_no_loop`` compares the counts for one small image with
  those for more images and for larger images: they must not grow.

The tests build their inputs and their expected values with torch, from tensors your code never sees:
your functions get numpy copies.
"""
from __future__ import annotations

import ast
import gc
import importlib.abc
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistkit.testing import call_student, import_student, where

MODULE = "im2col"
ALLOWED_IMPORTS = frozenset(
    {"numpy", "math", "typing", "functools", "itertools", "collections", "dataclasses", "numbers", "__future__"}
)
BLOCKED_PACKAGES = frozenset({"torch", "torchvision", "torchaudio", "functorch"})
FORBIDDEN_NAMES = frozenset(
    {"__import__", "eval", "exec", "compile", "globals", "locals", "vars", "getattr", "setattr", "delattr",
     "breakpoint", "open", "torch"}
)
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__doc__"})
FRAME_ATTRIBUTES = frozenset(
    {"f_back", "f_locals", "f_globals", "f_builtins", "f_code", "tb_frame", "tb_next", "gi_frame", "cr_frame",
     "ag_frame"}
)
GRADED_PARTS = ("im2col", "col2im", "Convolution", "Pooling")


# ---------------------------------------------------------------------------------------------------------
# numpy only: the static check


def find_violations(source: str) -> list[tuple[str, int, str]]:
    """``(part, line, problem)`` for every use of something outside numpy in ``source``.

    ``part`` is the graded function or class the line belongs to, or ``"module"`` for everything else.
    """
    found = []
    for statement in ast.parse(source).body:
        part = statement.name if getattr(statement, "name", None) in GRADED_PARTS else "module"
        for node in ast.walk(statement):
            problem = _problem(node)
            if problem:
                found.append((part, node.lineno, problem))
    return sorted(found, key=lambda v: v[1])


def _problem(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        bad = [a.name for a in node.names if a.name.split(".")[0] not in ALLOWED_IMPORTS]
        return f"`import {', '.join(bad)}`" if bad else None
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module or node.module.split(".")[0] not in ALLOWED_IMPORTS:
            return f"`from {'.' * node.level}{node.module or ''} import ...`"
        return None
    if isinstance(node, ast.Name):
        if node.id in FORBIDDEN_NAMES or (_dunder(node.id) and node.id not in ALLOWED_DUNDERS):
            return f"the name `{node.id}`"
    if isinstance(node, ast.Attribute):
        dunder = _dunder(node.attr) and node.attr not in ALLOWED_DUNDERS
        if node.attr == "torch" or node.attr in FRAME_ATTRIBUTES or dunder:
            return f"the attribute `.{node.attr}`"
    return None


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def describe_violations(violations) -> str:
    lines = [f"  {MODULE}.py line {line}" + (f" (in {part})" if part != "module" else "") + f": {problem}"
             for part, line, problem in violations]
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    return (f"{MODULE}.py must use numpy only (allowed imports: {allowed}; no eval/exec/__import__/getattr, "
            "no dunder or frame attributes, nothing named torch). Found:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------------------------
# torch out of reach while student code runs


class _BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED_PACKAGES:
            raise ModuleNotFoundError(
                f"{MODULE}.py must use numpy only: importing {fullname!r} is blocked in this assignment",
                name=fullname,
            )
        return None


_BLOCKER = _BlockTorch()


@contextmanager
def torch_blocked():
    """Run a block with torch out of ``sys.modules`` and its import refused; put everything back after."""
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in BLOCKED_PACKAGES}
    sys.meta_path.insert(0, _BLOCKER)
    try:
        yield
    finally:
        sys.meta_path.remove(_BLOCKER)
        for name in [n for n in sys.modules if n.split(".")[0] in BLOCKED_PACKAGES]:
            del sys.modules[name]
        sys.modules.update(hidden)


# ---------------------------------------------------------------------------------------------------------
# the student's module, called through checks

# Which graded parts each call uses (a numpy-only problem in one of them fails the call).
USES = {
    "im2col": ("im2col",),
    "col2im": ("col2im",),
    "Convolution": ("Convolution",),
    "Convolution.forward": ("Convolution", "im2col"),
    "Convolution.backward": ("Convolution", "im2col", "col2im"),
    "Pooling": ("Pooling",),
    "Pooling.forward": ("Pooling", "im2col"),
    "Pooling.backward": ("Pooling", "im2col", "col2im"),
}


def shape_text(shape) -> str:
    return str(tuple(int(s) for s in shape))


def numpy_copy(tensor: torch.Tensor) -> np.ndarray:
    """A float64 numpy array owning its memory (nothing links it back to ``tensor``)."""
    return tensor.detach().to(torch.float64).cpu().numpy().copy()


class Student:
    """The student's im2col.py with the contract's checks around every call."""

    def __init__(self, module, violations):
        self.module = module
        self.violations = violations
        self.path = str(Path(module.__file__).resolve())

    # -- plumbing --------------------------------------------------------------------------------------

    def require(self, name: str, what: str) -> None:
        """Fail ``what`` if a part it uses (or the module outside the graded parts) is not numpy only."""
        parts = USES[name]
        bad = [v for v in self.violations if v[0] == "module" or v[0] in parts]
        if bad:
            pytest.fail(f"{what}: not graded, because {describe_violations(bad)}", pytrace=False)

    def attribute(self, name: str, what: str):
        value = self.module
        for part in name.split("."):
            if not hasattr(value, part):
                pytest.fail(f"{what}: {MODULE}.py has no {name} (do not rename the parts of the stub)", pytrace=False)
            value = getattr(value, part)
        return value

    def run(self, name: str, what: str, fn, *args):
        """Call student code ``fn(*args)`` (the part ``name``) with torch blocked; errors become failures."""
        self.require(name, what)
        with torch_blocked():
            return call_student(what, fn, *args)

    def array(self, value, what: str, shape=None) -> torch.Tensor:
        """Check that ``value`` is a float64 ``numpy.ndarray`` (of ``shape``); return a torch copy of it."""
        if type(value) is not np.ndarray:
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            pytest.fail(f"{what} returned a {kind}; expected a numpy.ndarray (numpy only)", pytrace=False)
        if shape is not None and tuple(value.shape) != tuple(shape):
            pytest.fail(f"{what}: expected shape {shape_text(shape)}, got {shape_text(value.shape)}", pytrace=False)
        if value.dtype != np.float64:
            pytest.fail(f"{what}: expected dtype float64 (the dtype of the input), got {value.dtype}", pytrace=False)
        return torch.from_numpy(value.copy())

    # -- the graded parts ------------------------------------------------------------------------------

    def im2col(self, x: torch.Tensor, filter_h, filter_w, stride=1, pad=0, *, shape=None) -> torch.Tensor:
        what = (f"im2col(x of shape {shape_text(x.shape)}, filter_h={filter_h}, filter_w={filter_w}, "
                f"stride={stride}, pad={pad})")
        fn = self.attribute("im2col", what)
        out = self.run("im2col", what, fn, numpy_copy(x), filter_h, filter_w, stride, pad)
        return self.array(out, what, shape)

    def col2im(self, col: torch.Tensor, input_shape, filter_h, filter_w, stride=1, pad=0, *,
               shape=None) -> torch.Tensor:
        what = (f"col2im(col of shape {shape_text(col.shape)}, input_shape={shape_text(input_shape)}, "
                f"filter_h={filter_h}, filter_w={filter_w}, stride={stride}, pad={pad})")
        fn = self.attribute("col2im", what)
        out = self.run("col2im", what, fn, numpy_copy(col), tuple(input_shape), filter_h, filter_w, stride, pad)
        return self.array(out, what, shape)

    def convolution(self, W: torch.Tensor, b: torch.Tensor, stride=1, pad=0) -> "Layer":
        what = (f"Convolution(W of shape {shape_text(W.shape)}, b of shape {shape_text(b.shape)}, "
                f"stride={stride}, pad={pad})")
        cls = self.attribute("Convolution", what)
        layer = self.run("Convolution", what, cls, numpy_copy(W), numpy_copy(b), stride, pad)
        return Layer(self, "Convolution", layer)

    def pooling(self, pool_h=2, pool_w=2, stride=2) -> "Layer":
        what = f"Pooling(pool_h={pool_h}, pool_w={pool_w}, stride={stride})"
        cls = self.attribute("Pooling", what)
        return Layer(self, "Pooling", self.run("Pooling", what, cls, pool_h, pool_w, stride))

    # -- the no-loop and error checks ------------------------------------------------------------------

    def count_lines(self, name: str, what: str, fn, *args) -> dict[str, int]:
        """Lines of im2col.py run during ``fn(*args)``, by function.

        A call of a function of im2col.py counts as one line, and so does every call your code makes to a
        Python function elsewhere (numpy's ``np.pad``, say), so that ``map(some_function, images)`` counts.
        """
        self.require(name, what)
        counts: dict[str, int] = {}

        def function(frame) -> str:
            return getattr(frame.f_code, "co_qualname", frame.f_code.co_name)  # co_qualname: Python 3.11+

        def tally(key):
            counts[key] = counts.get(key, 0) + 1

        def on_line(frame, event, arg):
            if event == "line":
                tally(function(frame))
            return on_line

        def on_call(frame, event, arg):
            if frame.f_code.co_filename == self.module.__file__:
                tally(function(frame))
                return on_line
            caller = frame.f_back  # a library function called by your code (also through map() and the like)
            if caller is not None and caller.f_code.co_filename == self.module.__file__:
                tally(f"{function(caller)} (calls of {frame.f_code.co_name})")
            return None

        previous, collecting = sys.gettrace(), gc.isenabled()
        gc.disable()  # a garbage collection in the middle would run callbacks that are not your code
        sys.settrace(on_call)
        try:
            with torch_blocked():
                call_student(what, fn, *args)
        finally:
            sys.settrace(previous)
            if collecting:
                gc.enable()
        return counts

    def assert_no_loop(self, name: str, make_call, shapes) -> None:
        """Fail unless ``name`` runs no more lines of im2col.py for the later ``shapes`` than for the first.

        ``make_call(shape)`` returns ``(what, fn, args)``: the call to measure for an input of that shape.
        The first shape is one small image; the others have more images or larger ones.
        """
        measured = []
        for shape in shapes:
            what, fn, args = make_call(shape)
            measured.append((shape, self.count_lines(name, what, fn, *args)))
        (base_shape, base), *others = measured
        for shape, counts in others:
            grown = [f"{function} ({base.get(function, 0)} -> {count})" for function, count in counts.items()
                     if count > base.get(function, 0)]
            if grown:
                pytest.fail(f"{name} ran {sum(base.values())} lines of {MODULE}.py for an input of shape {base_shape} "
                            f"but {sum(counts.values())} for {shape}; more lines ran in {', '.join(grown)}. The work "
                            "done in Python must not grow with the number of images or the image size: loop only "
                            "over the filter window (filter_h * filter_w steps) and let numpy slicing handle all "
                            "images and output pixels at once", pytrace=False)

    def expect_value_error(self, name: str, what: str, fn, *args, names=()) -> str:
        """``fn(*args)`` must raise a ValueError from im2col.py whose message names each shape in ``names``."""
        self.require(name, what)
        error = None
        with torch_blocked():
            try:
                fn(*args)
            except Exception as err:  # noqa: BLE001 - judged below, outside the except block
                error = err
        if isinstance(error, NotImplementedError):
            pytest.fail(f"{what}: not written yet (NotImplementedError: {error})", pytrace=False)
        if error is None:
            pytest.fail(f"{what}: expected a ValueError (the window does not fit the input), but it returned "
                        "without an error", pytrace=False)
        if not isinstance(error, ValueError):
            pytest.fail(f"{what}: expected a ValueError that names the shapes, got {type(error).__name__}: "
                        f"{error}{where(error)}", pytrace=False)
        frames = traceback.extract_tb(error.__traceback__)
        if not frames or str(Path(frames[-1].filename).resolve()) != self.path:
            origin = Path(frames[-1].filename).name if frames else "?"
            pytest.fail(f"{what}: the ValueError came from inside {origin} ({error}), not from a check of your own: "
                        "test the shapes first and raise ValueError with a message that names them", pytrace=False)
        message = "".join(str(error).split())
        for shape in names:
            numbers = [str(int(s)) for s in shape]
            forms = ["(" + ",".join(numbers) + ")", "[" + ",".join(numbers) + "]", "x".join(numbers)]
            if not any(form in message for form in forms):
                pytest.fail(f"{what}: the ValueError says {str(error)!r}, which does not name the shape "
                            f"{shape_text(shape)}", pytrace=False)
        return str(error)


class Layer:
    """A student's Convolution or Pooling object; forward/backward go through the checks of ``Student``."""

    def __init__(self, student: Student, name: str, layer):
        self.student, self.name, self.layer = student, name, layer

    def method(self, method: str, what: str):
        fn = getattr(self.layer, method, None)
        if fn is None:
            pytest.fail(f"{what}: {self.name} has no method {method}", pytrace=False)
        return fn

    def forward(self, x: torch.Tensor, *, shape=None) -> torch.Tensor:
        what = f"{self.name}.forward(x of shape {shape_text(x.shape)})"
        out = self.student.run(f"{self.name}.forward", what, self.method("forward", what), numpy_copy(x))
        return self.student.array(out, what, shape)

    def backward(self, dout: torch.Tensor, *, shape=None) -> torch.Tensor:
        what = f"{self.name}.backward(dout of shape {shape_text(dout.shape)})"
        out = self.student.run(f"{self.name}.backward", what, self.method("backward", what), numpy_copy(dout))
        return self.student.array(out, what, shape)

    def gradient(self, attribute: str, shape) -> torch.Tensor:
        """``self.dW`` or ``self.db`` as set by ``backward``."""
        what = f"{self.name}.{attribute} after backward()"
        value = getattr(self.layer, attribute, None)
        if value is None:
            pytest.fail(f"{what}: backward() must store the gradient in self.{attribute}", pytrace=False)
        return self.student.array(value, what, shape)


@pytest.fixture(scope="session")
def student(request) -> Student:
    """The student's im2col.py: checked to be numpy only, imported with torch blocked, wrapped in checks."""
    path = Path(request.config.rootpath) / f"{MODULE}.py"
    violations = []
    if path.is_file():
        try:
            violations = find_violations(path.read_text(encoding="utf-8"))
        except SyntaxError as err:
            pytest.fail(f"{MODULE}.py has a syntax error at line {err.lineno}: {err.msg}", pytrace=False)
        at_top = [v for v in violations if v[0] == "module"]
        if at_top:
            pytest.fail(describe_violations(at_top), pytrace=False)
    with torch_blocked():
        module = import_student(MODULE)
    imported = Path(getattr(module, "__file__", None) or "?").resolve()
    if path.is_file() and imported != path.resolve():
        pytest.fail(f"`import {MODULE}` loaded {imported}, not the {MODULE}.py of this folder ({path})", pytrace=False)
    return Student(module, violations)


# ---------------------------------------------------------------------------------------------------------
# references and comparisons (torch, float64)


def _randn(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="session")
def randn():
    """``randn(*shape, seed=0)``: a float64 tensor of standard normal numbers, the same for the same seed."""
    return _randn


def unfold_rows(x: torch.Tensor, filter_h, filter_w, stride=1, pad=0) -> torch.Tensor:
    """The documented im2col layout, from torch: unfold, swap the last two axes, reshape to 2-D."""
    cols = torch.nn.functional.unfold(x, (filter_h, filter_w), padding=pad, stride=stride)  # (N, C*fh*fw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def fold_rows(col: torch.Tensor, input_shape, filter_h, filter_w, stride=1, pad=0) -> torch.Tensor:
    """The reference col2im, from torch: fold sums every entry back onto its pixel."""
    images, channels, height, width = input_shape
    cols = col.reshape(images, -1, channels * filter_h * filter_w).transpose(1, 2)
    return torch.nn.functional.fold(cols, (height, width), (filter_h, filter_w), padding=pad, stride=stride)


@pytest.fixture(scope="session")
def reference():
    """torch versions of the four parts, on float64 tensors (never shown to the student's code)."""

    class Reference:
        im2col = staticmethod(unfold_rows)
        col2im = staticmethod(fold_rows)

    return Reference


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |got - expected| / max |expected|`` (the denominator at least 1e-12)."""
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


@pytest.fixture(scope="session")
def assert_close():
    """``assert_close(got, expected, what, rtol=1e-10, hint="")``: fail unless the relative error is below ``rtol``."""

    def _assert_close(got: torch.Tensor, expected: torch.Tensor, what: str, rtol: float = 1e-10, hint: str = ""):
        if tuple(got.shape) != tuple(expected.shape):
            pytest.fail(f"{what}: expected shape {shape_text(expected.shape)}, got {shape_text(got.shape)}",
                        pytrace=False)
        if not torch.isfinite(got).all():
            pytest.fail(f"{what}: contains NaN or inf", pytrace=False)
        error = relative_error(got, expected)
        if not error < rtol:
            index = tuple(int(i) for i in torch.nonzero((got - expected).abs() == (got - expected).abs().max())[0])
            pytest.fail(f"{what}: relative error {error:.2e} (allowed {rtol:.0e}); the largest difference is at "
                        f"index {index}. {hint}".strip(), pytrace=False)

    return _assert_close
