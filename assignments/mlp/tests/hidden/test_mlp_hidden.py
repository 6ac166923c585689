"""Hidden tests of assignment 1: the same contract as the visible ones, probed more widely."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistkit.checks import (
    assert_device_follows_input, assert_dtype, assert_runs_on, assert_shape, fail, randomness_in_eval, run,
)
from mnistkit.layers import layer_problems
from mnistkit.tracing import trace_forward
from mlp_contract import LAYERS


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [3, 257])
def test_net_output_shape_odd_batches(make_net, batch):
    """Odd batch sizes keep their size: (N, 10) out for N images in."""
    net = make_net()
    out = run("Net.forward", net.train(), torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_flat_and_image_input_agree(make_net):
    """In eval mode, (N, 1, 28, 28) and the same images flattened to (N, 784) give the same output."""
    net = make_net()
    net.eval()
    x = torch.randn(5, 1, 28, 28)
    a = run("Net.forward", net, x)
    b = run("Net.forward on (N, 784) input", net, x.reshape(5, 784))
    if not torch.allclose(a, b, atol=1e-6):
        cause = randomness_in_eval(net)
        fail("the outputs for (5, 1, 28, 28) input and the same images as (5, 784) differ" + (
            f" (as do two passes over the same input: {cause})" if cause else ""))


@pytest.mark.points(2)
def test_net_dropout_active_in_train_mode(make_net):
    """In train() mode dropout makes two passes over the same batch differ."""
    net = make_net()
    net.train()
    x = torch.randn(64, 1, 28, 28)
    torch.manual_seed(1)
    a = run("Net.forward", net, x)
    b = run("Net.forward", net, x)
    if torch.equal(a, b):
        fail("two forward passes in train() mode gave identical outputs: is dropout (p=0.2) applied after each "
             "hidden ReLU, and only when self.training is True?")


@pytest.mark.points(2)
def test_net_eval_mode_is_deterministic(make_net):
    """In eval() mode dropout is off: two passes over the same batch are identical."""
    net = make_net()
    net.eval()
    x = torch.randn(64, 1, 28, 28)
    a = run("Net.forward", net, x)
    b = run("Net.forward", net, x)
    if not torch.equal(a, b):
        fail("two forward passes in eval() mode differ: " + (randomness_in_eval(net) or (
            "dropout must be off in eval mode (use nn.Dropout, or F.dropout(x, p, training=self.training))")))


@pytest.mark.points(1)
def test_net_dropout_rate(make_net):
    """Exactly two dropouts, with p = 0.2, active in train mode (one after each hidden ReLU)."""
    net = make_net()
    trace = trace_forward(net.train(), torch.randn(4, 1, 28, 28))
    if trace.error:
        fail(f"Net.forward in train mode raised {trace.error}")
    rates = [op.params["p"] for op in trace.ops if op.kind == "dropout" and op.params["training"]]
    if rates != [0.2, 0.2]:
        fail(f"expected two dropouts with p = 0.2 active in train mode, your forward has {rates or 'none'}")


@pytest.mark.points(1)
def test_net_layers_in_order(make_net):
    """Each hidden layer is Linear, then ReLU, then Dropout(0.2); the output is Linear, then log_softmax."""
    net = make_net()
    problems = layer_problems(trace_forward(net.train(), torch.randn(4, 1, 28, 28)), LAYERS)
    if problems:
        fail("; ".join(problems[:2]))


@pytest.mark.points(1)
def test_net_log_softmax_stable_for_large_inputs(make_net):
    """Huge inputs give finite log-probabilities (log_softmax, not log(softmax))."""
    net = make_net()
    out = run("Net.forward", net.eval(), torch.full((4, 1, 28, 28), 1e4))
    if not torch.isfinite(out).all():
        fail("Net returned inf or NaN for large inputs: use F.log_softmax(x, dim=1) rather than torch.log(F.softmax(x))")


@pytest.mark.points(1)
@settings(max_examples=25, deadline=None)
@given(labels=st.lists(st.integers(0, 9), min_size=1, max_size=40), extra=st.integers(0, 5))
def test_one_hot_matches_definition(one_hot, labels, extra):
    """For any labels and num_classes, one_hot has one 1 per row, at the label."""
    num_classes = 10 + extra
    t = torch.tensor(labels)
    out = one_hot(t, num_classes)
    assert_shape(out, (len(labels), num_classes), f"one_hot(labels, num_classes={num_classes})")
    if not (torch.equal(out.sum(dim=1), torch.ones(len(labels))) and torch.equal(out.argmax(dim=1), t)):
        fail(f"one_hot({labels}, {num_classes}) does not put a single 1 at each label")


@pytest.mark.points(1)
def test_one_hot_device_check(probe):
    """one_hot creates its rows on the device of the labels (checked on 'meta', no GPU needed)."""
    assert_device_follows_input(probe.network("one_hot/10"), "one_hot")


@pytest.mark.gpu
@pytest.mark.points(0)
def test_one_hot_runs_on_gpu(one_hot):
    """one_hot runs on CUDA and returns its rows there."""
    out = one_hot(torch.tensor([1, 2], device="cuda"))
    if out.device.type != "cuda":
        fail(f"one_hot(labels on CUDA) returned rows on {out.device}")


@pytest.mark.gpu
@pytest.mark.points(0)
def test_net_runs_on_gpu_flat_input(make_net):
    """Flat (N, 784) input also runs forward and backward on CUDA."""
    net = make_net()
    assert_runs_on(net, "cuda", torch.randn(4, 784))
