"""Quantized and reduced-precision variants of the optimized float IR."""
from .float16 import to_float16_weights

__all__ = ["to_float16_weights"]
