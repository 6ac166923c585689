"""Visible tests of the analysis assignment. Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points.
"""
import json

import pytest
import torch

import checks
import plots as kit_plots
import runs as kit_runs
from mnistkit.testing import (
    assert_dtype,
    assert_gradients_flow,
    assert_parameter_count,
    assert_runs_on_device,
    assert_shape,
    call_student,
)

EXPECTED_MODULES = {
    "relu": (torch.nn.ReLU, {}),
    "tanh": (torch.nn.Tanh, {}),
    "sigmoid": (torch.nn.Sigmoid, {}),
    "leakyrelu": (torch.nn.LeakyReLU, {"negative_slope": 0.01}),
}


# ------------------------------------------------------------------------------------------ the builder
@pytest.mark.points(1)
@pytest.mark.parametrize("name", list(EXPECTED_MODULES))
def test_make_activation_returns_module(analysis, name):
    """make_activation(name) returns the matching module (LeakyReLU with slope 0.01)."""
    module = call_student(f"make_activation({name!r})", analysis.make_activation, name)
    kind, attributes = EXPECTED_MODULES[name]
    if type(module) is not kind:
        pytest.fail(f"make_activation({name!r}): expected an nn.{kind.__name__}, got {type(module).__name__}",
                    pytrace=False)
    for attribute, value in attributes.items():
        if getattr(module, attribute, None) != value:
            pytest.fail(f"make_activation({name!r}): expected {attribute}={value}, got "
                        f"{getattr(module, attribute, None)}", pytrace=False)


@pytest.mark.points(1)
def test_make_activation_rejects_unknown_name(analysis):
    """make_activation raises ValueError for a name it does not know."""
    checks.expect_value_error("make_activation('swish')", analysis.make_activation, "swish")


@pytest.mark.points(2)
@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (16, 784)])
def test_build_mlp_output_shape(make_mlp, shape):
    """build_mlp maps (N, 1, 28, 28) or (N, 784) input to (N, 10) float32 log-probabilities."""
    net = make_mlp(2, 50, "relu").eval()
    out = call_student("forward of build_mlp(2, 50, 'relu')", net, torch.randn(*shape))
    assert_shape(out, (16, 10), f"output of build_mlp(2, 50, 'relu') for input {shape}")
    assert_dtype(out, torch.float32, "output of build_mlp")
    sums = out.exp().sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        pytest.fail(f"expected log-probabilities (exp sums to 1 per row, nn.LogSoftmax(dim=1) last), got sums "
                    f"{[round(s, 4) for s in sums[:4].tolist()]}...", pytrace=False)


@pytest.mark.points(2)
def test_build_mlp_layer_order(make_mlp):
    """build_mlp(2, 20, 'tanh', batchnorm=True, dropout=0.3) has its modules in the contract's order."""
    net = make_mlp(2, 20, "tanh", batchnorm=True, dropout=0.3)
    if not isinstance(net, torch.nn.Sequential):
        pytest.fail(f"build_mlp must return an nn.Sequential, got {type(net).__name__}", pytrace=False)
    hidden = ["Linear", "BatchNorm1d", "Tanh", "Dropout"]
    expected = ["Flatten", *hidden, *hidden, "Linear", "LogSoftmax"]
    got = checks.module_types(net)
    if got != expected:
        pytest.fail(f"build_mlp(2, 20, 'tanh', batchnorm=True, dropout=0.3): expected modules {expected}, "
                    f"got {got}", pytrace=False)


@pytest.mark.points(2)
@pytest.mark.parametrize("depth, width", [(1, 10), (3, 20)])
def test_build_mlp_layer_sizes(make_mlp, depth, width):
    """Hidden layers are all `width` wide: 784 -> width -> ... -> width -> 10."""
    net = make_mlp(depth, width, "relu")
    sizes = [(layer.in_features, layer.out_features) for layer in checks.linear_layers(net)]
    expected = [(784, width)] + [(width, width)] * (depth - 1) + [(width, 10)]
    if sizes != expected:
        pytest.fail(f"build_mlp({depth}, {width}, 'relu'): expected nn.Linear sizes {expected}, got {sizes}",
                    pytrace=False)


@pytest.mark.points(1)
def test_expected_parameters_example(analysis, make_mlp):
    """expected_parameters(2, 50) is 42,310 and build_mlp(2, 50, ...) has that many parameters."""
    got = call_student("expected_parameters(2, 50)", analysis.expected_parameters, 2, 50)
    if got != 42_310:
        pytest.fail(f"expected_parameters(2, 50): expected 42,310 (784 -> 50 -> 50 -> 10 with biases), got {got}",
                    pytrace=False)
    assert_parameter_count(make_mlp(2, 50, "relu"), 42_310, "Layers: 784 -> 50 -> 50 -> 10, each with a bias.")


@pytest.mark.points(1)
def test_build_mlp_parameters_match_formula(analysis, make_mlp):
    """build_mlp(3, 20, batchnorm=True) has expected_parameters(3, 20, batchnorm=True) parameters."""
    expected = call_student("expected_parameters(3, 20, batchnorm=True)", analysis.expected_parameters, 3, 20,
                            batchnorm=True)
    assert_parameter_count(make_mlp(3, 20, "relu", batchnorm=True), expected,
                           "build_mlp and expected_parameters disagree.")


@pytest.mark.points(2)
def test_build_mlp_gradients_reach_every_parameter(make_mlp):
    """One backward pass gives every parameter (BatchNorm included) a finite, non-zero gradient."""
    net = make_mlp(3, 32, "leakyrelu", batchnorm=True, dropout=0.1).train()
    out = call_student("forward of build_mlp", net, torch.randn(64, 1, 28, 28))
    loss = torch.nn.functional.nll_loss(out, torch.randint(0, 10, (64,)))
    assert_gradients_flow(net, loss)


@pytest.mark.points(2)
@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_init_weights_statistics(make_mlp, init):
    """init='normal' (std 0.02), 'xavier' (uniform, bound sqrt(6/(in+out))), 'he' (std sqrt(2/in)); biases 0."""
    net = make_mlp(2, 256, "relu", init=init)
    for layer in checks.linear_layers(net)[:2]:
        fan_out, fan_in = layer.weight.shape
        w = layer.weight.detach()
        bound = (6 / (fan_in + fan_out)) ** 0.5  # Xavier's uniform range
        expected_std = {"normal": 0.02, "xavier": bound / 3**0.5, "he": (2 / fan_in) ** 0.5}[init]
        if init == "xavier" and w.abs().max() > bound + 1e-6:
            pytest.fail(f"init='xavier': weights of nn.Linear({fan_in}, {fan_out}) must lie in [-{bound:.4f}, "
                        f"{bound:.4f}], found {w.abs().max():.4f}", pytrace=False)
        if abs(w.std().item() - expected_std) > 0.05 * expected_std or abs(w.mean().item()) > 0.1 * expected_std:
            pytest.fail(f"init={init!r}: weights of nn.Linear({fan_in}, {fan_out}) should have mean 0 and std "
                        f"{expected_std:.4f}, got mean {w.mean():.4f} and std {w.std():.4f}", pytrace=False)
        if layer.bias is not None and layer.bias.detach().abs().max() != 0:
            pytest.fail(f"init={init!r}: biases must be 0, got values up to {layer.bias.abs().max():.4f}",
                        pytrace=False)


@pytest.mark.points(1)
def test_build_mlp_device_check(analysis):
    """build_mlp runs forward and backward on the 'meta' device (no GPU needed), BatchNorm and dropout on."""
    assert_runs_on_device(lambda: analysis.build_mlp(2, 16, "sigmoid", batchnorm=True, dropout=0.2, init="xavier"),
                          torch.randn(4, 1, 28, 28), "meta")


@pytest.mark.gpu
@pytest.mark.points(0)
def test_build_mlp_runs_on_gpu(analysis):
    """build_mlp runs forward and backward on CUDA."""
    assert_runs_on_device(lambda: analysis.build_mlp(2, 16, "relu", batchnorm=True, dropout=0.2),
                          torch.randn(4, 1, 28, 28), "cuda")


@pytest.mark.slow
@pytest.mark.points(2)
def test_build_mlp_trains(analysis, mnist_train):
    """Trained by train.py's code for one epoch on 10,000 images, build_mlp(2, 50, 'relu') passes 85% validation accuracy."""
    images, labels = mnist_train
    config = kit_runs.RunConfig(train_size=10_000, lr=0.003)
    row = call_student("training build_mlp(2, 50, 'relu')", kit_runs.train_run, config, 0, images, labels,
                       build=analysis.build_mlp)
    accuracy = row["history"][-1]["val_acc"]
    if accuracy < 0.85:
        pytest.fail(f"after one epoch on 10,000 images (Adam, lr 0.003) the validation accuracy is {accuracy:.2%}, "
                    "below 85% (the reference reaches 89% to 92% over seeds 0-4)", pytrace=False)


# ------------------------------------------------------------------------------------------ results.jsonl
@pytest.mark.points(2)
def test_results_rows_valid(root):
    """Every line of results.jsonl is a valid row: schema, finite losses, accuracies in [0, 1]."""
    path = root / kit_runs.RESULTS_FILE
    if not path.is_file():
        pytest.fail(f"{kit_runs.RESULTS_FILE} not found: run `python sweep.py` to create it", pytrace=False)
    rows, bad = kit_runs.read_results(path)
    if bad:
        shown = "\n".join(f"line {number}: {problem}" for number, problem in bad[:5])
        pytest.fail(f"{len(bad)} invalid line(s) in {kit_runs.RESULTS_FILE} (`python sweep.py` removes cut-short "
                    f"lines):\n{shown}", pytrace=False)
    if not rows:
        pytest.fail(f"{kit_runs.RESULTS_FILE} holds no rows: run `python sweep.py`", pytrace=False)


@pytest.mark.points(3)
def test_results_cover_grid(studies, results):
    """results.jsonl holds every run of grid.toml (all studies, all seeds)."""
    missing = checks.missing_runs(studies, results)
    if missing:
        total = len(kit_runs.grid_runs(studies))
        shown = "\n".join(missing[:5])
        pytest.fail(f"{len(missing)} of the {total} runs of grid.toml are missing from {kit_runs.RESULTS_FILE}: "
                    f"run `python sweep.py` (it resumes where it stopped). First missing:\n{shown}", pytrace=False)


@pytest.mark.slow
@pytest.mark.points(2)
def test_results_rerun_matches(analysis, studies, results, mnist_train):
    """One run of results.jsonl, re-trained with your build_mlp and the same seed, reproduces its row."""
    checks.check_reruns(analysis, studies, results, mnist_train, checks.choose_runs(studies, 1, "visible"))


# ------------------------------------------------------------------------------------------ plots
@pytest.mark.points(1)
@pytest.mark.parametrize("name", kit_plots.FIGURES)
def test_plot_files_valid(root, name):
    """plot_<name>.png is a valid PNG image and plot_<name>.json holds figure data (both from plots.py)."""
    png, data = kit_plots.file_names(name)
    for file in (png, data):
        if not (root / file).is_file():
            pytest.fail(f"{file} not found: run `python plots.py` after the sweep and submit what it writes",
                        pytrace=False)
    try:
        checks.png_text_chunks(root / png)
    except ValueError as err:
        pytest.fail(f"{png} is not a valid PNG image: {err}", pytrace=False)
    try:
        figure = json.loads((root / data).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        pytest.fail(f"{data} is not valid JSON: {err}", pytrace=False)
    if not isinstance(figure, dict) or not figure.get("panels"):
        pytest.fail(f"{data} does not hold the figure data that plots.py writes", pytrace=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("name", kit_plots.FIGURES)
def test_plot_drawn_from_results(root, studies, name):
    """plot_<name>.json and .png hold exactly what plots.py draws from the submitted results.jsonl."""
    png, data = kit_plots.file_names(name)
    if not (root / data).is_file() or not (root / png).is_file():
        pytest.fail(f"{png} or {data} not found: run `python plots.py`", pytrace=False)
    rows, _ = kit_runs.read_results(root / kit_runs.RESULTS_FILE)
    expected = kit_plots.figure_data(rows, studies)[name]
    try:
        submitted = json.loads((root / data).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        submitted = None
    if not checks.same_data(submitted, expected):
        pytest.fail(f"{data} differs from what plots.py draws from your {kit_runs.RESULTS_FILE}: run "
                    "`python plots.py` again after your last change to the results and submit its output",
                    pytrace=False)
    try:
        stamp = checks.png_text_chunks(root / png).get(kit_plots.FINGERPRINT_KEY, "")
    except ValueError as err:
        pytest.fail(f"{png} is not a valid PNG image: {err}", pytrace=False)
    if stamp != kit_plots.FINGERPRINT_PREFIX + kit_plots.fingerprint(expected):
        pytest.fail(f"{png} was not drawn by plots.py from your current {kit_runs.RESULTS_FILE} (its data "
                    "fingerprint differs): run `python plots.py` again and submit the new images", pytrace=False)


# ------------------------------------------------------------------------------------------ report
@pytest.mark.points(2)
def test_report_answers_every_question(root):
    """report.md answers every question of the template (a few words at least under each)."""
    missing = checks.unanswered(checks.read_report(root))
    if missing:
        pytest.fail(f"{checks.REPORT_FILE}: no answer under {', '.join(missing)} (write it below the quoted question, "
                    f"keeping the '## Q<n>' headings of the template; questions: {', '.join(checks.QUESTIONS)})",
                    pytrace=False)


@pytest.mark.points(0)
def test_report_content_graded_by_human(root):
    """report.md: its content is graded by a human grader, not by these tests (0 points here)."""
    missing = checks.unanswered(checks.read_report(root))
    if missing:
        pytest.fail(f"{checks.REPORT_FILE} is not complete yet ({', '.join(missing)} unanswered). Once submitted, a human "
                    "grader reads and grades your answers; these tests only check that they are there.",
                    pytrace=False)
