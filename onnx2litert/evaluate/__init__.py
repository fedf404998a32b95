"""Run converted models in LiteRT and compare them with ONNX Runtime."""
from .accuracy import compare_outputs, evaluate_against_onnx
from .runtime import OnnxReference, TfliteRunner, make_inputs, run_onnx, run_tflite

__all__ = ["OnnxReference", "TfliteRunner", "compare_outputs", "evaluate_against_onnx", "make_inputs", "run_onnx",
           "run_tflite"]
