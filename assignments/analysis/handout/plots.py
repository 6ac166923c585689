"""Draw the figures of the analysis from the results file alone (no training), as PNG images and JSON data.

    python plots.py                          # reads results.jsonl and grid.toml, writes plot_<name>.png/.json
    python plots.py --results old.jsonl --out-dir figures

Figures (one PNG and one JSON each, flat in the output folder, all submitted):

    plot_lr         test accuracy and last-epoch training loss against the learning rate, per activation
    plot_depth      the same against the number of hidden layers (ReLU and Sigmoid)
    plot_width      the same against the units per hidden layer
    plot_overfit    training and validation loss per epoch on 1,000 images, without and with dropout, with a
                    dashed line at the epoch of the lowest validation loss
    plot_schedules  learning rate, training loss and validation loss per epoch for the three schedules

Every point is the mean over the seeds of grid.toml, and the shaded band spans their minimum to maximum.
Only the runs of grid.toml are used: extra runs of train.py in results.jsonl do not change the figures.
The JSON file holds exactly the plotted numbers; the grader recomputes them from your results.jsonl with
this same code, and each PNG carries a fingerprint of its data. So re-run this script after every change
to results.jsonl, and submit what it wrote.
"""
import argparse
import hashlib
import json
import os
from pathlib import Path

from runs import GRID_FILE, RESULTS_FILE, latest_rows, load_grid, read_results, run_key

FIGURES = ("lr", "depth", "width", "overfit", "schedules")
PREFIX = "plot_"
POINT_METRICS = (("test_acc", "test accuracy"), ("train_loss", "training loss (last epoch)"))
SPECS = {
    "lr": {"study": "lr", "x": "lr", "xlabel": "learning rate (log scale)", "xscale": "log"},
    "depth": {"study": "depth", "x": "depth", "xlabel": "hidden layers", "xscale": "linear"},
    "width": {"study": "width", "x": "width", "xlabel": "units per hidden layer (log scale)", "xscale": "log"},
    "overfit": {"study": "overfit"},
    "schedules": {"study": "schedule"},
}
FINGERPRINT_KEY = "Description"
FINGERPRINT_PREFIX = "figure-data-sha256 "


def file_names(name: str) -> tuple[str, str]:
    """``(png, json)`` file names of a figure."""
    return f"{PREFIX}{name}.png", f"{PREFIX}{name}.json"


def _r(value: float) -> float:
    """Round to 6 significant digits: the JSON stays readable and identical from machine to machine."""
    return float(f"{value:.6g}")


def _label(axes: dict) -> str:
    parts = [str(v) if isinstance(v, str) else f"{k} {v:g}" for k, v in axes.items()]
    return ", ".join(parts)


def _metric(row: dict, name: str) -> float:
    return row["test_acc"] if name == "test_acc" else row["history"][-1][name]


def _groups(study, x_axis=None):
    """Combinations of the study's axes other than ``x_axis``, in the order of grid.toml."""
    names = [a for a in study.axes if a != x_axis]
    combos = [{}]
    for name in names:
        combos = [{**c, name: v} for c in combos for v in study.axes[name]]
    return combos


def _runs_matching(study, fixed: dict):
    """``[(config, seed), ...]`` of the study whose configuration has the values in ``fixed``."""
    return [(c, s) for c, s in study.runs if all(getattr(c, k) == v for k, v in fixed.items())]


def _stats(values):
    return _r(sum(values) / len(values)), _r(min(values)), _r(max(values))


def _points_figure(name, spec, study, rows):
    panels = []
    for metric, ylabel in POINT_METRICS:
        series = []
        for group in _groups(study, spec["x"]):
            points = {"x": [], "y": [], "ymin": [], "ymax": [], "n": []}
            for x in study.axes[spec["x"]]:
                found = [rows[k] for k in (run_key(c, s) for c, s in _runs_matching(study, {**group, spec["x"]: x}))
                         if k in rows]
                if not found:
                    continue
                mean, low, high = _stats([_metric(row, metric) for row in found])
                for key, value in (("x", _r(x)), ("y", mean), ("ymin", low), ("ymax", high), ("n", len(found))):
                    points[key].append(value)
            series.append({"label": _label(group) or study.runs[0][0].activation, **points})
        panels.append({"title": ylabel, "xlabel": spec["xlabel"], "ylabel": ylabel, "xscale": spec["xscale"],
                       "yscale": "log" if metric == "train_loss" else "linear", "series": series})
    return panels


def _curve(found, field, start=None):
    epochs = min(len(row["history"]) for row in found)
    x = list(range(1, epochs + 1))
    columns = [[row["history"][e][field] for row in found] for e in range(epochs)]
    stats = [_stats(column) for column in columns]
    y, ymin, ymax = ([s[i] for s in stats] for i in range(3))
    if start is not None:
        x, y, ymin, ymax = [0] + x, [_r(start)] + y, [_r(start)] + ymin, [_r(start)] + ymax
    return {"x": x, "y": y, "ymin": ymin, "ymax": ymax, "n": [len(found)] * len(x)}


def _found(study, rows, group):
    return [rows[k] for k in (run_key(c, s) for c, s in _runs_matching(study, group)) if k in rows]


def _overfit_figure(study, rows):
    panels = []
    for group in _groups(study):
        found = _found(study, rows, group)
        series = []
        if found:
            series = [{"label": "training loss", **_curve(found, "train_loss")},
                      {"label": "validation loss", **_curve(found, "val_loss")}]
        panel = {"title": _label(group) or "all runs", "xlabel": "epoch", "ylabel": "loss", "xscale": "linear",
                 "yscale": "linear", "series": series}
        if series:
            val = series[1]
            panel["marker"] = {"x": val["x"][val["y"].index(min(val["y"]))], "label": "lowest validation loss"}
        panels.append(panel)
    return panels


def _schedules_figure(study, rows):
    panels = []
    for field, ylabel, yscale in (("lr", "learning rate", "linear"), ("train_loss", "training loss", "log"),
                                  ("val_loss", "validation loss", "log")):
        series = []
        for group in _groups(study):
            found = _found(study, rows, group)
            if found:
                start = found[0]["config"]["lr"] if field == "lr" else None
                series.append({"label": _label(group), **_curve(found, field, start)})
        panels.append({"title": ylabel, "xlabel": "epoch", "ylabel": ylabel, "xscale": "linear", "yscale": yscale,
                       "series": series})
    return panels


def figure_data(rows, studies) -> dict:
    """The data of every figure, ``{name: figure}``, from results rows and the studies of the grid.

    Deterministic: the same rows (in any order) and grid give the same data. A figure is a dict with
    ``name``, ``title``, ``runs`` (how many of the study's runs were found), ``missing`` and ``panels``;
    a panel has axis labels and scales, ``series``, each with ``label`` and the lists ``x``, ``y`` (mean
    over seeds), ``ymin``, ``ymax`` and ``n`` (seeds found), and sometimes a ``marker`` (a dashed line).
    """
    by_key = latest_rows(rows)
    figures = {}
    for name in FIGURES:
        spec = SPECS[name]
        study = studies[spec["study"]]
        if name == "overfit":
            panels = _overfit_figure(study, by_key)
        elif name == "schedules":
            panels = _schedules_figure(study, by_key)
        else:
            panels = _points_figure(name, spec, study, by_key)
        found = sum(run_key(c, s) in by_key for c, s in study.runs)
        figures[name] = {"name": name, "title": study.title, "runs": found, "missing": len(study.runs) - found,
                         "panels": panels}
    return figures


def fingerprint(figure: dict) -> str:
    """SHA-256 of a figure's data in canonical JSON; stored in the PNG's metadata."""
    text = json.dumps(figure, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def draw(figure: dict, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = figure["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for series in panel["series"]:
            (line,) = ax.plot(series["x"], series["y"], marker="o", markersize=3, label=series["label"])
            if any(n > 1 for n in series["n"]):
                ax.fill_between(series["x"], series["ymin"], series["ymax"], color=line.get_color(), alpha=0.2)
        if "marker" in panel:
            ax.axvline(panel["marker"]["x"], color="grey", linestyle="--", linewidth=1, label=panel["marker"]["label"])
        ax.set_xscale(panel["xscale"])
        ax.set_yscale(panel["yscale"])
        xs = sorted({x for series in panel["series"] for x in series["x"]})
        if panel["xlabel"] != "epoch" and xs:
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.set_title(panel["title"])
        ax.grid(True, which="major", alpha=0.3)
        if panel["series"]:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no runs yet: python sweep.py", ha="center", va="center", transform=ax.transAxes)
    title = figure["title"] + (f"  ({figure['missing']} runs missing)" if figure["missing"] else "")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={FINGERPRINT_KEY: FINGERPRINT_PREFIX + fingerprint(figure)})
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw the analysis figures from the results file")
    parser.add_argument("--results", default=RESULTS_FILE, metavar="FILE",
                        help=f"results file to read (default: {RESULTS_FILE})")
    parser.add_argument("--grid", default=GRID_FILE, metavar="FILE",
                        help=f"grid whose studies pick the runs of each figure (default: {GRID_FILE})")
    parser.add_argument("--out-dir", default=".", metavar="DIR",
                        help="folder the PNG and JSON files are written to (default: .)")
    args = parser.parse_args(argv)

    rows, bad = read_results(args.results)
    for number, problem in bad[:5]:
        print(f"warning: {args.results} line {number} ignored: {problem}")
    if not rows:
        parser.error(f"no valid rows in {args.results}: run python sweep.py first")
    figures = figure_data(rows, load_grid(args.grid))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        png, data = file_names(name)
        with open(out / data, "w", encoding="utf-8") as handle:
            json.dump(figure, handle, indent=1, sort_keys=True)
            handle.write("\n")
        draw(figure, out / png)
        note = f" ({figure['missing']} runs missing: python sweep.py)" if figure["missing"] else ""
        print(f"wrote {out / png} and {out / data}{note}")


if __name__ == "__main__":
    main()
