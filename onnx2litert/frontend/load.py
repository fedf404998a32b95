"""Safe loading of ONNX files: clear errors, external data confined to the model folder."""
from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import external_data_helper

from ..errors import ConversionError, Issue, Reason

MIN_OPSET = 7
MAX_OPSET = 23


def _invalid(msg: str) -> ConversionError:
    return ConversionError(Issue(Reason.INVALID_MODEL, msg))


def load_model(source: str | os.PathLike | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """Load a model from a path, bytes or a ModelProto (copied, so the caller's is untouched)."""
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(source))
        except Exception as exc:  # protobuf raises several types
            raise _invalid(f"the bytes given are not an ONNX model ({exc})") from None
    path = Path(source)
    if not path.exists():
        raise _invalid(f"file not found: {path}")
    if not path.is_file():
        raise _invalid(f"not a file: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise _invalid(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise _invalid(f"{path} is not an ONNX model (no graph)")
    _load_external_data(model, path.parent)
    return model


def _load_external_data(model: onnx.ModelProto, base_dir: Path) -> None:
    """Resolve external tensors, refusing any location outside the model's folder."""
    base = base_dir.resolve()
    tensors = list(external_data_helper._get_all_tensors(model))
    for tensor in tensors:
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        target = (base / info.location).resolve()
        if os.path.isabs(info.location) or base not in target.parents:
            raise ConversionError(Issue(
                Reason.UNSAFE_EXTERNAL_DATA,
                f"initializer '{tensor.name}' points at '{info.location}', outside the model folder {base}"))
        if not target.is_file():
            raise _invalid(f"external data file for '{tensor.name}' not found: {target}")
    if any(external_data_helper.uses_external_data(t) for t in tensors):
        external_data_helper.load_external_data_for_model(model, str(base))


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset, checked against the supported range."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if not MIN_OPSET <= imp.version <= MAX_OPSET:
                raise ConversionError(Issue(
                    Reason.UNSUPPORTED_OPSET,
                    f"opset {imp.version} is outside the supported range {MIN_OPSET}-{MAX_OPSET}"))
            return int(imp.version)
    raise ConversionError(Issue(Reason.UNSUPPORTED_OPSET, "the model imports no default-domain opset"))
