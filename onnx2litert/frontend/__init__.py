"""Load and normalize an ONNX model before lowering."""
from .prepare import PreparedGraph, prepare

__all__ = ["PreparedGraph", "prepare"]
