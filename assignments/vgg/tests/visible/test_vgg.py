"""Visible tests of assignment 3 (VGG-like CNN). Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. The
hidden tests also compare your network and your shape_table with the table of the assignment, row by row.
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


@pytest.mark.points(2)
def test_out_size_examples(vgg):
    """out_size follows H_out = floor((H_in + 2*padding - kernel)/stride) + 1 (five worked examples)."""
    for size, kernel, stride, padding, expected in [(32, 5, 1, 0, 28), (7, 3, 2, 1, 4), (10, 2, 2, 0, 5),
                                                    (9, 2, 2, 0, 4), (6, 3, 1, 1, 6)]:
        got = call_student("out_size", vgg.out_size, size, kernel, stride, padding)
        if got != expected or not isinstance(got, int):
            pytest.fail(f"out_size({size}, kernel={kernel}, stride={stride}, padding={padding}): expected "
                        f"the int {expected} = floor(({size} + 2*{padding} - {kernel})/{stride}) + 1, got {got!r}",
                        pytrace=False)


@pytest.mark.points(1)
def test_shape_table_form(kit, vgg):
    """shape_table(4) is a list of 18 (name, shape) rows; every shape is a tuple of ints starting with 4."""
    kit.student_table(vgg, 4)


@pytest.mark.points(1)
def test_shape_table_given_rows(kit, vgg):
    """The rows the contract states outright: input (B, 1, 28, 28), flatten (B, 512), fc3 (B, 10), class (B,)."""
    shapes = kit.student_table(vgg, 4)
    for index, expected in kit.KNOWN_ROWS.items():
        if shapes[index] != expected:
            pytest.fail(f"shape_table(4), row {index} ({kit.ROW_NAMES[index]}): expected "
                        f"{kit.fmt((4, *expected), 4)}, got {kit.fmt((4, *shapes[index]), 4)}", pytrace=False)


@pytest.mark.points(1)
def test_shape_table_follows_the_batch(kit, vgg):
    """shape_table(1) and shape_table(7) differ only in the batch size."""
    one = kit.student_table(vgg, 1)
    seven = kit.student_table(vgg, 7)
    difference = kit.table_difference(seven, one, 7, "shape_table(7)", "shape_table(1)")
    if difference:
        pytest.fail("apart from the batch size the two tables must agree: " + difference, pytrace=False)


@pytest.mark.points(3)
def test_net_agrees_with_your_table(kit, vgg, trace_net):
    """Net's real shapes after every row (traced with forward hooks) are the ones your shape_table states."""
    batch = 2
    shapes = kit.student_table(vgg, batch)
    rows = kit.table_rows(trace_net(batch), kit.make_table(shapes), batch)
    for index in range(1, len(rows)):
        message = kit.row_failure(rows, index, batch)
        if message:
            pytest.fail("your network and your shape_table disagree (\"expected\" is your table): " + message,
                        pytrace=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [1, 4])
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
        out = call_student("Net.forward", net, torch.randn(4, 1, 28, 28) * 3)
    assert_shape(out, (4, 10), "output of Net for a batch of 4 images")
    sums = out.exp().sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        pytest.fail(f"expected exp(output) to sum to 1 per row (log_softmax over dim 1), got sums "
                    f"{[round(s, 4) for s in sums.tolist()]}", pytrace=False)


@pytest.mark.points(2)
def test_net_parameter_count(make_net):
    """Eight 3x3 convolutions, their BatchNorm layers and three linear layers: 9,287,242 parameters."""
    assert_parameter_count(
        make_net(), 9_287_242,
        "Expected: 9,219,328 in the eight nn.Conv2d(kernel_size=3) with biases (1->64, 64->128, 128->256, "
        "256->256, 256->512, 512->512, 512->512, 512->512), 5,504 in their nn.BatchNorm2d, 62,410 in "
        "Linear(512, 100), Linear(100, 100), Linear(100, 10). Padding does not change the count.")


@pytest.mark.points(1)
def test_net_layers_follow_the_contract(kit, make_net):
    """Every Conv2d is 3x3 with stride 1; every pooling is a 2x2 max-pooling without padding (inspects the modules)."""
    problems = kit.module_violations(make_net())
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.mark.points(1)
def test_net_forward_follows_the_contract(kit, trace_net):
    """What forward() calls (F.conv2d and F.max_pool2d too) is 3x3 convolutions and 2x2 max-pooling."""
    trace = trace_net(2)
    problems = kit.forward_violations(trace)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    if trace.error:
        pytest.fail(f"Net.forward raised {trace.error}", pytrace=False)


@pytest.mark.points(2)
def test_net_gradients_reach_every_parameter(make_net):
    """One backward pass gives every parameter a finite, non-zero gradient."""
    net = make_net().train()
    out = call_student("Net.forward", net, torch.randn(8, 1, 28, 28))
    loss = F.nll_loss(F.log_softmax(out, dim=1), torch.randint(0, 10, (8,)))
    assert_gradients_flow(net, loss)


@pytest.mark.points(1)
def test_net_device_check(vgg):
    """Net runs forward and backward on a device other than the CPU (the 'meta' device: no GPU needed)."""
    assert_runs_on_device(vgg.Net, torch.randn(4, 1, 28, 28), "meta")


@pytest.mark.gpu
@pytest.mark.points(0)
def test_net_runs_on_gpu(vgg):
    """Net runs forward and backward on CUDA."""
    assert_runs_on_device(vgg.Net, torch.randn(4, 1, 28, 28), "cuda")


@pytest.mark.slow
@pytest.mark.points(4)
@pytest.mark.accuracy("trained")
def test_net_trained_accuracy(make_net, mnist_train, judged_images, grading_budget, judge):
    """Trained on the CPU with the grader's small budget (a subset, see README), Net reaches the threshold."""
    net = make_net(seed=0)
    images, labels = mnist_train
    call_student("training Net", fit, net, images, labels, budget=grading_budget, seed=0)
    judge(call_student("predicting with Net", predict, net, judged_images, batch_size=100))


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.points(0)
@pytest.mark.accuracy("full")
def test_net_trained_accuracy_full_data_on_gpu(make_net, mnist_train, judged_images, grading_budget, judge):
    """Trained on CUDA with the grader's full-data budget (see README), Net reaches the higher threshold."""
    net = make_net(seed=0)
    images, labels = mnist_train
    call_student("training Net on CUDA", fit, net, images, labels, budget=grading_budget, seed=0, device="cuda")
    judge(call_student("predicting with Net on CUDA", predict, net, judged_images, device="cuda"))
