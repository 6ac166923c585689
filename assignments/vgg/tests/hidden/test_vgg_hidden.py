"""Hidden tests of assignment 3: the network and the student's table against the table of the assignment.

The reference table lives here (and in the handout's contract); a failure names only the row that differs.
"""
import pytest
import torch

from mnistkit.checks import (
    assert_device_follows_input, assert_dtype, assert_shape, fail, randomness_in_eval, run, without_final_softmax,
)
from mnistkit.layers import layer_problems
from mnistkit.tracing import FORMULA, row_failure, table_rows
from plan import EXAMPLES, random_cases
from vgg_contract import LAYERS, LAYOUT, make_table, out_size_value, student_table, table_difference

# Per image (the batch dimension left out), in the order of the rows of LAYOUT.
REFERENCE = [
    (1, 28, 28),
    (64, 30, 30), (64, 15, 15),
    (128, 17, 17), (128, 8, 8),
    (256, 10, 10), (256, 5, 5),
    (512, 5, 5), (512, 2, 2),
    (512, 2, 2), (512, 1, 1),
    (512,),
    (100,), (100,), (100,), (100,), (10,),
    (),
]
ROW_IDS = ["row1-conv1", "row2-pool1", "row3-conv2", "row4-pool2", "row5-conv3conv4", "row6-pool3",
           "row7-conv5conv6", "row8-pool4", "row9-conv7conv8", "row10-pool5", "row11-flatten", "row12-fc1",
           "row13-dropout1", "row14-fc2", "row15-dropout2", "row16-fc3", "row17-predicted"]


@pytest.mark.points(3)
@pytest.mark.parametrize("batch", [2, 5])
def test_shape_table_matches_the_assignment(probe, batch):
    """Your shape_table agrees with the table of the assignment in every row."""
    assert len(REFERENCE) == len(LAYOUT)
    difference = table_difference(student_table(probe, batch), REFERENCE, batch, f"your shape_table({batch})",
                                  "the assignment's table")
    if difference:
        fail(difference + f". Recompute that row with {FORMULA}")


@pytest.mark.points(1)
@pytest.mark.parametrize("row", range(1, 18), ids=ROW_IDS)
def test_net_shape_table(trace_net, row):
    """After each row of the table Net's activations have the assignment's shape (one test per row)."""
    batch = 2
    message = row_failure(table_rows(trace_net(batch), make_table(REFERENCE), batch), row, batch)
    if message:
        fail(message)


@pytest.mark.points(1)
def test_net_shape_table_in_train_mode(trace_net):
    """The assignment's table also holds in train() mode (a batch of 3)."""
    rows = table_rows(trace_net(3, train=True), make_table(REFERENCE), 3)
    for index in range(1, len(rows)):
        message = row_failure(rows, index, 3)
        if message:
            fail(message + " [train mode]")


@pytest.mark.points(2)
def test_out_size_matches_the_formula(probe, plan_seed):
    """out_size agrees with the size a convolution really produces, on 40 random valid size/kernel/stride/padding."""
    for offset, case in enumerate(random_cases(plan_seed)):
        size, kernel, stride, padding = case
        expected = (size + 2 * padding - kernel) // stride + 1
        got = out_size_value(probe, len(EXAMPLES) + offset, case)
        if got != expected:
            fail(f"out_size({size}, kernel={kernel}, stride={stride}, padding={padding}): nn.Conv2d gives {expected} "
                 f"= floor(({size} + 2*{padding} - {kernel})/{stride}) + 1, got {got!r}")


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [3, 33])
def test_net_output_shape_odd_batches(make_net, batch):
    """Odd batch sizes keep their size: (B, 10) out for B images in, in train and in eval mode."""
    for mode in ("train", "eval"):
        net = make_net()
        net.train(mode == "train")
        with torch.no_grad():
            out = run(f"Net.forward in {mode} mode", net, torch.randn(batch, 1, 28, 28))
        assert_shape(out, (batch, 10), f"output of Net in {mode} mode for a batch of {batch} images")
        assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_applies_batchnorm_after_every_conv(trace_net):
    """forward() applies batch norm after each of the eight convolutions (64, 128, 256, 256, 512 x 4 channels)."""
    trace = trace_net(2, train=True)
    if trace.error:
        fail(f"Net.forward raised {trace.error}")
    features = [op.params["features"] for op in trace.ops if op.kind == "norm"]
    expected = [64, 128, 256, 256, 512, 512, 512, 512]
    if features != expected:
        fail(f"expected batch norm over {expected} channels in this order (one nn.BatchNorm2d after each "
             f"convolution), your forward normalises {features or 'nothing'}")


@pytest.mark.points(1)
def test_net_layers_in_order(trace_net):
    """Every conv is followed by BatchNorm and ReLU (and a block's last one by max-pooling); the classifier
    is Linear, ReLU, Dropout(0.2) twice, then Linear and log_softmax."""
    problems = layer_problems(trace_net(2, train=True), LAYERS)
    if problems:
        fail("; ".join(problems[:2]))


@pytest.mark.points(1)
def test_net_dropout_active_in_train_mode(trace_net):
    """In train() mode forward() drops units: two dropout calls with p = 0.2 that are active."""
    trace = trace_net(2, train=True)
    dropouts = [op for op in trace.ops if op.kind == "dropout"]
    if trace.error and len(dropouts) < 2:
        fail(f"Net.forward in train mode raised {trace.error}")
    if len(dropouts) != 2 or any(abs(op.params["p"] - 0.2) > 1e-9 for op in dropouts):
        fail(f"expected two dropouts with p = 0.2 in forward(), found {[op.params['p'] for op in dropouts]}")
    if not all(op.params["training"] for op in dropouts):
        fail("in train() mode a dropout of forward() is switched off: use nn.Dropout, or pass training=self.training "
             "to F.dropout")


@pytest.mark.points(1)
def test_net_eval_mode_is_deterministic(make_net):
    """In eval() mode two passes over the same batch are identical (dropout off, running statistics)."""
    net = make_net().eval()
    x = torch.randn(4, 1, 28, 28)
    a = run("Net.forward", net, x)
    b = run("Net.forward", net, x)
    if not torch.equal(a, b):
        fail("two forward passes in eval() mode differ: " + (randomness_in_eval(net) or (
            "dropout must be off in eval mode (use nn.Dropout, or F.dropout(x, p, training=self.training))")))


@pytest.mark.points(1)
def test_net_eval_output_independent_of_batch(make_net):
    """In eval() mode an image's output does not depend on the other images of the batch."""
    net = make_net().train()
    with torch.no_grad():
        run("Net.forward in train mode", net, torch.randn(16, 1, 28, 28) * 2 + 0.5)
    net = without_final_softmax(net).eval()  # the scores: a final (log-)softmax over dim 0 is judged elsewhere
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        alone = run("Net.forward", net, x[:1])
        together = run("Net.forward", net, x)
    if not torch.allclose(alone[0], together[0], atol=1e-4):
        cause = randomness_in_eval(net)  # then the same batch twice differs too: that is the mistake to name
        if cause:
            fail(f"in eval() mode the output for an image changes from one pass to the next: {cause}")
        fail("in eval() mode the output for an image changes with the rest of the batch: BatchNorm must use its "
             "running statistics in eval mode (nn.BatchNorm2d does this for you)")


@pytest.mark.points(1)
def test_net_device_check_both_modes(make_net):
    """In train and in eval mode Net follows its input's device (the 'meta' device)."""
    assert_device_follows_input(make_net())
