"""The LiteRT-level graph the lowerings build and the passes rewrite."""
from .graph import Model, Operator, Quantization, Subgraph, Tensor

__all__ = ["Model", "Operator", "Quantization", "Subgraph", "Tensor"]
