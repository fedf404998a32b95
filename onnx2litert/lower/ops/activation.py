"""Activation functions: Relu, Sigmoid, Tanh, ..."""
from __future__ import annotations

from ..context import LowerContext, NodeView
from ..registry import lowering

_UNARY = {"Relu": "RELU", "Sigmoid": "LOGISTIC", "Tanh": "TANH"}


@lowering(*_UNARY)
def lower_simple_activation(node: NodeView, ctx: LowerContext) -> None:
    x = ctx.input(0)
    ctx.emit(_UNARY[node.op_type], [x], [ctx.output(0, x.shape)])
