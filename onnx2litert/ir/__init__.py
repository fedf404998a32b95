"""The LiteRT-level graph the lowerings build and the passes rewrite."""
from .graph import DeferredCast, Model, Operator, Quantization, Subgraph, Tensor

__all__ = ["DeferredCast", "Model", "Operator", "Quantization", "Subgraph", "Tensor"]
