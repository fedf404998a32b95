"""Lowering: ONNX nodes -> LiteRT builtin ops in the IR (one registry, op-family modules)."""
from . import ops  # noqa: F401  (registers every lowering)
from .driver import LoweredGraph, lower_graph
from .registry import REGISTRY

__all__ = ["LoweredGraph", "REGISTRY", "lower_graph"]
