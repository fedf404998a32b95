"""Fusions into convolution-like ops: per-channel affine ops, explicit padding, activations.

* :func:`combine_affine_chains`: a chain of ADD/SUB/MUL/DIV by constants becomes at most one
  MUL then one ADD (so a BatchNormalization after an explicit scale and shift is one affine op).
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
* :func:`fold_positive_scale_into_consumers`: ``ADD(MUL(x, s), b)`` (optionally RELU) read only
  by CONV_2D / FULLY_CONNECTED, with ``s > 0`` per input channel, becomes ``ADD(x, b / s)``
  and the consumers' weights scaled by ``s`` (``relu(s*x + b) = s * relu(x + b/s)``). This
  removes the MUL of a pre-activation BatchNormalization (DenseNet's BN -> ReLU -> Conv);
  without the RELU (a LayerNormalization's gamma before the next FC) any nonzero ``s``.
* :func:`fold_shift_into_consumers`: ``ADD(x, c)``, read only by convolutions that see no
  padding (1x1 or VALID) or FULLY_CONNECTED, disappears into the consumers' biases; with a
  fused RELU it becomes ``MAXIMUM(x, -c)`` (``relu(x + c) = max(x, -c) + c``). XNNPACK runs a
  fused activation of a binary op as a second pass over the tensor; MAXIMUM is one pass, so
  DenseNet's remaining BatchNormalization shift costs half as much.
* :func:`fold_channel_permutation`: a RESHAPE/TRANSPOSE chain that only permutes channels
  becomes a permutation of the producing (or consuming) conv's weights.

All act only on plain (unquantized) float32 tensors, when the intermediate tensor has
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


# -- chains of elementwise ops by constants -------------------------------------------------------------

_AFFINE_OPS = frozenset({"ADD", "SUB", "MUL", "DIV"})


def _as_affine(op: Operator) -> tuple[Tensor, np.ndarray, np.ndarray] | None:
    """(x, m, a) with ``op(x) == x * m + a`` for ADD/SUB/MUL/DIV of a plain float tensor and a
    constant that does not widen it (the output has ``x``'s shape); None otherwise."""
    if op.opcode not in _AFFINE_OPS or len(op.inputs) != 2 or any(t is None for t in op.inputs):
        return None
    (x, c), swapped = op.inputs, False
    if x.is_const:
        (c, x), swapped = op.inputs, True
    y = op.outputs[0]
    if x.is_const or not c.is_const or x.shape != y.shape or c.rank > x.rank \
            or not all(is_plain_float(t) for t in (x, c, y)):
        return None
    v = np.asarray(c.data, np.float64)
    one, zero = np.ones_like(v), np.zeros_like(v)
    if op.opcode == "ADD":
        return x, one, v
    if op.opcode == "SUB":
        return (x, -one, v) if swapped else (x, one, -v)
    if op.opcode == "MUL":
        return x, v, zero
    if swapped or not np.all(v != 0):  # c / x is not affine; x / 0 is left to the kernel
        return None
    return x, 1.0 / v, zero


def combine_affine_chains(sg: Subgraph) -> bool:
    """A chain of ADD/SUB/MUL/DIV by constants (single-use links, no activation but on the last)
    -> at most ``MUL(x, M)`` then ``ADD(., A)`` carrying the last op's activation.

    ``(x*m1 + a1)*m2 + a2 = x*(m1*m2) + (a1*m2 + a2)``. Rewritten when that saves an op, or to
    put a MUL first (``(x + a)*m`` -> ``x*m + a*m``), the order the other folds look for: a
    BatchNormalization after a per-channel scale and shift then leaves one MUL and one ADD.
    Float results move by rounding only.
    """
    namer = Namer(sg)
    changed = False
    producers = _producers(sg)
    consumers = sg.consumers()
    removed: set[Operator] = set()  # the objects, not ids: a freed op's id can be reused by a new one
    for last in list(sg.operators):
        if last in removed:
            continue
        head = _as_affine(last)
        if head is None or (activation(last) != "NONE" and activation(last) not in FUSIBLE_ACTIVATIONS["ADD"]):
            continue
        chain, (x, m, a) = [last], head
        while True:
            inner = producers.get(id(x))
            step = _as_affine(inner) if inner is not None else None
            if step is None or activation(inner) != "NONE" or not single_use(sg, x, consumers):
                break
            x, m0, a0 = step
            m, a = m0 * m, a0 * m + a
            chain.insert(0, inner)
        keep_mul, keep_add = bool(np.any(m != 1)), bool(np.any(a != 0))
        needed = int(keep_mul) + int(keep_add or not keep_mul)
        reordered = chain[0].opcode not in ("MUL", "DIV") and any(op.opcode in ("MUL", "DIV") for op in chain)
        if len(chain) < 2 or (needed >= len(chain) and not reordered):
            continue
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(a))):
            continue
        y = last.outputs[0]
        ops, cur = [], x
        if keep_mul:
            out = y if not keep_add else Tensor(namer(f"{y.name}/scaled"), y.shape, y.dtype)
            ops.append(Operator("MUL", [cur, new_const(namer(f"{y.name}/scale"), m.astype(np.float32))], [out],
                                {"fusedActivationFunction": "NONE" if keep_add else activation(last)},
                                origin=last.origin))
            cur = out
        if keep_add or not keep_mul:
            ops.append(Operator("ADD", [cur, new_const(namer(f"{y.name}/shift"), a.astype(np.float32))], [y],
                                {"fusedActivationFunction": activation(last)}, origin=last.origin))
        i = sg.operators.index(chain[0])
        removed.update(chain)
        sg.operators[:] = sg.operators[:i] + ops + [op for op in sg.operators[i:] if op not in removed]
        producers = _producers(sg)
        consumers = sg.consumers()
        changed = True
    return changed


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


# -- positive scales through RELU into consumers -----------------------------------------------------

# Consumers whose input channels are the last axis of their constant weights (weights input index).
_INPUT_CHANNEL_CONSUMERS = {"CONV_2D": 1, "FULLY_CONNECTED": 1}


def _scales_consumers(sg: Subgraph, y: Tensor, channels: int, consumers: dict) -> list[Operator] | None:
    """The ops reading ``y`` when all are dense CONV_2D / FULLY_CONNECTED taking it as data input only."""
    users = consumers.get(y, [])
    if not users or any(o is y for o in sg.outputs):
        return None
    for user in users:
        w_idx = _INPUT_CHANNEL_CONSUMERS.get(user.opcode)
        if w_idx is None or user.inputs[0] is not y or any(t is y for t in user.inputs[1:]):
            return None
        w = user.inputs[w_idx]
        if not (is_plain_float(w) and w.is_const) or w.shape[-1] != channels:
            return None
        # FULLY_CONNECTED reads its input as (-1, K); with K the last axis, that axis is the channel.
        if user.opcode == "FULLY_CONNECTED" and user.options.get("weightsFormat", "DEFAULT") not in (0, "DEFAULT"):
            return None
    return users


def fold_positive_scale_into_consumers(sg: Subgraph) -> bool:
    """``ADD(MUL(x, s), b)`` [NONE/RELU] -> ``ADD(x, b/s)`` with ``s`` folded into the consumers' weights;
    likewise ``MAXIMUM(MUL(x, s), b)`` -> ``MAXIMUM(x, b/s)``.

    Needs ``s`` a positive finite per-channel (last axis) constant: then ``relu(s*x + b) =
    s * relu(x + b/s)``, ``max(s*x, b) = s * max(x, b/s)``, and the factor ``s`` multiplies input
    channel ``c`` of every consumer, i.e. its weights' last axis. Zero padding of a consumer
    convolution stays zero either way. Without an activation (a LayerNormalization's gamma and
    beta before the next FULLY_CONNECTED) any nonzero ``s`` will do.
    """
    namer = Namer(sg)
    changed = False
    producers = _producers(sg)
    consumers = sg.consumers()
    for add in list(sg.operators):
        if add.opcode not in ("ADD", "MAXIMUM") or len(add.inputs) != 2 \
                or activation(add) not in ("NONE", "RELU"):
            continue
        m, b = add.inputs
        if b is not None and not b.is_const and m is not None and m.is_const:
            m, b = b, m
        mul = producers.get(id(m)) if m is not None else None
        if mul is None or mul.opcode != "MUL" or len(mul.inputs) != 2 or activation(mul) != "NONE":
            continue
        x, s = mul.inputs
        if x is not None and x.is_const:
            x, s = s, x
        y = add.outputs[0]
        if x is None or s is None or x.is_const or not s.is_const or b is None or not b.is_const:
            continue
        if not all(is_plain_float(t) for t in (x, s, m, b, y)) or x.rank == 0 or x.shape != y.shape \
                or m.shape != y.shape or not single_use(sg, m, consumers):
            continue
        channels = y.shape[-1]
        sv, bv = _channel_vector(s.data, channels), _channel_vector(b.data, channels)
        # A RELU or MAXIMUM only commutes with a positive scale; a plain ADD with any nonzero one.
        linear = add.opcode == "ADD" and activation(add) == "NONE"
        if sv is None or bv is None or not np.all(np.isfinite(sv)) \
                or not np.all((sv != 0) if linear else (sv > 0)):
            continue
        shifted = (bv.astype(np.float64) / sv.astype(np.float64)).astype(np.float32)
        if not np.all(np.isfinite(shifted)):
            continue
        users = _scales_consumers(sg, y, channels, consumers)
        if users is None:
            continue
        for user in users:
            w_idx = _INPUT_CHANNEL_CONSUMERS[user.opcode]
            w = user.inputs[w_idx]
            inputs = list(user.inputs)
            inputs[w_idx] = new_const(namer(f"{w.name}/scaled"), (w.data * sv).astype(np.float32), np.float32)
            user.inputs = inputs
        add.inputs = [x, new_const(namer(f"{y.name}/shift"), shifted.reshape(b.shape if b.size == channels
                                                                                  else (channels,)), np.float32)]
        sg.operators.remove(mul)
        producers = _producers(sg)
        consumers = sg.consumers()
        changed = True
    return changed


# -- a per-channel shift into consumers that see no padding ---------------------------------------

def _shift_absorbers(sg: Subgraph, y: Tensor, channels: int, consumers: dict) -> list[Operator] | None:
    """The ops reading ``y`` when all are CONV_2D / FULLY_CONNECTED whose output moves by a constant
    when ``y`` does per channel: no zero padding is mixed into their windows (1x1 or VALID)."""
    users = _scales_consumers(sg, y, channels, consumers)
    if users is None:
        return None
    for user in users:
        if user.opcode == "CONV_2D":
            _, kh, kw, _ = user.inputs[1].shape
            if kh * kw != 1 and user.options.get("padding", "SAME") not in ("VALID", 1):
                return None
        bias = user.inputs[2] if len(user.inputs) > 2 else None
        if bias is not None and not (bias.is_const and is_plain_float(bias)):
            return None
    return users


def fold_shift_into_consumers(sg: Subgraph) -> bool:
    """``ADD(x, c)`` [RELU] -> ``MAXIMUM(x, -c)``, [NONE] -> ``x``, with ``c`` added to the consumers' biases.

    ``relu(x + c) = max(x, -c) + c`` and a consumer that sees no zero padding maps ``z + c`` to
    its output plus ``W . c``. With RELU both forms are one op, but XNNPACK applies a binary
    op's fused activation in a second pass over the tensor (ADD+RELU on 1x128x128x168: 5.6 ms,
    ADD 2.6, MAXIMUM 2.6), so the MAXIMUM halves the memory traffic.
    """
    namer = Namer(sg)
    changed = False
    consumers = sg.consumers()
    for add in list(sg.operators):
        found = _as_affine(add) if add.opcode == "ADD" and activation(add) in ("NONE", "RELU") else None
        if found is None or found[0].rank == 0:
            continue
        x, _, c = found
        y = add.outputs[0]
        channels = y.shape[-1]
        cv = _channel_vector(c, channels)
        if cv is None or not np.all(np.isfinite(cv)) or not np.any(cv):
            continue
        users = _shift_absorbers(sg, y, channels, consumers)
        if users is None:
            continue
        drop = activation(add) == "NONE"  # then the consumers read x itself (y is not a graph output)
        for user in users:
            w = user.inputs[1].data.astype(np.float64)
            moved = (w.reshape(w.shape[0], -1, channels) * cv.astype(np.float64)).sum(axis=(1, 2))
            bias = user.inputs[2] if len(user.inputs) > 2 else None
            old = bias.data.astype(np.float64).reshape(-1) if bias is not None else np.zeros(w.shape[0])
            name = f"{bias.name}/shifted" if bias is not None else f"{user.outputs[0].name}/bias"
            inputs = [x if drop and t is y else t for t in user.inputs] + [None] * (3 - len(user.inputs))
            inputs[2] = new_const(namer(name), (old + moved).astype(np.float32), np.float32)
            user.inputs = inputs
        if drop:
            sg.operators.remove(add)
        else:
            add.opcode = "MAXIMUM"
            add.inputs = [x, new_const(namer(f"{y.name}/floor"), (-cv).reshape(c.shape if c.size == channels
                                                                              else (channels,)), np.float32)]
            add.options = {}
        consumers = sg.consumers()
        changed = True
    return changed


# -- channel permutations ------------------------------------------------------------------------

_SHAPE_OPS = frozenset({"RESHAPE", "TRANSPOSE"})
# Producers whose output channels are rows of their constant weights: (weights, bias, axis).
_CHANNEL_PRODUCERS = {code: _AFFINE_TARGETS[code] for code in ("CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")}


def _permutation_chain(sg: Subgraph, end: Operator, producers: dict[int, Operator], consumers: dict
                       ) -> list[Operator] | None:
    """The RESHAPE/TRANSPOSE ops (in order) from the last one ``end`` back to the first one whose input
    has ``end``'s output shape; intermediate tensors must be single-use and not graph outputs."""
    chain = [end]
    target = end.outputs[0].shape
    while True:
        x = chain[0].inputs[0]
        if x is not None and x.shape == target and len(chain) > 1:
            return chain
        inner = producers.get(id(x)) if x is not None else None
        if inner is None or inner.opcode not in _SHAPE_OPS or len(chain) >= 6 or not single_use(sg, x, consumers):
            return None
        chain.insert(0, inner)


def _channel_index(chain: list[Operator]) -> np.ndarray | None:
    """``idx`` with ``chain(x)[..., k] == x[..., idx[k]]``, or None when the chain moves more than channels."""
    x = chain[0].inputs[0]
    channels = x.shape[-1]
    if x.size > 1 << 24 or channels < 2:
        return None
    data = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    for op in chain:
        if op.opcode == "TRANSPOSE":
            perm = op.inputs[1]
            if perm is None or not perm.is_const:
                return None
            data = np.transpose(data, [int(p) for p in np.asarray(perm.data).reshape(-1)])
        else:
            data = data.reshape(op.outputs[0].shape)
        if data.shape != op.outputs[0].shape:
            return None
    rows = data.reshape(-1, channels)
    idx = rows[0] % channels
    if not np.array_equal(rows // channels, np.broadcast_to(np.arange(rows.shape[0])[:, None], rows.shape)) \
            or not np.array_equal(rows % channels, np.broadcast_to(idx, rows.shape)):
        return None
    return idx


def fold_channel_permutation(sg: Subgraph) -> bool:
    """RESHAPE/TRANSPOSE chains that only permute the last (channel) axis -> permuted weights.

    Such a chain (e.g. DepthToSpace's CRD order on top of LiteRT's DCR one, or a channel
    shuffle) reads ``y[..., k] = x[..., idx[k]]``. When ``x`` comes (single use) from a
    CONV_2D / TRANSPOSE_CONV / FULLY_CONNECTED with constant weights, that op computes the
    channels in the permuted order instead (its weight rows and bias permuted); when every
    user of ``y`` is a non-grouped CONV_2D / FULLY_CONNECTED reading it as data, their
    weights' input channels are permuted instead. Either way the chain disappears.
    """
    namer = Namer(sg)
    changed = False
    producers, consumers = _producers(sg), sg.consumers()
    for end in list(sg.operators):
        if end.opcode not in _SHAPE_OPS or not end.inputs or end.inputs[0] is None or end.outputs[0].rank < 2 \
                or producers.get(id(end.outputs[0])) is not end:  # removed with an earlier chain
            continue
        chain = _permutation_chain(sg, end, producers, consumers)
        if chain is None:
            continue
        x, y = chain[0].inputs[0], end.outputs[0]
        if not (is_plain_float(x) and is_plain_float(y)) or x.rank < 2:
            continue
        idx = _channel_index(chain)
        if idx is None:
            continue
        if _permute_producer(sg, namer, producers.get(id(x)), x, y, idx, consumers) or \
                _permute_consumers(sg, namer, x, y, idx, consumers):
            for op in chain:
                sg.operators.remove(op)
            producers, consumers = _producers(sg), sg.consumers()
            changed = True
    return changed


def _permute_producer(sg: Subgraph, namer: Namer, producer: Operator | None, x: Tensor, y: Tensor, idx: np.ndarray,
                      consumers: dict) -> bool:
    if producer is None or producer.opcode not in _CHANNEL_PRODUCERS or len(producer.outputs) != 1 \
            or not single_use(sg, x, consumers):
        return False
    if producer.opcode == "FULLY_CONNECTED" and (
            producer.options.get("weightsFormat", "DEFAULT") not in (0, "DEFAULT") or x.rank < 2):
        return False
    w_idx, b_idx, axis = _CHANNEL_PRODUCERS[producer.opcode]
    w = producer.inputs[w_idx]
    bias = producer.inputs[b_idx] if b_idx < len(producer.inputs) else None
    if w is None or not (w.is_const and is_plain_float(w)) or w.shape[axis] != idx.size:
        return False
    if producer.opcode == "CONV_2D" and producer.inputs[0].shape[-1] != w.shape[3]:
        return False  # grouped: output channel k belongs to group k // (O / groups)
    if bias is not None and not (bias.is_const and is_plain_float(bias) and bias.data.size == idx.size):
        return False
    inputs = list(producer.inputs)
    inputs[w_idx] = new_const(namer(f"{w.name}/channels_permuted"), np.take(w.data, idx, axis=axis), w.dtype)
    if bias is not None:
        inputs[b_idx] = new_const(namer(f"{bias.name}/channels_permuted"), bias.data.reshape(-1)[idx], bias.dtype)
    producer.inputs = inputs
    producer.outputs = [y]
    return True


def _permute_consumers(sg: Subgraph, namer: Namer, x: Tensor, y: Tensor, idx: np.ndarray, consumers: dict) -> bool:
    users = consumers.get(y, [])
    if not users or any(t is y for t in sg.outputs):
        return False
    for u in users:
        w = u.inputs[1] if len(u.inputs) > 1 else None
        if u.opcode not in ("CONV_2D", "FULLY_CONNECTED") or u.inputs[0] is not y or w is None \
                or not (w.is_const and is_plain_float(w)) or w.shape[-1] != idx.size or w is y:
            return False
        if u.opcode == "FULLY_CONNECTED" and (u.options.get("weightsFormat", "DEFAULT") not in (0, "DEFAULT")
                                              or y.shape[-1] != w.shape[-1]):
            return False
    inverse = np.argsort(idx)
    for u in users:
        w = u.inputs[1]
        # u reads y[..., k] = x[..., idx[k]] with weight w[..., k]: x channel j gets w[..., inverse[j]].
        u.inputs = [x, new_const(namer(f"{w.name}/channels_permuted"), np.take(w.data, inverse, axis=-1), w.dtype),
                    *u.inputs[2:]]
    return True
