"""Visible tests of assignment 2 (simple CNN). Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points.
"""
import pytest
import torch
import torch.nn.functional as F

from mnistkit.testing import (
    assert_dtype,
    assert_gradients_flow,
    assert_parameter_count,
    assert_runs_on_device,
    assert_shape,
    call_student,
)
from mnistkit.train import fit, predict


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [1, 64])
def test_net_output_shape(make_net, batch):
    """Net maps (B, 1, 28, 28) images to (B, 10) float32 scores (in eval mode)."""
    net = make_net().eval()
    with torch.no_grad():
        out = call_student("Net.forward", net, torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_outputs_log_probabilities(make_net):
    """exp(output) sums to 1 over the 10 classes for every image."""
    net = make_net().eval()
    with torch.no_grad():
        out = call_student("Net.forward", net, torch.randn(16, 1, 28, 28) * 3)
    assert_shape(out, (16, 10), "output of Net for a batch of 16 images")
    sums = out.exp().sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        pytest.fail(f"expected exp(output) to sum to 1 per row (log_softmax over dim 1), got sums "
                    f"{[round(s, 4) for s in sums[:4].tolist()]}...", pytrace=False)


@pytest.mark.points(1)
def test_net_shape_table(kit, trace_net, table_row):
    """After each layer the activations have the shape of the table in cnn.py (one test per row)."""
    batch = 3
    trace = trace_net(batch)
    rows = kit.table_rows(trace, kit.TABLE, batch)
    message = kit.row_failure(rows, table_row, batch)
    if message:
        pytest.fail(message, pytrace=False)


@pytest.mark.points(2)
def test_net_parameter_count(make_net):
    """conv1, conv2, fc1, fc2 and the three BatchNorm layers have exactly 22,000 parameters."""
    assert_parameter_count(
        make_net(), 22_000,
        "Conv2d(1, 10) and Conv2d(10, 20) with the kernel sizes of the table, Linear(320, 50), Linear(50, 10), "
        "all with biases, plus BatchNorm2d(10), BatchNorm2d(20) and BatchNorm1d(50) (2 parameters per channel, "
        "160 in all). A wrong count usually means a wrong kernel size or a missing BatchNorm.")


@pytest.mark.points(2)
def test_net_layers_have_no_stride_or_padding(kit, make_net):
    """No layer of Net is built with stride, padding or dilation (inspects the modules)."""
    problems = kit.module_violations(make_net())
    if problems:
        pytest.fail("the rule is no stride and no padding anywhere; choose kernel sizes instead: "
                    + "; ".join(problems), pytrace=False)


@pytest.mark.points(2)
def test_net_forward_uses_no_stride_or_padding(kit, trace_net):
    """forward() calls no convolution or pooling with stride, padding or dilation (F.conv2d and F.max_pool2d too)."""
    trace = trace_net(3)
    problems = kit.forward_violations(trace)
    if problems:
        pytest.fail("the rule is no stride and no padding anywhere, also in functional calls: "
                    + "; ".join(problems), pytrace=False)
    if trace.error:
        pytest.fail(f"Net.forward raised {trace.error}", pytrace=False)


@pytest.mark.points(2)
def test_net_gradients_reach_every_parameter(make_net):
    """One backward pass gives every parameter a finite, non-zero gradient."""
    net = make_net().train()
    out = call_student("Net.forward", net, torch.randn(32, 1, 28, 28))
    loss = F.nll_loss(F.log_softmax(out, dim=1), torch.randint(0, 10, (32,)))
    assert_gradients_flow(net, loss)


@pytest.mark.points(1)
def test_net_device_check(cnn):
    """Net runs forward and backward on a device other than the CPU (the 'meta' device: no GPU needed)."""
    assert_runs_on_device(cnn.Net, torch.randn(4, 1, 28, 28), "meta")


@pytest.mark.gpu
@pytest.mark.points(0)
def test_net_runs_on_gpu(cnn):
    """Net runs forward and backward on CUDA."""
    assert_runs_on_device(cnn.Net, torch.randn(4, 1, 28, 28), "cuda")


@pytest.mark.slow
@pytest.mark.points(5)
@pytest.mark.accuracy("trained")
def test_net_trained_accuracy(make_net, mnist_train, judged_images, grading_budget, judge):
    """Trained with the grader's fixed budget (see README), Net reaches the accuracy threshold."""
    net = make_net(seed=0)
    images, labels = mnist_train
    call_student("training Net", fit, net, images, labels, budget=grading_budget, seed=0)
    judge(call_student("predicting with Net", predict, net, judged_images))
