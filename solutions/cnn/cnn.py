"""Assignment 2: a small convolutional network for MNIST.

Write the two parts marked ``TODO`` (``Net.__init__`` and ``Net.forward``): each is a ``# TODO:``
comment that says what to write, above a ``raise NotImplementedError`` that your code replaces.
Everything else in the handout (data loading, the training script ``train.py``, the tests) is ready to
run.

The rule of this assignment: **no stride and no padding anywhere.** Every ``nn.Conv2d`` keeps its default
``stride=1``, ``padding=0`` and ``dilation=1``; every max-pooling keeps ``padding=0`` and its default stride
(equal to its kernel size). You make the shapes work out by choosing the kernel sizes. The output size of a
convolution or a pooling along one side is

    H_out = floor((H_in + 2 * padding - kernel) / stride) + 1

so with ``padding = 0`` and ``stride = 1`` a convolution shrinks each side by ``kernel - 1``, and a
max-pooling with ``kernel = stride = k`` divides it by ``k`` (rounding down).

Contract (the tests and the grader rely on it; do not rename anything):

* ``Net``: a ``torch.nn.Module`` built with ``Net()`` (no arguments). It maps a batch of images to
  log-probabilities over the 10 digits.
    - input: ``float32`` of shape ``(B, 1, 28, 28)``
    - output: ``float32`` of shape ``(B, 10)``; ``output.exp()`` sums to 1 along dim 1
* Two convolution blocks, then a small classifier. A block is convolution -> BatchNorm -> max-pooling ->
  ReLU. The shape after each row, for a batch of ``B`` images:

    ====  ===========================================================  ==================
    row   layer                                                        output shape
    ====  ===========================================================  ==================
    0     input                                                        (B, 1, 28, 28)
    1     conv1: ``nn.Conv2d(1, 10, kernel_size=?)`` + BatchNorm2d(10)  (B, 10, 24, 24)
    2     max-pooling (kernel ?) + ReLU                                (B, 10, 12, 12)
    3     conv2: ``nn.Conv2d(10, 20, kernel_size=?)`` + BatchNorm2d(20) (B, 20, 8, 8)
    4     max-pooling (kernel ?) + ReLU                                (B, 20, 4, 4)
    5     flatten                                                      (B, 320)
    6     fc1: ``nn.Linear(320, 50)`` + BatchNorm1d(50) + ReLU         (B, 50)
    7     fc2: ``nn.Linear(50, 10)`` + ``log_softmax`` over dim 1      (B, 10)
    ====  ===========================================================  ==================

  Square kernels only. Every convolution and linear layer has a bias. BatchNorm is part of the contract:
  ``nn.BatchNorm2d(10)`` after conv1, ``nn.BatchNorm2d(20)`` after conv2 and ``nn.BatchNorm1d(50)`` after
  fc1 (each has 2 parameters per channel, 160 in all). With them the network has exactly 22,000 trainable
  parameters (21,840 without them). Dropout is allowed (it has no parameters) but not needed.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    """Two conv blocks (1 -> 10 -> 20 channels, no stride, no padding), then 320 -> 50 -> 10."""

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        ### HINT: create the layers of the table in the module docstring, as attributes of self:
        ### HINT: the two convolutions, the three BatchNorm layers, the two linear layers and the
        ### HINT: max-pooling (or call F.max_pool2d in forward). Choose each kernel size with the
        ### HINT: docstring's formula for H_out (no stride, no padding) so the shapes match the table.
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.bn1 = nn.BatchNorm2d(10)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.bn2 = nn.BatchNorm2d(20)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(320, 50)
        self.bn3 = nn.BatchNorm1d(50)
        self.fc2 = nn.Linear(50, 10)
        ### END SOLUTION

    def forward(self, x):
        """Map images ``x`` of shape ``(B, 1, 28, 28)`` to log-probabilities of shape ``(B, 10)``.

        Follow the table of the module docstring row by row: every intermediate shape is checked.
        """
        ### BEGIN SOLUTION
        ### HINT: apply the rows of the table in order (a block is convolution, BatchNorm,
        ### HINT: max-pooling, ReLU), flatten to (B, 320) before fc1, and end with log_softmax over
        ### HINT: dim 1. One operation per line: a wrong shape is then easy to find.
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.pool(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = self.bn2(x)
        x = self.pool(x)
        x = F.relu(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = self.bn3(x)
        x = F.relu(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
        ### END SOLUTION
