"""Assignment 3: a VGG-like convolutional network for MNIST, and its shape table.

Write the four parts marked ``TODO``: ``out_size``, ``shape_table``, ``Net.__init__`` and ``Net.forward``
(each is a ``# TODO:`` comment that says what to write, above a ``raise NotImplementedError`` that your
code replaces). Both the network and the table are graded.

The output size of a convolution or a pooling along one side (height or width) is

    H_out = floor((H_in + 2 * padding - kernel) / stride) + 1

Contract (the tests and the grader rely on it; do not rename anything):

* ``out_size(size, kernel, stride=1, padding=0)``: that formula, as an ``int``.
* ``shape_table(batch)``: the shape table below for a batch of ``batch`` images, as a list of 18
  ``(name, shape)`` pairs in the order of the table; ``shape`` is a tuple of ints that starts with ``batch``.
  Derive the shapes with ``out_size`` and the paddings you chose, rather than copying them.
* ``Net``: a ``torch.nn.Module`` built with ``Net()`` (no arguments).
    - input: ``float32`` of shape ``(B, 1, 28, 28)``
    - output: ``float32`` log-probabilities of shape ``(B, 10)``; ``output.argmax(dim=1)`` is the class
    - every "Conv" below is ``nn.Conv2d(in, out, kernel_size=3)`` (stride 1, with a bias) followed by
      ``nn.BatchNorm2d(out)`` and a ReLU. The padding of each convolution is **your choice** (0, 1, 2, ...):
      pick it so that the shapes come out as in the table.
    - every max-pooling is ``nn.MaxPool2d(2)``: kernel 2, stride 2, no padding (it rounds down).
    - channels: conv1 1 -> 64; conv2 64 -> 128; conv3 128 -> 256, conv4 256 -> 256; conv5 256 -> 512,
      conv6 512 -> 512; conv7 512 -> 512, conv8 512 -> 512.
    - classifier: flatten, ``nn.Linear(512, 100)``, ReLU, ``nn.Dropout(0.2)``, ``nn.Linear(100, 100)``,
      ReLU, ``nn.Dropout(0.2)``, ``nn.Linear(100, 10)``, ``log_softmax`` over dim 1.
    - 9,287,242 trainable parameters: 9,219,328 in the convolutions, 5,504 in the BatchNorm layers
      (2 per channel) and 62,410 in the linear layers. The padding does not change the count.

The shape table (the course's VGG-like CNN), for a batch of ``B`` images:

    ====  ================  =====================  ==================
    row   name              layers                 output shape
    ====  ================  =====================  ==================
    0     input                                    (B, 1, 28, 28)
    1     conv1             Conv + ReLU            (B, 64, 30, 30)
    2     pool1             max-pooling 2x2        (B, 64, 15, 15)
    3     conv2             Conv + ReLU            (B, 128, 17, 17)
    4     pool2             max-pooling 2x2        (B, 128, 8, 8)
    5     conv3+conv4       Conv + Conv + ReLU     (B, 256, 10, 10)
    6     pool3             max-pooling 2x2        (B, 256, 5, 5)
    7     conv5+conv6       Conv + Conv + ReLU     (B, 512, 5, 5)
    8     pool4             max-pooling 2x2        (B, 512, 2, 2)
    9     conv7+conv8       Conv + Conv + ReLU     (B, 512, 2, 2)
    10    pool5             max-pooling 2x2        (B, 512, 1, 1)
    11    flatten                                  (B, 512)
    12    fc1               Linear + ReLU          (B, 100)
    13    dropout1          Dropout                (B, 100)
    14    fc2               Linear + ReLU          (B, 100)
    15    dropout2          Dropout                (B, 100)
    16    fc3               Linear (log_softmax)   (B, 10)
    17    predicted class   argmax over dim 1      (B,)
    ====  ================  =====================  ==================

(each "Conv" includes its BatchNorm2d and its ReLU; in a "Conv + Conv" row the shape is the one after the
second convolution.)
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def out_size(size, kernel, stride=1, padding=0):
    """Output size along one side of a convolution or pooling.

    Args:
        size: input size ``H_in`` along that side.
        kernel: kernel size along that side.
        stride: step of the window.
        padding: zeros added on each side.

    Returns:
        ``floor((size + 2 * padding - kernel) / stride) + 1`` as an ``int``; for example
        ``out_size(32, 5) == 28`` and ``out_size(7, 3, stride=2, padding=1) == 4``.
    """
    ### BEGIN SOLUTION
    ### HINT: return the formula of this docstring as an int (floor division rounds down).
    return (size + 2 * padding - kernel) // stride + 1
    ### END SOLUTION


def shape_table(batch):
    """The shape table of the module docstring for ``batch`` images.

    Returns:
        A list of 18 ``(name, shape)`` pairs, one per row of the table and in its order, e.g.
        ``[("input", (batch, 1, 28, 28)), ("conv1", (batch, 64, 30, 30)), ...,
        ("predicted class", (batch,))]``. Every ``shape`` is a tuple of ints that starts with ``batch``.
    """
    ### BEGIN SOLUTION
    ### HINT: list the 18 rows of the module docstring's table, in order, as (name, shape) pairs.
    ### HINT: Compute each size with out_size and the paddings you chose for Net, rather than
    ### HINT: copying the table: then the table and the network cannot disagree.
    blocks = [("conv1", 64, [2]), ("conv2", 128, [2]), ("conv3+conv4", 256, [1, 2]),
              ("conv5+conv6", 512, [1, 1]), ("conv7+conv8", 512, [1, 1])]
    size = 28
    table = [("input", (batch, 1, size, size))]
    for number, (name, channels, paddings) in enumerate(blocks, start=1):
        for padding in paddings:
            size = out_size(size, 3, 1, padding)
        table.append((name, (batch, channels, size, size)))
        size = out_size(size, 2, 2)
        table.append((f"pool{number}", (batch, channels, size, size)))
    table.append(("flatten", (batch, 512 * size * size)))
    table += [("fc1", (batch, 100)), ("dropout1", (batch, 100)), ("fc2", (batch, 100)),
              ("dropout2", (batch, 100)), ("fc3", (batch, 10)), ("predicted class", (batch,))]
    return table
    ### END SOLUTION


class Net(nn.Module):
    """VGG-like network: five conv blocks with max-pooling (64-128-256-512-512), then 512 -> 100 -> 100 -> 10."""

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        ### HINT: create the layers of the module docstring: the eight convolutions (each with its
        ### HINT: BatchNorm2d and ReLU) and the max-poolings of the five blocks, then the classifier.
        ### HINT: Pick each convolution's padding with out_size so the shapes match the table;
        ### HINT: nn.Sequential keeps a block (or the classifier) in one attribute.
        blocks = [(1, [(64, 2)]), (64, [(128, 2)]), (128, [(256, 1), (256, 2)]),
                  (256, [(512, 1), (512, 1)]), (512, [(512, 1), (512, 1)])]
        layers = OrderedDict()
        number = 0
        for block, (channels, convs) in enumerate(blocks, start=1):
            for out_channels, padding in convs:
                number += 1
                layers[f"conv{number}"] = nn.Conv2d(channels, out_channels, kernel_size=3, padding=padding)
                layers[f"bn{number}"] = nn.BatchNorm2d(out_channels)
                layers[f"relu{number}"] = nn.ReLU()
                channels = out_channels
            layers[f"pool{block}"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(512, 100)), ("relu1", nn.ReLU()), ("dropout1", nn.Dropout(0.2)),
            ("fc2", nn.Linear(100, 100)), ("relu2", nn.ReLU()), ("dropout2", nn.Dropout(0.2)),
            ("fc3", nn.Linear(100, 10)),
        ]))
        ### END SOLUTION

    def forward(self, x):
        """Map images ``x`` of shape ``(B, 1, 28, 28)`` to log-probabilities of shape ``(B, 10)``.

        Follow the table of the module docstring row by row: every intermediate shape is checked.
        """
        ### BEGIN SOLUTION
        ### HINT: run the blocks, flatten to (B, 512), run the classifier, and return log_softmax
        ### HINT: over dim 1: the rows of the table, in order.
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return F.log_softmax(x, dim=1)
        ### END SOLUTION
