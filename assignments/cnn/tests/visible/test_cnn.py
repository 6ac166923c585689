"""Visible tests of assignment 2 (simple CNN). Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. Your
network reaches the tests as the grader sees it: exported with torch.export (tests/plan.py says how),
so what passes here passes there.
"""
import pytest
import torch
import torch.nn.functional as F

from cnn_contract import PARAMETERS, TABLE, convolution_violations, pooling_violations
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
    judge_explained,
    run,
    trained_predictions,
    without_final_softmax,
)
from mnistkit.graph import reinitialise
from mnistkit.tracing import row_failure, table_rows


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [1, 64])
def test_net_output_shape(make_net, batch):
    """Net maps (B, 1, 28, 28) images to (B, 10) float32 scores (in eval mode)."""
    net = make_net()
    out = run("Net.forward", net.eval(), torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_outputs_log_probabilities(make_net):
    """exp(output) sums to 1 over the 10 classes for every image."""
    net = make_net()
    out = run("Net.forward", net.eval(), torch.randn(16, 1, 28, 28) * 3)
    assert_shape(out, (16, 10), "output of Net for a batch of 16 images")
    assert_log_probabilities(out, "output of Net")


@pytest.mark.points(1)
def test_net_shape_table(trace_net, table_row):
    """After each layer the activations have the shape of the table in cnn.py (one test per row)."""
    batch = 3
    message = row_failure(table_rows(trace_net(batch), TABLE, batch), table_row, batch)
    if message:
        fail(message)


@pytest.mark.points(2)
def test_net_parameter_count(make_net):
    """conv1, conv2, fc1, fc2 and the three BatchNorm layers have exactly 22,000 parameters."""
    assert_parameter_count(
        make_net(), PARAMETERS,
        "Conv2d(1, 10) and Conv2d(10, 20) with the kernel sizes of the table, Linear(320, 50), Linear(50, 10), "
        "all with biases, plus BatchNorm2d(10), BatchNorm2d(20) and BatchNorm1d(50) (2 parameters per channel, "
        "160 in all). A wrong count usually means a wrong kernel size or a missing BatchNorm.")


@pytest.mark.points(2)
def test_net_convolutions_have_no_stride_or_padding(trace_net):
    """Every convolution forward() runs has stride 1, no padding and no dilation (nn.Conv2d or F.conv2d)."""
    trace = trace_net(3)
    problems = convolution_violations(trace)
    if problems:
        fail("the rule is no stride and no padding anywhere; choose kernel sizes instead: " + "; ".join(problems))
    if trace.error:
        fail(f"Net.forward raised {trace.error}")


@pytest.mark.points(2)
def test_net_poolings_have_no_stride_or_padding(trace_net):
    """Every pooling forward() runs is a max-pooling with stride = kernel and no padding; nothing pads."""
    trace = trace_net(3)
    problems = pooling_violations(trace)
    if problems:
        fail("the rule is no stride and no padding anywhere, also in functional calls: " + "; ".join(problems))
    if trace.error:
        fail(f"Net.forward raised {trace.error}")


@pytest.mark.points(2)
def test_net_gradients_reach_every_parameter(make_net):
    """One backward pass gives every parameter a finite, non-zero gradient."""
    net = make_net()
    out = run("Net.forward", net.train(), torch.randn(32, 1, 28, 28))
    assert_gradients_flow(net, F.nll_loss(F.log_softmax(out, dim=1), torch.randint(0, 10, (32,))))


@pytest.mark.points(1)
def test_net_device_check(make_net):
    """Net creates every tensor on its input's device (checked on PyTorch's 'meta' device: no GPU needed)."""
    assert_device_follows_input(make_net())


@pytest.mark.gpu
@pytest.mark.points(0)
def test_net_runs_on_gpu(make_net):
    """Net runs forward and backward on CUDA."""
    assert_runs_on(make_net(), "cuda", torch.randn(4, 1, 28, 28))


@pytest.mark.slow
@pytest.mark.points(5)
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
