"""Frontend fusions: activation formulas exported as arithmetic -> the one op LiteRT has a kernel for.

PyTorch exports GELU (opsets < 20 have no Gelu op) as arithmetic around Erf or Tanh:

* erf form: ``0.5 * x * (1 + erf(x / sqrt(2)))``;
* tanh form: ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))``.

LiteRT has no ERF builtin, so node by node the erf form lowers to a ~20-op rational
approximation; the GELU builtin computes the same function in one op that XNNPACK runs
(at 56x56x256: 0.48 ms against several ms for the arithmetic). The fused node is ONNX Runtime's
``com.microsoft`` ``Gelu`` (erf) or ``FastGelu`` (tanh), so the rewritten graph is still a
valid ONNX graph; the products may come in any association and operand order, ``/ 2`` may
stand for ``* 0.5``. Only float32 tensors are fused (the GELU kernel's type).
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from .fold import replace_nodes

MS_DOMAIN = "com.microsoft"
# float32 constants of the formula are roundings of these; compare with float32 precision.
_RTOL = 1e-6


class _Graph:
    """Producer / consumer lookups over a node list, with scalar constants."""

    def __init__(self, nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray], keep: set[str]):
        self.constants = constants
        self.producer = {o: n for n in nodes for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.keep = keep  # graph outputs and values read by subgraphs: never fused away

    def scalar(self, name: str) -> float | None:
        v = self.constants.get(name)
        if v is None or v.size != 1 or v.dtype.kind != "f":
            return None
        return float(v.reshape(()))

    def is_scalar(self, name: str, value: float) -> bool:
        v = self.scalar(name)
        return v is not None and math.isclose(v, value, rel_tol=_RTOL, abs_tol=0.0)

    def sole_consumer(self, name: str, op_type: str | tuple[str, ...]) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        if name in self.keep or len(users) != 1 or users[0].op_type not in (op_type if isinstance(op_type, tuple)
                                                                              else (op_type,)):
            return None
        return users[0]

    def made_by(self, name: str, op_type: str) -> onnx.NodeProto | None:
        n = self.producer.get(name)
        return n if n is not None and n.op_type == op_type and n.domain in ("", "ai.onnx") else None

    def private(self, node: onnx.NodeProto, reader: onnx.NodeProto) -> bool:
        """``node``'s output is read only by ``reader`` (so fusing both removes no visible value)."""
        return self.sole_consumer(node.output[0], reader.op_type) is reader


def _other(node: onnx.NodeProto, name: str) -> str | None:
    """The other operand of a binary node one of whose operands is ``name``."""
    if len(node.input) != 2 or name not in node.input:
        return None
    return node.input[1] if node.input[0] == name else node.input[0]


def _scaled_by(g: _Graph, node: onnx.NodeProto, operand: str, value: float) -> bool:
    """``node`` computes ``operand * value`` (Mul by the constant, or Div by its inverse)."""
    if node.op_type == "Mul":
        return _other(node, operand) is not None and g.is_scalar(_other(node, operand), value)
    return node.op_type == "Div" and node.input[0] == operand and g.is_scalar(node.input[1], 1.0 / value)


def _half_x_times(g: _Graph, s: str, x: str) -> tuple[str, list[onnx.NodeProto]] | None:
    """Match ``y = 0.5 * x * s`` built from two products in any grouping; return (y, its nodes)."""
    m1 = g.sole_consumer(s, ("Mul", "Div"))
    if m1 is None:
        return None
    other = _other(m1, s) if m1.op_type == "Mul" else None
    if other == x:  # (x * s) * 0.5  or  (x * s) / 2
        m2 = g.sole_consumer(m1.output[0], ("Mul", "Div"))
        if m2 is not None and _scaled_by(g, m2, m1.output[0], 0.5):
            return m2.output[0], [m1, m2]
        return None
    if _scaled_by(g, m1, s, 0.5):  # (s * 0.5) * x
        m2 = g.sole_consumer(m1.output[0], "Mul")
        if m2 is not None and _other(m2, m1.output[0]) == x:
            return m2.output[0], [m1, m2]
        return None
    half = g.producer.get(other) if other is not None else None  # (x * 0.5) * s
    if half is not None and half.op_type in ("Mul", "Div") and _scaled_by(g, half, x, 0.5) and g.private(half, m1):
        return m1.output[0], [half, m1]
    return None


def _one_plus(g: _Graph, t: str) -> onnx.NodeProto | None:
    add = g.sole_consumer(t, "Add")
    return add if add is not None and g.is_scalar(_other(add, t) or "", 1.0) else None


def _erf_gelu(g: _Graph, erf: onnx.NodeProto) -> tuple[str, str, list[onnx.NodeProto]] | None:
    """(x, y, nodes) of ``y = 0.5 * x * (1 + erf(x / sqrt(2)))`` around ``erf``."""
    pre = g.producer.get(erf.input[0])
    if pre is None or pre.op_type not in ("Mul", "Div") or not g.private(pre, erf):
        return None
    x = next((i for i in pre.input if _scaled_by(g, pre, i, 1.0 / math.sqrt(2.0))), None)
    add = _one_plus(g, erf.output[0])
    if x is None or add is None:
        return None
    tail = _half_x_times(g, add.output[0], x)
    return None if tail is None else (x, tail[0], [pre, erf, add, *tail[1]])


def _cube(g: _Graph, name: str, x: str) -> list[onnx.NodeProto] | None:
    """Nodes computing ``name = x^3`` (Pow(x, 3), or x*x*x in either grouping)."""
    node = g.producer.get(name)
    if node is None:
        return None
    if node.op_type == "Pow" and node.input[0] == x and g.is_scalar(node.input[1], 3.0):
        return [node]
    if node.op_type != "Mul" or x not in node.input:
        return None
    sq = g.made_by(_other(node, x) or "", "Mul")
    if sq is not None and list(sq.input) == [x, x] and g.private(sq, node):
        return [sq, node]
    return None


def _tanh_gelu(g: _Graph, tanh: onnx.NodeProto) -> tuple[str, str, list[onnx.NodeProto]] | None:
    """(x, y, nodes) of ``y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` around ``tanh``."""
    scale = g.made_by(tanh.input[0], "Mul")
    if scale is None or not g.private(scale, tanh):
        return None
    inner_name = next((i for i in scale.input if _scaled_by(g, scale, i, math.sqrt(2.0 / math.pi))), None)
    inner = g.made_by(inner_name or "", "Add")
    if inner is None or not g.private(inner, scale):
        return None
    for x, term in ((inner.input[0], inner.input[1]), (inner.input[1], inner.input[0])):
        coef = g.made_by(term, "Mul")
        if coef is None or not g.private(coef, inner):
            continue
        cube_name = next((i for i in coef.input if _scaled_by(g, coef, i, 0.044715)), None)
        cube = _cube(g, cube_name, x) if cube_name is not None else None
        if cube is None or not g.private(cube[-1], coef):
            continue
        add = _one_plus(g, tanh.output[0])
        tail = _half_x_times(g, add.output[0], x) if add is not None else None
        if tail is not None:
            return x, tail[0], [*cube, coef, inner, scale, tanh, add, *tail[1]]
    return None


def fuse_gelu(model: onnx.ModelProto, constants: dict[str, np.ndarray], dtypes: dict[str, np.dtype],
              keep: set[str]) -> int:
    """Replace every float32 GELU formula by one ``com.microsoft`` Gelu / FastGelu node; return the count.

    ``keep`` names values that must stay computed (graph outputs, values read by subgraphs):
    a formula whose intermediate is one of them is left alone.
    """
    nodes = list(model.graph.node)
    g = _Graph(nodes, constants, keep)
    replaced: dict[int, onnx.NodeProto] = {}  # id of the formula's last node -> fused node
    dropped: set[int] = set()
    for node in nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type not in ("Erf", "Tanh"):
            continue
        match = (_erf_gelu if node.op_type == "Erf" else _tanh_gelu)(g, node)
        if match is None:
            continue
        x, y, parts = match
        if dtypes.get(x) != np.dtype(np.float32) or any(id(p) in dropped for p in parts):
            continue
        op = "Gelu" if node.op_type == "Erf" else "FastGelu"
        name = (node.name or y) + "/fused_gelu"
        replaced[id(g.producer[y])] = helper.make_node(op, [x], [y], name=name, domain=MS_DOMAIN)
        dropped.update(id(p) for p in parts)
    if not replaced:
        return 0
    out = [replaced.get(id(n), n) for n in nodes if id(n) not in dropped or id(n) in replaced]
    replace_nodes(model.graph, out)
    if not any(imp.domain == MS_DOMAIN for imp in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(replaced)
