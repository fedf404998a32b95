"""Integer quantization of the optimized float IR: int8 or int16 activations, int8 weights.

Inputs are the float model and the calibrated range of each of its float tensors. Each
float operator either gets an integer kernel (when LiteRT has one for the activation type)
or, in ``integer_quant`` only, stays float between DEQUANTIZE/QUANTIZE ops.

Parameters follow LiteRT's kernels:

* int8 activations are asymmetric (zero point chosen so 0.0 is exact); int16 activations
  are symmetric with zero point 0 (the 16x8 kernels require it).
* Filters of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV are int8
  symmetric, per channel on the kernel's channel axis (or per tensor); biases are int32
  (int64 with int16 activations) with scale ``input_scale * weight_scale``.
* Ops that move values without arithmetic (RESHAPE, TRANSPOSE, pools, CONCATENATION, PAD,
  slices, ...) need the same scale and zero point on inputs and outputs: their tensors are
  tied into one group whose range is the union of the members' ranges. A tie that would
  clip a fixed range is refused and a requantizing QUANTIZE is inserted instead.
* SOFTMAX / LOGISTIC / TANH outputs have fixed parameters (1/256 zp -128, 1/256 zp -128,
  1/128 zp 0 for int8; 1/32768 zp 0 for int16); LOG_SOFTMAX (int8 only) 16/256 zp 127.
* PADV2's pad value takes the output's parameters; float32's lowest (max-pool padding) is left
  out of the range and saturates to the integer minimum.
* Kernel limits that depend on the parameters (int16 SOFTMAX's input scale) are checked after
  the ranges are tied; an op beyond them stays float (``integer_quant``) or fails the
  full-integer variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConversionError, Issue, Reason
from ..ir import Model, Operator, Quantization, Subgraph, Tensor
from .calibrate import Range
from .common import (BIAS_INPUT, DATA_INPUT, F32, WEIGHT_AXIS, WEIGHT_INPUT, activation_params,
                     bias_min_weight_scale, clone_model, quantize_array, quantize_bias,
                     quantize_weights_symmetric, weight_quantization)

_I8, _I16, _U8 = np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.uint8)

WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
# Own output range; inputs may have any parameters. Value: activation dtypes with a kernel.
FREE: dict[str, tuple[np.dtype, ...]] = {
    "ADD": (_I8, _I16), "SUB": (_I8, _I16), "MUL": (_I8, _I16), "MEAN": (_I8, _I16), "SUM": (_I8, _I16),
    "RELU": (_I8, _I16), "RELU6": (_I8, _I16), "LEAKY_RELU": (_I8, _I16), "HARD_SWISH": (_I8,),
    "SQUARED_DIFFERENCE": (_I8,), "RSQRT": (_I8, _I16), "GELU": (_I8,),
}
# Integer outputs (indices, shapes) from a float input; any input parameters (quantization keeps the
# order; SHAPE reads no values).
INDEX: dict[str, tuple[np.dtype, ...]] = {"ARG_MAX": (_I8,), "ARG_MIN": (_I8,), "SHAPE": (_I8, _I16)}
# Fixed output parameters per activation dtype: (scale, zero point).
FIXED: dict[str, dict[np.dtype, tuple[float, int]]] = {
    "SOFTMAX": {_I8: (1.0 / 256, -128), _I16: (1.0 / 32768, 0)},
    "LOGISTIC": {_I8: (1.0 / 256, -128), _I16: (1.0 / 32768, 0)},
    "TANH": {_I8: (1.0 / 128, 0), _I16: (1.0 / 32768, 0)},
    # int8 only in LiteRT; log-probabilities below -255/16 saturate (as in LiteRT's own converter).
    "LOG_SOFTMAX": {_I8: (16.0 / 256, 127)},
}
# Same parameters on every float input and output.
TIED: dict[str, tuple[np.dtype, ...]] = {
    **{op: (_I8, _I16) for op in (
        "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION",
        "PAD", "STRIDED_SLICE", "SLICE", "SPLIT", "GATHER", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR",
        "MAXIMUM", "MINIMUM", "PACK", "UNPACK", "REDUCE_MAX", "REDUCE_MIN", "MIRROR_PAD", "PADV2")},
    **{op: (_I8,) for op in ("SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND",
                             "SPLIT_V", "TILE")},
}


def integer_kernel_ops(act: np.dtype) -> list[str]:
    """Opcodes this quantizer gives an integer kernel for activation dtype ``act``."""
    act = np.dtype(act)
    ops = set(WEIGHTED) | {k for k, v in FREE.items() if act in v} | {k for k, v in FIXED.items() if act in v}
    ops |= {k for k, v in TIED.items() if act in v} | {k for k, v in INDEX.items() if act in v}
    return sorted(ops)


@dataclass
class QuantizeReport:
    """What the integer quantizer did: ops left float (integer_quant only) and why."""

    activation_dtype: str
    float_ops: list[dict] = field(default_factory=list)
    quantized_ops: int = 0
    requantize_ops: int = 0

    def as_dict(self) -> dict:
        return {"activation_dtype": self.activation_dtype, "quantized_ops": self.quantized_ops,
                "requantize_ops": self.requantize_ops, "float_ops": self.float_ops}


def _is_float_act(t: Tensor | None) -> bool:
    return t is not None and t.dtype == F32 and not t.is_const


def _touches_float(op: Operator) -> bool:
    return any(_is_float_act(t) for t in op.inputs) or any(t.dtype == F32 for t in op.outputs)


# PADV2's pad value at or below this magnitude is a real number; beyond it, a "lowest value" sentinel
# (max-pool padding is float32's lowest): in integer it becomes the type's minimum.
_SENTINEL = 1e30


def _data_inputs(op: Operator) -> list[int]:
    """Indices of the inputs that carry real values (float32), excluding filters and biases.

    PADV2's pad value (input 2) is a parameter, not a member of the tied group: it is
    quantized with the output's parameters (saturating) when the op is rewritten.
    """
    if op.opcode in WEIGHTED:
        return [DATA_INPUT[op.opcode]]
    if op.opcode == "PADV2":
        return [0]
    return [i for i, t in enumerate(op.inputs) if t is not None and t.dtype == F32]


def _unsupported_reason(op: Operator, act: np.dtype, ranges: dict[int, Range]) -> str | None:
    """Why ``op`` cannot get an integer kernel, or None when it can."""
    code = op.opcode
    if code in WEIGHTED:
        w = op.inputs[WEIGHT_INPUT[code]]
        bi = BIAS_INPUT[code]
        b = op.inputs[bi] if bi < len(op.inputs) else None
        if w is None or not w.is_const or w.dtype != F32:
            return f"{code} with a run-time filter has no integer kernel"
        if b is not None and (not b.is_const or b.dtype != F32):
            return f"{code} with a run-time bias has no integer kernel"
        if w.rank <= WEIGHT_AXIS[code]:
            return f"{code} filter of rank {w.rank}"
    else:
        kernels = next((table[code] for table in (FREE, TIED, FIXED, INDEX) if code in table), None)
        if kernels is None:
            return f"no integer ({act.name}) kernel for {code} in this quantizer"
        if act not in kernels:
            return f"LiteRT has no {act.name} kernel for {code}"
    if code not in INDEX and any(t.dtype != F32 for t in op.outputs):
        return f"{code} has non-float outputs"
    for i in _data_inputs(op):
        t = op.inputs[i]
        if t is None or t.dtype != F32:
            return f"{code} input {i} is not float32"
        if not t.is_const and id(t) not in ranges:
            return f"{code} input '{t.name}' has no calibrated range"
    for t in op.outputs:
        if id(t) not in ranges and code not in FIXED and t.dtype == F32:
            return f"{code} output '{t.name}' has no calibrated range"
    if code == "CONCATENATION" and op.options.get("fusedActivationFunction", "NONE") not in ("NONE", 0):
        return "CONCATENATION with a fused activation"
    if code == "PADV2" and (len(op.inputs) < 3 or op.inputs[2] is None or not op.inputs[2].is_const
                            or op.inputs[2].dtype != F32):
        return "PADV2 with a run-time pad value"
    return None


# LiteRT's int16 SOFTMAX scales (input - max) by input_scale * beta * 65535 / 10 with an integer
# left shift before a doubling multiply; |input - max| < 2^16, so the shift must stay <= 15 or the
# int32 product wraps (measured: logits of +-1e7 give garbage). That bounds input_scale * beta.
_INT16_SOFTMAX_MAX_SCALE_BETA = 2.0 ** 15 * 10.0 / 65535.0


def _parameter_limit(op: Operator, groups: "_Groups", act: np.dtype) -> str | None:
    """Why ``op``'s integer kernel cannot run exactly with the assigned parameters, or None."""
    if op.opcode == "SOFTMAX" and act == _I16:
        scale = groups.params(id(op.inputs[0]), act)[0]
        beta = float(op.options.get("beta", 1.0))
        if scale * beta >= _INT16_SOFTMAX_MAX_SCALE_BETA:
            return (f"int16 SOFTMAX input scale {scale:.3g} x beta {beta:g} >= "
                    f"{_INT16_SOFTMAX_MAX_SCALE_BETA:.3g}: LiteRT's kernel would overflow (input range too wide)")
    return None


def _padv2_ranges(sg: Subgraph, ranges: dict[int, Range]) -> None:
    """Give each PADV2 output the range of its input plus the pad value (in place).

    The calibrated output range holds the pad value itself, which for max-pool padding is
    float32's lowest and would make the whole tied group's scale useless. A sentinel pad value
    is left out: quantized with the output's parameters it saturates to the integer minimum,
    which is at or below every value of the group, so a following MAX_POOL is unchanged.
    """
    for op in sg.operators:
        if op.opcode != "PADV2" or len(op.inputs) < 3 or op.inputs[2] is None or not op.inputs[2].is_const:
            continue
        x, y, pad = op.inputs[0], op.outputs[0], op.inputs[2]
        if id(x) not in ranges or pad.dtype != F32 or pad.size != 1:
            continue
        lo, hi = ranges[id(x)].lo, ranges[id(x)].hi
        value = float(pad.data.reshape(-1)[0])
        if abs(value) <= _SENTINEL:
            lo, hi = min(lo, value), max(hi, value)
        ranges[id(y)] = Range(lo, hi)


_BLOCK_MOVES = ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")


def _respell_block_moves(sg: Subgraph, act: np.dtype, ranges: dict[int, Range]) -> None:
    """DEPTH_TO_SPACE / SPACE_TO_DEPTH without an integer kernel for ``act`` (int16) -> the same
    permutation as RESHAPE (6-D) + TRANSPOSE + RESHAPE, which have one (in place).

    NHWC, block b, C' = C / b^2: DEPTH_TO_SPACE is [N, H, W, b, b, C'] -> [N, H, b, W, b, C'],
    SPACE_TO_DEPTH the inverse reading; both are the transpose (0, 1, 3, 2, 4, 5). Every new
    tensor holds the input's values, so it takes the input's range. The batch is written -1
    so a dynamic batch stays dynamic.
    """
    ops = []
    for op in sg.operators:
        x = op.inputs[0] if op.inputs else None
        b = int(op.options.get("blockSize", 0))
        if op.opcode not in _BLOCK_MOVES or act in TIED[op.opcode] or x is None or x.dtype != F32 or x.rank != 4 \
                or b < 2:
            ops.append(op)
            continue
        y, (n, h, w, c) = op.outputs[0], x.shape
        if op.opcode == "DEPTH_TO_SPACE":
            six, moved = (n, h, w, b, b, c // (b * b)), (n, h, b, w, b, c // (b * b))
        else:
            six, moved = (n, h // b, b, w // b, b, c), (n, h // b, w // b, b, b, c)
        dynamic = x.shape_signature is not None and x.shape_signature[0] < 0
        a = Tensor(f"{y.name}/blocks", six, F32, shape_signature=((-1,) + six[1:]) if dynamic else None)
        t = Tensor(f"{y.name}/moved", moved, F32, shape_signature=((-1,) + moved[1:]) if dynamic else None)
        const = [Tensor(f"{y.name}/{k}", v.shape, v.dtype, data=v) for k, v in (
            ("shape6", np.array((-1,) + six[1:], np.int32)), ("perm", np.array([0, 1, 3, 2, 4, 5], np.int32)),
            ("shape4", np.array((-1,) + y.shape[1:], np.int32)))]
        ops += [Operator("RESHAPE", [x, const[0]], [a], origin=op.origin),
                Operator("TRANSPOSE", [a, const[1]], [t], origin=op.origin),
                Operator("RESHAPE", [t, const[2]], [y], origin=op.origin)]
        if id(x) in ranges:
            ranges[id(a)] = ranges[id(t)] = ranges[id(x)]
    sg.operators[:] = ops


class _Groups:
    """Union-find over tensors (by id) with a range or fixed parameters per group."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.range: dict[int, tuple[float, float]] = {}
        self.fixed: dict[int, tuple[float, int]] = {}

    def add(self, key: int, lo: float, hi: float, fixed: tuple[float, int] | None = None) -> None:
        if key in self.parent:
            if fixed is not None:
                self.fixed[self.find(key)] = fixed
            return
        self.parent[key] = key
        self.range[key] = (min(lo, 0.0), max(hi, 0.0))
        if fixed is not None:
            self.fixed[key] = fixed

    def find(self, key: int) -> int:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def try_union(self, a: int, b: int, act: np.dtype) -> bool:
        """Tie two groups unless that would change a fixed group's parameters or clip its values."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        fa, fb = self.fixed.get(ra), self.fixed.get(rb)
        if fa is not None and fb is not None and fa != fb:
            return False
        for fixed, other in ((fa, rb), (fb, ra)):
            if fixed is not None and self.fixed.get(other) is None:
                lo, hi = _representable(fixed, act)
                olo, ohi = self.range[other]
                if olo < lo - 1e-6 or ohi > hi + 1e-6:
                    return False
        self.parent[rb] = ra
        self.range[ra] = (min(self.range[ra][0], self.range[rb][0]), max(self.range[ra][1], self.range[rb][1]))
        if fa is None and fb is not None:
            self.fixed[ra] = fb
        return True

    def params(self, key: int, act: np.dtype) -> tuple[float, int]:
        root = self.find(key)
        if root in self.fixed:
            return self.fixed[root]
        return activation_params(*self.range[root], act)


def _representable(params: tuple[float, int], act: np.dtype) -> tuple[float, float]:
    scale, zp = params
    info = np.iinfo(act)
    return (info.min - zp) * scale, (info.max - zp) * scale


def _quant(params: tuple[float, int]) -> Quantization:
    return Quantization(np.array([params[0]], np.float32), np.array([params[1]], np.int64))


def _same(a: Quantization, b: Quantization) -> bool:
    return (np.array_equal(np.asarray(a.scale, np.float32), np.asarray(b.scale, np.float32))
            and np.array_equal(np.asarray(a.zero_point), np.asarray(b.zero_point)))


def quantize_integer(model: Model, ranges: dict[int, Range], *, activation: str = "int8",
                     per_channel: bool = True, integer_io: bool = False, input_dtype: str = "int8",
                     output_dtype: str = "int8") -> tuple[Model, QuantizeReport]:
    """Integer-quantized copy of ``model``.

    ``ranges`` is keyed by tensor position in ``model.main.tensors()`` (see
    :func:`ranges_by_position`). With ``integer_io`` every operator must get an integer
    kernel (else ConversionError with reason ``unsupported_dtype``) and the model's inputs
    and outputs become ``input_dtype`` / ``output_dtype`` (int8 or uint8; int16 for int16
    activations); otherwise they stay float32 with QUANTIZE/DEQUANTIZE at the boundary.
    """
    act = np.dtype(activation)
    if len(model.subgraphs) != 1:
        raise ConversionError(Issue(Reason.UNSUPPORTED_DTYPE,
                                    "integer quantization of models with control-flow subgraphs is not supported"))
    out = clone_model(model)
    sg = out.main
    by_id = {id(t): ranges[i] for i, t in enumerate(sg.tensors()) if i in ranges}
    _padv2_ranges(sg, by_id)
    _respell_block_moves(sg, act, by_id)
    report = QuantizeReport(act.name)

    quantized: set[int] = set()
    issues = []
    for op in sg.operators:
        if not _touches_float(op):
            continue
        why = _unsupported_reason(op, act, by_id)
        if why is None:
            quantized.add(id(op))
        else:
            report.float_ops.append({"op": op.opcode, "origin": op.origin, "reason": why})
            issues.append(Issue(Reason.UNSUPPORTED_DTYPE, f"full integer quantization: {why}",
                                op.origin, op.opcode))
    groups = _assign_groups(sg, quantized, by_id, act)
    # Kernel limits that depend on the final (tied) parameters: drop those ops and regroup.
    while True:
        late = [(op, why) for op in sg.operators if id(op) in quantized
                for why in [_parameter_limit(op, groups, act)] if why is not None]
        if not late:
            break
        for op, why in late:
            quantized.discard(id(op))
            report.float_ops.append({"op": op.opcode, "origin": op.origin, "reason": why})
            issues.append(Issue(Reason.UNSUPPORTED_DTYPE, f"full integer quantization: {why}", op.origin, op.opcode))
        groups = _assign_groups(sg, quantized, by_id, act)
    if integer_io and issues:
        raise ConversionError(issues)
    report.quantized_ops = len(quantized)

    _rewrite(out, quantized, groups, act, per_channel, integer_io, np.dtype(input_dtype), np.dtype(output_dtype),
             report)
    return out, report


def ranges_by_position(model: Model, ranges: dict[int, Range]) -> dict[int, Range]:
    """Re-key ``collect_ranges`` output (``id(tensor)``) by position in ``model.main.tensors()``."""
    return {i: ranges[id(t)] for i, t in enumerate(model.main.tensors()) if id(t) in ranges}


def _assign_groups(sg: Subgraph, quantized: set[int], ranges: dict[int, Range], act: np.dtype) -> _Groups:
    groups = _Groups()

    def add(t: Tensor, fixed: tuple[float, int] | None = None) -> None:
        if t.is_const:
            groups.add(id(t), float(t.data.min()) if t.size else 0.0, float(t.data.max()) if t.size else 0.0)
        else:
            r = ranges.get(id(t), Range(0.0, 0.0))
            groups.add(id(t), r.lo, r.hi, fixed)

    # Every graph input/output that is float gets a group (it may be quantized at the boundary).
    for t in list(sg.inputs) + list(sg.outputs):
        if t.dtype == F32 and id(t) in ranges:
            add(t)
    for op in sg.operators:
        if id(op) not in quantized:
            continue
        fixed = FIXED.get(op.opcode, {}).get(act)
        for t in op.outputs:
            if t.dtype == F32:
                add(t, fixed)
        for i in _data_inputs(op):
            add(op.inputs[i])
    # Ties: outputs first with each input (so concat inputs share the output's group).
    for op in sg.operators:
        if id(op) in quantized and op.opcode in TIED:
            ys = op.outputs
            for y in ys[1:]:
                groups.try_union(id(ys[0]), id(y), act)
            for i in _data_inputs(op):
                groups.try_union(id(ys[0]), id(op.inputs[i]), act)
    return groups


def _rewrite(model: Model, quantized: set[int], groups: _Groups, act: np.dtype, per_channel: bool,
             integer_io: bool, in_dtype: np.dtype, out_dtype: np.dtype, report: QuantizeReport) -> None:
    sg = model.main
    new_ops: list[Operator] = []
    producers = sg.producers()
    # Decided before any tensor is retyped: which inputs carry real values, which tensors were float.
    data_idx = {id(op): _data_inputs(op) for op in sg.operators}
    was_float = {id(t) for t in sg.tensors() if _is_float_act(t)}
    # Primary representation of each float tensor: integer when a quantized op produces it.
    int_primary: set[int] = {id(t) for op in sg.operators if id(op) in quantized for t in op.outputs
                             if t.dtype == F32}
    if integer_io:
        int_primary |= {id(t) for t in sg.inputs if t.dtype == F32}
    int_version: dict[int, Tensor] = {}
    float_version: dict[int, Tensor] = {}
    const_cache: dict[tuple[int, float, int], Tensor] = {}

    def params_of(t: Tensor) -> tuple[float, int]:
        return groups.params(id(t), act)

    def to_int(t: Tensor) -> Tensor:
        if t.is_const:
            p = params_of(t)
            key = (id(t), p[0], p[1])
            if key not in const_cache:
                const_cache[key] = Tensor(f"{t.name}/{act.name}", t.shape, act, quantize_array(t.data, *p, act),
                                          _quant(p))
            return const_cache[key]
        if id(t) in int_primary:
            return t
        if id(t) not in int_version:
            q = Tensor(f"{t.name}/{act.name}", t.shape, act, quantization=_quant(params_of(t)),
                       shape_signature=t.shape_signature)
            new_ops.append(Operator("QUANTIZE", [float_of(t)], [q], origin=_origin(producers.get(t))))
            int_version[id(t)] = q
        return int_version[id(t)]

    def float_of(t: Tensor) -> Tensor:
        if id(t) not in int_primary or t.is_const:
            return t
        if id(t) not in float_version:
            f = Tensor(f"{t.name}/dequantized", t.shape, F32, shape_signature=t.shape_signature)
            new_ops.append(Operator("DEQUANTIZE", [t], [f], origin=_origin(producers.get(t))))
            float_version[id(t)] = f
        return float_version[id(t)]

    def requantize(x: Tensor, target: Quantization, origin: str | None) -> Tensor:
        y = Tensor(f"{x.name}/requantized", x.shape, x.dtype, quantization=target, shape_signature=x.shape_signature)
        new_ops.append(Operator("QUANTIZE", [x], [y], origin=origin))
        report.requantize_ops += 1
        return y

    # Integer graph inputs: the tensor itself becomes integer (uint8 inputs requantize to int8).
    input_fix: dict[int, Tensor] = {}
    if integer_io:
        for pos, t in enumerate(sg.inputs):
            if t.dtype != F32:
                continue
            p = params_of(t)
            io_dt = act if act == _I16 else in_dtype
            if io_dt == _U8:
                outer = Tensor(t.name, t.shape, _U8, quantization=_quant((p[0], p[1] + 128)),
                               shape_signature=t.shape_signature)
                t.name = f"{t.name}/int8"
                t.dtype, t.quantization = act, _quant(p)
                new_ops.append(Operator("QUANTIZE", [outer], [t]))
                input_fix[pos] = outer
            else:
                t.dtype, t.quantization = act, _quant(p)
    for pos, t in input_fix.items():
        sg.inputs[pos] = t

    for op in sg.operators:
        if id(op) not in quantized:
            op.inputs = [float_of(t) if t is not None and id(t) in was_float else t for t in op.inputs]
            new_ops.append(op)
            continue
        if op.opcode in WEIGHTED:
            _quantize_weighted(op, to_int, params_of, act, per_channel)
        else:
            tied = op.opcode in TIED
            out_q = _quant(params_of(op.outputs[0])) if op.outputs[0].dtype == F32 else None
            for i in data_idx[id(op)]:
                x = to_int(op.inputs[i])
                if tied and not _same(x.quantization, out_q):
                    if x.is_const:
                        x = Tensor(x.name + "/requantized", x.shape, act,
                                   quantize_array(op.inputs[i].data, out_q.scale[0], out_q.zero_point[0], act), out_q)
                    else:
                        x = requantize(x, out_q, op.origin)
                op.inputs[i] = x
            if op.opcode == "PADV2":
                pad = op.inputs[2]  # the LiteRT kernel requires the output's parameters on the pad value
                op.inputs[2] = Tensor(f"{pad.name}/{act.name}", pad.shape, act,
                                      quantize_array(pad.data, out_q.scale[0], out_q.zero_point[0], act), out_q)
        for y in op.outputs:
            if y.dtype != F32:
                continue  # ARG_MAX's indices
            y.dtype = act
            y.quantization = _quant(params_of(y))
        if op.opcode in ("ADD", "SUB") and act == _I16:
            op.options["potScaleInt16"] = False  # general scales (LiteRT's converter sets this too)
        new_ops.append(op)

    # Graph outputs.
    for pos, t in enumerate(sg.outputs):
        if id(t) not in int_primary:
            if integer_io and t.dtype == F32:
                t_int = to_int(t)  # a float output would break full integer I/O; quantize it
                sg.outputs[pos] = t_int
            continue
        if not integer_io:
            f = float_of(t)
            f.name, t.name = t.name, f"{t.name}/{act.name}"
            sg.outputs[pos] = f
        elif act != _I16 and out_dtype == _U8:
            scale, zp = t.quantization.scale[0], int(t.quantization.zero_point[0])
            u = Tensor(t.name, t.shape, _U8, quantization=_quant((float(scale), zp + 128)),
                       shape_signature=t.shape_signature)
            t.name = f"{t.name}/int8"
            new_ops.append(Operator("QUANTIZE", [t], [u]))
            sg.outputs[pos] = u
    sg.operators = new_ops


def _origin(op: Operator | None) -> str | None:
    return None if op is None else op.origin


def _quantize_weighted(op: Operator, to_int, params_of, act: np.dtype, per_channel: bool) -> None:
    """Quantize a CONV/DEPTHWISE/FC/TRANSPOSE_CONV: activation, int8 filter, int32/int64 bias."""
    code = op.opcode
    di, wi, bi = DATA_INPUT[code], WEIGHT_INPUT[code], BIAS_INPUT[code]
    x = to_int(op.inputs[di])
    s_in = float(x.quantization.scale[0])
    w = op.inputs[wi]
    b = op.inputs[bi] if bi < len(op.inputs) else None
    axis = WEIGHT_AXIS[code] if per_channel else None
    bias_dtype = np.dtype(np.int64) if act == _I16 else np.dtype(np.int32)
    min_scale = bias_min_weight_scale(None if b is None else b.data, s_in, bias_dtype)
    if min_scale is not None and axis is None:
        min_scale = np.array([min_scale.max()]) if min_scale.size else None
    q, scales = quantize_weights_symmetric(w.data, axis, min_scale=min_scale)
    op.inputs[di] = x
    op.inputs[wi] = Tensor(f"{w.name}/int8", w.shape, np.int8, q, weight_quantization(scales, axis))
    if b is not None:
        qb, bq = quantize_bias(b.data, s_in, scales, bias_dtype)
        op.inputs[bi] = Tensor(f"{b.name}/{bias_dtype.name}", b.shape, bias_dtype, qb, bq)
