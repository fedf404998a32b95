"""LSTM/GRU/RNN with runtime (graph input) W, R, B, P and sequence_lens vs ONNX Runtime.

FULLY_CONNECTED takes the runtime weights; per-direction and per-gate parts are SLICEd and
runtime sequence lengths become per-step LESS masks (check_model: XNNPACK and builtin kernels).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnx2litert
from tests.helpers import check_model, random_inputs
from tests.test_ops_rnn import rnn_model


def as_inputs(model: onnx.ModelProto, names: set[str]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Move the initializers ``names`` to graph inputs; return the model and their values as feeds."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    values = {}
    keep = []
    for init in model.graph.initializer:
        if init.name in names:
            arr = numpy_helper.to_array(init)
            values[init.name] = arr
            model.graph.input.append(helper.make_tensor_value_info(
                init.name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
        else:
            keep.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model, values


def check_runtime(model: onnx.ModelProto, names: set[str]) -> onnx2litert.ConversionResult:
    model, values = as_inputs(model, names)
    feeds = random_inputs(model)
    feeds.update(values)
    return check_model(model, feeds)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_runtime_weights(op, direction):
    result = check_runtime(rnn_model(op, direction=direction, init_h=True), {"W", "R", "B"})
    assert "SLICE" in result.op_counts or direction != "bidirectional"


@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("init", [False, True])
def test_runtime_weights_gru_linear_before_reset(lbr, init):
    check_runtime(rnn_model("GRU", direction="bidirectional", init_h=init, linear_before_reset=lbr),
                  {"W", "R", "B"})


@pytest.mark.parametrize("names", [{"W"}, {"R"}, {"B"}, {"P"}, {"W", "R", "B", "P"}], ids=sorted)
def test_runtime_weights_lstm_peepholes(names):
    check_runtime(rnn_model("LSTM", direction="bidirectional", peephole=True, init_h=True, init_c=True), names)


@pytest.mark.parametrize("opset", [7, 14, 21])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_runtime_weights_no_bias_opsets(op, opset):
    check_runtime(rnn_model(op, bias=False, opset=opset), {"W", "R"})


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_runtime_sequence_lens(op, direction):
    """Per-step LESS masks: rows past their length keep their state and output zeros."""
    check_runtime(rnn_model(op, direction=direction, seq=4, seq_lens=[4, 2], init_h=True),
                  {"sequence_lens"})


def test_runtime_sequence_lens_and_weights_zero_state():
    check_runtime(rnn_model("LSTM", direction="bidirectional", seq=3, seq_lens=[1, 3], peephole=True),
                  {"sequence_lens", "W", "R", "B", "P"})
