"""Hidden tests of assignment 3: the network and the student's table against the table of the assignment.

The reference table lives here (and in the handout's contract); a failure names only the row that differs.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistkit.testing import assert_dtype, assert_runs_on_device, assert_shape, call_student

# Per image (the batch dimension left out), in the order of the rows of conftest.LAYOUT.
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
def test_shape_table_matches_the_assignment(kit, vgg, batch):
    """Your shape_table agrees with the table of the assignment in every row."""
    assert len(REFERENCE) == len(kit.LAYOUT)
    difference = kit.table_difference(kit.student_table(vgg, batch), REFERENCE, batch,
                                      f"your shape_table({batch})", "the assignment's table")
    if difference:
        pytest.fail(difference + f". Recompute that row with {kit.FORMULA}", pytrace=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("row", range(1, 18), ids=ROW_IDS)
def test_net_shape_table(kit, trace_net, row):
    """After each row of the table Net's activations have the assignment's shape (one test per row)."""
    batch = 2
    rows = kit.table_rows(trace_net(batch), kit.make_table(REFERENCE), batch)
    message = kit.row_failure(rows, row, batch)
    if message:
        pytest.fail(message, pytrace=False)


@pytest.mark.points(1)
def test_net_shape_table_in_train_mode(kit, trace_net):
    """The assignment's table also holds in train() mode (a batch of 3)."""
    rows = kit.table_rows(trace_net(3, train=True), kit.make_table(REFERENCE), 3)
    for index in range(1, len(rows)):
        message = kit.row_failure(rows, index, 3)
        if message:
            pytest.fail(message + " [train mode]", pytrace=False)


@pytest.mark.points(2)
@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4), padding=st.integers(0, 3))
def test_out_size_matches_torch(vgg, size, kernel, stride, padding):
    """out_size agrees with the size nn.Conv2d really produces, for any valid size, kernel, stride and padding."""
    if size + 2 * padding < kernel:
        return  # not a valid convolution (torch refuses it); nothing to compare
    x = torch.zeros(1, 1, size, size)
    expected = F.conv2d(x, torch.zeros(1, 1, kernel, kernel), stride=stride, padding=padding).shape[-1]
    got = call_student("out_size", vgg.out_size, size, kernel, stride, padding)
    if got != expected:
        pytest.fail(f"out_size({size}, kernel={kernel}, stride={stride}, padding={padding}): nn.Conv2d gives "
                    f"{expected} = floor(({size} + 2*{padding} - {kernel})/{stride}) + 1, got {got!r}",
                    pytrace=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [3, 33])
def test_net_output_shape_odd_batches(make_net, batch):
    """Odd batch sizes keep their size: (B, 10) out for B images in, in train and in eval mode."""
    for mode in ("train", "eval"):
        net = make_net()
        net.train(mode == "train")
        with torch.no_grad():
            out = call_student(f"Net.forward in {mode} mode", net, torch.randn(batch, 1, 28, 28))
        assert_shape(out, (batch, 10), f"output of Net in {mode} mode for a batch of {batch} images")
        assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_applies_batchnorm_after_every_conv(trace_net):
    """forward() applies batch norm after each of the eight convolutions (64, 128, 256, 256, 512 x 4 channels)."""
    trace = trace_net(2, train=True)
    if trace.error:
        pytest.fail(f"Net.forward raised {trace.error}", pytrace=False)
    features = [op.params["features"] for op in trace.ops if op.kind == "norm"]
    expected = [64, 128, 256, 256, 512, 512, 512, 512]
    if features != expected:
        pytest.fail(f"expected batch norm over {expected} channels in this order (one nn.BatchNorm2d after each "
                    f"convolution), your forward normalises {features or 'nothing'}", pytrace=False)


@pytest.mark.points(1)
def test_net_dropout_rate(make_net):
    """The two dropout layers drop with p = 0.2."""
    net = make_net()
    rates = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    if rates and any(abs(p - 0.2) > 1e-9 for p in rates):
        pytest.fail(f"expected dropout with p = 0.2, got nn.Dropout layers with p = {rates}", pytrace=False)


@pytest.mark.points(1)
def test_net_dropout_active_in_train_mode(trace_net):
    """In train() mode forward() drops units: two dropout calls with p = 0.2 that are active."""
    trace = trace_net(2, train=True)
    dropouts = [op for op in trace.ops if op.kind == "dropout"]
    if len(dropouts) != 2 or any(abs(op.params["p"] - 0.2) > 1e-9 for op in dropouts):
        pytest.fail(f"expected two dropouts with p = 0.2 in forward(), found {[op.params['p'] for op in dropouts]}",
                    pytrace=False)
    if not all(op.params["training"] for op in dropouts):
        pytest.fail("in train() mode a dropout of forward() is switched off: use nn.Dropout, or pass "
                    "training=self.training to F.dropout", pytrace=False)


@pytest.mark.points(1)
def test_net_eval_mode_is_deterministic(make_net):
    """In eval() mode two passes over the same batch are identical (dropout off, running statistics)."""
    net = make_net().eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        a = call_student("Net.forward", net, x)
        b = call_student("Net.forward", net, x)
    if not torch.equal(a, b):
        pytest.fail("two forward passes in eval() mode differ: dropout must be off in eval mode (use nn.Dropout, "
                    "or F.dropout(x, p, training=self.training))", pytrace=False)


@pytest.mark.points(1)
def test_net_eval_output_independent_of_batch(make_net):
    """In eval() mode an image's output does not depend on the other images of the batch."""
    net = make_net().train()
    with torch.no_grad():
        call_student("Net.forward in train mode", net, torch.randn(16, 1, 28, 28) * 2 + 0.5)
    net.eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        alone = call_student("Net.forward", net, x[:1])
        together = call_student("Net.forward", net, x)
    if not torch.allclose(alone[0], together[0], atol=1e-4):
        pytest.fail("in eval() mode the output for an image changes with the rest of the batch: BatchNorm must "
                    "use its running statistics in eval mode (nn.BatchNorm2d does this for you)", pytrace=False)


@pytest.mark.points(1)
def test_net_device_check_eval_mode(vgg):
    """In eval() mode Net also runs on the 'meta' device."""
    def factory():
        return vgg.Net().eval()

    assert_runs_on_device(factory, torch.randn(2, 1, 28, 28), "meta")
