"""The pass pipeline, in the order that lets each pass see the previous one's result."""
from __future__ import annotations

from ..ir import Model
from ..options import ConversionOptions
from .dce import remove_dead_ops


def run_passes(model: Model, options: ConversionOptions) -> None:
    """Optimize every subgraph of ``model`` in place."""
    for sg in model.subgraphs:
        remove_dead_ops(sg)
