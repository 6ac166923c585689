"""Assignment 1: a multi-layer perceptron for MNIST.

Write the three parts marked ``TODO`` (``Net.__init__``, ``Net.forward`` and ``one_hot``): each is a
``# TODO:`` comment that says what to write, above a ``raise NotImplementedError`` that your code
replaces. Everything else in the handout (data loading, the training script ``mnist.py``, the tests) is
ready to run.

Contract (the tests and the grader rely on it; do not rename anything):

* ``Net``: a ``torch.nn.Module`` built with ``Net()`` (no arguments). It maps a batch of images to
  log-probabilities over the 10 digits.
    - input: ``float32`` of shape ``(N, 1, 28, 28)`` or ``(N, 784)``
    - output: ``float32`` of shape ``(N, 10)``; ``output.exp()`` sums to 1 along dim 1
    - layers: 784 -> 50 -> 50 -> 10, ReLU after each hidden layer, dropout with p = 0.2 after each
      hidden ReLU, ``log_softmax`` over dim 1 at the end: 42,310 parameters in all.
* ``one_hot(labels, num_classes=10)``: ``int64`` labels of shape ``(N,)`` -> ``float32`` ``(N, num_classes)``
  with a single 1 per row, on the same device as ``labels``.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    """784 -> 50 -> 50 -> 10 perceptron with ReLU, dropout 0.2 and a log-softmax output."""

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        ### HINT: create the layers: three nn.Linear (784 -> 50 -> 50 -> 10) and the dropout
        ### HINT: (p = 0.2), as attributes of self: the module docstring has the contract.
        self.fc1 = nn.Linear(28 * 28, 50)
        self.fc1_drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(50, 50)
        self.fc2_drop = nn.Dropout(0.2)
        self.fc3 = nn.Linear(50, 10)
        ### END SOLUTION

    def forward(self, x):
        """Map ``x`` of shape ``(N, 1, 28, 28)`` or ``(N, 784)`` to log-probabilities of shape ``(N, 10)``."""
        ### BEGIN SOLUTION
        ### HINT: flatten x to (N, 784), then apply the layers in the order of the module
        ### HINT: docstring: each hidden layer is linear, ReLU, dropout; the output layer is
        ### HINT: linear, then log_softmax over dim 1. One operation per line is easiest to debug.
        x = x.reshape(-1, 28 * 28)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.fc1_drop(x)
        x = self.fc2(x)
        x = F.relu(x)
        x = self.fc2_drop(x)
        x = self.fc3(x)
        return F.log_softmax(x, dim=1)
        ### END SOLUTION


def one_hot(labels, num_classes=10):
    """Turn class indices into one-hot rows.

    Args:
        labels: ``int64`` tensor of shape ``(N,)`` with values in ``[0, num_classes)``.
        num_classes: length of each one-hot row.

    Returns:
        ``float32`` tensor of shape ``(N, num_classes)`` on ``labels.device``; row ``i`` is all zeros
        except a 1 at column ``labels[i]``.
    """
    ### BEGIN SOLUTION
    ### HINT: return the float32 (N, num_classes) rows described above, made on labels.device
    ### HINT: (row c of an identity matrix is the one-hot row of class c).
    return torch.eye(num_classes, device=labels.device)[labels]
    ### END SOLUTION
