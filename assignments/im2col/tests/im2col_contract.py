"""The contract of the im2col assignment, as the tests check it (im2col.py's docstring says it in words).

Your im2col.py is run by the probe (tests/plan.py), and the tests judge what it recorded. Two rules are
decided from the text of your file alone (it is read and parsed here, never imported or run):

* **numpy only** (:func:`find_violations`). im2col.py may import only the modules in
  ``ALLOWED_IMPORTS``, and must not use ``FORBIDDEN_NAMES`` (``eval``, ``__import__``, ``getattr``, ...),
  names or attributes that start and end with ``__`` (other than ``__init__``, ``__name__``,
  ``__doc__``), frame or traceback attributes, or anything called ``torch``. A problem inside one of the
  graded parts (``im2col``, ``col2im``, ``Convolution``, ``Pooling``) fails the checks that use that part
  (``USES``); a problem anywhere else in the file (at the top level, in ``output_size`` or in a helper of
  yours) fails them all.
* **no Python loop over the images or the output pixels** (:func:`find_loops`). In every function of the
  file (and at its top level), a loop may run only over the filter window. Allowed are
  ``for v in range(e)`` where ``e`` is built from the window sizes (``WINDOW_NAMES``: ``filter_h``,
  ``filter_w``, ``FH``, ``FW``, ``pool_h``, ``pool_w``, and ``self.pool_h``, ``self.pool_w``), from integer
  constants, and from names assigned from those only (``FN, C, FH, FW = self.W.shape`` counts: the last
  two entries of the filters' shape are the window; a parameter of a helper of yours named like a
  window size counts if every call of the helper in the file passes a window size);
  ``itertools.product``, ``zip``, ``enumerate`` or ``reversed`` of such ranges; and a tuple or list
  written out in the code (``for size in (H, W)``).
  Anything else that loops is reported with the function, the line and the loop: another ``for``, any
  ``while``, a comprehension over something else, ``map``/``filter``/``functools.reduce`` (same rule for
  their iterables), ``np.vectorize``, ``np.apply_along_axis``, ``np.apply_over_axes``, ``np.frompyfunc``,
  and recursion (a function that calls itself, directly or through others). A part's check looks at the
  part, at every function it calls (by name, or as ``self.method``) and at the top level of the file
  (except a block under ``if __name__ == "__main__":``, which never runs in the tests).

The values your code returned are checked to be ``numpy.ndarray`` (exactly that type) of dtype float64
and compared with torch's own operations in float64 (unfold, fold, conv2d, max_pool2d, autograd).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mnistkit.checks import call_value, fail, numpy_array
from mnistkit.probe import Raised, not_written

MODULE = "im2col"
FILE = f"{MODULE}.py"
ALLOWED_IMPORTS = frozenset(
    {"numpy", "math", "typing", "functools", "itertools", "collections", "dataclasses", "numbers", "__future__"}
)
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

# The course's worked example (tests/plan.py has its input): the 9x9 im2col matrix and the output.
COURSE_OUTPUT = [[1.0, 6, 8], [6, 15, 14], [12, 14, 9]]
COURSE_COL = [
    [0.0, 0, 0, 0, 1, 2, 0, 4, 5],
    [0, 0, 0, 1, 2, 3, 4, 5, 6],
    [0, 0, 0, 2, 3, 0, 5, 6, 0],
    [0, 1, 2, 0, 4, 5, 0, 7, 8],
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
    [2, 3, 0, 5, 6, 0, 8, 9, 0],
    [0, 4, 5, 0, 7, 8, 0, 0, 0],
    [4, 5, 6, 7, 8, 9, 0, 0, 0],
    [5, 6, 0, 8, 9, 0, 0, 0, 0],
]


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
    lines = [f"  {FILE} line {line}" + (f" (in {part})" if part != "module" else "") + f": {problem}"
             for part, line, problem in violations]
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    return (f"{FILE} must use numpy only (allowed imports: {allowed}; no eval/exec/__import__/getattr, "
            "no dunder or frame attributes, nothing named torch). Found:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------------------------
# no loop over images or output pixels: the static check

WINDOW_NAMES = frozenset({"filter_h", "filter_w", "FH", "FW", "pool_h", "pool_w"})
FILTER_NAME = "W"  # the filters (FN, C, FH, FW), as a parameter of a method or self.W: .shape[2:] is the window
ELEMENTWISE = frozenset({"numpy.vectorize", "numpy.apply_along_axis", "numpy.apply_over_axes", "numpy.frompyfunc"})
# Functions that loop over iterables, with the positions of their iterable arguments (None: from there on).
MAP_LIKE = {"map": slice(1, None), "filter": slice(1, 2), "functools.reduce": slice(1, 2),
            "itertools.starmap": slice(1, 2), "itertools.accumulate": slice(0, 1)}
WINDOW_ITERATORS = frozenset({"zip", "enumerate", "reversed", "list", "tuple", "sorted", "itertools.product"})
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
MODULE_UNIT = "the top level of the file"


@dataclass(frozen=True)
class Loop:
    """A loop the rule does not allow: the function it is in (``im2col``, ``Convolution.forward``), the line,
    and what it is, in words."""

    unit: str
    line: int
    what: str


@dataclass
class _Unit:
    name: str  # "im2col", "Convolution.forward", or MODULE_UNIT
    nodes: list  # the statements (or the function node) it is made of
    cls: str | None = None  # the class of a method
    self_name: str | None = None  # the name of a method's first parameter


class _Binding:
    """One way a name gets its value: ``param`` (a parameter), ``value`` (an assignment or an argument of a
    call in the file), ``element`` (entry ``index`` of an unpacked value), ``loop`` (a loop variable) or
    ``other`` (anything else: it then holds nothing the rule trusts)."""

    def __init__(self, kind: str, value=None, index=None):
        self.kind, self.value, self.index = kind, value, index


class _Analysis:
    """Which names hold window sizes, window iterables or the filters; then the loops that break the rule."""

    PROPERTIES = ("window", "iterable", "filters")

    def __init__(self, source: str):
        self.tree = ast.parse(source)
        self.aliases = self._imports()
        self.units = self._units()
        self.bindings: dict = {}  # symbol -> [(_Unit, _Binding)]; a symbol is (unit name, name) or ("attr", cls, attr)
        for unit in self.units.values():
            self._collect(unit)
        for unit in self.units.values():
            self._collect_calls(unit)
        self.state = {(symbol, p): True for symbol in self.bindings for p in self.PROPERTIES}
        self._solve()

    # -- the file's structure ------------------------------------------------------------------------
    def _imports(self) -> dict:
        aliases = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name == "*":  # from numpy import *: the names the rules know come from there
                        for known in (*ELEMENTWISE, *MAP_LIKE, *WINDOW_ITERATORS):
                            module, _, name = known.rpartition(".")
                            if module == node.module:
                                aliases.setdefault(name, known)
                    else:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        return aliases

    def _units(self) -> dict:
        units = {MODULE_UNIT: _Unit(MODULE_UNIT, [])}
        for statement in self.tree.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                units[statement.name] = _Unit(statement.name, [statement])
            elif isinstance(statement, ast.ClassDef):
                for member in statement.body:
                    if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        args = member.args.posonlyargs + member.args.args
                        name = f"{statement.name}.{member.name}"
                        units[name] = _Unit(name, [member], statement.name, args[0].arg if args else None)
                    else:
                        units[MODULE_UNIT].nodes.append(member)
            elif not _is_main_guard(statement):  # `if __name__ == "__main__":` never runs in the tests
                units[MODULE_UNIT].nodes.append(statement)
        return units

    def classes(self) -> set:
        return {u.cls for u in self.units.values() if u.cls}

    def qualified(self, node) -> str | None:
        """``numpy.vectorize`` for ``np.vectorize`` (after ``import numpy as np``), ``range`` for ``range``."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    @staticmethod
    def walk(unit: _Unit):
        for node in unit.nodes:
            yield from ast.walk(node)

    # -- bindings ------------------------------------------------------------------------------------
    def _bind(self, unit: _Unit, target, binding: _Binding) -> None:
        if isinstance(target, ast.Name):
            self.bindings.setdefault((unit.name, target.id), []).append((unit, binding))
        elif isinstance(target, ast.Attribute):
            if unit.cls and isinstance(target.value, ast.Name) and target.value.id == unit.self_name:
                symbol = ("attr", unit.cls, target.attr)
            else:  # an attribute of something else: whatever it was, it no longer counts
                symbol = ("attr", "*", target.attr)
            self.bindings.setdefault(symbol, []).append((unit, binding))
        elif isinstance(target, (ast.Tuple, ast.List)):
            starred = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)]
            for i, element in enumerate(target.elts):
                if isinstance(element, ast.Starred):
                    self._bind(unit, element.value, _Binding("other"))
                    continue
                index = i if not starred or i < starred[0] else i - len(target.elts)
                if binding.kind == "value":
                    inner = _Binding("element", binding.value, (index,))
                elif binding.kind in ("element", "loop"):
                    inner = _Binding(binding.kind, binding.value, (*binding.index, index))
                else:
                    inner = _Binding("other")
                self._bind(unit, element, inner)
        elif isinstance(target, ast.Starred):
            self._bind(unit, target.value, _Binding("other"))
        elif isinstance(target, ast.Subscript):
            return  # x[...] = ...: changes no name

    def _collect(self, unit: _Unit) -> None:
        for node in self.walk(unit):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                top = unit.nodes and node is unit.nodes[0]
                args = node.args
                for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                    kind = "param" if top and unit.name != MODULE_UNIT else "other"
                    self._bind(unit, ast.Name(a.arg), _Binding(kind, a.arg))
                for a in (args.vararg, args.kwarg):
                    if a is not None:
                        self._bind(unit, ast.Name(a.arg), _Binding("other"))
                if not top and not isinstance(node, ast.Lambda):
                    self._bind(unit, ast.Name(node.name), _Binding("other"))
            elif isinstance(node, ast.ClassDef):
                self._bind(unit, ast.Name(node.name), _Binding("other"))
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(unit, target, _Binding("value", node.value))
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
                if node.value is not None:
                    self._bind(unit, node.target, _Binding("value", node.value))
            elif isinstance(node, ast.AugAssign):
                self._bind(unit, node.target, _Binding("value", ast.BinOp(_load(node.target), node.op, node.value)))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                self._bind(unit, node.target, _Binding("loop", node.iter, ()))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._bind(unit, item.optional_vars, _Binding("other"))
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._bind(unit, ast.Name(node.name), _Binding("other"))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    self._bind(unit, ast.Name(a.asname or a.name.split(".")[0]), _Binding("other"))
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for name in node.names:
                    self._bind(unit, ast.Name(name), _Binding("other"))
                    self.bindings.setdefault((MODULE_UNIT, name), []).append((unit, _Binding("other")))
            elif isinstance(node, ast.Delete):
                for target in node.targets:
                    self._bind(unit, target, _Binding("other"))

    def _callees(self, func) -> list:
        """``(unit, number of leading parameters the call does not pass)`` of the file's functions that a
        call of ``func`` may reach: a function, a class (its ``__init__``), ``Class.method`` or ``x.method``."""
        classes = self.classes()
        if isinstance(func, ast.Name):
            if func.id in self.units and self.units[func.id].cls is None and func.id != MODULE_UNIT:
                return [(self.units[func.id], 0)]
            if func.id in classes and f"{func.id}.__init__" in self.units:
                return [(self.units[f"{func.id}.__init__"], 1)]
        elif isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id in classes:
                name = f"{func.value.id}.{func.attr}"
                return [(self.units[name], 0)] if name in self.units else []
            return [(u, 1) for n, u in self.units.items() if u.cls and n.split(".", 1)[1] == func.attr]
        return []

    def _collect_calls(self, unit: _Unit) -> None:
        """The arguments the file's own calls pass: a parameter named like a window size is one only if every
        call in the file passes a window size; a function used as a value (not called) trusts none."""
        called = set()
        for node in self.walk(unit):
            if not isinstance(node, ast.Call):
                continue
            called.add(id(node.func))
            for callee, skip in self._callees(node.func):
                args = callee.nodes[0].args
                positional = [a.arg for a in [*args.posonlyargs, *args.args]][skip:]
                names = set(positional) | {a.arg for a in args.kwonlyargs}
                unknown = (any(isinstance(a, ast.Starred) for a in node.args)
                           or any(k.arg is None for k in node.keywords))
                passed = [] if unknown else [*zip(positional, node.args), *((k.arg, k.value) for k in node.keywords)]
                for name in names if unknown else ():
                    self.bindings.setdefault((callee.name, name), []).append((unit, _Binding("other")))
                for name, value in passed:
                    if name in names:
                        self.bindings.setdefault((callee.name, name), []).append((unit, _Binding("value", value)))
        for node in self.walk(unit):
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load):
                if id(node) in called or (isinstance(node, ast.Attribute) and not self._callees(node)):
                    continue
                for callee, _ in self._callees(node):
                    args = callee.nodes[0].args
                    for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                        self.bindings.setdefault((callee.name, a.arg), []).append((unit, _Binding("other")))

    # -- the properties, solved together (the greatest fixed point) ----------------------------------
    def _solve(self) -> None:
        changed = True
        while changed:
            changed = False
            for (symbol, prop), value in self.state.items():
                if value and not all(self._binding_has(unit, b, prop) for unit, b in self.bindings[symbol]):
                    self.state[(symbol, prop)] = False
                    changed = True

    def _binding_has(self, unit: _Unit, b: _Binding, prop: str) -> bool:
        if b.kind == "param":
            if prop == "window":
                return b.value in WINDOW_NAMES
            return prop == "filters" and b.value == FILTER_NAME and unit.cls is not None
        if b.kind == "value":
            return self.has(unit, b.value, prop)
        if b.kind == "element":
            return prop == "window" and self._element_is_window(unit, b.value, b.index)
        if b.kind == "loop":
            if prop != "window":
                return False
            if isinstance(b.value, (ast.Tuple, ast.List, ast.Set)):  # a literal: each element, at the index
                return all(self._element_is_window(unit, e, b.index) for e in b.value.elts)
            return self.has(unit, b.value, "iterable")
        return False

    def _element_is_window(self, unit: _Unit, value, index: tuple) -> bool:
        """Whether entry ``index`` (a path into nested tuples) of ``value`` is a window size."""
        for depth, position in enumerate(index):
            if isinstance(value, (ast.Tuple, ast.List)) and not any(isinstance(e, ast.Starred) for e in value.elts):
                if not -len(value.elts) <= position < len(value.elts):
                    return False
                value = value.elts[position]
                continue
            flags = self._shape_flags(unit, value) if depth == len(index) - 1 else None
            return flags is not None and -len(flags) <= position < len(flags) and flags[position]
        return self.has(unit, value, "window")

    def _shape_flags(self, unit: _Unit, node) -> list | None:
        """Which entries of ``node`` are window sizes, if ``node`` is (a slice of) the filters' shape."""
        if isinstance(node, ast.Attribute) and node.attr == "shape" and self.has(unit, node.value, "filters"):
            return [False, False, True, True]
        if (isinstance(node, ast.Call) and self.qualified(node.func) == "numpy.shape" and len(node.args) == 1
                and self.has(unit, node.args[0], "filters")):
            return [False, False, True, True]
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            flags = self._shape_flags(unit, node.value)
            bounds = [_constant_int(v) if v is not None else None for v in (node.slice.lower, node.slice.upper,
                                                                             node.slice.step)]
            given = [v for v in (node.slice.lower, node.slice.upper, node.slice.step) if v is not None]
            if flags is None or len(given) != sum(b is not None for b in bounds) or bounds[2] == 0:
                return None
            return flags[slice(*bounds)]
        return None

    def resolve(self, unit: _Unit, name: str):
        if (unit.name, name) in self.bindings:
            return (unit.name, name)
        if (MODULE_UNIT, name) in self.bindings:
            return (MODULE_UNIT, name)
        return None

    def _attribute_symbol(self, unit: _Unit, node: ast.Attribute):
        """``self.<attr>`` in a method: its symbol, unless something else's ``.<attr>`` is assigned somewhere."""
        if unit.cls and isinstance(node.value, ast.Name) and node.value.id == unit.self_name:
            symbol = ("attr", unit.cls, node.attr)
            if symbol in self.bindings and ("attr", "*", node.attr) not in self.bindings:
                return symbol
        return None

    def has(self, unit: _Unit, node, prop: str) -> bool:
        """Whether the expression ``node`` is a window size, a window iterable, or the filters."""
        if isinstance(node, ast.Name):
            symbol = self.resolve(unit, node.id)
            return symbol is not None and self.state[(symbol, prop)]
        if isinstance(node, ast.Attribute):
            symbol = self._attribute_symbol(unit, node)
            if symbol is not None:
                return self.state[(symbol, prop)]
            return False
        if prop == "window":
            if isinstance(node, ast.Constant):
                return isinstance(node.value, int) and not isinstance(node.value, bool)
            if isinstance(node, ast.BinOp):
                return (isinstance(node.op, ARITHMETIC) and self.has(unit, node.left, prop)
                        and self.has(unit, node.right, prop))
            if isinstance(node, ast.UnaryOp):
                return isinstance(node.op, (ast.USub, ast.UAdd)) and self.has(unit, node.operand, prop)
            if isinstance(node, ast.Call):
                return (self.qualified(node.func) in ("int", "min", "max", "abs") and not node.keywords
                        and all(self.has(unit, a, "window") for a in node.args))
            if isinstance(node, ast.Subscript):
                flags = self._shape_flags(unit, node.value)
                index = _constant_int(node.slice)
                return flags is not None and index is not None and -len(flags) <= index < len(flags) and flags[index]
            return False
        if prop == "iterable":
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                return not any(isinstance(e, ast.Starred) for e in node.elts)
            if isinstance(node, ast.Call):
                function = self.qualified(node.func)
                if function == "range":
                    return (1 <= len(node.args) <= 3 and not node.keywords
                            and all(self.has(unit, a, "window") for a in node.args))
                if function in WINDOW_ITERATORS:
                    keywords_ok = all(k.arg in ("repeat", "start", "strict") and (
                        k.arg == "strict" or self.has(unit, k.value, "window")) for k in node.keywords)
                    positional = node.args[:1] if function == "enumerate" else node.args
                    extra_ok = function != "enumerate" or all(self.has(unit, a, "window") for a in node.args[1:])
                    return (bool(node.args) and keywords_ok and extra_ok
                            and all(self.has(unit, a, "iterable") for a in positional))
            return False
        return False

    # -- the loops ---------------------------------------------------------------------------------
    def loops(self, unit: _Unit) -> list[Loop]:
        found = []
        for node in self.walk(unit):
            if isinstance(node, (ast.For, ast.AsyncFor)):
                if not self.has(unit, node.iter, "iterable"):
                    found.append(Loop(unit.name, node.lineno, f"`for {_text(node.target)} in {_text(node.iter)}`"))
            elif isinstance(node, ast.While):
                found.append(Loop(unit.name, node.lineno, f"`while {_text(node.test)}`"))
            elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                for generator in node.generators:
                    if not self.has(unit, generator.iter, "iterable"):
                        found.append(Loop(unit.name, node.lineno, f"`for {_text(generator.target)} in "
                                          f"{_text(generator.iter)}` in a comprehension"))
            elif isinstance(node, ast.Call) and self.qualified(node.func) in MAP_LIKE:
                function = self.qualified(node.func)
                iterables = node.args[MAP_LIKE[function]]
                if not iterables or not all(self.has(unit, a, "iterable") for a in iterables):
                    found.append(Loop(unit.name, node.lineno, f"`{_text(node, 60)}` ({function} loops in Python)"))
            if isinstance(node, (ast.Name, ast.Attribute)) and self.qualified(node) in ELEMENTWISE:
                if not (isinstance(node, ast.Attribute) and self.qualified(node.value) in ELEMENTWISE):
                    found.append(Loop(unit.name, node.lineno, f"`{_text(node)}` (it calls a Python function for "
                                      "every element or row)"))
        return found

    def calls(self, unit: _Unit) -> set:
        """The units ``unit`` may call: functions and classes by name, methods by their name after a dot
        (``self.forward``, ``layer.forward``: every method of that name)."""
        methods = {}
        for name, other in self.units.items():
            if other.cls:
                methods.setdefault(name.split(".", 1)[1], set()).add(name)
        targets = set()
        for node in self.walk(unit):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if (unit.name, node.id) in self.bindings and unit.name != MODULE_UNIT:
                    continue  # a local name of the function
                if node.id in self.units:
                    targets.add(node.id)
                elif node.id in self.classes():
                    targets |= {n for n, u in self.units.items() if u.cls == node.id and n.endswith(".__init__")}
            elif isinstance(node, ast.Attribute) and node.attr in methods:
                targets |= methods[node.attr]
        return targets


def _is_main_guard(statement) -> bool:
    test = getattr(statement, "test", None)
    return (isinstance(statement, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


def _constant_int(node) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant_int(node.operand)
        return -inner if inner is not None else None
    return None


def _load(target):
    if isinstance(target, ast.Name):
        return ast.Name(target.id, ast.Load())
    return target


def _text(node, limit: int = 80) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def find_loops(source: str, part: str) -> list[Loop]:
    """The loops that break the rule in ``part`` (``"im2col"``, ``"Convolution.forward"``, ...), in the
    functions it calls (transitively), and at the top level of the file; recursion among them too."""
    analysis = _Analysis(source)
    if part not in analysis.units:
        return []
    graph = {name: analysis.calls(unit) for name, unit in analysis.units.items()}
    reached, todo = set(), [part, MODULE_UNIT]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(graph.get(name, ()))
    found = [loop for name in sorted(reached) for loop in analysis.loops(analysis.units[name])]
    for name in sorted(reached):
        cycle = _cycle(graph, name)
        if cycle:
            node = analysis.units[name].nodes[0] if analysis.units[name].nodes else None
            calls = " calls ".join([*cycle, name])
            found.append(Loop(name, getattr(node, "lineno", 0), f"recursion ({name} calls itself)" if len(cycle) == 1
                              else f"recursion ({calls})"))
    return sorted(set(found), key=lambda loop: (loop.line, loop.what))


def _cycle(graph: dict, start: str) -> list | None:
    """A path ``[start, ..., x]`` with ``x`` calling ``start`` again, or ``None``."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for following in sorted(graph.get(path[-1], ())):
            if following == start:
                return path
            if following not in seen:
                seen.add(following)
                paths.append([*path, following])
    return None


def describe_loops(part: str, loops: list[Loop]) -> str:
    lines = [f"  {FILE} line {loop.line} " + ("(at the top level)" if loop.unit == MODULE_UNIT else f"(in {loop.unit})")
             + f": {loop.what}" for loop in loops]
    return (f"{part} must not loop over the images or the output pixels in Python. A loop may only run over the "
            "filter window: `for y in range(filter_h)` with a range built from filter_h, filter_w, FH, FW, "
            "pool_h, pool_w, self.pool_h, self.pool_w (and names assigned from them only, such as "
            "`FN, C, FH, FW = self.W.shape`; a parameter of yours named like them counts if every call in the "
            "file passes a window size), itertools.product or zip of such ranges, or a tuple written out in "
            "the code. Found:\n" + "\n".join(lines) + "\nLet numpy slicing handle all images and output pixels "
            "at once (the course's im2col loops over the filter_h * filter_w window offsets only)")


# ---------------------------------------------------------------------------------------------------------
# references (torch, float64)


def unfold_rows(x: torch.Tensor, filter_h, filter_w, stride=1, pad=0) -> torch.Tensor:
    """The documented im2col layout, from torch: unfold, swap the last two axes, reshape to 2-D."""
    cols = torch.nn.functional.unfold(x, (filter_h, filter_w), padding=pad, stride=stride)  # (N, C*fh*fw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def fold_rows(col: torch.Tensor, input_shape, filter_h, filter_w, stride=1, pad=0) -> torch.Tensor:
    """The reference col2im, from torch: fold sums every entry back onto its pixel."""
    images, channels, height, width = input_shape
    cols = col.reshape(images, -1, channels * filter_h * filter_w).transpose(1, 2)
    return torch.nn.functional.fold(cols, (height, width), (filter_h, filter_w), padding=pad, stride=stride)


def describe_entry(row, column, case):
    """Which image, output pixel, channel and window offset entry (row, column) of an im2col matrix is."""
    N, C, H, W, fh, fw, stride, pad = case
    out_h, out_w = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
    n, pixel = divmod(row, out_h * out_w)
    i, j = divmod(pixel, out_w)
    c, offset = divmod(column, fh * fw)
    y, x = divmod(offset, fw)
    return (f"row {row}, column {column} is image {n}, output pixel ({i}, {j}), channel {c}, window offset "
            f"({y}, {x}), so it should equal padded[{n}, {c}, {i * stride + y}, {j * stride + x}]")


def shape_text(shape) -> str:
    return str(tuple(int(s) for s in shape))


def call_text(case) -> str:
    N, C, H, W, fh, fw, stride, pad = case
    return f"input of shape {(N, C, H, W)}, filter {fh}x{fw}, stride={stride}, pad={pad}"


def im2col_text(shape, filter_h, filter_w, stride=1, pad=0) -> str:
    return (f"im2col(x of shape {shape_text(shape)}, filter_h={filter_h}, filter_w={filter_w}, stride={stride}, "
            f"pad={pad})")


def col2im_text(col_shape, input_shape, filter_h, filter_w, stride=1, pad=0) -> str:
    return (f"col2im(col of shape {shape_text(col_shape)}, input_shape={shape_text(input_shape)}, "
            f"filter_h={filter_h}, filter_w={filter_w}, stride={stride}, pad={pad})")


def conv_text(W_shape, b_shape, stride, pad) -> str:
    return (f"Convolution(W of shape {shape_text(W_shape)}, b of shape {shape_text(b_shape)}, stride={stride}, "
            f"pad={pad})")


# ---------------------------------------------------------------------------------------------------------
# the student's im2col.py: its source (static rules) and what the probe recorded


_AT = re.compile(r" \(at [^()]+:\d+ in [^()]+\)$")


def _missing_part(value, what: str) -> None:
    """Fail with a clear message when the probe found no such function, class or method (a renamed part)."""
    if not (isinstance(value, Raised) and value.type == "AttributeError" and value.origin == "library:probe.py"):
        return
    module = re.match(r"module '\w+' has no attribute '(\w+)'", value.message)
    if module:
        fail(f"{what}: {FILE} has no {module.group(1)} (do not rename the parts of the stub)")
    method = re.match(r"'(\w+)' object has no attribute '(\w+)'", value.message)
    if method:
        fail(f"{what}: {method.group(1)} has no method {method.group(2)} (do not rename the parts of the stub)")


class Student:
    """The submitted im2col.py as the tests see it: its text, and the probe's records of its calls."""

    def __init__(self, probe, path):
        self.probe = probe
        self.path = path
        self.source, self.syntax_error = None, None
        self.violations: list = []
        if path.is_file():
            try:
                self.source = path.read_text(encoding="utf-8")
                self.violations = find_violations(self.source)
            except UnicodeDecodeError:
                self.syntax_error = f"{FILE} is not UTF-8 text"
            except SyntaxError as err:
                self.syntax_error = f"{FILE} has a syntax error at line {err.lineno}: {err.msg}"
            except (ValueError, RecursionError, MemoryError) as err:
                self.syntax_error = f"{FILE} cannot be read as Python ({type(err).__name__}: {err})"

    def tensor(self, key: str) -> torch.Tensor:
        """An input array of the plan, as a float64 tensor (your code got a numpy copy of it)."""
        return torch.from_numpy(np.array(self.probe.plan.arrays[key], dtype=np.float64, copy=True))

    # -- the static rules --------------------------------------------------------------------------
    def _readable(self, what: str) -> None:
        if self.syntax_error:
            fail(f"{what}: {self.syntax_error}")
        if self.source is None:
            fail(f"{what}: {FILE} was not found (the file must be named exactly {FILE})")

    def require(self, name: str, what: str) -> None:
        """Fail ``what`` if a part it uses (or the module outside the graded parts) is not numpy only."""
        self._readable(what)
        parts = USES[name]
        bad = [v for v in self.violations if v[0] == "module" or v[0] in parts]
        if bad:
            fail(f"{what}: not graded, because {describe_violations(bad)}")

    def assert_no_loop(self, part: str) -> None:
        """Fail unless ``part`` (and whatever it calls) loops over the filter window only."""
        self._readable(part)
        try:
            loops = find_loops(self.source, part)
        except (ValueError, RecursionError, MemoryError) as err:
            fail(f"{part}: the loop check cannot read {FILE} ({type(err).__name__}: {err})")
        if loops:
            fail(describe_loops(part, loops))

    # -- recorded values ---------------------------------------------------------------------------
    def recorded(self, item: str, step: str, whats: dict):
        """The value of ``step`` of ``item``; fails naming the earlier step (from ``whats``) if that raised."""
        steps = self.probe.steps(item)
        kinds = {s["as"]: "call" if "call" in s else "get" for s in steps.item.steps}
        order = list(kinds)
        for earlier in [] if steps.item.independent else order[: order.index(step)]:
            entry = steps.raw.get(earlier)
            if isinstance(entry, dict) and "raised" in entry:
                value = steps.get(earlier)
                _missing_part(value, whats.get(earlier, earlier))
                call_value(value, whats.get(earlier, earlier))
        value = steps.get(step)
        if kinds[step] == "call":
            _missing_part(value, whats.get(step, step))
        return value

    def array(self, name: str, item: str, step: str, what: str, shape=None, whats: dict | None = None) -> torch.Tensor:
        """``step`` of ``item`` (a call of the part ``name``): a float64 numpy array of ``shape``, as a tensor.

        A failure (the call raised, or returned the wrong shape) also says which rule the part breaks, when
        the plan's random cases show it (:meth:`hint`): numpy's own shape errors then read as a teaching
        assistant's remark about the stride or the padding.
        """
        self.require(name, what)
        try:
            return numpy_array(self.recorded(item, step, {**(whats or {}), step: what}), what, shape)
        except pytest.fail.Exception as err:
            hint = self.hint(name)
            if not hint:
                raise
            message = f"{err.msg}. {hint}"
        fail(message)

    # -- which rule a part breaks, from the plan's random cases ----------------------------------------
    def _outcomes(self, part: str) -> list:
        """``(case, right)`` for the plan's random cases of ``part`` (``im2col`` or ``col2im``), cached."""
        cache = self.__dict__.setdefault("_outcome_cache", {})
        if part in cache:
            return cache[part]
        from plan import random_windows

        seed = self.probe.plan.seed
        found = []
        if part == "im2col":
            groups = [("prop", random_windows(seed, "im2col"), "im2col/prop/{}/x")]
        else:
            groups = [(name, random_windows(seed, f"col2im-{name}"), f"col2im/{name}/{{}}/col")
                      for name in ("sums", "adjoint")]
        try:
            steps = self.probe.steps(part)
        except BaseException:  # noqa: BLE001 - pytest.fail when the item failed as a whole: nothing to compare
            cache[part] = []
            return []
        for prefix, cases, key in groups:
            for i, case in enumerate(cases):
                N, C, H, W, fh, fw, stride, pad = case
                value = steps.get(f"{prefix}/{i}")
                right = False
                if not isinstance(value, Raised) and getattr(value, "type", "") == "numpy.ndarray":
                    got = torch.from_numpy(np.array(value.array, dtype=np.float64, copy=True))
                    given = self.tensor(key.format(i))
                    expected = (unfold_rows(given, fh, fw, stride, pad) if part == "im2col"
                                else fold_rows(given, (N, C, H, W), fh, fw, stride, pad))
                    right = tuple(got.shape) == tuple(expected.shape) and bool(
                        torch.allclose(got, expected, rtol=1e-8, atol=1e-10))
                found.append((case, right))
        cache[part] = found
        return found

    def diagnosis(self, part: str) -> tuple[str, str] | None:
        """Which rule ``part`` (``im2col`` or ``col2im``) breaks, when its random cases show it: ``(rule, why)``
        for a part right for stride 1 and wrong for every larger stride, right without padding and wrong with
        it, or (col2im) right where windows do not overlap and wrong where they do; else ``None``."""
        if any(v[0] in ("module", part) for v in self.violations):
            return None
        outcomes = self._outcomes(part)
        wrong = [case for case, right in outcomes if not right]
        right = [case for case, ok in outcomes if ok]
        if not wrong or not right:
            return None

        def only(feature) -> bool:  # every wrong case has the feature, and some right case has not
            return all(feature(c) for c in wrong) and any(not feature(c) for c in right)

        seen = "in the plan's random cases"
        if only(lambda c: c[6] > 1):
            if part == "im2col":
                return ("the stride", f"{part} is right for stride 1 and wrong for every stride > 1 {seen}. The window "
                        "of output pixel (i, j) starts at pixel (i*stride, j*stride) of the padded image, and there "
                        "are out_h = (H + 2*pad - filter_h)//stride + 1 such windows down (out_w across)")
            return ("the stride", f"{part} is right for stride 1 and wrong for every stride > 1 {seen}. Entry (y, x) "
                    "of the window of output pixel (i, j) goes back onto pixel (i*stride + y, j*stride + x) of the "
                    "padded image: the slice y:y + stride*out_h:stride, and x:x + stride*out_w:stride")
        if only(lambda c: c[7] > 0):
            if part == "im2col":
                return ("the padding", f"{part} is right without padding and wrong for every pad > 0 {seen}. Add pad "
                        "zeros on each side of the height and of the width only (for an (N, C, H, W) array, np.pad "
                        "with [(0, 0), (0, 0), (pad, pad), (pad, pad)])")
            return ("the padding", f"{part} is right without padding and wrong for every pad > 0 {seen}. Add the "
                    "entries onto the padded image, then drop pad rows and columns on each side "
                    "(img[..., pad:H + pad, pad:W + pad])")
        if part == "col2im" and only(lambda c: c[6] < c[4] or c[6] < c[5]):
            return ("= instead of +=", f"{part} is right where the windows do not overlap and wrong where they do "
                    f"(stride < window) {seen}, so entries overwrite each other. Add them (+=, not =): a pixel "
                    "in several windows gets the sum")
        return None

    def hint(self, name: str) -> str:
        """For a failure of the call ``name`` (a key of USES): which rule its im2col or col2im breaks, or ``""``."""
        notes = []
        for part in ("im2col", "col2im"):
            if part not in USES[name]:
                continue
            found = self.diagnosis(part)
            if found and name == part:
                return f"{found[0][0].upper()}{found[0][1:]} is the mistake: {found[1]}"
            if found:
                notes.append(f"The mistake is in {part}, which {name} calls, and it is {found[0]}: {found[1]}")
            elif name != part and any(not ok for _, ok in self._outcomes(part)):
                notes.append(f"{part}, which {name} calls, fails its own tests: fix it first")
        return ". ".join(notes)

    def gradient(self, item: str, attribute: str, step: str, shape, whats: dict) -> torch.Tensor:
        """``self.dW`` or ``self.db`` of a layer (step ``step`` of ``item``), as set by ``backward``."""
        what = f"Convolution.{attribute} after backward()"
        value = self.recorded(item, step, whats)
        if value is None or (isinstance(value, Raised) and value.type == "AttributeError"):
            fail(f"{what}: backward() must store the gradient in self.{attribute}")
        return numpy_array(value, what, shape)

    def expect_value_error(self, name: str, item: str, step: str, what: str, names=(), whats=None) -> str:
        """``step`` must have raised a ValueError from im2col.py whose message names each shape in ``names``."""
        self.require(name, what)
        error = self.recorded(item, step, {**(whats or {}), step: what})
        if not isinstance(error, Raised):
            fail(f"{what}: expected a ValueError (the window does not fit the input), but it returned without an "
                 "error")
        if error.type == "NotImplementedError":
            fail(f"{what}: {not_written(error.message, error.origin)}")
        if error.type != "ValueError":
            at = _AT.search(error.text)
            fail(f"{what}: expected a ValueError that names the shapes, got {error.type}: {error.message}"
                 f"{at.group(0) if at else ''}")
        if not error.origin.startswith(f"{FILE}:"):
            origin = error.origin.removeprefix("library:") or "?"
            fail(f"{what}: the ValueError came from inside {origin} ({error.message}), not from a check of your own: "
                 "test the shapes first and raise ValueError with a message that names them")
        message = "".join(error.message.split())
        for shape in names:
            numbers = [str(int(s)) for s in shape]
            forms = ["(" + ",".join(numbers) + ")", "[" + ",".join(numbers) + "]", "x".join(numbers)]
            if len(numbers) == 1:
                forms.append(f"({numbers[0]},)")
            if not any(form in message for form in forms):
                fail(f"{what}: the ValueError says {error.message!r}, which does not name the shape "
                     f"{shape_text(shape)}")
        return error.message

    # -- the graded parts, as tests/plan.py calls them ------------------------------------------------
    def im2col(self, step: str, case) -> torch.Tensor:
        """Step ``step`` of the plan's ``im2col`` item (on the array ``im2col/<step>/x``): the matrix for
        ``case``, checked for its type, dtype and shape."""
        N, C, H, W, fh, fw, stride, pad = case
        out_h, out_w = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
        return self.array("im2col", "im2col", step, im2col_text((N, C, H, W), fh, fw, stride, pad),
                          (N * out_h * out_w, C * fh * fw))

    def col2im(self, step: str, case) -> torch.Tensor:
        """Step ``step`` of the plan's ``col2im`` item (on the array ``col2im/<step>/col``), checked."""
        N, C, H, W, fh, fw, stride, pad = case
        col_shape = self.probe.plan.arrays[f"col2im/{step}/col"].shape
        return self.array("col2im", "col2im", step, col2im_text(col_shape, (N, C, H, W), fh, fw, stride, pad),
                          (N, C, H, W))

    def _shape(self, where, name: str) -> str:
        return shape_text(self.probe.plan.arrays[f"{where.key}/{name}"].shape)

    def conv_whats(self, where, stride: int, pad: int) -> dict:
        """What each step of a Convolution case is, in words (for the messages)."""
        s = where.suffix
        whats = {f"layer{s}": conv_text(self.probe.plan.arrays[f"{where.key}/W"].shape,
                                        self.probe.plan.arrays[f"{where.key}/b"].shape, stride, pad),
                 f"out{s}": f"Convolution.forward(x of shape {self._shape(where, 'x')})"}
        if f"{where.key}/dout" in self.probe.plan.arrays:
            whats[f"dx{s}"] = f"Convolution.backward(dout of shape {self._shape(where, 'dout')})"
        return whats

    def conv_forward(self, where, case, FN: int) -> torch.Tensor:
        """``Convolution(W, b, stride, pad).forward(x)`` of a Convolution case (type, dtype, shape checked)."""
        N, C, H, W, fh, fw, stride, pad = case
        whats = self.conv_whats(where, stride, pad)
        self.require("Convolution", whats[f"layer{where.suffix}"])
        out_h, out_w = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
        return self.array("Convolution.forward", where.item, f"out{where.suffix}", whats[f"out{where.suffix}"],
                          (N, FN, out_h, out_w), whats)

    def conv_backward(self, where, case, FN: int) -> tuple:
        """``(dx, dW, db)`` of a Convolution case that ran forward then backward (type, dtype, shapes checked)."""
        N, C, H, W, fh, fw, stride, pad = case
        s = where.suffix
        whats = self.conv_whats(where, stride, pad)
        self.require("Convolution", whats[f"layer{s}"])
        self.require("Convolution.forward", whats[f"out{s}"])
        dx = self.array("Convolution.backward", where.item, f"dx{s}", whats[f"dx{s}"], (N, C, H, W), whats)
        return (dx, self.gradient(where.item, "dW", f"dW{s}", (FN, C, fh, fw), whats),
                self.gradient(where.item, "db", f"db{s}", (FN,), whats))

    def pool_whats(self, where, pool_h: int, pool_w: int, stride: int) -> dict:
        s = where.suffix
        whats = {f"layer{s}": f"Pooling(pool_h={pool_h}, pool_w={pool_w}, stride={stride})",
                 f"out{s}": f"Pooling.forward(x of shape {self._shape(where, 'x')})"}
        if f"{where.key}/dout" in self.probe.plan.arrays:
            whats[f"dx{s}"] = f"Pooling.backward(dout of shape {self._shape(where, 'dout')})"
        return whats

    def pool_forward(self, where, pool_h: int, pool_w: int, stride: int) -> torch.Tensor:
        N, C, H, W = self.probe.plan.arrays[f"{where.key}/x"].shape
        whats = self.pool_whats(where, pool_h, pool_w, stride)
        self.require("Pooling", whats[f"layer{where.suffix}"])
        shape = (N, C, (H - pool_h) // stride + 1, (W - pool_w) // stride + 1)
        return self.array("Pooling.forward", where.item, f"out{where.suffix}", whats[f"out{where.suffix}"], shape,
                          whats)

    def pool_backward(self, where, pool_h: int, pool_w: int, stride: int) -> torch.Tensor:
        s = where.suffix
        whats = self.pool_whats(where, pool_h, pool_w, stride)
        self.require("Pooling", whats[f"layer{s}"])
        self.require("Pooling.forward", whats[f"out{s}"])
        return self.array("Pooling.backward", where.item, f"dx{s}", whats[f"dx{s}"],
                          self.probe.plan.arrays[f"{where.key}/x"].shape, whats)
