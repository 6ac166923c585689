"""JSON-lines files (one JSON object per line), read with every bad line reported rather than dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


def read_rows(path: str | os.PathLike, problem_of: Callable[[object], str | None]
              ) -> tuple[list[dict], list[tuple[int, str]]]:
    """``(rows, bad)`` of a JSON-lines file: the rows ``problem_of`` finds nothing wrong with, and
    ``(line number, problem)`` for every other non-blank line (a run killed while it wrote its line leaves
    one). A missing file has neither."""
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
            problem = problem_of(row)
            if problem:
                bad.append((number, problem))
            else:
                rows.append(row)
    return rows, bad
