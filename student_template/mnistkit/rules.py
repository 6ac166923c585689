"""Rules on the convolutions and poolings a traced forward pass runs (:func:`mnistkit.tracing.trace_forward`).

Each function returns the broken rules in words, one per operation and rule, naming the layer, so that an
assignment's contract states only its own numbers (the cnn: no stride or padding anywhere; the vgg: 3x3
convolutions, 2x2 max-pooling). The rules read the operations of the exported graph, so modules
(``nn.Conv2d``, ``nn.MaxPool2d``) and functional calls (``F.conv2d``, ``F.max_pool2d``) are judged alike.
"""
from __future__ import annotations


def nonzero(value) -> bool:
    """Whether a padding (an int, a tuple, or a string such as ``"valid"``/``"same"``) adds anything."""
    if isinstance(value, str):
        return value != "valid"
    return any(int(v) != 0 for v in (value if isinstance(value, (tuple, list)) else (value,)))


def convolution_violations(trace, *, kernel: tuple | None = None, padding: bool = True) -> list:
    """Convolutions that are not 2-d with stride 1 and dilation 1 (and ``kernel``, when given; no padding
    when ``padding`` is false)."""
    found = []
    for op in trace.ops:
        if op.kind != "conv":
            continue
        p, name = op.params, op.name()
        if op.func != "conv2d":
            found.append(f"{name} calls {op.func}: use a 2-d convolution (nn.Conv2d or F.conv2d)")
        if kernel is not None and p["kernel"] != kernel:
            found.append(f"{name} runs a convolution with kernel {p['kernel']}: every convolution is "
                         f"{kernel[0]}x{kernel[1]}")
        if p["stride"] != (1, 1):
            found.append(f"{name} runs a convolution with stride={p['stride']}: use stride 1")
        if not padding and nonzero(p["padding"]):
            found.append(f"{name} runs a convolution with padding={p['padding']!r}: use no padding")
        if p["dilation"] != (1, 1):
            found.append(f"{name} runs a convolution with dilation={p['dilation']}: use dilation 1")
    return found


def pooling_violations(trace, *, kernel: tuple | None = None, ceil_reason: str, pad_ops: bool = False) -> list:
    """Poolings that are not max-pooling without padding or dilation, with stride = kernel (= ``kernel``
    when given). ``ceil_reason`` says why rounding up (``ceil_mode=True``) is wrong; ``pad_ops`` also reports
    explicit padding."""
    found = []
    for op in trace.ops:
        p, name = op.params, op.name()
        if op.kind == "pad" and pad_ops and nonzero(p["pad"]):
            found.append(f"{name} pads the input by {p['pad']}: no padding anywhere")
        if op.kind != "pool":
            continue
        if p["adaptive"]:
            size = f"kernel {kernel[0]}" if kernel else "a kernel size you choose"
            found.append(f"{name} calls {op.func}: use max-pooling with {size}")
            continue
        if not p["max"]:
            found.append(f"{name} calls {op.func}: the blocks use max-pooling")
        if nonzero(p.get("padding", 0)):
            found.append(f"{name} pools with padding={p['padding']}: pooling takes no padding")
        shown = f"{name} pools with kernel {p.get('kernel')} and stride {p.get('stride')}"
        if kernel is not None and (p.get("kernel") != kernel or p.get("stride") != kernel):
            found.append(f"{shown}: use kernel {kernel[0]} and stride {kernel[0]}")
        elif kernel is None and p.get("stride") != p.get("kernel"):
            found.append(f"{shown}: leave the stride out (it then equals the kernel size)")
        if p.get("dilation", (1, 1)) != (1, 1):
            found.append(f"{name} pools with dilation={p['dilation']}: use dilation 1")
        if p.get("ceil_mode"):
            found.append(f"{name} pools with ceil_mode=True, {ceil_reason}")
    return found
