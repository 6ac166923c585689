"""mnistkit.rules: the convolution and pooling rules of the cnn and vgg contracts, on traced small networks."""
import torch

from mnistkit import rules
from mnistkit.tracing import trace_forward
from small_nets import graph_net


def _trace(name):
    return trace_forward(graph_net(name).eval(), torch.randn(2, 1, 28, 28))


def test_rules_accept_a_plain_network():
    trace = _trace("CNN")
    assert rules.convolution_violations(trace, padding=False) == []
    assert rules.convolution_violations(trace, kernel=(5, 5)) == []
    assert rules.pooling_violations(trace, ceil_reason="no", pad_ops=True) == []
    assert rules.pooling_violations(trace, kernel=(2, 2), ceil_reason="no") == []


def test_rules_name_the_layer_and_the_rule_it_breaks():
    padded = _trace("SmallPadded")
    [problem] = rules.convolution_violations(padded, padding=False)
    assert "conv1" in problem and problem.endswith("padding=(1, 1): use no padding")
    assert rules.convolution_violations(padded) == []  # padding allowed (the vgg)
    [problem] = rules.convolution_violations(padded, kernel=(3, 3))
    assert problem.endswith("kernel (5, 5): every convolution is 3x3")
    [problem] = rules.pooling_violations(_trace("CNN"), kernel=(3, 3), ceil_reason="no")
    assert problem.endswith("pools with kernel (2, 2) and stride (2, 2): use kernel 3 and stride 3")


def test_rules_padding_values():
    assert not rules.nonzero(0) and not rules.nonzero((0, 0)) and not rules.nonzero("valid")
    assert rules.nonzero((0, 1)) and rules.nonzero("same") and rules.nonzero(2)
