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
       expect={"test_net_outputs_log_probabilities": "are probabilities (each row is >= 0 and sums to 1), not log-probabilities"}),
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
               AGENT: "fc1 (Linear) is followed by ReLU then Dropout(0.5)"},
       maybe=MLP_ACCURACY),
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
       expect={"test_net_shape_table": "row 1 (conv1 + BatchNorm2d",

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
       expect={"test_net_outputs_log_probabilities": "are probabilities (each row is >= 0 and sums to 1), not log-probabilities"}),
    _m("cnn", "flatten-with-fixed-batch", "x.view(64, 320): a hard-coded batch size",
       ("        x = torch.flatten(x, 1)\n", "        x = x.view(64, 320)\n"),
       expect={t: "batch size is fixed" for t in (
           "test_net_output_shape", "test_net_outputs_log_probabilities", "test_net_shape_table",
           "test_net_convolutions_have_no_stride_or_padding",
           "test_net_poolings_have_no_stride_or_padding", "test_net_gradients_reach_every_parameter",
           "test_net_device_check", "test_net_trained_accuracy", "test_net_output_shape_odd_batches",
           "test_net_shape_table_other_batches", "test_net_shape_table_in_train_mode",
           "test_net_applies_batchnorm", "test_net_layers_in_order",
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
               "test_net_shape_table": "(B, 64, 30, 30), got (B, 64, 28, 28)",
               "test_net_shape_table_in_train_mode": "row 1 (conv1): expected shape (B, 64, 30, 30)"},
       maybe=VGG_ACCURACY),
    _m("vgg", "padding-1-everywhere", "padding 1 in every convolution (the sizes shrink to nothing)",
       ("kernel_size=3, padding=padding)", "kernel_size=3, padding=1)"),
       expect={t: "the picture shrinks to nothing" for t in VGG_FIXED_BATCH}),
    _m("vgg", "positional-padding-is-the-stride", "nn.Conv2d(c, o, 3, padding): the fourth positional argument is the stride",
       (VGG_CONV, "nn.Conv2d(channels, out_channels, 3, padding)"),
       expect={t: "the fourth positional argument is the stride" for t in VGG_FIXED_BATCH}),
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
       # the picture is 2x2 at the end, so fc1 cannot take it: forward fails, and says where the sizes went
       expect={t: "a linear layer gets 2048 features per image where it expects 512" for t in VGG_FIXED_BATCH}),
    _m("vgg", "table-pooling-rounds-up", "shape_table rounds the pooled size up",
       ("        size = out_size(size, 2, 2)\n", "        size = -(-size // 2)\n"),
       expect={"test_net_agrees_with_your_table": "row 4 (pool2): expected shape (B, 128, 9, 9), got (B, 128, 8, 8)",
               "test_shape_table_matches_the_assignment": "row 4 (pool2): your shape_table(",
               "test_shape_table_given_rows": "row 11 (flatten): expected (B, 512), got (B, 2048)"}),
    _m("vgg", "out-size-true-division", "out_size with / instead of //",
       ("    return (size + 2 * padding - kernel) // stride + 1\n", "    return (size + 2 * padding - kernel) / stride + 1\n"),
       expect={"test_out_size_examples": "expected the int",
               "test_out_size_matches_the_formula": "got",
               **{t: "the shape must be a tuple of ints, got" for t in (
                   "test_net_agrees_with_your_table", "test_shape_table_follows_the_batch", "test_shape_table_form",
                   "test_shape_table_given_rows", "test_shape_table_matches_the_assignment")}}),
    _m("vgg", "out-size-padding-once", "out_size adds the padding on one side only",
       ("    return (size + 2 * padding - kernel) // stride + 1\n", "    return (size + padding - kernel) // stride + 1\n"),
       expect={"test_out_size_examples": "out_size(7, kernel=3, stride=2, padding=1): expected the int 4",
               "test_out_size_matches_the_formula": "nn.Conv2d gives",
               "test_shape_table_given_rows": "row 1 (conv1): expected (B, 64, 30, 30), got (B, 64, 28, 28)",
               "test_shape_table_matches_the_assignment": "row 1 (conv1)",
               "test_net_agrees_with_your_table": "row 1 (conv1): expected shape (B, 64, 28, 28), got (B, 64, 30, 30)"}),
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
       expect={"test_net_outputs_log_probabilities": "expected log-probabilities",
               "test_net_layers_in_order": "classifier.fc3 (Linear) is followed by nothing, expected log_softmax(dim=1)"}),
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


# ---------------------------------------------------------------------------------------------- im2col
IM2COL_SLIDING = ("    windows = np.lib.stride_tricks.sliding_window_view(img, (filter_h, filter_w), axis=(1, 2))\n"
                  "    windows = windows[:, ::stride, ::stride]")
IM2COL_ADD = "            img[:, y:y_max:stride, x:x_max:stride, :] += col[:, :, :, :, y, x]\n"
IM2COL_USERS = ("test_im2col_worked_example", "test_convolution_worked_example", "test_im2col_output_shape",
                "test_im2col_matches_documented_layout", "test_convolution_forward_matches_conv2d",
                "test_convolution_backward_matches_autograd", "test_im2col_rejects_invalid_input",
                "test_im2col_has_no_loop_over_images_or_pixels", "test_pooling_forward_matches_max_pool2d",
                "test_pooling_backward_matches_autograd", "test_im2col_matches_unfold_property",
                "test_im2col_output_shape_edge_cases", "test_im2col_worked_example_prepadded",
                "test_convolution_forward_property", "test_convolution_backward_property",
                "test_convolution_backward_gradient_check", "test_convolution_worked_example_prepadded",
                "test_im2col_rejects_non_integer_output_size", "test_im2col_rejects_window_larger_than_input",
                "test_im2col_rejects_wrong_ndim", "test_convolution_rejects_invalid_input",
                "test_convolution_forward_has_no_loop_over_images_or_pixels",
                "test_convolution_backward_has_no_loop_over_images_or_pixels", "test_pooling_forward_property",
                "test_pooling_backward_property", "test_pooling_has_no_loop_over_images_or_pixels")
IM2COL = [
    _m("im2col", "im2col-ignores-the-stride", "im2col keeps every window corner, whatever the stride",
       (IM2COL_SLIDING, IM2COL_SLIDING.replace("[:, ::stride, ::stride]", "[:, :, :]")),
       expect={t: "stride" for t in (
           "test_im2col_output_shape", "test_im2col_matches_documented_layout", "test_convolution_forward_matches_conv2d",
           "test_convolution_backward_matches_autograd", "test_im2col_has_no_loop_over_images_or_pixels",
           "test_pooling_forward_matches_max_pool2d", "test_pooling_backward_matches_autograd",
           "test_im2col_matches_unfold_property", "test_im2col_output_shape_edge_cases",
           "test_convolution_forward_property", "test_convolution_backward_property",
           "test_convolution_backward_gradient_check", "test_convolution_forward_has_no_loop_over_images_or_pixels",
           "test_convolution_backward_has_no_loop_over_images_or_pixels", "test_pooling_forward_property",
           "test_pooling_backward_property", "test_pooling_has_no_loop_over_images_or_pixels")}),
    _m("im2col", "im2col-crops-instead-of-striding", "im2col takes the first out_h x out_w corners, not every stride-th",
       (IM2COL_SLIDING, IM2COL_SLIDING.replace("[:, ::stride, ::stride]", "[:, :out_h, :out_w]")),
       expect={"test_im2col_matches_documented_layout": "stride",
               "test_convolution_forward_matches_conv2d": "stride",
               "test_convolution_backward_matches_autograd": "stride",
               "test_im2col_matches_unfold_property": "stride",
               "test_convolution_forward_property": "stride",
               "test_convolution_backward_property": "stride",
               "test_convolution_backward_gradient_check": "stride",
               "test_pooling_forward_matches_max_pool2d": "stride",
               "test_pooling_backward_matches_autograd": "stride",
               "test_pooling_forward_property": "stride",
               "test_pooling_backward_property": "stride"}),
    _m("im2col", "col2im-assigns", "col2im with = instead of +=: overlapping windows overwrite each other",
       (IM2COL_ADD, IM2COL_ADD.replace("+=", "=")),
       expect={"test_col2im_is_adjoint_of_im2col": "+=, not =",
               "test_col2im_is_adjoint_property": "+=, not =",
               "test_col2im_sums_overlaps_property": "+=, not =",
               "test_convolution_backward_matches_autograd": "col2im",
               "test_convolution_backward_property": "col2im",
               "test_convolution_backward_gradient_check": "col2im"},
       maybe=("test_pooling_backward_matches_autograd", "test_pooling_backward_property")),
    _m("im2col", "col2im-slice-without-stride", "col2im steps through the image by 1 instead of the stride",
       (IM2COL_ADD, IM2COL_ADD.replace("img[:, y:y_max:stride, x:x_max:stride, :]", "img[:, y:y + out_h, x:x + out_w, :]")),
       expect={"test_col2im_is_adjoint_of_im2col": "stride",
               "test_col2im_is_adjoint_property": "stride",
               "test_col2im_sums_overlaps_property": "stride",
               "test_convolution_backward_matches_autograd": "col2im",
               "test_convolution_backward_property": "col2im",
               "test_convolution_backward_gradient_check": "col2im",
               "test_pooling_backward_matches_autograd": "col2im",
               "test_pooling_backward_property": "col2im"}),
    _m("im2col", "col2im-slice-end-without-stride", "col2im's slices end at y + out_h, with step stride",
       ("        y_max = y + stride * out_h\n", "        y_max = y + out_h\n"),
       expect={"test_col2im_is_adjoint_of_im2col": "stride",
               "test_col2im_is_adjoint_property": "stride",
               "test_col2im_sums_overlaps_property": "stride",
               "test_col2im_has_no_loop_over_images_or_pixels": "stride",
               "test_convolution_backward_matches_autograd": "stride",
               "test_convolution_backward_property": "stride",
               "test_convolution_backward_gradient_check": "stride",
               "test_convolution_backward_has_no_loop_over_images_or_pixels": "stride",
               "test_pooling_backward_matches_autograd": "stride",
               "test_pooling_backward_property": "stride",
               "test_pooling_has_no_loop_over_images_or_pixels": "stride"}),
    _m("im2col", "im2col-loops-over-images", "im2col builds the windows one image at a time",
       ("    windows = np.lib.stride_tricks.sliding_window_view(img, (filter_h, filter_w), axis=(1, 2))\n",
        "    windows = np.stack([np.lib.stride_tricks.sliding_window_view(img[n], (filter_h, filter_w), axis=(0, 1))\n"
        "                        for n in range(N)])\n"),
       expect={"test_im2col_has_no_loop_over_images_or_pixels": "must not loop over the images",
               "test_convolution_forward_has_no_loop_over_images_or_pixels": "must not loop over the images",
               "test_pooling_has_no_loop_over_images_or_pixels": "must not loop over the images"}),
    _m("im2col", "db-loops-over-rows", "db summed with a Python loop over the output pixels",
       ("        self.db = np.sum(dout, axis=0)\n", "        self.db = sum(dout[i] for i in range(dout.shape[0]))\n"),
       expect={"test_convolution_backward_has_no_loop_over_images_or_pixels": "must not loop over the images"}),
    _m("im2col", "torch-in-im2col", "im2col with torch's unfold",
       ("    img = np.pad(input_data.transpose(0, 2, 3, 1), [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode=\"constant\")\n",
        "    import torch\n"
        "    unfolded = torch.nn.functional.unfold(torch.from_numpy(input_data), (filter_h, filter_w), padding=pad,\n"
        "                                          stride=stride)\n"
        "    return unfolded.transpose(1, 2).reshape(N * out_h * out_w, -1).numpy()\n"
        "    img = np.pad(input_data.transpose(0, 2, 3, 1), [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode=\"constant\")\n"),
       expect={t: "numpy only" for t in IM2COL_USERS}),
    _m("im2col", "flipped-filter", "a true convolution: the filters are flipped",
       ("        col_W = self.W.reshape(FN, -1).T  # (C*FH*FW, FN)\n",
        "        col_W = self.W[:, :, ::-1, ::-1].reshape(FN, -1).T  # (C*FH*FW, FN)\n"),
       expect={"test_convolution_forward_matches_conv2d": "without flipping the filter",
               "test_convolution_forward_property": "relative error",
               "test_convolution_backward_matches_autograd": "relative error",
               "test_convolution_backward_property": "relative error",
               "test_convolution_backward_gradient_check": "differs from the centered difference"}),
    _m("im2col", "no-bias", "forward leaves out the bias",
       ("        out = col @ col_W + self.b  # (N*out_h*out_w, FN)\n", "        out = col @ col_W  # (N*out_h*out_w, FN)\n"),
       expect={"test_convolution_forward_matches_conv2d": "b[f]",
               "test_convolution_forward_property": "relative error"}),
    _m("im2col", "db-over-the-wrong-axis", "db summed over the filters instead of the rows",
       ("        self.db = np.sum(dout, axis=0)\n", "        self.db = np.sum(dout, axis=1)\n"),
       expect={"test_convolution_backward_matches_autograd": "db",
               "test_convolution_backward_property": "db",
               "test_convolution_backward_gradient_check": "db",
               "test_convolution_backward_has_no_loop_over_images_or_pixels": "Convolution.db after backward(): expected "
                                                                              "shape"}),
    _m("im2col", "dw-without-transpose", "dW reshaped from col.T @ dout without its transpose",
       ("        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)\n",
        "        self.dW = (self.col.T @ dout).reshape(FN, C, FH, FW)\n"),
       expect={"test_convolution_backward_matches_autograd": "dW",
               "test_convolution_backward_property": "dW",
               "test_convolution_backward_gradient_check": "dW"}),
    _m("im2col", "no-divisibility-check", "output_size does not check that the stride fits",
       ("        if room % stride != 0:\n", "        if False:\n"),
       expect={"test_im2col_rejects_invalid_input": "expected a ValueError",
               "test_im2col_rejects_non_integer_output_size": "expected a ValueError",
               "test_col2im_rejects_invalid_shapes": "expected a ValueError",
               "test_convolution_rejects_invalid_input": "expected a ValueError"}),
    _m("im2col", "im2col-pads-the-wrong-axes", "np.pad over the images and rows instead of rows and columns",
       ("[(0, 0), (pad, pad), (pad, pad), (0, 0)]", "[(pad, pad), (pad, pad), (0, 0), (0, 0)]"),
       expect={t: "pad" for t in (
           "test_im2col_worked_example", "test_convolution_worked_example", "test_im2col_output_shape",
           "test_im2col_matches_documented_layout", "test_convolution_forward_matches_conv2d",
           "test_convolution_backward_matches_autograd", "test_im2col_has_no_loop_over_images_or_pixels",
           "test_im2col_matches_unfold_property", "test_im2col_output_shape_edge_cases",
           "test_convolution_forward_property", "test_convolution_backward_property",
           "test_convolution_backward_gradient_check", "test_convolution_forward_has_no_loop_over_images_or_pixels",
           "test_convolution_backward_has_no_loop_over_images_or_pixels")}),
    _m("im2col", "col2im-keeps-the-wrong-border", "col2im crops the padded image at its top-left corner",
       ("    return img[:, pad:H + pad, pad:W + pad, :].transpose(0, 3, 1, 2)",
        "    return img[:, :H, :W, :].transpose(0, 3, 1, 2)"),
       expect={"test_col2im_is_adjoint_of_im2col": "pad",
               "test_col2im_is_adjoint_property": "pad",
               "test_col2im_sums_overlaps_property": "pad",
               "test_convolution_backward_matches_autograd": "col2im",
               "test_convolution_backward_property": "col2im",
               "test_convolution_backward_gradient_check": "col2im"}),
    _m("im2col", "columns-in-window-channel-order", "the columns run over (filter_h, filter_w, C), not (C, filter_h, filter_w)",
       ("    return windows.reshape(N * out_h * out_w, C * filter_h * filter_w)\n",
        "    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(N * out_h * out_w, C * filter_h * filter_w)\n"),
       expect={"test_im2col_matches_documented_layout": "channel",
               "test_im2col_matches_unfold_property": "channel",
               "test_convolution_forward_matches_conv2d": "relative error",
               "test_convolution_forward_property": "relative error",
               "test_convolution_backward_matches_autograd": "relative error",
               "test_convolution_backward_property": "relative error",
               "test_convolution_backward_gradient_check": "differs",
               **{t: "im2col, which Pooling.forward calls, fails its own tests" for t in (
                   "test_pooling_forward_matches_max_pool2d", "test_pooling_forward_property")},
               **{t: "im2col, which Pooling.backward calls, fails its own tests" for t in (
                   "test_pooling_backward_matches_autograd", "test_pooling_backward_property")}}),
    _m("im2col", "pooling-argmin", "Pooling.forward remembers the minimum's place (bonus)",
       ("        self.arg_max = np.argmax(col, axis=1)\n", "        self.arg_max = np.argmin(col, axis=1)\n"),
       expect={"test_pooling_backward_matches_autograd": "at the maximum of its window",
               "test_pooling_backward_property": "at the maximum of its window"}),
    # equivalent
    _m("im2col", "window-loops", "im2col as in the course: a loop over the window offsets, channels first",
       ("    img = np.pad(input_data.transpose(0, 2, 3, 1), [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode=\"constant\")\n",
        "    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], mode=\"constant\")\n"
        "    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w), dtype=input_data.dtype)\n"
        "    for y in range(filter_h):\n"
        "        y_max = y + stride * out_h\n"
        "        for x in range(filter_w):\n"
        "            x_max = x + stride * out_w\n"
        "            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]\n"
        "    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)\n")),
    _m("im2col", "col2im-add-at", "col2im with np.add.at on index arrays, no loop at all",
       ("    img = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dtype=col.dtype)  # padded, channels last\n",
        "    img = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dtype=col.dtype)  # padded, channels last\n"
        "    rows = (np.arange(out_h) * stride)[:, None, None, None] + np.arange(filter_h)[None, None, :, None]\n"
        "    cols = (np.arange(out_w) * stride)[None, :, None, None] + np.arange(filter_w)[None, None, None, :]\n"
        "    np.add.at(img, (slice(None), rows, cols), col.transpose(0, 1, 2, 4, 5, 3))\n"
        "    return img[:, pad:H + pad, pad:W + pad, :].transpose(0, 3, 1, 2)\n"),
       ),
    _m("im2col", "einsum-forward", "the forward product with np.einsum and the bias broadcast",
       ("        out = col @ col_W + self.b  # (N*out_h*out_w, FN)\n",
        "        out = np.einsum(\"rk,kf->rf\", col, col_W) + self.b[None, :]\n")),
    _m("im2col", "db-method", "dout.sum(axis=0) and np.dot",
       ("        self.db = np.sum(dout, axis=0)\n", "        self.db = dout.sum(axis=0)\n"),
       ("        dcol = dout @ self.col_W.T  # (N*out_h*out_w, C*FH*FW)\n",
        "        dcol = np.dot(dout, self.col_W.T)\n")),
]


from mutants_analysis import ANALYSIS  # noqa: E402 (it imports _m from this module)

CORPUS = {"mlp": MLP, "cnn": CNN, "vgg": VGG, "im2col": IM2COL, "analysis": ANALYSIS}
MODULES = {"mlp": "mlp.py", "cnn": "cnn.py", "vgg": "vgg.py", "im2col": "im2col.py", "analysis": "analysis.py"}


def mutant_zip(reference_zip: Path, mutant: Mutant, source: str, target: Path) -> Path:
    """The reference submission with its module replaced by ``mutant`` (and its ``files`` edits), as a zip."""
    import tempfile
    import zipfile

    module = MODULES[mutant.assignment]
    with zipfile.ZipFile(reference_zip) as archive:
        entries = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
    if module not in entries:
        raise MutantError(f"{reference_zip.name} holds no {module}")
    entries[module] = mutant.apply(source).encode()
    if mutant.files is not None:
        with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
            folder = Path(tmp)
            for name, data in entries.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            mutant.files(folder)
            entries = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return target


def lost_points(results: dict) -> dict:
    """``{test function: [outputs of its instances that lost points]}`` of a results.json."""
    lost: dict = {}
    for test in results["tests"]:
        if test["score"] < test["max_score"] or (test["extra_data"].get("bonus") and test["score"] == 0
                                                  and test["extra_data"].get("outcome") != "passed"):
            function = test["extra_data"]["nodeid"].split("::")[-1].split("[")[0]
            lost.setdefault(function, []).append(test["output"])
    return lost


def check(mutant: Mutant, results: dict) -> list:
    """What is wrong with the grading of ``mutant`` (its results.json), in words; empty when it is as expected."""
    problems = []
    lost = lost_points(results)
    maximum = results["extra_data"]["max_score"]
    if mutant.equivalent:
        if lost or results["score"] < maximum:
            problems.append(f"an equivalent variant lost points: {_shown(lost)}")
        return problems
    if results["score"] >= maximum and not lost:
        problems.append("survived: full marks")
    unexpected = sorted(set(lost) - set(mutant.expect) - set(mutant.maybe))
    if unexpected:
        problems.append(f"these tests lost points too: {_shown({t: lost[t] for t in unexpected})}")
    missing = sorted(set(mutant.expect) - set(lost))
    if missing:
        problems.append(f"these tests kept their points: {missing}")
    for function, phrase in mutant.expect.items():
        for output in lost.get(function, []):
            if phrase not in output:
                problems.append(f"{function} does not say {phrase!r}: {output[:600]!r}")
    everything = results["output"] + "\n" + "\n".join(t["output"] for t in results["tests"])
    for phrase in mutant.forbid:
        if phrase in everything:
            problems.append(f"the feedback says {phrase!r} (the wrong cause)")
    return problems


def _shown(lost: dict) -> str:
    return "; ".join(f"{t}: {outputs[0][:300]!r}" for t, outputs in sorted(lost.items()))
