"""Turn a reference solution into the student stub by replacing its marked regions.

A solution region is written with nbgrader's markers, and its first line inside is a hint::

    ### BEGIN SOLUTION
    ### HINT: flatten x to (N, 784), then ...
    <reference code>
    ### END SOLUTION

In the stub the whole region becomes one line at the marker's indentation::

    raise NotImplementedError("Net.forward: flatten x to (N, 784), then ...")

The hint is prefixed with the enclosing ``Class.function`` so that a student who runs the tests sees
which function to write. Nested, unterminated or stray markers, and regions without a hint, raise
:class:`MarkerError` naming the file and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT:"
_DEF = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+(\w+)")


class MarkerError(ValueError):
    """A solution file whose markers cannot be stripped safely."""


@dataclass(frozen=True)
class Region:
    """One solution region: 1-based line numbers of its markers, its hint and the code it hides."""

    begin: int
    end: int
    indent: str
    hint: str
    owner: str
    code: tuple[str, ...]


def find_regions(text: str, *, filename: str = "<solution>") -> list[Region]:
    """Parse every solution region of ``text``; raise :class:`MarkerError` on malformed markers."""
    lines = text.splitlines()
    regions: list[Region] = []
    open_at: int | None = None
    scopes: list[tuple[int, str]] = []  # (indent width, name) of enclosing defs and classes
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        match = _DEF.match(line)
        if match and open_at is None:
            width = len(match.group(1))
            scopes = [s for s in scopes if s[0] < width] + [(width, match.group(3))]
        if stripped.startswith(BEGIN):
            if open_at is not None:
                raise MarkerError(f"{filename}:{number}: '{BEGIN}' inside the region opened at line {open_at}")
            open_at = number
        elif stripped.startswith(END):
            if open_at is None:
                raise MarkerError(f"{filename}:{number}: '{END}' without a matching '{BEGIN}'")
            regions.append(_region(lines, open_at, number, scopes, filename))
            open_at = None
        elif "BEGIN SOLUTION" in stripped or "END SOLUTION" in stripped:
            raise MarkerError(f"{filename}:{number}: malformed marker {stripped!r}; write '{BEGIN}' or '{END}'")
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at}: '{BEGIN}' is never closed by '{END}'")
    return regions


def _region(lines: list[str], begin: int, end: int, scopes: list[tuple[int, str]], filename: str) -> Region:
    marker = lines[begin - 1]
    indent = marker[: len(marker) - len(marker.lstrip())]
    body = lines[begin : end - 1]
    if not body or not body[0].strip().startswith(HINT):
        raise MarkerError(f"{filename}:{begin + 1}: a solution region must start with a '{HINT} ...' line")
    hint = body[0].strip()[len(HINT) :].strip()
    if not hint:
        raise MarkerError(f"{filename}:{begin + 1}: the hint is empty")
    code = tuple(line for line in body[1:] if line.strip())
    if not code:
        raise MarkerError(f"{filename}:{begin}: the solution region holds no code")
    owner = ".".join(name for width, name in scopes if width < len(indent)) or "module"
    return Region(begin, end, indent, hint, owner, code)


def strip_solutions(text: str, *, filename: str = "<solution>") -> str:
    """Return the stub: ``text`` with every solution region replaced by ``raise NotImplementedError``."""
    regions = find_regions(text, filename=filename)
    if not regions:
        raise MarkerError(f"{filename}: no '{BEGIN}' region found; nothing for students to write")
    lines = text.splitlines()
    out: list[str] = []
    cursor = 0
    for region in regions:
        out.extend(lines[cursor : region.begin - 1])
        message = f"{region.owner}: {region.hint}"
        out.append(f"{region.indent}raise NotImplementedError({message!r})")
        cursor = region.end
    out.extend(lines[cursor:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def solution_code_lines(text: str, *, filename: str = "<solution>") -> set[str]:
    """The distinctive lines a handout must never contain: every code line inside a region, stripped."""
    found: set[str] = set()
    for region in find_regions(text, filename=filename):
        for line in region.code:
            stripped = line.strip()
            if len(stripped) >= 10 and not stripped.startswith("#"):  # skip trivia such as "return x"
                found.add(stripped)
    return found
