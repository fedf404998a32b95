"""Fusions into convolution-like ops: per-channel affine ops, explicit padding, activations.

* :func:`fold_affine_into_producer`: ``MUL/DIV/ADD/SUB(y, c)`` with a per-output-channel (or
  scalar) constant ``c`` after CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV /
  FULLY_CONNECTED / CONV_3D becomes part of that op's weights and bias. This is how an ONNX
  BatchNormalization disappears once the layout pass made its constants channels-last.
* :func:`fold_pad_into_conv`: an explicit zero PAD before a VALID CONV_2D /
  DEPTHWISE_CONV_2D whose amounts are exactly what SAME padding adds becomes SAME; a PADV2
  with the lowest float before a VALID MAX_POOL_2D likewise (LiteRT's SAME max pool never
  selects padding).
* :func:`fuse_activations`: RELU / RELU6 / RELU_N1_TO_1 after an op whose LiteRT kernel
  honours the fused activation becomes that op's ``fusedActivationFunction``.

All three act only on plain (unquantized) float32 tensors, when the intermediate tensor has
a single consumer and is not a graph output.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Operator, Subgraph, Tensor
from .graphutil import Namer, activation, is_plain_float, new_const, single_use

# Producer opcode -> activations its stock float32 kernel applies when fused. Verified with the
# LiteRT interpreter (with and without XNNPACK): CONCATENATION rejects any fused activation,
# FULLY_CONNECTED rejects TANH, and the others silently ignore TANH, so TANH is never fused.
_CLAMPS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1"})
FUSIBLE_ACTIVATIONS: dict[str, frozenset[str]] = {
    code: _CLAMPS for code in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "FULLY_CONNECTED",
                               "ADD", "SUB", "MUL", "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
}

# Weight-carrying producers: (weights input, bias input, output-channel axis of the weights).
_AFFINE_TARGETS: dict[str, tuple[int, int, int]] = {
    "CONV_2D": (1, 2, 0),            # weights (O, KH, KW, I)
    "DEPTHWISE_CONV_2D": (1, 2, 3),  # weights (1, KH, KW, O)
    "TRANSPOSE_CONV": (1, 3, 0),     # inputs (output_shape, weights (O, KH, KW, I), x, bias)
    "FULLY_CONNECTED": (1, 2, 0),    # weights (O, K)
    "CONV_3D": (1, 2, 4),            # weights (KD, KH, KW, I, O)
}


def _producers(sg: Subgraph) -> dict[int, Operator]:
    return {id(t): op for op in sg.operators for t in op.outputs}


def _channel_vector(c: np.ndarray, channels: int) -> np.ndarray | None:
    """``c`` as a length-``channels`` vector when it broadcasts along the last axis only."""
    if c.size == 1:
        return np.full(channels, c.reshape(-1)[0], dtype=np.float32)
    if c.ndim >= 1 and c.shape[-1] == channels and c.size == channels:
        return c.reshape(-1).astype(np.float32)
    return None


def fold_affine_into_producer(sg: Subgraph) -> bool:
    """Fold per-channel MUL/DIV/ADD/SUB by constants into the preceding weighted op."""
    namer = Namer(sg)
    changed = False
    producers = _producers(sg)
    consumers = sg.consumers()
    for op in list(sg.operators):
        if op.opcode not in ("MUL", "DIV", "ADD", "SUB") or len(op.inputs) != 2:
            continue
        a, b = op.inputs
        if b is not None and b.is_const and a is not None and not a.is_const:
            y, c = a, b
        elif op.opcode in ("MUL", "ADD") and a is not None and a.is_const and b is not None and not b.is_const:
            y, c = b, a
        else:
            continue
        producer = producers.get(id(y))
        if producer is not None and _fold_one(sg, namer, op, producer, y, c, consumers):
            producers[id(op.outputs[0])] = producer  # the producer now writes the folded op's output
            changed = True
    return changed


def _fold_one(sg: Subgraph, namer: Namer, op: Operator, producer: Operator, y: Tensor, c: Tensor,
              consumers: dict) -> bool:
    if producer.opcode not in _AFFINE_TARGETS or activation(producer) != "NONE":
        return False
    if producer.opcode == "FULLY_CONNECTED" and producer.options.get("weightsFormat", "DEFAULT") not in (0, "DEFAULT"):
        return False
    out = op.outputs[0]
    act = activation(op)
    if act != "NONE" and act not in FUSIBLE_ACTIVATIONS[producer.opcode]:
        return False
    if not single_use(sg, y, consumers) or out.shape != y.shape or y.rank == 0:
        return False
    w_idx, b_idx, axis = _AFFINE_TARGETS[producer.opcode]
    w = producer.inputs[w_idx]
    bias = producer.inputs[b_idx] if b_idx < len(producer.inputs) else None
    if not (is_plain_float(y) and is_plain_float(out) and is_plain_float(c) and is_plain_float(w) and w.is_const):
        return False
    if bias is not None and not (is_plain_float(bias) and bias.is_const):
        return False
    channels = y.shape[-1]
    if w.shape[axis] != channels:
        return False
    vec = _channel_vector(c.data, channels)
    if vec is None:
        return False
    b = np.zeros(channels, np.float32) if bias is None else bias.data.reshape(-1).astype(np.float32)
    if b.size != channels:
        return False
    new_w, new_b = w.data, b
    if op.opcode in ("MUL", "DIV"):
        if op.opcode == "DIV":
            if np.any(vec == 0):
                return False
            vec = (1.0 / vec).astype(np.float32)
        shape = [1] * w.rank
        shape[axis] = channels
        new_w = (w.data * vec.reshape(shape)).astype(np.float32)
        new_b = (b * vec).astype(np.float32)
    elif op.opcode == "ADD":
        new_b = (b + vec).astype(np.float32)
    else:
        new_b = (b - vec).astype(np.float32)
    inputs = list(producer.inputs)
    while len(inputs) <= b_idx:
        inputs.append(None)
    inputs[w_idx] = new_const(namer(f"{w.name}/folded"), new_w, np.float32)
    if bias is not None or np.any(new_b != 0):
        inputs[b_idx] = new_const(namer(f"{out.name}/bias"), new_b, np.float32)
    producer.inputs = inputs
    producer.outputs = [out]
    producer.options = dict(producer.options, fusedActivationFunction=act)
    sg.operators.remove(op)
    return True


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding LiteRT's SAME adds along one spatial dim."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def fold_pad_into_conv(sg: Subgraph) -> bool:
    """PAD(zeros) -> VALID conv, and PADV2(lowest) -> VALID max pool, become SAME when equal."""
    changed = False
    consumers = sg.consumers()
    producers = _producers(sg)
    for op in list(sg.operators):
        if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D"):
            continue
        if op.options.get("padding", "SAME") not in ("VALID", 1):
            continue
        x = op.inputs[0]
        pad = producers.get(id(x))
        if pad is None or pad.opcode not in ("PAD", "PADV2") or not single_use(sg, x, consumers):
            continue
        src = pad.inputs[0]
        if not (is_plain_float(src) and is_plain_float(x)) or src.rank != 4:
            continue
        if not _pad_value_matches(pad, op.opcode):
            continue
        paddings = pad.inputs[1]
        if paddings is None or not paddings.is_const or paddings.data.shape != (4, 2):
            continue
        p = paddings.data.astype(np.int64)
        if p[0].any() or p[3].any():
            continue
        if op.opcode == "MAX_POOL_2D":
            kh, kw = int(op.options.get("filterHeight", 1)), int(op.options.get("filterWidth", 1))
            dh = dw = 1
        else:
            w = op.inputs[1]
            kh, kw = w.shape[1], w.shape[2]
            dh, dw = int(op.options.get("dilationHFactor", 1)), int(op.options.get("dilationWFactor", 1))
        sh, sw = int(op.options.get("strideH", 1)), int(op.options.get("strideW", 1))
        if _same_pads(src.shape[1], kh, sh, dh) != tuple(p[1]) or _same_pads(src.shape[2], kw, sw, dw) != tuple(p[2]):
            continue
        op.inputs = [src, *op.inputs[1:]]
        op.options = dict(op.options, padding="SAME")
        sg.operators.remove(pad)
        changed = True
        consumers = sg.consumers()
        producers = _producers(sg)
    return changed


def _pad_value_matches(pad: Operator, target: str) -> bool:
    """Zero padding for convolutions; padding no real value exceeds (lowest/-inf) for max pool."""
    if pad.opcode == "PAD":
        value = 0.0
    else:
        v = pad.inputs[2] if len(pad.inputs) > 2 else None
        if v is None or not v.is_const or v.data.size != 1:
            return False
        value = float(v.data.reshape(-1)[0])
    if target == "MAX_POOL_2D":
        return value <= float(np.finfo(np.float32).min)
    return value == 0.0


def fuse_activations(sg: Subgraph) -> bool:
    """Fold RELU/RELU6/RELU_N1_TO_1 into the producing op when its kernel honours it."""
    changed = False
    consumers = sg.consumers()
    producers = _producers(sg)
    for op in list(sg.operators):
        if op.opcode not in _CLAMPS or len(op.inputs) != 1:
            continue
        x, out = op.inputs[0], op.outputs[0]
        producer = producers.get(id(x))
        if producer is None or op.opcode not in FUSIBLE_ACTIVATIONS.get(producer.opcode, ()):
            continue
        if activation(producer) != "NONE" or len(producer.outputs) != 1 or not single_use(sg, x, consumers):
            continue
        if not (is_plain_float(x) and is_plain_float(out)) or x.shape != out.shape:
            continue
        producer.outputs = [out]
        producer.options = dict(producer.options, fusedActivationFunction=op.opcode)
        sg.operators.remove(op)
        producers[id(out)] = producer
        changed = True
    return changed


def fuse_activations_through_concat(sg: Subgraph) -> bool:
    """``ACT(CONCATENATION(a, b, ...))`` -> ``CONCATENATION(a', b', ...)`` with ACT fused into each producer.

    A clamp activation commutes with concatenation, and CONCATENATION's kernel cannot apply it
    itself; so when every concatenated tensor comes (single use) from an op that can fuse it,
    the activation moves into those ops and disappears.
    """
    changed = False
    consumers = sg.consumers()
    producers = _producers(sg)
    for op in list(sg.operators):
        if op.opcode not in _CLAMPS or len(op.inputs) != 1:
            continue
        x, out = op.inputs[0], op.outputs[0]
        concat = producers.get(id(x))
        if concat is None or concat.opcode != "CONCATENATION" or activation(concat) != "NONE" \
                or not single_use(sg, x, consumers) or not (is_plain_float(x) and is_plain_float(out)):
            continue
        parts = [producers.get(id(t)) if t is not None else None for t in concat.inputs]
        if len({id(t) for t in concat.inputs}) != len(concat.inputs) or not all(
                p is not None and len(p.outputs) == 1 and op.opcode in FUSIBLE_ACTIVATIONS.get(p.opcode, ())
                and activation(p) == "NONE" and single_use(sg, t, consumers) and is_plain_float(t)
                for p, t in zip(parts, concat.inputs)):
            continue
        for p in parts:
            p.options = dict(p.options, fusedActivationFunction=op.opcode)
        concat.outputs = [out]
        sg.operators.remove(op)
        producers[id(out)] = concat
        changed = True
    return changed
