"""The mutation corpus of the analysis assignment (``CORPUS["analysis"]`` of tests/mutants.py).

Two kinds of mutants. Those with ``edits`` change ``solutions/analysis/analysis.py`` as in tests/mutants.py;
the submission keeps the reference's results.jsonl, plots and report, so a mutant that changes the
networks of the grid's runs also fails the honesty re-runs (its rows no longer come from the analysis.py it
submits). The **fabrications** keep analysis.py (an edit that changes a comment only) and change the other
submitted files with ``files``, the way a student who edits numbers by hand would: results.jsonl edited,
the plots re-drawn from the edited file by the handout's own ``plots.py`` (so that they still match it),
or plots that do not match the results. Every edit of results.jsonl touches every row it concerns, so that
the honesty re-runs (which re-train rows drawn from the plan's seed) catch it whichever rows they draw.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mutants import _m

KIT = Path(__file__).resolve().parents[1]
HANDOUT = KIT / "assignments" / "analysis" / "handout"
RESULTS = "results.jsonl"
PLOT_TOOLS = ("plots.py", "runs.py", "grid.toml")

# The honesty re-runs (test_results_rerun_matches re-trains one fixed run, relu 2 x 50 at lr 0.001; the hidden
# one three drawn at random) train the grid's default network: a mutant that changes it fails them.
RERUNS = ("test_results_rerun_matches", "test_results_rerun_matches_hidden")
RERUN_HIDDEN = ("test_results_rerun_matches_hidden",)
NOT_REPRODUCED = "did not reproduce them"
TRAINS = "test_build_mlp_trains"
PARAMETER_TESTS = ("test_expected_parameters_example", "test_build_mlp_parameters_match_formula",
                   "test_build_mlp_parameter_count_formula")
INIT_TESTS = ("test_init_weights_statistics", "test_init_weights_every_linear_layer")


# ------------------------------------------------------------------------------------------ file edits
def _rows(folder: Path) -> list[dict]:
    lines = (folder / RESULTS).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _write_rows(folder: Path, rows: list[dict]) -> None:
    """results.jsonl as runs.append_row writes it: one compact JSON object per line."""
    text = "".join(json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n" for row in rows)
    (folder / RESULTS).write_text(text, encoding="utf-8")


def _redraw(folder: Path, results: str = RESULTS) -> None:
    """Run the handout's ``python plots.py`` in ``folder`` (as the student would), then remove its tools again."""
    for name in PLOT_TOOLS:
        shutil.copy(HANDOUT / name, folder / name)
    env = {**os.environ, "PYTHONPATH": str(KIT / "student_template"), "MPLBACKEND": "Agg"}
    try:
        subprocess.run([sys.executable, "plots.py", "--results", results], cwd=folder, env=env, check=True,
                       capture_output=True, timeout=300)
    finally:
        for name in PLOT_TOOLS:
            (folder / name).unlink()
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)


def _edit_rows(edit, redraw: bool = True):
    """A ``files`` callback: ``edit(rows)`` changes the rows of results.jsonl in place; the plots are re-drawn."""

    def files(folder: Path) -> None:
        rows = _rows(folder)
        edit(rows)
        _write_rows(folder, rows)
        if redraw:
            _redraw(folder)

    return files


def _raise_test_acc(rows):
    for row in rows:
        row["test_acc"] = min(1.0, round(row["test_acc"] + 0.01, 4))


def _lower_test_loss(rows):
    for row in rows:
        row["test_loss"] = row["test_loss"] * 0.9


def _raise_val_acc(rows):
    for row in rows:
        for entry in row["history"]:
            entry["val_acc"] = min(1.0, round(entry["val_acc"] + 0.01, 4))


def _copy_seed_0(rows):
    """Seeds 1 and 2 of every configuration hold the numbers of its seed 0 (one run per configuration, copied)."""
    first = {json.dumps(row["config"], sort_keys=True): row for row in rows if row["seed"] == 0}
    for row in rows:
        source = first.get(json.dumps(row["config"], sort_keys=True))
        if row["seed"] != 0 and source is not None:
            for key in ("history", "test_loss", "test_acc", "seconds"):
                row[key] = json.loads(json.dumps(source[key]))


def _drop_widest_seed_2(rows):
    """The width study's run of 512 units with seed 2 is left out (the sweep was stopped before it)."""
    index = next(i for i, row in enumerate(rows) if row["config"]["width"] == 512 and row["config"]["epochs"] == 1
                 and row["seed"] == 2)
    del rows[index]


def _plot_json_edited(folder: Path) -> None:
    """plot_lr.json: the best relu point of the test accuracy raised by hand (the PNG left as it was)."""
    path = folder / "plot_lr.json"
    figure = json.loads(path.read_text(encoding="utf-8"))
    series = figure["panels"][0]["series"][0]
    best = series["y"].index(max(series["y"]))
    series["y"][best] = round(series["y"][best] + 0.01, 6)
    path.write_text(json.dumps(figure, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _plots_before_the_sweep_ended(folder: Path) -> None:
    """The plots were drawn while the schedule study had not run yet, and not re-drawn after the sweep."""
    rows = _rows(folder)
    early = [row for row in rows if not (row["config"]["epochs"] == 8 and row["config"]["train_size"] == 10_000)]
    (folder / "early.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in early),
                                        encoding="utf-8")
    try:
        _redraw(folder, "early.jsonl")
    finally:
        (folder / "early.jsonl").unlink()


def _png_swapped(folder: Path) -> None:
    """plot_width.png is a copy of plot_depth.png (the JSON is right)."""
    shutil.copy(folder / "plot_depth.png", folder / "plot_width.png")


# The fabrications keep the reference analysis.py: this edit adds a comment only.
KEEP = ("    layers = [nn.Flatten()]\n", "    layers = [nn.Flatten()]  # the modules, in order\n")

EDITED = "the test results of rows of results.jsonl were edited by hand"
COPIED = "hold the numbers of other runs"

ANALYSIS = [
    # ------------------------------------------------------------------ make_activation
    _m("analysis", "leakyrelu-slope-0.1", "LeakyReLU with negative_slope=0.1",
       ("        return nn.LeakyReLU(negative_slope=0.01)\n", "        return nn.LeakyReLU(negative_slope=0.1)\n"),
       expect={"test_make_activation_returns_module": "expected negative_slope=0.01, got 0.1",
               "test_build_mlp_module_order_all_options": "negative_slope=0.01, got 0.1"},
       maybe=RERUN_HIDDEN),
    _m("analysis", "unknown-activation-is-relu", "make_activation falls back to ReLU instead of raising ValueError",
       ('    raise ValueError(f"unknown activation {name!r}; use one of {ACTIVATIONS}")\n', "    return nn.ReLU()\n"),
       expect={"test_make_activation_rejects_unknown_name": "returned instead of raising ValueError",
               "test_build_mlp_rejects_invalid_arguments": "returned instead of raising ValueError"}),
    # ------------------------------------------------------------------ expected_parameters
    _m("analysis", "parameters-without-biases", "expected_parameters forgets the biases",
       ("    total = (IN_FEATURES + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * NUM_CLASSES\n",
        "    total = IN_FEATURES * width + (depth - 1) * width * width + width * NUM_CLASSES\n"),
       expect={t: "(the biases are not counted" for t in PARAMETER_TESTS}),
    _m("analysis", "parameters-count-running-stats", "expected_parameters counts BatchNorm's running mean and variance",
       ("        total += 2 * width * depth\n", "        total += 4 * width * depth\n"),
       expect={t: "running mean and variance are buffers, not parameters" for t in PARAMETER_TESTS[1:]}),
    _m("analysis", "parameters-depth-off-by-one", "expected_parameters counts depth hidden-to-hidden layers, not depth - 1",
       ("(depth - 1) * (width + 1) * width", "depth * (width + 1) * width"),
       expect={t: "it counts one nn.Linear(width, width) too many" for t in PARAMETER_TESTS}),
    # ------------------------------------------------------------------ init_weights
    _m("analysis", "xavier-normal", "Xavier normal instead of Xavier uniform",
       ("nn.init.xavier_uniform_(module.weight)", "nn.init.xavier_normal_(module.weight)"),
       expect={"test_init_weights_statistics": "must lie in"}),
    _m("analysis", "normal-std-1", "init='normal' with standard deviation 1",
       ("std=NORMAL_STD)", "std=1.0)"),
       expect={"test_init_weights_statistics": "should have mean 0 and std 0.0200, got mean",
               "test_init_weights_every_linear_layer": "expected weight std 0.0200, got"}),
    _m("analysis", "he-fan-out", "He initialisation with mode='fan_out'",
       ('nn.init.kaiming_normal_(module.weight, nonlinearity="relu")',
        'nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")'),
       expect={"test_init_weights_statistics": "nn.Linear(784, 256) should have mean 0 and std 0.0505, got",
               "test_init_weights_every_linear_layer": "expected weight std 0.0816, got 0.07"}),
    _m("analysis", "he-uniform", "He uniform instead of He normal (the same standard deviation)",
       ('nn.init.kaiming_normal_(module.weight, nonlinearity="relu")',
        'nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")'),
       expect={"test_init_weights_statistics": "as uniform draws do: 'he' draws them from a normal distribution"}),
    _m("analysis", "biases-not-zeroed", "init_weights leaves the biases as PyTorch initialised them",
       ("            if module.bias is not None:\n                nn.init.zeros_(module.bias)\n", ""),
       expect={t: "biases must be 0, got values up to" for t in INIT_TESTS}),
    _m("analysis", "init-first-layer-only", "init_weights returns after the first nn.Linear (return indented into the loop)",
       ("                nn.init.zeros_(module.bias)\n",
        "                nn.init.zeros_(module.bias)\n            return model\n"),
       expect={"test_init_weights_statistics": "nn.Linear(256, 256) keeps PyTorch's default initialisation",
               "test_init_weights_every_linear_layer": "left nn.Linear(400, 30) (inside the nested nn.Sequential) as "
                                                       "PyTorch initialised it"}),
    _m("analysis", "init-children-only", "init_weights walks model.children(), missing the nested nn.Linear layers",
       ("    for module in model.modules():\n", "    for module in model.children():\n"),
       expect={"test_init_weights_every_linear_layer": "left nn.Linear(400, 30) (inside the nested nn.Sequential) as "
                                                       "PyTorch initialised it"}),
    _m("analysis", "init-weights-accepts-any-name", "init_weights does not check the scheme (any name is He)",
       ('    if init not in INITS:\n        raise ValueError(f"unknown init {init!r}; use one of {INITS}")\n'
        '    if init == "default":\n', '    if init == "default":\n'),
       expect={"test_init_weights_rejects_unknown_scheme": "returned instead of raising ValueError"}),
    # ------------------------------------------------------------------ build_mlp
    _m("analysis", "one-activation-module", "one activation module created once and reused by every hidden layer",
       ("    layers = [nn.Flatten()]\n", "    layers = [nn.Flatten()]\n    act = make_activation(activation)\n"),
       ("        layers.append(make_activation(activation))\n", "        layers.append(act)\n"),
       expect={"test_build_mlp_activation_modules_distinct": "the same LeakyReLU module is used by"}),
    _m("analysis", "batchnorm-after-activation", "BatchNorm1d after the activation instead of before it",
       ("        if batchnorm:\n            layers.append(nn.BatchNorm1d(width))\n"
        "        layers.append(make_activation(activation))\n",
        "        layers.append(make_activation(activation))\n"
        "        if batchnorm:\n            layers.append(nn.BatchNorm1d(width))\n"),
       expect={"test_build_mlp_layer_order": "followed by Tanh then BatchNorm(20)",
               "test_build_mlp_module_order_all_options": "then BatchNorm(12)"}),
    _m("analysis", "dropout-before-activation", "the Dropout between the linear layer and its activation",
       ("        layers.append(make_activation(activation))\n        if dropout > 0:\n"
        "            layers.append(nn.Dropout(dropout))\n",
        "        if dropout > 0:\n            layers.append(nn.Dropout(dropout))\n"
        "        layers.append(make_activation(activation))\n"),
       expect={"test_build_mlp_layer_order": "followed by BatchNorm(20) then Dropout(0.3) then Tanh, expected",
               "test_build_mlp_module_order_all_options": "(Linear) is followed by"}),
    _m("analysis", "dropout-after-output", "a Dropout after the output layer too",
       ("    layers.append(nn.Linear(width, NUM_CLASSES))\n",
        "    layers.append(nn.Linear(width, NUM_CLASSES))\n    if dropout > 0:\n        layers.append(nn.Dropout(dropout))\n"),
       expect={"test_build_mlp_layer_order": "then log_softmax(dim=1)",
               "test_build_mlp_module_order_all_options": "then log_softmax(dim=1)"}),
    _m("analysis", "dropout-module-when-zero", "an nn.Dropout(0.0) module even when dropout == 0",
       ("        if dropout > 0:\n            layers.append(nn.Dropout(dropout))\n",
        "        layers.append(nn.Dropout(dropout))\n"),
       expect={"test_build_mlp_defaults_have_no_batchnorm_or_dropout": "there is no BatchNorm1d and no Dropout",
               "test_build_mlp_module_order_all_options": "then Dropout(0), expected"}),
    _m("analysis", "dropout-not-checked", "no ValueError for a dropout outside [0, 1)",
       ('    if not 0.0 <= dropout < 1.0:\n        raise ValueError(f"dropout must be in [0, 1), got {dropout}")\n', ""),
       expect={"test_build_mlp_rejects_invalid_arguments": "returned instead of raising ValueError"}),
    _m("analysis", "softmax-output", "nn.Softmax instead of nn.LogSoftmax at the end",
       ("    layers.append(nn.LogSoftmax(dim=1))\n", "    layers.append(nn.Softmax(dim=1))\n"),
       expect={"test_build_mlp_output_shape": "the outputs are probabilities",
               **{t: NOT_REPRODUCED for t in RERUNS}},
       maybe=(TRAINS,)),
    # NLL on raw scores rewards growing them without bound: at the grid's high learning rates a run
    # diverges, and whether the hidden re-run's three random rows reproduce within tolerance depends on
    # which rows the batch's seed draws (one clean-clone run in the last four drew such a row).
    _m("analysis", "no-log-softmax", "the nn.LogSoftmax at the end is missing (raw scores)",
       ("    layers.append(nn.LogSoftmax(dim=1))\n", ""),
       expect={"test_build_mlp_output_shape": "expected log-probabilities",
               **{t: "(Linear) is followed by nothing, expected log_softmax(dim=1)" for t in (
                   "test_build_mlp_layer_order", "test_build_mlp_module_order_all_options",
                   "test_build_mlp_defaults_have_no_batchnorm_or_dropout")}},
       maybe=RERUN_HIDDEN),
    # ------------------------------------------------------------------ equivalent
    _m("analysis", "activation-dict", "make_activation as a lookup in a dict of factories",
       ('    if name == "relu":\n        return nn.ReLU()\n    if name == "tanh":\n        return nn.Tanh()\n'
        '    if name == "sigmoid":\n        return nn.Sigmoid()\n    if name == "leakyrelu":\n'
        '        return nn.LeakyReLU(negative_slope=0.01)\n'
        '    raise ValueError(f"unknown activation {name!r}; use one of {ACTIVATIONS}")\n',
        '    factories = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,\n'
        '                 "leakyrelu": lambda: nn.LeakyReLU(0.01)}\n'
        '    if name not in factories:\n'
        '        raise ValueError(f"unknown activation {name!r}; use one of {sorted(factories)}")\n'
        '    return factories[name]()\n')),
    _m("analysis", "parameters-per-layer-sum", "expected_parameters as a sum over the layer sizes",
       ("    total = (IN_FEATURES + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * NUM_CLASSES\n"
        "    if batchnorm:\n        total += 2 * width * depth\n",
        "    sizes = [IN_FEATURES] + [width] * depth + [NUM_CLASSES]\n"
        "    total = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))\n"
        "    total += 2 * width * depth if batchnorm else 0\n")),
    _m("analysis", "he-fan-in-explicit", "kaiming_normal_ with mode='fan_in' written out",
       ('nn.init.kaiming_normal_(module.weight, nonlinearity="relu")',
        'nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")')),
    _m("analysis", "layers-with-plus-equals", "the module list built with += and a bias zeroed with fill_",
       ("        layers.append(nn.Linear(fan_in, width))\n", "        layers += [nn.Linear(fan_in, width)]\n"),
       ("            layers.append(nn.BatchNorm1d(width))\n", "            layers += [nn.BatchNorm1d(width)]\n"),
       ("        layers.append(make_activation(activation))\n", "        layers += [make_activation(activation)]\n"),
       ("    layers.append(nn.Linear(width, NUM_CLASSES))\n    layers.append(nn.LogSoftmax(dim=1))\n",
        "    layers += [nn.Linear(width, NUM_CLASSES), nn.LogSoftmax(dim=1)]\n"),
       ("                nn.init.zeros_(module.bias)\n", "                module.bias.data.fill_(0.0)\n")),
    _m("analysis", "dropout-range-spelled-out", "the dropout check as two comparisons",
       ("    if not 0.0 <= dropout < 1.0:\n", "    if dropout < 0 or dropout >= 1:\n")),
    # ------------------------------------------------------------------ fabricated numbers
    _m("analysis", "test-acc-raised", "every row's test_acc raised by a point by hand, the plots re-drawn from the edited file",
       KEEP, files=_edit_rows(_raise_test_acc),
       expect={t: EDITED for t in RERUNS}),
    _m("analysis", "test-loss-edited", "every row's test_loss lowered by 10% by hand",
       KEEP, files=_edit_rows(_lower_test_loss),
       expect={t: EDITED for t in RERUNS}),
    _m("analysis", "val-acc-edited", "every row's validation accuracy history raised by a point by hand",
       KEEP, files=_edit_rows(_raise_val_acc),
       expect={t: "the validation results of rows of results.jsonl were edited by hand" for t in RERUNS}),
    _m("analysis", "seeds-copied-from-seed-0", "only seed 0 was run: the rows of seeds 1 and 2 are copies of it",
       KEEP, files=_edit_rows(_copy_seed_0),
       expect={t: COPIED for t in RERUNS}),
    _m("analysis", "missing-grid-run", "one run of the grid is missing (the sweep was stopped early), plots re-drawn",
       KEEP, files=_edit_rows(_drop_widest_seed_2),
       expect={"test_results_cover_grid": "1 of the 120 runs of grid.toml are missing"}),
    _m("analysis", "plot-json-edited", "a point of plot_lr.json raised by hand",
       KEEP, files=_plot_json_edited,
       expect={"test_plot_drawn_from_results": "plot_lr.json differs from what plots.py draws"}),
    _m("analysis", "plots-drawn-before-the-sweep-ended", "the plots were drawn before the schedule study had run",
       KEEP, files=_plots_before_the_sweep_ended,
       expect={"test_plot_drawn_from_results": "plot_schedules.json differs from what plots.py draws"}),
    _m("analysis", "plot-png-swapped", "plot_width.png is a copy of plot_depth.png",
       KEEP, files=_png_swapped,
       expect={"test_plot_drawn_from_results": "plot_width.png was not drawn by plots.py"}),
]
