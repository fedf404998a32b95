"""Quantized and reduced-precision variants of the optimized float IR."""
from .calibrate import Range, collect_ranges, load_samples
from .dynamic_range import to_dynamic_range
from .float16 import to_float16_weights
from .integer import QuantizeReport, integer_kernel_ops, quantize_integer, ranges_by_position

__all__ = ["QuantizeReport", "Range", "collect_ranges", "integer_kernel_ops", "load_samples", "quantize_integer",
           "ranges_by_position", "to_dynamic_range", "to_float16_weights"]
