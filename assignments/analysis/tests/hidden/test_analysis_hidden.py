"""Hidden tests of the analysis assignment: the same contract as the visible ones, probed more widely."""
import hashlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import checks
import runs as kit_runs
from mnistkit.testing import assert_runs_on_device, call_student

# Where the reference finds the best learning rate of the lr study (mean test accuracy over seeds 0-2), and
# the smallest best accuracy a correct builder reaches there. Measured with bench/analysis_grid.py; see
# assignments/analysis/README.md ("What the grader checks") for the band.
REFERENCE_BEST_LR = {"relu": 0.003, "tanh": 0.001, "sigmoid": 0.003, "leakyrelu": 0.003}
BEST_LR_BAND_STEPS = 1  # the student's best lr may be this many grid steps away from the reference's
MIN_BEST_TEST_ACC = {"relu": 0.93, "tanh": 0.93, "sigmoid": 0.92, "leakyrelu": 0.93}
RERUN_SALT = "analysis-hidden-7f3c"
HIDDEN_RERUNS = 3


def reference_parameters(depth, width, batchnorm=False):
    hidden = 784 * width + width + (depth - 1) * (width * width + width)
    return hidden + 10 * width + 10 + (2 * width * depth if batchnorm else 0)


# ------------------------------------------------------------------------------------------ the builder
@pytest.mark.points(2)
@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 5), width=st.integers(1, 300), batchnorm=st.booleans())
def test_build_mlp_parameter_count_formula(analysis, depth, width, batchnorm):
    """For any depth, width and batchnorm, build_mlp and expected_parameters agree with the formula."""
    expected = reference_parameters(depth, width, batchnorm)
    formula = call_student(f"expected_parameters({depth}, {width}, batchnorm={batchnorm})",
                           analysis.expected_parameters, depth, width, batchnorm=batchnorm)
    if formula != expected:
        pytest.fail(f"expected_parameters({depth}, {width}, batchnorm={batchnorm}) returned {formula}, but such a "
                    f"network has {expected:,} trainable parameters", pytrace=False)
    net = call_student(f"build_mlp({depth}, {width}, 'relu', batchnorm={batchnorm})", analysis.build_mlp, depth,
                       width, "relu", batchnorm=batchnorm)
    got = sum(p.numel() for p in net.parameters() if p.requires_grad)
    if got != expected:
        pytest.fail(f"build_mlp({depth}, {width}, 'relu', batchnorm={batchnorm}) has {got:,} trainable parameters, "
                    f"expected {expected:,}", pytrace=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("activation, batchnorm, dropout", [
    ("relu", False, 0.0), ("tanh", True, 0.0), ("sigmoid", False, 0.25), ("leakyrelu", True, 0.5),
])
def test_build_mlp_module_order_all_options(analysis, make_mlp, activation, batchnorm, dropout):
    """Every option combination gives Flatten, [Linear, (BatchNorm1d), act, (Dropout)] x depth, Linear, LogSoftmax."""
    net = make_mlp(3, 12, activation, batchnorm=batchnorm, dropout=dropout)
    act = type(call_student("make_activation", analysis.make_activation, activation)).__name__
    hidden = ["Linear", *(["BatchNorm1d"] if batchnorm else []), act, *(["Dropout"] if dropout else [])]
    expected = ["Flatten", *hidden * 3, "Linear", "LogSoftmax"]
    got = checks.module_types(net)
    if got != expected:
        pytest.fail(f"build_mlp(3, 12, {activation!r}, batchnorm={batchnorm}, dropout={dropout}): expected modules "
                    f"{expected}, got {got}", pytrace=False)
    for module in net.children():
        if isinstance(module, torch.nn.Dropout) and abs(module.p - dropout) > 1e-12:
            pytest.fail(f"dropout={dropout}: found nn.Dropout(p={module.p})", pytrace=False)
        if isinstance(module, torch.nn.BatchNorm1d) and module.num_features != 12:
            pytest.fail(f"BatchNorm1d must normalise the 12 hidden units, got num_features={module.num_features}",
                        pytrace=False)
        if isinstance(module, torch.nn.LeakyReLU) and module.negative_slope != 0.01:
            pytest.fail(f"LeakyReLU must have negative_slope=0.01, got {module.negative_slope}", pytrace=False)
        if isinstance(module, torch.nn.LogSoftmax) and module.dim not in (1, -1):
            pytest.fail(f"LogSoftmax must work over dim 1 (the classes), got dim={module.dim}", pytrace=False)


@pytest.mark.points(1)
def test_build_mlp_defaults_have_no_batchnorm_or_dropout(make_mlp):
    """build_mlp(2, 50, 'relu') has no BatchNorm and no Dropout module (the defaults are off)."""
    got = checks.module_types(make_mlp(2, 50, "relu"))
    expected = ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear", "LogSoftmax"]
    if got != expected:
        pytest.fail(f"build_mlp(2, 50, 'relu'): expected modules {expected}, got {got}", pytrace=False)


@pytest.mark.points(1)
def test_build_mlp_activation_modules_distinct(make_mlp, analysis):
    """Each hidden layer has its own activation module, and make_activation returns a new one per call."""
    net = make_mlp(3, 8, "leakyrelu")
    acts = [m for m in net.children() if isinstance(m, torch.nn.LeakyReLU)]
    if len({id(m) for m in acts}) != len(acts):
        pytest.fail("the same activation module object is reused across hidden layers; create one per layer",
                    pytrace=False)
    a = call_student("make_activation('tanh')", analysis.make_activation, "tanh")
    b = call_student("make_activation('tanh')", analysis.make_activation, "tanh")
    if a is b:
        pytest.fail("make_activation('tanh') returned the same object twice; return a new module each call",
                    pytrace=False)


@pytest.mark.points(2)
def test_build_mlp_dropout_only_in_train_mode(make_mlp):
    """With dropout, two train-mode passes differ and two eval-mode passes are identical."""
    net = make_mlp(2, 64, "relu", dropout=0.5)
    x = torch.randn(32, 1, 28, 28)
    net.train()
    a, b = net(x), net(x)
    if torch.equal(a, b):
        pytest.fail("dropout=0.5: two train-mode passes gave identical outputs; is nn.Dropout in the network?",
                    pytrace=False)
    net.eval()
    if not torch.equal(net(x), net(x)):
        pytest.fail("dropout=0.5: two eval-mode passes differ; dropout must be off in eval mode", pytrace=False)


@pytest.mark.points(1)
def test_build_mlp_batchnorm_eval_single_image(make_mlp):
    """With batchnorm, eval mode works on one image and matches that image inside a larger batch."""
    net = make_mlp(2, 32, "tanh", batchnorm=True)
    net.train()
    with torch.no_grad():
        net(torch.randn(64, 1, 28, 28))  # update the running statistics once
    net.eval()
    x = torch.randn(8, 784)
    alone = call_student("eval-mode forward of one image", net, x[:1])
    batch = call_student("eval-mode forward", net, x)
    if not torch.allclose(alone, batch[:1], atol=1e-5):
        pytest.fail("in eval mode the output for an image depends on the rest of the batch: BatchNorm1d must use its "
                    "running statistics in eval mode (use nn.BatchNorm1d)", pytrace=False)


@pytest.mark.points(1)
def test_build_mlp_flat_and_image_input_agree(make_mlp):
    """In eval mode, (N, 1, 28, 28) input and the same images as (N, 784) give the same output."""
    net = make_mlp(2, 20, "sigmoid", batchnorm=True, dropout=0.2).eval()
    x = torch.randn(5, 1, 28, 28)
    a = call_student("forward", net, x)
    b = call_student("forward on (N, 784) input", net, x.reshape(5, 784))
    if not torch.allclose(a, b, atol=1e-6):
        pytest.fail("outputs for (5, 1, 28, 28) input and the same images as (5, 784) differ", pytrace=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("kwargs", [
    {"depth": 0, "width": 10, "activation": "relu"},
    {"depth": 2, "width": 0, "activation": "relu"},
    {"depth": 2, "width": 10, "activation": "gelu"},
    {"depth": 2, "width": 10, "activation": "relu", "dropout": 1.0},
    {"depth": 2, "width": 10, "activation": "relu", "dropout": -0.1},
    {"depth": 2, "width": 10, "activation": "relu", "init": "uniform"},
], ids=["depth0", "width0", "activation", "dropout1", "dropout-neg", "init"])
def test_build_mlp_rejects_invalid_arguments(analysis, kwargs):
    """build_mlp raises ValueError for depth or width < 1, dropout outside [0, 1), unknown names."""
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    checks.expect_value_error(f"build_mlp({shown})", analysis.build_mlp, **kwargs)


@pytest.mark.points(1)
def test_build_mlp_seeded_reproducible(make_mlp):
    """The same torch seed builds the same weights, for every init."""
    for init in ("default", "normal", "xavier", "he"):
        a = make_mlp(2, 30, "relu", init=init, seed=3).state_dict()
        b = make_mlp(2, 30, "relu", init=init, seed=3).state_dict()
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            pytest.fail(f"init={init!r}: two networks built after torch.manual_seed(3) differ; draw every random "
                        "number from torch's global generator", pytrace=False)


# ------------------------------------------------------------------------------------------ initialisation
@pytest.mark.points(1)
def test_init_default_keeps_pytorch_initialisation(make_mlp):
    """init='default' keeps PyTorch's nn.Linear initialisation (uniform in +-1/sqrt(fan_in), biases too)."""
    net = make_mlp(2, 256, "relu", init="default")
    for layer in checks.linear_layers(net):
        bound = layer.in_features ** -0.5
        w, b = layer.weight.detach(), layer.bias.detach()
        if w.abs().max() > bound + 1e-6 or w.std() < 0.8 * bound / 3**0.5 or b.abs().max() == 0:
            pytest.fail(f"init='default' changed nn.Linear({layer.in_features}, {layer.out_features}): expected "
                        f"PyTorch's own uniform weights and biases within +-{bound:.4f}", pytrace=False)


@pytest.mark.points(2)
@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_init_weights_every_linear_layer(analysis, init):
    """init_weights re-initialises every nn.Linear, nested ones and the output layer included, in place."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(300, 400), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(400, 30)),
                                torch.nn.BatchNorm1d(30))
    with torch.no_grad():
        model[2].weight.fill_(2.0)
        model[2].bias.fill_(0.5)
    returned = call_student(f"init_weights(model, {init!r})", analysis.init_weights, model, init)
    if returned is not model:
        pytest.fail(f"init_weights(model, {init!r}) must return the model it was given", pytrace=False)
    for layer in (model[0], model[1][1]):
        fan_out, fan_in = layer.weight.shape
        expected = {"normal": 0.02, "xavier": (2 / (fan_in + fan_out)) ** 0.5, "he": (2 / fan_in) ** 0.5}[init]
        std = layer.weight.detach().std().item()
        if abs(std - expected) > 0.06 * expected or layer.bias.detach().abs().max() != 0:
            pytest.fail(f"init_weights(model, {init!r}) on nn.Linear({fan_in}, {fan_out}): expected weight std "
                        f"{expected:.4f} and zero biases, got std {std:.4f} and biases up to "
                        f"{layer.bias.abs().max():.4f}", pytrace=False)
    if not (torch.all(model[2].weight == 2.0) and torch.all(model[2].bias == 0.5)):
        pytest.fail(f"init_weights(model, {init!r}) changed a BatchNorm1d layer; only nn.Linear layers are "
                    "re-initialised", pytrace=False)


@pytest.mark.points(1)
def test_init_weights_rejects_unknown_scheme(analysis):
    """init_weights raises ValueError for an unknown scheme."""
    checks.expect_value_error("init_weights(nn.Linear(3, 3), 'orthogonal')", analysis.init_weights,
                              torch.nn.Linear(3, 3), "orthogonal")


@pytest.mark.points(1)
@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_build_mlp_device_check_each_init(analysis, init):
    """Every init, with flat (N, 784) input, runs forward and backward on the 'meta' device."""
    assert_runs_on_device(lambda: analysis.build_mlp(3, 8, "tanh", batchnorm=True, dropout=0.1, init=init),
                          torch.randn(4, 784), "meta")


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
        pytest.fail(f"no runs of grid.toml in {kit_runs.RESULTS_FILE}: run `python sweep.py`", pytrace=False)
    if wrong:
        pytest.fail(f"{len(wrong)} row(s) record a parameter count their configuration cannot have:\n"
                    + "\n".join(wrong[:5]), pytrace=False)


@pytest.mark.points(1)
def test_results_learning_rates_follow_schedule(studies, results):
    """The learning rate recorded per epoch follows each row's schedule (constant, exponential, cosine)."""
    wrong = []
    rows = grid_rows(studies, results)
    if not rows:
        pytest.fail(f"no runs of grid.toml in {kit_runs.RESULTS_FILE}: run `python sweep.py`", pytrace=False)
    for row in rows:
        c = row["config"]
        last = row["history"][-1]["lr"]
        expected = {"none": c["lr"], "exponential": c["lr"] * kit_runs.EXPONENTIAL_FINAL, "cosine": 0.0}[c["scheduler"]]
        if abs(last - expected) > 1e-6 * c["lr"]:
            wrong.append(f"{checks.describe(c, row['seed'])}: last lr {last:.3g}, expected {expected:.3g}")
    if wrong:
        pytest.fail(f"{len(wrong)} row(s) end with a learning rate their schedule cannot reach:\n"
                    + "\n".join(wrong[:5]), pytrace=False)


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
        pytest.fail(f"the lr study is incomplete ({len(missing)} run(s) missing): run `python sweep.py`", pytrace=False)
    grid = studies["lr"].axes["lr"]
    table = lr_study_table(studies, results)
    wrong = []
    for activation, reference in REFERENCE_BEST_LR.items():
        best = max(table[activation], key=table[activation].get)
        if abs(grid.index(best) - grid.index(reference)) > BEST_LR_BAND_STEPS:
            wrong.append(f"{activation}: your best learning rate is {best:g}")
    if wrong:
        pytest.fail("for these activations the best learning rate (mean test accuracy over the seeds) is more than "
                    f"one grid step from where a correct build_mlp puts it: {'; '.join(wrong)}. Check the "
                    "activation functions of your build_mlp and that the rows come from the sweep", pytrace=False)


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
        pytest.fail(f"the best mean test accuracy of the lr study is low for {'; '.join(low)} (one epoch of Adam "
                    "reaches more with a correct build_mlp)", pytrace=False)


@pytest.mark.slow
@pytest.mark.points(6)
def test_results_rerun_matches_hidden(root, analysis, studies, results, mnist_train):
    """A few runs chosen at random, re-trained with your build_mlp and their seeds, reproduce their rows."""
    path = root / kit_runs.RESULTS_FILE
    if not path.is_file():
        pytest.fail(f"{kit_runs.RESULTS_FILE} not found: run `python sweep.py` to create it", pytrace=False)
    salt = RERUN_SALT + hashlib.sha256(path.read_bytes()).hexdigest()
    chosen = checks.choose_runs(studies, HIDDEN_RERUNS, salt)
    checks.check_reruns(analysis, studies, results, mnist_train, chosen)
