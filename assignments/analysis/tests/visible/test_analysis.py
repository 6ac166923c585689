"""Visible tests of the analysis assignment. Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. Your
analysis.py reaches the tests as the grader sees it: its networks exported with torch.export and its
functions' results recorded by the probe (tests/plan.py says what it computes), so what passes here
passes there.
"""
import json

import pytest
import torch
import torch.nn.functional as F

import analysis_checks as checks
import plots as kit_plots
import runs as kit_runs
from analysis_contract import (
    FUNCTIONS, MODULES, expect_value_error, formula_hint, layers, linear_layers, module_names, modules_hint, number_of,
    pytorch_default, reference_parameters, root_type, train_probe_network,
)
from mnistkit.checks import (
    assert_device_follows_input,
    assert_dtype,
    assert_gradients_flow,
    assert_layers_only,
    assert_log_probabilities,
    assert_parameter_count,
    assert_runs_on,
    assert_shape,
    count_parameters,
    fail,
    run,
)
from mnistkit.layers import layer_problems, token
from mnistkit.tracing import trace_forward

NORMAL_INITS = {"normal": "nn.init.normal_", "he": "nn.init.kaiming_normal_"}  # the schemes that draw normally
UNIFORM_LIMIT = 2.5  # standard deviations some of the weights of a normal draw exceed (a uniform one: sqrt(3))
ACTIVATION_INPUT = torch.tensor([[-3.0, -0.5, 0.0, 0.5, 3.0], [-100.0, -1e-3, 1e-3, 2.0, 100.0]])


# ------------------------------------------------------------------------------------------ the builder
@pytest.mark.points(1)
@pytest.mark.parametrize("name", list(MODULES))
def test_make_activation_returns_module(probe, name):
    """make_activation(name) returns the matching module (LeakyReLU with slope 0.01)."""
    net = probe.network(f"act/{name}")
    what = f"make_activation({name!r})"
    trace = trace_forward(net.eval(), ACTIVATION_INPUT)
    if trace.error:
        fail(f"{what}: the module's forward raised {trace.error}")
    acts = [op for op in trace.layers() if op.kind == "act"]
    others = [token(op) for op in trace.layers() if op.kind != "act"]
    got = root_type(net)
    if len(acts) != 1 or acts[0].word() != MODULES[name] or others:
        computes = ", ".join(token(op) for op in trace.layers()) or "nothing"
        fail(f"{what}: expected an nn.{MODULES[name]}, got {got} (its forward computes {computes})")
    if name == "leakyrelu" and acts[0].params["negative_slope"] != 0.01:
        fail(f"{what}: expected negative_slope=0.01, got {acts[0].params['negative_slope']:g}")
    expected = FUNCTIONS[name](ACTIVATION_INPUT)
    if not isinstance(trace.output, torch.Tensor) or not torch.allclose(trace.output, expected, atol=1e-6):
        fail(f"{what}: the module's output for {ACTIVATION_INPUT[0].tolist()} is not nn.{MODULES[name]}'s "
             f"{[round(v, 4) for v in expected[0].tolist()]}")


@pytest.mark.points(1)
def test_make_activation_rejects_unknown_name(probe):
    """make_activation raises ValueError for a name it does not know."""
    expect_value_error(probe.steps("invalid").get("make_activation/swish"), "make_activation('swish')")


@pytest.mark.points(2)
@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (16, 784)])
def test_build_mlp_output_shape(mlp, shape):
    """build_mlp maps (N, 1, 28, 28) or (N, 784) input to (N, 10) float32 log-probabilities."""
    net = mlp("mlp/2x50-relu").eval()
    out = run("forward of build_mlp(2, 50, 'relu')", net, torch.randn(*shape))
    assert_shape(out, (16, 10), f"output of build_mlp(2, 50, 'relu') for input {shape}")
    assert_dtype(out, torch.float32, "output of build_mlp")
    assert_log_probabilities(out, "output of build_mlp(2, 50, 'relu') (nn.LogSoftmax(dim=1) last)")


@pytest.mark.points(2)
def test_build_mlp_layer_order(mlp):
    """build_mlp(2, 20, 'tanh', batchnorm=True, dropout=0.3) has its modules in the contract's order."""
    net = mlp("order/2x20-tanh-bn-do0.3")
    problems = layer_problems(trace_forward(net.train(), torch.randn(4, 1, 28, 28)), layers(2, 20, "tanh", True, 0.3))
    if problems:
        fail(f"build_mlp(2, 20, 'tanh', batchnorm=True, dropout=0.3) in train mode: {problems[0]}"
             + modules_hint(net, module_names(2, "tanh", True, 0.3)))


@pytest.mark.points(2)
@pytest.mark.parametrize("depth, width", [(1, 10), (3, 20)])
def test_build_mlp_layer_sizes(mlp, depth, width):
    """Hidden layers are all `width` wide: 784 -> width -> ... -> width -> 10."""
    net = mlp(f"sizes/{depth}x{width}-relu").eval()
    trace = trace_forward(net, torch.randn(2, 1, 28, 28))
    sizes = [(op.params["in_features"], op.params["out_features"]) for op in trace.layers() if op.kind == "linear"]
    expected = [(784, width)] + [(width, width)] * (depth - 1) + [(width, 10)]
    if sizes != expected:
        fail(f"build_mlp({depth}, {width}, 'relu'): expected nn.Linear sizes {expected}, got {sizes}"
             + (f" (forward stopped: {trace.error})" if trace.error else ""))


@pytest.mark.points(1)
def test_expected_parameters_example(probe, mlp):
    """expected_parameters(2, 50) is 42,310 and build_mlp(2, 50, ...) has that many parameters."""
    got = number_of(probe.steps("expected_parameters").get("2x50"), "expected_parameters(2, 50)")
    if got != 42_310:
        fail(f"expected_parameters(2, 50): expected 42,310 (784 -> 50 -> 50 -> 10 with biases), got {got:,}"
             + formula_hint(2, 50, False, got))
    assert_parameter_count(mlp("mlp/2x50-relu"), 42_310, "Layers: 784 -> 50 -> 50 -> 10, each with a bias.")


@pytest.mark.points(1)
def test_build_mlp_parameters_match_formula(probe, mlp):
    """build_mlp(3, 20, batchnorm=True) has expected_parameters(3, 20, batchnorm=True) parameters."""
    call = "expected_parameters(3, 20, batchnorm=True)"
    expected = number_of(probe.steps("expected_parameters").get("3x20-bn"), call)
    net, actual = mlp("params/3x20-relu-bn"), reference_parameters(3, 20, True)
    if expected != actual and count_parameters(net) == actual:  # the network is right: the formula is not
        fail(f"{call} returned {expected:,}, but build_mlp(3, 20, 'relu', batchnorm=True) has {actual:,} trainable "
             f"parameters, as such a network must{formula_hint(3, 20, True, expected)}")
    assert_parameter_count(net, expected, "build_mlp(3, 20, 'relu', batchnorm=True) and expected_parameters disagree.")


@pytest.mark.points(2)
def test_build_mlp_gradients_reach_every_parameter(mlp):
    """One backward pass gives every parameter (BatchNorm included) a finite, non-zero gradient."""
    net = mlp("grad/3x32-leakyrelu-bn-do0.1").train()
    out = run("forward of build_mlp(3, 32, 'leakyrelu', batchnorm=True, dropout=0.1)", net, torch.randn(64, 1, 28, 28))
    loss = F.nll_loss(out, torch.randint(0, 10, (64,)))
    assert_gradients_flow(net, loss)


@pytest.mark.points(2)
@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_init_weights_statistics(mlp, init):
    """init='normal' (std 0.02), 'xavier' (uniform, bound sqrt(6/(in+out))), 'he' (std sqrt(2/in)); biases 0."""
    what = f"build_mlp(2, 256, 'relu', init={init!r})"
    for _, w, bias in linear_layers(mlp(f"init/{init}"), what)[:2]:
        fan_out, fan_in = w.shape
        if pytorch_default(w, bias):
            fail(f"init={init!r}: nn.Linear({fan_in}, {fan_out}) keeps PyTorch's default initialisation (uniform "
                 f"weights and biases within +-{fan_in ** -0.5:.4f}): init_weights must re-initialise every nn.Linear "
                 "of the model")
        bound = (6 / (fan_in + fan_out)) ** 0.5  # Xavier's uniform range
        expected_std = {"normal": 0.02, "xavier": bound / 3**0.5, "he": (2 / fan_in) ** 0.5}[init]
        if init == "xavier" and w.abs().max() > bound + 1e-6:
            fail(f"init='xavier': weights of nn.Linear({fan_in}, {fan_out}) must lie in [-{bound:.4f}, {bound:.4f}], "
                 f"found {w.abs().max():.4f}")
        if abs(w.std().item() - expected_std) > 0.05 * expected_std or abs(w.mean().item()) > 0.1 * expected_std:
            fail(f"init={init!r}: weights of nn.Linear({fan_in}, {fan_out}) should have mean 0 and std "
                 f"{expected_std:.4f}, got mean {w.mean():.4f} and std {w.std():.4f}")
        largest = w.abs().max().item()
        if init in NORMAL_INITS and largest < UNIFORM_LIMIT * expected_std:
            # Uniform draws stay within sqrt(3) standard deviations; thousands of normal ones never all do.
            fail(f"init={init!r}: the weights of nn.Linear({fan_in}, {fan_out}) all lie within +-{largest:.4f} "
                 f"({largest / expected_std:.2f} standard deviations), as uniform draws do: {init!r} draws them from a "
                 f"normal distribution ({NORMAL_INITS[init]})")
        if bias is not None and bias.abs().max() != 0:
            fail(f"init={init!r}: biases must be 0, got values up to {bias.abs().max():.4f}")


@pytest.mark.points(1)
def test_build_mlp_device_check(mlp):
    """build_mlp runs forward and backward on the 'meta' device (no GPU needed), BatchNorm and dropout on."""
    what = "build_mlp(2, 16, 'sigmoid', batchnorm=True, dropout=0.2, init='xavier')"
    net = mlp("device/2x16-sigmoid-bn-do0.2-xavier")
    assert_device_follows_input(net, what)
    assert_runs_on(net.train(), "meta", torch.randn(4, 1, 28, 28), what)


@pytest.mark.gpu
@pytest.mark.points(0)
def test_build_mlp_runs_on_gpu(mlp):
    """build_mlp runs forward and backward on CUDA."""
    assert_runs_on(mlp("gpu/2x16-relu-bn-do0.2").train(), "cuda", torch.randn(4, 1, 28, 28),
                   "build_mlp(2, 16, 'relu', batchnorm=True, dropout=0.2)")


@pytest.mark.slow
@pytest.mark.points(2)
def test_build_mlp_trains(probe, mlp, mnist_data):
    """Trained by train.py's code for one epoch on 10,000 images, build_mlp(2, 50, 'relu') passes 85% validation accuracy."""
    assert_layers_only(mlp("mlp/2x50-relu"), "build_mlp(2, 50, 'relu')")
    config = kit_runs.RunConfig(train_size=10_000, lr=0.003)
    row = train_probe_network(probe, "mlp/2x50-relu", config, 0, mnist_data[:2] + (None, None),
                              "training build_mlp(2, 50, 'relu')")
    accuracy = row["history"][-1]["val_acc"]
    if accuracy < 0.85:
        fail(f"after one epoch on 10,000 images (Adam, lr 0.003) the validation accuracy is {accuracy:.2%}, "
             "below 85% (the reference reaches 89% to 92% over seeds 0-4)")


# ------------------------------------------------------------------------------------------ results.jsonl
@pytest.mark.points(2)
def test_results_rows_valid(results_path):
    """Every line of results.jsonl is a valid row: schema, finite losses, accuracies in [0, 1]."""
    if not results_path.is_file():
        fail(f"{kit_runs.RESULTS_FILE} not found: run `python sweep.py` to create it")
    rows, bad = checks.valid_rows(results_path)
    if bad:
        shown = "\n".join(f"line {number}: {problem}" for number, problem in bad[:5])
        fail(f"{len(bad)} invalid line(s) in {kit_runs.RESULTS_FILE} (`python sweep.py` removes cut-short "
             f"lines):\n{shown}")
    if not rows:
        fail(f"{kit_runs.RESULTS_FILE} holds no rows: run `python sweep.py`")


@pytest.mark.points(3)
def test_results_cover_grid(studies, results):
    """results.jsonl holds every run of grid.toml (all studies, all seeds)."""
    missing = checks.missing_runs(studies, results)
    if missing:
        total = len(kit_runs.grid_runs(studies))
        shown = "\n".join(missing[:5])
        fail(f"{len(missing)} of the {total} runs of grid.toml are missing from {kit_runs.RESULTS_FILE}: "
             f"run `python sweep.py` (it resumes where it stopped). First missing:\n{shown}")


@pytest.mark.slow
@pytest.mark.points(2)
def test_results_rerun_matches(check_reruns):
    """One run of results.jsonl, re-trained with your build_mlp and the same seed, reproduces its row (test results included)."""
    check_reruns("visible")


# ------------------------------------------------------------------------------------------ plots
@pytest.mark.points(1)
@pytest.mark.parametrize("name", kit_plots.FIGURES)
def test_plot_files_valid(submitted, name):
    """plot_<name>.png is a valid PNG image and plot_<name>.json holds figure data (both from plots.py)."""
    png, data = kit_plots.file_names(name)
    for file in (png, data):
        if not submitted(file).is_file():
            fail(f"{file} not found: run `python plots.py` after the sweep and submit what it writes")
    try:
        checks.png_text(submitted(png))
    except ValueError as err:
        fail(f"{png} is not a valid PNG image: {err}")
    try:
        figure = json.loads(submitted(data).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        fail(f"{data} is not valid JSON: {err}")
    if not isinstance(figure, dict) or not figure.get("panels"):
        fail(f"{data} does not hold the figure data that plots.py writes")


@pytest.mark.points(1)
@pytest.mark.parametrize("name", kit_plots.FIGURES)
def test_plot_drawn_from_results(submitted, results_path, studies, name):
    """plot_<name>.json and .png hold exactly what plots.py draws from the submitted results.jsonl."""
    png, data = kit_plots.file_names(name)
    if not submitted(data).is_file() or not submitted(png).is_file():
        fail(f"{png} or {data} not found: run `python plots.py`")
    rows, _ = kit_runs.read_results(results_path)
    expected = kit_plots.figure_data(rows, studies)[name]
    try:
        figure = json.loads(submitted(data).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        figure = None
    if not checks.same_data(figure, expected):
        fail(f"{data} differs from what plots.py draws from your {kit_runs.RESULTS_FILE}: run `python plots.py` "
             "again after your last change to the results and submit its output")
    try:
        stamp = checks.png_text(submitted(png)).get(kit_plots.FINGERPRINT_KEY, "")
    except ValueError as err:
        fail(f"{png} is not a valid PNG image: {err}")
    if stamp != kit_plots.FINGERPRINT_PREFIX + kit_plots.fingerprint(expected):
        fail(f"{png} was not drawn by plots.py from your current {kit_runs.RESULTS_FILE} (its data fingerprint "
             "differs): run `python plots.py` again and submit the new images")


# ------------------------------------------------------------------------------------------ report
@pytest.mark.points(2)
def test_report_answers_every_question(submitted):
    """report.md answers every question of the template (a few words at least under each)."""
    missing = checks.unanswered(checks.read_report(submitted(checks.REPORT_FILE)))
    if missing:
        fail(f"{checks.REPORT_FILE}: no answer under {', '.join(missing)} (write it below the quoted question, "
             f"keeping the '## Q<n>' headings of the template; questions: {', '.join(checks.QUESTIONS)})")

