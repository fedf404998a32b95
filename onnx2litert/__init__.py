"""onnx2litert: convert ONNX models to LiteRT (TFLite) flatbuffers directly, without TensorFlow."""
from .convert import ConversionResult, convert
from .errors import ConversionError, Reason
from .evaluate import run_tflite
from .options import ConversionOptions

__version__ = "0.1.0"

__all__ = ["ConversionError", "ConversionOptions", "ConversionResult", "Reason", "__version__", "convert",
           "run_tflite"]
