"""Serialize an IR model with the schema's object API.

Deterministic by construction: tensors, buffers and opcodes are numbered in first-use
order, identical constant buffers are stored once (keyed by their bytes), and nothing
depends on hashing of Python objects or on time.
"""
from __future__ import annotations


import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S

from ..ir import Model, Operator, Subgraph, Tensor
from .schema import builtin_code, options_union, tensor_type
from .versions import operator_version

_SCHEMA_VERSION = 3
_BUFFER_ALIGNMENT = 16


class _AlignedBuffer:
    """A ``BufferT`` stand-in that packs its bytes 16-byte aligned (XNNPACK-friendly)."""

    def __init__(self, data: bytes | None):
        self.data = data

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (schema API name)
        vec = None
        if self.data:
            builder.StartVector(1, len(self.data), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(self.data)
            builder.Bytes[builder.head:builder.head + len(self.data)] = self.data
            vec = builder.EndVector()
        S.BufferStart(builder)
        if vec is not None:
            S.BufferAddData(builder, vec)
        return S.BufferEnd(builder)


class _Tables:
    """Numbering of buffers and operator codes shared by all subgraphs."""

    def __init__(self) -> None:
        self.buffers: list[_AlignedBuffer] = [_AlignedBuffer(None)]  # buffer 0 is the empty sentinel
        self._buffer_index: dict[tuple, list[int]] = {}
        self.opcodes: list[S.OperatorCodeT] = []
        self._opcode_index: dict[tuple, int] = {}

    def buffer_for(self, data: np.ndarray | None) -> int:
        if data is None:
            return 0
        raw = np.ascontiguousarray(data).tobytes()
        # Equal buffers are found by a cheap key plus a byte comparison (no hashing of every weight).
        key = (len(raw), raw[:64], raw[-64:])
        for idx in self._buffer_index.get(key, ()):
            if self.buffers[idx].data == raw:
                return idx
        idx = len(self.buffers)
        self.buffers.append(_AlignedBuffer(raw))
        self._buffer_index.setdefault(key, []).append(idx)
        return idx

    def empty_buffer(self) -> int:
        """Non-constant tensors each get their own empty buffer, as LiteRT's converter does."""
        self.buffers.append(_AlignedBuffer(None))
        return len(self.buffers) - 1

    def opcode_for(self, op: Operator) -> int:
        version = operator_version(op)
        key = (op.opcode, op.custom_code, version)
        idx = self._opcode_index.get(key)
        if idx is None:
            code = S.OperatorCodeT()
            if op.opcode == "CUSTOM":
                code.builtinCode = S.BuiltinOperator.CUSTOM
                code.customCode = op.custom_code
            else:
                code.builtinCode = builtin_code(op.opcode)
            code.deprecatedBuiltinCode = min(code.builtinCode, S.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            code.version = version
            idx = len(self.opcodes)
            self.opcodes.append(code)
            self._opcode_index[key] = idx
        return idx


def _quantization(t: Tensor) -> S.QuantizationParametersT | None:
    q = t.quantization
    if q is None:
        return None
    out = S.QuantizationParametersT()
    out.scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    out.zeroPoint = np.asarray(q.zero_point, dtype=np.int64).reshape(-1)
    out.quantizedDimension = int(q.axis)
    if q.min is not None:
        out.min = np.asarray(q.min, dtype=np.float32).reshape(-1)
        out.max = np.asarray(q.max, dtype=np.float32).reshape(-1)
    return out


def _subgraph(sg: Subgraph, tables: _Tables) -> tuple[S.SubGraphT, dict[int, int]]:
    tensors = sg.tensors()
    index = {id(t): i for i, t in enumerate(tensors)}
    out = S.SubGraphT()
    out.name = sg.name
    out.tensors = []
    for t in tensors:
        tt = S.TensorT()
        tt.name = t.name
        tt.shape = np.asarray(t.shape, dtype=np.int32)
        if t.shape_signature is not None and any(d < 0 for d in t.shape_signature):
            tt.shapeSignature = np.asarray(t.shape_signature, dtype=np.int32)
        tt.type = tensor_type(t.dtype)
        tt.buffer = tables.buffer_for(t.data) if t.is_const else tables.empty_buffer()
        tt.quantization = _quantization(t)
        out.tensors.append(tt)
    out.inputs = np.asarray([index[id(t)] for t in sg.inputs], dtype=np.int32)
    out.outputs = np.asarray([index[id(t)] for t in sg.outputs], dtype=np.int32)
    out.operators = []
    for op in sg.operators:
        ot = S.OperatorT()
        ot.opcodeIndex = tables.opcode_for(op)
        ot.inputs = np.asarray([-1 if t is None else index[id(t)] for t in op.inputs], dtype=np.int32)
        ot.outputs = np.asarray([index[id(t)] for t in op.outputs], dtype=np.int32)
        if op.opcode == "CUSTOM":
            ot.customOptions = np.frombuffer(op.custom_options or b"", dtype=np.uint8)
            ot.customOptionsFormat = S.CustomOptionsFormat.FLEXBUFFERS
        else:
            ot.builtinOptionsType, ot.builtinOptions = options_union(op.opcode, op.options)
        out.operators.append(ot)
    return out, index


def _signature(model: Model, index: dict[int, int]) -> S.SignatureDefT:
    sig = S.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for names, tensors, dest in ((model.signature_inputs, model.main.inputs, sig.inputs),
                                 (model.signature_outputs, model.main.outputs, sig.outputs)):
        for name, t in zip(names, tensors):
            m = S.TensorMapT()
            m.name = name
            m.tensorIndex = index[id(t)]
            dest.append(m)
    return sig


def export_model(model: Model) -> bytes:
    """Serialize ``model`` to flatbuffer bytes with the ``TFL3`` file identifier."""
    tables = _Tables()
    mt = S.ModelT()
    mt.version = _SCHEMA_VERSION
    mt.description = model.description
    mt.subgraphs = []
    main_index: dict[int, int] = {}
    for i, sg in enumerate(model.subgraphs):
        sgt, index = _subgraph(sg, tables)
        if i == 0:
            main_index = index
        mt.subgraphs.append(sgt)
    mt.signatureDefs = [_signature(model, main_index)]
    mt.metadata = []
    for name in sorted(model.metadata):
        md = S.MetadataT()
        md.name = name
        md.buffer = len(tables.buffers)
        tables.buffers.append(_AlignedBuffer(model.metadata[name]))
        mt.metadata.append(md)
    mt.operatorCodes = tables.opcodes
    mt.buffers = tables.buffers
    # Pre-size the builder: growing it by doubling would copy every weight byte several times.
    payload = sum(len(b.data) + _BUFFER_ALIGNMENT for b in tables.buffers if b.data)
    builder = flatbuffers.Builder(payload + 4 * 1024 * 1024)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
