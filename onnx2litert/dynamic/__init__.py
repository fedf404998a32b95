"""Dynamic shapes: keep symbolic input dims (batch, sequence length...) dynamic in the LiteRT model.

See :mod:`onnx2litert.dynamic.generalize` for how (multi-point conversion and comparison).
"""
from .generalize import DynamicPlan, NotGeneral, convert_point, static_fallback_warning, fit_multilinear, generalize, \
    plan_dynamic, representative_hint
from .symbols import InputDecl, Symbol, declared_inputs, find_symbols

__all__ = ["DynamicPlan", "InputDecl", "NotGeneral", "Symbol", "convert_point", "declared_inputs",
           "static_fallback_warning", "find_symbols", "fit_multilinear", "generalize", "plan_dynamic",
           "representative_hint"]
