"""The pass pipeline, in the order that lets each pass see the previous one's result.

One round runs:

1. clean-up that exposes structure: SQUEEZE/EXPAND_DIMS -> RESHAPE, RESHAPE chains,
   MIN/MAX clamps -> RELU*, elementwise ops hoisted above BROADCAST_TO/RESHAPE, no-op
   arithmetic (including CAST round trips);
2. constant folding, constant sharing and common-op merging (so two transposes of one
   input are one, and transposes of constants are constants);
3. the transpose optimizer (sinks and cancels layout transposes, makes per-channel
   constants channels-last);
4. exact rewrites of ops the XNNPACK delegate refuses (MIRROR_PAD, RELU_0_TO_1, PADV2 before
   max pool, nearest resize, SPLIT_V) into ops it takes; whole-axis reversing slices into
   REVERSE_V2, moved past commuting ops until same-axis pairs cancel;
5. fusions that need the optimizer's result: chains of constant ADD/SUB/MUL/DIV into one
   MUL and one ADD, PAD into conv/pool padding, channel
   permutations (RESHAPE/TRANSPOSE chains) into conv/FC weights, per-channel
   MUL/ADD (BatchNormalization) into conv/FC weights (a positive scale before a RELU into the
   consumers' weights), then activations into producers
   (also through CONCATENATION), a per-channel shift into the biases of consumers that see
   no padding (plain ADD -> gone, ADD+RELU -> MAXIMUM), and a flattening RESHAPE into
   FULLY_CONNECTED;
   then depthwise convolutions with more than 25 taps split into bands of kernel rows;
6. quantized models: DEQUANTIZE -> float op -> QUANTIZE patterns become integer ops;
7. dead code elimination.

Rounds repeat until nothing changes (a fusion can enable another layout move and back).
Tuning the user opted into (``--pad_conv_output_channels_to``) runs once after them, then
SLICEs with "to the end" sizes become STRIDED_SLICE with an end mask (XNNPACK takes those).
"""
from __future__ import annotations

from typing import Callable

from ..ir import Model, Subgraph
from ..options import ConversionOptions
from .cleanup import (canonicalize_clamps, canonicalize_reshapes, drop_reshape_before_fully_connected,
                      drop_reshapes_around_elementwise, hoist_elementwise_above_broadcast, relu_before_minimum,
                      remove_noop_arithmetic)
from .dce import remove_dead_ops
from .delegate import (delegate_friendly, pad_conv_output_channels, slices_to_end_as_strided_slice,
                       split_tall_depthwise)
from .fold import eliminate_common_ops, fold_constants, share_constants
from .fuse import (combine_affine_chains, fold_affine_into_producer, fold_channel_permutation, fold_pad_into_conv,
                   fold_positive_scale_into_consumers, fold_shift_into_consumers, fuse_activations,
                   fuse_activations_through_concat)
from .graphutil import topo_sort
from .layout import optimize_layout
from .qdq import fold_qdq
from .reverse import reversing_slices_to_reverse, sink_reversals

Pass = Callable[[Subgraph], bool]

# The passes of one round, in order.
ROUND: tuple[tuple[str, Pass], ...] = (
    ("canonicalize_reshapes", canonicalize_reshapes),
    ("relu_before_minimum", relu_before_minimum),
    ("canonicalize_clamps", canonicalize_clamps),
    ("hoist_elementwise_above_broadcast", hoist_elementwise_above_broadcast),
    ("remove_noop_arithmetic", remove_noop_arithmetic),
    ("fold_constants", fold_constants),
    ("share_constants", share_constants),
    ("eliminate_common_ops", eliminate_common_ops),
    ("remove_dead_ops", remove_dead_ops),
    ("optimize_layout", optimize_layout),
    ("canonicalize_reshapes", canonicalize_reshapes),
    ("drop_reshapes_around_elementwise", drop_reshapes_around_elementwise),
    ("fold_pad_into_conv", fold_pad_into_conv),
    ("delegate_friendly", delegate_friendly),
    ("reversing_slices_to_reverse", reversing_slices_to_reverse),
    ("sink_reversals", sink_reversals),
    ("fold_channel_permutation", fold_channel_permutation),
    ("combine_affine_chains", combine_affine_chains),
    ("fold_affine_into_producer", fold_affine_into_producer),
    ("fold_positive_scale_into_consumers", fold_positive_scale_into_consumers),
    ("fuse_activations", fuse_activations),
    ("fuse_activations_through_concat", fuse_activations_through_concat),
    # After the activation fusions: it needs the RELU fused into the ADD.
    ("fold_shift_into_consumers", fold_shift_into_consumers),
    ("drop_reshape_before_fully_connected", drop_reshape_before_fully_connected),
    # After the fusions, so the convolution it splits already holds its BatchNormalization and activation.
    ("split_tall_depthwise", split_tall_depthwise),
    # After the layout pass (which moves transposes through QUANTIZE/DEQUANTIZE) and the float
    # fusions: DEQUANTIZE -> float op -> QUANTIZE becomes the integer op.
    ("fold_qdq", fold_qdq),
    ("remove_dead_ops", remove_dead_ops),
)

_MAX_ROUNDS = 8


def optimize_subgraph(sg: Subgraph, max_rounds: int = _MAX_ROUNDS) -> list[str]:
    """Run rounds of :data:`ROUND` on ``sg`` to a fixed point; return the passes that changed it."""
    applied: list[str] = []
    for _ in range(max_rounds):
        changed = False
        for name, run in ROUND:
            if run(sg):
                applied.append(name)
                changed = True
        if not changed:
            break
    topo_sort(sg)
    remove_dead_ops(sg)
    return applied


def finishing_passes(options: ConversionOptions) -> tuple[tuple[str, Pass], ...]:
    """Run once after the rounds: target tuning the user opted into (it would hide the
    convolution from the fusions), then the spelling of "to the end" slices XNNPACK takes
    (the rounds keep SLICE, which the other passes understand)."""
    m = options.pad_conv_output_channels_to
    tuning = (("pad_conv_output_channels", lambda sg: pad_conv_output_channels(sg, m)),) if m else ()
    return tuning + (("slices_to_end_as_strided_slice", slices_to_end_as_strided_slice),)


def run_passes(model: Model, options: ConversionOptions) -> None:
    """Optimize every subgraph of ``model`` in place."""
    finish = finishing_passes(options)
    for sg in model.subgraphs:
        optimize_subgraph(sg)
        for _, run in finish:
            run(sg)
