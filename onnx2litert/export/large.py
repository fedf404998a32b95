"""Export past the 2 GB flatbuffer limit: constant data stored after the flatbuffer.

A flatbuffer addresses its contents with 32-bit signed offsets, so one ``.tflite`` file
whose tables and buffers exceed 2 GiB cannot be built the ordinary way. LiteRT's schema has
an escape hatch: a ``Buffer`` table may leave ``data`` empty and instead give ``offset``
and ``size``; the runtime then reads ``size`` bytes at ``offset`` counted from the start of
the file (LiteRT treats ``offset > 1`` as "stored outside the flatbuffer"). This module
writes the flatbuffer with such buffers for every non-empty constant, then appends the
constant bytes, each aligned to :data:`EXTERNAL_ALIGNMENT` bytes. The layout itself lives
in :func:`onnx2litert.export.flatbuffer.layout_model`; the data is streamed, never
concatenated.

Determinism: buffers are numbered exactly as :func:`onnx2litert.export.export_model`
numbers them, and the appended data follows buffer order, so the same model gives the
same bytes.
"""
from __future__ import annotations

from ai_edge_litert import schema_py_generated as S

from .flatbuffer import EXTERNAL_ALIGNMENT, FLATBUFFER_LIMIT, FileImage, layout_model
from ..ir import Model

__all__ = ["DEFAULT_EXTERNAL_THRESHOLD", "EXTERNAL_ALIGNMENT", "FLATBUFFER_LIMIT", "IN_MEMORY_LIMIT",
           "constant_bytes", "export_model_auto", "export_with_external_buffers", "external_buffer_count",
           "prepare_export"]

#: Constant bytes above which export switches to external buffers: 2 GiB minus a 64 MiB
#: margin for the tables (tensors, operators, names, metadata) and per-buffer padding.
DEFAULT_EXTERNAL_THRESHOLD = 2 ** 31 - 2 ** 26
#: Files larger than this that go to an output folder are streamed there and not kept as
#: bytes in memory (``ConversionResult.paths`` has them, ``artifacts``/``split_parts`` not).
IN_MEMORY_LIMIT = 256 * 1024 * 1024


def constant_bytes(model: Model) -> int:
    """Bytes of constant data in ``model`` (each distinct tensor counted once)."""
    seen: dict[int, int] = {}
    for sg in model.subgraphs:
        for t in sg.tensors():
            if t.is_const:
                seen[id(t)] = int(t.data.nbytes)
    return sum(seen.values())


def prepare_export(model: Model, external_threshold: int = DEFAULT_EXTERNAL_THRESHOLD) -> FileImage:
    """The laid-out file of ``model`` (nothing copied yet): inline buffers, or external
    buffers when the constants exceed ``external_threshold`` bytes.

    ``external_threshold <= 0`` forces the external-buffer layout (used by tests). Stream it
    with ``.write_file(path)``, or get bytes with ``.to_bytes()``; ``.size`` is exact.
    """
    external = external_threshold <= 0 or constant_bytes(model) > external_threshold
    return layout_model(model, external_buffers=external)


def export_with_external_buffers(model: Model) -> bytes:
    """Serialize ``model`` with every non-empty constant stored after the flatbuffer.

    The file is ``flatbuffer | zero padding | data_1 | padding | data_2 | ...``; each
    ``Buffer.offset`` is the absolute file offset of its data (a multiple of
    :data:`EXTERNAL_ALIGNMENT`) and ``Buffer.size`` its length. Metadata buffers stay inline
    so tools that read metadata from the flatbuffer alone keep working.
    """
    return layout_model(model, external_buffers=True).to_bytes()


def export_model_auto(model: Model, external_threshold: int = DEFAULT_EXTERNAL_THRESHOLD) -> bytes:
    """:func:`onnx2litert.export.export_model`, or :func:`export_with_external_buffers`
    when the constants exceed ``external_threshold`` bytes (a flatbuffer cannot hold more
    than 2 GiB). ``external_threshold <= 0`` forces the external-buffer layout.
    """
    return prepare_export(model, external_threshold).to_bytes()


def external_buffer_count(tflite: bytes) -> int:
    """How many buffers of a ``.tflite`` are stored outside its flatbuffer (``offset > 1``)."""
    m = S.Model.GetRootAs(tflite, 0)
    return sum(1 for i in range(m.BuffersLength()) if m.Buffers(i).Offset() > 1)
