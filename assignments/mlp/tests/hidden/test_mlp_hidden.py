"""Hidden tests of assignment 1: the same contract as the visible ones, probed more widely."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistkit.testing import assert_dtype, assert_runs_on_device, assert_shape, call_student


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [3, 257])
def test_net_output_shape_odd_batches(make_net, batch):
    """Odd batch sizes keep their size: (N, 10) out for N images in."""
    out = call_student("Net.forward", make_net(), torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_flat_and_image_input_agree(make_net):
    """In eval mode, (N, 1, 28, 28) and the same images flattened to (N, 784) give the same output."""
    net = make_net().eval()
    x = torch.randn(5, 1, 28, 28)
    a = call_student("Net.forward", net, x)
    b = call_student("Net.forward on (N, 784) input", net, x.reshape(5, 784))
    if not torch.allclose(a, b, atol=1e-6):
        pytest.fail("the outputs for (5, 1, 28, 28) input and the same images as (5, 784) differ", pytrace=False)


@pytest.mark.points(2)
def test_net_dropout_active_in_train_mode(make_net):
    """In train() mode dropout makes two passes over the same batch differ."""
    net = make_net().train()
    x = torch.randn(64, 1, 28, 28)
    torch.manual_seed(1)
    a = call_student("Net.forward", net, x)
    b = call_student("Net.forward", net, x)
    if torch.equal(a, b):
        pytest.fail("two forward passes in train() mode gave identical outputs: is dropout (p=0.2) applied "
                    "after each hidden ReLU, and only when self.training is True?", pytrace=False)


@pytest.mark.points(2)
def test_net_eval_mode_is_deterministic(make_net):
    """In eval() mode dropout is off: two passes over the same batch are identical."""
    net = make_net().eval()
    x = torch.randn(64, 1, 28, 28)
    a = call_student("Net.forward", net, x)
    b = call_student("Net.forward", net, x)
    if not torch.equal(a, b):
        pytest.fail("two forward passes in eval() mode differ: dropout must be off in eval mode "
                    "(use nn.Dropout, or F.dropout(x, p, training=self.training))", pytrace=False)


@pytest.mark.points(1)
def test_net_dropout_rate(make_net):
    """Dropout drops about 20% of the hidden units in train mode (p = 0.2)."""
    net = make_net().train()
    rates = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    if rates and any(abs(p - 0.2) > 1e-9 for p in rates):
        pytest.fail(f"expected dropout with p = 0.2, got nn.Dropout layers with p = {rates}", pytrace=False)


@pytest.mark.points(1)
def test_net_log_softmax_stable_for_large_inputs(make_net):
    """Huge inputs give finite log-probabilities (log_softmax, not log(softmax))."""
    net = make_net().eval()
    out = call_student("Net.forward", net, torch.full((4, 1, 28, 28), 1e4))
    if not torch.isfinite(out).all():
        pytest.fail("Net returned inf or NaN for large inputs: use F.log_softmax(x, dim=1) rather than "
                    "torch.log(F.softmax(x))", pytrace=False)


@pytest.mark.points(1)
@settings(max_examples=25, deadline=None)
@given(labels=st.lists(st.integers(0, 9), min_size=1, max_size=40), extra=st.integers(0, 5))
def test_one_hot_matches_definition(mlp, labels, extra):
    """For any labels and num_classes, one_hot has one 1 per row, at the label."""
    num_classes = 10 + extra
    t = torch.tensor(labels)
    out = call_student("one_hot", mlp.one_hot, t, num_classes)
    assert_shape(out, (len(labels), num_classes), f"one_hot(labels, num_classes={num_classes})")
    if not (torch.equal(out.sum(dim=1), torch.ones(len(labels))) and torch.equal(out.argmax(dim=1), t)):
        pytest.fail(f"one_hot({labels}, {num_classes}) does not put a single 1 at each label", pytrace=False)


@pytest.mark.points(1)
def test_one_hot_device_check(mlp):
    """one_hot returns its rows on the device of the labels (checked on 'meta', no GPU needed)."""
    labels = torch.tensor([1, 2]).to("meta")
    out = call_student("one_hot on the meta device", mlp.one_hot, labels)
    if out.device.type != "meta":
        pytest.fail(f"one_hot(labels on 'meta') returned rows on {out.device}: create them with "
                    "device=labels.device", pytrace=False)


@pytest.mark.gpu
@pytest.mark.points(0)
def test_one_hot_runs_on_gpu(mlp):
    out = call_student("one_hot on CUDA", mlp.one_hot, torch.tensor([1, 2], device="cuda"))
    assert out.device.type == "cuda"


@pytest.mark.points(1)
def test_net_device_check_flat_input(mlp):
    """Flat (N, 784) input also runs on the 'meta' device."""
    assert_runs_on_device(mlp.Net, torch.randn(4, 784), "meta")
