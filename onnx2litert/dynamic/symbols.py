"""Which graph-input dims are symbolic, and which of them stay dynamic.

Reading the declared input shapes must not cost a second model load: for bytes and files the
protobuf wire format is walked and only the graph's ``input`` entries (and initializer names)
are decoded; weights are skipped by their length prefix.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..options import ConversionOptions

# A declared input dim: a static size (int) or a symbolic one (its dim_param, "" when unnamed).
Dim = int | str


@dataclass(frozen=True)
class InputDecl:
    """A graph input (not an initializer) as the model declares it; ``dims`` is None for unknown rank."""

    name: str
    dims: tuple[Dim, ...] | None


@dataclass(frozen=True)
class Symbol:
    """One symbolic size: a named dim_param (shared by every input using it) or one unnamed dim."""

    label: str
    occurrences: tuple[tuple[str, int], ...]  # (input name, ONNX axis)

    @property
    def batch_like(self) -> bool:
        """Leading-axis symbols are batch sizes by convention (today's -b / fix-to-1 rule)."""
        return any(axis == 0 for _, axis in self.occurrences)

    def describe(self) -> str:
        where = ", ".join(f"'{n}' axis {a}" for n, a in self.occurrences)
        return f"'{self.label}' ({where})"


# --- protobuf wire walking --------------------------------------------------------------------

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_SPARSE_INITIALIZER = 5, 11, 15
_TENSOR_NAME = 8
_SPARSE_VALUES = 1


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview):
    """Yield (field number, wire type, payload view or int) for one message; skips nothing it cannot parse."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field_no, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield field_no, wire, buf[pos:pos + size]
            pos += size
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _tensor_name(buf: memoryview) -> str:
    for f, w, v in _fields(buf):
        if f == _TENSOR_NAME and w == 2:
            return bytes(v).decode("utf-8", "replace")
    return ""


def _graph_inputs_from_wire(data: memoryview) -> list[onnx.ValueInfoProto] | None:
    """The graph inputs that are not initializers, decoded from serialized ModelProto bytes."""
    graph = None
    for f, w, v in _fields(data):
        if f == _MODEL_GRAPH and w == 2:
            graph = v
    if graph is None:
        return None
    inputs, init_names = [], set()
    for f, w, v in _fields(graph):
        if w != 2:
            continue
        if f == _GRAPH_INPUT:
            inputs.append(onnx.ValueInfoProto.FromString(bytes(v)))
        elif f == _GRAPH_INITIALIZER:
            init_names.add(_tensor_name(v))
        elif f == _GRAPH_SPARSE_INITIALIZER:
            for f2, w2, v2 in _fields(v):
                if f2 == _SPARSE_VALUES and w2 == 2:
                    init_names.add(_tensor_name(v2))
    return [vi for vi in inputs if vi.name not in init_names]


def _decl(vi: onnx.ValueInfoProto) -> InputDecl | None:
    if not vi.type.HasField("tensor_type"):
        return None
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return InputDecl(vi.name, None)
    dims: list[Dim] = []
    for d in tt.shape.dim:
        # Same rule as the frontend: a non-negative dim_value is static (0 = zero-sized).
        dims.append(int(d.dim_value) if d.HasField("dim_value") and d.dim_value >= 0 else d.dim_param)
    return InputDecl(vi.name, tuple(dims))


def declared_inputs(source: str | os.PathLike | bytes | bytearray | onnx.ModelProto) -> list[InputDecl] | None:
    """The model's declared graph inputs, or None when they cannot be read cheaply (the frontend reports why)."""
    try:
        if isinstance(source, onnx.ModelProto):
            inits = {t.name for t in source.graph.initializer}
            vis = [vi for vi in source.graph.input if vi.name not in inits]
        elif isinstance(source, (bytes, bytearray)):
            vis = _graph_inputs_from_wire(memoryview(bytes(source)))
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file() or path.stat().st_size == 0:
                return None
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)
                try:
                    vis = _graph_inputs_from_wire(view)
                finally:
                    view.release()
        else:
            return None
    except Exception:  # unreadable or malformed: the frontend produces the real error
        return None
    if vis is None:
        return None
    decls = [_decl(vi) for vi in vis]
    return [d for d in decls if d is not None]


def find_symbols(decls: list[InputDecl], options: ConversionOptions) -> tuple[list[Symbol], dict[str, int]]:
    """Symbols that stay dynamic, and the values of symbols the options pin (by label).

    ``-ois`` pins every dim of the inputs it names (a named symbol appearing there is pinned
    everywhere); ``-b`` pins leading-axis symbols. Unnamed dims are separate symbols.
    """
    overrides = options.input_shape_overrides()
    pinned: dict[str, int] = {}
    for d in decls:
        if d.name in overrides and d.dims is not None and len(overrides[d.name]) == len(d.dims):
            for dim, value in zip(d.dims, overrides[d.name]):
                if isinstance(dim, str) and dim:
                    pinned.setdefault(dim, int(value))
    occurrences: dict[str, list[tuple[str, int]]] = {}
    for d in decls:
        if d.name in overrides or d.dims is None:
            continue
        for axis, dim in enumerate(d.dims):
            if isinstance(dim, str):
                label = dim or f"{d.name}:{axis}"
                occurrences.setdefault(label, []).append((d.name, axis))
    symbols = []
    for label, occ in occurrences.items():
        if label in pinned:
            continue
        sym = Symbol(label, tuple(occ))
        if sym.batch_like and options.batch_size is not None:
            pinned[label] = options.batch_size
            continue
        symbols.append(sym)
    return symbols, pinned
