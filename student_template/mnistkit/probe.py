"""The probe: the one step that runs a student's code when a submission is graded.

    python -m mnistkit.probe PLAN_DIR OUT_DIR

A *plan* lists what to compute with the student's code, item by item; the probe computes it and writes
data, never code, into ``OUT_DIR``. The checks (the visible tests and the grader's hidden ones) then judge
that data in another process: when grading, the grader's own, which never imports the student's files.

Three kinds of item:

* :class:`Network`: build a network (``Net()``, ``build_mlp(2, 50, "relu")``) after ``torch.manual_seed``
  and export it with ``torch.export`` (:mod:`mnistkit.graph`), optionally with a weights file loaded into
  it (``mnist_agent.pt``).
* :class:`Function`: a function of tensors (``one_hot(labels, 10)``), exported as a graph the same way.
* :class:`Calls`: plain Python or numpy calls (``im2col(x, 3, 3, 1, 1)``, ``Convolution(W, b).forward(x)``)
  on arrays of the plan; each result is recorded as a value, an array or the exception raised.

An assignment's ``tests/plan.py`` makes its plan from a seed: the grader draws the seed per submission
(unknown before the zip is made), ``pytest`` on a student's machine uses seed 0. Every item has its own
time limit; what a killed or stopped probe did not finish is simply absent, and the checks say so.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import re
import signal
import sys
import threading
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PLAN_SCHEMA = "mnistkit-plan/1"
RESULT_SCHEMA = "mnistkit-result/1"
PLAN_FILE = "plan.json"
FINISHED = "finished"  # written by the probe after its last item: a probe without it ended early
PLAN_ARRAYS = "plan.safetensors"
MAX_TEXT = 2000
MAX_VALUE_DEPTH = 6
MAX_VALUE_ITEMS = 4096
ARRAY_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


# --------------------------------------------------------------------------------------------- the plan
@dataclass
class Network:
    """Build ``<module>.<build>(*args, **kwargs)`` after ``torch.manual_seed(seed)`` and export it.

    ``inputs`` maps a name to ``(shape of one example, dtype)``: the network is exported for each (the
    batch size stays free) and each mode of ``modes``. ``weights`` names a submitted file loaded with
    ``torch.load(..., weights_only=True)`` and ``load_state_dict`` into a second copy; ``rng_after`` records
    torch's random state right after the build (to continue a training run exactly as the student's did).
    """

    id: str
    build: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    seed: int = 0
    inputs: dict = field(default_factory=lambda: {"image": [[1, 28, 28], "float32"]})
    modes: list = field(default_factory=lambda: ["train", "eval"])
    weights: str | None = None
    rng_after: bool = False
    kind: str = "network"


@dataclass
class Function:
    """Export ``<module>.<call>(*args)`` as a graph; ``{"input": name}`` in ``args`` is a tensor input.

    ``inputs`` maps each input's name to ``(shape of one example, dtype)`` with the first dimension free,
    e.g. ``{"labels": [[], "int64"]}`` for labels of shape ``(N,)``. Exactly one input.
    """

    id: str
    call: str
    args: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    kind: str = "function"


@dataclass
class Calls:
    """Plain calls, one step after the other; every step's result is recorded under its ``as`` name.

    A step is ``{"call": target, "args": [...], "kwargs": {...}, "as": name}`` or ``{"get": target, "as": name}``,
    where ``target`` is an attribute of the student's module (``"im2col"``, ``"Convolution"``) or of an
    earlier result (``"layer.forward"``, ``"layer.dW"``); an argument ``{"array": key}`` is an array of the
    plan, ``{"ref": name}`` an earlier result. After a step raises, the item stops, unless the steps are
    ``independent`` (each only calls the student's module): then every step runs.
    """

    id: str
    steps: list
    independent: bool = False
    kind: str = "calls"


ITEM_KINDS = {"network": Network, "function": Function, "calls": Calls}


@dataclass
class Plan:
    """What the probe computes: the student's ``module``, the items, and the arrays the items refer to."""

    module: str
    items: list
    arrays: dict = field(default_factory=dict)  # key -> numpy array
    timeout: float = 60.0  # seconds per item
    seed: int = 0
    files: list = field(default_factory=list)  # the student's file names (for error locations)

    def item(self, item_id: str):
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(f"the plan has no item {item_id!r}")

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        raw = {"schema": PLAN_SCHEMA, "module": self.module, "timeout": self.timeout, "seed": self.seed,
               "files": list(self.files), "items": [asdict(item) for item in self.items]}
        (folder / PLAN_FILE).write_text(json.dumps(raw), encoding="utf-8")
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(folder / PLAN_ARRAYS))

    @classmethod
    def load(cls, folder: Path) -> "Plan":
        from safetensors.numpy import load_file

        raw = json.loads((folder / PLAN_FILE).read_text(encoding="utf-8"))
        if raw.get("schema") != PLAN_SCHEMA:
            raise ValueError(f"{folder / PLAN_FILE} is not a plan of schema {PLAN_SCHEMA}")
        items = []
        for entry in raw["items"]:
            entry = dict(entry)
            items.append(ITEM_KINDS[entry.pop("kind")](**entry))
        arrays = load_file(str(folder / PLAN_ARRAYS)) if (folder / PLAN_ARRAYS).is_file() else {}
        return cls(raw["module"], items, arrays, float(raw["timeout"]), int(raw["seed"]), list(raw["files"]))


PLAN_MODULE = "plan.py"
# The grader lays out several submissions at once, in threads of one process: a plan module is registered in
# sys.modules under one name per path, and may cache helper modules there (analysis: the kit's runs.py), so
# two plans must not be loaded at the same time.
_PLAN_LOCK = threading.Lock()


def load_plan(tests_dir: Path, *, seed: int, files: dict, timeout: float | None = None) -> Plan:
    """The plan of ``<tests_dir>/plan.py`` for ``seed``; ``files`` maps submitted names to their paths.

    ``tests/plan.py`` defines ``make_plan(seed, files) -> Plan``. ``timeout`` (the assignment's time per
    check) replaces the plan's own.
    """
    import importlib.util

    path = Path(tests_dir) / PLAN_MODULE
    name = f"_mnistkit_plan_{abs(hash(str(path)))}"
    with _PLAN_LOCK:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # registered first, as an import would: dataclasses in the plan look it up
        spec.loader.exec_module(module)
        plan = module.make_plan(seed, dict(files))
    if timeout is not None:
        plan.timeout = float(timeout)
    return plan


def seeded_rng(seed: int, *salt: object) -> np.random.Generator:
    """A numpy generator for one part of a plan: the plan's seed and a salt (e.g. the item's name)."""
    digest = hashlib.sha256(repr((seed, *salt)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


# ------------------------------------------------------------------------------------------ the executor
class ProbeTimeout(BaseException):
    """Raised inside student code when an item overruns its time limit."""


def _on_alarm(signum, frame):
    raise ProbeTimeout()


def not_written(message: str, origin: str = "") -> str:
    """A stub's ``NotImplementedError`` in words: the part (the stub's raise names it) and, when it was
    raised in the student's file (``origin`` ``"mlp.py:29"``), where that part's TODO comment is::

        not written yet (NotImplementedError: Net.__init__); see the TODO comment in mlp.py, above line 29
    """
    text = f"not written yet (NotImplementedError: {message})"
    file, _, line = origin.partition(":")
    if file and line.isdigit() and file != "library":
        text += f"; see the TODO comment in {file}, above line {line}"
    return text


def describe_error(what: str, err: BaseException, files) -> str:
    """``"<what>: not written yet (...)"`` or ``"<what> raised ValueError: ... (at mlp.py:12 in f)"``."""
    if isinstance(err, NotImplementedError):
        return f"{what}: {not_written(str(err), _origin(err, files))}"[:MAX_TEXT]
    if isinstance(err, ProbeTimeout):
        return f"{what} did not finish within the time limit (Timeout)"
    return f"{what} raised {type(err).__name__}: {err}{where(err, files)}"[:MAX_TEXT]


def where(err: BaseException, files) -> str:
    """`` (at file.py:LINE in func)`` for the innermost frame of ``err`` in a student's file, or ``''``."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if Path(frame.filename).name in files:
            return f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    return ""


def _origin(err: BaseException, files) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    name = Path(last.filename).name
    return f"{name}:{last.lineno}" if name in files else f"library:{name}"


class _Recorder:
    """Encodes results: tagged JSON for Python values, arrays kept aside for the tensor file."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.count = 0

    def encode(self, value, depth: int = 0):
        self.count += 1
        if self.count > MAX_VALUE_ITEMS or depth > MAX_VALUE_DEPTH:
            return {"object": "too large to record"}
        if value is None or isinstance(value, (bool, str)):
            return value if not isinstance(value, str) else value[:MAX_TEXT]
        if isinstance(value, int):
            return value if abs(value) < 2**62 else {"object": "int (too large)"}
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, tuple) or type(value).__name__ == "Size":
            return {"tuple": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return [self.encode(v, depth + 1) for v in value]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": [[k[:200], self.encode(v, depth + 1)] for k, v in value.items()]}
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        array = None
        if isinstance(value, np.ndarray):
            array = value
        elif kind == "torch.Tensor" or type(value).__name__ in ("Tensor", "Parameter"):
            try:
                array = value.detach().cpu().numpy()
            except Exception:  # noqa: BLE001 - a tensor on a device without data (meta)
                return {"object": kind, "device": str(getattr(value, "device", "?"))}
        if array is not None:
            if array.dtype.name not in ARRAY_DTYPES:
                return {"object": f"{kind} of dtype {array.dtype}"}
            key = f"a{len(self.arrays)}"
            self.arrays[key] = np.array(array, copy=True, order="C")  # a snapshot: later in-place edits do not leak in
            return {"array": key, "type": kind, "device": str(getattr(value, "device", "cpu"))}
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return {"scalar": value.item(), "type": kind} if not isinstance(value, np.floating) or math.isfinite(
                value) else {"float": repr(float(value)), "type": kind}
        return {"object": kind[:200]}


def _resolve(target: str, module, results: dict):
    head, *rest = target.split(".")
    value = results[head] if head in results else getattr(module, head)
    for part in rest:
        value = getattr(value, part)
    return value


def _arguments(raw, plan: Plan, results: dict):
    if isinstance(raw, list):
        return [_arguments(v, plan, results) for v in raw]
    if isinstance(raw, dict) and set(raw) == {"array"}:
        return np.array(plan.arrays[raw["array"]], copy=True)
    if isinstance(raw, dict) and set(raw) == {"ref"}:
        return results[raw["ref"]]
    if isinstance(raw, dict) and set(raw) == {"tuple"}:
        return tuple(_arguments(v, plan, results) for v in raw["tuple"])
    return raw


def _run_calls(item: Calls, module, plan: Plan, recorder: _Recorder) -> dict:
    results, record = {}, {}
    for step in item.steps:
        name = step["as"]
        target = step.get("call") or step.get("get")
        try:
            fn = _resolve(target, module, results)
            if "get" in step:
                value = fn
            else:
                value = fn(*_arguments(step.get("args", []), plan, results),
                           **{k: _arguments(v, plan, results) for k, v in step.get("kwargs", {}).items()})
        except ProbeTimeout:
            raise
        except BaseException as err:  # noqa: BLE001 - student code, SystemExit included
            record[name] = {"raised": type(err).__name__, "message": str(err)[:MAX_TEXT],
                            "origin": _origin(err, plan.files), "text": describe_error(target, err, plan.files)}
            if item.independent:
                continue
            break
        results[name] = value
        record[name] = {"value": recorder.encode(value)}
    return record


def _shown(item) -> str:
    args = [repr(a) for a in getattr(item, "args", [])] + [f"{k}={v!r}" for k, v in getattr(item, "kwargs", {}).items()]
    return f"{getattr(item, 'build', getattr(item, 'call', ''))}({', '.join(args)})"


def _run_network(item: Network, module, plan: Plan, tensors: dict) -> dict:
    import torch

    from .graph import ExportSpec, export_network

    what = _shown(item)
    try:
        torch.manual_seed(item.seed)
        net = getattr(module, item.build)(*item.args, **item.kwargs)
        rng = torch.get_rng_state().clone() if item.rng_after else None
    except ProbeTimeout:
        raise
    except BaseException as err:  # noqa: BLE001 - student code
        return {"error": describe_error(what, err, plan.files)}
    if not isinstance(net, torch.nn.Module):
        return {"error": f"{what} returned {type(net).__name__}, not a torch.nn.Module"}
    spec = ExportSpec({k: (tuple(v[0]), v[1]) for k, v in item.inputs.items()}, tuple(item.modes))
    description, state = export_network(net, spec, files=tuple(plan.files))
    tensors.update({f"state/{k}": v for k, v in state.items()})
    record = {"network": description}
    if rng is not None:
        tensors["rng_after"] = rng
    if item.weights:
        record["weights"] = _load_weights(item.weights, net, tensors, plan)
    return record


def _load_weights(name: str, net, tensors: dict, plan: Plan) -> dict:
    import torch

    path = Path(name)
    if not path.is_file():
        return {"error": f"{name} not found"}
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except ProbeTimeout:
        raise
    except BaseException as err:  # noqa: BLE001
        return {"error": f"{name} could not be read as saved weights ({type(err).__name__}: {str(err)[:300]})"}
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return {"error": f"{name} does not hold a state_dict (a dict of tensors): save it with "
                         "torch.save(model.state_dict(), ...)"}
    try:
        net.load_state_dict(weights)
    except ProbeTimeout:
        raise
    except BaseException as err:  # noqa: BLE001
        return {"error": describe_error(f"Net().load_state_dict(torch.load({name!r}))", err, plan.files)}
    for key, value in net.state_dict().items():
        tensors[f"weights/{key}"] = value.detach().cpu().clone().contiguous()
    return {"loaded": True}


def _run_function(item: Function, module, plan: Plan, tensors: dict) -> dict:
    import torch

    from .graph import ExportSpec, export_network

    if len(item.inputs) != 1:
        return {"error": "a function item takes exactly one tensor input"}
    (input_name, _), = item.inputs.items()
    fn = getattr(module, item.call, None)
    if fn is None:
        return {"error": f"{plan.module}.py has no {item.call} (do not rename the parts of the stub)"}
    args = item.args

    class Wrapped(torch.nn.Module):
        def forward(self, x):
            return fn(*[x if a == {"input": input_name} else a for a in args])

    spec = ExportSpec({input_name: (tuple(item.inputs[input_name][0]), item.inputs[input_name][1])}, ("eval",))
    description, state = export_network(Wrapped(), spec, files=tuple(plan.files))
    tensors.update({f"state/{k}": v for k, v in state.items()})
    return {"network": description}


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def item_folder(out_dir: Path, index: int) -> Path:
    return out_dir / f"item{index:03d}"


def run_plan(plan: Plan, out_dir: Path, *, timeouts: bool = True, log=None) -> None:
    """Compute every item of ``plan`` with the student's module (importable from the working folder).

    Each item's record goes to ``OUT_DIR/itemNNN/result.json`` (and its tensors beside it) as soon as the
    item is done, so a probe that is killed keeps what it finished. With ``timeouts`` every item (and the
    import) is stopped after ``plan.timeout`` seconds; without, whoever runs the plan limits the time
    (pytest-timeout on a student's machine).
    """
    import torch
    from safetensors.numpy import save_file as save_arrays
    from safetensors.torch import save_file as save_tensors

    out_dir.mkdir(parents=True, exist_ok=True)
    def arm(seconds: float) -> None:
        if timeouts:
            signal.setitimer(signal.ITIMER_REAL, seconds)

    previous = signal.signal(signal.SIGALRM, _on_alarm) if timeouts else None
    sys.modules.pop(plan.module, None)
    module, import_error = None, None
    try:
        arm(plan.timeout)
        module = importlib.import_module(plan.module)
    except ModuleNotFoundError as err:
        import_error = (f"{plan.module}.py was not found: the file must be named exactly {plan.module}.py"
                        if err.name == plan.module else f"importing {plan.module}.py failed: {err}")
    except SyntaxError as err:
        import_error = f"{plan.module}.py has a syntax error at line {err.lineno}: {err.msg}"
    except BaseException as err:  # noqa: BLE001 - anything at import, SystemExit and timeouts too
        import_error = describe_error(f"importing {plan.module}.py", err, plan.files)
    finally:
        arm(0)
    try:
        for index, item in enumerate(plan.items):
            folder = item_folder(out_dir, index)
            folder.mkdir(exist_ok=True)
            tensors: dict = {}
            recorder = _Recorder()
            if module is None:
                record = {"error": import_error}
            else:
                try:
                    arm(plan.timeout)
                    if isinstance(item, Network):
                        record = _run_network(item, module, plan, tensors)
                    elif isinstance(item, Function):
                        record = _run_function(item, module, plan, tensors)
                    else:
                        record = {"steps": _run_calls(item, module, plan, recorder)}
                except ProbeTimeout:
                    record = {"error": f"{item.id}: stopped after the {plan.timeout:g} s time limit per check (Timeout)"}
                except BaseException as err:  # noqa: BLE001 - student code that escaped the item's own handling
                    record = {"error": describe_error(item.id, err, plan.files)}
                finally:
                    arm(0)
                torch.set_grad_enabled(True)
            if tensors:
                save_tensors({k: v.contiguous() for k, v in tensors.items()}, str(folder / "tensors.safetensors"))
            if recorder.arrays:
                save_arrays(recorder.arrays, str(folder / "arrays.safetensors"))
            record = {"schema": RESULT_SCHEMA, "id": item.id, **record}
            _write_atomic(folder / "result.json", json.dumps(record).encode())
            if log:
                log(item.id, record)
        _write_atomic(out_dir / FINISHED, b"")
    finally:
        if timeouts:
            signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistkit.probe", description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path, help="folder holding plan.json and plan.safetensors")
    parser.add_argument("out", type=Path, help="folder for the results (created)")
    args = parser.parse_args(argv)
    threads = os.environ.get("MNISTKIT_THREADS")
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    sys.path.insert(0, os.getcwd())
    plan = Plan.load(args.plan)
    run_plan(plan, args.out)
    return 0


# ------------------------------------------------------------------------------------------- reading back
class ResultError(ValueError):
    """A result the probe should have written and did not, or wrote outside the schema."""


class Unrepresentable:
    """A value the probe could not record as data (an arbitrary object): only its type is known."""

    def __init__(self, kind: str, device: str | None = None):
        self.kind, self.device = kind, device

    def __repr__(self) -> str:
        return f"<{self.kind}>"


@dataclass
class ArrayValue:
    """An array the student's code returned, with the type it came as (``numpy.ndarray``, ``torch.Tensor``)."""

    array: np.ndarray
    type: str
    device: str


def decode_value(raw, arrays: dict, depth: int = 0):
    if depth > MAX_VALUE_DEPTH + 1:
        raise ResultError("a value nested too deeply")
    if raw is None or isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, list):
        return [decode_value(v, arrays, depth + 1) for v in raw]
    if isinstance(raw, dict):
        if set(raw) == {"tuple"} and isinstance(raw["tuple"], list):
            return tuple(decode_value(v, arrays, depth + 1) for v in raw["tuple"])
        if set(raw) == {"dict"} and isinstance(raw["dict"], list):
            return {str(k): decode_value(v, arrays, depth + 1) for k, v in raw["dict"]}
        if set(raw) == {"float"} and raw["float"] in ("inf", "-inf", "nan"):
            return float(raw["float"])
        if set(raw) <= {"float", "type"} and raw.get("float") in ("inf", "-inf", "nan"):
            return float(raw["float"])
        if set(raw) == {"scalar", "type"} and isinstance(raw["scalar"], (bool, int, float)):
            return raw["scalar"]
        if set(raw) == {"array", "type", "device"} and raw["array"] in arrays:
            return ArrayValue(arrays[raw["array"]], str(raw["type"])[:200], str(raw["device"])[:40])
        if set(raw) <= {"object", "device"} and isinstance(raw.get("object"), str):
            return Unrepresentable(raw["object"][:200], raw.get("device"))
    raise ResultError(f"a recorded value {str(raw)[:80]!r} is not of the schema")


def _safe_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value)


class Results:
    """What the probe wrote for a plan, read back and validated item by item (:meth:`record`)."""

    def __init__(self, plan: Plan, folder: Path, *, max_item_bytes: int = 512 * 2**20):
        self.plan = plan
        self.folder = Path(folder)
        self.max_item_bytes = max_item_bytes
        self._cache: dict = {}
        self.ended = ""  # how the probe ended, when it did not finish (set by whoever ran it)

    def _index(self, item_id: str) -> int:
        for index, item in enumerate(self.plan.items):
            if item.id == item_id:
                return index
        raise KeyError(f"the plan has no item {item_id!r}")

    def record(self, item_id: str) -> tuple[dict, dict, dict]:
        """``(record, tensors, arrays)`` of one item; ResultError if missing or malformed."""
        if item_id in self._cache:
            return self._cache[item_id]
        from safetensors import SafetensorError
        from safetensors.numpy import load_file as load_arrays
        from safetensors.torch import load_file as load_tensors

        folder = item_folder(self.folder, self._index(item_id))
        path = folder / "result.json"
        if not path.is_file():
            ended = f": {self.ended}" if self.ended else ""
            raise ResultError(f"{item_id} was not computed (the probe did not get that far{ended})")
        sizes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        if sizes > self.max_item_bytes:
            raise ResultError(f"{item_id}: the results are larger than {self.max_item_bytes / 2**20:.0f} MB")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            tensors = load_tensors(str(folder / "tensors.safetensors")) if (folder / "tensors.safetensors").is_file() else {}
            arrays = load_arrays(str(folder / "arrays.safetensors")) if (folder / "arrays.safetensors").is_file() else {}
        except (ValueError, UnicodeDecodeError, SafetensorError, OSError) as err:
            raise ResultError(f"{item_id}: the results cannot be read ({err})") from err
        if not isinstance(record, dict) or record.get("schema") != RESULT_SCHEMA or record.get("id") != item_id:
            raise ResultError(f"{item_id}: the results are not of the schema")
        for key, array in arrays.items():
            if array.dtype.name not in ARRAY_DTYPES:
                raise ResultError(f"{item_id}: an array of dtype {array.dtype}")
        self._cache[item_id] = (record, tensors, arrays)
        return self._cache[item_id]

    def error(self, item_id: str) -> str | None:
        record, _, _ = self.record(item_id)
        error = record.get("error")
        if error is not None and not isinstance(error, str):
            raise ResultError(f"{item_id}: the error is not text")
        return error[:MAX_TEXT] if error else None

    def network(self, item_id: str):
        """The :class:`~mnistkit.graph.GraphNet` of a Network or Function item (ResultError/ NetworkError)."""
        from .graph import network_from

        error = self.error(item_id)
        if error:
            raise ProbeFailed(error)
        record, tensors, _ = self.record(item_id)
        state = {k.removeprefix("state/"): v for k, v in tensors.items() if k.startswith("state/")}
        return network_from(record.get("network"), state)

    def weights(self, item_id: str) -> dict:
        """The weights file loaded into a Network item, by the student's names; ProbeFailed with why not."""
        record, tensors, _ = self.record(item_id)
        info = record.get("weights")
        if not isinstance(info, dict):
            raise ResultError(f"{item_id}: no weights were loaded")
        if info.get("error"):
            raise ProbeFailed(str(info["error"])[:MAX_TEXT])
        return {k.removeprefix("weights/"): v for k, v in tensors.items() if k.startswith("weights/")}

    def rng_after(self, item_id: str):
        _, tensors, _ = self.record(item_id)
        if "rng_after" not in tensors:
            raise ResultError(f"{item_id}: no random state was recorded")
        return tensors["rng_after"]

    def steps(self, item_id: str) -> "Steps":
        error = self.error(item_id)
        if error:
            raise ProbeFailed(error)
        record, _, arrays = self.record(item_id)
        steps = record.get("steps")
        if not isinstance(steps, dict):
            raise ResultError(f"{item_id}: the results hold no steps")
        return Steps(self.plan.item(item_id), steps, arrays)


class ProbeFailed(RuntimeError):
    """The student's code failed where the probe ran it; the message (from the probe) says how."""


@dataclass
class Raised:
    """A step that raised: the exception's type name, its message, where it came from."""

    type: str
    message: str
    origin: str  # "im2col.py:LINE" for the student's file, "library:<file>" otherwise
    text: str  # the whole failure in words, for a test message


class Steps:
    """The recorded steps of a Calls item: :meth:`get` returns a value or a :class:`Raised`."""

    def __init__(self, item: Calls, raw: dict, arrays: dict):
        self.item = item
        self.raw = raw
        self.arrays = arrays

    def get(self, name: str):
        if name not in self.raw:
            before = [s["as"] for s in self.item.steps]
            earlier = before[: before.index(name)] if name in before else before
            failed = next((n for n in earlier if isinstance(self.raw.get(n), dict) and "raised" in self.raw[n]), None)
            if failed:
                return self.get(failed)
            raise ResultError(f"{self.item.id}: step {name} was not recorded")
        entry = self.raw[name]
        if not isinstance(entry, dict):
            raise ResultError(f"{self.item.id}: step {name} is not of the schema")
        if "raised" in entry:
            return Raised(str(entry.get("raised"))[:100], str(entry.get("message"))[:MAX_TEXT],
                          str(entry.get("origin"))[:300], str(entry.get("text"))[:MAX_TEXT])
        if "value" not in entry:
            raise ResultError(f"{self.item.id}: step {name} is not of the schema")
        return decode_value(entry["value"], self.arrays)


if __name__ == "__main__":
    sys.exit(main())
