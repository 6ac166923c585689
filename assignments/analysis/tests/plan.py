"""What the probe computes with a student's analysis.py (public: the grader runs the same plan, with its own seed).

* build_mlp, built after torch.manual_seed(seed) and exported (images (N, 1, 28, 28) and/or flat (N, 784),
  train and/or eval mode) in every configuration a visible or hidden test looks at (:data:`NETWORKS`), and
  in a few configurations drawn from the plan's seed (:func:`count_configs`);
* make_activation(name) for each name, exported as a network of its own;
* plain calls: expected_parameters, the invalid arguments (each must raise ValueError), make_activation
  twice, and init_weights on a small model of nested layers (built with torch.nn as analysis.py imports it);
* the honesty re-runs: the runs of results.jsonl that the grader re-trains (:func:`reruns`: 1 for the
  visible test, 3 for the hidden one, drawn from :func:`rerun_candidates`, the hidden ones seeded by the
  hash of the submitted results.jsonl and the plan's seed), each built with its seed and torch's random
  state recorded right after the build, so that dropout continues exactly as in the student's run.

This file is loaded by the grader, outside any handout folder, and by pytest in one: it finds the kit's
``runs.py`` and ``grid.toml`` next to ``tests/`` (a handout) or in ``../handout`` (the kit's sources).
"""
from __future__ import annotations

import hashlib
import importlib.util
import random
import sys
from pathlib import Path

from mnistkit.probe import Calls, Network, Plan, seeded_rng

IMAGE = [[1, 28, 28], "float32"]
FLAT = [[784], "float32"]
INPUTS = {"image": IMAGE, "flat": FLAT}
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leakyrelu")
INITS = ("default", "normal", "xavier", "he")
SEEDED_BUILD_SEED = 3  # test_build_mlp_seeded_reproducible builds twice after torch.manual_seed(3)

VISIBLE_RERUNS = 1
HIDDEN_RERUNS = 3
VISIBLE_SALT = "visible"
HIDDEN_SALT = "analysis-hidden-7f3c"

# (depth, width, batchnorm) the parameter-count formula is checked on, besides those drawn from the seed.
FIXED_COUNTS = [(1, 1, False), (5, 300, True), (1, 300, True), (5, 1, False)]
DRAWN_COUNTS = 4

# The option combinations of test_build_mlp_module_order_all_options (3 hidden layers of 12 units).
ORDER_OPTIONS = [("relu", False, 0.0), ("tanh", True, 0.0), ("sigmoid", False, 0.25), ("leakyrelu", True, 0.5)]

# build_mlp's invalid arguments: each call must raise ValueError.
INVALID = {
    "depth0": {"depth": 0, "width": 10, "activation": "relu"},
    "width0": {"depth": 2, "width": 0, "activation": "relu"},
    "activation": {"depth": 2, "width": 10, "activation": "gelu"},
    "dropout1": {"depth": 2, "width": 10, "activation": "relu", "dropout": 1.0},
    "dropout-neg": {"depth": 2, "width": 10, "activation": "relu", "dropout": -0.1},
    "init": {"depth": 2, "width": 10, "activation": "relu", "init": "uniform"},
}


def mlp(item_id: str, depth: int, width: int, activation: str, *, inputs=("image",), modes=("train", "eval"),
        seed: int = 0, rng_after: bool = False, **options) -> Network:
    """A Network item of ``build_mlp(depth, width, activation, **options)``."""
    return Network(item_id, "build_mlp", args=[depth, width, activation], kwargs=dict(options), seed=seed,
                   inputs={name: INPUTS[name] for name in inputs}, modes=list(modes), rng_after=rng_after)


def order_id(activation: str, batchnorm: bool, dropout: float) -> str:
    return f"order/3x12-{activation}-bn{int(batchnorm)}-do{dropout:g}"


def count_configs(seed: int) -> list[tuple[int, int, bool]]:
    """The (depth, width, batchnorm) of the parameter-count check: fixed corners and a few drawn from ``seed``."""
    rng = seeded_rng(seed, "parameter counts")
    drawn = [(int(rng.integers(1, 6)), int(rng.integers(1, 301)), bool(rng.integers(0, 2))) for _ in range(DRAWN_COUNTS)]
    return FIXED_COUNTS + drawn


def networks() -> list[Network]:
    """The fixed build_mlp configurations of the visible and hidden tests (see each test for its use)."""
    both = ("image", "flat")
    items = [
        mlp("mlp/2x50-relu", 2, 50, "relu", inputs=both, rng_after=True),
        mlp("order/2x20-tanh-bn-do0.3", 2, 20, "tanh", modes=("train",), batchnorm=True, dropout=0.3),
        mlp("sizes/1x10-relu", 1, 10, "relu", modes=("eval",)),
        mlp("sizes/3x20-relu", 3, 20, "relu", modes=("eval",)),
        mlp("params/3x20-relu-bn", 3, 20, "relu", inputs=("flat",), modes=("eval",), batchnorm=True),
        mlp("grad/3x32-leakyrelu-bn-do0.1", 3, 32, "leakyrelu", modes=("train",), batchnorm=True, dropout=0.1),
        mlp("device/2x16-sigmoid-bn-do0.2-xavier", 2, 16, "sigmoid", batchnorm=True, dropout=0.2, init="xavier"),
        mlp("gpu/2x16-relu-bn-do0.2", 2, 16, "relu", batchnorm=True, dropout=0.2),
        mlp("distinct/3x8-leakyrelu", 3, 8, "leakyrelu", inputs=("flat",), modes=("eval",)),
        mlp("dropout/2x64-relu-do0.5", 2, 64, "relu", dropout=0.5),
        mlp("bn-eval/2x32-tanh-bn", 2, 32, "tanh", inputs=both, batchnorm=True),
        mlp("flat/2x20-sigmoid-bn-do0.2", 2, 20, "sigmoid", inputs=both, modes=("eval",), batchnorm=True, dropout=0.2),
    ]
    items += [mlp(f"init/{init}", 2, 256, "relu", inputs=("flat",), modes=("eval",), init=init) for init in INITS]
    items += [mlp(f"seeded/{init}/{copy}", 2, 30, "relu", inputs=("flat",), modes=("eval",), seed=SEEDED_BUILD_SEED,
                  init=init) for init in INITS for copy in "ab"]
    items += [mlp(f"device-init/{init}", 3, 8, "tanh", inputs=("flat",), batchnorm=True, dropout=0.1, init=init)
              for init in INITS if init != "default"]
    items += [mlp(order_id(a, bn, p), 3, 12, a, modes=("train",), batchnorm=bn, dropout=p) for a, bn, p in ORDER_OPTIONS]
    return items


def activations() -> list[Network]:
    """make_activation(name) for every name, exported as a network on inputs of shape (N, 5)."""
    return [Network(f"act/{name}", "make_activation", args=[name], inputs={"x": [[5], "float32"]}, modes=["eval"])
            for name in ACTIVATIONS]


def _step(call: str, name: str, *args, **kwargs) -> dict:
    return {"call": call, "args": list(args), "kwargs": kwargs, "as": name}


def _ref(name: str) -> dict:
    return {"ref": name}


def init_weights_steps(init: str) -> list:
    """The old hidden test's model, built with analysis.nn: Linear(300, 400), Sequential(ReLU, Linear(400, 30)),
    BatchNorm1d(30) with its weight 2.0 and bias 0.5; then init_weights(model, init) and what it left."""
    return [
        _step("nn.Linear", "l1", 300, 400),
        _step("nn.ReLU", "relu"),
        _step("nn.Linear", "l2", 400, 30),
        _step("nn.Sequential", "inner", _ref("relu"), _ref("l2")),
        _step("nn.BatchNorm1d", "bn", 30),
        _step("nn.Sequential", "model", _ref("l1"), _ref("inner"), _ref("bn")),
        _step("bn.weight.data.fill_", "bn_weight_set", 2.0),
        _step("bn.bias.data.fill_", "bn_bias_set", 0.5),
        _step("model.__hash__", "model_identity"),
        _step("init_weights", "returned", _ref("model"), init),
        _step("returned.__hash__", "returned_identity"),
        {"get": "l1.weight", "as": "w1"}, {"get": "l1.bias", "as": "b1"},
        {"get": "l2.weight", "as": "w2"}, {"get": "l2.bias", "as": "b2"},
        {"get": "bn.weight", "as": "bn_weight"}, {"get": "bn.bias", "as": "bn_bias"},
    ]


def calls(seed: int) -> list[Calls]:
    counts = [_step("expected_parameters", f"count/{i}", d, w, batchnorm=bn) for i, (d, w, bn) in
              enumerate(count_configs(seed))]
    return [
        Calls("expected_parameters", [_step("expected_parameters", "2x50", 2, 50),
                                      _step("expected_parameters", "3x20-bn", 3, 20, batchnorm=True), *counts],
              independent=True),
        Calls("invalid", [_step("make_activation", "make_activation/swish", "swish"),
                          *(_step("build_mlp", f"build_mlp/{key}", **kwargs) for key, kwargs in INVALID.items())],
              independent=True),
        Calls("make_activation/twice", [_step("make_activation", "a", "tanh"), _step("make_activation", "b", "tanh"),
                                        _step("a.__hash__", "a_identity"), _step("b.__hash__", "b_identity")]),
        *(Calls(f"init_weights/{init}", init_weights_steps(init)) for init in INITS if init != "default"),
        Calls("init_weights/unknown", [_step("nn.Linear", "layer", 3, 3),
                                       _step("init_weights", "returned", _ref("layer"), "orthogonal")]),
    ]


# ------------------------------------------------------------------------------------------- re-runs
def _kit_file(name: str) -> Path:
    here = Path(__file__).resolve().parent
    for folder in (here.parent, here.parent / "handout"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} is neither in {here.parent} nor in {here.parent / 'handout'}")


def _runs():
    """The kit's runs.py, loaded under a private name (the grader has no handout folder on its path)."""
    name = "_analysis_plan_runs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _kit_file("runs.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def rerun_candidates(studies: dict) -> list:
    """The runs the honesty check may re-train: one epoch at a learning rate of at most 0.001, width <= 100.

    Only these: their numbers barely move when the arithmetic differs a little (another CPU, another
    number of threads), so a re-run on the grader's machine reproduces an honest row closely. At larger
    learning rates or over several epochs, rounding differences grow as much as changing the seed would.
    """
    runs = []
    for name in ("lr", "depth"):
        for config, seed in studies[name].runs:
            if config.epochs == 1 and config.lr <= 0.001 and config.width <= 100 and config.train_size == 0:
                runs.append((config, seed))
    return runs


def choose_runs(studies: dict, count: int, salt: str) -> list:
    """``count`` of the :func:`rerun_candidates` picked at random, reproducibly from ``salt``."""
    key = _runs().run_key
    candidates = {key(c, s): (c, s) for c, s in rerun_candidates(studies)}
    keys = sorted(candidates)
    rng = random.Random(hashlib.sha256(salt.encode("utf-8")).hexdigest())
    return [candidates[k] for k in rng.sample(keys, min(count, len(keys)))]


def reruns(kind: str, seed: int, results: Path | None) -> list[tuple[dict, int]]:
    """The runs the honesty check of ``kind`` re-trains, as ``(configuration dict, seed)``.

    ``"visible"``: always the same one. ``"hidden"``: three drawn from the submitted ``results`` file's hash
    and the plan's ``seed`` (none without the file). Both come from :func:`rerun_candidates`.
    """
    runs = _runs()
    studies = runs.load_grid(_kit_file(runs.GRID_FILE))
    if kind == "visible":
        chosen = choose_runs(studies, VISIBLE_RERUNS, VISIBLE_SALT)
    elif kind == "hidden":
        if results is None or not Path(results).is_file():
            return []
        digest = hashlib.sha256(Path(results).read_bytes()).hexdigest()
        chosen = choose_runs(studies, HIDDEN_RERUNS, f"{HIDDEN_SALT}:{seed}:{digest}")
    else:
        raise ValueError(f"kind must be 'visible' or 'hidden', got {kind!r}")
    return [(config.as_dict(), run_seed) for config, run_seed in chosen]


def rerun_id(kind: str, index: int) -> str:
    return f"rerun/{kind}/{index}"


def rerun_networks(seed: int, files: dict) -> list[Network]:
    items = []
    for kind in ("visible", "hidden"):
        for index, (c, run_seed) in enumerate(reruns(kind, seed, files.get("results.jsonl"))):
            items.append(mlp(rerun_id(kind, index), c["depth"], c["width"], c["activation"], seed=run_seed,
                             rng_after=True, batchnorm=c["batchnorm"], dropout=c["dropout"], init=c["init"]))
    return items


def make_plan(seed: int, files: dict) -> Plan:
    items = [*activations(), *networks(),
             *(mlp(f"count/{i}", d, w, "relu", inputs=("flat",), modes=("eval",), batchnorm=bn)
               for i, (d, w, bn) in enumerate(count_configs(seed))),
             *calls(seed), *rerun_networks(seed, files)]
    return Plan("analysis", items, seed=seed, files=["analysis.py"])
