"""mnistkit.checks: the checks the assignment tests are built from fail when they should, with their messages."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnistkit import checks
from mnistkit.checks import (
    assert_close,
    assert_device_follows_input,
    assert_gradients_flow,
    assert_layers_only,
    assert_log_probabilities,
    assert_parameter_count,
    assert_shape,
    call_value,
    count_parameters,
    first_mismatch,
    numpy_array,
)
from mnistkit.probe import ArrayValue, Raised
from small_nets import build, graph_net, line_of

Failed = pytest.fail.Exception


def _fails(match):
    return pytest.raises(Failed, match=match)


# ------------------------------------------------------------------------------------------ shapes
def test_checks_shape_message_says_expected_and_got():
    with _fails(r"^output: expected shape \(64, 10\), got \(64, 50\)$"):
        assert_shape(torch.zeros(64, 50), (64, 10), "output")
    assert_shape(torch.zeros(64, 10), (64, 10), "output")


def test_checks_shape_refuses_what_is_not_a_tensor():
    with _fails(r"output: expected a torch.Tensor, got ndarray"):
        assert_shape(np.zeros((64, 10)), (64, 10), "output")


def test_checks_first_mismatch_names_the_row():
    rows = [("input", (1, 28, 28), (1, 28, 28)), ("conv1", (10, 24, 24), (10, 26, 26))]
    assert first_mismatch(rows) == "row 1 (conv1): expected shape (10, 24, 24), got (10, 26, 26)"
    assert first_mismatch(rows[:1]) is None


# ------------------------------------------------------------------------------------------ parameters
def test_checks_parameter_count_message_lists_the_parameters():
    net = graph_net("Unused")
    assert count_parameters(net) == 20 == count_parameters(build("Unused"))
    with _fails(r"^expected 21 trainable parameters, got 20\. Your parameters: \{'fc\.weight': \(2, 4\), "
                r"'fc\.bias': \(2,\), 'unused\.weight': \(2, 4\), 'unused\.bias': \(2,\)\}\. Check the sizes\.$"):
        assert_parameter_count(net, 21, "Check the sizes.")
    assert_parameter_count(net, 20)


def test_checks_parameter_count_names_layers_created_in_forward():
    with _fails(rf"Layers created inside forward\(\) \({line_of('# a layer in forward')}\) are not parameters"):
        assert_parameter_count(graph_net("Inline"), 16)


def test_checks_gradients_flow_names_unused_layers():
    net = graph_net("Unused").train()
    loss = net(torch.randn(3, 4)).sum()
    with _fails(r"no gradient reached \['unused\.weight', 'unused\.bias'\]: are these layers used in forward\(\)\?"):
        assert_gradients_flow(net, loss)
    net = graph_net("MLP").train()
    assert_gradients_flow(net, F.nll_loss(net(torch.randn(4, 1, 28, 28)), torch.tensor([1, 2, 3, 4])))


# ------------------------------------------------------------------------------------------ outputs
def test_checks_log_probabilities_pass_a_log_softmax_over_the_classes():
    assert_log_probabilities(graph_net("LogSoftmaxOut").eval()(torch.randn(5, 4)), "output of Net")


def test_checks_log_probabilities_say_when_the_output_is_probabilities():
    out = graph_net("SoftmaxOut").eval()(torch.randn(5, 4))
    with _fails(r"output of Net: the outputs are probabilities .* not log-probabilities: end forward with "
                r"F\.log_softmax\(x, dim=1\)"):
        assert_log_probabilities(out, "output of Net")


def test_checks_log_probabilities_say_when_the_dimension_is_wrong():
    out = graph_net("LogSoftmaxDim0").eval()(torch.randn(5, 4))
    with _fails(r"output of Net: exp\(output\) sums to 1 down each column.*wrong dimension; use dim=1"):
        assert_log_probabilities(out, "output of Net")


def test_checks_log_probabilities_show_the_sums_of_raw_scores():
    with _fails(r"expected log-probabilities, so that exp\(output\) sums to 1 per row .*got sums \[10\.0, 10\.0"):
        assert_log_probabilities(torch.zeros(3, 10), "output")


# ------------------------------------------------------------------------------------------ devices
def test_checks_device_follows_input_passes_a_device_correct_network():
    assert_device_follows_input(graph_net("DeviceGood"))


@pytest.mark.parametrize("name, expected", [
    ("ZerosNoDevice", r"Net does not follow its input's device: forward mixes devices \(at {zeros} in forward\)"),
    ("CudaInForward", r"Net does not follow its input's device: to creates a tensor on 'cuda' at {cuda}; "
                      r"create tensors with device=x\.device"),
    ("PlainAttribute", r"Net does not follow its input's device: after model\.to\(device\) the tensor attribute\(s\) "
                       r"\['shift'\] stay on the CPU"),
])
def test_checks_device_follows_input_names_the_bug(name, expected):
    lines = {"zeros": re.escape(line_of("torch.zeros(2)  # no device=")), "cuda": re.escape(line_of("# in forward"))}
    with _fails(expected.format(**lines)):
        assert_device_follows_input(graph_net(name))


# ------------------------------------------------------------------------------------------ layers only
def test_checks_layers_only_refuses_a_table_multiplied_in():
    with _fails(r"Net holds tensors that are not weights of its layers: table \(read by matmul\(other=\.\.\.\)\)"):
        assert_layers_only(graph_net("Table"))


def test_checks_layers_only_accepts_layers_and_a_tiny_constant():
    for name in ("MLP", "CNN", "Normalised"):
        assert_layers_only(graph_net(name), name)


# ------------------------------------------------------------------------------------------ running
def test_checks_run_names_the_layer_and_line_of_a_failing_node():
    net = graph_net("Hidden").eval()
    x = torch.randn(2, 4)
    assert torch.equal(checks.run("Net.forward", net, x), build("Hidden").eval()(x))
    net.state_tensor("fc2.weight").data = torch.zeros(2, 5)  # fc2 no longer fits the output of fc1
    with _fails(rf"^Net\.forward raised RuntimeError: .*\(in fc2 \(Linear\) at {line_of('# the second layer')}\)$"):
        checks.run("Net.forward", net, x)


def test_checks_run_says_why_a_network_has_no_graph():
    with _fails(r"^Net\.forward: not written yet \(NotImplementedError: write Net\.forward\); see the TODO comment in "
                rf"small_nets\.py, above line {line_of('write Net.forward').split(':')[1]}$"):
        checks.run("Net.forward", graph_net("Stub"), torch.randn(2, 1, 28, 28))


def test_checks_run_names_the_expected_input_shape():
    with _fails(r"^Net\.forward raised ValueError: the network was exported for inputs of shape \(B, 4\), "
                r"not \(2, 3\)$"):
        checks.run("Net.forward", graph_net("Hidden"), torch.randn(2, 3))


# ------------------------------------------------------------------------------------------ recorded values
def test_checks_call_value_and_numpy_array_explain_recorded_failures():
    assert call_value(3, "f()") == 3
    with _fails(r"^im2col\(x\): not written yet \(NotImplementedError: later\); see the TODO comment in im2col\.py, "
                r"above line 3$"):
        call_value(Raised("NotImplementedError", "later", "im2col.py:3", ""), "im2col(x)")
    with _fails(r"^im2col\(x\): not written yet \(NotImplementedError: later\)$"):
        call_value(Raised("NotImplementedError", "later", "library:numpy.py", ""), "im2col(x)")
    with _fails(r"^f\(\) raised ValueError: bad \(at im2col\.py:9\)$"):
        call_value(Raised("ValueError", "bad", "im2col.py:9", ""), "f()")
    with _fails(r"^f\(\) raised TypeError: odd$"):
        call_value(Raised("TypeError", "odd", "library:numeric.py", ""), "f()")
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    got = numpy_array(ArrayValue(array, "numpy.ndarray", "cpu"), "f()", shape=(2, 3))
    assert torch.equal(got, torch.from_numpy(array))
    with _fails(r"f\(\) returned a torch\.Tensor; expected a numpy\.ndarray \(numpy only\)"):
        numpy_array(ArrayValue(array, "torch.Tensor", "cpu"), "f()")
    with _fails(r"f\(\): expected shape \(3, 2\), got \(2, 3\)"):
        numpy_array(ArrayValue(array, "numpy.ndarray", "cpu"), "f()", shape=(3, 2))
    with _fails(r"f\(\): expected dtype float64 \(the dtype of the input\), got float32"):
        numpy_array(ArrayValue(array.astype(np.float32), "numpy.ndarray", "cpu"), "f()")


def test_checks_assert_close_names_the_largest_difference():
    expected = torch.ones(2, 3, dtype=torch.float64)
    got = expected.clone()
    got[1, 2] += 1e-3
    assert_close(expected.clone(), expected, "out")
    with _fails(r"^out: relative error 1\.00e-03 \(allowed 1e-10\); the largest difference is at index \(1, 2\)\. "
                r"Check the stride\.$"):
        assert_close(got, expected, "out", hint="Check the stride.")
    with _fails(r"out: expected shape \(2, 3\), got \(3, 2\)"):
        assert_close(got.T, expected, "out")
    with _fails(r"out: contains NaN or inf"):
        assert_close(expected * float("nan"), expected, "out")


# ------------------------------------------------------------------------------------------ named mistakes
def test_checks_randomness_in_eval_names_a_dropout_left_on():
    cause = checks.randomness_in_eval(graph_net("DropoutAlwaysOn"))
    assert cause.startswith(f"dropout is still active in eval mode (dropout at {line_of('# dropout left on')})")
    assert "training=self.training" in cause
    assert checks.randomness_in_eval(graph_net("MLP")) is None
    assert checks.randomness_in_eval(graph_net("CNN")) is None


def test_checks_layers_created_in_forward_are_named_by_the_checks_they_break():
    net = graph_net("Inline")
    assert checks.randomness_in_eval(net).startswith(f"a layer is created inside forward() ({line_of('# a layer in forward')})")
    with _fails(r"Net does not follow its input's device: a layer is created inside forward\(\)"):
        assert_device_follows_input(net)
    with _fails(r"Net: a layer is created inside forward\(\) .*never trained"):
        assert_layers_only(net)


def test_checks_without_final_softmax_returns_the_scores():
    x = torch.randn(5, 4)
    scores = graph_net("Unused").eval()  # no softmax at all: unchanged
    assert torch.equal(checks.without_final_softmax(scores)(x), scores(x))
    reference = None
    for name in ("SoftmaxOut", "LogSoftmaxDim0", "LogSoftmaxOut", "LogOfSoftmax"):
        net = graph_net(name).eval()
        stripped = checks.without_final_softmax(net).eval()
        ops = {node["op"] for graph in stripped.graphs.values() for node in graph.nodes}
        assert not ops & {"aten.softmax.int", "aten.log_softmax.int", "aten.log.default"}, name
        fc = dict(net.named_state())
        assert torch.allclose(stripped(x), x @ fc["fc.weight"].T + fc["fc.bias"], atol=1e-6), name
        graphs = {k: ([{f: v for f, v in n.items() if f not in ("where", "module")} for n in g.nodes], g.output)
                  for k, g in stripped.graphs.items()}  # the same computation (source lines and classes differ)
        assert reference is None or graphs == reference, f"{name}: the stripped graphs differ"  # one training for all
        reference = graphs
        assert torch.equal(net(x), graph_net(name).eval()(x))  # the original is untouched


def test_checks_trained_predictions_are_shared_through_the_graders_cache(tmp_path, monkeypatch):
    from mnistkit.train import Budget

    images = torch.randint(0, 255, (64, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    budget = Budget(epochs=1, batch_size=32)
    monkeypatch.setenv("MNISTKIT_MODE", "judge")
    monkeypatch.setenv(checks.TRAIN_CACHE_ENV, str(tmp_path))
    first = checks.trained_predictions(graph_net("MLP"), images, labels, images[:10], budget=budget, progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    monkeypatch.setattr("mnistkit.train.fit", lambda *a, **k: pytest.fail("trained again"))
    again = checks.trained_predictions(graph_net("MLP"), images, labels, images[:10], budget=budget, progress=False)
    assert torch.equal(first, again)
    other = Budget(epochs=1, batch_size=16)  # another budget (or network, or data) trains
    with _fails("trained again"):
        checks.trained_predictions(graph_net("MLP"), images, labels, images[:10], budget=other, progress=False)
    monkeypatch.delenv("MNISTKIT_MODE")  # a student's machine: no cache
    with _fails("trained again"):
        checks.trained_predictions(graph_net("MLP"), images, labels, images[:10], budget=budget, progress=False)


def test_layers_accept_log_of_softmax_as_the_output_and_skip_inline_weights():
    from mnistkit.layers import Layer, layer_problems
    from mnistkit.tracing import trace_forward

    contract = [Layer("linear", in_features=4, out_features=10, then=[["log_softmax(dim=1)"]])]
    assert layer_problems(trace_forward(graph_net("LogOfSoftmax").eval(), torch.randn(3, 4)), contract) == []
    trace = trace_forward(graph_net("Inline").eval(), torch.randn(3, 4))
    assert [op.kind for op in trace.layers()] == ["linear", "linear"]
