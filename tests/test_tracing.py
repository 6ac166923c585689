"""mnistkit.tracing and mnistkit.layers: the forward pass of an exported network, layer by layer, and the
messages of the shape-table and layer-order checks built on it."""
import torch
from torch import nn

from mnistkit.layers import Layer, layer_problems, reused_modules
from mnistkit.tracing import as_pair, print_layer_shapes, row_failure, table_rows, trace_forward, trace_random
from small_nets import build, graph_net, line_of

TABLE = [
    ("input", "input", (1, 28, 28)),
    ("conv1", "conv", (4, 24, 24)),
    ("pool", "pool", (4, 12, 12)),
    ("flatten", "flatten", (576,)),
    ("fc", "linear", (10,)),
    ("predicted class", "predicted", ()),
]
CONTRACT = [
    Layer("linear", in_features=784, out_features=50, then=[["ReLU", "Dropout(0.2)"]]),
    Layer("linear", in_features=50, out_features=50, then=[["ReLU", "Dropout(0.2)"]]),
    Layer("linear", in_features=50, out_features=10, then=[["log_softmax(dim=1)"]]),
]


# ------------------------------------------------------------------------------------------ the tracer
def test_tracing_records_modules_and_functional_calls_in_order():
    trace = trace_random(graph_net("Small"), 3)
    assert trace.input_shape == (3, 1, 28, 28) and trace.error is None
    assert [(op.kind, op.name()) for op in trace.layers()] == [
        ("conv", "conv1 (Conv2d)"), ("pool", "F.max_pool2d in forward()"), ("linear", "fc (Linear)")]
    assert [op.kind for op in trace.ops] == ["conv", "pool", "shape", "linear"]
    conv, pool, _, fc = trace.ops
    assert conv.params["kernel"] == (5, 5) and conv.params["in_channels"] == 1 and conv.params["out_channels"] == 4
    assert pool.params["stride"] == (2, 2) and pool.params["max"] and pool.out_shape == (3, 4, 12, 12)
    assert fc.params == {"in_features": 576, "out_features": 10, "bias": True} and fc.in_shape == (3, 576)
    assert conv.where == pool.where == line_of("x = F.max_pool2d(self.conv1(x), 2)")
    assert torch.equal(trace.output, graph_net("Small").eval()(trace_input(3)))
    assert all(row.ok for row in table_rows(trace, TABLE, 3))


def trace_input(batch):
    torch.manual_seed(batch)
    return torch.randn(batch, 1, 28, 28)


def test_tracing_records_layers_of_a_cnn_in_train_mode():
    trace = trace_random(graph_net("CNN"), 2, train=True)
    assert [(op.word(), op.name()) for op in trace.layers()] == [
        ("Conv2d", "conv1 (Conv2d)"), ("BatchNorm", "bn (BatchNorm2d)"), ("ReLU", "F.relu in forward()"),
        ("MaxPool2d", "pool (MaxPool2d)"), ("Linear", "fc (Linear)"), ("log_softmax", "F.log_softmax in forward()")]
    norm = trace.layers()[1]
    assert norm.params == {"features": 4, "training": True}
    assert trace.layers()[-1].params == {"dim": 1, "log": True}


def test_tracing_of_casts_shows_no_bookkeeping_of_torch_export():
    trace = trace_forward(graph_net("Casts").eval(), torch.randn(2, 4))
    assert [op.name() for op in trace.layers()] == ["fc (Linear)"], "x.float() and .to(dtype) compute nothing"
    assert trace.output.dtype == torch.float64


def test_tracing_records_dropout_with_its_rate():
    trace = trace_random(graph_net("MLP"), 2, train=True)
    dropouts = [op for op in trace.ops if op.kind == "dropout"]
    assert [(op.name(), op.params["p"], op.params["training"]) for op in dropouts] == [("drop (Dropout)", 0.2, True)] * 2


def test_tracing_names_the_first_row_that_is_off_with_the_formula():
    rows = table_rows(trace_random(graph_net("SmallPadded"), 2), TABLE, 2)
    assert row_failure(rows, 0, 2) is None
    assert row_failure(rows, 1, 2) == (
        "row 1 (conv1): expected shape (B, 4, 24, 24), got (B, 4, 26, 26); conv1 (Conv2d) has kernel 5, stride 1, "
        "padding 1: H_out = floor((H_in + 2*padding - kernel)/stride) + 1 = floor((28 + 2*1 - 5)/1) + 1 = 26 (B = 2)")
    assert row_failure(rows, 2, 2).startswith(
        "row 2 (pool): expected shape (B, 4, 12, 12), got (B, 4, 13, 13); F.max_pool2d in forward() has kernel 2, "
        "stride 2, padding 0: H_out = floor((H_in + 2*padding - kernel)/stride) + 1 = floor((26 + 2*0 - 2)/2) + 1 = 13")
    assert "The first row that is off is row 1 (conv1: expected (B, 4, 24, 24), got (B, 4, 26, 26))" in (
        row_failure(rows, 3, 2))
    assert row_failure(rows, 5, 2) is None


def test_tracing_row_failure_names_a_layer_of_the_wrong_kind():
    table = [("input", "input", (1, 28, 28)), ("conv1", "conv", (4, 24, 24)), ("conv2", "conv", (4, 8, 8))]
    rows = table_rows(trace_random(graph_net("Small"), 2), table, 2)
    assert row_failure(rows, 2, 2) == ("row 2 (conv2): expected shape (B, 4, 8, 8), but your forward has no more "
                                       "convolution for this row (B = 2)")
    table = [("input", "input", (1, 28, 28)), ("conv1", "conv", (4, 24, 24)), ("conv2", "conv", (4, 8, 8)),
             ("pool", "pool", (4, 12, 12))]
    rows = table_rows(trace_random(graph_net("Small"), 2), table, 2)
    assert "the layer here is a pooling (F.max_pool2d in forward()), not a convolution" in row_failure(rows, 2, 2)


def test_tracing_keeps_the_error_of_forward():
    net = graph_net("Hidden").eval()
    net.state_tensor("fc2.weight").data = torch.zeros(2, 5)
    trace = trace_forward(net, torch.randn(2, 4))
    assert trace.output is None and trace.error.startswith("RuntimeError: ")
    assert trace.error.endswith(f"(after F.relu in forward() at {line_of('x = torch.relu(self.fc1(x))')})")
    assert [op.name() for op in trace.ops] == ["fc1 (Linear)", "F.relu in forward()"]


STUB_ERROR = ("not written yet (NotImplementedError: write Net.forward); see the TODO comment in small_nets.py, "
              f"above line {line_of('write Net.forward').split(':')[1]}")


def test_tracing_of_a_network_without_graph_says_why():
    trace = trace_random(graph_net("Stub"), 1)
    assert trace.output is None and trace.error == STUB_ERROR
    rows = table_rows(trace, TABLE, 1)
    assert row_failure(rows, 1, 1) == (
        "row 1 (conv1): expected shape (B, 4, 24, 24), but your forward has no more convolution for this row (it "
        f"stopped with {STUB_ERROR}) (B = 1)")
    assert row_failure(rows, 5, 1).startswith(
        f"row 5 (predicted class): expected shape (B), but there is no output (it stopped with {STUB_ERROR}). The "
        "first row that is off is row 1 (conv1: ")


def test_tracing_as_pair_and_print_layer_shapes(capsys):
    assert as_pair(3, None) == (3, 3) and as_pair([2], None) == (2, 2) and as_pair("same", None) == "same"
    assert as_pair(None, (1, 1)) == (1, 1) and as_pair((1, 2), None) == (1, 2)
    print_layer_shapes(build("Small"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["conv1", "Conv2d", "(2,", "4,", "24,", "24)"]
    assert lines[-1].split() == ["output", "of", "forward()", "(2,", "10)"]


# ------------------------------------------------------------------------------------------ layer order
def test_layers_contract_accepts_the_network_it_describes():
    assert layer_problems(trace_random(graph_net("MLP"), 2, train=True), CONTRACT) == []
    assert layer_problems(trace_random(graph_net("SharedReLU"), 2, train=True), CONTRACT) == []


def test_layers_contract_names_a_missing_relu():
    assert layer_problems(trace_random(graph_net("NoReLU"), 2, train=True), CONTRACT) == [
        "fc2 (Linear) is followed by Dropout(0.2), expected ReLU then Dropout(0.2)"]


def test_layers_contract_names_an_extra_operation():
    assert layer_problems(trace_random(graph_net("ExtraSigmoid"), 2, train=True), CONTRACT) == [
        "fc2 (Linear) is followed by ReLU then Dropout(0.2) then Sigmoid, expected ReLU then Dropout(0.2)"]


def test_layers_contract_names_wrong_sizes_and_a_wrong_count():
    contract = [Layer("linear", in_features=784, out_features=40, then=CONTRACT[0].then), *CONTRACT[1:]]
    assert layer_problems(trace_random(graph_net("MLP"), 2, train=True), contract) == [
        "fc1 (Linear) (weighted layer 1) has 784 -> 50, expected 784 -> 40"]
    assert layer_problems(trace_random(graph_net("MLP"), 2, train=True), CONTRACT[:2]) == [
        "expected 2 linear layers in this order (784 -> 50 -> 50 -> 50); your forward runs 3: fc1 (Linear) "
        "(784 -> 50), fc2 (Linear) (50 -> 50), fc3 (Linear) (50 -> 10)"]
    assert layer_problems(trace_random(graph_net("Stub"), 2), CONTRACT) == [
        f"forward raised {STUB_ERROR}"]


def test_layers_reused_modules_finds_one_relu_used_twice():
    net = graph_net("SharedReLU")
    assert reused_modules(net.modules_table) == [("2", "5", "ReLU")]
    assert reused_modules(net.modules_table, ("ReLU",)) == [("2", "5", "ReLU")]
    assert reused_modules(net.modules_table, ("Dropout",)) == []
    assert reused_modules(graph_net("MLP").modules_table) == []


def test_layers_reused_modules_reads_the_table_of_an_exported_sequential():
    table = graph_net("SharedReLU").modules_table
    assert [(row["path"], row["type"].rsplit(".", 1)[-1]) for row in table][:4] == [
        ("", "SharedReLU"), ("0", "Flatten"), ("1", "Linear"), ("2", "ReLU")]
    module = build("SharedReLU")
    assert isinstance(module[2], nn.ReLU) and module[2] is module[5]
