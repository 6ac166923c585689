"""mnistkit.probe: the plan runs the student's code item by item and writes data only; Results reads it back."""
import json
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnistkit.probe import (
    FINISHED,
    ArrayValue,
    Calls,
    Function,
    Network,
    Plan,
    ProbeFailed,
    Raised,
    ResultError,
    Results,
    Unrepresentable,
    item_folder,
    run_plan,
)

STUDENT = '''
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def add(a, b):
    return a + b


def pair():
    return (1, 2)


def as_list():
    return [1, 2]


def mapping():
    return {"a": 1, "b": [2.5, None]}


def doubled(x):
    return x * 2


def tensor_of(x):
    return torch.as_tensor(x)


def check(x):
    if x < 0:
        raise ValueError("x must be >= 0")  # the raise
    return x


def slow():
    time.sleep(30)


class Counter:
    def __init__(self, start):
        self.n = start

    def step(self):
        self.n += 1
        return self.n


class Net(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        return F.log_softmax(self.fc2(torch.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


def one_hot(labels, num_classes):
    return F.one_hot(labels, num_classes).float()
'''


@pytest.fixture
def student(tmp_path, monkeypatch):
    """``student(source, name=...)``: write the student's module into ``tmp_path`` (the working folder)."""
    names = []

    def write(source=STUDENT, name="studentmod"):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield write
    for name in names:
        sys.modules.pop(name, None)


def _line(text: str, source: str = STUDENT) -> int:
    [number] = [i for i, line in enumerate(source.splitlines(), 1) if text in line]
    return number


def _run(tmp_path, module, items, *, arrays=None, timeout=60.0, timeouts=True):
    plan = Plan(module, items, arrays or {}, timeout=timeout, files=[f"{module}.py"])
    out = tmp_path / "out"
    run_plan(plan, out, timeouts=timeouts)
    return Results(plan, out)


# ------------------------------------------------------------------------------------------ the plan
def test_probe_plan_saves_and_loads(tmp_path):
    arrays = {"x": np.arange(6, dtype=np.float64).reshape(2, 3), "labels": np.array([1, 2], dtype=np.int64)}
    items = [Network("net", "Net", args=[16], kwargs={"bias": True}, seed=3, weights="w.pt", rng_after=True),
             Function("oh", "one_hot", args=[{"input": "labels"}, 10], inputs={"labels": [[], "int64"]}),
             Calls("calls", [{"call": "add", "args": [{"array": "x"}, 1], "as": "sum"}], independent=True)]
    Plan("mlp", items, arrays, timeout=12.5, seed=42, files=["mlp.py"]).save(tmp_path / "plan")
    plan = Plan.load(tmp_path / "plan")
    assert (plan.module, plan.timeout, plan.seed, plan.files) == ("mlp", 12.5, 42, ["mlp.py"])
    assert plan.items == items
    assert plan.item("oh") == items[1]
    assert sorted(plan.arrays) == ["labels", "x"]
    assert plan.arrays["x"].dtype == np.float64 and np.array_equal(plan.arrays["x"], arrays["x"])
    assert plan.arrays["labels"].dtype == np.int64
    with pytest.raises(KeyError, match="no item 'other'"):
        plan.item("other")


def test_probe_plan_of_another_schema_is_refused(tmp_path):
    Plan("mlp", []).save(tmp_path)
    raw = json.loads((tmp_path / "plan.json").read_text())
    (tmp_path / "plan.json").write_text(json.dumps({**raw, "schema": "mnistkit-plan/0"}))
    with pytest.raises(ValueError, match="is not a plan of schema mnistkit-plan/1"):
        Plan.load(tmp_path)


# ------------------------------------------------------------------------------------------ calls
def test_probe_calls_record_values_with_their_types(tmp_path, student):
    module = student()
    steps = [
        {"call": "add", "args": [2, 3], "as": "int"},
        {"call": "pair", "as": "tuple"},
        {"call": "as_list", "as": "list"},
        {"call": "mapping", "as": "dict"},
        {"call": "doubled", "args": [{"array": "x"}], "as": "array"},
        {"call": "tensor_of", "args": [{"array": "x"}], "as": "tensor"},
        {"call": "add", "args": [{"ref": "int"}, 1], "as": "ref"},
        {"call": "Counter", "args": [1], "as": "counter"},
        {"call": "counter.step", "as": "stepped"},
        {"get": "counter.n", "as": "attribute"},
        {"call": "add", "args": [{"tuple": [1]}, {"tuple": [2]}], "as": "tuples"},
    ]
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    results = _run(tmp_path, module, [Calls("values", steps)], arrays={"x": x})
    got = results.steps("values")
    assert got.get("int") == 5 and type(got.get("int")) is int
    assert got.get("tuple") == (1, 2) and type(got.get("tuple")) is tuple
    assert got.get("list") == [1, 2] and type(got.get("list")) is list
    assert got.get("dict") == {"a": 1, "b": [2.5, None]}
    array = got.get("array")
    assert isinstance(array, ArrayValue) and array.type == "numpy.ndarray"
    assert array.array.dtype == np.float64 and np.array_equal(array.array, x * 2)
    tensor = got.get("tensor")
    assert isinstance(tensor, ArrayValue) and tensor.type == "torch.Tensor" and tensor.device == "cpu"
    assert np.array_equal(tensor.array, x)
    assert got.get("ref") == 6
    counter = got.get("counter")
    assert isinstance(counter, Unrepresentable) and counter.kind == f"{module}.Counter"
    assert got.get("stepped") == 2 and got.get("attribute") == 2
    assert got.get("tuples") == (1, 2)
    assert results.error("values") is None


def test_probe_calls_record_a_raise_with_its_origin_and_stop(tmp_path, student):
    module = student()
    steps = [{"call": "check", "args": [-1], "as": "negative"}, {"call": "check", "args": [1], "as": "after"}]
    results = _run(tmp_path, module, [Calls("stops", steps), Calls("independent", steps, independent=True)])
    stopped = results.steps("stops")
    raised = stopped.get("negative")
    assert isinstance(raised, Raised)
    assert (raised.type, raised.message) == ("ValueError", "x must be >= 0")
    assert raised.origin == f"{module}.py:{_line('# the raise')}"
    assert raised.text == f"check raised ValueError: x must be >= 0 (at {module}.py:{_line('# the raise')} in check)"
    assert "after" not in stopped.raw, "a step after a raise does not run"
    assert stopped.get("after") == raised, "a step that did not run reports the raise before it"
    independent = results.steps("independent")
    assert isinstance(independent.get("negative"), Raised) and independent.get("after") == 1


def test_probe_calls_record_raises_outside_the_students_file_as_library(tmp_path, student):
    module = student()
    steps = [{"call": "add", "args": [1, "a"], "as": "mixed"}, {"call": "missing", "as": "absent"}]
    got = _run(tmp_path, module, [Calls("lib", steps, independent=True)]).steps("lib")
    assert got.get("mixed").type == "TypeError" and got.get("mixed").origin == f"{module}.py:{_line('return a + b')}"
    assert got.get("absent").type == "AttributeError" and got.get("absent").origin.startswith("library:")


def test_probe_records_an_import_error_for_every_item(tmp_path, student):
    source = "import os\n\nraise RuntimeError('broken at import')\n"
    module = student(source, name="brokenmod")
    items = [Calls("a", [{"call": "add", "args": [1, 2], "as": "x"}]), Network("net", "Net")]
    results = _run(tmp_path, module, items)
    expected = "importing brokenmod.py raised RuntimeError: broken at import (at brokenmod.py:3 in <module>)"
    assert results.error("a") == expected and results.error("net") == expected
    with pytest.raises(ProbeFailed, match="broken at import"):
        results.steps("a")
    with pytest.raises(ProbeFailed, match="broken at import"):
        results.network("net")


def test_probe_names_a_missing_or_misnamed_module(tmp_path, student):
    results = _run(tmp_path, "nosuchmod", [Calls("a", [{"call": "add", "as": "x"}])])
    assert results.error("a") == "nosuchmod.py was not found: the file must be named exactly nosuchmod.py"
    module = student("def f(:\n    pass\n", name="syntaxmod")
    results = _run(tmp_path, module, [Calls("a", [{"call": "f", "as": "x"}])])
    assert results.error("a").startswith("syntaxmod.py has a syntax error at line 1")


def test_probe_stops_an_item_that_overruns_and_runs_the_next(tmp_path, student):
    import time

    module = student()
    items = [Calls("slow", [{"call": "slow", "as": "x"}]), Calls("next", [{"call": "add", "args": [2, 2], "as": "x"}])]
    start = time.monotonic()
    results = _run(tmp_path, module, items, timeout=0.5, timeouts=True)
    assert time.monotonic() - start < 10
    assert results.error("slow") == "slow: stopped after the 0.5 s time limit per check (Timeout)"
    assert results.steps("next").get("x") == 4


# ------------------------------------------------------------------------------------------ networks
def test_probe_network_and_function_items_export_graphs(tmp_path, student):
    module = student()
    items = [Network("net", "Net", kwargs={"hidden": 12}, seed=4),
             Function("oh", "one_hot", args=[{"input": "labels"}, 10], inputs={"labels": [[], "int64"]})]
    results = _run(tmp_path, module, items)
    net = results.network("net")
    assert [(k, tuple(t.shape)) for k, t in net.named_state("parameter")][:1] == [("fc1.weight", (12, 784))]
    sys.modules.pop(module, None)
    expected = __import__(module)
    torch.manual_seed(4)
    reference = expected.Net(hidden=12).eval()
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(net.eval()(x), reference(x))
    one_hot = results.network("oh")
    labels = torch.tensor([0, 3, 9])
    assert torch.equal(one_hot(labels), F.one_hot(labels, 10).float())


def test_probe_network_loads_weights_and_records_the_random_state(tmp_path, student):
    module = student()
    sys.modules.pop(module, None)
    torch.manual_seed(11)
    trained = __import__(module).Net()
    torch.save(trained.state_dict(), tmp_path / "weights.pt")
    torch.manual_seed(5)
    __import__(module).Net()
    rng = torch.get_rng_state()
    results = _run(tmp_path, module, [Network("net", "Net", seed=5, weights="weights.pt", rng_after=True),
                                      Network("plain", "Net")])
    weights = results.weights("net")
    assert sorted(weights) == sorted(trained.state_dict())
    assert all(torch.equal(weights[k], v) for k, v in trained.state_dict().items())
    assert torch.equal(results.rng_after("net"), rng)
    with pytest.raises(ResultError, match="no random state was recorded"):
        results.rng_after("plain")
    with pytest.raises(ResultError, match="no weights were loaded"):
        results.weights("plain")


def test_probe_network_weights_errors_are_clear(tmp_path, student):
    module = student()
    torch.save({"fc1.weight": [1, 2, 3], "note": "hello"}, tmp_path / "not_tensors.pt")
    torch.save({"fc1.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pt")
    items = [Network("missing", "Net", weights="absent.pt"), Network("odd", "Net", weights="not_tensors.pt"),
             Network("wrong", "Net", weights="wrong.pt")]
    results = _run(tmp_path, module, items)
    with pytest.raises(ProbeFailed, match=r"^absent.pt not found$"):
        results.weights("missing")
    with pytest.raises(ProbeFailed, match=r"not_tensors.pt does not hold a state_dict \(a dict of tensors\)"):
        results.weights("odd")
    with pytest.raises(ProbeFailed, match=r"load_state_dict\(torch.load\('wrong.pt'\)\) raised RuntimeError"):
        results.weights("wrong")
    results.network("missing")  # the network itself was exported


def test_probe_network_build_errors_are_recorded(tmp_path, student):
    module = student("import torch\n\ndef Net():\n    raise NotImplementedError('Net')\n\n\ndef Thing():\n    return 3\n",
                     name="stubmod")
    results = _run(tmp_path, module, [Network("net", "Net"), Network("thing", "Thing")])
    assert results.error("net") == ("Net(): not written yet (NotImplementedError: Net); see the TODO comment in "
                                    "stubmod.py, above line 4")
    assert results.error("thing") == "Thing() returned int, not a torch.nn.Module"


# ------------------------------------------------------------------------------------------ the output
def test_probe_writes_the_finished_marker_and_one_folder_per_item(tmp_path, student):
    module = student()
    items = [Calls("a", [{"call": "pair", "as": "x"}]), Calls("b", [{"call": "as_list", "as": "x"}])]
    _run(tmp_path, module, items)
    out = tmp_path / "out"
    assert (out / FINISHED).is_file()
    for index, item in enumerate(items):
        record = json.loads((item_folder(out, index) / "result.json").read_text())
        assert record["id"] == item.id and record["schema"] == "mnistkit-result/1"


def test_probe_results_refuse_a_record_of_another_id_or_schema(tmp_path, student):
    module = student()
    results = _run(tmp_path, module, [Calls("a", [{"call": "pair", "as": "x"}]), Calls("b", [])])
    path = item_folder(tmp_path / "out", 0) / "result.json"
    record = json.loads(path.read_text())
    for forged in ({**record, "id": "b"}, {**record, "schema": "mnistkit-result/0"}, [record]):
        path.write_text(json.dumps(forged))
        with pytest.raises(ResultError, match="a: the results are not of the schema"):
            Results(results.plan, results.folder).record("a")
    path.write_text("{broken")
    with pytest.raises(ResultError, match="a: the results cannot be read"):
        Results(results.plan, results.folder).record("a")


def test_probe_results_say_an_item_was_not_computed(tmp_path, student):
    import shutil

    module = student()
    results = _run(tmp_path, module, [Calls("a", [{"call": "pair", "as": "x"}]), Calls("b", [])])
    shutil.rmtree(item_folder(tmp_path / "out", 1))
    fresh = Results(results.plan, results.folder)
    with pytest.raises(ResultError, match=r"^b was not computed \(the probe did not get that far\)$"):
        fresh.error("b")
    fresh.ended = "the process was killed by SIGKILL"
    with pytest.raises(ResultError, match=r"b was not computed \(the probe did not get that far: the process was killed"):
        fresh.record("b")
    with pytest.raises(KeyError, match="no item 'c'"):
        fresh.record("c")


def test_probe_results_refuse_oversized_items(tmp_path, student):
    module = student()
    results = _run(tmp_path, module, [Calls("big", [{"call": "doubled", "args": [{"array": "x"}], "as": "x"}])],
                   arrays={"x": np.zeros(10_000)})
    with pytest.raises(ResultError, match="big: the results are larger than"):
        Results(results.plan, results.folder, max_item_bytes=1000).record("big")
