"""Hidden tests of assignment 2: the same contract as the visible ones, probed more widely."""
import pytest
import torch
import torch.nn.functional as F

from cnn_contract import LAYERS, TABLE, convolution_violations, pooling_violations
from mnistkit.checks import (
    as_log_probabilities, assert_device_follows_input, assert_dtype, assert_shape, fail, inline_layer_text,
    inline_layers, randomness_in_eval, run, without_final_softmax,
)
from mnistkit.layers import layer_problems
from mnistkit.tracing import row_failure, table_rows


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [3, 257])
def test_net_output_shape_odd_batches(make_net, batch):
    """Odd batch sizes keep their size: (B, 10) out for B images in, in train and in eval mode."""
    for mode in ("train", "eval"):
        net = make_net()
        net.train(mode == "train")
        out = run(f"Net.forward in {mode} mode", net, torch.randn(batch, 1, 28, 28))
        assert_shape(out, (batch, 10), f"output of Net in {mode} mode for a batch of {batch} images")
        assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [1, 16])
def test_net_shape_table_other_batches(trace_net, batch):
    """Every row of the shape table also holds for batches of 1 and 16 images."""
    rows = table_rows(trace_net(batch), TABLE, batch)
    for index in range(1, len(rows)):
        message = row_failure(rows, index, batch)
        if message:
            fail(message)


@pytest.mark.points(1)
def test_net_shape_table_in_train_mode(trace_net):
    """The shape table holds in train() mode too (a batch of 8)."""
    rows = table_rows(trace_net(8, train=True), TABLE, 8)
    for index in range(1, len(rows)):
        message = row_failure(rows, index, 8)
        if message:
            fail(message + " [train mode]")


@pytest.mark.points(1)
def test_net_forward_rules_in_train_mode(trace_net):
    """No stride and no padding in train() mode either."""
    trace = trace_net(8, train=True)
    problems = convolution_violations(trace) + pooling_violations(trace)
    if problems:
        fail("the rule is no stride and no padding anywhere: " + "; ".join(problems))


@pytest.mark.points(2)
def test_net_applies_batchnorm(trace_net):
    """forward() applies batch norm over 10, then 20 channels, then 50 features (BatchNorm2d, 2d, 1d)."""
    trace = trace_net(4, train=True)
    if trace.error:
        fail(f"Net.forward raised {trace.error}")
    features = [op.params["features"] for op in trace.ops if op.kind == "norm"]
    if features != [10, 20, 50]:
        fail(f"expected batch norm over [10, 20, 50] features in this order (after conv1, conv2 and fc1), your "
             f"forward normalises {features or 'nothing'}")


@pytest.mark.points(1)
def test_net_layers_in_order(trace_net):
    """Each block is conv, BatchNorm, max-pooling and ReLU; fc1 has BatchNorm and ReLU; fc2 ends in log_softmax."""
    problems = layer_problems(trace_net(4, train=True), LAYERS)
    if problems:
        fail("; ".join(problems[:2]))


@pytest.mark.points(1)
def test_net_eval_mode_is_deterministic(make_net):
    """In eval() mode two passes over the same batch are identical."""
    net = make_net().eval()
    x = torch.randn(32, 1, 28, 28)
    a = run("Net.forward", net, x)
    b = run("Net.forward", net, x)
    if not torch.equal(a, b):
        fail("two forward passes in eval() mode differ: " + (randomness_in_eval(net) or (
            "dropout must be off in eval mode (use nn.Dropout, or pass training=self.training to F.dropout)")))


@pytest.mark.points(1)
def test_net_eval_output_independent_of_batch(make_net):
    """In eval() mode an image's output does not depend on the other images of the batch (running statistics)."""
    net = make_net().train()
    with torch.no_grad():
        for _ in range(3):  # move the running statistics away from their initial values
            run("Net.forward in train mode", net, torch.randn(64, 1, 28, 28) * 2 + 0.5)
    net = without_final_softmax(net).eval()  # the scores: a final (log-)softmax over dim 0 is judged elsewhere
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        alone = run("Net.forward", net, x[:1])
        together = run("Net.forward", net, x)
    if not torch.allclose(alone[0], together[0], atol=1e-5):
        cause = randomness_in_eval(net)  # then the same batch twice differs too: that is the mistake to name
        if cause:
            fail(f"in eval() mode the output for an image changes from one pass to the next: {cause}")
        fail("in eval() mode the output for an image changes with the rest of the batch: BatchNorm must use its "
             "running statistics in eval mode (nn.BatchNorm2d/1d do this for you)")


@pytest.mark.points(1)
def test_net_log_softmax_stable_for_large_inputs(make_net):
    """Huge inputs give finite log-probabilities (log_softmax, not log(softmax))."""
    out = run("Net.forward", make_net().eval(), torch.randn(4, 1, 28, 28) * 1e4)
    if not torch.isfinite(out).all():
        fail("Net returned inf or NaN for large inputs: use F.log_softmax(x, dim=1) rather than torch.log(F.softmax(x))")


@pytest.mark.points(2)
def test_net_learns_a_small_batch(make_net):
    """Thirty Adam steps on 64 images bring the training loss well down (the network can learn)."""
    net = make_net().train()
    inline = inline_layers(net)
    if inline:
        fail(f"{inline_layer_text(inline)}: its weights are drawn anew at every call, so the optimiser cannot train "
             "them; create every layer in __init__")
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (64,), generator=generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.nll_loss(as_log_probabilities(run("Net.forward", net, x)), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if not losses[-1] < 0.5 * losses[0]:
        fail(f"after 30 Adam steps on the same 64 images the loss went from {losses[0]:.3f} to {losses[-1]:.3f}; a "
             "working Net gets below half of its start. Are the layers connected in forward()?")


@pytest.mark.points(1)
def test_net_device_check_both_modes(make_net):
    """In train and in eval mode (running statistics), Net follows its input's device (the 'meta' device)."""
    assert_device_follows_input(make_net())
