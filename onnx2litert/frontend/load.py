"""Safe loading of ONNX models: clear errors, external data confined to the model folder.

Weights leave the protobuf as soon as they are read: :func:`load_graph` returns the model
*without* initializers plus a ``name -> numpy array`` dict, so a large model is never held
twice (once as protobuf bytes, once as arrays). The caller's ModelProto and files are only
read, never modified.

External-data initializers of at least :data:`MAP_MIN_BYTES` are memory-mapped, not read:
the array is a read-only view of the data file (one mapping per file), so a model with
W bytes of weights costs no anonymous memory to load and its pages are shared with the OS
page cache; export drops a weight's pages again once it is written
(:func:`onnx2litert.export.flatbuffer.release_pages`). Like the arrays decoded from inline
``raw_data``, they are read-only: a pass that wants other values makes a new array.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from ..errors import ConversionError, Issue, Reason

# Every lowering declares the opset range it covers (``since``/``until``), so a node at an old
# opset whose definition no lowering covers still fails, node by node, with unsupported_opset.
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()  # newer ops are checked node by node (lower.registry)

ModelSource = str | os.PathLike | bytes | bytearray | onnx.ModelProto

#: External-data initializers this large (bytes) are memory-mapped; smaller ones are read.
MAP_MIN_BYTES = 1 << 20
# ONNX element types whose external bytes are exactly numpy's little-endian layout.
_MAPPABLE = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8,
             onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.UINT8,
             onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL}


def _invalid(msg: str) -> ConversionError:
    return ConversionError(Issue(Reason.INVALID_MODEL, msg))


def load_model(source: ModelSource) -> onnx.ModelProto:
    """Load a model (path, bytes or ModelProto) as a private copy with all weights inline."""
    model, constants = load_graph(source)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items())
    return model


def load_graph(source: ModelSource) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Load ``source``; return (model without initializers, initializer arrays by name).

    Raises ``invalid_model`` for a missing file, a folder, bytes that are not an ONNX model
    or external data that cannot be read, and ``unsafe_external_data`` for an external-data
    location outside the model's folder.
    """
    if isinstance(source, onnx.ModelProto):
        _require_no_external_data(source, "the ModelProto given")  # the caller's initializers, not the copy's
        model = _copy_without_initializers(source)
        return model, _arrays(source.graph.initializer, None, "the ModelProto given", clear=False)
    if isinstance(source, (bytes, bytearray)):
        model = _parse(bytes(source), "the bytes given")
        _require_no_external_data(model, "the bytes given")
        return model, _take_initializers(model, None, "the bytes given")
    if not isinstance(source, (str, os.PathLike)):
        raise _invalid(f"expected a path, bytes or onnx.ModelProto, got {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise _invalid(f"file not found: {path}")
    if not path.is_file():
        raise _invalid(f"not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    model = _parse(data, str(path))
    del data
    base = path.resolve().parent
    _check_external_locations(model, base)
    _inline_attribute_tensors(model, base)
    return model, _take_initializers(model, base, str(path))


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises several types
        raise _invalid(f"{what} is not an ONNX model ({type(exc).__name__})") from None
    # Random bytes can parse as an (almost) empty message: require the basics of a model.
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise _invalid(f"{what} is not an ONNX model (no graph)")
    return model


def _copy_without_initializers(source: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy of ``source`` minus its initializers (which may be gigabytes)."""
    model = onnx.ModelProto()
    copy_fields(source, model, skip=("graph",))
    copy_fields(source.graph, model.graph, skip=("initializer", "sparse_initializer"))
    return model


def copy_fields(src: object, dst: object, skip: tuple[str, ...] = ()) -> None:
    """Copy every set field of protobuf message ``src`` into ``dst`` except those in ``skip``."""
    for desc, value in src.ListFields():
        if desc.name in skip:
            continue
        target = getattr(dst, desc.name)
        if hasattr(target, "extend"):
            target.extend(value)
        elif hasattr(target, "CopyFrom"):
            target.CopyFrom(value)
        else:
            setattr(dst, desc.name, value)


def _all_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return list(external_data_helper._get_all_tensors(model))


def _require_no_external_data(model: onnx.ModelProto, what: str) -> None:
    """Without a folder there is nothing safe to resolve a relative location against."""
    for tensor in _all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            raise _invalid(f"{what} references external data for tensor '{tensor.name}' "
                           "('" + external_data_helper.ExternalDataInfo(tensor).location + "'); "
                           "convert from the .onnx file path so it can be read from the model's folder")


def _safe_target(tensor: onnx.TensorProto, base: Path) -> Path:
    """The external-data file of ``tensor``, which must resolve inside ``base``."""
    location = external_data_helper.ExternalDataInfo(tensor).location
    target = (base / location).resolve()  # resolve() follows symlinks, so links out are caught
    if not location or os.path.isabs(location) or Path(location).drive or base not in target.parents:
        raise ConversionError(Issue(
            Reason.UNSAFE_EXTERNAL_DATA,
            f"tensor '{tensor.name}' points at external data '{location}', outside the model folder {base}"))
    return target


def _check_external_locations(model: onnx.ModelProto, base: Path) -> None:
    """Vet every location before reading any file: unsafe paths first, then missing files."""
    for tensor in _all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        target = _safe_target(tensor, base)
        if not target.is_file():
            raise _invalid(f"external data file for tensor '{tensor.name}' not found: {target}")


def _read_external(tensor: onnx.TensorProto, base: Path) -> bytes:
    info = external_data_helper.ExternalDataInfo(tensor)
    target = _safe_target(tensor, base)
    try:
        with open(target, "rb") as f:
            offset = int(info.offset or 0)
            f.seek(offset)
            data = f.read(int(info.length)) if info.length else f.read()
            if info.length and len(data) != int(info.length):
                raise _invalid(f"external data for tensor '{tensor.name}' is truncated: wanted {info.length} "
                               f"bytes at offset {offset} of {target}, got {len(data)}")
    except OSError as exc:
        raise _invalid(f"cannot read external data for tensor '{tensor.name}': {exc.strerror or exc}") from None
    return data


def _inline(tensor: onnx.TensorProto, base: Path) -> None:
    """Move external bytes into ``raw_data`` so the tensor is self-contained."""
    data = _read_external(tensor, base)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
    tensor.raw_data = data


def _inline_attribute_tensors(model: onnx.ModelProto, base: Path) -> None:
    """Constant-node values and other attribute tensors (initializers are handled separately)."""
    top_level = {t.name for t in model.graph.initializer}
    for tensor in _all_tensors(model):
        if external_data_helper.uses_external_data(tensor) and tensor.name not in top_level:
            _inline(tensor, base)


def _to_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:
        raise _invalid(f"{what}: initializer '{tensor.name}' cannot be decoded ({exc})") from None


def _map_external(tensor: onnx.TensorProto, base: Path, maps: dict[Path, mmap.mmap]) -> np.ndarray | None:
    """A read-only memory map of a large external initializer (None: read it instead).

    Only plain numeric types are mapped (their file bytes are the array's bytes); the
    mapping of each data file is opened once and shared by its tensors.
    """
    if tensor.data_type not in _MAPPABLE:
        return None
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
    shape = tuple(int(d) for d in tensor.dims)
    count = int(np.prod(shape, dtype=np.int64))
    need = count * dtype.itemsize
    if need < MAP_MIN_BYTES:
        return None
    info = external_data_helper.ExternalDataInfo(tensor)
    target = _safe_target(tensor, base)
    offset = int(info.offset or 0)
    if info.length and int(info.length) != need:
        raise _invalid(f"external data for tensor '{tensor.name}' has {info.length} bytes; its shape "
                       f"{list(shape)} and type need {need}")
    try:
        mapped = maps.get(target)
        if mapped is None:
            with open(target, "rb") as f:
                mapped = maps[target] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise _invalid(f"cannot map external data for tensor '{tensor.name}': {exc}") from None
    if offset + need > len(mapped):
        raise _invalid(f"external data for tensor '{tensor.name}' is truncated: wanted {need} bytes at offset "
                       f"{offset} of {target}, which has {len(mapped)}")
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)


def _arrays(tensors: object, base: Path | None, what: str, clear: bool) -> dict[str, np.ndarray]:
    """Initializers to arrays; with ``clear`` each proto's bytes are dropped once converted."""
    out: dict[str, np.ndarray] = {}
    maps: dict[Path, mmap.mmap] = {}
    for tensor in tensors:
        if base is not None and external_data_helper.uses_external_data(tensor):
            mapped = _map_external(tensor, base, maps)
            if mapped is not None:
                out[tensor.name] = mapped
                continue
            _inline(tensor, base)
        out[tensor.name] = _to_array(tensor, what)
        if clear:
            tensor.ClearField("raw_data")
    return out


def _take_initializers(model: onnx.ModelProto, base: Path | None, what: str) -> dict[str, np.ndarray]:
    constants = _arrays(model.graph.initializer, base, what, clear=True)
    del model.graph.initializer[:]
    return constants


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset, checked against the supported range."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if not MIN_OPSET <= imp.version <= MAX_OPSET:
                raise ConversionError(Issue(
                    Reason.UNSUPPORTED_OPSET,
                    f"opset {imp.version} is outside the supported range {MIN_OPSET}-{MAX_OPSET}"))
            return int(imp.version)
    if not any(imp.domain for imp in model.opset_import) or _uses_default_domain(model.graph):
        raise ConversionError(Issue(Reason.UNSUPPORTED_OPSET, "the model imports no default-domain opset"))
    # Only other domains (e.g. ai.onnx.ml): no default-domain node exists, so the newest opset serves
    # as the (unused) default.
    return MAX_OPSET


def _uses_default_domain(graph: onnx.GraphProto) -> bool:
    """True when ``graph`` or one of its subgraphs has a default-domain node."""
    for node in graph.node:
        if node.domain in ("", "ai.onnx"):
            return True
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.HasField("g") else list(attr.graphs)
            if any(_uses_default_domain(g) for g in subgraphs):
                return True
    return False
