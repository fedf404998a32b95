"""Plain IR dataclasses.

Tensors are identified by object identity: operators hold references to them, so a pass
rewires the graph by swapping references. Constants carry their data as numpy arrays.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


class DeferredCast:
    """Constant data computed on demand: ``source.astype(dtype)``, one chunk at a time.

    Stands in for ``Tensor.data`` in a model that goes straight to export (e.g. the float16
    variant of a large model), so the converted copy of every weight never exists at once.
    Offers what export and the split planner read: ``shape``, ``dtype``, ``size``, ``nbytes``.
    """

    def __init__(self, source: np.ndarray, dtype: np.dtype | type):
        self.source = source
        self.dtype = np.dtype(dtype)
        self.shape = tuple(source.shape)
        self.size = int(source.size)
        self.nbytes = self.size * self.dtype.itemsize

    def materialize(self) -> np.ndarray:
        """The whole converted array (for tests and small tensors)."""
        return self.source.astype(self.dtype)


@dataclass(eq=False)
class Quantization:
    """Affine quantization parameters (per tensor when scale has one element)."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0
    min: np.ndarray | None = None
    max: np.ndarray | None = None


@dataclass(eq=False)
class Tensor:
    """A tensor: static shape, optional shape signature (-1 = dynamic), dtype, data."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None
    quantization: Quantization | None = None
    shape_signature: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        self.dtype = np.dtype(self.dtype)
        if self.data is not None:
            self.data = np.ascontiguousarray(self.data, dtype=self.dtype).reshape(self.shape)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self) -> str:
        kind = "const " if self.is_const else ""
        return f"Tensor({kind}{self.name!r}, {list(self.shape)}, {self.dtype})"


@dataclass(eq=False)
class Operator:
    """One LiteRT operator: builtin opcode name (e.g. ``CONV_2D``) or ``CUSTOM``."""

    opcode: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: dict = field(default_factory=dict)
    custom_code: str | None = None
    custom_options: bytes | None = None
    # The ONNX node this op came from, for reports and debugging.
    origin: str | None = None

    def __repr__(self) -> str:
        ins = ", ".join("-" if t is None else t.name for t in self.inputs)
        outs = ", ".join(t.name for t in self.outputs)
        return f"{self.opcode}({ins}) -> {outs}"


@dataclass(eq=False)
class Subgraph:
    """Operators in topological order, plus graph inputs and outputs."""

    inputs: list[Tensor]
    outputs: list[Tensor]
    operators: list[Operator] = field(default_factory=list)
    name: str = "main"

    def producers(self) -> dict[Tensor, Operator]:
        return {t: op for op in self.operators for t in op.outputs}

    def consumers(self) -> dict[Tensor, list[Operator]]:
        users: dict[Tensor, list[Operator]] = defaultdict(list)
        for op in self.operators:
            for t in op.inputs:
                if t is not None:
                    users[t].append(op)
        return users

    def tensors(self) -> list[Tensor]:
        """Every tensor referenced, in a deterministic first-use order."""
        seen: dict[int, Tensor] = {}
        for t in self.inputs:
            seen.setdefault(id(t), t)
        for op in self.operators:
            for t in op.inputs:
                if t is not None:
                    seen.setdefault(id(t), t)
            for t in op.outputs:
                seen.setdefault(id(t), t)
        for t in self.outputs:
            seen.setdefault(id(t), t)
        return list(seen.values())

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        """Point every use of ``old`` (op inputs and graph outputs) at ``new``."""
        for op in self.operators:
            op.inputs = [new if t is old else t for t in op.inputs]
        self.outputs = [new if t is old else t for t in self.outputs]

    def count(self, opcode: str) -> int:
        return sum(1 for op in self.operators if op.opcode == opcode)


@dataclass(eq=False)
class Model:
    """A LiteRT model: subgraphs (the first is main) plus metadata entries."""

    subgraphs: list[Subgraph]
    description: str = "onnx2litert"
    metadata: dict[str, bytes] = field(default_factory=dict)
    # Signature names, in order, for the main subgraph's inputs and outputs.
    signature_inputs: list[str] = field(default_factory=list)
    signature_outputs: list[str] = field(default_factory=list)

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]
