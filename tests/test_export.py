"""Export: deterministic bytes, buffer layout, signature, metadata, opcode table, op versions."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from ai_edge_litert.interpreter import Interpreter
from onnx import helper

import onnx2litert
from onnx2litert.evaluate.runtime import LAYOUT_METADATA, read_layout
from onnx2litert.export import export_model
from onnx2litert.export.schema import S
from onnx2litert.export.versions import operator_version
from onnx2litert.ir import Model, Operator, Quantization, Subgraph, Tensor
from tests.helpers import check_model, make_model

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
W = RNG.standard_normal((1, 3, 4, 4)).astype(np.float32)


def _model() -> onnx.ModelProto:
    """Two inputs, two outputs, two initializers with equal bytes, a MatMul weight."""
    mm = RNG.standard_normal((4, 4)).astype(np.float32)
    nodes = [helper.make_node("Add", ["x", "w1"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Add", ["r", "w2"], ["out:0"]), helper.make_node("MatMul", ["r", "mm"], ["m"]),
             helper.make_node("Mul", ["m", "input.z"], ["out/1"])]
    return make_model(nodes, [("x", np.float32, [1, 3, 4, 4]), ("input.z", np.float32, [1, 3, 4, 4])],
                      [("out:0", np.float32, [1, 3, 4, 4]), ("out/1", np.float32, [1, 3, 4, 4])],
                      {"w1": W, "w2": W.copy(), "mm": mm})


MODEL = _model()


@pytest.fixture(scope="module")
def result() -> onnx2litert.ConversionResult:
    return check_model(MODEL)


def _root(data: bytes) -> S.Model:
    return S.Model.GetRootAs(data, 0)


def _buffer_data_offset(buf: S.Buffer) -> int | None:
    o = buf._tab.Offset(4)  # field 0 of Buffer: data
    return None if o == 0 else buf._tab.Vector(o)


# --- determinism ------------------------------------------------------------------------------

def test_same_bytes_twice(result: onnx2litert.ConversionResult) -> None:
    again = onnx2litert.convert(MODEL)
    assert again.artifacts == result.artifacts
    assert onnx2litert.convert(MODEL.SerializeToString()).artifacts == result.artifacts


_SCRIPT = """
import hashlib, sys
import onnx, onnx2litert
r = onnx2litert.convert(onnx.load(sys.argv[1]))
print(" ".join(hashlib.sha256(r.artifacts[k]).hexdigest() for k in sorted(r.artifacts)))
"""


def test_same_bytes_across_processes(tmp_path: Path, result: onnx2litert.ConversionResult) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(MODEL, str(path))
    digests = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", _SCRIPT, str(path)], env=env, capture_output=True,
                             text=True, check=True, cwd=str(tmp_path))
        digests.append(out.stdout.strip())
    here = " ".join(hashlib.sha256(result.artifacts[k]).hexdigest() for k in sorted(result.artifacts))
    assert digests[0] == digests[1] == here


# --- buffers ------------------------------------------------------------------------------------

def test_buffers(result: onnx2litert.ConversionResult) -> None:
    data = result.artifacts["float32"]
    m = _root(data)
    assert data[4:8] == b"TFL3"
    assert m.Version() == 3
    assert m.Buffers(0).DataLength() == 0
    payloads = [m.Buffers(i).DataAsNumpy().tobytes() for i in range(m.BuffersLength())
                if m.Buffers(i).DataLength()]
    assert payloads.count(W.tobytes()) == 1  # w1 and w2 hold equal bytes: stored once
    assert len(payloads) == len(set(payloads))
    for i in range(m.BuffersLength()):
        off = _buffer_data_offset(m.Buffers(i))
        if off is not None and m.Buffers(i).DataLength():
            assert off % 16 == 0, f"buffer {i} data at offset {off}"
    sg = m.Subgraphs(0)
    for t in range(sg.TensorsLength()):
        tensor = sg.Tensors(t)
        assert 0 <= tensor.Buffer() < m.BuffersLength()


def test_signature_uses_onnx_names(result: onnx2litert.ConversionResult) -> None:
    m = _root(result.artifacts["float32"])
    assert m.SignatureDefsLength() == 1
    sig = m.SignatureDefs(0)
    assert sig.SignatureKey().decode() == "serving_default" and sig.SubgraphIndex() == 0
    sg = m.Subgraphs(0)
    ins = [(sig.Inputs(i).Name().decode(), sig.Inputs(i).TensorIndex()) for i in range(sig.InputsLength())]
    outs = [(sig.Outputs(i).Name().decode(), sig.Outputs(i).TensorIndex()) for i in range(sig.OutputsLength())]
    assert [n for n, _ in ins] == ["x", "input.z"] and [n for n, _ in outs] == ["out:0", "out/1"]
    assert [i for _, i in ins] == list(sg.InputsAsNumpy()) and [i for _, i in outs] == list(sg.OutputsAsNumpy())
    interp = Interpreter(model_content=result.artifacts["float32"])
    sigs = interp.get_signature_list()["serving_default"]
    assert sorted(sigs["inputs"]) == ["input.z", "x"] and sorted(sigs["outputs"]) == ["out/1", "out:0"]


def test_layout_metadata_matches_result(result: onnx2litert.ConversionResult) -> None:
    m = _root(result.artifacts["float32"])
    names = [m.Metadata(i).Name().decode() for i in range(m.MetadataLength())]
    assert LAYOUT_METADATA in names
    assert read_layout(result.artifacts["float32"]) == json.loads(json.dumps(result.io_layout))
    assert set(result.io_layout["inputs"]) == {"x", "input.z"}


def test_opcode_table(result: onnx2litert.ConversionResult) -> None:
    for data in result.artifacts.values():
        m = _root(data)
        for i in range(m.OperatorCodesLength()):
            code = m.OperatorCodes(i)
            assert code.DeprecatedBuiltinCode() == min(code.BuiltinCode(), 127)
            assert code.Version() >= 1


def test_opcode_versions_come_from_operator_version() -> None:
    x = Tensor("x", (1, 2, 3, 4, 5), np.float32)
    y = Tensor("y", (1, 2, 3, 4, 5), np.float32)
    z = Tensor("z", (1, 2, 3, 4, 5), np.float32)
    g = Tensor("g", (1, 2, 3, 4, 5), np.float32)
    perm = Tensor("perm", (5,), np.int32, data=np.array([0, 2, 3, 4, 1], np.int32))
    ops = [Operator("GELU", [x], [g]), Operator("TRANSPOSE", [g, perm], [y], {}),
           Operator("ADD", [y, y], [z], {"fusedActivationFunction": "NONE"})]
    z5 = Tensor("z5", (1, 3, 4, 5, 2), np.float32)
    ops[1].outputs = [z5]
    ops[2].inputs = [z5, z5]
    ops[2].outputs = [Tensor("out", (1, 3, 4, 5, 2), np.float32)]
    model = Model([Subgraph([x], ops[2].outputs, ops)], signature_inputs=["x"], signature_outputs=["out"])
    data = export_model(model)
    m = _root(data)
    codes = {m.OperatorCodes(i).BuiltinCode(): m.OperatorCodes(i) for i in range(m.OperatorCodesLength())}
    gelu = codes[S.BuiltinOperator.GELU]
    assert gelu.BuiltinCode() > 127 and gelu.DeprecatedBuiltinCode() == 127
    assert codes[S.BuiltinOperator.TRANSPOSE].Version() == 4  # rank 5
    for op in ops:
        assert codes[getattr(S.BuiltinOperator, op.opcode)].Version() == operator_version(op)
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    feed = RNG.standard_normal(x.shape).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], feed)
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    from math import erf, sqrt
    gelu_ref = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / sqrt(2))))(feed.astype(np.float64))
    ref = 2 * np.transpose(gelu_ref, (0, 2, 3, 4, 1))
    assert np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max()) * 10  # GELU kernel approximation


# --- float16 ------------------------------------------------------------------------------------

def test_float16_weights(result: onnx2litert.ConversionResult) -> None:
    data = result.artifacts["float16"]
    m = _root(data)
    sg = m.Subgraphs(0)
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    dequant = 0
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        opcode = names[m.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
        ins = [sg.Tensors(j) for j in op.InputsAsNumpy() if j >= 0]
        outs = [sg.Tensors(j) for j in op.OutputsAsNumpy()]
        if opcode == "DEQUANTIZE":
            dequant += 1
            assert ins[0].Type() == S.TensorType.FLOAT16 and outs[0].Type() == S.TensorType.FLOAT32
            assert m.Buffers(ins[0].Buffer()).DataLength() > 0
            assert m.OperatorCodes(op.OpcodeIndex()).Version() == 3
        else:
            assert all(t.Type() != S.TensorType.FLOAT16 for t in ins + outs), opcode  # float32 compute
    assert dequant >= 2  # the shared Add weight and the MatMul weight
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        if t.Type() == S.TensorType.FLOAT32 and m.Buffers(t.Buffer()).DataLength():
            assert np.prod(t.ShapeAsNumpy()) < 16  # every big float weight went to fp16
    def weight_bytes(blob: bytes) -> int:
        mm = _root(blob)
        return sum(mm.Buffers(i).DataLength() for i in range(mm.BuffersLength()))
    assert weight_bytes(data) < weight_bytes(result.artifacts["float32"])
    check_model(MODEL, variant="float16", tol=1e-3)


# --- operator versions --------------------------------------------------------------------------

def _t(shape: tuple[int, ...], dtype: object = np.float32, *, const: bool = False,
       scales: int = 0, axis: int = 0) -> Tensor:
    data = np.zeros(shape, dtype) if const else None
    q = None
    if scales:
        q = Quantization(np.full(scales, 0.5, np.float32), np.zeros(scales, np.int64), axis)
    return Tensor("t", shape, dtype, data=data, quantization=q)


F, I8, I16, I32, I64, U8, B, H = (np.float32, np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_,
                                  np.float16)
X4 = (1, 4, 4, 8)

# (opcode, inputs, outputs, options, expected version)
VERSION_CASES = [
    ("CONV_2D", [_t(X4), _t((8, 3, 3, 8), const=True), _t((8,), const=True)], [_t(X4)], {}, 1),
    ("CONV_2D", [_t(X4), _t((8, 3, 3, 4), const=True), _t((8,), const=True)], [_t(X4)], {}, 6),  # grouped
    ("CONV_2D", [_t(X4, I8, scales=1), _t((8, 3, 3, 8), I8, const=True, scales=8), _t((8,), I32, const=True)],
     [_t(X4, I8, scales=1)], {}, 3),
    ("CONV_2D", [_t(X4), _t((8, 3, 3, 8), I8, const=True, scales=1), _t((8,), const=True)], [_t(X4)], {}, 2),
    ("CONV_2D", [_t(X4), _t((8, 3, 3, 8), I8, const=True, scales=8), _t((8,), const=True)], [_t(X4)], {}, 5),
    ("DEPTHWISE_CONV_2D", [_t(X4), _t((1, 3, 3, 8), const=True), _t((8,), const=True)], [_t(X4)],
     {"depthMultiplier": 1}, 1),
    ("DEPTHWISE_CONV_2D", [_t(X4), _t((1, 3, 3, 8), const=True), _t((8,), const=True)], [_t(X4)],
     {"dilationHFactor": 2, "dilationWFactor": 2}, 2),
    ("DEPTHWISE_CONV_2D", [_t(X4, I8, scales=1), _t((1, 3, 3, 8), I8, const=True, scales=8, axis=3), _t((8,), I32)],
     [_t(X4, I8, scales=1)], {}, 3),
    ("FULLY_CONNECTED", [_t((2, 8)), _t((4, 8), const=True), _t((4,), const=True)], [_t((2, 4))], {}, 1),
    ("FULLY_CONNECTED", [_t((2, 8)), _t((4, 8), const=True), None], [_t((2, 4))], {}, 1),
    ("FULLY_CONNECTED", [_t((2, 8)), _t((4, 8), const=True)], [_t((2, 4))], {}, 6),
    ("FULLY_CONNECTED", [_t((2, 3, 8)), _t((4, 8), const=True), None], [_t((2, 3, 4))], {"keepNumDims": True}, 5),
    ("FULLY_CONNECTED", [_t((2, 8), I8, scales=1), _t((4, 8), I8, const=True, scales=1), _t((4,), I32)],
     [_t((2, 4), I8, scales=1)], {}, 4),
    ("FULLY_CONNECTED", [_t((2, 8), I16, scales=1), _t((4, 8), I16, scales=1), _t((4,), I64)],
     [_t((2, 4), I16, scales=1)], {}, 7),
    ("FULLY_CONNECTED", [_t((2, 8)), _t((4, 8), I8, const=True, scales=1), None], [_t((2, 4))], {}, 3),
    ("FULLY_CONNECTED", [_t((2, 8)), _t((4, 8), I8, const=True, scales=4), None], [_t((2, 4))], {}, 12),
    ("TRANSPOSE_CONV", [_t((4,), I32, const=True), _t((8, 3, 3, 8), const=True), _t(X4)], [_t(X4)], {}, 1),
    ("TRANSPOSE_CONV", [_t((4,), I32, const=True), _t((8, 3, 3, 8), const=True), _t(X4), _t((8,), const=True)],
     [_t(X4)], {}, 3),
    ("TRANSPOSE_CONV", [_t((4,), I32, const=True), _t((8, 3, 3, 8), const=True), _t(X4), None], [_t(X4)], {}, 1),
    ("TRANSPOSE_CONV", [_t((4,), I32, const=True), _t((8, 3, 3, 8), const=True), _t(X4)], [_t(X4)],
     {"fusedActivationFunction": "RELU"}, 4),
    ("CONV_3D", [_t((1, 2, 4, 4, 8)), _t((1, 3, 3, 8, 8), const=True)], [_t((1, 2, 4, 4, 8))], {}, 1),
    ("MAX_POOL_2D", [_t(X4)], [_t(X4)], {}, 1),
    ("AVERAGE_POOL_2D", [_t(X4, I8, scales=1)], [_t(X4, I8, scales=1)], {}, 2),
    ("AVERAGE_POOL_2D", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 3),
    ("ADD", [_t(X4), _t(X4)], [_t(X4)], {}, 1),
    ("ADD", [_t((1, 2, 3, 4, 5)), _t((5,))], [_t((1, 2, 3, 4, 5))], {}, 1),  # ADD has no 5-D rule
    ("ADD", [_t(X4, I64), _t(X4, I64)], [_t(X4, I64)], {}, 4),
    ("ADD", [_t(X4, I16), _t(X4, I16)], [_t(X4, I16)], {}, 5),
    ("ADD", [_t(X4, I16, scales=1), _t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {"potScaleInt16": False}, 3),
    ("ADD", [_t(X4, I8, scales=1), _t(X4, I8, scales=1)], [_t(X4, I8, scales=1)], {}, 2),
    ("SUB", [_t((1, 2, 3, 4, 5)), _t((5,))], [_t((1, 2, 3, 4, 5))], {}, 3),
    ("SUB", [_t((1, 2, 3, 4, 5)), _t((1, 2, 3, 4, 5))], [_t((1, 2, 3, 4, 5))], {}, 1),  # no broadcast
    ("SUB", [_t(X4, I64), _t(X4, I64)], [_t(X4, I64)], {}, 4),
    ("MUL", [_t(X4), _t(X4)], [_t(X4)], {}, 1),
    ("MUL", [_t(X4, I64), _t(X4, I64)], [_t(X4, I64)], {}, 5),
    ("MUL", [_t(X4, I16), _t(X4, I16)], [_t(X4, I16)], {}, 7),
    ("MUL", [_t(X4, I16, scales=1), _t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 4),
    ("DIV", [_t((1, 2, 3, 4, 5)), _t((1,))], [_t((1, 2, 3, 4, 5))], {}, 2),
    ("DIV", [_t(X4), _t((1,))], [_t(X4)], {}, 1),
    ("MAXIMUM", [_t((1, 2, 3, 4, 5)), _t((1,))], [_t((1, 2, 3, 4, 5))], {}, 3),
    ("MINIMUM", [_t(X4, I8), _t(X4, I8)], [_t(X4, I8)], {}, 2),
    ("RESHAPE", [_t(X4), _t((2,), I32, const=True)], [_t((4, 32))], {}, 1),
    ("RESHAPE", [_t(X4, I16), _t((2,), I32, const=True)], [_t((4, 32), I16)], {}, 1),
    ("TRANSPOSE", [_t(X4), _t((4,), I32, const=True)], [_t(X4)], {}, 1),
    ("TRANSPOSE", [_t(X4, B), _t((4,), I32, const=True)], [_t(X4, B)], {}, 3),
    ("TRANSPOSE", [_t((1, 2, 3, 4, 5)), _t((5,), I32, const=True)], [_t((1, 2, 3, 4, 5))], {}, 4),
    ("TRANSPOSE", [_t((1, 2, 3, 4, 5, 6)), _t((6,), I32, const=True)], [_t((1, 2, 3, 4, 5, 6))], {}, 6),
    ("TRANSPOSE", [_t(X4, I16), _t((4,), I32, const=True)], [_t(X4, I16)], {}, 5),
    ("STRIDED_SLICE", [_t(X4)] + [_t((4,), I32, const=True)] * 3, [_t(X4)], {}, 1),
    ("STRIDED_SLICE", [_t((1, 2, 3, 4, 5))] + [_t((5,), I32, const=True)] * 3, [_t((1, 2, 3, 4, 5))], {}, 4),
    ("STRIDED_SLICE", [_t(X4, B)] + [_t((4,), I32, const=True)] * 3, [_t(X4, B)], {}, 3),
    ("STRIDED_SLICE", [_t(X4)] + [_t((4,), I32, const=True)] * 3, [_t(X4)], {"offset": True}, 8),
    ("STRIDED_SLICE", [_t(X4)] + [_t((4,), I32, const=True)] * 3, [_t(X4)], {"ellipsisMask": 2}, 6),
    ("SLICE", [_t(X4), _t((4,), I32, const=True), _t((4,), I32, const=True)], [_t(X4)], {}, 1),
    ("SLICE", [_t(X4, I64), _t((4,), I32, const=True), _t((4,), I32, const=True)], [_t(X4, I64)], {}, 1),
    ("SLICE", [_t((1, 2, 3, 4, 5)), _t((5,), I32, const=True), _t((5,), I32, const=True)],
     [_t((1, 2, 3, 4, 5))], {}, 5),
    ("SLICE", [_t(X4, I16), _t((4,), I32, const=True), _t((4,), I32, const=True)], [_t(X4, I16)], {}, 4),
    ("PAD", [_t(X4), _t((4, 2), I32, const=True)], [_t(X4)], {}, 1),
    ("PAD", [_t((1, 2, 3, 4, 5)), _t((5, 2), I32, const=True)], [_t((1, 2, 3, 4, 5))], {}, 4),
    ("PADV2", [_t(X4, I8), _t((4, 2), I32, const=True), _t((), I8, const=True)], [_t(X4, I8)], {}, 2),
    ("MIRROR_PAD", [_t(X4), _t((4, 2), I32, const=True)], [_t(X4)], {"mode": "REFLECT"}, 1),
    ("CONCATENATION", [_t(X4), _t(X4)], [_t(X4)], {"axis": 3}, 1),
    ("CONCATENATION", [_t(X4, I16), _t(X4, I16)], [_t(X4, I16)], {"axis": 3}, 3),
    ("CONCATENATION", [_t(X4, I64), _t(X4, I64)], [_t(X4, I64)], {"axis": 3}, 1),
    ("SPLIT", [_t((), I32, const=True), _t(X4)], [_t(X4)], {"numSplits": 1}, 1),
    ("SPLIT", [_t((), I32, const=True), _t(X4, I32)], [_t(X4, I32)], {"numSplits": 1}, 3),
    ("SPLIT_V", [_t(X4, I8), _t((1,), I32, const=True), _t((), I32, const=True)], [_t(X4, I8)],
     {"numSplits": 1}, 2),
    ("GATHER", [_t(X4), _t((2,), I32)], [_t(X4)], {"axis": 1}, 1),
    ("GATHER", [_t(X4, B), _t((2,), I64)], [_t(X4, B)], {"axis": 1}, 3),
    ("GATHER", [_t(X4), _t((1, 2), I32)], [_t(X4)], {"axis": 1, "batchDims": 1}, 5),
    ("GATHER", [_t(X4), _t((2,), I16)], [_t(X4)], {"axis": 1}, 6),
    ("MEAN", [_t(X4), _t((2,), I32, const=True)], [_t((1, 8))], {"keepDims": False}, 1),
    ("MEAN", [_t(X4, I16, scales=1), _t((2,), I32, const=True)], [_t((1, 8), I16, scales=1)], {}, 3),
    ("SUM", [_t(X4, I8), _t((2,), I32, const=True)], [_t((1, 8), I8)], {}, 2),
    ("REDUCE_MAX", [_t(X4, I8), _t((2,), I32, const=True)], [_t((1, 8), I8)], {}, 2),
    ("REDUCE_PROD", [_t(X4, I16), _t((2,), I32, const=True)], [_t((1, 8), I16)], {}, 2),
    ("SOFTMAX", [_t(X4)], [_t(X4)], {"beta": 1.0}, 1),
    ("SOFTMAX", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {"beta": 1.0}, 3),
    ("LOG_SOFTMAX", [_t(X4, I8, scales=1)], [_t(X4, I8, scales=1)], {}, 2),
    ("LOGISTIC", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 3),
    ("TANH", [_t(X4, I8, scales=1)], [_t(X4, I8, scales=1)], {}, 2),
    ("RELU", [_t(X4, U8, scales=1)], [_t(X4, U8, scales=1)], {}, 2),
    ("RELU", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 3),
    ("RELU6", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 3),
    ("LEAKY_RELU", [_t(X4)], [_t(X4)], {"alpha": 0.1}, 1),
    ("LEAKY_RELU", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {"alpha": 0.1}, 2),
    ("PRELU", [_t(X4), _t((8,), const=True)], [_t(X4)], {}, 1),
    ("ELU", [_t(X4)], [_t(X4)], {}, 1),
    ("HARD_SWISH", [_t(X4)], [_t(X4)], {}, 1),
    ("GELU", [_t(X4)], [_t(X4)], {"approximate": False}, 1),
    ("GELU", [_t(X4, I8, scales=1)], [_t(X4, I8, scales=1)], {}, 2),
    ("CAST", [_t(X4)], [_t(X4, I32)], {}, 1),
    ("CAST", [_t(X4, I8)], [_t(X4)], {}, 3),
    ("CAST", [_t(X4, H)], [_t(X4)], {}, 5),
    ("CAST", [_t(X4, np.uint32)], [_t(X4, I32)], {}, 2),
    ("CAST", [_t(X4, np.uint16)], [_t(X4, I32)], {}, 4),
    ("DEQUANTIZE", [_t(X4, H, const=True)], [_t(X4)], {}, 3),
    ("DEQUANTIZE", [_t(X4, I8, const=True, scales=1)], [_t(X4)], {}, 2),
    ("DEQUANTIZE", [_t(X4, I8, const=True, scales=8, axis=3)], [_t(X4)], {}, 5),
    ("DEQUANTIZE", [_t(X4, U8, scales=1)], [_t(X4)], {}, 1),
    ("QUANTIZE", [_t(X4)], [_t(X4, I8, scales=1)], {}, 1),
    ("QUANTIZE", [_t(X4)], [_t(X4, I16, scales=1)], {}, 2),
    ("RESIZE_BILINEAR", [_t(X4), _t((2,), I32, const=True)], [_t(X4)], {}, 1),
    ("RESIZE_BILINEAR", [_t(X4), _t((2,), I32, const=True)], [_t(X4)], {"halfPixelCenters": True}, 3),
    ("RESIZE_NEAREST_NEIGHBOR", [_t(X4), _t((2,), I32, const=True)], [_t(X4)], {"alignCorners": True}, 3),
    ("RESIZE_NEAREST_NEIGHBOR", [_t(X4, I16), _t((2,), I32, const=True)], [_t(X4, I16)], {}, 4),
    ("DEPTH_TO_SPACE", [_t(X4)], [_t((1, 8, 8, 2))], {"blockSize": 2}, 1),
    ("SPACE_TO_DEPTH", [_t(X4, I8)], [_t((1, 2, 2, 32), I8)], {"blockSize": 2}, 2),
    ("BATCH_MATMUL", [_t((2, 3, 4)), _t((2, 4, 5))], [_t((2, 3, 5))], {}, 1),
    ("BATCH_MATMUL", [_t((2, 3, 4), I8, scales=1), _t((2, 4, 5), I8, scales=1)], [_t((2, 3, 5), I8)], {}, 2),
    ("POW", [_t(X4), _t(X4)], [_t(X4)], {}, 1),
    ("EXP", [_t(X4)], [_t(X4)], {}, 1),
    ("LOG", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 2),
    ("SQRT", [_t(X4)], [_t(X4)], {}, 1),
    ("RSQRT", [_t(X4, I8, scales=1)], [_t(X4, I8, scales=1)], {}, 2),
    ("ABS", [_t(X4, I32)], [_t(X4, I32)], {}, 5),
    ("ABS", [_t(X4, I16)], [_t(X4, I16)], {}, 4),
    ("ABS", [_t(X4, I16, scales=1)], [_t(X4, I16, scales=1)], {}, 3),
    ("NEG", [_t(X4, I64)], [_t(X4, I64)], {}, 1),
    ("SQUARED_DIFFERENCE", [_t(X4), _t(X4)], [_t(X4)], {}, 1),
    ("SELECT_V2", [_t(X4, B), _t(X4), _t(X4)], [_t(X4)], {}, 1),
    ("SELECT", [_t((1, 2, 3, 4, 5), B), _t((1, 2, 3, 4, 5)), _t((1, 2, 3, 4, 5))], [_t((1, 2, 3, 4, 5))], {}, 3),
    ("EQUAL", [_t(X4, I16), _t(X4, I16)], [_t(X4, B)], {}, 4),
    ("NOT_EQUAL", [_t(X4, I8), _t(X4, I8)], [_t(X4, B)], {}, 2),
    ("LESS", [_t(X4, I16), _t(X4, I16)], [_t(X4, B)], {}, 3),
    ("GREATER", [_t(X4), _t(X4)], [_t(X4, B)], {}, 1),
    ("GREATER_EQUAL", [_t(X4, I8), _t(X4, I8)], [_t(X4, B)], {}, 2),
    ("LESS_EQUAL", [_t(X4, I8), _t(X4, I8)], [_t(X4, B)], {}, 2),
    ("LOCAL_RESPONSE_NORMALIZATION", [_t(X4)], [_t(X4)], {"radius": 2}, 1),
    ("FILL", [_t((4,), I32, const=True), _t((), F, const=True)], [_t(X4)], {}, 1),
    ("FILL", [_t((4,), I32, const=True), _t((), B, const=True)], [_t(X4, B)], {}, 2),
    ("FILL", [_t((4,), I32, const=True), _t((), I16, const=True)], [_t(X4, I16)], {}, 3),
    ("SHAPE", [_t(X4)], [_t((4,), I32)], {"outType": "INT32"}, 1),
    ("BROADCAST_TO", [_t((1, 8)), _t((4,), I32, const=True)], [_t(X4)], {}, 2),
    ("ARG_MAX", [_t(X4, B), _t((), I32, const=True)], [_t((1, 4, 4), I32)], {"outputType": "INT32"}, 3),
    ("WHERE", [_t(X4, B)], [_t((4, 4), I64)], {}, 1),
    ("WHERE", [_t(X4)], [_t((4, 4), I64)], {}, 2),
    ("SQUEEZE", [_t(X4)], [_t((4, 4, 8))], {"squeezeDims": [0]}, 1),
    ("PACK", [_t(X4, I16, scales=1)], [_t((1,) + X4, I16, scales=1)], {"valuesCount": 1}, 3),
    ("UNPACK", [_t(X4, B)], [_t((4, 4, 8), B)], {"num": 1}, 3),
    ("TILE", [_t(X4, I8), _t((4,), I32, const=True)], [_t(X4, I8)], {}, 3),
    ("FLOOR_DIV", [_t(X4), _t(X4)], [_t(X4)], {}, 2),
    ("FLOOR_DIV", [_t(X4, I32), _t(X4, I32)], [_t(X4, I32)], {}, 1),
    ("FLOOR_MOD", [_t(X4, I8), _t(X4, I8)], [_t(X4, I8)], {}, 2),
    ("RANGE", [_t((), I64), _t((), I64), _t((), I64)], [_t((4,), I64)], {}, 2),
    ("TOPK_V2", [_t(X4), _t((), I32, const=True)], [_t(X4), _t(X4, I32)], {}, 1),
    ("SPACE_TO_BATCH_ND", [_t((1, 4, 8)), _t((1,), I32, const=True), _t((1, 2), I32, const=True)],
     [_t((2, 2, 8))], {}, 3),
    ("L2_NORMALIZATION", [_t(X4)], [_t(X4)], {}, 1),
    ("SIGN", [_t(X4, I32)], [_t(X4, I32)], {}, 2),
]


def _case_id(case: tuple) -> str:
    opcode, ins, _, options, expected = case
    dts = ",".join("-" if t is None else t.dtype.name for t in ins)
    return f"{opcode}[{dts}]{''.join(sorted(options))}->v{expected}"


def _op(case: tuple) -> Operator:
    opcode, ins, outs, options, _ = case
    inputs = [None if t is None else Tensor(f"in{i}", t.shape, t.dtype, t.data, t.quantization)
              for i, t in enumerate(ins)]
    outputs = [Tensor(f"out{i}", t.shape, t.dtype, None, t.quantization) for i, t in enumerate(outs)]
    return Operator(opcode, inputs, outputs, dict(options))


@pytest.mark.parametrize("case", VERSION_CASES, ids=_case_id)
def test_operator_version(case: tuple) -> None:
    op = _op(case)
    assert operator_version(op) == case[-1]
    # The installed LiteRT runtime's builtin op resolver must register the op at this version.
    graph_inputs = [t for t in op.inputs if t is not None and not t.is_const]
    model = Model([Subgraph(graph_inputs, list(op.outputs), [op])],
                  signature_inputs=[t.name for t in graph_inputs], signature_outputs=[t.name for t in op.outputs])
    data = export_model(model)
    m = _root(data)
    assert m.OperatorCodes(0).Version() == case[-1]
    Interpreter(model_content=data)  # raises "Didn't find op for builtin opcode ... version ..." otherwise


def test_version_accepts_enum_values_and_names() -> None:
    base = VERSION_CASES[19]
    assert base[0] == "TRANSPOSE_CONV" and base[3] == {"fusedActivationFunction": "RELU"}
    as_int = _op(base)
    as_int.options = {"fusedActivationFunction": S.ActivationFunctionType.RELU}
    assert operator_version(as_int) == 4
    as_int.options = {"fusedActivationFunction": "NONE"}
    assert operator_version(as_int) == 1


def test_custom_op_is_version_1() -> None:
    x, y = Tensor("x", (2,), np.float32), Tensor("y", (2,), np.float32)
    assert operator_version(Operator("CUSTOM", [x], [y], custom_code="MyOp")) == 1


# The highest version each rule in versions.py can return (read off the rules).
RULE_MAX_VERSION = {
    "CONV_2D": 8, "DEPTHWISE_CONV_2D": 6, "FULLY_CONNECTED": 12, "TRANSPOSE_CONV": 5, "GATHER": 6, "MUL": 7,
    "MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 3, "TRANSPOSE": 6, "SPLIT": 4, "SLICE": 6, "DEQUANTIZE": 5,
    "QUANTIZE": 3, "FLOOR_DIV": 3, "FLOOR_MOD": 2, "L2_NORMALIZATION": 2, "ABS": 5, "RELU": 3,
    "STRIDED_SLICE": 8, "REVERSE_V2": 3, "RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 4, "MAXIMUM": 4,
    "MINIMUM": 4, "PACK": 4, "UNPACK": 4, "TILE": 3, "SQUEEZE": 2, "SPACE_TO_BATCH_ND": 4,
    "BATCH_TO_SPACE_ND": 4, "ADD": 5, "SUB": 5, "GATHER_ND": 5, "DIV": 2, "TANH": 3, "LOGISTIC": 3, "FILL": 4,
    "EQUAL": 4, "NOT_EQUAL": 3, "LEAKY_RELU": 2, "RANGE": 2, "BATCH_MATMUL": 4, "PAD": 5, "PADV2": 5,
    "CONCATENATION": 4, "SOFTMAX": 3, "MEAN": 3, "MIRROR_PAD": 3, "REDUCE_MAX": 3, "REDUCE_MIN": 3,
    "RELU6": 3, "RSQRT": 3, "ARG_MAX": 3, "ARG_MIN": 3, "SELECT": 4, "LESS": 3, "GREATER_EQUAL": 3,
    "SELECT_V2": 2, "SPACE_TO_DEPTH": 2, "SPLIT_V": 2, "SUM": 2, "LOG_SOFTMAX": 2, "GREATER": 2,
    "LESS_EQUAL": 2, "SQUARED_DIFFERENCE": 2, "DEPTH_TO_SPACE": 2, "TOPK_V2": 3, "EXP": 2, "LOG": 2,
    "REDUCE_PROD": 2, "DYNAMIC_UPDATE_SLICE": 4, "BROADCAST_TO": 3, "CAST": 5, "WHERE": 2, "GELU": 2, "SIGN": 2,
    # Ops the rules leave at version 1.
    "RESHAPE": 1, "CONV_3D": 1, "PRELU": 1, "ELU": 1, "HARD_SWISH": 1, "POW": 1, "SQRT": 1, "NEG": 1,
    "SHAPE": 1, "LOCAL_RESPONSE_NORMALIZATION": 1, "EXPAND_DIMS": 1, "LOGICAL_AND": 1, "LOGICAL_NOT": 1,
}


def test_every_reachable_version_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's builtin resolver accepts each op at the highest version our rules give."""
    import onnx2litert.export.flatbuffer as fb

    from onnx2litert.export import versions
    assert set(versions._RULES) <= set(RULE_MAX_VERSION)
    for opcode, version in sorted(RULE_MAX_VERSION.items()):
        monkeypatch.setattr(fb, "operator_version", lambda op, v=version: v)
        x, y = Tensor("x", (1, 2, 2, 2), np.float32), Tensor("y", (1, 2, 2, 2), np.float32)
        data = export_model(Model([Subgraph([x], [y], [Operator(opcode, [x], [y])])],
                                  signature_inputs=["x"], signature_outputs=["y"]))
        try:
            Interpreter(model_content=data)
        except ValueError as exc:
            pytest.fail(f"{opcode} v{version} is not registered: {exc}")
