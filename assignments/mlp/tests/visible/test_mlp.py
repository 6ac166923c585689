"""Visible tests of assignment 1. Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points.
"""
from pathlib import Path

import pytest
import torch

from mnistkit.testing import (
    assert_dtype,
    assert_gradients_flow,
    assert_parameter_count,
    assert_runs_on_device,
    assert_shape,
    call_student,
)
from mnistkit.train import fit, predict

AGENT_FILE = "mnist_agent.pt"


@pytest.mark.points(2)
@pytest.mark.parametrize("batch", [1, 64])
def test_net_output_shape(make_net, batch):
    """Net maps (N, 1, 28, 28) images to (N, 10) float32 scores."""
    net = make_net()
    out = call_student("Net.forward", net, torch.randn(batch, 1, 28, 28))
    assert_shape(out, (batch, 10), f"output of Net for a batch of {batch} images")
    assert_dtype(out, torch.float32, "output of Net")


@pytest.mark.points(1)
def test_net_accepts_flat_input(make_net):
    """Net also accepts flattened images of shape (N, 784)."""
    net = make_net()
    out = call_student("Net.forward on (N, 784) input", net, torch.randn(8, 784))
    assert_shape(out, (8, 10), "output of Net for flat input (8, 784)")


@pytest.mark.points(2)
def test_net_outputs_log_probabilities(make_net):
    """exp(output) sums to 1 over the 10 classes for every image."""
    net = make_net().eval()
    out = call_student("Net.forward", net, torch.randn(16, 1, 28, 28) * 3)
    assert_shape(out, (16, 10), "output of Net for a batch of 16 images")
    sums = out.exp().sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        pytest.fail(f"expected exp(output) to sum to 1 per row (log_softmax over dim 1), got sums "
                    f"{[round(s, 4) for s in sums[:4].tolist()]}...", pytrace=False)


@pytest.mark.points(2)
def test_net_parameter_count(make_net):
    """784-50-50-10 with biases has exactly 42,310 parameters."""
    assert_parameter_count(make_net(), 42_310, "Layers: 784 -> 50 -> 50 -> 10, each nn.Linear with a bias.")


@pytest.mark.points(2)
def test_net_gradients_reach_every_parameter(make_net):
    """One backward pass gives every parameter a finite, non-zero gradient."""
    net = make_net().train()
    out = call_student("Net.forward", net, torch.randn(32, 1, 28, 28))
    loss = torch.nn.functional.nll_loss(out, torch.randint(0, 10, (32,)))
    assert_gradients_flow(net, loss)


@pytest.mark.points(1)
def test_net_device_check(mlp):
    """Net runs forward and backward on a device other than the CPU (the 'meta' device: no GPU needed)."""
    assert_runs_on_device(mlp.Net, torch.randn(4, 1, 28, 28), "meta")


@pytest.mark.gpu
@pytest.mark.points(0)
def test_net_runs_on_gpu(mlp):
    """Net runs forward and backward on CUDA."""
    assert_runs_on_device(mlp.Net, torch.randn(4, 1, 28, 28), "cuda")


@pytest.mark.points(2)
def test_one_hot_rows(mlp):
    """one_hot turns labels (N,) into float32 rows (N, 10) with a single 1 at the label."""
    labels = torch.tensor([3, 0, 9, 3])
    out = call_student("one_hot", mlp.one_hot, labels)
    assert_shape(out, (4, 10), "one_hot(labels) for 4 labels")
    assert_dtype(out, torch.float32, "one_hot(labels)")
    expected = torch.zeros(4, 10)
    expected[torch.arange(4), labels] = 1
    if not torch.equal(out, expected):
        pytest.fail(f"one_hot(tensor([3, 0, 9, 3])): expected a 1 at columns [3, 0, 9, 3] and 0 elsewhere, "
                    f"got rows {out.tolist()}", pytrace=False)


@pytest.mark.slow
@pytest.mark.points(4)
@pytest.mark.accuracy("trained")
def test_net_trained_accuracy(make_net, mnist_train, judged_images, grading_budget, judge):
    """Trained with the grader's fixed budget (see README), Net reaches the accuracy threshold."""
    net = make_net(seed=0)
    images, labels = mnist_train
    call_student("training Net", fit, net, images, labels, budget=grading_budget, seed=0)
    judge(call_student("predicting with Net", predict, net, judged_images))


@pytest.mark.points(3)
@pytest.mark.accuracy("agent")
def test_agent_file_accuracy(make_net, judged_images, judge):
    """mnist_agent.pt (saved by `python mnist.py`) loads into Net and reaches the threshold."""
    if not Path(AGENT_FILE).is_file():
        pytest.fail(f"{AGENT_FILE} not found: run `python mnist.py` to train your Net and save it", pytrace=False)
    try:
        state = torch.load(AGENT_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"{AGENT_FILE} could not be read as saved weights: {err}", pytrace=False)
    net = make_net()
    call_student(f"Net().load_state_dict(torch.load({AGENT_FILE!r}))", net.load_state_dict, state)
    judge(call_student("predicting with the saved Net", predict, net, judged_images))
