"""Values that live once, in ``assignment.toml`` and the tests, rendered into the handout at release.

A handout README (and the template's ``pytest.ini``) may say ``{{ points.total }}`` where it states a
number the kit knows, so the number is written once and cannot drift:

    points.total, points.visible, points.hidden, points.bonus   points, from the collected tests
    points.table                   a markdown table of the visible tests and their points, and the hidden total
    grading.<field>                a field of [grading] (timeout_per_test, timeout_total, memory_gb, ...)
    accuracy.<check>.threshold     the check's threshold as a percentage ("94%")
    accuracy.<check>.<field>       any other field of [accuracy.<check>] (epochs, batch_size, lr, subset, ...)

An unknown name stops the release with the file and the name.
"""
from __future__ import annotations

import re

from ..config import AssignmentConfig

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


class RenderError(ValueError):
    """A placeholder the kit does not know."""


_MANIFESTS: dict = {}


def _manifest(config: AssignmentConfig):
    """The collected tests (a subprocess: once per assignment and process)."""
    from ..testrun import collect_manifest

    key = (config.name, str(config.root))
    if key not in _MANIFESTS:
        _MANIFESTS[key] = tuple(collect_manifest(config))
    return _MANIFESTS[key]


def _number(value: float) -> str:
    return f"{value:,g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.2f}".rstrip("0").rstrip(".") + "%"


def _points_table(manifest) -> str:
    """The visible tests (a parametrised one in one row, its cases' points summed) and the hidden total."""
    groups: dict = {}
    for spec in manifest:
        if spec.hidden or not (spec.points or spec.bonus):
            continue
        title = re.sub(r" \[[^\]]*\]$", "", spec.title)
        cases, points, bonus = groups.get(title, (0, 0.0, spec.bonus))
        groups[title] = (cases + 1, points + spec.points, bonus)
    rows = ["| test | points |", "| --- | --- |"]
    for title, (cases, points, bonus) in groups.items():
        shown = f"{points:g}" + (f" ({cases} cases)" if cases > 1 else "") + (" (bonus)" if bonus else "")
        rows.append(f"| {title.replace('|', '/')} | {shown} |")
    hidden = sum(s.max_score for s in manifest if s.hidden)
    bonus = sum(s.points for s in manifest if s.hidden and s.bonus)
    rows.append(f"| hidden tests | {hidden:g}{f' (and {bonus:g} bonus)' if bonus else ''} |")
    return "\n".join(rows)


def value(config: AssignmentConfig, name: str) -> str:
    """The text of one placeholder."""
    section, _, rest = name.partition(".")
    if section == "points":
        manifest = _manifest(config)
        totals = {
            "total": sum(s.max_score for s in manifest),
            "visible": sum(s.max_score for s in manifest if not s.hidden),
            "hidden": sum(s.max_score for s in manifest if s.hidden),
            "bonus": sum(s.points for s in manifest if s.bonus),
        }
        if rest == "table":
            return _points_table(manifest)
        if rest in totals:
            return f"{totals[rest]:g}"
    elif section == "grading" and hasattr(config.grading, rest):
        return _number(getattr(config.grading, rest))
    elif section == "accuracy":
        check, _, field = rest.partition(".")
        if check in config.accuracy and hasattr(config.accuracy[check], field):
            got = getattr(config.accuracy[check], field)
            if got is not None:
                return _percent(got) if field == "threshold" else _number(got)
    raise RenderError(f"unknown value {{{{ {name} }}}}")


def render(text: str, config: AssignmentConfig, *, where: str = "") -> str:
    """``text`` with every placeholder replaced; RenderError names ``where`` and the placeholder."""
    def replace(match: re.Match) -> str:
        try:
            return value(config, match.group(1))
        except RenderError as err:
            raise RenderError(f"{where or config.name}: {err}") from None

    return PLACEHOLDER.sub(replace, text)


def rendered_readme(config: AssignmentConfig) -> str:
    """The handout README of ``config`` as students read it."""
    return render((config.root / "README.md").read_text(encoding="utf-8"), config, where=f"{config.name}/README.md")
