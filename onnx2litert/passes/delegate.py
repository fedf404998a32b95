"""Exact rewrites of ops the XNNPACK delegate does not take into ops it does.

LiteRT runs a float model on CPU through the XNNPACK delegate; an op XNNPACK refuses runs
in the builtin kernel and splits the delegated graph in two partitions around it. A few such
ops cost far more than their own work (a MIRROR_PAD between convolutions made a style
transfer network 6x slower). Each rewrite here produces the same values from ops XNNPACK
delegates (checked with the LiteRT interpreter: PAD, SLICE, STRIDED_SLICE with positive
strides, CONCATENATION of at most 5 inputs, RESHAPE, RELU, MINIMUM, CONV_2D):

* :func:`mirror_pad_to_slices`: MIRROR_PAD (REFLECT / SYMMETRIC) -> one-row SLICEs
  concatenated around the tensor, axis by axis;
* :func:`split_relu_0_to_1`: RELU_0_TO_1(x) -> MINIMUM(RELU(x), 1) (the RELU then fuses into
  its producer);
* :func:`max_pool_pad_to_zero_pad`: PADV2(lowest) before VALID MAX_POOL_2D -> PAD (zeros)
  when the padded tensor is a RELU/RELU6/LOGISTIC result (non-negative: a zero never wins
  over the real values every window holds);
* :func:`nearest_resize_to_concat`: RESIZE_NEAREST_NEIGHBOR by integer factors without
  align_corners -> RESHAPE + CONCATENATION copies (each pixel repeated);
* :func:`split_v_to_slices`: SPLIT_V -> one SLICE per output;
* :func:`transpose_conv_to_depth_to_space`: TRANSPOSE_CONV whose kernel equals its
  stride (no overlap: every output pixel has exactly one tap) -> 1x1 CONV_2D producing
  ``s*s*Cout`` channels + DEPTH_TO_SPACE. Its output shape is no input tensor, so a dynamic
  batch needs no run-time SHAPE arithmetic (XNNPACK refuses a TRANSPOSE_CONV whose
  output_shape is not constant, which split a U-Net into 5 partitions).
* :func:`gather_to_slice`: GATHER of one constant index, or of a constant run of consecutive
  indices, -> SLICE (+ RESHAPE dropping the axis for a scalar index). XNNPACK has no GATHER:
  each one (e.g. the q/k/v picks after a fused attention projection) ran in the builtin kernel
  and cut the delegated graph.
* :func:`split_tall_depthwise`: DEPTHWISE_CONV_2D whose kernel has more than 25 taps ->
  PAD + one VALID DEPTHWISE_CONV_2D per band of kernel rows (each band at most 25 taps, on a
  row SLICE of the padded input) + ADDs. XNNPACK runs kernels of up to 25 taps in one pass;
  larger ones take its multi-pass path, which made a 7x7 depthwise at 56x56x64 6x slower
  (11.8 ms) than the three bands (1.8 ms). Only the float32 summation order changes. It runs
  after the fusions (its own pipeline step), so BatchNormalization and activations are already
  in the convolution it splits.
* :func:`pad_conv_output_channels` (opt-in, x86 tuning): CONV_2D with 17-31 output channels
  computes 32 (zero filters) and slices; it runs once, after the optimization rounds.

All act on static shapes and on float32 tensors without quantization (the integer paths are
left to the quantized kernels).
"""
from __future__ import annotations

import numpy as np

from ..ir import Operator, Subgraph, Tensor
from .graphutil import Namer, activation, int32_const, is_dynamic, is_plain_float, new_const

# XNNPACK's CONCATENATION takes at most this many inputs.
_MAX_CONCAT_INPUTS = 5
# Activations after which a tensor holds no negative value.
_NON_NEGATIVE_OPS = frozenset({"RELU", "RELU6", "RELU_0_TO_1", "LOGISTIC"})
_NON_NEGATIVE_FUSED = frozenset({"RELU", "RELU6"})


def _static_float(*tensors: Tensor | None) -> bool:
    return all(t is not None and is_plain_float(t) and not is_dynamic(t) for t in tensors)


def _const_ints(t: Tensor | None) -> np.ndarray | None:
    if t is None or not t.is_const or t.dtype.kind not in "iu":
        return None
    return np.asarray(t.data).astype(np.int64)


def _float_conv_operands(op: Operator, data: int, weights: int, bias: int
                         ) -> tuple[Tensor, Tensor, Tensor | None, Tensor] | None:
    """(x, w, bias or None, out) of a 4-D convolution with static float32 data and constant float32
    weights (and bias); None when the op is not such a convolution."""
    x, w, out = op.inputs[data], op.inputs[weights], op.outputs[0]
    b = op.inputs[bias] if len(op.inputs) > bias else None
    if not _static_float(x, out, w) or not w.is_const or x.rank != 4 or w.rank != 4:
        return None
    if b is not None and not (is_plain_float(b) and b.is_const):
        return None
    return x, w, b, out


def _float_convs(sg: Subgraph, opcode: str, data: int, weights: int, bias: int):
    """(op, (x, w, bias, out)) for every ``opcode`` op of ``sg`` that :func:`_float_conv_operands` accepts
    (over a snapshot of the operator list, so callers may replace the op)."""
    for op in list(sg.operators):
        if op.opcode != opcode or len(op.inputs) <= max(data, weights):
            continue
        operands = _float_conv_operands(op, data=data, weights=weights, bias=bias)
        if operands is not None:
            yield op, operands


class _Emitter:
    """Builds replacement ops for one op, inserted at its place in the subgraph."""

    def __init__(self, sg: Subgraph, namer: Namer, origin: str | None, hint: str):
        self.sg, self.namer, self.origin, self.hint = sg, namer, origin, hint
        self.ops: list[Operator] = []

    def tensor(self, shape: tuple[int, ...], like: Tensor, suffix: str) -> Tensor:
        return Tensor(self.namer(f"{self.hint}/{suffix}"), tuple(int(d) for d in shape), like.dtype)

    def emit(self, opcode: str, inputs: list[Tensor], out: Tensor, **options: object) -> Tensor:
        self.ops.append(Operator(opcode, inputs, [out], dict(options), origin=self.origin))
        return out

    def slice(self, x: Tensor, axis: int, start: int, length: int, out: Tensor | None = None) -> Tensor:
        begin = [0] * x.rank
        size = list(x.shape)
        begin[axis], size[axis] = start, length
        out = out or self.tensor(tuple(size), x, "slice")
        return self.emit("SLICE", [x, int32_const(self.namer, f"{out.name}/begin", begin),
                                   int32_const(self.namer, f"{out.name}/size", size)], out)

    def reshape(self, x: Tensor, shape: tuple[int, ...], out: Tensor | None = None) -> Tensor:
        out = out or self.tensor(shape, x, "reshape")
        return self.emit("RESHAPE", [x, int32_const(self.namer, f"{out.name}/shape", shape)], out)

    def concat(self, parts: list[Tensor], axis: int, out: Tensor | None = None) -> Tensor:
        """CONCATENATION of ``parts`` along ``axis``, nested so no op takes more than 5 inputs."""
        if len(parts) == 1 and out is None:
            return parts[0]
        while len(parts) > _MAX_CONCAT_INPUTS:
            chunks = [parts[i:i + _MAX_CONCAT_INPUTS] for i in range(0, len(parts), _MAX_CONCAT_INPUTS)]
            parts = [self.concat(c, axis) for c in chunks]
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        out = out or self.tensor(tuple(shape), parts[0], "concat")
        return self.emit("CONCATENATION", list(parts), out, axis=axis, fusedActivationFunction="NONE")

    def replace(self, op: Operator) -> None:
        i = self.sg.operators.index(op)
        self.sg.operators[i:i + 1] = self.ops


# -- MIRROR_PAD ------------------------------------------------------------------------------------

def mirror_pad_pieces(size: int, before: int, after: int, mode: str) -> tuple[list[int], list[int]] | None:
    """Source indices of the rows MIRROR_PAD puts before and after an axis of ``size`` rows."""
    shift = 1 if mode == "REFLECT" else 0
    limit = size - shift
    if before > limit or after > limit or before < 0 or after < 0:
        return None
    head = [k - 1 + shift for k in range(before, 0, -1)]
    tail = [size - k - shift for k in range(1, after + 1)]
    return head, tail


def mirror_pad_to_slices(sg: Subgraph) -> bool:
    """MIRROR_PAD -> one-row SLICEs concatenated before and after the tensor, one axis at a time."""
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode != "MIRROR_PAD" or len(op.inputs) < 2 or not _static_float(op.inputs[0], op.outputs[0]):
            continue
        x, out = op.inputs[0], op.outputs[0]
        pads = _const_ints(op.inputs[1])
        mode = op.options.get("mode", "REFLECT")
        mode = {0: "REFLECT", 1: "SYMMETRIC"}.get(mode, mode) if isinstance(mode, int) else str(mode)
        if pads is None or pads.shape != (x.rank, 2) or mode not in ("REFLECT", "SYMMETRIC"):
            continue
        plans = [mirror_pad_pieces(x.shape[a], int(pads[a, 0]), int(pads[a, 1]), mode) for a in range(x.rank)]
        if any(p is None for p in plans):
            continue
        padded_axes = [a for a in range(x.rank) if pads[a].any()]
        if not padded_axes:
            continue
        e = _Emitter(sg, namer, op.origin, out.name)
        y = x
        for n, axis in enumerate(padded_axes):
            head, tail = plans[axis]
            pieces = [e.slice(y, axis, i, 1) for i in head] + [y] + [e.slice(y, axis, i, 1) for i in tail]
            # Keep the middle tensor whole: nest only the one-row pieces on each side.
            left = e.concat(pieces[:len(head)], axis) if len(head) > 1 else None
            right = e.concat(pieces[len(head) + 1:], axis) if len(tail) > 1 else None
            parts = ([left] if left is not None else pieces[:len(head)]) + [y] + \
                ([right] if right is not None else pieces[len(head) + 1:])
            y = e.concat(parts, axis, out=out if n == len(padded_axes) - 1 else None)
        e.replace(op)
        changed = True
    return changed


# -- RELU_0_TO_1 -----------------------------------------------------------------------------------

def split_relu_0_to_1(sg: Subgraph) -> bool:
    """RELU_0_TO_1(x) -> MINIMUM(RELU(x), 1): the same clamp from two delegated ops."""
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode != "RELU_0_TO_1" or len(op.inputs) != 1 or not _static_float(op.inputs[0], op.outputs[0]):
            continue
        x, out = op.inputs[0], op.outputs[0]
        e = _Emitter(sg, namer, op.origin, out.name)
        r = e.emit("RELU", [x], e.tensor(x.shape, x, "relu"))
        e.emit("MINIMUM", [r, new_const(namer(f"{out.name}/one"), np.float32(1.0), np.float32)], out)
        e.replace(op)
        changed = True
    return changed


# -- PADV2 before MAX_POOL_2D ----------------------------------------------------------------------

def _non_negative(sg: Subgraph, t: Tensor) -> bool:
    producer = next((p for p in sg.operators if any(o is t for o in p.outputs)), None)
    if producer is None:
        return False
    return producer.opcode in _NON_NEGATIVE_OPS or (
        len(producer.outputs) == 1 and "fusedActivationFunction" in producer.options
        and activation(producer) in _NON_NEGATIVE_FUSED)


def _windows_see_data(size: int, before: int, after: int, kernel: int, stride: int) -> bool:
    """Every VALID window over the padded axis overlaps the ``size`` real rows."""
    total = size + before + after
    if kernel > total or stride < 1:
        return False
    last_start = (total - kernel) // stride * stride
    return before <= kernel - 1 and last_start <= before + size - 1


def max_pool_pad_to_zero_pad(sg: Subgraph) -> bool:
    """PADV2(x, lowest) -> PAD(x) when x >= 0 and only VALID MAX_POOL_2D windows read it."""
    changed = False
    consumers = sg.consumers()
    lowest = float(np.finfo(np.float32).min)
    for op in list(sg.operators):
        if op.opcode != "PADV2" or len(op.inputs) < 3 or not _static_float(op.inputs[0], op.outputs[0]):
            continue
        x, padded, value = op.inputs[0], op.outputs[0], op.inputs[2]
        pads = _const_ints(op.inputs[1])
        if value is None or not value.is_const or value.data.size != 1 or float(value.data.reshape(-1)[0]) > lowest:
            continue
        if pads is None or x.rank != 4 or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
            continue
        users = consumers.get(padded, [])
        if not users or any(t is padded for t in sg.outputs) or not all(
                u.opcode == "MAX_POOL_2D" and u.inputs[0] is padded and u.options.get("padding") in ("VALID", 1)
                and _windows_see_data(x.shape[1], int(pads[1, 0]), int(pads[1, 1]),
                                      int(u.options.get("filterHeight", 1)), int(u.options.get("strideH", 1)))
                and _windows_see_data(x.shape[2], int(pads[2, 0]), int(pads[2, 1]),
                                      int(u.options.get("filterWidth", 1)), int(u.options.get("strideW", 1)))
                for u in users):
            continue
        if not _non_negative(sg, x):
            continue
        op.opcode, op.inputs, op.options = "PAD", [x, op.inputs[1]], {}
        changed = True
    return changed


# -- RESIZE_NEAREST_NEIGHBOR -----------------------------------------------------------------------

def nearest_resize_to_concat(sg: Subgraph) -> bool:
    """RESIZE_NEAREST_NEIGHBOR by integer factors (no align_corners) -> pixels repeated by CONCATENATION.

    Without align_corners, output row ``r`` of an ``s``-times taller image reads row
    ``floor(r / s)`` (and ``floor((r + 0.5) / s)``, the same row, with half-pixel centers):
    every row repeated ``s`` times. Along W: (N, H, W, 1, C) concatenated ``s`` times on axis
    3 is (N, H, W*s, C); along H: (N, H, 1, W*s*C) concatenated on axis 2.
    """
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode != "RESIZE_NEAREST_NEIGHBOR" or not _static_float(op.inputs[0], op.outputs[0]):
            continue
        if op.options.get("alignCorners", False):
            continue
        x, out = op.inputs[0], op.outputs[0]
        if x.rank != 4 or out.rank != 4 or out.shape[0] != x.shape[0] or out.shape[3] != x.shape[3]:
            continue
        n, h, w, c = x.shape
        oh, ow = out.shape[1], out.shape[2]
        if oh % h or ow % w:
            continue
        sh, sw = oh // h, ow // w
        if sh > _MAX_CONCAT_INPUTS or sw > _MAX_CONCAT_INPUTS:
            continue
        e = _Emitter(sg, namer, op.origin, out.name)
        y = x
        if sw > 1:
            r = e.reshape(y, (n, h, w, 1, c))
            y = e.concat([r] * sw, 3)
            y = e.reshape(y, (n, h, ow, c), out=out if sh == 1 else None)
        if sh > 1:
            r = e.reshape(y, (n, h, 1, ow * c))
            y = e.concat([r] * sh, 2)
            e.reshape(y, (n, oh, ow, c), out=out)
        if sh == 1 and sw == 1:
            e.reshape(x, out.shape, out=out)
        e.replace(op)
        changed = True
    return changed


# -- SPLIT_V ---------------------------------------------------------------------------------------

def split_v_to_slices(sg: Subgraph) -> bool:
    """SPLIT_V -> one SLICE per output (same values; XNNPACK delegates SLICE, not SPLIT_V)."""
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode != "SPLIT_V" or len(op.inputs) < 3 or not _static_float(op.inputs[0], *op.outputs):
            continue
        x = op.inputs[0]
        axis_value = _const_ints(op.inputs[2])
        if axis_value is None or axis_value.size != 1:
            continue
        axis = int(axis_value.reshape(-1)[0])
        axis = axis + x.rank if axis < 0 else axis
        if not 0 <= axis < x.rank or sum(o.shape[axis] for o in op.outputs) != x.shape[axis]:
            continue
        e = _Emitter(sg, namer, op.origin, op.outputs[0].name)
        start = 0
        for o in op.outputs:
            begin = [0] * x.rank
            begin[axis] = start
            e.emit("SLICE", [x, int32_const(namer, f"{o.name}/begin", begin),
                             int32_const(namer, f"{o.name}/size", o.shape)], o)
            start += o.shape[axis]
        e.replace(op)
        changed = True
    return changed


# -- TRANSPOSE_CONV ---------------------------------------------------------------------------------

def transpose_conv_to_depth_to_space(sg: Subgraph) -> bool:
    """TRANSPOSE_CONV with kernel == stride (square) and no cropping -> CONV_2D 1x1 + DEPTH_TO_SPACE.

    LiteRT's TRANSPOSE_CONV writes ``out[n, i*s + a, j*s + b, o] = bias[o] + sum_c x[n, i, j, c] *
    W[o, a, b, c]`` (padding 0; SAME adds none when kernel == stride). A 1x1 convolution with
    filter row ``(a*s + b)*Cout + o`` = ``W[o, a, b, :]`` and the bias tiled ``s*s`` times gives
    those values as channels, which DEPTH_TO_SPACE (block ``s``) moves to ``(i*s + a, j*s + b, o)``.
    The fused activation is elementwise, so it moves to the convolution.
    """
    namer = Namer(sg)
    changed = False
    for op, (x, w, bias, out) in _float_convs(sg, "TRANSPOSE_CONV", data=2, weights=1, bias=3):
        c_out, kh, kw, c_in = w.shape
        s = int(op.options.get("strideH", 1))
        if not (s == kh == kw == int(op.options.get("strideW", 1))) or s < 2 or x.shape[3] != c_in:
            continue
        n, h, wd, _ = x.shape
        if out.shape != (n, h * s, wd * s, c_out):
            continue
        if activation(op) not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            continue
        b = np.zeros(c_out, np.float32) if bias is None else np.asarray(bias.data, np.float32).reshape(-1)
        if b.size != c_out:
            continue
        filt = np.ascontiguousarray(np.transpose(np.asarray(w.data, np.float32), (1, 2, 0, 3)))
        filt = filt.reshape(s * s * c_out, 1, 1, c_in)
        e = _Emitter(sg, namer, op.origin, out.name)
        y = e.tensor((n, h, wd, s * s * c_out), out, "channels")
        e.emit("CONV_2D", [x, new_const(namer(f"{out.name}/filter"), filt, np.float32),
                           new_const(namer(f"{out.name}/bias"), np.tile(b, s * s), np.float32)], y,
               padding="VALID", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
               fusedActivationFunction=activation(op))
        e.emit("DEPTH_TO_SPACE", [y], out, blockSize=s)
        e.replace(op)
        changed = True
    return changed


# -- GATHER of constant consecutive indices --------------------------------------------------------

def _consecutive_run(indices: np.ndarray, size: int) -> int | None:
    """First index when ``indices`` (normalized) are ``first, first + 1, ...`` inside ``[0, size)``."""
    flat = np.where(indices < 0, indices + size, indices).reshape(-1)
    if flat.size == 0 or flat[0] < 0 or flat[-1] >= size or np.any(np.diff(flat) != 1):
        return None
    return int(flat[0])


def gather_to_slice(sg: Subgraph) -> bool:
    """GATHER (batchDims 0) by a constant scalar or 1-D run of consecutive indices -> SLICE [+ RESHAPE]."""
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode != "GATHER" or len(op.inputs) != 2 or int(op.options.get("batchDims", 0)) != 0:
            continue
        x, idx, out = op.inputs[0], op.inputs[1], op.outputs[0]
        values = _const_ints(idx)
        if not _static_float(x, out) or values is None or values.ndim > 1 or x.rank == 0:
            continue
        axis = int(op.options.get("axis", 0)) % x.rank
        first = _consecutive_run(values, x.shape[axis])
        if first is None:
            continue
        e = _Emitter(sg, namer, op.origin, out.name)
        if values.ndim == 0:
            e.reshape(e.slice(x, axis, first, 1), out.shape, out)
        else:
            e.slice(x, axis, first, values.size, out)
        e.replace(op)
        changed = True
    return changed


# -- DEPTHWISE_CONV_2D with more than 25 taps ------------------------------------------------------

# XNNPACK's largest single-pass depthwise micro-kernel reads this many taps.
_DEPTHWISE_SINGLE_PASS_TAPS = 25


def _same_padding(size: int, out: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def depthwise_row_bands(kh: int, kw: int, max_taps: int = _DEPTHWISE_SINGLE_PASS_TAPS) -> list[tuple[int, int]]:
    """(first row, row count) of the kernel-row bands of a ``kh x kw`` kernel, each at most ``max_taps`` taps."""
    rows = max(1, max_taps // kw)
    return [(r, min(rows, kh - r)) for r in range(0, kh, rows)]


def split_tall_depthwise(sg: Subgraph) -> bool:
    """DEPTHWISE_CONV_2D with ``kh*kw > 25`` (``kw <= 25``, no dilation) -> bands of kernel rows.

    With the input padded once (``xp``), ``out[y, x] = sum_i sum_j K[i, j] * xp[y*s + i, x*s + j]``;
    the sum over rows ``i`` splits into bands ``[r, r + n)``, and a band is a VALID depthwise
    convolution with kernel ``K[r:r + n]`` over the rows ``xp[r : r + (Ho-1)*s + n]``. The bias
    goes to the first band, the fused activation to the last ADD.
    """
    namer = Namer(sg)
    changed = False
    for op, (x, w, bias, out) in _float_convs(sg, "DEPTHWISE_CONV_2D", data=0, weights=1, bias=2):
        _, kh, kw, channels = w.shape
        if kh * kw <= _DEPTHWISE_SINGLE_PASS_TAPS or kw > _DEPTHWISE_SINGLE_PASS_TAPS or kh < 2:
            continue
        if int(op.options.get("dilationHFactor", 1)) != 1 or int(op.options.get("dilationWFactor", 1)) != 1:
            continue
        sh, sw = int(op.options.get("strideH", 1)), int(op.options.get("strideW", 1))
        n, h, wd, _ = x.shape
        _, ho, wo, _ = out.shape
        if op.options.get("padding", "SAME") == "SAME":
            top, bottom = _same_padding(h, ho, kh, sh)
            left, right = _same_padding(wd, wo, kw, sw)
        else:
            top = bottom = left = right = 0
        e = _Emitter(sg, namer, op.origin, out.name)
        xp = x
        if top or bottom or left or right:
            xp = e.tensor((n, h + top + bottom, wd + left + right, x.shape[3]), x, "padded")
            e.emit("PAD", [x, int32_const(namer, f"{xp.name}/pads", [[0, 0], [top, bottom], [left, right], [0, 0]])],
                   xp)
        filt = np.asarray(w.data, np.float32)
        b = np.zeros(channels, np.float32) if bias is None else np.asarray(bias.data, np.float32).reshape(-1)
        acc: Tensor | None = None
        bands = depthwise_row_bands(kh, kw)
        for k, (r, rows) in enumerate(bands):
            rows_in = e.slice(xp, 1, r, (ho - 1) * sh + rows)
            piece = e.tensor(out.shape, out, f"band{k}")
            band_bias = b if k == 0 else np.zeros_like(b)
            e.emit("DEPTHWISE_CONV_2D", [rows_in, new_const(namer(f"{out.name}/band{k}/filter"),
                                                            np.ascontiguousarray(filt[:, r:r + rows]), np.float32),
                                         new_const(namer(f"{out.name}/band{k}/bias"), band_bias, np.float32)],
                   piece, padding="VALID", strideH=sh, strideW=sw, dilationHFactor=1, dilationWFactor=1,
                   depthMultiplier=int(op.options.get("depthMultiplier", 1)), fusedActivationFunction="NONE")
            if acc is None:
                acc = piece
                continue
            last = k == len(bands) - 1
            acc = e.emit("ADD", [acc, piece], out if last else e.tensor(out.shape, out, f"sum{k}"),
                         fusedActivationFunction=activation(op) if last else "NONE")
        e.replace(op)
        changed = True
    return changed


# -- CONV_2D output channels padded to the kernel tile (opt-in) --------------------------------------

def pad_conv_output_channels(sg: Subgraph, multiple: int) -> bool:
    """CONV_2D (kernel larger than 1x1) with ``multiple/2 < Cout < multiple`` output channels ->
    the same convolution with zero filters up to ``multiple`` channels + SLICE of the first Cout.

    On this project's x86-64 AVX-512 machine XNNPACK ran a 3x3 convolution with 17-31 output
    channels about 25% slower than the same one with 32 (96x96x64 input: 8.9 vs 6.7 ms; the
    96x96x96 -> 24 convolutions of a DenseNet 14.7 vs 11.9 ms), while 1x1 convolutions and
    channel counts above 32 showed no gain. ARM kernels are 8 wide, where the padding is only
    extra work, so this runs only when the user asks for it (``--pad_conv_output_channels_to``).
    """
    namer = Namer(sg)
    changed = False
    for op, (x, w, bias, out) in _float_convs(sg, "CONV_2D", data=0, weights=1, bias=2):
        cout, kh, kw, _ = w.shape
        if kh * kw == 1 or not multiple // 2 < cout < multiple or bias is None:
            continue
        extra = multiple - cout
        e = _Emitter(sg, namer, op.origin, out.name)
        wide = e.tensor(out.shape[:3] + (multiple,), out, "padded")
        w_pad = np.concatenate([np.asarray(w.data), np.zeros((extra,) + w.shape[1:], np.float32)])
        b_pad = np.concatenate([np.asarray(bias.data).reshape(-1), np.zeros(extra, np.float32)])
        e.emit("CONV_2D", [x, new_const(namer(f"{w.name}/padded"), w_pad),
                           new_const(namer(f"{bias.name}/padded"), b_pad)], wide, **op.options)
        # Size -1 ("to the end") on the other axes keeps the parameters free of the batch size,
        # so a dynamic batch generalizes without run-time shape arithmetic.
        e.emit("SLICE", [wide, int32_const(namer, f"{out.name}/begin", [0, 0, 0, 0]),
                         int32_const(namer, f"{out.name}/size", [-1, -1, -1, cout])], out)
        e.replace(op)
        changed = True
    return changed


def slices_to_end_as_strided_slice(sg: Subgraph) -> bool:
    """SLICE whose size has -1 ("to the end") entries -> STRIDED_SLICE with those axes in ``end_mask``.

    The XNNPACK delegate takes a SLICE only with explicit sizes; a -1 size (written to keep a
    dynamic batch free of run-time shape arithmetic) left it on the CPU kernels, splitting the
    delegated graph (hf_convnext_nano with a dynamic batch: 46.9 vs 43.4 ms with explicit sizes).
    A unit-stride STRIDED_SLICE with an end mask keeps the same meaning and is delegated.
    """
    namer = Namer(sg)
    changed = False
    for op in list(sg.operators):
        if op.opcode != "SLICE":
            continue
        x, begin, size = op.inputs[:3]
        if not (begin.is_const and size.is_const) or not np.any(np.asarray(size.data) == -1):
            continue
        b = np.asarray(begin.data, np.int64).reshape(-1)
        n = np.asarray(size.data, np.int64).reshape(-1)
        if np.any(b < 0):
            continue
        to_end = n == -1
        out = op.outputs[0]
        e = _Emitter(sg, namer, op.origin, out.name)
        e.emit("STRIDED_SLICE", [x, int32_const(namer, f"{out.name}/begin", b),
                                 int32_const(namer, f"{out.name}/end", np.where(to_end, 0, b + n)),
                                 int32_const(namer, f"{out.name}/strides", np.ones_like(b))], out,
               beginMask=0, endMask=int(sum(1 << i for i in np.flatnonzero(to_end))), ellipsisMask=0,
               newAxisMask=0, shrinkAxisMask=0)
        e.replace(op)
        changed = True
    return changed


def delegate_friendly(sg: Subgraph) -> bool:
    """Run the rewrites of this module that precede the fusions; True when one changed the graph."""
    changed = False
    for rewrite in (mirror_pad_to_slices, split_relu_0_to_1, max_pool_pad_to_zero_pad, nearest_resize_to_concat,
                    split_v_to_slices, transpose_conv_to_depth_to_space, gather_to_slice):
        changed |= rewrite(sg)
    return changed


__all__ = ["delegate_friendly", "depthwise_row_bands", "gather_to_slice", "max_pool_pad_to_zero_pad", "mirror_pad_pieces",
           "mirror_pad_to_slices", "nearest_resize_to_concat", "pad_conv_output_channels", "slices_to_end_as_strided_slice",
           "split_relu_0_to_1",
           "split_tall_depthwise",
           "split_v_to_slices", "transpose_conv_to_depth_to_space"]
