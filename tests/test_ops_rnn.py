"""LSTM, GRU and RNN: unrolled lowering checked against ONNX Runtime (float32)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from tests.helpers import check_model, expect_failure, make_model, random_inputs

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
BATCH, INPUT, HIDDEN = 2, 3, 4


def rnn_model(op: str, *, seq: int = 3, direction: str = "forward", layout: int = 0, bias: bool = True,
              init_h: bool = False, init_c: bool = False, peephole: bool = False, seq_lens: list | None = None,
              outputs: tuple[bool, ...] = (True, True, True), opset: int = 17, seed: int = 0,
              weights_as_inputs: bool = False, seq_lens_as_input: bool = False,
              **attrs: object) -> onnx.ModelProto:
    """A one-node recurrent model; W/R/B/P/sequence_lens are initializers, X/initial states inputs."""
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    inits: dict[str, np.ndarray] = {}
    graph_inputs = []
    x_shape = [seq, BATCH, INPUT] if layout == 0 else [BATCH, seq, INPUT]
    state_shape = [nd, BATCH, HIDDEN] if layout == 0 else [BATCH, nd, HIDDEN]
    graph_inputs.append(("X", np.float32, x_shape))
    w = (rng.standard_normal((nd, g * HIDDEN, INPUT)) * 0.5).astype(np.float32)
    r = (rng.standard_normal((nd, g * HIDDEN, HIDDEN)) * 0.5).astype(np.float32)
    if weights_as_inputs:
        graph_inputs.append(("W", np.float32, list(w.shape)))
    else:
        inits["W"] = w
    inits["R"] = r
    names = ["X", "W", "R"]
    optional: list[str] = []
    if bias:
        inits["B"] = (rng.standard_normal((nd, 2 * g * HIDDEN)) * 0.5).astype(np.float32)
    optional.append("B" if bias else "")
    if seq_lens is not None:
        if seq_lens_as_input:
            graph_inputs.append(("sequence_lens", np.int32, [BATCH]))
        else:
            inits["sequence_lens"] = np.array(seq_lens, np.int32)
    optional.append("sequence_lens" if seq_lens is not None else "")
    if init_h:
        graph_inputs.append(("initial_h", np.float32, state_shape))
    optional.append("initial_h" if init_h else "")
    if op == "LSTM":
        if init_c:
            graph_inputs.append(("initial_c", np.float32, state_shape))
        optional.append("initial_c" if init_c else "")
        if peephole:
            inits["P"] = (rng.standard_normal((nd, 3 * HIDDEN)) * 0.5).astype(np.float32)
        optional.append("P" if peephole else "")
    while optional and not optional[-1]:
        optional.pop()
    names += optional
    out_names = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    node_outs = [n if want else "" for n, want in zip(out_names, outputs)]
    while node_outs and not node_outs[-1]:
        node_outs.pop()
    if opset >= 14:
        attrs["layout"] = layout
    node = helper.make_node(op, names, node_outs, hidden_size=HIDDEN, direction=direction, **attrs)
    y_shape = [seq, nd, BATCH, HIDDEN] if layout == 0 else [BATCH, seq, nd, HIDDEN]
    shapes = {"Y": y_shape, "Y_h": state_shape, "Y_c": state_shape}
    graph_outputs = [(n, np.float32, shapes[n]) for n in node_outs if n]
    return make_model([node], graph_inputs, graph_outputs, inits, opset)


DIRECTIONS = ("forward", "reverse", "bidirectional")
# Batch-first (layout = 1) tensors -> the sequence-first (layout = 0) ones ONNX Runtime computes.
TO_LAYOUT0 = {"X": (1, 0, 2), "initial_h": (1, 0, 2), "initial_c": (1, 0, 2)}
FROM_LAYOUT0 = {"Y": (2, 0, 1, 3), "Y_h": (1, 0, 2), "Y_c": (1, 0, 2)}


def check_rnn(op: str, *, layout: int = 0, tol: float = 1e-5, **kw: object) -> onnx2litert.ConversionResult:
    """check_model for layout 0; for layout 1 (which ONNX Runtime's CPU kernels reject) compare
    with the same node at layout 0 on transposed inputs/outputs, under check_model's bound."""
    model = rnn_model(op, layout=layout, **kw)
    if layout == 0:
        return check_model(model)
    onnx.checker.check_model(model)
    feeds = random_inputs(model)
    ref_model = rnn_model(op, layout=0, **kw)
    ref = run_onnx(ref_model.SerializeToString(),
                   {k: np.ascontiguousarray(v.transpose(TO_LAYOUT0[k])) if k in TO_LAYOUT0 else v
                    for k, v in feeds.items()})
    ref = {k: v.transpose(FROM_LAYOUT0[k]) for k, v in ref.items()}
    result = onnx2litert.convert(model)
    for use_default_delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=use_default_delegates)
        assert set(got) == set(ref)
        for name, expected in ref.items():
            assert got[name].shape == expected.shape, name
            bound = tol * max(1.0, float(np.abs(expected).max()))
            err = float(np.abs(got[name].astype(np.float64) - expected).max())
            assert err <= bound, f"{name}: max abs error {err:.3g} > {bound:.3g}"
    return result


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("bias,init", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("seq", [1, 4])
def test_directions_layouts(op, direction, layout, bias, init, seq):
    check_rnn(op, seq=seq, direction=direction, layout=layout, bias=bias, init_h=init, init_c=init)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("init", [False, True])
def test_gru_linear_before_reset(direction, lbr, init):
    check_model(rnn_model("GRU", direction=direction, linear_before_reset=lbr, init_h=init))


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("init", [False, True])
def test_lstm_peepholes(direction, init):
    check_model(rnn_model("LSTM", direction=direction, peephole=True, init_h=init, init_c=init))


@pytest.mark.parametrize("peephole", [False, True])
def test_lstm_input_forget(peephole):
    check_model(rnn_model("LSTM", direction="bidirectional", peephole=peephole, init_h=True, init_c=True,
                          input_forget=1))


@pytest.mark.parametrize("op,extra", [("LSTM", {}), ("LSTM", {"peephole": True}), ("GRU", {}),
                                      ("GRU", {"linear_before_reset": 1}), ("RNN", {})])
def test_clip(op, extra):
    # Weights scaled up so that clip 0.7 really cuts many gate inputs.
    check_model(rnn_model(op, direction="bidirectional", init_h=True, init_c=True, clip=0.7, **extra))


@pytest.mark.parametrize("op,acts,attrs", [
    ("LSTM", ["HardSigmoid", "LeakyRelu", "Relu"], {}),
    ("LSTM", ["HardSigmoid", "Softsign", "Tanh"], {"activation_alpha": [0.3], "activation_beta": [0.4]}),
    ("LSTM", ["Sigmoid", "Elu", "ScaledTanh"] * 2,
     {"activation_alpha": [0.5, 1.2, 0.5, 1.2], "activation_beta": [0.8, 0.8]}),
    ("GRU", ["Sigmoid", "Softsign"], {}),
    ("GRU", ["HardSigmoid", "Affine"], {"activation_alpha": [0.25, 0.6], "activation_beta": [0.5, 0.1]}),
    ("GRU", ["Sigmoid", "Relu", "Sigmoid", "Elu"], {}),
    ("RNN", ["Relu"], {}),
    ("RNN", ["Softplus"], {}),
    ("RNN", ["ThresholdedRelu"], {"activation_alpha": [0.2]}),
    ("RNN", ["LeakyRelu", "Sigmoid"], {"activation_alpha": [0.2]}),
    ("RNN", ["Elu"], {"activation_alpha": [0.5]}),
])
def test_activations(op, acts, attrs):
    direction = "bidirectional" if len(acts) == 2 * len({"LSTM": "fgh", "GRU": "fg", "RNN": "f"}[op]) \
        else "forward"
    check_model(rnn_model(op, direction=direction, init_h=True, activations=acts, **attrs))


@pytest.mark.parametrize("op,outputs", [
    ("LSTM", (False, True, False)), ("LSTM", (False, False, True)), ("LSTM", (True, False, True)),
    ("LSTM", (True, False, False)), ("GRU", (False, True)), ("GRU", (True, False)), ("RNN", (False, True)),
])
@pytest.mark.parametrize("layout", [0, 1])
def test_output_subsets(op, outputs, layout):
    check_rnn(op, direction="bidirectional", layout=layout, init_h=True, init_c=True, outputs=outputs)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("lens", [[2, 4], [4, 1], [4, 4]])
@pytest.mark.parametrize("init", [False, True])
def test_sequence_lens(op, direction, lens, init):
    check_model(rnn_model(op, seq=4, direction=direction, seq_lens=lens, init_h=init, init_c=init,
                          peephole=op == "LSTM"))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_sequence_lens_batch_first(op):
    check_rnn(op, seq=4, layout=1, opset=14, direction="bidirectional", seq_lens=[3, 1], init_h=True,
              init_c=True)


def test_zero_constant_states_with_sequence_lens():
    # All-zero constant states take the "no initial state" path, masks then select against zeros.
    model = rnn_model("LSTM", seq=3, direction="bidirectional", seq_lens=[1, 3], peephole=True)
    zeros = np.zeros((2, BATCH, HIDDEN), np.float32)
    for name in ("initial_h", "initial_c"):
        model.graph.initializer.append(onnx.numpy_helper.from_array(zeros, name))
    model.graph.node[0].input[5:7] = ["initial_h", "initial_c"]
    check_model(model)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("opset", [7, 13, 14, 21])
def test_opsets(op, opset):
    check_rnn(op, direction="bidirectional", layout=1 if opset >= 14 else 0, init_h=True, init_c=True,
              opset=opset)




def test_constant_initial_state():
    model = rnn_model("GRU", direction="bidirectional")
    h0 = np.random.default_rng(3).standard_normal((2, BATCH, HIDDEN)).astype(np.float32)
    model.graph.initializer.append(onnx.numpy_helper.from_array(h0, "initial_h"))
    model.graph.node[0].input.extend(["", "initial_h"])
    check_model(model)


def test_longer_sequence_op_count():
    result = check_model(rnn_model("LSTM", seq=8, direction="bidirectional", init_h=True, init_c=True))
    assert result.op_counts["FULLY_CONNECTED"] == 2 * 8 + 2


# -- unsupported cases ---------------------------------------------------------------------------

# Runtime W/R/B/P and sequence_lens: tests/test_ops_rnn2.py.


def test_zero_sequence_length():
    expect_failure(rnn_model("RNN", seq_lens=[0, 3]), "unsupported_attribute_value")


@pytest.mark.parametrize("acts,attrs", [
    (["ScaledTanh"], {}),  # runtimes disagree on the default alpha/beta
    (["LeakyRelu", "Elu"], {"activation_alpha": [0.1]}),  # which activation gets 0.1 is ambiguous
])
def test_ambiguous_activation_parameters(acts, attrs):
    direction = "bidirectional" if len(acts) == 2 else "forward"
    expect_failure(rnn_model("RNN", direction=direction, activations=acts, **attrs), "unsupported_attribute_value")


def test_single_direction_list_for_bidirectional():
    # ONNX needs 6 activations for a bidirectional LSTM (ONNX Runtime refuses 3 as well).
    expect_failure(rnn_model("LSTM", direction="bidirectional", activations=["Sigmoid", "Relu", "Tanh"]),
                   "invalid_model")


def test_dynamic_sequence_length():
    # Batch-first X with a symbolic sequence axis: the sequence cannot be unrolled.
    model = rnn_model("RNN", layout=1, opset=14)
    dim = model.graph.input[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_value")
    dim.dim_param = "seq"
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "seq"
    expect_failure(model, "dynamic_shape_unsupported", dynamic_shapes=False)
    # By default the unrolled sequence is fixed at its representative length, and the user is told.
    result = onnx2litert.convert(model)
    assert result.reports["dynamic_shapes"]["dynamic"] is False
    assert any("'seq'" in w and "static sizes" in w for w in result.warnings)


def test_float64_rejected():
    x = helper.make_tensor_value_info("X", TensorProto.DOUBLE, [2, 1, 3])
    y = helper.make_tensor_value_info("Y_h", TensorProto.DOUBLE, [1, 1, 2])
    w = onnx.numpy_helper.from_array(np.ones((1, 2, 3)), "W")
    r = onnx.numpy_helper.from_array(np.ones((1, 2, 2)), "R")
    node = helper.make_node("RNN", ["X", "W", "R"], ["", "Y_h"], hidden_size=2)
    graph = helper.make_graph([node], "g", [x], [y], [w, r])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    expect_failure(model, "unsupported_dtype")
