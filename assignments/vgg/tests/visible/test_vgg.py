"""Visible tests of assignment 3 (VGG-like CNN). Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. The
hidden tests also compare your network and your shape_table with the table of the assignment, row by row.
Your network reaches the tests as the grader sees it: exported with torch.export (tests/plan.py says how).
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
    judge_explained,
    run,
    trained_predictions,
    without_final_softmax,
)
from mnistkit.graph import reinitialise
from mnistkit.tracing import fmt, row_failure, table_rows
from plan import EXAMPLES
from vgg_contract import (
    KNOWN_ROWS, PARAMETERS, ROW_NAMES, convolution_violations, make_table, out_size_value, pooling_violations,
    student_table, table_difference,
)


@pytest.mark.points(2)
def test_out_size_examples(probe):
    """out_size follows H_out = floor((H_in + 2*padding - kernel)/stride) + 1 (five worked examples)."""
    for index, case in enumerate(EXAMPLES):
        size, kernel, stride, padding = case
        expected = (size + 2 * padding - kernel) // stride + 1
        got = out_size_value(probe, index, case)
        if got != expected or not isinstance(got, int) or isinstance(got, bool):
            fail(f"out_size({size}, kernel={kernel}, stride={stride}, padding={padding}): expected the int {expected} "
                 f"= floor(({size} + 2*{padding} - {kernel})/{stride}) + 1, got {got!r}")


@pytest.mark.points(1)
def test_shape_table_form(probe):
    """shape_table(4) is a list of 18 (name, shape) rows; every shape is a tuple of ints starting with 4."""
    student_table(probe, 4)


@pytest.mark.points(1)
def test_shape_table_given_rows(probe):
    """The rows the contract states outright: input, conv1 (B, 64, 30, 30), flatten (B, 512), fc3 (B, 10), class (B,)."""
    shapes = student_table(probe, 4)
    for index, expected in KNOWN_ROWS.items():
        if shapes[index] != expected:
            hint = (": conv1 grows the picture from 28 to 30, so its padding is not 1 (H_out = floor((H_in + "
                    "2*padding - kernel)/stride) + 1)" if index == 1 else "")
            fail(f"shape_table(4), row {index} ({ROW_NAMES[index]}): expected {fmt((4, *expected), 4)}, got "
                 f"{fmt((4, *shapes[index]), 4)}{hint}")


@pytest.mark.points(1)
def test_shape_table_follows_the_batch(probe):
    """shape_table(1) and shape_table(7) differ only in the batch size."""
    difference = table_difference(student_table(probe, 7), student_table(probe, 1), 7, "shape_table(7)",
                                  "shape_table(1)")
    if difference:
        fail("apart from the batch size the two tables must agree: " + difference)


@pytest.mark.points(3)
def test_net_agrees_with_your_table(probe, trace_net):
    """Net's real shapes after every row (traced in its exported graph) are the ones your shape_table states."""
    batch = 2
    rows = table_rows(trace_net(batch), make_table(student_table(probe, batch)), batch)
    for index in range(1, len(rows)):
        message = row_failure(rows, index, batch)
        if message:
            fail("your network and your shape_table disagree (\"expected\" is your table): " + message)


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [1, 4])
def test_net_output_shape(make_net, batch):
    """Net maps (B, 1, 28, 28) images to (B, 10) float32 scores (in eval mode)."""
    out = run("Net.forward", make_net().eval(), torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_outputs_log_probabilities(make_net):
    """exp(output) sums to 1 over the 10 classes for every image."""
    out = run("Net.forward", make_net().eval(), torch.randn(4, 1, 28, 28) * 3)
    assert_shape(out, (4, 10), "output of Net for a batch of 4 images")
    assert_log_probabilities(out, "output of Net")


@pytest.mark.points(2)
def test_net_parameter_count(make_net):
    """Eight 3x3 convolutions, their BatchNorm layers and three linear layers: 9,287,242 parameters."""
    assert_parameter_count(
        make_net(), PARAMETERS,
        "Expected: 9,219,328 in the eight nn.Conv2d(kernel_size=3) with biases (1->64, 64->128, 128->256, "
        "256->256, 256->512, 512->512, 512->512, 512->512), 5,504 in their nn.BatchNorm2d, 62,410 in "
        "Linear(512, 100), Linear(100, 100), Linear(100, 10). Padding does not change the count; a wrong count "
        "usually means a missing BatchNorm or a wrong channel count.")


@pytest.mark.points(1)
def test_net_convolutions_follow_the_contract(trace_net):
    """Every convolution forward() runs is 3x3 with stride 1 and no dilation (nn.Conv2d or F.conv2d)."""
    trace = trace_net(2)
    problems = convolution_violations(trace)
    if problems:
        fail("; ".join(problems))
    if trace.error:
        fail(f"Net.forward raised {trace.error}")


@pytest.mark.points(1)
def test_net_poolings_follow_the_contract(trace_net):
    """Every pooling forward() runs is a 2x2 max-pooling with stride 2 and no padding (nn.MaxPool2d or F.max_pool2d)."""
    trace = trace_net(2)
    problems = pooling_violations(trace)
    if problems:
        fail("; ".join(problems))
    if trace.error:
        fail(f"Net.forward raised {trace.error}")


@pytest.mark.points(2)
def test_net_gradients_reach_every_parameter(make_net):
    """One backward pass gives every parameter a finite, non-zero gradient."""
    net = make_net()
    out = run("Net.forward", net.train(), torch.randn(8, 1, 28, 28))
    assert_gradients_flow(net, F.nll_loss(F.log_softmax(out, dim=1), torch.randint(0, 10, (8,))))


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
@pytest.mark.points(4)
@pytest.mark.accuracy("trained")
def test_net_trained_accuracy(make_net, mnist_train, judged_images, grading_budget, judge):
    """Freshly initialised and trained on the CPU with the grader's small budget (a subset, see README), Net passes."""
    net = make_net()
    assert_layers_only(net)
    net = without_final_softmax(net)  # its final (log-)softmax is judged by test_net_outputs_log_probabilities
    reinitialise(net, seed=0)
    images, labels = mnist_train
    predictions = trained_predictions(net, images, labels, judged_images, budget=grading_budget, seed=0, batch_size=100)
    judge_explained(judge, predictions, net)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.points(0)
@pytest.mark.accuracy("full")
def test_net_trained_accuracy_full_data_on_gpu(make_net, mnist_train, judged_images, grading_budget, judge):
    """Trained on CUDA with the grader's full-data budget (see README), Net reaches the higher threshold."""
    net = make_net()
    assert_layers_only(net)
    net = without_final_softmax(net)
    reinitialise(net, seed=0)
    images, labels = mnist_train
    predictions = trained_predictions(net, images, labels, judged_images, budget=grading_budget, seed=0, device="cuda")
    judge_explained(judge, predictions, net)
