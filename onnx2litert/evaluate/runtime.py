"""Running ONNX Runtime and the LiteRT interpreter on ONNX-layout inputs."""
from __future__ import annotations

import json
import mmap
import os

import numpy as np

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


def run_onnx(model: str | os.PathLike | bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ONNX Runtime on one thread with all graph optimizations off-by-default safe."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    source = str(model) if not isinstance(model, (bytes, bytearray)) else bytes(model)
    sess = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


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


def run_tflite(model: str | os.PathLike | bytes, feeds: dict[str, np.ndarray], num_threads: int = 1,
               use_default_delegates: bool = True) -> dict[str, np.ndarray]:
    """Run a converted model on ONNX-layout feeds; outputs come back in ONNX layout.

    Inputs the converter exposed channels-last are transposed using the layout mapping in
    the model's metadata, so callers never need to know which inputs were changed.
    """
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
    runner = interp.get_signature_runner("serving_default")
    in_layout = layout.get("inputs", {})
    args = {}
    for name, value in feeds.items():
        perm = (in_layout.get(name) or {}).get("perm_from_onnx")
        value = np.asarray(value)
        # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d)
        args[name] = np.require(np.transpose(value, perm) if perm else value, requirements="C")
    outs = runner(**args)
    out_layout = layout.get("outputs", {})
    result = {}
    for name, value in outs.items():
        perm = (out_layout.get(name) or {}).get("perm_from_onnx")
        result[name] = np.transpose(value, np.argsort(perm)) if perm else value
    return result
