"""A corpus of realistic wrong (and equivalent) variants of the reference solutions, as data.

Each :class:`Mutant` is a small textual edit of ``solutions/<assignment>/<module>.py`` (old text -> new
text, on code lines only: never on a ``### HINT:`` or ``### BEGIN/END SOLUTION`` line, and every old text
must occur exactly once, so that a reference that moves makes the corpus fail loudly instead of silently
testing nothing). ``tests/test_mutants.py`` grades every mutant end to end, like a student's zip built from
the reference submission with the module replaced, and requires:

* a **wrong** mutant (``expect`` not empty) loses points, and exactly the tests named in ``expect`` lose
  them (plus, optionally, those in ``maybe``: accuracy checks whose verdict for that mistake depends on the
  machine's arithmetic), each with its phrase in the test's output: the feedback must name the mistake,
  not a consequence of it;
* an **equivalent** mutant (``expect`` empty) keeps full marks;
* no output says any of ``forbid`` (the wrong cause: "BatchNorm" for a dropout left on in eval mode).

``files`` edits the other submitted files (analysis: results.jsonl, the plots) in a folder holding the
reference submission's files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MARKERS = ("### HINT:", "### BEGIN SOLUTION", "### END SOLUTION")


class MutantError(AssertionError):
    """A mutant does not apply to the reference any more (the reference changed): fix the corpus."""


@dataclass(frozen=True)
class Mutant:
    assignment: str
    name: str
    why: str  # the mistake (or the equivalent way of writing it), in words
    edits: tuple  # ((old, new), ...) applied in order to the reference module
    expect: dict = field(default_factory=dict)  # test function -> phrase its output must hold; empty: equivalent
    maybe: tuple = ()  # test functions that may lose points too (the accuracy checks, near their threshold)
    forbid: tuple = ()  # phrases no output may hold (a wrong cause)
    files: Callable[[Path], None] | None = None  # edits the other submitted files, in a folder

    @property
    def equivalent(self) -> bool:
        return not self.expect

    def apply(self, source: str) -> str:
        """The reference ``source`` with the edits applied; MutantError if an old text is not there exactly once."""
        for old, new in self.edits:
            count = source.count(old)
            if count != 1:
                raise MutantError(f"{self.assignment}/{self.name}: the old text {old!r} occurs {count} times in the "
                                  "reference (it must occur exactly once): update the corpus")
            start = source.index(old)
            line_start = source.rfind("\n", 0, start) + 1
            line_end = source.find("\n", start + max(len(old), 1) - 1)
            touched = source[line_start: line_end if line_end != -1 else len(source)]
            if any(marker in touched for marker in MARKERS) or any(marker in new for marker in MARKERS):
                raise MutantError(f"{self.assignment}/{self.name}: an edit touches a marker or hint line: {touched!r}")
            source = source[:start] + new + source[start + len(old):]
        if source.count("### BEGIN SOLUTION") != source.count("### END SOLUTION"):
            raise MutantError(f"{self.assignment}/{self.name}: the solution markers no longer pair up")
        return source


def _m(assignment: str, name: str, why: str, *edits, expect=None, maybe=(), forbid=(), files=None) -> Mutant:
    return Mutant(assignment, name, why, tuple(edits), dict(expect or {}), tuple(maybe), tuple(forbid), files)


# ------------------------------------------------------------------------------------------------- mlp
MLP_ACCURACY = ("test_net_trained_accuracy",)
AGENT = "test_agent_file_accuracy"
NOT_CONTRACT = "your Net is not it"

MLP = [
    _m("mlp", "no-relu-after-fc1", "the ReLU after the first hidden layer is missing",
       ("        x = self.fc1(x)\n        x = F.relu(x)\n", "        x = self.fc1(x)\n"),
       expect={"test_net_layers_in_order": "fc1 (Linear) is followed by Dropout(0.2), expected ReLU then Dropout(0.2)",
               AGENT: "fc1 (Linear) is followed by Dropout(0.2), expected ReLU then Dropout(0.2)"},
       maybe=MLP_ACCURACY),
    _m("mlp", "dropout-on-in-eval", "F.dropout(x, 0.2) without training=: dropout stays on in eval mode",
       ("        x = self.fc1_drop(x)\n", "        x = F.dropout(x, 0.2)\n"),
       ("        x = self.fc2_drop(x)\n", "        x = F.dropout(x, 0.2)\n"),
       expect={"test_net_eval_mode_is_deterministic": "dropout is still active in eval mode",
               "test_net_flat_and_image_input_agree": "dropout is still active in eval mode",
               AGENT: "dropout is still active in eval mode"},
       maybe=MLP_ACCURACY),
    _m("mlp", "layer-created-in-forward", "the output layer is created inside forward() instead of __init__",
       ("        self.fc3 = nn.Linear(50, 10)\n", ""),
       ("        x = self.fc3(x)\n", "        x = nn.Linear(50, 10)(x)\n"),
       expect={"test_net_parameter_count": "Layers created inside forward()",
               "test_net_eval_mode_is_deterministic": "created inside forward()",
               "test_net_flat_and_image_input_agree": "created inside forward()",
               "test_net_device_check": "created inside forward()",
               "test_net_trained_accuracy": "created inside forward()",
               AGENT: "created inside forward()"}),
    _m("mlp", "log-softmax-over-dim-0", "log_softmax over the batch dimension",
       ("        return F.log_softmax(x, dim=1)\n", "        return F.log_softmax(x, dim=0)\n"),
       expect={"test_net_outputs_log_probabilities": "wrong dimension"}),
    _m("mlp", "softmax-instead-of-log-softmax", "softmax instead of log_softmax",
       ("        return F.log_softmax(x, dim=1)\n", "        return F.softmax(x, dim=1)\n"),
       expect={"test_net_outputs_log_probabilities": "probabilities, not log-probabilities"}),
    _m("mlp", "log-of-softmax", "log(softmax(x)), which overflows for large inputs",
       ("        return F.log_softmax(x, dim=1)\n", "        return torch.log(F.softmax(x, dim=1))\n"),
       expect={"test_net_log_softmax_stable_for_large_inputs": "rather than torch.log(F.softmax(x))"}),
    _m("mlp", "flatten-with-fixed-batch", "flatten with a hard-coded batch size",
       ("        x = x.reshape(-1, 28 * 28)\n", "        x = x.reshape(64, 28 * 28)\n"),
       expect={t: "batch size is fixed" for t in (
           "test_net_output_shape", "test_net_accepts_flat_input", "test_net_outputs_log_probabilities",
           "test_net_gradients_reach_every_parameter", "test_net_device_check",
           "test_net_trained_accuracy", AGENT, "test_net_output_shape_odd_batches",
           "test_net_flat_and_image_input_agree", "test_net_dropout_active_in_train_mode",
           "test_net_eval_mode_is_deterministic", "test_net_dropout_rate", "test_net_layers_in_order",
           "test_net_log_softmax_stable_for_large_inputs")}),
    _m("mlp", "dropout-rate-0.5", "dropout with p = 0.5 after the first hidden layer",
       ("        self.fc1_drop = nn.Dropout(0.2)\n", "        self.fc1_drop = nn.Dropout(0.5)\n"),
       expect={"test_net_dropout_rate": "[0.5, 0.2]",
               "test_net_layers_in_order": "fc1 (Linear) is followed by ReLU then Dropout(0.5)",
               AGENT: "fc1 (Linear) is followed by ReLU then Dropout(0.5)"}),
    _m("mlp", "no-dropout", "no dropout at all",
       ("        x = self.fc1_drop(x)\n", ""), ("        x = self.fc2_drop(x)\n", ""),
       expect={"test_net_dropout_active_in_train_mode": "is dropout (p=0.2) applied",
               "test_net_dropout_rate": "your forward has none",
               "test_net_layers_in_order": "fc1 (Linear) is followed by ReLU, expected ReLU then Dropout(0.2)",
               AGENT: "fc1 (Linear) is followed by ReLU, expected ReLU then Dropout(0.2)"}),
    _m("mlp", "relu-on-the-output", "a ReLU on the output layer before log_softmax",
       ("        x = self.fc3(x)\n", "        x = F.relu(self.fc3(x))\n"),
       expect={"test_net_layers_in_order": "fc3 (Linear) is followed by ReLU then log_softmax(dim=1)",
               AGENT: "fc3 (Linear) is followed by ReLU then log_softmax(dim=1)"},
       maybe=MLP_ACCURACY),
    _m("mlp", "sigmoid-instead-of-relu", "a sigmoid after the second hidden layer",
       ("        x = self.fc2(x)\n        x = F.relu(x)\n", "        x = self.fc2(x)\n        x = torch.sigmoid(x)\n"),
       expect={"test_net_layers_in_order": "fc2 (Linear) is followed by Sigmoid then Dropout(0.2)",
               AGENT: "fc2 (Linear) is followed by Sigmoid then Dropout(0.2)"},
       maybe=MLP_ACCURACY),
    _m("mlp", "hidden-width-100", "the second hidden layer is 100 wide",
       ("        self.fc2 = nn.Linear(50, 50)\n", "        self.fc2 = nn.Linear(50, 100)\n"),
       ("        self.fc3 = nn.Linear(50, 10)\n", "        self.fc3 = nn.Linear(100, 10)\n"),
       expect={"test_net_parameter_count": "expected 42,310 trainable parameters, got 45,360",
               "test_net_layers_in_order": "has 50 -> 100, expected 50 -> 50",
               AGENT: "size mismatch for fc2.weight"},
       maybe=MLP_ACCURACY),
    _m("mlp", "one-hot-without-device", "one_hot builds its rows on the CPU whatever the labels' device",
       ("    return torch.eye(num_classes, device=labels.device)[labels]\n", "    return torch.eye(num_classes)[labels]\n"),
       expect={"test_one_hot_device_check": "creates a tensor on 'cpu'"}),
    _m("mlp", "one-hot-int64", "one_hot returns F.one_hot's int64 rows",
       ("    return torch.eye(num_classes, device=labels.device)[labels]\n", "    return F.one_hot(labels, num_classes)\n"),
       expect={"test_one_hot_rows": "expected dtype torch.float32, got torch.int64"}),
    _m("mlp", "one-hot-ignores-num-classes", "one_hot always makes 10 columns",
       ("    return torch.eye(num_classes, device=labels.device)[labels]\n", "    return torch.eye(10, device=labels.device)[labels]\n"),
       expect={"test_one_hot_matches_definition": "expected shape"}),
    # equivalent
    _m("mlp", "view-for-reshape", "x.view(-1, 784) instead of reshape",
       ("        x = x.reshape(-1, 28 * 28)\n", "        x = x.view(-1, 784)\n")),
    _m("mlp", "torch-flatten", "torch.flatten(x, 1)",
       ("        x = x.reshape(-1, 28 * 28)\n", "        x = torch.flatten(x, 1)\n")),
    _m("mlp", "relu-modules", "nn.ReLU modules instead of F.relu",
       ("        self.fc2 = nn.Linear(50, 50)\n", "        self.relu1 = nn.ReLU()\n        self.fc2 = nn.Linear(50, 50)\n"
        "        self.relu2 = nn.ReLU()\n"),
       ("        x = self.fc1(x)\n        x = F.relu(x)\n", "        x = self.fc1(x)\n        x = self.relu1(x)\n"),
       ("        x = self.fc2(x)\n        x = F.relu(x)\n", "        x = self.fc2(x)\n        x = self.relu2(x)\n")),
    _m("mlp", "functional-dropout-with-training", "F.dropout(x, 0.2, training=self.training)",
       ("        x = self.fc1_drop(x)\n", "        x = F.dropout(x, 0.2, training=self.training)\n"),
       ("        x = self.fc2_drop(x)\n", "        x = F.dropout(x, p=0.2, training=self.training)\n")),
    _m("mlp", "log-softmax-dim-minus-1", "log_softmax over dim=-1",
       ("        return F.log_softmax(x, dim=1)\n", "        return F.log_softmax(x, dim=-1)\n")),
    _m("mlp", "one-hot-functional", "F.one_hot(...).float()",
       ("    return torch.eye(num_classes, device=labels.device)[labels]\n",
        "    return F.one_hot(labels, num_classes).float()\n")),
    _m("mlp", "one-hot-scatter", "zeros, then scatter the ones in",
       ("    return torch.eye(num_classes, device=labels.device)[labels]\n",
        "    rows = torch.zeros(labels.shape[0], num_classes, device=labels.device)\n"
        "    return rows.scatter(1, labels.unsqueeze(1), 1.0)\n")),
]


# ------------------------------------------------------------------------------------------------- cnn
CNN_ACCURACY = ("test_net_trained_accuracy",)
BLOCK1_END = "        x = self.pool(x)\n        x = F.relu(x)\n        x = self.conv2(x)\n"
BLOCK2_END = "        x = self.pool(x)\n        x = F.relu(x)\n        x = torch.flatten(x, 1)\n"
FC1_END = "        x = self.bn3(x)\n        x = F.relu(x)\n"
CNN = [
    _m("cnn", "no-relu-in-block-2", "the ReLU at the end of the second conv block is missing",
       (BLOCK2_END, "        x = self.pool(x)\n        x = torch.flatten(x, 1)\n"),
       expect={"test_net_layers_in_order": "conv2 (Conv2d) is followed by BatchNorm(20) then MaxPool2d(2), expected"},
       maybe=CNN_ACCURACY),
    _m("cnn", "kernel-3-in-conv1", "conv1 with a 3x3 kernel",
       ("        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)\n", "        self.conv1 = nn.Conv2d(1, 10, kernel_size=3)\n"),
       expect={"test_net_shape_table": "row 1 (conv1 + BatchNorm2d): expected shape (B, 10, 24, 24), got (B, 10, 26, 26)",
               "test_net_parameter_count": "expected 22,000 trainable parameters, got 21,840",
               "test_net_shape_table_other_batches": "row 1 (conv1 + BatchNorm2d)",
               "test_net_shape_table_in_train_mode": "row 1 (conv1 + BatchNorm2d)",
               "test_net_layers_in_order": "kernel 3, expected 1 -> 10 channels, kernel 5"},
       maybe=CNN_ACCURACY),
    _m("cnn", "padding-with-a-larger-kernel", "conv1 with kernel 7 and padding 1 (same shape, against the rule)",
       ("        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)\n",
        "        self.conv1 = nn.Conv2d(1, 10, kernel_size=7, padding=1)\n"),
       expect={"test_net_convolutions_have_no_stride_or_padding": "padding=(1, 1): use no padding",
               "test_net_parameter_count": "got 22,240",
               "test_net_forward_rules_in_train_mode": "padding=(1, 1): use no padding",
               "test_net_layers_in_order": "kernel 7, expected 1 -> 10 channels, kernel 5"},
       maybe=CNN_ACCURACY),
    _m("cnn", "batchnorm-defined-not-used", "bn3 is created but fc1's output is not normalised",
       ("        x = self.bn3(x)\n", ""),
       expect={"test_net_gradients_reach_every_parameter": "no gradient reached ['bn3.weight', 'bn3.bias']",
               "test_net_applies_batchnorm": "normalises [10, 20]",
               "test_net_layers_in_order": "fc1 (Linear) is followed by ReLU, expected BatchNorm(50) then ReLU"},
       maybe=CNN_ACCURACY),
    _m("cnn", "missing-batchnorm", "no BatchNorm after conv2",
       ("        self.bn2 = nn.BatchNorm2d(20)\n", ""), ("        x = self.bn2(x)\n", ""),
       expect={"test_net_parameter_count": "missing BatchNorm",
               "test_net_applies_batchnorm": "normalises [10, 50]",
               "test_net_layers_in_order": "conv2 (Conv2d) is followed by MaxPool2d(2) then ReLU, expected BatchNorm(20)"},
       maybe=CNN_ACCURACY),
    _m("cnn", "batchnorm-after-relu", "BatchNorm at the end of the first block instead of after the convolution",
       ("        x = self.bn1(x)\n", ""), (BLOCK1_END, BLOCK1_END.replace("        x = self.conv2", "        x = self.bn1(x)\n"
                                                                         "        x = self.conv2")),
       expect={"test_net_layers_in_order": "conv1 (Conv2d) is followed by MaxPool2d(2) then ReLU then BatchNorm(10)"},
       maybe=CNN_ACCURACY),
    _m("cnn", "dropout-on-in-eval", "F.dropout(x, 0.2) after fc1 without training=",
       (FC1_END, FC1_END + "        x = F.dropout(x, 0.2)\n"),
       expect={"test_net_eval_mode_is_deterministic": "dropout is still active in eval mode",
               "test_net_eval_output_independent_of_batch": "dropout is still active in eval mode"},
       maybe=CNN_ACCURACY, forbid=("running statistics",)),
    _m("cnn", "layer-created-in-forward", "fc2 is created inside forward()",
       ("        self.fc2 = nn.Linear(50, 10)\n", ""),
       ("        x = self.fc2(x)\n", "        x = nn.Linear(50, 10)(x)\n"),
       expect={"test_net_parameter_count": "Layers created inside forward()",
               "test_net_device_check": "created inside forward()",
               "test_net_device_check_both_modes": "created inside forward()",
               "test_net_eval_mode_is_deterministic": "created inside forward()",
               "test_net_eval_output_independent_of_batch": "created inside forward()",
               "test_net_learns_a_small_batch": "created inside forward()",
               "test_net_trained_accuracy": "created inside forward()"},
       forbid=("running statistics",)),
    _m("cnn", "log-softmax-over-dim-0", "log_softmax over the batch dimension",
       ("        return F.log_softmax(x, dim=1)\n", "        return F.log_softmax(x, dim=0)\n"),
       expect={"test_net_outputs_log_probabilities": "wrong dimension"}),
    _m("cnn", "softmax-instead-of-log-softmax", "softmax instead of log_softmax",
       ("        return F.log_softmax(x, dim=1)\n", "        return F.softmax(x, dim=1)\n"),
       expect={"test_net_outputs_log_probabilities": "probabilities, not log-probabilities"}),
    _m("cnn", "flatten-with-fixed-batch", "x.view(64, 320): a hard-coded batch size",
       ("        x = torch.flatten(x, 1)\n", "        x = x.view(64, 320)\n"),
       expect={t: "batch size is fixed" for t in (
           "test_net_output_shape", "test_net_outputs_log_probabilities", "test_net_shape_table",
           "test_net_convolutions_have_no_stride_or_padding",
           "test_net_poolings_have_no_stride_or_padding", "test_net_gradients_reach_every_parameter",
           "test_net_device_check", "test_net_trained_accuracy", "test_net_output_shape_odd_batches",
           "test_net_shape_table_other_batches", "test_net_shape_table_in_train_mode",
           "test_net_forward_rules_in_train_mode", "test_net_applies_batchnorm", "test_net_layers_in_order",
           "test_net_eval_mode_is_deterministic", "test_net_eval_output_independent_of_batch",
           "test_net_log_softmax_stable_for_large_inputs", "test_net_learns_a_small_batch",
           "test_net_device_check_both_modes")}),
    _m("cnn", "average-pooling", "average pooling instead of max-pooling",
       ("        self.pool = nn.MaxPool2d(2)\n", "        self.pool = nn.AvgPool2d(2)\n"),
       expect={"test_net_poolings_have_no_stride_or_padding": "the blocks use max-pooling",
               "test_net_forward_rules_in_train_mode": "the blocks use max-pooling",
               "test_net_layers_in_order": "AvgPool2d(2)"},
       maybe=CNN_ACCURACY),
    _m("cnn", "no-relu-after-fc1", "fc1 without its ReLU",
       (FC1_END, "        x = self.bn3(x)\n"),
       expect={"test_net_layers_in_order": "fc1 (Linear) is followed by BatchNorm(50), expected BatchNorm(50) then ReLU"},
       maybe=CNN_ACCURACY),
    # equivalent
    _m("cnn", "explicit-pool-stride", "nn.MaxPool2d(2, stride=2)",
       ("        self.pool = nn.MaxPool2d(2)\n", "        self.pool = nn.MaxPool2d(2, stride=2)\n")),
    _m("cnn", "relu-before-pool", "ReLU before max-pooling in both blocks (they commute)",
       (BLOCK1_END, "        x = F.relu(x)\n        x = self.pool(x)\n        x = self.conv2(x)\n"),
       (BLOCK2_END, "        x = F.relu(x)\n        x = self.pool(x)\n        x = torch.flatten(x, 1)\n")),
    _m("cnn", "functional-max-pool", "F.max_pool2d in forward, no pooling module",
       ("        self.pool = nn.MaxPool2d(2)\n", ""),
       ("        x = self.bn1(x)\n        x = self.pool(x)\n", "        x = self.bn1(x)\n        x = F.max_pool2d(x, 2)\n"),
       ("        x = self.bn2(x)\n        x = self.pool(x)\n",
        "        x = self.bn2(x)\n        x = F.max_pool2d(x, kernel_size=2)\n")),
    _m("cnn", "view-flatten", "x.view(-1, 320)",
       ("        x = torch.flatten(x, 1)\n", "        x = x.view(-1, 320)\n")),
    _m("cnn", "reshape-by-size", "x.reshape(x.size(0), -1)",
       ("        x = torch.flatten(x, 1)\n", "        x = x.reshape(x.size(0), -1)\n")),
    _m("cnn", "relu-and-flatten-modules", "nn.ReLU and nn.Flatten modules, one composed line per block",
       ("        self.fc1 = nn.Linear(320, 50)\n", "        self.relu = nn.ReLU()\n        self.flatten = nn.Flatten()\n"
        "        self.fc1 = nn.Linear(320, 50)\n"),
       ("        x = self.conv1(x)\n        x = self.bn1(x)\n" + BLOCK1_END,
        "        x = self.relu(self.pool(self.bn1(self.conv1(x))))\n        x = self.conv2(x)\n"),
       ("        x = self.bn2(x)\n" + BLOCK2_END,
        "        x = self.relu(self.pool(self.bn2(x)))\n        x = self.flatten(x)\n"),
       (FC1_END, "        x = self.relu(self.bn3(x))\n")),
    _m("cnn", "dropout-with-training", "an extra F.dropout(x, 0.25, training=self.training) after fc1 (allowed)",
       (FC1_END, FC1_END + "        x = F.dropout(x, 0.25, training=self.training)\n")),
]


# ------------------------------------------------------------------------------------------------- vgg
VGG_ACCURACY = ("test_net_trained_accuracy",)
VGG_NET_BLOCKS = "        blocks = [(1, [(64, 2)]), (64, [(128, 2)]), (128, [(256, 1), (256, 2)]),\n"
VGG_TABLE_BLOCKS = '    blocks = [("conv1", 64, [2]), ("conv2", 128, [2]), ("conv3+conv4", 256, [1, 2]),\n'
VGG_CONV = "nn.Conv2d(channels, out_channels, kernel_size=3, padding=padding)"
VGG_BN = '                layers[f"bn{number}"] = nn.BatchNorm2d(out_channels)\n'
VGG_RELU = '                layers[f"relu{number}"] = nn.ReLU()\n'
VGG_FIXED_BATCH = (
    "test_net_agrees_with_your_table", "test_net_output_shape", "test_net_outputs_log_probabilities",
    "test_net_convolutions_follow_the_contract", "test_net_poolings_follow_the_contract",
    "test_net_gradients_reach_every_parameter", "test_net_device_check", "test_net_trained_accuracy",
    "test_net_shape_table", "test_net_shape_table_in_train_mode", "test_net_output_shape_odd_batches",
    "test_net_applies_batchnorm_after_every_conv", "test_net_layers_in_order", "test_net_dropout_active_in_train_mode",
    "test_net_eval_mode_is_deterministic", "test_net_eval_output_independent_of_batch",
    "test_net_device_check_both_modes")
VGG = [
    _m("vgg", "no-relu-in-classifier", "the ReLU after fc1 is missing",
       ('            ("fc1", nn.Linear(512, 100)), ("relu1", nn.ReLU()), ', '            ("fc1", nn.Linear(512, 100)), '),
       expect={"test_net_layers_in_order": "classifier.fc1 (Linear) is followed by Dropout(0.2), expected ReLU then "
                                           "Dropout(0.2)"},
       maybe=VGG_ACCURACY),
    _m("vgg", "first-padding-with-its-table", "conv1 with padding 1, and a shape table computed for it",
       (VGG_NET_BLOCKS, VGG_NET_BLOCKS.replace("(64, 2)", "(64, 1)")),
       (VGG_TABLE_BLOCKS, VGG_TABLE_BLOCKS.replace('64, [2]', '64, [1]')),
       expect={"test_shape_table_given_rows": "row 1 (conv1): expected (B, 64, 30, 30), got (B, 64, 28, 28)",
               "test_shape_table_matches_the_assignment": "row 1 (conv1)",
               "test_net_shape_table": "expected shape (B, 64, 30, 30), got (B, 64, 28, 28)",
               "test_net_shape_table_in_train_mode": "row 1 (conv1): expected shape (B, 64, 30, 30)"},
       maybe=VGG_ACCURACY),
    _m("vgg", "padding-1-everywhere", "padding 1 in every convolution (the sizes shrink to nothing)",
       ("kernel_size=3, padding=padding)", "kernel_size=3, padding=1)"),
       expect={t: "Output size is too small" for t in VGG_FIXED_BATCH}),
    _m("vgg", "positional-padding-is-the-stride", "nn.Conv2d(c, o, 3, padding): the fourth positional argument is the stride",
       (VGG_CONV, "nn.Conv2d(channels, out_channels, 3, padding)"),
       expect={t: "stride" for t in VGG_FIXED_BATCH}),
    _m("vgg", "no-batchnorm", "no BatchNorm in the convolution blocks",
       (VGG_BN, ""),
       expect={"test_net_parameter_count": "a missing BatchNorm",
               "test_net_applies_batchnorm_after_every_conv": "your forward normalises nothing",
               "test_net_layers_in_order": "features.conv1 (Conv2d) is followed by ReLU then MaxPool2d(2), expected "
                                           "BatchNorm(64) then ReLU then MaxPool2d(2)",
               "test_net_trained_accuracy": "below the required"}),
    _m("vgg", "batchnorm-after-relu", "ReLU before BatchNorm in every convolution",
       (VGG_BN + VGG_RELU, VGG_RELU + VGG_BN),
       expect={"test_net_layers_in_order": "features.conv1 (Conv2d) is followed by ReLU then BatchNorm(64) then "
                                           "MaxPool2d(2)"},
       maybe=VGG_ACCURACY),
    _m("vgg", "dropout-on-in-eval", "the classifier written out in forward with F.dropout(x, 0.2), without training=",
       ("        x = self.classifier(x)\n",
        "        c = self.classifier\n"
        "        x = F.dropout(F.relu(c.fc1(x)), 0.2)\n"
        "        x = F.dropout(F.relu(c.fc2(x)), 0.2)\n"
        "        x = c.fc3(x)\n"),
       expect={"test_net_eval_mode_is_deterministic": "dropout is still active in eval mode",
               "test_net_eval_output_independent_of_batch": "dropout is still active in eval mode"},
       maybe=VGG_ACCURACY, forbid=("running statistics",)),
    _m("vgg", "pooling-rounds-up", "max-pooling with ceil_mode=True (5 -> 3)",
       ('            layers[f"pool{block}"] = nn.MaxPool2d(2)\n',
        '            layers[f"pool{block}"] = nn.MaxPool2d(2, ceil_mode=True)\n'),
       expect={"test_net_agrees_with_your_table": "row 6 (pool3)",
               "test_net_poolings_follow_the_contract": "ceil_mode=True",
               "test_net_shape_table": "(pool3)",
               "test_net_shape_table_in_train_mode": "row 6 (pool3)",
               "test_net_layers_in_order": "MaxPool2d(2, stride=(2, 2)"},
       maybe=VGG_ACCURACY),
    _m("vgg", "table-pooling-rounds-up", "shape_table rounds the pooled size up",
       ("        size = out_size(size, 2, 2)\n", "        size = -(-size // 2)\n"),
       expect={"test_net_agrees_with_your_table": "row 6 (pool3): expected shape (B, 256, 3, 3), got (B, 256, 5, 5)",
               "test_shape_table_matches_the_assignment": "row 6 (pool3)"}),
    _m("vgg", "out-size-true-division", "out_size with / instead of //",
       ("    return (size + 2 * padding - kernel) // stride + 1\n", "    return (size + 2 * padding - kernel) / stride + 1\n"),
       expect={"test_out_size_examples": "expected the int",
               "test_out_size_matches_the_formula": "got"}),
    _m("vgg", "out-size-padding-once", "out_size adds the padding on one side only",
       ("    return (size + 2 * padding - kernel) // stride + 1\n", "    return (size + padding - kernel) // stride + 1\n"),
       expect={"test_out_size_examples": "out_size(7, kernel=3, stride=2, padding=1): expected the int 4",
               "test_out_size_matches_the_formula": "nn.Conv2d gives",
               "test_shape_table_given_rows": "row 11 (flatten)",
               "test_shape_table_matches_the_assignment": "row 1 (conv1)",
               "test_net_agrees_with_your_table": "row 1 (conv1): expected shape (B, 64, 29, 29), got (B, 64, 30, 30)"}),
    _m("vgg", "table-flatten-keeps-the-image-axes", "the flatten row keeps (512, 1, 1)",
       ('    table.append(("flatten", (batch, 512 * size * size)))\n', '    table.append(("flatten", (batch, 512, size, size)))\n'),
       expect={"test_shape_table_given_rows": "row 11 (flatten): expected (B, 512), got (B, 512, 1, 1)",
               "test_net_agrees_with_your_table": "row 11 (flatten)",
               "test_shape_table_matches_the_assignment": "row 11 (flatten)"}),
    _m("vgg", "table-without-the-predicted-class", "shape_table leaves out the last row",
       ('("fc3", (batch, 10)), ("predicted class", (batch,))]', '("fc3", (batch, 10))]'),
       expect={t: "returned 17 rows; the table has 18" for t in (
           "test_shape_table_form", "test_shape_table_given_rows", "test_shape_table_follows_the_batch",
           "test_net_agrees_with_your_table", "test_shape_table_matches_the_assignment")}),
    _m("vgg", "dropout-rate-0.5", "dropout 0.5 in the classifier",
       ('("dropout1", nn.Dropout(0.2))', '("dropout1", nn.Dropout(0.5))'),
       ('("dropout2", nn.Dropout(0.2))', '("dropout2", nn.Dropout(0.5))'),
       expect={"test_net_dropout_active_in_train_mode": "found [0.5, 0.5]",
               "test_net_layers_in_order": "ReLU then Dropout(0.5), expected ReLU then Dropout(0.2)"},
       maybe=VGG_ACCURACY),
    _m("vgg", "flatten-with-fixed-batch", "x.view(32, 512): a hard-coded batch size",
       ("        x = torch.flatten(x, 1)\n", "        x = x.view(32, 512)\n"),
       expect={t: "batch size is fixed" for t in VGG_FIXED_BATCH}),
    _m("vgg", "no-log-softmax", "forward returns the scores without log_softmax",
       ("        return F.log_softmax(x, dim=1)\n", "        return x\n"),
       expect={"test_net_outputs_log_probabilities": "expected log-probabilities"}),
    # equivalent
    _m("vgg", "explicit-pool-stride", "nn.MaxPool2d(2, stride=2)",
       ('            layers[f"pool{block}"] = nn.MaxPool2d(2)\n', '            layers[f"pool{block}"] = nn.MaxPool2d(2, stride=2)\n')),
    _m("vgg", "other-padding-split", "conv3 padding 2 and conv4 padding 1, the table changed with it",
       (VGG_NET_BLOCKS, VGG_NET_BLOCKS.replace("[(256, 1), (256, 2)]", "[(256, 2), (256, 1)]")),
       (VGG_TABLE_BLOCKS, VGG_TABLE_BLOCKS.replace("256, [1, 2]", "256, [2, 1]"))),
    _m("vgg", "view-flatten", "x.view(x.size(0), -1)",
       ("        x = torch.flatten(x, 1)\n", "        x = x.view(x.size(0), -1)\n")),
    _m("vgg", "inplace-relu", "nn.ReLU(inplace=True)",
       (VGG_RELU, VGG_RELU.replace("nn.ReLU()", "nn.ReLU(inplace=True)"))),
    _m("vgg", "out-size-int-of-division", "int(a / b) + 1 (the same as // for the sizes of a window that fits)",
       ("    return (size + 2 * padding - kernel) // stride + 1\n", "    return int((size + 2 * padding - kernel) / stride) + 1\n")),
]
