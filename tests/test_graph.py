"""mnistkit.graph: networks cross from the student's process to the grader as validated data, never as code."""
import json
import math

import pytest
import torch
from torch import nn

from mnistkit.graph import (
    ALLOWED_OPS,
    ExportSpec,
    GraphNet,
    NetworkFormatError,
    explain_export_error,
    export_network,
    foreign_state,
    load_network,
    network_from,
    reinitialise,
    save_network,
)
from small_nets import FILES, build, exported, graph_net, line_of


def _saved(tmp_path, name, edit=None, edit_tensors=None):
    """Save network ``name`` into ``tmp_path`` (after ``edit(description)`` / ``edit_tensors(tensors)``)."""
    description, tensors = exported(name)
    if edit:
        edit(description)
    if edit_tensors:
        edit_tensors(tensors)
    save_network(tmp_path, name, description, tensors)
    return tmp_path


def _refused(tmp_path, name, match, **edits):
    folder = _saved(tmp_path, name, **edits)
    with pytest.raises(NetworkFormatError, match=match):
        load_network(folder, name)


def _nodes(description, key="image/train"):
    return description["graphs"][key]["nodes"]


# ------------------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("name", ["MLP", "CNN"])
def test_graph_round_trip_gives_the_module_outputs_in_eval_and_train_mode(tmp_path, name):
    net = load_network(_saved(tmp_path, name), name)
    module = build(name)
    assert isinstance(net, GraphNet) and not net.errors and net.device_error is None
    assert sorted(net.graphs) == ["image/eval", "image/train"]
    assert [k for k, _ in net.named_state("parameter")] == [k for k, _ in module.named_parameters()]
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), module.eval()(x))
        torch.manual_seed(7)
        expected = module.train()(x)
        torch.manual_seed(7)
        got = net.train()(x)
    assert torch.equal(got, expected)
    if name == "MLP":
        torch.manual_seed(8)
        assert not torch.equal(net.train()(x), expected), "dropout draws new masks"


def test_graph_round_trip_updates_batchnorm_statistics_as_the_module(tmp_path):
    net = load_network(_saved(tmp_path, "CNN"), "CNN")
    module = build("CNN")
    x = torch.randn(8, 1, 28, 28) * 2 + 0.5
    with torch.no_grad():
        net.train()(x)
        module.train()(x)
    state = dict(net.named_state("buffer"))
    for name, buffer in module.named_buffers():
        assert torch.allclose(state[name], buffer, atol=1e-6), name
    assert int(state["bn.num_batches_tracked"]) == 1
    assert not torch.equal(state["bn.running_mean"], torch.zeros(4))


def test_graph_batch_size_is_dynamic(tmp_path):
    net = load_network(_saved(tmp_path, "CNN"), "CNN").eval()
    module = build("CNN").eval()
    for batch in (1, 257):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            out = net(x)
            assert out.shape == (batch, 10)
            assert torch.allclose(out, module(x), atol=1e-5)


def test_graph_parameters_train_and_weights_load_by_the_students_names():
    net = graph_net("MLP")
    assert [k for k, _ in net.trainable_parameters()] == [f"fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")]
    net(torch.randn(2, 1, 28, 28)).sum().backward()
    assert all(t.grad is not None for _, t in net.trainable_parameters())
    other = build("MLP", seed=1)
    net.load_weights(other.state_dict())
    assert torch.equal(net.state_tensor("fc2.weight"), other.fc2.weight)
    with pytest.raises(ValueError, match=r"missing \['fc3.bias'\]"):
        net.load_weights({k: v for k, v in other.state_dict().items() if k != "fc3.bias"})
    with pytest.raises(ValueError, match=r"fc1.weight has shape \(50, 10\)"):
        net.load_weights({**other.state_dict(), "fc1.weight": torch.zeros(50, 10)})


def test_graph_refuses_an_input_of_another_shape():
    net = graph_net("MLP")
    with pytest.raises(ValueError, match=r"exported for inputs of shape \(B, 1, 28, 28\), not \(2, 784\)"):
        net(torch.randn(2, 784))


# ------------------------------------------------------------------------------------------ the loader
def test_graph_loader_refuses_an_operator_not_on_the_allowlist(tmp_path):
    assert "from_file.default" not in ALLOWED_OPS

    def edit(description):
        _nodes(description)[1]["op"] = "aten.from_file.default"

    _refused(tmp_path, "MLP", r"operator '?(aten\.)?from_file\b", edit=edit)


def test_graph_loader_refuses_a_reference_to_a_later_node(tmp_path):
    def edit(description):
        nodes = _nodes(description)
        nodes[1]["args"][0] = {"node": nodes[3]["name"]}

    _refused(tmp_path, "MLP", r"a reference to 'dropout', which is not an earlier node", edit=edit)


def test_graph_loader_refuses_an_unknown_argument_tag(tmp_path):
    def edit(description):
        _nodes(description)[1]["args"].append({"pickle": "cos\nsystem\n"})

    _refused(tmp_path, "MLP", r"an argument \{'pickle': .* that is not of the schema", edit=edit)


def test_graph_loader_refuses_a_state_kind_that_does_not_match(tmp_path):
    def graph_input(description):
        description["graphs"]["image/eval"]["inputs"][0]["kind"] = "buffer"

    _refused(tmp_path, "MLP", r"graph 'image/eval': input p_fc1_weight refers to no buffer of the network",
             edit=graph_input)

    def state_entry(description):
        description["state"]["fc1.bias"]["kind"] = "code"

    _refused(tmp_path, "MLP", r"state 'fc1.bias': unknown kind", edit=state_entry)


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_graph_loader_refuses_missing_or_extra_tensors(tmp_path, change):
    def edit_tensors(tensors):
        if change == "missing":
            del tensors["fc2.weight"]
        else:
            tensors["images"] = torch.zeros(10, 784)

    _refused(tmp_path, "MLP", "the state listed in the description and the saved tensors differ",
             edit_tensors=edit_tensors)


def test_graph_loader_refuses_a_pickle_named_safetensors(tmp_path):
    folder = _saved(tmp_path, "MLP")
    _, tensors = exported("MLP")
    torch.save(tensors, folder / "MLP.safetensors")
    with pytest.raises(NetworkFormatError, match=r"MLP.safetensors cannot be read"):
        load_network(folder, "MLP")


def test_graph_loader_refuses_oversized_and_missing_files(tmp_path):
    folder = _saved(tmp_path, "MLP")
    with pytest.raises(NetworkFormatError, match=r"MLP.safetensors is larger than"):
        load_network(folder, "MLP", max_bytes=1000)
    (folder / "MLP.json").unlink()
    with pytest.raises(NetworkFormatError, match=r"MLP.json is missing"):
        load_network(folder, "MLP")


def test_graph_loader_refuses_descriptions_outside_the_schema(tmp_path):
    description, tensors = exported("MLP")
    with pytest.raises(NetworkFormatError, match="not of the schema mnistkit-network/1"):
        network_from({**description, "schema": "mnistkit-network/0"}, tensors)
    with pytest.raises(NetworkFormatError, match="unknown or missing keys"):
        network_from({**description, "code": "import os"}, tensors)
    (tmp_path / "MLP.json").write_text("{not json")
    save_network(tmp_path, "other", description, tensors)
    (tmp_path / "other.json").write_text("{not json")
    with pytest.raises(NetworkFormatError, match="other.json is not valid JSON"):
        load_network(tmp_path, "other")
    broken = json.loads(json.dumps(description))
    _nodes(broken)[0]["name"] = "import os"
    with pytest.raises(NetworkFormatError, match="is not a valid name"):
        network_from(broken, tensors)


# ------------------------------------------------------------------------------------------ devices
def _fixed(net):
    return sorted({f for graph in net.graphs.values() for f in graph.fixed_devices()})


def test_graph_device_correct_network_has_no_device_problem():
    net = graph_net("DeviceGood")
    assert net.device_error is None and _fixed(net) == []
    assert all(graph.device == "meta" for graph in net.graphs.values())


def test_graph_records_a_tensor_created_without_device():
    net = graph_net("ZerosNoDevice")
    assert "forward mixes devices" in net.device_error
    assert f"at {line_of('torch.zeros(2)  # no device=')} in forward" in net.device_error
    assert _fixed(net) == [f"zeros creates a tensor on 'cpu' at {line_of('torch.zeros(2)  # no device=')}"]


def test_graph_records_cuda_in_forward():
    net = graph_net("CudaInForward")
    assert _fixed(net) == [f"to creates a tensor on 'cuda' at {line_of('.cuda()  # in forward')}"]


def test_graph_records_a_tensor_attribute_that_to_does_not_move():
    net = graph_net("PlainAttribute")
    assert "the tensor attribute(s) ['shift'] stay on the CPU" in net.device_error
    assert "register_buffer" in net.device_error


def test_graph_casts_in_forward_export_and_load():
    net = graph_net("Casts")
    assert not net.errors and net.device_error is None and _fixed(net) == []
    module = build("Casts").eval()
    x = torch.randn(3, 4)
    assert torch.equal(net.eval()(x), module(x)) and net(x).dtype == torch.float64


# ------------------------------------------------------------------------------------------ export errors
@pytest.mark.parametrize("name, expected", [
    ("FixedBatch", "the batch size is fixed to 64 (at {line}): forward must work for any batch size"),
    ("Branch", "forward branches on the values of a tensor (a Python if/while on a tensor, .item() or "
               "bool(tensor)) (at {line}): write forward as ordinary tensor code"),
    ("Numpy", "forward calls .numpy() (at {line}): stay with torch tensors inside forward"),
    ("Stub", "not written yet (NotImplementedError: write Net.forward)"),
    ("Shrinks", "the picture shrinks to nothing before a layer can use it (at {line}) ("),
    ("WrongFlatten", "a linear layer gets 2304 features per image where it expects 576 (at {line}): the layers "
                     "before it leave a picture of another size than the shape table says (its size along the way: "
                     "conv1 24x24)"),
])
def test_graph_export_errors_are_explained_with_the_line_of_the_students_file(name, expected):
    markers = {"FixedBatch": "# hard-coded batch", "Branch": "# a branch on values", "Numpy": "# numpy",
               "Stub": "write Net.forward", "Shrinks": "# too small by now", "WrongFlatten": "# 2304 features"}
    description, _ = exported(name)
    assert description["graphs"] == {} and sorted(description["errors"]) == ["image/eval", "image/train"]
    message = expected.format(line=f"{line_of(markers[name])} in forward")
    assert description["errors"]["image/train"].startswith(message), description["errors"]["image/train"]
    net = network_from(*exported(name))
    from mnistkit.graph import GraphMissing

    with pytest.raises(GraphMissing, match=message.split(" (at")[0].replace("(", r"\(").replace(")", r"\)")):
        net(torch.randn(2, 1, 28, 28))


def test_graph_a_picture_that_shrinks_to_nothing_shows_its_sizes_and_names_the_stride():
    message = exported("Shrinks")[0]["errors"]["image/eval"]
    assert "its size along the way: conv1 7x7, conv2 2x2." in message
    assert "the fourth positional argument is the stride" in message


def test_graph_explain_export_error_names_the_students_line():
    def student_code():
        raise RuntimeError("Expected all tensors to be on the same device, but found cpu and meta")

    try:
        student_code()
    except RuntimeError as err:
        message = explain_export_error(err, ("test_graph.py",))
    assert message.startswith("forward mixes devices (at test_graph.py:")
    assert "in student_code)" in message and "device=x.device" in message


def test_graph_export_records_the_students_lines_and_modules():
    description, _ = exported("CNN")
    nodes = _nodes(description)
    conv = next(n for n in nodes if n["op"] == "aten.conv2d.default")
    assert conv["module"][-1] == ["conv1", "torch.nn.modules.conv.Conv2d"]
    assert conv["where"] == line_of("x = self.pool(F.relu(self.bn(self.conv1(x))))")
    table = {row["path"]: row for row in description["modules"]}
    assert table["bn"]["attrs"]["num_features"] == 4 and table["pool"]["attrs"]["kernel_size"] == 2


def test_graph_export_of_a_module_that_cannot_be_copied_is_recorded():
    class Uncopyable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def __deepcopy__(self, memo):
            raise TypeError("no copies")

        def forward(self, x):
            return self.fc(x)

    description, tensors = export_network(Uncopyable(), ExportSpec({"x": ((4,), "float32")}), files=FILES)
    assert "cannot be moved to another device" in description["device_error"]
    assert sorted(description["graphs"]) == ["x/eval", "x/train"]  # exported on the CPU instead
    assert all(g["device"] == "cpu" for g in description["graphs"].values())
    network_from(description, tensors)


# ------------------------------------------------------------------------------------------ foreign state
def test_graph_foreign_state_flags_a_buffer_used_by_a_matmul():
    assert foreign_state(graph_net("Table")) == [("table", "matmul(other=...)")]


def test_graph_foreign_state_accepts_layer_weights_and_a_tiny_constant():
    net = graph_net("Normalised")
    assert [k for k, v in net.state_kinds.items() if v == "constant"], "the normalisation is a constant"
    assert foreign_state(net) == []
    assert foreign_state(graph_net("CNN")) == [] and foreign_state(graph_net("MLP")) == []


# ------------------------------------------------------------------------------------------ reinitialise
def _scramble(net):
    with torch.no_grad():
        for _, tensor in [*net.named_state("parameter"), *net.named_state("buffer")]:
            if tensor.is_floating_point():
                tensor.fill_(5.0)
            else:
                tensor.fill_(7)


def test_graph_reinitialise_gives_fresh_layer_values():
    net = graph_net("Normalised")
    _scramble(net)
    reinitialise(net, 3)
    state = dict(net.named_state())
    for layer, fan_in in (("conv", 1 * 3 * 3), ("fc", 2 * 26 * 26)):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): gain sqrt(1/3), bound sqrt(3)*gain/sqrt(fan_in)
        weight, bias = state[f"{layer}.weight"], state[f"{layer}.bias"]
        assert weight.abs().max() <= bound and weight.abs().max() > 0.5 * bound, layer
        assert bias.abs().max() <= bound and weight.std() > 0.2 * bound, layer
    assert torch.equal(state["bn.weight"], torch.ones(2)) and torch.equal(state["bn.bias"], torch.zeros(2))
    assert torch.equal(state["bn.running_mean"], torch.zeros(2))
    assert torch.equal(state["bn.running_var"], torch.ones(2))
    assert int(state["bn.num_batches_tracked"]) == 0
    assert torch.allclose(state["lifted_tensor_0"], torch.tensor([0.1307, 0.3081])), "constants are kept"


def test_graph_reinitialise_is_deterministic_for_a_seed_and_equals_a_fresh_module():
    net = graph_net("Normalised")
    _scramble(net)
    reinitialise(net, 3)
    first = {k: t.clone() for k, t in net.named_state()}
    reinitialise(net, 3)
    assert all(torch.equal(first[k], t) for k, t in net.named_state())
    fresh = build("Normalised", seed=3)
    assert all(torch.equal(first[k], t) for k, t in fresh.state_dict().items()), "the draws of nn.Conv2d/nn.Linear"
    reinitialise(net, 4)
    assert not torch.equal(first["fc.weight"], net.state_tensor("fc.weight"))
