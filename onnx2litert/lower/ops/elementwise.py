"""Elementwise arithmetic with ONNX (numpy) broadcasting."""
from __future__ import annotations

from ..context import LowerContext, NodeView
from ..registry import lowering

_BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV"}


@lowering(*_BINARY, since=7)
def lower_binary(node: NodeView, ctx: LowerContext) -> None:
    a, b = ctx.input(0), ctx.input(1)
    ctx.emit(_BINARY[node.op_type], [a, b], [ctx.output(0)], **(
        {"fusedActivationFunction": "NONE"} if node.op_type in _BINARY else {}))
