"""The contract of assignment 2 as data and rules the tests check against (cnn.py's docstring says it in words).

The shape table, the layers in order, and the rule of the assignment: no stride and no padding anywhere.
The rules read the operations of the exported graph (mnistkit.tracing), so they hold for modules
(nn.Conv2d, nn.MaxPool2d) and functional calls (F.conv2d, F.max_pool2d) alike.
"""
from mnistkit import rules
from mnistkit.layers import Layer

# Per row: label, kind, shape without the batch dimension. A "conv"/"pool"/"linear" row is the output of
# the next such operation of the forward pass; "flatten" is the input of the first linear layer.
TABLE = [
    ("input", "input", (1, 28, 28)),
    ("conv1 + BatchNorm2d", "conv", (10, 24, 24)),
    ("max-pooling + ReLU", "pool", (10, 12, 12)),
    ("conv2 + BatchNorm2d", "conv", (20, 8, 8)),
    ("max-pooling + ReLU", "pool", (20, 4, 4)),
    ("flatten", "flatten", (320,)),
    ("fc1 + BatchNorm1d + ReLU", "linear", (50,)),
    ("fc2 + log_softmax", "linear", (10,)),
]
ROW_IDS = [f"row{i}-" + TABLE[i][0].split(" ")[0].replace("-", "") for i in range(1, len(TABLE))]
PARAMETERS = 22_000

# A block is convolution -> BatchNorm -> max-pooling -> ReLU (pooling and ReLU commute, so either order);
# dropout is allowed anywhere after the convolutions.
_BLOCK = lambda channels: [[f"BatchNorm({channels})", "MaxPool2d(2)", "ReLU"],  # noqa: E731
                           [f"BatchNorm({channels})", "ReLU", "MaxPool2d(2)"]]
LAYERS = [
    Layer("conv", in_channels=1, out_channels=10, kernel=5, then=_BLOCK(10), optional=("Dropout",)),
    Layer("conv", in_channels=10, out_channels=20, kernel=5, then=_BLOCK(20), optional=("Dropout",)),
    Layer("linear", in_features=320, out_features=50, then=[["BatchNorm(50)", "ReLU"]], optional=("Dropout",)),
    Layer("linear", in_features=50, out_features=10, then=[["log_softmax(dim=1)"]]),
]


def convolution_violations(trace) -> list:
    """Convolutions run with stride, padding or dilation (the rule: none of them; pick kernel sizes instead)."""
    return rules.convolution_violations(trace, padding=False)


def pooling_violations(trace) -> list:
    """Poolings that are not plain max-pooling with stride = kernel and no padding, and padding operations."""
    return rules.pooling_violations(trace, ceil_reason="which pads implicitly", pad_ops=True)
