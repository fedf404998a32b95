"""Lowerings of the rnn family (see the package docstring for the op list): LSTM, GRU, RNN.

Every recurrent op is unrolled over its static sequence length, which is exact for every
attribute combination ONNX allows (directions, layouts, peepholes, clip, input_forget,
linear_before_reset, any activation list):

1. the input projection of all time steps is one FULLY_CONNECTED per direction (and gate
   group) with keepNumDims, biases that are not multiplied by the reset gate folded in, then
   one UNPACK along the time axis;
2. each step is a FULLY_CONNECTED of the previous hidden state with the constant recurrence
   weights, an ADD, the gate activations and the MUL/ADD gate algebra;
3. the per-step hidden states are PACKed (and RESHAPEd) into Y; the last ones into Y_h/Y_c.

A constant ``sequence_lens`` shorter than the sequence is masked exactly: the mask is known
at conversion time, so each affected step SELECTs between the new and the previous state
(and between the new output and zero), which is what ONNX Runtime computes. Steps whose
mask is all-true emit no SELECT. A runtime ``sequence_lens`` builds the same masks with a
LESS per step (t < lengths) and SELECTs at every step.

W, R, B and P may be runtime tensors: FULLY_CONNECTED takes non-constant weights and bias,
so the per-direction and per-gate parts are cut with SLICE and the biases summed with ADD
where constant weights are sliced and summed with numpy. A zero initial state is not materialized: the first step
skips its recurrent FULLY_CONNECTED and the terms it would multiply.

LiteRT's UNIDIRECTIONAL_SEQUENCE_LSTM is deliberately not used: its state inputs must be
variable tensors the kernel updates in place (so initial states cannot be graph inputs, and
state carries over between invocations unless the caller resets it), it does not output the
final cell state, and it has no clip-before-activation, input_forget or ONNX's activation set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import FLOATS, lowering

_F32 = np.dtype(np.float32)

# Gate count per op (ONNX gate order: LSTM i, o, f, c; GRU z, r, h; RNN i).
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Default activations per direction.
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
# Activations that consume an alpha / a beta value from activation_alpha / activation_beta
# (ONNX Runtime's convention: values are consumed only by the activations that use them).
_USES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_USES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
# Defaults taken from the corresponding ONNX operators. Affine, ScaledTanh and ThresholdedRelu
# are left out on purpose: runtimes disagree on their defaults, so they need explicit values.
_ALPHA_DEFAULTS = {"leakyrelu": 0.01, "hardsigmoid": 0.2, "elu": 1.0}
_BETA_DEFAULTS = {"hardsigmoid": 0.5}
_KNOWN_ACTIVATIONS = {"sigmoid", "tanh", "relu", "softsign", "softplus"} | _USES_ALPHA


@dataclass(frozen=True)
class Activation:
    """One RNN activation function with its (resolved) alpha and beta."""

    name: str  # lower case
    alpha: float = 0.0
    beta: float = 0.0


@dataclass(frozen=True)
class RnnSpec:
    """Everything about one recurrent node that does not depend on the direction."""

    op: str
    seq: int
    batch: int
    input_size: int
    hidden: int
    layout: int
    directions: tuple[bool, ...]  # one entry per direction: True = reverse
    clip: float | None
    lengths: np.ndarray | Tensor | None  # per-batch valid lengths (runtime: (batch, 1) int32), None = all full


# A weight: a constant (numpy) or a runtime tensor.
Mat = np.ndarray | Tensor


@dataclass
class DirWeights:
    """Weights of one direction (ONNX gate order, rows = gates * hidden), constant or runtime."""

    w: Mat  # (G*H, input)
    r: Mat  # (G*H, H)
    wb: Mat  # (G*H,)
    rb: Mat  # (G*H,)
    p: Mat | None  # (3*H,) LSTM peepholes i, o, f
    acts: tuple[Activation, ...]


# ---------------------------------------------------------------------------------------
# small emit helpers
# ---------------------------------------------------------------------------------------
class _Ops:
    """Shorthands for the elementwise ops a cell step emits (all float32)."""

    def __init__(self, ctx: LowerContext):
        self.ctx = ctx

    def scalar(self, value: float, hint: str = "scalar") -> Tensor:
        return self.ctx.new_const(np.asarray(value, dtype=_F32), hint=hint)

    def unary(self, opcode: str, x: Tensor, hint: str = "t", **options: object) -> Tensor:
        return self.ctx.emit1(opcode, [x], x.shape, x.dtype, hint, **options)

    def binary(self, opcode: str, a: Tensor, b: Tensor, hint: str = "t") -> Tensor:
        shape = tuple(int(d) for d in np.broadcast_shapes(a.shape, b.shape))
        options = {"fusedActivationFunction": "NONE"} if opcode in ("ADD", "SUB", "MUL", "DIV") else {}
        return self.ctx.emit1(opcode, [a, b], shape, _F32, hint, **options)

    def add(self, a: Tensor, b: Tensor, hint: str = "add") -> Tensor:
        return self.binary("ADD", a, b, hint)

    def sub(self, a: Tensor, b: Tensor, hint: str = "sub") -> Tensor:
        return self.binary("SUB", a, b, hint)

    def mul(self, a: Tensor, b: Tensor, hint: str = "mul") -> Tensor:
        return self.binary("MUL", a, b, hint)

    def tensor(self, value: Mat, hint: str = "weights") -> Tensor:
        """``value`` as an IR tensor (a new float32 constant for numpy data)."""
        if isinstance(value, Tensor):
            return value
        return self.ctx.new_const(np.ascontiguousarray(value, dtype=_F32), hint=hint)

    def rows(self, value: Mat, lo: int, hi: int, hint: str = "rows") -> Mat:
        """``value[lo:hi]`` (axis 0); a SLICE for a runtime tensor."""
        if not isinstance(value, Tensor):
            return value[lo:hi]
        if lo == 0 and hi == value.shape[0]:
            return value
        shape = (hi - lo,) + tuple(value.shape[1:])
        begin = self.ctx.new_const(np.array([lo] + [0] * (value.rank - 1), np.int32), hint="begin")
        size = self.ctx.new_const(np.array(shape, np.int32), hint="size")
        return self.ctx.emit1("SLICE", [value, begin, size], shape, _F32, hint)

    def take(self, value: Mat, index: int, hint: str = "part") -> Mat:
        """``value[index]`` (axis 0); a SLICE and RESHAPE for a runtime tensor."""
        if not isinstance(value, Tensor):
            return value[index]
        return self.ctx.reshape(self.rows(value, index, index + 1, hint), tuple(value.shape[1:]))

    def plus(self, a: Mat, b: Mat, hint: str = "bias") -> Mat:
        """``a + b`` for biases; an ADD when either is a runtime tensor."""
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            return a + b
        return self.add(self.tensor(a, "bias"), self.tensor(b, "bias"), hint)

    def fc(self, x: Tensor, weights: Mat, bias: Mat | None, hint: str = "fc") -> Tensor:
        """FULLY_CONNECTED with weights (N, K), constant or not; keeps leading dims of a rank > 2 input."""
        w = self.tensor(weights, "weights")
        b = None if bias is None else self.tensor(bias, "bias")
        shape = tuple(x.shape[:-1]) + (int(weights.shape[0]),)
        return self.ctx.emit1("FULLY_CONNECTED", [x, w, b], shape, _F32, hint,
                              fusedActivationFunction="NONE", weightsFormat="DEFAULT", keepNumDims=x.rank > 2)

    def split(self, x: Tensor, parts: int, hint: str = "gate") -> list[Tensor]:
        """Equal SPLIT along the last axis."""
        if parts == 1:
            return [x]
        axis = self.ctx.new_const(np.array(x.rank - 1, np.int32), hint="axis")
        size = x.shape[-1] // parts
        outs = [self.ctx.tmp(x.shape[:-1] + (size,), _F32, hint) for _ in range(parts)]
        self.ctx.emit("SPLIT", [axis, x], outs, numSplits=parts)
        return outs

    def split_v(self, x: Tensor, sizes: list[int], hint: str = "part") -> list[Tensor]:
        """SPLIT_V along the last axis into ``sizes``."""
        outs = [self.ctx.tmp(x.shape[:-1] + (s,), _F32, hint) for s in sizes]
        self.ctx.emit("SPLIT_V", [x, self.ctx.new_const(np.array(sizes, np.int32), hint="sizes"),
                                  self.ctx.new_const(np.array(x.rank - 1, np.int32), hint="axis")],
                      outs, numSplits=len(sizes))
        return outs

    def unpack(self, x: Tensor, axis: int, hint: str = "step") -> list[Tensor]:
        """UNPACK along ``axis`` (a RESHAPE when the axis has one element)."""
        n = x.shape[axis]
        shape = x.shape[:axis] + x.shape[axis + 1:]
        if n == 1:
            return [self.ctx.reshape(x, shape)]
        outs = [self.ctx.tmp(shape, x.dtype, hint) for _ in range(n)]
        self.ctx.emit("UNPACK", [x], outs, num=n, axis=axis)
        return outs

    def pack(self, xs: list[Tensor], axis: int, out_shape: tuple[int, ...], out: Tensor) -> None:
        """PACK ``xs`` along ``axis`` and RESHAPE the result to ``out_shape`` into ``out``."""
        if len(xs) == 1:
            self.ctx.reshape(xs[0], out_shape, out=out)
            return
        shape = list(xs[0].shape)
        shape.insert(axis, len(xs))
        packed_shape = tuple(shape)
        if packed_shape == tuple(out_shape):
            self.ctx.emit("PACK", list(xs), [out], valuesCount=len(xs), axis=axis)
            return
        packed = self.ctx.tmp(packed_shape, _F32, "packed")
        self.ctx.emit("PACK", list(xs), [packed], valuesCount=len(xs), axis=axis)
        self.ctx.reshape(packed, out_shape, out=out)

    def select(self, mask: np.ndarray | Tensor, a: Tensor, b: Tensor | None, hint: str = "masked") -> Tensor:
        """Where ``mask`` (batch,) (or a runtime (batch, 1) bool) is true take ``a`` else ``b`` (None = zeros).

        Exact for inf/NaN, unlike a multiplication by the mask.
        """
        if b is None:
            b = self.ctx.new_const(np.zeros(a.shape, _F32), hint="zeros")
        cond = mask if isinstance(mask, Tensor) else self.ctx.new_const(mask.reshape(-1, 1).astype(bool), hint="mask")
        return self.ctx.emit1("SELECT_V2", [cond, a, b], a.shape, _F32, hint)

    def clip(self, x: Tensor, threshold: float | None) -> Tensor:
        """ONNX's cell clip: min(max(x, -t), t) on the input of an activation."""
        if threshold is None:
            return x
        x = self.binary("MINIMUM", x, self.scalar(threshold, "clip_hi"), "clip")
        return self.binary("MAXIMUM", x, self.scalar(-threshold, "clip_lo"), "clip")

    def activation(self, act: Activation, x: Tensor) -> Tensor:
        """Apply one ONNX RNN activation function (formulas from the RNN/LSTM/GRU spec)."""
        name, alpha, beta = act.name, act.alpha, act.beta
        if name == "sigmoid":
            return self.unary("LOGISTIC", x, "sigmoid")
        if name == "tanh":
            return self.unary("TANH", x, "tanh")
        if name == "relu":
            return self.unary("RELU", x, "relu")
        if name == "leakyrelu":
            return self.unary("LEAKY_RELU", x, "leaky_relu", alpha=float(alpha))
        if name == "thresholdedrelu":
            cond = self.ctx.emit1("GREATER", [x, self.scalar(alpha, "threshold")], x.shape, np.bool_, "above")
            return self.ctx.emit1("SELECT_V2", [cond, x, self.scalar(0.0, "zero")], x.shape, _F32, "thr_relu")
        if name == "affine":
            return self.add(self.mul(x, self.scalar(alpha, "alpha")), self.scalar(beta, "beta"), "affine")
        if name == "scaledtanh":
            t = self.unary("TANH", self.mul(x, self.scalar(beta, "beta")), "tanh")
            return self.mul(t, self.scalar(alpha, "alpha"), "scaled_tanh")
        if name == "hardsigmoid":
            y = self.add(self.mul(x, self.scalar(alpha, "alpha")), self.scalar(beta, "beta"))
            y = self.binary("MAXIMUM", y, self.scalar(0.0, "zero"), "hs_lo")
            return self.binary("MINIMUM", y, self.scalar(1.0, "one"), "hard_sigmoid")
        if name == "elu":
            if alpha == 1.0:
                return self.unary("ELU", x, "elu")
            # x >= 0: relu(x) + alpha * (e^0 - 1) = x;  x < 0: 0 + alpha * (e^x - 1).
            neg = self.unary("ELU", self.binary("MINIMUM", x, self.scalar(0.0, "zero"), "neg_part"), "elu")
            return self.add(self.unary("RELU", x, "pos_part"), self.mul(neg, self.scalar(alpha, "alpha")), "elu")
        if name == "softsign":
            den = self.add(self.unary("ABS", x, "abs"), self.scalar(1.0, "one"))
            return self.binary("DIV", x, den, "softsign")
        if name == "softplus":
            # log(1 + e^x) = relu(x) + log(1 + e^-|x|): EXP never overflows.
            e = self.unary("EXP", self.unary("NEG", self.unary("ABS", x, "abs"), "neg"), "exp")
            log = self.unary("LOG", self.add(e, self.scalar(1.0, "one")), "log")
            return self.add(self.unary("RELU", x, "relu"), log, "softplus")
        raise AssertionError(f"unhandled activation {name}")  # parse_activations rejects unknown names


# ---------------------------------------------------------------------------------------
# attribute / input parsing
# ---------------------------------------------------------------------------------------

def _activation_param(ctx: LowerContext, name: str, what: str, given: list[float], i: int, uses: set[str],
                      defaults: dict[str, float]) -> tuple[float, int]:
    """(value, next index) of activation ``name``'s alpha / beta: the next given value, else
    ONNX's default, else 0.0 when the activation takes none."""
    if name not in uses:
        return 0.0, i
    if given:
        return given[i], i + 1
    if name in defaults:
        return defaults[name], i
    raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"activation {name} needs an explicit activation_{what}")


def parse_activations(node: NodeView, ctx: LowerContext, num_dirs: int) -> list[tuple[Activation, ...]]:
    """Resolve ``activations``/``activation_alpha``/``activation_beta`` per direction."""
    per_dir = len(_DEFAULT_ACTIVATIONS[node.op_type])
    names = node.attr("activations")
    alphas = [float(a) for a in (node.attr("activation_alpha") or [])]
    betas = [float(b) for b in (node.attr("activation_beta") or [])]
    if not names:
        names = list(_DEFAULT_ACTIVATIONS[node.op_type]) * num_dirs
        if alphas or betas:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           "activation_alpha/beta without an activations list is ambiguous")
    if len(names) != per_dir * num_dirs:  # ONNX Runtime rejects such lists too
        raise ctx.fail(Reason.INVALID_MODEL,
                       f"{node.op_type} needs {per_dir * num_dirs} activations, got {len(names)}")
    lowered = [str(n).lower() for n in names]
    for name in lowered:
        if name not in _KNOWN_ACTIVATIONS:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"unknown RNN activation '{name}'")
    need_alpha = [n for n in lowered if n in _USES_ALPHA]
    need_beta = [n for n in lowered if n in _USES_BETA]
    # Runtimes disagree on how alpha/beta values map to activations unless there is exactly one
    # value per activation that uses it (or none at all, with well-defined defaults).
    if alphas and len(alphas) != len(need_alpha):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{len(alphas)} activation_alpha values for {len(need_alpha)} activations that "
                       "use alpha: ambiguous")
    if betas and len(betas) != len(need_beta):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{len(betas)} activation_beta values for {len(need_beta)} activations that "
                       "use beta: ambiguous")
    acts, ia, ib = [], 0, 0
    for name in lowered:
        alpha, ia = _activation_param(ctx, name, "alpha", alphas, ia, _USES_ALPHA, _ALPHA_DEFAULTS)
        beta, ib = _activation_param(ctx, name, "beta", betas, ib, _USES_BETA, _BETA_DEFAULTS)
        acts.append(Activation(name, alpha, beta))
    return [tuple(acts[d * per_dir:(d + 1) * per_dir]) for d in range(num_dirs)]


def _directions(node: NodeView, ctx: LowerContext) -> tuple[bool, ...]:
    direction = node.attr("direction", "forward")
    table = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
    if direction not in table:
        raise ctx.fail(Reason.INVALID_MODEL, f"unknown direction '{direction}'")
    return table[direction]


def _spec(node: NodeView, ctx: LowerContext) -> RnnSpec:
    """Check the node's static constraints and collect its shape facts."""
    layout = int(node.attr("layout", 0)) if node.opset >= 14 else 0
    if layout not in (0, 1):
        raise ctx.fail(Reason.INVALID_MODEL, f"layout must be 0 or 1, got {layout}")
    x = ctx.input(0)
    if x.rank != 3 or any(d <= 0 for d in x.shape):
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                       f"X must have a static 3-D shape to unroll the sequence, got {list(x.shape)}")
    seq, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
    directions = _directions(node, ctx)
    r_shape = ctx.input(2).shape
    hidden = int(node.attr("hidden_size", r_shape[-1] if len(r_shape) == 3 else 0))
    gates = _GATES[node.op_type]
    expect_w = (len(directions), gates * hidden, x.shape[2])
    expect_r = (len(directions), gates * hidden, hidden)
    if tuple(ctx.input(1).shape) != expect_w or tuple(r_shape) != expect_r:
        raise ctx.fail(Reason.INVALID_MODEL,
                       f"W {list(ctx.input(1).shape)} / R {list(r_shape)} do not match {list(expect_w)} / "
                       f"{list(expect_r)}")
    clip = node.attr("clip")
    if clip is not None:
        clip = float(clip)
        if not clip > 0:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"clip must be positive, got {clip}")
    return RnnSpec(node.op_type, seq, batch, x.shape[2], hidden, layout, directions, clip,
                   _lengths(ctx, seq, batch))


def _lengths(ctx: LowerContext, seq: int, batch: int) -> np.ndarray | Tensor | None:
    """Constant sequence_lens (None when absent or all full length), or a runtime (batch, 1) int32."""
    if not ctx.has_input(4):
        return None
    value = ctx.const(4)
    if value is None:
        t = ctx.input(4)
        if tuple(t.shape) != (batch,):
            raise ctx.fail(Reason.INVALID_MODEL, f"sequence_lens has shape {list(t.shape)} for batch {batch}")
        if t.dtype != np.int32:
            t = ctx.emit1("CAST", [t], t.shape, np.int32, "lengths_i32")
        return ctx.reshape(t, (batch, 1))
    lengths = np.asarray(value).reshape(-1).astype(np.int64)
    if lengths.shape != (batch,):
        raise ctx.fail(Reason.INVALID_MODEL, f"sequence_lens has {lengths.size} values for batch {batch}")
    if np.any(lengths < 1) or np.any(lengths > seq):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"sequence_lens values must lie in [1, {seq}], got {lengths.tolist()}")
    return None if np.all(lengths == seq) else lengths


def _weight_input(ctx: LowerContext, index: int, what: str) -> Mat:
    """Input ``index`` as float32 numpy when constant, else the runtime tensor (float32 only)."""
    value = ctx.const(index)
    if value is not None:
        return value.astype(_F32)
    t = ctx.input(index)
    if t.dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"a runtime {what} must be float32, got {t.dtype}")
    return t


def _weights(node: NodeView, ctx: LowerContext, spec: RnnSpec) -> list[DirWeights]:
    """W, R, B, P (constant or runtime) split per direction, with activations."""
    ops = _Ops(ctx)
    w = _weight_input(ctx, 1, "W")
    r = _weight_input(ctx, 2, "R")
    gh = _GATES[spec.op] * spec.hidden
    nd = len(spec.directions)
    b = _weight_input(ctx, 3, "B") if ctx.has_input(3) else np.zeros((nd, 2 * gh), _F32)
    if tuple(b.shape) != (nd, 2 * gh):
        raise ctx.fail(Reason.INVALID_MODEL, f"B has shape {list(b.shape)}, expected {[nd, 2 * gh]}")
    p = None
    if spec.op == "LSTM" and ctx.has_input(7):
        p = _weight_input(ctx, 7, "P")
        if tuple(p.shape) != (nd, 3 * spec.hidden):
            raise ctx.fail(Reason.INVALID_MODEL, f"P has shape {list(p.shape)}, expected {[nd, 3 * spec.hidden]}")
    acts = parse_activations(node, ctx, nd)
    out = []
    for d in range(nd):
        bd = ops.take(b, d, "b")
        out.append(DirWeights(ops.take(w, d, "w"), ops.take(r, d, "r"), ops.rows(bd, 0, gh, "wb"),
                              ops.rows(bd, gh, 2 * gh, "rb"), None if p is None else ops.take(p, d, "p"),
                              acts[d]))
    return out


def _nonzero(value: Mat | None) -> bool:
    """Whether a weight may be non-zero (a runtime tensor always may)."""
    return value is not None and (isinstance(value, Tensor) or bool(np.any(value)))


def _initial_states(ctx: LowerContext, index: int, spec: RnnSpec) -> list[Tensor | None]:
    """Per-direction (batch, hidden) initial state from input ``index``; None = zeros."""
    nd = len(spec.directions)
    if not ctx.has_input(index):
        return [None] * nd
    t = ctx.input(index)
    expected = (nd, spec.batch, spec.hidden) if spec.layout == 0 else (spec.batch, nd, spec.hidden)
    if tuple(t.shape) != expected:
        raise ctx.fail(Reason.INVALID_MODEL, f"initial state has shape {list(t.shape)}, expected {list(expected)}")
    axis = 0 if spec.layout == 0 else 1
    if t.is_const:
        states: list[Tensor | None] = []
        for d in range(nd):
            value = np.take(t.data, d, axis=axis).astype(_F32)
            # A zero state needs no tensor: the first step then skips its recurrent terms.
            states.append(None if not np.any(value) else ctx.new_const(value, hint="initial_state"))
        return states
    ops = _Ops(ctx)
    return list(ops.unpack(t, axis, "initial_state"))


def _wants_output(node: NodeView, i: int) -> bool:
    return i < len(node.outputs) and bool(node.outputs[i])


# ---------------------------------------------------------------------------------------
# cells: one time step of one direction
# ---------------------------------------------------------------------------------------
# A cell step takes (ops, x projections at t, h_prev, c_prev) and returns (h, c).
StepFn = Callable[[_Ops, list[Tensor], Tensor | None, Tensor | None], tuple[Tensor, Tensor | None]]


def _input_projections(ops: _Ops, x: Tensor, dw: DirWeights, spec: RnnSpec) -> list[list[Tensor]]:
    """Per time step, the input projections a cell consumes (biases folded in).

    LSTM/RNN: one tensor x W^T + Wb + Rb. GRU: (x Wzr^T + Wb_zr + Rb_zr, x Wh^T + Wb_h [+ Rb_h]);
    Rb_h stays out when linear_before_reset = 1, as the reset gate multiplies it.
    """
    h = spec.hidden
    time_axis = 0 if spec.layout == 0 else 1
    if spec.op == "GRU":
        lbr = bool(ops.ctx.node.attr("linear_before_reset", 0))
        zr = ops.fc(x, ops.rows(dw.w, 0, 2 * h), ops.plus(ops.rows(dw.wb, 0, 2 * h), ops.rows(dw.rb, 0, 2 * h)),
                    "x_proj_zr")
        wb_h = ops.rows(dw.wb, 2 * h, 3 * h)
        hb = wb_h if lbr else ops.plus(wb_h, ops.rows(dw.rb, 2 * h, 3 * h))
        hh = ops.fc(x, ops.rows(dw.w, 2 * h, 3 * h), hb, "x_proj_h")
        return [list(p) for p in zip(ops.unpack(zr, time_axis, "x_zr"), ops.unpack(hh, time_axis, "x_h"))]
    proj = ops.fc(x, dw.w, ops.plus(dw.wb, dw.rb), "x_proj")
    return [[p] for p in ops.unpack(proj, time_axis, "x_t")]


def _rnn_step(dw: DirWeights, spec: RnnSpec) -> StepFn:
    def step(ops: _Ops, xs: list[Tensor], h: Tensor | None, c: Tensor | None) -> tuple[Tensor, None]:
        pre = xs[0] if h is None else ops.add(xs[0], ops.fc(h, dw.r, None, "h_proj"))
        return ops.activation(dw.acts[0], ops.clip(pre, spec.clip)), None
    return step


def _gru_step(ops0: _Ops, dw: DirWeights, spec: RnnSpec, lbr: bool) -> StepFn:
    hid = spec.hidden
    f, g = dw.acts
    # Sliced once (not per step) when the weights are runtime tensors.
    rb_h = ops0.rows(dw.rb, 2 * hid, 3 * hid, "rb_h")
    r_zr, r_h = ops0.rows(dw.r, 0, 2 * hid, "r_zr"), ops0.rows(dw.r, 2 * hid, 3 * hid, "r_h")

    def step(ops: _Ops, xs: list[Tensor], h: Tensor | None, c: Tensor | None) -> tuple[Tensor, None]:
        x_zr, x_h = xs
        pre_zr = x_zr if h is None else ops.add(x_zr, ops.fc(h, r_zr, None, "h_proj_zr"))
        z, r = ops.split(ops.activation(f, ops.clip(pre_zr, spec.clip)), 2, "zr")
        if h is None:
            # (r * 0) Rh^T = 0 and r * (0 Rh^T + Rbh) = r * Rbh.
            pre_h = ops.add(x_h, ops.mul(r, ops.tensor(rb_h, "rb_h"))) if lbr and _nonzero(rb_h) else x_h
        elif lbr:
            pre_h = ops.add(x_h, ops.mul(r, ops.fc(h, r_h, rb_h, "h_proj_h")))
        else:
            pre_h = ops.add(x_h, ops.fc(ops.mul(r, h, "reset"), r_h, None, "h_proj_h"))
        cand = ops.activation(g, ops.clip(pre_h, spec.clip))
        # (1 - z) * cand + z * h  ==  cand + z * (h - cand)
        if h is None:
            return ops.sub(cand, ops.mul(z, cand), "h"), None
        return ops.add(cand, ops.mul(z, ops.sub(h, cand)), "h"), None
    return step


def _lstm_step(ops0: _Ops, dw: DirWeights, spec: RnnSpec, input_forget: bool) -> StepFn:
    hid = spec.hidden
    f_act, g_act, h_act = dw.acts
    peep = dw.p if _nonzero(dw.p) else None
    if peep is not None:  # sliced once, not per step
        p_i, p_o, p_f = (ops0.tensor(ops0.rows(peep, k * hid, (k + 1) * hid, "peephole"), "peephole")
                         for k in range(3))

    def step(ops: _Ops, xs: list[Tensor], h: Tensor | None, c: Tensor | None) -> tuple[Tensor, Tensor]:
        pre = xs[0] if h is None else ops.add(xs[0], ops.fc(h, dw.r, None, "h_proj"))
        if peep is None:
            # Same clip and activation f for i, o, f: one op each on the first 3H columns.
            pre = ops.clip(pre, spec.clip)
            iof, c_pre = ops.split_v(pre, [3 * hid, hid], "gates")
            i, o, fg = ops.split(ops.activation(f_act, iof), 3, "iof")
        else:
            i_pre, o_pre, f_pre, c_pre = ops.split(pre, 4, "gates")
            if c is not None:
                i_pre = ops.add(i_pre, ops.mul(c, p_i))
                f_pre = ops.add(f_pre, ops.mul(c, p_f))
            i = ops.activation(f_act, ops.clip(i_pre, spec.clip))
            fg = None if input_forget else ops.activation(f_act, ops.clip(f_pre, spec.clip))
            c_pre = ops.clip(c_pre, spec.clip)
        if input_forget:
            fg = ops.sub(ops.scalar(1.0, "one"), i, "forget")
        cand = ops.activation(g_act, c_pre)
        new_c = ops.mul(i, cand) if c is None else ops.add(ops.mul(fg, c), ops.mul(i, cand), "c")
        if peep is not None:
            o = ops.activation(f_act, ops.clip(ops.add(o_pre, ops.mul(new_c, p_o)), spec.clip))
        return ops.mul(o, ops.activation(h_act, new_c), "h"), new_c
    return step


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------
def _run_direction(ops: _Ops, spec: RnnSpec, reverse: bool, projections: list[list[Tensor]], step: StepFn,
                   h0: Tensor | None, c0: Tensor | None
                   ) -> tuple[list[Tensor], Tensor | None, Tensor | None]:
    """Unroll one direction; return Y per time step (time order), and the last h and c."""
    h, c = h0, c0
    ys: list[Tensor | None] = [None] * spec.seq
    order = range(spec.seq - 1, -1, -1) if reverse else range(spec.seq)
    for t in order:
        new_h, new_c = step(ops, projections[t], h, c)
        if spec.lengths is not None and (isinstance(spec.lengths, Tensor) or not np.all(t < spec.lengths)):
            # Rows past their length keep their state and output zeros.
            mask = _step_mask(ops, spec.lengths, t)
            ys[t] = ops.select(mask, new_h, None, "y")
            new_h = ops.select(mask, new_h, h, "h")
            if new_c is not None:
                new_c = ops.select(mask, new_c, c, "c")
        else:
            ys[t] = new_h
        h, c = new_h, new_c
    return [y for y in ys if y is not None], h, c


def _step_mask(ops: _Ops, lengths: np.ndarray | Tensor, t: int) -> np.ndarray | Tensor:
    """Rows still inside their sequence at step ``t``: t < lengths (a LESS for runtime lengths)."""
    if not isinstance(lengths, Tensor):
        return t < lengths
    return ops.ctx.emit1("LESS", [ops.ctx.new_const(np.array(t, np.int32), hint="step"), lengths],
                         lengths.shape, np.bool_, "mask")


def lower_recurrent(node: NodeView, ctx: LowerContext) -> None:
    """LSTM / GRU / RNN unrolled over the static sequence length (module docstring)."""
    spec = _spec(node, ctx)
    weights = _weights(node, ctx, spec)
    nd = len(spec.directions)
    h0s = _initial_states(ctx, 5, spec)
    c0s = _initial_states(ctx, 6, spec) if spec.op == "LSTM" else [None] * nd
    input_forget = bool(node.attr("input_forget", 0)) if spec.op == "LSTM" else False
    lbr = bool(node.attr("linear_before_reset", 0)) if spec.op == "GRU" else False
    want_y, want_h = _wants_output(node, 0), _wants_output(node, 1)
    want_c = spec.op == "LSTM" and _wants_output(node, 2)
    # Create (and so validate) the requested outputs before emitting anything.
    hid, b, s = spec.hidden, spec.batch, spec.seq
    y_shape = (s, nd, b, hid) if spec.layout == 0 else (b, s, nd, hid)
    state_shape = (nd, b, hid) if spec.layout == 0 else (b, nd, hid)
    outs = {i: ctx.output(i, shape, _F32) for i, shape, want in
            ((0, y_shape, want_y), (1, state_shape, want_h), (2, state_shape, want_c)) if want}
    ops = _Ops(ctx)
    x = ctx.input(0)
    ys, hs, cs = [], [], []
    for d, reverse in enumerate(spec.directions):
        dw = weights[d]
        if spec.op == "LSTM":
            step = _lstm_step(ops, dw, spec, input_forget)
        elif spec.op == "GRU":
            step = _gru_step(ops, dw, spec, lbr)
        else:
            step = _rnn_step(dw, spec)
        y, h, c = _run_direction(ops, spec, reverse, _input_projections(ops, x, dw, spec), step, h0s[d], c0s[d])
        ys.append(y)
        hs.append(h)
        cs.append(c)
    axis = 0 if spec.layout == 0 else 1
    if want_y:
        # Order (t, d) so that a PACK plus RESHAPE gives [seq, dir] (layout 0) or [batch, seq, dir].
        steps = [ys[d][t] for t in range(s) for d in range(nd)]
        ops.pack(steps, axis, y_shape, outs[0])
    if want_h:
        ops.pack(hs, axis, state_shape, outs[1])
    if want_c:
        ops.pack(cs, axis, state_shape, outs[2])


@lowering("LSTM", "GRU", "RNN", since=7, onnx_dtypes=FLOATS, dtypes=("float32",), verified=("float32",))
def lower_rnn_family(node: NodeView, ctx: LowerContext) -> None:
    """LSTM, GRU and RNN, opsets 7..21 (layout from opset 14), float32."""
    lower_recurrent(node, ctx)
