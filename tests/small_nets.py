"""Small networks for the kit's own tests of mnistkit.graph, tracing, layers and checks, exported once.

The networks live in this file so that the exported graphs name its lines (``small_nets.py:LINE``):
:func:`line_of` finds the line of a piece of source here. :func:`exported` exports a network once per
test session (torch.export takes a few tenths of a second per graph, and a few seconds the first time)
and hands out copies; :func:`graph_net` gives the loaded :class:`mnistkit.graph.GraphNet`.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mnistkit.graph import ExportSpec, export_network, network_from

FILES = ("small_nets.py",)
IMAGE = {"image": ((1, 28, 28), "float32")}
VECTOR = {"x": ((4,), "float32")}


def line_of(text: str) -> str:
    """``"small_nets.py:LINE"`` of the (only) line of this file that holds ``text``."""
    lines = [i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, f"{text!r} is on lines {lines} of small_nets.py"
    return f"small_nets.py:{lines[0]}"


# ----------------------------------------------------------------------------------- working networks
class MLP(nn.Module):
    """Linear + ReLU + Dropout: 784 -> 50 -> 50 -> 10, log_softmax."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 50)
        self.fc2 = nn.Linear(50, 50)
        self.fc3 = nn.Linear(50, 10)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc1(x)))
        x = self.drop(F.relu(self.fc2(x)))
        return F.log_softmax(self.fc3(x), dim=1)


class CNN(nn.Module):
    """Conv2d + BatchNorm2d + MaxPool2d, then a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 12 * 12, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv1(x))))
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


class Small(nn.Module):
    """A convolution and a functional max-pool (the shape table of the CNN assignments)."""

    def __init__(self, padding=0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5, padding=padding)
        size = (28 + 2 * padding - 4) // 2
        self.fc = nn.Linear(4 * size * size, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        return self.fc(torch.flatten(x, 1))


class SmallPadded(Small):
    def __init__(self):
        super().__init__(padding=1)


class NoReLU(MLP):
    """fc2 is not followed by a ReLU."""

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc1(x)))
        x = self.drop(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class ExtraSigmoid(MLP):
    """A sigmoid after fc2's dropout that the contract does not have."""

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc1(x)))
        x = torch.sigmoid(self.drop(F.relu(self.fc2(x))))
        return F.log_softmax(self.fc3(x), dim=1)


class SharedReLU(nn.Sequential):
    """One nn.ReLU object used after both hidden layers."""

    def __init__(self):
        relu = nn.ReLU()
        super().__init__(nn.Flatten(), nn.Linear(784, 50), relu, nn.Dropout(0.2), nn.Linear(50, 50), relu,
                         nn.Dropout(0.2), nn.Linear(50, 10), nn.LogSoftmax(dim=1))


class SoftmaxOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)


class LogSoftmaxDim0(SoftmaxOut):
    def forward(self, x):
        return F.log_softmax(self.fc(x), dim=0)


class LogSoftmaxOut(SoftmaxOut):
    def forward(self, x):
        return F.log_softmax(self.fc(x), dim=1)


class Unused(nn.Module):
    """A layer that forward never uses."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.unused = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class Hidden(nn.Module):
    """Two linear layers, for errors inside the second one."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        return self.fc2(x)  # the second layer


class Inline(nn.Module):
    """A layer created inside forward: its weights are no parameters."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return nn.Linear(2, 2)(self.fc(x))  # a layer in forward


class DropoutAlwaysOn(Hidden):
    """F.dropout without training=: still active in eval mode."""

    def forward(self, x):
        x = F.dropout(torch.relu(self.fc1(x)), 0.5)  # dropout left on
        return self.fc2(x)


class LogOfSoftmax(SoftmaxOut):
    def forward(self, x):
        return torch.log(F.softmax(self.fc(x), dim=1))


# ----------------------------------------------------------------------------------- state of a network
class Table(nn.Module):
    """A buffer multiplied in by hand: data of its own, not a layer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.register_buffer("table", torch.randn(784, 10))

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc(x) + x @ self.table


class Normalised(nn.Module):
    """A tiny constant (normalisation), a convolution, BatchNorm and a linear layer: only layers' weights."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 26 * 26, 10)

    def forward(self, x):
        stats = torch.tensor([0.1307, 0.3081])
        x = (x - stats[0]) / stats[1]
        return self.fc(torch.flatten(F.relu(self.bn(self.conv(x))), 1))


# ----------------------------------------------------------------------------------- device problems
class DeviceGood(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) + torch.zeros(2, device=x.device) + x.new_ones(2)


class ZerosNoDevice(DeviceGood):
    def forward(self, x):
        return self.fc(x) + torch.zeros(2)  # no device=


class CudaInForward(DeviceGood):
    def forward(self, x):
        return self.fc(x).cuda()  # in forward


class PlainAttribute(DeviceGood):
    def __init__(self):
        super().__init__()
        self.shift = torch.ones(2)  # not a buffer

    def forward(self, x):
        return self.fc(x) + self.shift


class Casts(DeviceGood):
    """.float() and .to(dtype) in forward (export adds a metadata check before each)."""

    def forward(self, x):
        return self.fc(x.float()).to(torch.float64)


# ----------------------------------------------------------------------------------- export errors
class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.view(64, 784))  # hard-coded batch


class Branch(FixedBatch):
    def forward(self, x):
        if x.sum() > 0:  # a branch on values
            return self.fc(torch.flatten(x, 1))
        return -self.fc(torch.flatten(x, 1))


class Numpy(FixedBatch):
    def forward(self, x):
        return torch.from_numpy(self.fc(torch.flatten(x, 1)).detach().numpy())  # numpy


class Shrinks(nn.Module):
    """nn.Conv2d(in, out, 3, 4) meant as padding 4: the fourth positional argument is the stride."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 4)
        self.conv2 = nn.Conv2d(4, 4, 3, 4)
        self.conv3 = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        return self.conv3(x)  # too small by now


class WrongFlatten(nn.Module):
    """fc sized for a pooled picture that is never pooled."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5)
        self.fc = nn.Linear(4 * 12 * 12, 10)

    def forward(self, x):
        x = torch.flatten(self.conv1(x), 1)
        return self.fc(x)  # 2304 features


class Stub(FixedBatch):
    def forward(self, x):
        raise NotImplementedError("write Net.forward")


NETS = {cls.__name__: cls for cls in (
    MLP, CNN, Small, SmallPadded, NoReLU, ExtraSigmoid, SharedReLU, SoftmaxOut, LogSoftmaxDim0, LogSoftmaxOut,
    Unused, Hidden, Inline, DropoutAlwaysOn, LogOfSoftmax, Table, Normalised, DeviceGood, ZerosNoDevice, CudaInForward, PlainAttribute, Casts,
    FixedBatch, Branch, Numpy, Shrinks, WrongFlatten, Stub)}
VECTOR_NETS = {"SoftmaxOut", "LogSoftmaxDim0", "LogSoftmaxOut", "Unused", "Hidden", "Inline", "DropoutAlwaysOn",
               "LogOfSoftmax", "DeviceGood",
               "ZerosNoDevice", "CudaInForward", "PlainAttribute", "Casts"}


def build(name: str, seed: int = 0) -> nn.Module:
    """The network ``name`` of this file, built after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return NETS[name]()


@functools.cache
def _export(name: str, seed: int):
    spec = ExportSpec(VECTOR if name in VECTOR_NETS else IMAGE)
    return export_network(build(name, seed), spec, files=FILES)


def exported(name: str, seed: int = 0) -> tuple[dict, dict]:
    """``(description, tensors)`` of network ``name`` (built after ``torch.manual_seed(seed)``): a copy to edit."""
    description, tensors = _export(name, seed)
    return copy.deepcopy(description), {k: v.clone() for k, v in tensors.items()}


def graph_net(name: str, seed: int = 0):
    """The exported network ``name`` as a :class:`mnistkit.graph.GraphNet` (a new one on every call)."""
    return network_from(*exported(name, seed))
