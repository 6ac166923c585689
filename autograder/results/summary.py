"""The class summary of a graded folder: ``summary.md`` (pass rates, score distribution) and ``scores.png``."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .files import RESULTS, write_atomic


SUMMARY = "summary.md"


def _load_all(out_dir: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out_dir.glob(f"*/{RESULTS}"))]


def class_summary(out_dir: Path) -> dict:
    """Per assignment: the score distribution and each test's pass rate, from the results.json files."""
    summary: dict[str, dict] = {}
    for results in _load_all(out_dir):
        extra = results.get("extra_data", {})
        name = extra.get("assignment") or "unknown"
        entry = summary.setdefault(name, {"scores": [], "max_score": extra.get("max_score", 0), "tests": {}})
        entry["scores"].append(results["score"])
        for test in results["tests"]:
            if (test.get("extra_data") or {}).get("manual"):  # graded by hand (autograder.review): mean points
                if test["max_score"]:
                    points = entry.setdefault("manual", {}).setdefault(test["name"], [0.0, 0, test["max_score"]])
                    if test["extra_data"].get("outcome") == "graded":
                        points[0], points[1] = points[0] + test["score"], points[1] + 1
                continue
            if not test["max_score"] and "(bonus)" not in test["name"]:
                continue
            counts = entry["tests"].setdefault(test["name"], [0, 0])
            counts[0] += test.get("status") == "passed"
            counts[1] += 1
    return summary


def write_summary(out_dir: Path) -> Path:
    """``summary.md`` (pass rates, score distribution) and ``scores.png`` (a histogram) beside the gradebook."""
    summary = class_summary(out_dir)
    lines = ["# Class summary", ""]
    for name, entry in sorted(summary.items()):
        scores = sorted(entry["scores"])
        top = entry["max_score"] or 1
        mean = sum(scores) / len(scores)
        median = scores[len(scores) // 2] if len(scores) % 2 else (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
        lines += [f"## {name}: {len(scores)} submission(s), out of {top:g} points", "",
                  f"mean {mean:.1f}, median {median:g}, min {scores[0]:g}, max {scores[-1]:g}", "",
                  "| score (% of max) | submissions |", "| --- | --- |"]
        bins = [0] * 10
        for score in scores:
            bins[min(9, int(10 * score / top))] += 1
        for index, count in enumerate(bins):
            upper = "100" if index == 9 else f"{10 * index + 10}"
            lines.append(f"| {10 * index}-{upper}{']' if index == 9 else ')'} | {'#' * count} {count} |")
        lines += ["", "| test | passed |", "| --- | --- |"]
        for test, (passed, total) in entry["tests"].items():
            lines.append(f"| {test} | {passed}/{total} ({passed / total:.0%}) |")
        if entry.get("manual"):
            lines += ["", "| criterion (graded by hand) | mean points |", "| --- | --- |"]
            lines += [f"| {test} | " + (f"{total / count:.2f} of {top_points:g} ({count} graded) |" if count else
                                        f"not graded yet (of {top_points:g}) |")
                      for test, (total, count, top_points) in entry["manual"].items()]
        lines.append("")
    target = out_dir / SUMMARY
    write_atomic(target, "\n".join(lines) + "\n")
    _plot_scores(summary, out_dir / "scores.png")
    return target


def _plot_scores(summary: dict, target: Path) -> None:
    if not summary:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(4 * len(summary), 3), squeeze=False)
    for ax, (name, entry) in zip(axes[0], sorted(summary.items())):
        top = entry["max_score"] or 1
        ax.hist([100 * s / top for s in entry["scores"]], bins=10, range=(0, 100), color="tab:blue", edgecolor="white")
        manual = sum(points for _, _, points in entry.get("manual", {}).values())
        ax.set_title(f"{name} ({len(entry['scores'])} submissions)" + (f"\nincl. {manual:g} points graded by hand"
                                                                      if manual else ""))
        ax.set_xlabel("score (% of the maximum)")
        ax.set_ylabel("submissions")
    fig.tight_layout()
    partial = target.with_name(f".{target.name}.part.png")
    fig.savefig(partial, dpi=100)
    plt.close(fig)
    os.replace(partial, target)
