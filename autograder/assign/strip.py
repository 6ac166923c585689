"""Turn a reference solution into the student stub by replacing its marked regions.

A solution region is written with nbgrader's markers, and its first lines inside are the hint, one or
more ``### HINT:`` lines::

    ### BEGIN SOLUTION
    ### HINT: create the layers: three nn.Linear (784 -> 50 -> 50 -> 10) and the dropout.
    ### HINT: the module docstring has their sizes.
    <reference code>
    ### END SOLUTION

In the stub the region becomes a comment block at the marker's indentation, then a short raise::

    # TODO: create the layers: three nn.Linear (784 -> 50 -> 50 -> 10) and the dropout.
    #       the module docstring has their sizes.
    raise NotImplementedError("Net.__init__")

Each ``### HINT:`` line is one comment line (wrapped at :data:`WIDTH` characters), the first prefixed
``TODO:``. The raise names the enclosing ``Class.function``, so that a student who runs the tests sees which
part is not written yet, and ``mnistkit.submit`` lists the parts still unwritten. A hint says what to
write and where to look (the docstring, the formula), never the solution's code. Nested, unterminated or
stray markers, regions without a hint and hint lines after the code raise :class:`MarkerError` naming
the file and line.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT:"
TODO = "# TODO: "
TODO_MORE = "#       "  # later lines of the block, aligned with the text after "TODO: "
WIDTH = 100  # the comment block's lines, indentation included, are wrapped at this width
_DEF = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+(\w+)")


class MarkerError(ValueError):
    """A solution file whose markers cannot be stripped safely."""


@dataclass(frozen=True)
class Region:
    """One solution region: 1-based line numbers of its markers, its hint lines and the code it hides."""

    begin: int
    end: int
    indent: str
    hints: tuple[str, ...]
    owner: str
    code: tuple[str, ...]

    @property
    def hint(self) -> str:
        """The hint as one line of text."""
        return " ".join(self.hints)

    @property
    def first_code_line(self) -> int:
        """1-based line number of the first line after the hint lines."""
        return self.begin + 1 + len(self.hints)


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
        elif stripped.startswith(HINT) and open_at is None:
            raise MarkerError(f"{filename}:{number}: '{HINT}' outside a solution region")
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at}: '{BEGIN}' is never closed by '{END}'")
    return regions


def _region(lines: list[str], begin: int, end: int, scopes: list[tuple[int, str]], filename: str) -> Region:
    marker = lines[begin - 1]
    indent = marker[: len(marker) - len(marker.lstrip())]
    body = lines[begin : end - 1]
    hints: list[str] = []
    while len(hints) < len(body) and body[len(hints)].strip().startswith(HINT):
        hint = body[len(hints)].strip()[len(HINT) :].strip()
        if not hint:
            raise MarkerError(f"{filename}:{begin + 1 + len(hints)}: the hint is empty")
        hints.append(hint)
    if not hints:
        raise MarkerError(f"{filename}:{begin + 1}: a solution region must start with a '{HINT} ...' line")
    rest = body[len(hints) :]
    for offset, line in enumerate(rest):
        if HINT in line:
            number = begin + 1 + len(hints) + offset
            raise MarkerError(f"{filename}:{number}: '{HINT}' after the code; put every hint line first")
    code = tuple(line for line in rest if line.strip())
    if not code:
        raise MarkerError(f"{filename}:{begin}: the solution region holds no code")
    owner = ".".join(name for width, name in scopes if width < len(indent)) or "module"
    return Region(begin, end, indent, tuple(hints), owner, code)


def todo_comment(region: Region) -> list[str]:
    """The region's hint as comment lines at its indentation: ``# TODO: ...``, then ``#       ...``."""
    out: list[str] = []
    for number, hint in enumerate(region.hints):
        first = TODO if number == 0 else TODO_MORE
        width = max(40, WIDTH - len(region.indent) - len(first))
        for part, text in enumerate(textwrap.wrap(hint, width, break_long_words=False, break_on_hyphens=False)):
            out.append(f"{region.indent}{first if part == 0 else TODO_MORE}{text}")
    return out


def stub_raise(region: Region) -> str:
    """The line that stands for the region's code: ``raise NotImplementedError("Owner.part")``."""
    return f'{region.indent}raise NotImplementedError("{region.owner}")'


def strip_solutions(text: str, *, filename: str = "<solution>") -> str:
    """Return the stub: ``text`` with every region replaced by its TODO comment and a short raise."""
    regions = find_regions(text, filename=filename)
    if not regions:
        raise MarkerError(f"{filename}: no '{BEGIN}' region found; nothing for students to write")
    lines = text.splitlines()
    out: list[str] = []
    cursor = 0
    for region in regions:
        out.extend(lines[cursor : region.begin - 1])
        out.extend(todo_comment(region))
        out.append(stub_raise(region))
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
