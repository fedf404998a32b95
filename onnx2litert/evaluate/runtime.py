"""Running ONNX Runtime and the LiteRT interpreter on ONNX-layout inputs."""
from __future__ import annotations

import json
import mmap
import os

import numpy as np

from ..errors import ConversionError, Issue, Reason

LAYOUT_METADATA = "onnx2litert_io_layout"


def make_inputs(specs: list[tuple[str, tuple[int, ...], np.dtype]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs: standard normal floats, small non-negative ints, random bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, dtype in specs:
        dtype = np.dtype(dtype)
        if dtype.kind == "f" or dtype.name == "bfloat16":  # ml_dtypes.bfloat16 has kind "V"
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[name] = rng.integers(0, 8, shape).astype(dtype)
    return feeds


def _ort_failure(exc: Exception) -> ConversionError:
    """ONNX Runtime's own errors (unsupported IR version, its shape inference...) as one clear issue."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ConversionError(Issue(Reason.INVALID_MODEL, f"ONNX Runtime cannot run the reference model: {detail}"))


class OnnxReference:
    """An ONNX Runtime session (one thread, CPU) built once and run on many feeds.

    Errors of ONNX Runtime itself, when loading or running, become ``invalid_model``
    :class:`ConversionError` issues: the reference, not the converted file, is what failed.
    """

    def __init__(self, model: str | os.PathLike | bytes):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        source = str(model) if not isinstance(model, (bytes, bytearray)) else bytes(model)
        try:
            self._session = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Exception subclasses (Fail, InvalidGraph, ...)
            raise _ort_failure(exc) from exc
        self.output_names = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs by name for one feed dict."""
        try:
            values = self._session.run(self.output_names, feeds)
        except Exception as exc:
            raise _ort_failure(exc) from exc
        return dict(zip(self.output_names, values))


def run_onnx(model: str | os.PathLike | bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ONNX Runtime once (one thread, CPU); use :class:`OnnxReference` to run many feeds."""
    return OnnxReference(model).run(feeds)


def read_layout(tflite: bytes | mmap.mmap) -> dict:
    """The I/O layout mapping stored in the model's metadata ({} if absent)."""
    from ai_edge_litert import schema_py_generated as S

    m = S.Model.GetRootAs(tflite, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name().decode() == LAYOUT_METADATA:
            buf = m.Buffers(md.Buffer())
            return json.loads(buf.DataAsNumpy().tobytes().decode())
    return {}


class TfliteRunner:
    """A converted model's interpreter, built once and run on many ONNX-layout feeds.

    Inputs the converter exposed channels-last are transposed using the layout mapping in
    the model's metadata, so callers never need to know which inputs were changed.
    """

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int = 1, use_default_delegates: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # XNNPACK is LiteRT's default CPU path; the builtin kernels alone are the reference path.
        kw = {} if use_default_delegates else {
            "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        if isinstance(model, (bytes, bytearray)):
            layout = read_layout(bytes(model))
            interp = Interpreter(model_content=bytes(model), num_threads=num_threads, **kw)
        else:  # from a path LiteRT memory-maps the file: no copy of a large model in this process
            with open(model, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                layout = read_layout(mapped)
            interp = Interpreter(model_path=str(model), num_threads=num_threads, **kw)
        self._runner = interp.get_signature_runner("serving_default")
        self._in_layout = layout.get("inputs", {})
        self._out_layout = layout.get("outputs", {})

    def input_details(self) -> dict:
        """Signature input details (dtype, shape, quantization) by name."""
        return self._runner.get_input_details()

    def output_details(self) -> dict:
        """Signature output details (dtype, shape, quantization) by name."""
        return self._runner.get_output_details()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs in ONNX layout for ONNX-layout feeds."""
        args = {}
        for name, value in feeds.items():
            perm = (self._in_layout.get(name) or {}).get("perm_from_onnx")
            value = np.asarray(value)
            # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d)
            args[name] = np.require(np.transpose(value, perm) if perm else value, requirements="C")
        outs = self._runner(**args)
        result = {}
        for name, value in outs.items():
            perm = (self._out_layout.get(name) or {}).get("perm_from_onnx")
            result[name] = np.transpose(value, np.argsort(perm)) if perm else value
        return result


def run_tflite(model: str | os.PathLike | bytes, feeds: dict[str, np.ndarray], num_threads: int = 1,
               use_default_delegates: bool = True) -> dict[str, np.ndarray]:
    """Run a converted model once on ONNX-layout feeds; outputs come back in ONNX layout.

    Use :class:`TfliteRunner` to run many feeds on one interpreter.
    """
    return TfliteRunner(model, num_threads, use_default_delegates).run(feeds)
