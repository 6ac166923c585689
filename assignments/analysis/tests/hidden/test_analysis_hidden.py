"""Hidden tests of the analysis assignment: the same contract as the visible ones, probed more widely."""
import pytest
import torch

import analysis_checks as checks
import plan
import runs as kit_runs
from analysis_contract import (
    expect_value_error, formula_hint, layers, linear_layers, module_names, modules_hint, number_of, pytorch_default,
    reference_parameters, reused_activation, tensor_of, torch_nn_step, value_of,
)
from mnistkit.checks import assert_device_follows_input, assert_runs_on, count_parameters, fail, run
from mnistkit.layers import layer_problems
from mnistkit.tracing import trace_forward
from mnistkit.train import EXPONENTIAL_FINAL

# Where the reference finds the best learning rate of the lr study (mean test accuracy over seeds 0-2), and
# the smallest best accuracy a correct builder reaches there. Measured with bench/analysis_grid.py; see
# assignments/analysis/README.md ("What the grader checks") for the band.
REFERENCE_BEST_LR = {"relu": 0.003, "tanh": 0.001, "sigmoid": 0.003, "leakyrelu": 0.003}
BEST_LR_BAND_STEPS = 1  # the student's best lr may be this many grid steps away from the reference's
MIN_BEST_TEST_ACC = {"relu": 0.93, "tanh": 0.93, "sigmoid": 0.92, "leakyrelu": 0.93}


# ------------------------------------------------------------------------------------------ the builder
@pytest.mark.points(2)
def test_build_mlp_parameter_count_formula(probe, mlp, plan_seed):
    """For depths, widths and batchnorm (fixed corners and some drawn per grading), build_mlp and expected_parameters agree with the formula."""
    formulas = probe.steps("expected_parameters")
    for index, (depth, width, batchnorm) in enumerate(plan.count_configs(plan_seed)):
        expected = reference_parameters(depth, width, batchnorm)
        call = f"expected_parameters({depth}, {width}, batchnorm={batchnorm})"
        formula = number_of(formulas.get(f"count/{index}"), call)
        if formula != expected:
            fail(f"{call} returned {formula:,}, but such a network has {expected:,} trainable parameters"
                 + formula_hint(depth, width, batchnorm, formula))
        got = count_parameters(mlp(f"count/{index}"))
        if got != expected:
            fail(f"build_mlp({depth}, {width}, 'relu', batchnorm={batchnorm}) has {got:,} trainable parameters, "
                 f"expected {expected:,}")


@pytest.mark.points(1)
@pytest.mark.parametrize("activation, batchnorm, dropout", plan.ORDER_OPTIONS)
def test_build_mlp_module_order_all_options(mlp, activation, batchnorm, dropout):
    """Every option combination gives Flatten, [Linear, (BatchNorm1d), act, (Dropout)] x depth, Linear, LogSoftmax."""
    call = f"build_mlp(3, 12, {activation!r}, batchnorm={batchnorm}, dropout={dropout})"
    net = mlp(plan.order_id(activation, batchnorm, dropout))
    trace = trace_forward(net.train(), torch.randn(4, 1, 28, 28))
    for op in trace.layers():
        if op.kind == "dropout" and dropout and abs(op.params["p"] - dropout) > 1e-12:
            fail(f"dropout={dropout}: found nn.Dropout(p={op.params['p']:g}) ({op.name()})")
        if op.kind == "norm" and op.params.get("features") != 12:
            fail(f"BatchNorm1d must normalise the 12 hidden units, got num_features={op.params.get('features')} "
                 f"({op.name()})")
        if op.kind == "act" and "leaky" in op.func and op.params["negative_slope"] != 0.01:
            fail(f"LeakyReLU must have negative_slope=0.01, got {op.params['negative_slope']:g} ({op.name()})")
        if op.kind == "output" and op.params.get("dim") != 1:
            fail(f"LogSoftmax must work over dim 1 (the classes), got dim={op.params.get('dim')} ({op.name()})")
    problems = layer_problems(trace, layers(3, 12, activation, batchnorm, dropout))
    if problems:
        fail(f"{call} in train mode: {problems[0]}" + modules_hint(net, module_names(3, activation, batchnorm, dropout)))


@pytest.mark.points(1)
def test_build_mlp_defaults_have_no_batchnorm_or_dropout(mlp):
    """build_mlp(2, 50, 'relu') has no BatchNorm and no Dropout module (the defaults are off)."""
    net = mlp("mlp/2x50-relu")
    trace = trace_forward(net.train(), torch.randn(4, 1, 28, 28))
    extra = [op.name() for op in trace.layers() if op.kind in ("norm", "dropout")]
    expected = module_names(2, "relu")
    if extra:
        fail(f"build_mlp(2, 50, 'relu') runs {', '.join(extra)} in train mode: with the defaults batchnorm=False and "
             f"dropout=0.0 there is no BatchNorm1d and no Dropout" + modules_hint(net, expected))
    problems = layer_problems(trace, layers(2, 50, "relu"))
    if problems:
        fail(f"build_mlp(2, 50, 'relu'): {problems[0]}" + modules_hint(net, expected))


@pytest.mark.points(1)
def test_build_mlp_activation_modules_distinct(mlp, probe):
    """Each hidden layer has its own activation module, and make_activation returns a new one per call."""
    reused = reused_activation(mlp("distinct/3x8-leakyrelu"))
    if reused:
        fail(f"build_mlp(3, 8, 'leakyrelu'): {reused}")
    steps = probe.steps("make_activation/twice")
    a = value_of(steps.get("a_identity"), "make_activation('tanh')")
    b = value_of(steps.get("b_identity"), "make_activation('tanh')")
    if a == b:
        fail("make_activation('tanh') returned the same object twice; return a new module each call")


@pytest.mark.points(2)
def test_build_mlp_dropout_only_in_train_mode(mlp):
    """With dropout, two train-mode passes differ and two eval-mode passes are identical."""
    net = mlp("dropout/2x64-relu-do0.5")
    x = torch.randn(32, 1, 28, 28)
    net.train()
    a, b = run("train-mode forward", net, x), run("train-mode forward", net, x)
    if torch.equal(a, b):
        fail("dropout=0.5: two train-mode passes gave identical outputs; is nn.Dropout in the network?")
    net.eval()
    if not torch.equal(run("eval-mode forward", net, x), run("eval-mode forward", net, x)):
        fail("dropout=0.5: two eval-mode passes differ; dropout must be off in eval mode")


@pytest.mark.points(1)
def test_build_mlp_batchnorm_eval_single_image(mlp):
    """With batchnorm, eval mode works on one image and matches that image inside a larger batch."""
    net = mlp("bn-eval/2x32-tanh-bn")
    net.train()
    with torch.no_grad():
        run("train-mode forward", net, torch.randn(64, 1, 28, 28))  # update the running statistics once
    net.eval()
    x = torch.randn(8, 784)
    alone = run("eval-mode forward of one image", net, x[:1])
    batch = run("eval-mode forward", net, x)
    if not torch.allclose(alone, batch[:1], atol=1e-5):
        fail("in eval mode the output for an image depends on the rest of the batch: BatchNorm1d must use its "
             "running statistics in eval mode (use nn.BatchNorm1d)")


@pytest.mark.points(1)
def test_build_mlp_flat_and_image_input_agree(mlp):
    """In eval mode, (N, 1, 28, 28) input and the same images as (N, 784) give the same output."""
    net = mlp("flat/2x20-sigmoid-bn-do0.2").eval()
    x = torch.randn(5, 1, 28, 28)
    a = run("forward", net, x)
    b = run("forward on (N, 784) input", net, x.reshape(5, 784))
    if not torch.allclose(a, b, atol=1e-6):
        fail("outputs for (5, 1, 28, 28) input and the same images as (5, 784) differ")


@pytest.mark.points(1)
@pytest.mark.parametrize("case", list(plan.INVALID))
def test_build_mlp_rejects_invalid_arguments(probe, case):
    """build_mlp raises ValueError for depth or width < 1, dropout outside [0, 1), unknown names."""
    shown = ", ".join(f"{k}={v!r}" for k, v in plan.INVALID[case].items())
    expect_value_error(probe.steps("invalid").get(f"build_mlp/{case}"), f"build_mlp({shown})")


@pytest.mark.points(1)
def test_build_mlp_seeded_reproducible(mlp):
    """The same torch seed builds the same weights, for every init."""
    for init in plan.INITS:
        a = dict(mlp(f"seeded/{init}/a").named_state())
        b = dict(mlp(f"seeded/{init}/b").named_state())
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            fail(f"init={init!r}: two networks built after torch.manual_seed({plan.SEEDED_BUILD_SEED}) differ; draw "
                 "every random number from torch's global generator")


# ------------------------------------------------------------------------------------------ initialisation
@pytest.mark.points(1)
def test_init_default_keeps_pytorch_initialisation(mlp):
    """init='default' keeps PyTorch's nn.Linear initialisation (uniform in +-1/sqrt(fan_in), biases too)."""
    for _, w, b in linear_layers(mlp("init/default"), "build_mlp(2, 256, 'relu', init='default')"):
        fan_out, fan_in = w.shape
        bound = fan_in ** -0.5
        if (w.abs().max() > bound + 1e-6 or w.std() < 0.8 * bound / 3**0.5 or b is None or b.abs().max() == 0
                or b.abs().max() > bound + 1e-6):
            fail(f"init='default' changed nn.Linear({fan_in}, {fan_out}): expected PyTorch's own uniform weights and "
                 f"biases within +-{bound:.4f}")


@pytest.mark.points(2)
@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_init_weights_every_linear_layer(probe, init):
    """init_weights re-initialises every nn.Linear, nested ones and the output layer included, in place."""
    steps = probe.steps(f"init_weights/{init}")
    what = f"init_weights(model, {init!r})"
    for name in ("l1", "relu", "l2", "inner", "bn", "model", "bn_weight_set", "bn_bias_set", "model_identity"):
        torch_nn_step(steps, name, what)
    value_of(steps.get("returned"), what)
    if value_of(steps.get("returned_identity"), what) != value_of(steps.get("model_identity"), what):
        fail(f"init_weights(model, {init!r}) must return the model it was given")
    places = {"w1": "the model's first layer", "w2": "inside the nested nn.Sequential"}
    for weight, bias, (fan_in, fan_out) in (("w1", "b1", (300, 400)), ("w2", "b2", (400, 30))):
        w, b = tensor_of(steps.get(weight), f"{what}: the weight"), tensor_of(steps.get(bias), f"{what}: the bias")
        layer = f"nn.Linear({fan_in}, {fan_out})"
        if pytorch_default(w, b):
            fail(f"init_weights(model, {init!r}) left {layer} ({places[weight]}) as PyTorch initialised it: "
                 "re-initialise every nn.Linear of model.modules(), nested ones and the last one included")
        expected = {"normal": 0.02, "xavier": (2 / (fan_in + fan_out)) ** 0.5, "he": (2 / fan_in) ** 0.5}[init]
        std = w.std().item()
        if abs(std - expected) > 0.06 * expected:
            fail(f"init_weights(model, {init!r}) on {layer}: expected weight std {expected:.4f}, got {std:.4f}")
        if b.abs().max() != 0:
            fail(f"init_weights(model, {init!r}) on {layer}: biases must be 0, got values up to {b.abs().max():.4f}")
    bn_weight = tensor_of(steps.get("bn_weight"), f"{what}: the BatchNorm1d weight")
    bn_bias = tensor_of(steps.get("bn_bias"), f"{what}: the BatchNorm1d bias")
    if not (torch.all(bn_weight == 2.0) and torch.all(bn_bias == 0.5)):
        fail(f"init_weights(model, {init!r}) changed a BatchNorm1d layer; only nn.Linear layers are re-initialised")


@pytest.mark.points(1)
def test_init_weights_rejects_unknown_scheme(probe):
    """init_weights raises ValueError for an unknown scheme."""
    steps = probe.steps("init_weights/unknown")
    what = "init_weights(nn.Linear(3, 3), 'orthogonal')"
    torch_nn_step(steps, "layer", what)
    expect_value_error(steps.get("returned"), what)


@pytest.mark.points(1)
@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_build_mlp_device_check_each_init(mlp, init):
    """Every init, with flat (N, 784) input, runs forward and backward on the 'meta' device."""
    what = f"build_mlp(3, 8, 'tanh', batchnorm=True, dropout=0.1, init={init!r})"
    net = mlp(f"device-init/{init}")
    assert_device_follows_input(net, what)
    assert_runs_on(net.train(), "meta", torch.randn(4, 784), what)


# ------------------------------------------------------------------------------------------ results.jsonl
def grid_rows(studies, results):
    rows = []
    for study in studies.values():
        rows.extend(results[k] for k in (kit_runs.run_key(c, s) for c, s in study.runs) if k in results)
    return rows


@pytest.mark.points(1)
def test_results_parameter_counts_consistent(studies, results):
    """Every row of the grid records the parameter count its configuration has."""
    wrong = []
    for row in grid_rows(studies, results):
        c = row["config"]
        expected = reference_parameters(c["depth"], c["width"], c["batchnorm"])
        if row["parameters"] != expected:
            wrong.append(f"{checks.describe(c, row['seed'])}: {row['parameters']:,} (a network of that shape has "
                         f"{expected:,})")
    if not grid_rows(studies, results):
        fail(f"no runs of grid.toml in {kit_runs.RESULTS_FILE}: run `python sweep.py`")
    if wrong:
        fail(f"{len(wrong)} row(s) record a parameter count their configuration cannot have:\n" + "\n".join(wrong[:5]))


@pytest.mark.points(1)
def test_results_learning_rates_follow_schedule(studies, results):
    """The learning rate recorded per epoch follows each row's schedule (constant, exponential, cosine)."""
    wrong = []
    rows = grid_rows(studies, results)
    if not rows:
        fail(f"no runs of grid.toml in {kit_runs.RESULTS_FILE}: run `python sweep.py`")
    for row in rows:
        c = row["config"]
        last = row["history"][-1]["lr"]
        expected = {"none": c["lr"], "exponential": c["lr"] * EXPONENTIAL_FINAL, "cosine": 0.0}[c["scheduler"]]
        if abs(last - expected) > 1e-6 * c["lr"]:
            wrong.append(f"{checks.describe(c, row['seed'])}: last lr {last:.3g}, expected {expected:.3g}")
    if wrong:
        fail(f"{len(wrong)} row(s) end with a learning rate their schedule cannot reach:\n" + "\n".join(wrong[:5]))


def lr_study_table(studies, results):
    """``{activation: {lr: mean test accuracy over the seeds found}}`` of the lr study."""
    table = {}
    for config, seed in studies["lr"].runs:
        row = results.get(kit_runs.run_key(config, seed))
        if row is not None:
            table.setdefault(config.activation, {}).setdefault(config.lr, []).append(row["test_acc"])
    return {a: {lr: sum(v) / len(v) for lr, v in by_lr.items()} for a, by_lr in table.items()}


@pytest.mark.points(3)
def test_results_best_learning_rate_per_activation(studies, results):
    """For each activation, the best learning rate of the lr study is within one grid step of the reference's."""
    missing = checks.missing_runs(studies, results, names=("lr",))
    if missing:
        fail(f"the lr study is incomplete ({len(missing)} run(s) missing): run `python sweep.py`")
    grid = studies["lr"].axes["lr"]
    table = lr_study_table(studies, results)
    wrong = []
    for activation, reference in REFERENCE_BEST_LR.items():
        best = max(table[activation], key=table[activation].get)
        if abs(grid.index(best) - grid.index(reference)) > BEST_LR_BAND_STEPS:
            wrong.append(f"{activation}: your best learning rate is {best:g}")
    if wrong:
        fail("for these activations the best learning rate (mean test accuracy over the seeds) is more than one grid "
             f"step from where a correct build_mlp puts it: {'; '.join(wrong)}. Check the activation functions of "
             "your build_mlp and that the rows come from the sweep")


@pytest.mark.points(1)
def test_results_best_accuracy_plausible(studies, results):
    """For each activation, the best mean test accuracy of the lr study is as high as a correct builder reaches."""
    table = lr_study_table(studies, results)
    low = []
    for activation, floor in MIN_BEST_TEST_ACC.items():
        best = max(table.get(activation, {0: 0.0}).values())
        if best < floor:
            low.append(f"{activation}: {best:.2%}")
    if low:
        fail(f"the best mean test accuracy of the lr study is low for {'; '.join(low)} (one epoch of Adam reaches "
             "more with a correct build_mlp)")


@pytest.mark.slow
@pytest.mark.points(6)
def test_results_rerun_matches_hidden(check_reruns):
    """A few runs chosen at random, re-trained with your build_mlp and their seeds, reproduce their rows (test results included)."""
    check_reruns("hidden")
