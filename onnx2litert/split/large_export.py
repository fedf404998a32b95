"""Export past the 2 GB flatbuffer limit: constant data stored after the flatbuffer.

A flatbuffer addresses its contents with 32-bit signed offsets, so one ``.tflite`` file
whose tables and buffers exceed 2 GiB cannot be built the ordinary way. LiteRT's schema has
an escape hatch: a ``Buffer`` table may leave ``data`` empty and instead give ``offset``
and ``size``; the runtime then reads ``size`` bytes at ``offset`` counted from the start of
the file (LiteRT treats ``offset > 1`` as "stored outside the flatbuffer"). This module
writes the flatbuffer with such buffers for every non-empty constant, then appends the
constant bytes, each aligned to :data:`EXTERNAL_ALIGNMENT` bytes.

Determinism: buffers are numbered exactly as :func:`onnx2litert.export.export_model`
numbers them, and the appended data follows buffer order, so the same model gives the
same bytes.
"""
from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as S

from ..export import export_model
from ..export.flatbuffer import _SCHEMA_VERSION, _AlignedBuffer, _signature, _subgraph, _Tables
from ..ir import Model

#: Alignment of every external constant inside the file (>= XNNPACK's 16, and cache-line sized).
EXTERNAL_ALIGNMENT = 64
#: Largest size a flatbuffer can have (signed 32-bit offsets).
FLATBUFFER_LIMIT = 2 ** 31 - 1
#: Constant bytes above which export switches to external buffers: 2 GiB minus a 64 MiB
#: margin for the tables (tensors, operators, names, metadata) and per-buffer padding.
DEFAULT_EXTERNAL_THRESHOLD = 2 ** 31 - 2 ** 26

# A value for ``offset`` in the sizing pass; any non-default value gives the same layout,
# because ulong fields are fixed-size and flatbuffers only omits fields equal to the default.
_PLACEHOLDER_OFFSET = 1 << 40


class _ExternalBuffer:
    """A ``BufferT`` stand-in that packs ``offset``/``size`` instead of inline data."""

    def __init__(self, data: bytes):
        self.data = data
        self.offset = _PLACEHOLDER_OFFSET

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (schema API name)
        S.BufferStart(builder)
        S.BufferAddOffset(builder, self.offset)
        S.BufferAddSize(builder, len(self.data))
        return S.BufferEnd(builder)


def constant_bytes(model: Model) -> int:
    """Bytes of constant data in ``model`` (each distinct tensor counted once)."""
    seen: dict[int, int] = {}
    for sg in model.subgraphs:
        for t in sg.tensors():
            if t.is_const:
                seen[id(t)] = int(t.data.nbytes)
    return sum(seen.values())


def _align(n: int, alignment: int = EXTERNAL_ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def _pack(mt: S.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024 * 1024)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export_with_external_buffers(model: Model) -> bytes:
    """Serialize ``model`` with every non-empty constant stored after the flatbuffer.

    The file is ``flatbuffer | zero padding | data_1 | padding | data_2 | ...``; each
    ``Buffer.offset`` is the absolute file offset of its data (a multiple of
    :data:`EXTERNAL_ALIGNMENT`) and ``Buffer.size`` its length. Metadata buffers stay inline
    so tools that read metadata from the flatbuffer alone keep working.
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
    external: list[_ExternalBuffer] = []
    buffers: list[object] = []
    for buf in tables.buffers:
        if buf.data:
            ext = _ExternalBuffer(buf.data)
            external.append(ext)
            buffers.append(ext)
        else:
            buffers.append(buf)
    mt.metadata = []
    for name in sorted(model.metadata):
        md = S.MetadataT()
        md.name = name
        md.buffer = len(buffers)
        buffers.append(_AlignedBuffer(model.metadata[name]))
        mt.metadata.append(md)
    mt.operatorCodes = tables.opcodes
    mt.buffers = buffers

    # Pass 1 sizes the flatbuffer with placeholder offsets; pass 2 writes the real ones.
    # The layout cannot change between passes (same fields, same fixed-size values).
    head_size = len(_pack(mt))
    if head_size > FLATBUFFER_LIMIT:
        raise ValueError(f"the model's tables alone need {head_size} bytes, above the 2 GiB flatbuffer limit")
    cursor = _align(head_size)
    for ext in external:
        ext.offset = cursor
        cursor = _align(cursor + len(ext.data))
    head = _pack(mt)
    if len(head) != head_size:  # defensive: offsets must not have moved anything
        raise AssertionError("flatbuffer size changed between the sizing and the final pass")
    total = external[-1].offset + len(external[-1].data) if external else len(head)
    out = bytearray(total)
    out[:len(head)] = head
    for ext in external:
        out[ext.offset:ext.offset + len(ext.data)] = ext.data
    return bytes(out)


def export_model_auto(model: Model, external_threshold: int = DEFAULT_EXTERNAL_THRESHOLD) -> bytes:
    """:func:`export_model`, or :func:`export_with_external_buffers` when the constants
    exceed ``external_threshold`` bytes (a flatbuffer cannot hold more than 2 GiB).

    ``external_threshold <= 0`` forces the external-buffer layout (used by tests).
    """
    if external_threshold <= 0 or constant_bytes(model) > external_threshold:
        return export_with_external_buffers(model)
    return export_model(model)


def external_buffer_count(tflite: bytes) -> int:
    """How many buffers of a ``.tflite`` are stored outside its flatbuffer (``offset > 1``)."""
    m = S.Model.GetRootAs(tflite, 0)
    return sum(1 for i in range(m.BuffersLength()) if m.Buffers(i).Offset() > 1)

