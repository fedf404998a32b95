"""The one lowering registry: ONNX (domain, op type, opset range) -> lowering function.

Each lowering declares the dtypes ONNX allows for its main input, the dtypes it accepts
(what the LiteRT kernels it emits take), and the dtypes a test has verified end to end
in LiteRT against ONNX Runtime. The op-coverage report prints these claims.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

import onnx

if TYPE_CHECKING:
    from .context import LowerContext, NodeView

LoweringFn = Callable[["NodeView", "LowerContext"], None]

#: The newest default-domain opset the lowerings were written and tested against. A model at a
#: newer opset still converts, node by node, when the op's definition did not change after this one.
VERIFIED_OPSET = 23

F32 = ("float32",)
FLOATS = ("float32", "float16", "float64", "bfloat16")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
ALL_NUMERIC = FLOATS + INTS


@dataclass(frozen=True)
class Lowering:
    """One registered lowering and its dtype claims."""

    op_type: str
    fn: LoweringFn
    since: int = 1
    until: int | None = None
    domain: str = ""
    onnx_dtypes: tuple[str, ...] = FLOATS
    dtypes: tuple[str, ...] = F32
    verified: tuple[str, ...] = F32
    dtype_input: int | None = 0  # which input's dtype is checked (None: no check)
    dynamic_inputs: bool = False  # accepts inputs whose shape_signature has -1 (data-dependent) dims
    zero_size_inputs: bool = False  # accepts inputs with a zero-sized dim

    def covers(self, opset: int) -> bool:
        return self.since <= opset and (self.until is None or opset <= self.until)


class Registry:
    """Lowerings keyed by (domain, op type); several opset ranges may share an op type."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[Lowering]] = {}

    def add(self, entry: Lowering) -> None:
        self._entries.setdefault((entry.domain, entry.op_type), []).append(entry)

    def find(self, domain: str, op_type: str, opset: int) -> Lowering | None:
        """The lowering for ``op_type`` at ``opset``, or None (no lowering, or an unverified newer definition).

        Above VERIFIED_OPSET, a lowering registered for exactly the definition in force at ``opset``
        (``since`` equal to the schema's since_version, and newer than VERIFIED_OPSET) wins. Otherwise
        the lowering of the verified opset serves, but only when the definition did not change since.
        Lowerings registered for newer definitions never cover opsets up to VERIFIED_OPSET, because
        their ``since`` is above it.
        """
        entries = self._entries.get((_norm(domain), op_type), [])
        if _norm(domain) == "" and opset > VERIFIED_OPSET:
            current = _since_version(op_type, opset)
            for entry in entries:
                if entry.since > VERIFIED_OPSET and entry.since == current and entry.covers(opset):
                    return entry
            if changed_after_verified(op_type, opset):
                return None
            opset = VERIFIED_OPSET  # same definition as at the verified opset
        for entry in entries:
            if entry.covers(opset):
                return entry
        return None

    def knows(self, domain: str, op_type: str) -> bool:
        return (_norm(domain), op_type) in self._entries

    def entries(self) -> list[Lowering]:
        return [e for key in sorted(self._entries) for e in self._entries[key]]

    def claims(self) -> dict[str, dict]:
        """Per-op dtype claims, for the op-coverage report."""
        out: dict[str, dict] = {}
        for e in self.entries():
            key = e.op_type if not e.domain else f"{e.domain}::{e.op_type}"
            out.setdefault(key, {"opsets": [], "onnx_dtypes": list(e.onnx_dtypes),
                                 "accepted_dtypes": list(e.dtypes), "verified_dtypes": list(e.verified)})
            out[key]["opsets"].append([e.since, e.until])
        return out


@lru_cache(maxsize=None)
def _since_version(op_type: str, opset: int) -> int | None:
    """The opset that introduced the default-domain definition of ``op_type`` in force at ``opset``."""
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except Exception:  # unknown op, or not defined yet at this opset
        return None


@lru_cache(maxsize=None)
def changed_after_verified(op_type: str, opset: int) -> bool:
    """True when the ONNX definition of ``op_type`` at ``opset`` is newer than at VERIFIED_OPSET."""
    try:
        newest = onnx.defs.get_schema(op_type, opset, "").since_version
    except Exception:  # unknown op: nothing to compare
        return False
    try:
        verified = onnx.defs.get_schema(op_type, VERIFIED_OPSET, "")
    except Exception:  # the op did not exist yet at the verified opset
        return True
    if newest == verified.since_version:
        return False
    # A newer version that only widened the type constraints (same attributes, inputs, outputs and
    # documented semantics) lowers the same way; the dtype checks still apply node by node.
    current = onnx.defs.get_schema(op_type, opset, "")
    return _signature(current) != _signature(verified) or current.doc != verified.doc


def _signature(schema: onnx.defs.OpSchema) -> tuple:
    attrs = sorted((a.name, int(a.type), a.default_value.SerializeToString()) for a in schema.attributes.values())
    return (attrs, [(i.name, int(i.option)) for i in schema.inputs],
            [(o.name, int(o.option)) for o in schema.outputs])


def _norm(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


REGISTRY = Registry()


def lowering(*op_types: str, since: int = 1, until: int | None = None, domain: str = "",
             onnx_dtypes: tuple[str, ...] = FLOATS, dtypes: tuple[str, ...] = F32,
             verified: tuple[str, ...] = F32, dtype_input: int | None = 0,
             dynamic_inputs: bool = False, zero_size_inputs: bool = False
             ) -> Callable[[LoweringFn], LoweringFn]:
    """Register the decorated function as the lowering of ``op_types``."""

    def wrap(fn: LoweringFn) -> LoweringFn:
        for op_type in op_types:
            REGISTRY.add(Lowering(op_type, fn, since, until, domain, tuple(onnx_dtypes), tuple(dtypes),
                                  tuple(verified), dtype_input, dynamic_inputs, zero_size_inputs))
        return fn

    return wrap
