"""The contract of assignment 1 as data the tests check against (mlp.py's docstring says it in words)."""
from mnistkit.layers import Layer

# The weighted layers in order and what follows each one before the next.
LAYERS = [
    Layer("linear", in_features=784, out_features=50, then=[["ReLU", "Dropout(0.2)"]]),
    Layer("linear", in_features=50, out_features=50, then=[["ReLU", "Dropout(0.2)"]]),
    Layer("linear", in_features=50, out_features=10, then=[["log_softmax(dim=1)"]]),
]
PARAMETERS = 42_310
