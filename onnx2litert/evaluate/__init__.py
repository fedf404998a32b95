"""Run converted models in LiteRT and compare them with ONNX Runtime."""
from .accuracy import compare_outputs, evaluate_against_onnx
from .runtime import make_inputs, run_onnx, run_tflite

__all__ = ["compare_outputs", "evaluate_against_onnx", "make_inputs", "run_onnx", "run_tflite"]
