"""Visible tests of assignment 1. Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. Your
network reaches the tests as the grader sees it: exported with torch.export (tests/plan.py says how),
so what passes here passes there.
"""
import pytest
import torch
import torch.nn.functional as F

from mnistkit.checks import (
    assert_device_follows_input,
    assert_dtype,
    assert_gradients_flow,
    assert_layers_only,
    assert_log_probabilities,
    assert_parameter_count,
    assert_runs_on,
    assert_shape,
    fail,
    inline_layer_text,
    inline_layers,
    judge_explained,
    run,
    trained_predictions,
    without_final_softmax,
)
from mnistkit.graph import reinitialise
from mnistkit.layers import layer_problems
from mnistkit.tracing import trace_forward
from mnistkit.train import predict
from mlp_contract import LAYERS, PARAMETERS


@pytest.mark.points(2)
@pytest.mark.parametrize("batch", [1, 64])
def test_net_output_shape(make_net, batch):
    """Net maps (N, 1, 28, 28) images to (N, 10) float32 scores."""
    net = make_net()
    out = run("Net.forward", net.eval(), torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_accepts_flat_input(make_net):
    """Net also accepts flattened images of shape (N, 784)."""
    net = make_net()
    out = run("Net.forward on (N, 784) input", net.eval(), torch.randn(8, 784))
    assert_shape(out, (8, 10), "output of Net for flat input (8, 784)")


@pytest.mark.points(2)
def test_net_outputs_log_probabilities(make_net):
    """exp(output) sums to 1 over the 10 classes for every image."""
    net = make_net()
    out = run("Net.forward", net.eval(), torch.randn(16, 1, 28, 28) * 3)
    assert_shape(out, (16, 10), "output of Net for a batch of 16 images")
    assert_log_probabilities(out, "output of Net")


@pytest.mark.points(2)
def test_net_parameter_count(make_net):
    """784-50-50-10 with biases has exactly 42,310 parameters."""
    net = make_net()
    assert_parameter_count(net, PARAMETERS, "Layers: 784 -> 50 -> 50 -> 10, each nn.Linear with a bias.")


@pytest.mark.points(2)
def test_net_gradients_reach_every_parameter(make_net):
    """One backward pass gives every parameter a finite, non-zero gradient."""
    net = make_net()
    out = run("Net.forward", net.train(), torch.randn(32, 1, 28, 28))
    assert_gradients_flow(net, F.nll_loss(F.log_softmax(out, dim=1), torch.randint(0, 10, (32,))))


@pytest.mark.points(1)
def test_net_device_check(make_net):
    """Net creates every tensor on its input's device (checked on PyTorch's 'meta' device: no GPU needed)."""
    net = make_net()
    assert_device_follows_input(net)


@pytest.mark.gpu
@pytest.mark.points(0)
def test_net_runs_on_gpu(make_net):
    """Net runs forward and backward on CUDA."""
    net = make_net()
    assert_runs_on(net, "cuda", torch.randn(4, 1, 28, 28))


@pytest.mark.points(2)
def test_one_hot_rows(one_hot):
    """one_hot turns labels (N,) into float32 rows (N, 10) with a single 1 at the label."""
    labels = torch.tensor([3, 0, 9, 3])
    out = one_hot(labels)
    assert_shape(out, (4, 10), "one_hot(labels) for 4 labels")
    assert_dtype(out, torch.float32, "one_hot(labels)")
    expected = torch.zeros(4, 10)
    expected[torch.arange(4), labels] = 1
    if not torch.equal(out, expected):
        fail(f"one_hot(tensor([3, 0, 9, 3])): expected a 1 at columns [3, 0, 9, 3] and 0 elsewhere, got rows "
             f"{out.tolist()}")


@pytest.mark.slow
@pytest.mark.points(4)
@pytest.mark.accuracy("trained")
def test_net_trained_accuracy(make_net, mnist_train, judged_images, grading_budget, judge):
    """Freshly initialised and trained with the grader's fixed budget (see README), Net reaches the threshold."""
    net = make_net()
    assert_layers_only(net)
    net = without_final_softmax(net)  # its final (log-)softmax is judged by test_net_outputs_log_probabilities
    reinitialise(net, seed=0)
    images, labels = mnist_train
    predictions = trained_predictions(net, images, labels, judged_images, budget=grading_budget, seed=0)
    judge_explained(judge, predictions, net)


@pytest.mark.points(3)
@pytest.mark.accuracy("agent")
def test_agent_file_accuracy(make_net, probe, judged_images, judge):
    """mnist_agent.pt (saved by `python mnist.py`) loads into Net and reaches the threshold."""
    net = make_net()
    inline = inline_layers(net)
    if inline:
        fail(f"mnist_agent.pt is judged in the contract's network, and your Net is not it: {inline_layer_text(inline)}"
             " (its weights are not parameters, so mnist_agent.pt cannot hold them); create every layer in __init__")
    weights = probe.weights("net")
    try:
        net.load_weights(weights)
    except ValueError as err:
        fail(f"mnist_agent.pt does not load into Net: {err}")
    assert_layers_only(net)
    problems = layer_problems(trace_forward(net.eval(), torch.randn(2, 1, 28, 28)), LAYERS)
    if problems:
        fail(f"mnist_agent.pt is judged in the contract's network, and your Net is not it: {problems[0]}")
    judge_explained(judge, predict(without_final_softmax(net), judged_images), net)
