"""The custom-op policy: an ONNX op with no builtin lowering as a LiteRT CUSTOM op.

A node becomes ``CUSTOM`` with ``custom_code = "ONNX_<OpType>"`` and its attributes as a
FlexBuffer map only when ``flatbuffer_direct_allow_custom_ops`` is set and, when
``flatbuffer_direct_custom_op_allowlist`` is non-empty, the op is listed there. Otherwise the
conversion fails with ``custom_op_candidate_disabled`` / ``custom_op_not_in_allowlist``.

Only nodes whose op type has *no* lowering (``unsupported_onnx_op``) are candidates. A node
whose lowering exists but rejected it (dtype, attribute, constant input, opset) keeps that
reason: such a failure says something specific about the node, and hiding it behind a custom
op would replace a fixable, well-explained error with a model that needs a hand-written kernel.

A LiteRT runtime only runs the model when a kernel named ``ONNX_<OpType>`` is registered
with the interpreter (op resolver); the converter never pretends otherwise.

The custom code carries the op type only (not the domain), as the policy asks; the allowlist
may still name ``domain::OpType`` to admit one domain's op. Tensor/graph attributes are stored
as their serialized ONNX protobuf bytes (FlexBuffer blobs).
"""
from __future__ import annotations

import array
from typing import Any

import numpy as np
import onnx
from flatbuffers import flexbuffers

from ..errors import LoweringError, Reason
from ..export.schema import tensor_type
from ..ir import Operator, Tensor
from ..options import ConversionOptions
from .context import GraphBuilder, NodeView

CUSTOM_CODE_PREFIX = "ONNX_"
_ENABLE_HINT = ("enable with --flatbuffer_direct_allow_custom_ops (API: flatbuffer_direct_allow_custom_ops=True); "
                "the model then needs a kernel registered under that name at run time")


def custom_code(op_type: str) -> str:
    """The LiteRT custom code for an ONNX op type, e.g. ``ONNX_Det``."""
    return f"{CUSTOM_CODE_PREFIX}{op_type}"


def qualified_name(domain: str, op_type: str) -> str:
    """``OpType`` for the default domain, ``domain::OpType`` otherwise (the report's key form)."""
    return op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}"


def allowlisted(domain: str, op_type: str, allowlist: tuple[str, ...]) -> bool:
    """Whether an op matches the allowlist; an empty allowlist admits every op.

    An entry may name the op type (``Det``), the domain-qualified type (``com.example::MyOp``)
    or the custom code (``ONNX_Det``).
    """
    if not allowlist:
        return True
    names = {op_type, qualified_name(domain, op_type), custom_code(op_type)}
    return any(entry in names for entry in allowlist)


def policy_summary(options: ConversionOptions, custom_nodes: list[str]) -> dict:
    """The ``custom_op_policy`` block of the op-coverage report."""
    return {"allow_custom_ops": bool(options.flatbuffer_direct_allow_custom_ops),
            "allowlist": list(options.flatbuffer_direct_custom_op_allowlist),
            "custom_nodes": list(custom_nodes)}


def check_policy(node: NodeView, options: ConversionOptions) -> None:
    """Raise the policy's reason code unless ``node`` may become a CUSTOM op."""
    code = custom_code(node.op_type)
    name = qualified_name(node.domain, node.op_type)
    if not options.flatbuffer_direct_allow_custom_ops:
        raise LoweringError(Reason.CUSTOM_OP_CANDIDATE_DISABLED,
                            f"no builtin lowering for {name} at opset {node.opset}; it could be written as "
                            f"CUSTOM op '{code}', but custom ops are disabled: {_ENABLE_HINT}")
    allowlist = options.flatbuffer_direct_custom_op_allowlist
    if not allowlisted(node.domain, node.op_type, allowlist):
        raise LoweringError(Reason.CUSTOM_OP_NOT_IN_ALLOWLIST,
                            f"no builtin lowering for {name} at opset {node.opset}; custom ops are enabled but "
                            f"'{node.op_type}' is not in --flatbuffer_direct_custom_op_allowlist "
                            f"({','.join(allowlist)}): add it there to write CUSTOM op '{code}'")


def check_candidate(node: NodeView, graph: GraphBuilder) -> None:
    """Raise unless ``node`` (whose op type has no lowering) may become a CUSTOM op.

    A candidate needs static output shapes and types. The reason codes, in order:
    ``custom_op_candidate_disabled`` / ``custom_op_not_in_allowlist`` when the policy refuses a
    candidate; ``unsupported_onnx_op`` when the policy refuses a node that could not become a
    custom op anyway (so the user is not told to enable something that would not help);
    ``dynamic_shape_unsupported`` (or ``unsupported_dtype``) when the policy admits the op but
    an output shape/type is unknown (or has no LiteRT tensor type).
    """
    try:
        _used_outputs(node, graph)
        static_problem = None
    except LoweringError as exc:
        static_problem = exc
    try:
        check_policy(node, graph.options)
    except LoweringError:
        if static_problem is not None:
            raise LoweringError(Reason.UNSUPPORTED_ONNX_OP,
                                f"no lowering for {qualified_name(node.domain, node.op_type)} at opset "
                                f"{node.opset}, and it cannot be a CUSTOM op either: "
                                f"{static_problem.message}") from None
        raise
    if static_problem is not None:
        raise static_problem


def lower_custom(node: NodeView, graph: GraphBuilder) -> Operator:
    """Emit ``node`` as a CUSTOM op into ``graph`` after :func:`check_candidate` admits it.

    Inputs are the node's inputs (constants become constant tensors, omitted optional inputs
    LiteRT's -1); outputs carry the ONNX shapes and types. Nothing is emitted on failure.
    """
    check_candidate(node, graph)
    inputs: list[Tensor | None] = []
    for i, name in enumerate(node.inputs):
        if not name:
            inputs.append(None)
            continue
        t = graph.value(name)
        if t is None:
            raise LoweringError(Reason.INTERNAL_ERROR, f"input '{name}' has no producer")
        if t.shape_signature is not None and any(d < 0 for d in t.shape_signature):
            raise LoweringError(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                                f"input {i} ('{name}') has a data-dependent shape; a CUSTOM op needs static shapes")
        _check_dtype(t.dtype, f"input {i} ('{name}')")
        inputs.append(t)
    options = attributes_flexbuffer(node.proto)
    outputs = [Tensor(graph.unique(name), shape, dtype) for name, shape, dtype in _used_outputs(node, graph)]
    op = Operator("CUSTOM", inputs, outputs, custom_code=custom_code(node.op_type), custom_options=options,
                  origin=node.name)
    # Outputs are registered only now that nothing can fail, so a rejected node leaves no trace.
    for name, t in zip(node.outputs, outputs):
        graph.values[name] = t
    graph.operators.append(op)
    return op


def _used_outputs(node: NodeView, graph: GraphBuilder) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """(name, static shape, dtype) of each output up to the last named one, or raise."""
    names = list(node.outputs)
    while names and not names[-1]:
        names.pop()  # trailing omitted optional outputs are simply not written
    out = []
    for i, name in enumerate(names):
        shape = graph.shapes.get(name) if name else None
        dtype = graph.dtypes.get(name) if name else None
        if shape is None or dtype is None:
            what = "element type" if shape is not None else "shape"
            label = f"output {i} ('{name}')" if name else f"omitted output {i}"
            raise LoweringError(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                                f"the {what} of {label} is not known at conversion time; a CUSTOM op needs "
                                f"static output shapes and types (declare them, e.g. as graph outputs, or fix "
                                f"input shapes with --overwrite_input_shape)")
        _check_dtype(np.dtype(dtype), f"output {i} ('{name}')")
        out.append((name, tuple(int(d) for d in shape), np.dtype(dtype)))
    return out


def _check_dtype(dtype: np.dtype, what: str) -> None:
    try:
        tensor_type(dtype)
    except KeyError:
        raise LoweringError(Reason.UNSUPPORTED_DTYPE,
                            f"{what} has dtype {dtype}, which has no LiteRT tensor type") from None


# -- attributes as a FlexBuffer map -----------------------------------------------------------------

_A = onnx.AttributeProto
_PROTO_FIELDS = {_A.TENSOR: "t", _A.GRAPH: "g", _A.SPARSE_TENSOR: "sparse_tensor", _A.TYPE_PROTO: "tp"}
_PROTO_LIST_FIELDS = {_A.TENSORS: "tensors", _A.GRAPHS: "graphs", _A.SPARSE_TENSORS: "sparse_tensors",
                      _A.TYPE_PROTOS: "type_protos"}


def attribute_values(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as plain values, keyed by name in sorted order.

    ints -> int, floats -> float (float32 value), strings -> str (bytes when not UTF-8),
    lists of those -> list; tensors, graphs, sparse tensors and type protos -> their ONNX
    serialized bytes (a kernel can parse them with the ONNX protobuf schema).
    """
    out: dict[str, Any] = {}
    for a in sorted(node.attribute, key=lambda x: x.name):
        out[a.name] = _attribute_value(a)
    return out


def _attribute_value(a: onnx.AttributeProto) -> Any:
    if a.type == _A.INT:
        return int(a.i)
    if a.type == _A.FLOAT:
        return float(a.f)
    if a.type == _A.STRING:
        return _text(a.s)
    if a.type == _A.INTS:
        return [int(v) for v in a.ints]
    if a.type == _A.FLOATS:
        return [float(v) for v in a.floats]
    if a.type == _A.STRINGS:
        return [_text(v) for v in a.strings]
    if a.type in _PROTO_FIELDS:
        return getattr(a, _PROTO_FIELDS[a.type]).SerializeToString(deterministic=True)
    if a.type in _PROTO_LIST_FIELDS:
        return [v.SerializeToString(deterministic=True) for v in getattr(a, _PROTO_LIST_FIELDS[a.type])]
    raise LoweringError(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                        f"attribute '{a.name}' has type {a.type}, which cannot be stored in custom options")


def _text(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def attributes_flexbuffer(node: onnx.NodeProto) -> bytes:
    """The node's attributes as a FlexBuffer map (keys sorted, so the bytes are deterministic).

    int lists are typed int64 vectors and float lists typed float32 vectors (what a kernel
    reads with ``AsTypedVector``); string and bytes lists are untyped vectors. A node without
    attributes gets an empty map, so a kernel can always parse its options.
    """
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for a in sorted(node.attribute, key=lambda x: x.name):
            if not a.name.isascii() or "\0" in a.name:
                raise LoweringError(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                                    f"attribute name {a.name!r} cannot be a FlexBuffer key (ASCII only)")
            fbb.Key(a.name)
            _add_value(fbb, a.type, _attribute_value(a))
    return bytes(fbb.Finish())


def _add_value(fbb: flexbuffers.Builder, attr_type: int, value: Any) -> None:
    if attr_type == _A.INTS:
        fbb.TypedVectorFromElements(array.array("q", value))
    elif attr_type == _A.FLOATS:
        fbb.TypedVectorFromElements(array.array("f", value))
    elif isinstance(value, list):
        with fbb.Vector():
            for item in value:
                _add_scalar(fbb, item)
    else:
        _add_scalar(fbb, value)


def _add_scalar(fbb: flexbuffers.Builder, value: Any) -> None:
    if isinstance(value, int):
        fbb.Int(value, byte_width=8)  # ONNX ints are int64: a fixed width keeps kernels simple
    elif isinstance(value, float):
        fbb.Float(value, byte_width=4)  # ONNX floats are float32: the kernel reads the model's exact value
    elif isinstance(value, str):
        fbb.String(value)
    else:
        fbb.Blob(bytes(value))
