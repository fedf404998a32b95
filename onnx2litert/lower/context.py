"""What a lowering sees: a view of its ONNX node and a builder for IR operators.

Lowerings work in ONNX layout. A spatial lowering converts its data input to channels-last
with :meth:`LowerContext.to_channels_last`, emits the LiteRT op, and converts back with
:meth:`LowerContext.from_channels_last`; the layout pass later cancels the transposes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from ..errors import LoweringError, Reason
from ..ir import Operator, Tensor
from ..options import ConversionOptions


def channels_last_perm(rank: int) -> tuple[int, ...]:
    """Permutation taking NC... (ONNX) to N...C (LiteRT): e.g. (0, 2, 3, 1) for rank 4."""
    return (0, *range(2, rank), 1)


def inverse_perm(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


class NodeView:
    """Read-only view of an ONNX node: op type, name, attributes (decoded), opset."""

    def __init__(self, node: onnx.NodeProto, index: int, opset: int):
        self.proto = node
        self.op_type = node.op_type
        self.domain = node.domain
        self.name = node.name or f"{node.op_type}_{index}"
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.opset = opset
        self.attrs: dict[str, Any] = {}
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [v.decode("utf-8") for v in value]
            self.attrs[a.name] = value

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


class GraphBuilder:
    """Holds the IR being built for one graph: ONNX name -> tensor, operators, name counter."""

    def __init__(self, constants: dict[str, np.ndarray], shapes: dict, dtypes: dict,
                 options: ConversionOptions):
        self.constants = constants
        self.shapes = shapes
        self.dtypes = dtypes
        self.options = options
        self.values: dict[str, Tensor] = {}
        self.operators: list[Operator] = []
        self._names: dict[str, int] = {}
        # Model-level list of extra subgraphs for control flow (lower.driver.SubgraphHost), set by the driver.
        self.subgraph_host = None

    def unique(self, hint: str) -> str:
        n = self._names.get(hint, 0)
        self._names[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def value(self, name: str) -> Tensor | None:
        """The IR tensor for an ONNX value; constants are materialized on first use."""
        t = self.values.get(name)
        if t is None and name in self.constants:
            data = self.constants[name]
            t = Tensor(self.unique(name), data.shape, data.dtype, data=data)
            self.values[name] = t
        return t


class LowerContext:
    """Builder API handed to one lowering call."""

    def __init__(self, node: NodeView, graph: GraphBuilder):
        self.node = node
        self.graph = graph
        self.options = graph.options
        self.emitted: list[Operator] = []

    # -- errors --------------------------------------------------------------------------
    def fail(self, reason: Reason, message: str) -> LoweringError:
        """Build the error to ``raise`` when this node cannot be lowered."""
        return LoweringError(reason, message)

    # -- inputs --------------------------------------------------------------------------
    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and bool(self.node.inputs[i])

    def input(self, i: int) -> Tensor:
        if not self.has_input(i):
            raise self.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"input {i} is required")
        t = self.graph.value(self.node.inputs[i])
        if t is None:
            raise LoweringError(Reason.INTERNAL_ERROR, f"input '{self.node.inputs[i]}' has no producer")
        return t

    def optional_input(self, i: int) -> Tensor | None:
        return self.input(i) if self.has_input(i) else None

    def const(self, i: int) -> np.ndarray | None:
        """The constant value of input ``i``, or None when it is computed at run time."""
        if not self.has_input(i):
            return None
        t = self.graph.value(self.node.inputs[i])
        return None if t is None or t.data is None else t.data

    def require_const(self, i: int, what: str | None = None) -> np.ndarray:
        value = self.const(i)
        if value is None:
            label = what or f"input {i} ('{self.node.inputs[i] if self.has_input(i) else ''}')"
            raise self.fail(Reason.REQUIRES_CONSTANT_INPUT, f"{label} must be a constant")
        return value

    def in_shape(self, i: int) -> tuple[int, ...]:
        return self.input(i).shape

    def in_dtype(self, i: int) -> np.dtype:
        return self.input(i).dtype

    # -- outputs -------------------------------------------------------------------------
    def out_shape(self, i: int = 0) -> tuple[int, ...] | None:
        return self.graph.shapes.get(self.node.outputs[i])

    def output(self, i: int = 0, shape: tuple[int, ...] | None = None, dtype: np.dtype | None = None) -> Tensor:
        """The IR tensor for ONNX output ``i`` (created on first call)."""
        name = self.node.outputs[i]
        existing = self.graph.values.get(name)
        if existing is not None:
            return existing
        if shape is None:
            shape = self.graph.shapes.get(name)
        if shape is None:
            raise self.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, f"the shape of output '{name}' is not known")
        if dtype is None:
            dtype = self.graph.dtypes.get(name)
        if dtype is None:
            dtype = self.input(0).dtype
        t = Tensor(self.graph.unique(name), tuple(shape), np.dtype(dtype))
        self.graph.values[name] = t
        return t

    # -- building ------------------------------------------------------------------------
    def tmp(self, shape: tuple[int, ...], dtype: np.dtype | type, hint: str = "t") -> Tensor:
        return Tensor(self.graph.unique(f"{self.node.name}/{hint}"), tuple(shape), np.dtype(dtype))

    def new_const(self, value: np.ndarray | float | int | list, dtype: np.dtype | type | None = None,
                  hint: str = "const") -> Tensor:
        arr = np.asarray(value, dtype=dtype)
        return Tensor(self.graph.unique(f"{self.node.name}/{hint}"), arr.shape, arr.dtype, data=arr)

    def emit(self, opcode: str, inputs: list[Tensor | None], outputs: list[Tensor], **options: Any) -> Operator:
        op = Operator(opcode, list(inputs), list(outputs), dict(options), origin=self.node.name)
        self.graph.operators.append(op)
        self.emitted.append(op)
        return op

    def emit1(self, opcode: str, inputs: list[Tensor | None], shape: tuple[int, ...], dtype: np.dtype | type,
              hint: str = "t", out: Tensor | None = None, **options: Any) -> Tensor:
        """Emit a single-output op into ``out`` or a new temporary; return the output."""
        y = out if out is not None else self.tmp(shape, dtype, hint)
        self.emit(opcode, inputs, [y], **options)
        return y

    def producer(self, t: Tensor) -> Operator | None:
        """The operator already emitted into this graph that writes ``t`` (None for inputs/constants)."""
        for op in reversed(self.graph.operators):
            if any(o is t for o in op.outputs):
                return op
        return None

    # -- common shape ops ----------------------------------------------------------------
    def transpose(self, x: Tensor, perm: tuple[int, ...], out: Tensor | None = None) -> Tensor:
        perm = tuple(int(p) for p in perm)
        shape = tuple(x.shape[p] for p in perm)
        if x.is_const and out is None:
            return self.new_const(np.transpose(x.data, perm), hint="transposed")
        if perm == tuple(range(len(perm))):  # identity (incl. rank 0/1): LiteRT's rank-0 TRANSPOSE misbehaves
            return x if out is None else self.reshape(x, shape, out=out)
        return self.emit1("TRANSPOSE", [x, self.new_const(np.array(perm, np.int32), hint="perm")],
                          shape, x.dtype, "transpose", out)

    def reshape(self, x: Tensor, shape: tuple[int, ...], out: Tensor | None = None) -> Tensor:
        shape = tuple(int(d) for d in shape)
        if x.is_const and out is None:
            return self.new_const(x.data.reshape(shape), hint="reshaped")
        return self.emit1("RESHAPE", [x, self.new_const(np.array(shape, np.int32), hint="shape")],
                          shape, x.dtype, "reshape", out)

    def to_channels_last(self, x: Tensor) -> Tensor:
        return self.transpose(x, channels_last_perm(x.rank))

    def from_channels_last(self, y: Tensor, out: Tensor | None = None) -> Tensor:
        return self.transpose(y, inverse_perm(channels_last_perm(y.rank)), out)

    def channels_last_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[p] for p in channels_last_perm(len(shape)))
