"""Serialize an IR model with the schema's object API.

Deterministic by construction: tensors, buffers and opcodes are numbered in first-use
order, identical constant buffers are stored once (keyed by their bytes), and nothing
depends on hashing of Python objects or on time.

Memory: constant data is never concatenated into one big buffer. :func:`layout_model`
builds only the flatbuffer *tables* (the "head", small) and returns a :class:`FileImage`
that lists where each constant's bytes go in the file; the image is then streamed to a
file (:meth:`FileImage.write_file`) or materialized (:meth:`FileImage.to_bytes`). With
inline buffers the constant data vectors sit after all tables, at the end of the
flatbuffer (a valid flatbuffer: a table reaches its vector through a forward offset).
With external buffers (past 2 GiB, see :mod:`onnx2litert.export.large`) the data
follows the flatbuffer and ``Buffer.offset``/``size`` point at it.
"""
from __future__ import annotations

import io
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S

from ..ir import DeferredCast, Model, Operator, Subgraph, Tensor
from .schema import builtin_code, options_union, tensor_type
from .versions import operator_version

_SCHEMA_VERSION = 3
_BUFFER_ALIGNMENT = 16
#: Constant bytes are read, compared and written in pieces of this size (never all at once).
CHUNK_BYTES = 1 << 24
#: Alignment of every external constant inside the file (>= XNNPACK's 16, and cache-line sized).
EXTERNAL_ALIGNMENT = 64
#: Largest size a flatbuffer can have (signed 32-bit offsets).
FLATBUFFER_LIMIT = 2 ** 31 - 1
# A value for ``offset`` in the sizing pass of the external layout; any non-default value
# gives the same layout, because ulong fields are fixed-size and flatbuffers only omits
# fields equal to the default.
_PLACEHOLDER_OFFSET = 1 << 40


def _read_only_mapping(a: np.ndarray) -> mmap.mmap | None:
    """The read-only ``mmap`` behind ``a`` (e.g. a memory-mapped ONNX weight), if any."""
    base: object = a
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, mmap.mmap):
        return None
    with memoryview(base) as view:
        return base if view.readonly else None


def release_pages(a: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped read-only array from this process.

    The data stays in the file (and usually in the OS page cache); touching the array again
    faults it back in. This keeps a conversion's RSS near "one weight at a time" once the
    weights were written out. A no-op for ordinary arrays and writable mappings (dropping
    those would lose private changes).
    """
    mapped = _read_only_mapping(a)
    if mapped is None or a.nbytes == 0:
        return
    first = np.frombuffer(mapped, dtype=np.uint8, count=1)
    start = a.__array_interface__["data"][0] - first.__array_interface__["data"][0]
    page = mmap.PAGESIZE
    aligned = start // page * page
    length = min(len(mapped), start + a.nbytes) - aligned
    if length > 0 and hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_DONTNEED, aligned, length)


def _bytes_of(a: np.ndarray) -> np.ndarray:
    """A flat uint8 view of ``a`` (a copy only when ``a`` is not contiguous)."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1).view(np.uint8)


class _Blob:
    """The bytes of one constant buffer, read in chunks: an array, a deferred cast or bytes."""

    def __init__(self, data: np.ndarray | DeferredCast | bytes):
        self._deferred = data if isinstance(data, DeferredCast) else None
        # The array whose pages may be released once written (see release_pages).
        self._source = data.source if self._deferred is not None else data
        if self._deferred is not None:
            self._flat = np.ascontiguousarray(self._deferred.source).reshape(-1)
            self.nbytes = self._deferred.nbytes
        elif isinstance(data, (bytes, bytearray)):
            self._raw = np.frombuffer(bytes(data), dtype=np.uint8)
            self.nbytes = len(data)
        else:
            self._raw = _bytes_of(np.asarray(data))
            self.nbytes = int(self._raw.size)

    def _cast(self, start: int, stop: int) -> np.ndarray:
        return _bytes_of(self._flat[start:stop].astype(self._deferred.dtype))

    def chunks(self, size: int | None = None) -> Iterator[memoryview]:
        """The bytes in order, ``size`` (default :data:`CHUNK_BYTES`) bytes per piece."""
        size = size or CHUNK_BYTES
        if self._deferred is None:
            for i in range(0, self.nbytes, size):
                yield memoryview(self._raw[i:i + size])
            return
        per = max(1, size // self._deferred.dtype.itemsize)
        for i in range(0, self._flat.size, per):
            yield memoryview(self._cast(i, i + per))

    def edge(self, n: int = 64) -> tuple[bytes, bytes]:
        """The first and last ``n`` bytes (a cheap identity key, no hashing of the data)."""
        if self._deferred is None:
            return bytes(self._raw[:n]), bytes(self._raw[-n:])
        k = max(1, n // self._deferred.dtype.itemsize)
        size = self._flat.size
        head = self._cast(0, k).tobytes()[:n]
        tail = self._cast(max(0, size - k), size).tobytes()[-n:] if size else b""
        return head, tail

    def key(self) -> tuple:
        return (self.nbytes,) + self.edge()

    def same_bytes(self, other: "_Blob") -> bool:
        """Byte equality, compared chunk by chunk."""
        if self.nbytes != other.nbytes:
            return False
        return all(a == b for a, b in zip(self.chunks(), other.chunks()))

    def write_to(self, f: BinaryIO) -> None:
        for piece in self.chunks():
            f.write(piece)
        if isinstance(self._source, np.ndarray):
            release_pages(self._source)


class _AlignedBuffer:
    """A ``BufferT`` stand-in that packs small bytes (metadata) 16-byte aligned, inline."""

    def __init__(self, data: bytes | None):
        self.data = data

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (schema API name)
        vec = None
        if self.data:
            builder.StartVector(1, len(self.data), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(self.data)
            builder.Bytes[builder.head:builder.head + len(self.data)] = self.data
            vec = builder.EndVector()
        S.BufferStart(builder)
        if vec is not None:
            S.BufferAddData(builder, vec)
        return S.BufferEnd(builder)


class _ConstBuffer:
    """A ``BufferT`` stand-in for constant data that the head does not contain.

    Inline layout: ``rel`` is the (negative) builder offset of the data vector in the tail
    region after all tables (see :func:`_inline_image`). External layout: ``offset`` and
    ``size`` are packed instead of a data vector.
    """

    def __init__(self, blob: _Blob | None):
        self.blob = blob
        self.rel: int | None = None
        self.offset: int | None = None

    @property
    def has_data(self) -> bool:
        return self.blob is not None and self.blob.nbytes > 0

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (schema API name)
        S.BufferStart(builder)
        if self.has_data and self.offset is not None:
            S.BufferAddOffset(builder, self.offset)
            S.BufferAddSize(builder, self.blob.nbytes)
        elif self.has_data:
            # A uoffset to a vector that lies ``-rel`` bytes into the tail (which the builder
            # never holds): PrependUOffsetTRelative computes Offset() - rel + 4, exactly the
            # distance once the tail is appended (its size is a multiple of the alignment).
            builder.PrependUOffsetTRelativeSlot(0, self.rel, 0)
        return S.BufferEnd(builder)


@dataclass
class FileImage:
    """A laid-out ``.tflite`` file: the flatbuffer head plus data pieces at file offsets.

    Pieces are ``(offset, bytes | blob)`` in increasing offset order, all after the head;
    gaps are zero bytes. Writing streams each constant chunk by chunk.
    """

    head: bytes
    pieces: list[tuple[int, object]] = field(default_factory=list)
    size: int = 0
    external: bool = False

    def write_to(self, f: BinaryIO) -> None:
        """Write the whole file to the binary stream ``f``."""
        f.write(self.head)
        cursor = len(self.head)
        for offset, piece in self.pieces:
            if offset > cursor:
                f.write(bytes(offset - cursor))
            if isinstance(piece, _Blob):
                piece.write_to(f)
                cursor = offset + piece.nbytes
            else:
                f.write(piece)
                cursor = offset + len(piece)
        if self.size > cursor:
            f.write(bytes(self.size - cursor))

    def to_bytes(self) -> bytes:
        """The file as one bytes object."""
        out = io.BytesIO()
        self.write_to(out)
        data = out.getvalue()
        if len(data) != self.size:  # defensive: the layout and the writer must agree
            raise AssertionError(f"wrote {len(data)} bytes, the layout says {self.size}")
        return data

    def write_file(self, path: str | os.PathLike) -> str:
        """Stream the file to ``path`` via a temporary file and a rename (no partial file)."""
        return write_atomic(path, self.write_to)


def write_atomic(path: str | os.PathLike, writer: Callable[[BinaryIO], object]) -> str:
    """Create ``path`` with ``writer(file)`` via a temporary file and a rename, so no partial file
    is ever left behind; the file gets the usual mode (umask applied)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return str(path)


class _Tables:
    """Numbering of buffers and operator codes shared by all subgraphs."""

    def __init__(self) -> None:
        self.buffers: list[object] = [_ConstBuffer(None)]  # buffer 0 is the empty sentinel
        self._buffer_index: dict[tuple, list[int]] = {}
        self.opcodes: list[S.OperatorCodeT] = []
        self._opcode_index: dict[tuple, int] = {}

    def buffer_for(self, data: np.ndarray | DeferredCast | None) -> int:
        if data is None:
            return 0
        blob = _Blob(data)
        # Equal buffers are found by a cheap key plus a chunked byte comparison (no hashing
        # of every weight, no copy of the data).
        key = blob.key()
        for idx in self._buffer_index.get(key, ()):
            if self.buffers[idx].blob.same_bytes(blob):
                return idx
        idx = len(self.buffers)
        self.buffers.append(_ConstBuffer(blob))
        self._buffer_index.setdefault(key, []).append(idx)
        return idx

    def empty_buffer(self) -> int:
        """Non-constant tensors each get their own empty buffer, as LiteRT's converter does."""
        self.buffers.append(_ConstBuffer(None))
        return len(self.buffers) - 1

    def opcode_for(self, op: Operator) -> int:
        version = operator_version(op)
        key = (op.opcode, op.custom_code, version)
        idx = self._opcode_index.get(key)
        if idx is None:
            code = S.OperatorCodeT()
            if op.opcode == "CUSTOM":
                code.builtinCode = S.BuiltinOperator.CUSTOM
                code.customCode = op.custom_code
            else:
                code.builtinCode = builtin_code(op.opcode)
            code.deprecatedBuiltinCode = min(code.builtinCode, S.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            code.version = version
            idx = len(self.opcodes)
            self.opcodes.append(code)
            self._opcode_index[key] = idx
        return idx


def _quantization(t: Tensor) -> S.QuantizationParametersT | None:
    q = t.quantization
    if q is None:
        return None
    out = S.QuantizationParametersT()
    out.scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    out.zeroPoint = np.asarray(q.zero_point, dtype=np.int64).reshape(-1)
    out.quantizedDimension = int(q.axis)
    if q.min is not None:
        out.min = np.asarray(q.min, dtype=np.float32).reshape(-1)
        out.max = np.asarray(q.max, dtype=np.float32).reshape(-1)
    return out


def _subgraph(sg: Subgraph, tables: _Tables) -> tuple[S.SubGraphT, dict[int, int]]:
    tensors = sg.tensors()
    index = {id(t): i for i, t in enumerate(tensors)}
    out = S.SubGraphT()
    out.name = sg.name
    out.tensors = []
    for t in tensors:
        tt = S.TensorT()
        tt.name = t.name
        tt.shape = np.asarray(t.shape, dtype=np.int32)
        if t.shape_signature is not None and any(d < 0 for d in t.shape_signature):
            tt.shapeSignature = np.asarray(t.shape_signature, dtype=np.int32)
        tt.type = tensor_type(t.dtype)
        tt.buffer = tables.buffer_for(t.data) if t.is_const else tables.empty_buffer()
        tt.quantization = _quantization(t)
        out.tensors.append(tt)
    out.inputs = np.asarray([index[id(t)] for t in sg.inputs], dtype=np.int32)
    out.outputs = np.asarray([index[id(t)] for t in sg.outputs], dtype=np.int32)
    out.operators = []
    for op in sg.operators:
        ot = S.OperatorT()
        ot.opcodeIndex = tables.opcode_for(op)
        ot.inputs = np.asarray([-1 if t is None else index[id(t)] for t in op.inputs], dtype=np.int32)
        ot.outputs = np.asarray([index[id(t)] for t in op.outputs], dtype=np.int32)
        if op.opcode == "CUSTOM":
            ot.customOptions = np.frombuffer(op.custom_options or b"", dtype=np.uint8)
            ot.customOptionsFormat = S.CustomOptionsFormat.FLEXBUFFERS
        else:
            ot.builtinOptionsType, ot.builtinOptions = options_union(op.opcode, op.options)
        out.operators.append(ot)
    return out, index


def _signature(model: Model, index: dict[int, int]) -> S.SignatureDefT:
    sig = S.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for names, tensors, dest in ((model.signature_inputs, model.main.inputs, sig.inputs),
                                 (model.signature_outputs, model.main.outputs, sig.outputs)):
        for name, t in zip(names, tensors):
            m = S.TensorMapT()
            m.name = name
            m.tensorIndex = index[id(t)]
            dest.append(m)
    return sig


def _model_tables(model: Model) -> tuple[S.ModelT, list[_ConstBuffer]]:
    """The object-API model with constant buffers as :class:`_ConstBuffer` placeholders.

    Returns the model and its constant buffers that hold data, in buffer order. Metadata
    buffers are small and stay inline in the head.
    """
    tables = _Tables()
    mt = S.ModelT()
    mt.version = _SCHEMA_VERSION
    mt.description = model.description
    mt.subgraphs = []
    main_index: dict[int, int] = {}
    for i, sg in enumerate(model.subgraphs):
        sgt, index = _subgraph(sg, tables)
        if i == 0:
            main_index = index
        mt.subgraphs.append(sgt)
    mt.signatureDefs = [_signature(model, main_index)]
    constants = [b for b in tables.buffers if b.has_data]
    mt.metadata = []
    for name in sorted(model.metadata):
        md = S.MetadataT()
        md.name = name
        md.buffer = len(tables.buffers)
        tables.buffers.append(_AlignedBuffer(model.metadata[name]))
        mt.metadata.append(md)
    mt.operatorCodes = tables.opcodes
    mt.buffers = tables.buffers
    return mt, constants


def _pack(mt: S.ModelT, min_align: int = 1) -> bytes:
    builder = flatbuffers.Builder(1024 * 1024)
    root = mt.Pack(builder)
    builder.minalign = max(builder.minalign, min_align)
    builder.Finish(root, file_identifier=b"TFL3")
    return bytes(builder.Output())


def _align(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _inline_image(mt: S.ModelT, constants: list[_ConstBuffer]) -> FileImage:
    """Tables first, then every constant's data vector (``uint32 length | bytes``) at the end.

    Each data start is 16-byte aligned in the file: the tail is laid out in multiples of 16
    and the head is finished to a multiple of 16.
    """
    pieces: list[tuple[int, object]] = []
    cursor = 0
    for buf in constants:
        start = _align(cursor + 4, _BUFFER_ALIGNMENT)
        buf.rel = 4 - start
        pieces.append((start - 4, struct.pack("<I", buf.blob.nbytes)))
        pieces.append((start, buf.blob))
        cursor = start + buf.blob.nbytes
    tail = _align(cursor, _BUFFER_ALIGNMENT)
    head = _pack(mt, _BUFFER_ALIGNMENT)
    size = len(head) + tail
    if size > FLATBUFFER_LIMIT:
        raise ValueError(f"the model needs {size} bytes, above the 2 GiB flatbuffer limit; "
                         "export it with external buffers")
    return FileImage(head, [(len(head) + off, piece) for off, piece in pieces], size, external=False)


def _external_image(mt: S.ModelT, constants: list[_ConstBuffer]) -> FileImage:
    """``flatbuffer | padding | data_1 | padding | data_2 ...`` with absolute offsets."""
    for buf in constants:
        buf.offset = _PLACEHOLDER_OFFSET
    # Pass 1 sizes the flatbuffer with placeholder offsets; pass 2 writes the real ones.
    # The layout cannot change between passes (same fields, same fixed-size values).
    head_size = len(_pack(mt))
    if head_size > FLATBUFFER_LIMIT:
        raise ValueError(f"the model's tables alone need {head_size} bytes, above the 2 GiB flatbuffer limit")
    cursor = _align(head_size, EXTERNAL_ALIGNMENT)
    for buf in constants:
        buf.offset = cursor
        cursor = _align(cursor + buf.blob.nbytes, EXTERNAL_ALIGNMENT)
    head = _pack(mt)
    if len(head) != head_size:  # defensive: offsets must not have moved anything
        raise AssertionError("flatbuffer size changed between the sizing and the final pass")
    size = constants[-1].offset + constants[-1].blob.nbytes if constants else len(head)
    return FileImage(head, [(b.offset, b.blob) for b in constants], size, external=True)


def layout_model(model: Model, external_buffers: bool = False) -> FileImage:
    """Lay out ``model`` as a ``.tflite`` file without copying any constant data.

    ``external_buffers`` stores every non-empty constant after the flatbuffer
    (``Buffer.offset``/``size``, :data:`EXTERNAL_ALIGNMENT`-aligned); metadata stays inline.
    """
    mt, constants = _model_tables(model)
    return _external_image(mt, constants) if external_buffers else _inline_image(mt, constants)


def export_model(model: Model) -> bytes:
    """Serialize ``model`` to flatbuffer bytes with the ``TFL3`` file identifier."""
    return layout_model(model).to_bytes()
