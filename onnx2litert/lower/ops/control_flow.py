"""Control flow: If, Loop and Scan.

Ops: If (runtime condition -> IF with then/else subgraphs), Loop (unrolled when the trip count
and the condition are known at conversion time, else WHILE with cond/body subgraphs), Scan
(unrolled over its static sequence length; Scan-8 also over its batch axis).

Every ONNX body is made self-contained before lowering: the outer-scope values it reads become
graph inputs (runtime values, static shapes) or initializers (constants), and the driver's
:func:`~onnx2litert.lower.driver.lower_subgraph` runs the frontend and the same per-node loop on
it. So a body gets shape inference, constant folding and constant-If inlining like a model.

* **If.** Both branches get the same inputs: the runtime outer values either branch reads, in
  first-use order; the IF op takes ``[cond, *those]``. LiteRT's IF needs the branches to agree
  on output shapes (a static output), so differing shapes are ``dynamic_shape_unsupported``.
* **Loop, unrolled.** With a constant trip count ``M <= MAX_LOOP_UNROLL`` (and a constant or
  absent ``cond``), each iteration is lowered with its iteration number and ``cond_in`` as
  constants and its ops are inlined; scan outputs (one value per iteration) are stacked with
  CONCATENATION. When a body's ``cond_out`` does not fold to a constant, the loop is not unrolled.
* **Loop, WHILE.** Loop variables are ``[iter, cond?, v..., M?, captured...]`` (``iter`` int64
  scalar, ``cond`` bool scalar); the cond subgraph computes ``iter < M and cond``, the body
  subgraph is the ONNX body plus ``iter + 1``, passing ``M`` and captured values through.
  Loop-carried values must keep their shape. Scan outputs need a constant ``M`` and a loop that
  cannot stop early: each is a zero-filled ``[M, ...]`` loop variable whose row ``iter`` the body
  writes with DYNAMIC_UPDATE_SLICE; otherwise their length is only known at run time
  (``dynamic_shape_unsupported``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import LoweringError, Reason
from ...ir import Operator, Subgraph, Tensor
from ..context import LowerContext, NodeView
from ..driver import lower_body, lower_subgraph, subgraph_host
from ..registry import ALL_NUMERIC, lowering

# Loops with a known trip count up to this are unrolled (model size grows with it); longer ones
# become WHILE. Scan has no WHILE form here: it is unrolled up to MAX_SCAN_UNROLL steps.
MAX_LOOP_UNROLL = 16
MAX_SCAN_UNROLL = 64
# XNNPACK refuses rank-7 CONCATENATION; stacked scan outputs stay within this rank.
_MAX_STACK_RANK = 6
_LOOP_DTYPES = ALL_NUMERIC + ("bool",)


class _NotUnrollable(Exception):
    """The Loop's condition depends on run-time data: it needs a WHILE."""


# -- self-contained ONNX bodies -----------------------------------------------------------------

def free_names(graph: onnx.GraphProto) -> list[str]:
    """Outer-scope names ``graph`` reads (nested subgraphs included), in first-use order."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    free: dict[str, None] = {}
    for node in graph.node:
        for name in node.input:
            if name not in defined:
                free.setdefault(name)
        for attr in node.attribute:
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                for name in free_names(g):
                    if name not in defined:
                        free.setdefault(name)
        defined |= set(node.output)
    for out in graph.output:
        if out.name not in defined:
            free.setdefault(out.name)
    return list(free)


class _Body:
    """Builder of a self-contained ONNX model: inputs, initializers, nodes, outputs."""

    def __init__(self) -> None:
        self.inputs: list[onnx.ValueInfoProto] = []
        self.runtime: list[Tensor] = []  # outer tensor feeding each input, in order
        self.consts: dict[str, np.ndarray] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []

    def feed(self, name: str, t: Tensor) -> None:
        """Bind ``name`` to outer tensor ``t``: an initializer when constant, else an input."""
        if t.is_const:
            self.consts[name] = t.data
        else:
            self.inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(t.dtype), list(t.shape)))
            self.runtime.append(t)

    def placeholder(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        """A runtime input with no outer tensor yet (a loop variable inside WHILE subgraphs)."""
        self.inputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape)))

    def output(self, name: str, like: onnx.ValueInfoProto | None = None) -> None:
        vi = onnx.ValueInfoProto()
        if like is not None:
            vi.CopyFrom(like)
            if vi.type.HasField("tensor_type"):
                vi.type.tensor_type.ClearField("shape")
        vi.name = name
        self.outputs.append(vi)

    def model(self, graph: onnx.GraphProto | None, opsets: dict[str, int]) -> onnx.ModelProto:
        """The model: ``graph``'s nodes and initializers plus what was added here."""
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.consts.items()]
        nodes = list(self.nodes)
        if graph is not None:
            inits = list(graph.initializer) + inits
            nodes = list(graph.node) + nodes
        g = helper.make_graph(nodes, "body", self.inputs, self.outputs, inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                                 ir_version=onnx.IR_VERSION)


def _outer(ctx: LowerContext, names: list[str]) -> list[tuple[str, Tensor]]:
    """The outer tensors for names a body reads from the enclosing scope."""
    out = []
    for name in names:
        t = ctx.graph.value(name)
        if t is None:
            raise ctx.fail(Reason.UNSUPPORTED_ONNX_OP,
                           f"the body reads '{name}', which comes from a node that could not be lowered")
        sig = t.shape_signature
        if sig is not None and any(d < 0 for d in sig):
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                           f"the body reads '{name}', whose shape is data-dependent")
        out.append((name, t))
    return out


def _declared_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...]:
    """A body input's declared static shape, or () (a scalar) when not fully declared."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape") or not all(d.HasField("dim_value") for d in tt.shape.dim):
        return ()
    return tuple(int(d.dim_value) for d in tt.shape.dim)


def _resolve_identity(graph: onnx.GraphProto, name: str) -> str:
    """Follow Identity nodes of ``graph`` back from ``name`` (the frontend removes them)."""
    producers = {n.output[0]: n for n in graph.node if n.op_type == "Identity" and n.output and n.input}
    seen = set()
    while name in producers and name not in seen:
        seen.add(name)
        name = producers[name].input[0]
    return name


def _graph_attr(node: NodeView, ctx: LowerContext, name: str) -> onnx.GraphProto:
    g = node.attr(name)
    if not isinstance(g, onnx.GraphProto):
        raise ctx.fail(Reason.INVALID_MODEL, f"attribute '{name}' (a graph) is missing")
    return g


# -- inlining a lowered body ----------------------------------------------------------------------

def inline_subgraph(ctx: LowerContext, sg: Subgraph, feeds: list[Tensor], prefix: str,
            pending: list[Operator]) -> list[Tensor]:
    """Splice ``sg``'s ops into the outer graph (into ``pending``), ``sg.inputs[i]`` := ``feeds[i]``.

    Returns the outer tensors of ``sg``'s outputs. The subgraph is consumed: its tensors are
    renamed to be unique in the outer graph and its ops are reused.
    """
    mapping = {id(i): t for i, t in zip(sg.inputs, feeds)}
    for t in sg.tensors():
        if id(t) not in mapping:
            t.name = ctx.graph.unique(f"{prefix}/{t.name}")
    for op in sg.operators:
        op.inputs = [None if t is None else mapping.get(id(t), t) for t in op.inputs]
        op.origin = ctx.node.name
        pending.append(op)
    return [mapping.get(id(t), t) for t in sg.outputs]


def commit_ops(ctx: LowerContext, pending: list[Operator]) -> None:
    """Append inlined ops to the graph as this node's ops (so a failing lowering removes them)."""
    for op in pending:
        ctx.graph.operators.append(op)
        ctx.emitted.append(op)


def _bind_output(ctx: LowerContext, i: int, t: Tensor, fresh: set[int], bound: set[int]) -> None:
    """Make ``t`` ONNX output ``i``: directly when this node produced it, else through a copy."""
    name = ctx.node.outputs[i]
    if not name:
        return
    if id(t) in fresh and id(t) not in bound and not t.is_const:
        t.name = ctx.graph.unique(name)
        ctx.graph.values[name] = t
    else:
        ctx.reshape(t, t.shape, out=ctx.output(i, shape=t.shape, dtype=t.dtype))
    bound.add(id(t))


def _stack(ctx: LowerContext, items: list[Tensor], axis: int, out: Tensor | None, what: str) -> Tensor:
    """Stack equal-shaped ``items`` along a new ``axis`` (RESHAPE each, then CONCATENATION)."""
    shapes = {t.shape for t in items}
    if not items or len(shapes) != 1:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                       f"{what} has a different shape in different iterations" if items else
                       f"{what} would be empty (no iteration runs)")
    shape = items[0].shape
    rank = len(shape) + 1
    if rank > _MAX_STACK_RANK:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what} would have rank {rank} (> {_MAX_STACK_RANK})")
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what}: axis {axis} is out of range")
    one = shape[:axis] + (1,) + shape[axis:]
    full = shape[:axis] + (len(items),) + shape[axis:]
    if len(items) == 1:
        return ctx.reshape(items[0], one, out=out) if out is not None else ctx.reshape(items[0], one)
    parts = [ctx.reshape(t, one) for t in items]
    return ctx.emit1("CONCATENATION", parts, full, items[0].dtype, "stack", out, axis=axis,
                     fusedActivationFunction="NONE")


# -- If -------------------------------------------------------------------------------------------

@lowering("If", onnx_dtypes=("bool",), dtypes=("bool",), verified=("bool",))
def lower_if(node: NodeView, ctx: LowerContext) -> None:
    """If with a run-time condition -> IF(cond, *outer values) with then/else subgraphs."""
    cond = ctx.input(0)
    if cond.size != 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"the condition has {cond.size} elements; If needs one")
    branches = [_graph_attr(node, ctx, "then_branch"), _graph_attr(node, ctx, "else_branch")]
    names = list(dict.fromkeys(n for g in branches for n in free_names(g)))
    captured = _outer(ctx, names)
    host = subgraph_host(ctx.graph)
    mark = host.mark()
    try:
        lowered = []
        for label, g in zip(("then", "else"), branches):
            if len(g.output) != len(node.outputs):
                raise ctx.fail(Reason.INVALID_MODEL, f"the {label} branch has {len(g.output)} outputs, "
                                                     f"the node {len(node.outputs)}")
            body = _Body()
            for name, t in captured:
                body.feed(name, t)
            for vi in g.output:
                body.output(vi.name, vi)
            lowered.append(lower_subgraph(ctx, body.model(g, host.opsets), f"{node.name}/{label}"))
        then_sg, else_sg = lowered
        outs = []
        for i, (a, b) in enumerate(zip(then_sg.outputs, else_sg.outputs)):
            if a.dtype != b.dtype:
                raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                               f"output {i} is {a.dtype} in one branch, {b.dtype} in the other")
            if a.shape != b.shape:
                raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                               f"output {i} has shape {list(a.shape)} in the then branch and {list(b.shape)} in the "
                               f"else branch; LiteRT's IF needs one static shape")
            outs.append(ctx.output(i, shape=a.shape, dtype=a.dtype))
        runtime = [t for _, t in captured if not t.is_const]
        then_index = host.add(then_sg)
        else_index = host.add(else_sg)
        ctx.emit("IF", [cond, *runtime], outs, thenSubgraphIndex=then_index, elseSubgraphIndex=else_index)
    except LoweringError:
        host.rollback(mark)
        raise


# -- Loop -----------------------------------------------------------------------------------------

@lowering("Loop", onnx_dtypes=_LOOP_DTYPES, dtypes=_LOOP_DTYPES, verified=("float32", "int64"), dtype_input=None)
def lower_loop(node: NodeView, ctx: LowerContext) -> None:
    """Loop -> unrolled ops (trip count and condition known) or WHILE (no scan outputs)."""
    body = _graph_attr(node, ctx, "body")
    n_carried = len(node.inputs) - 2
    n_scan = len(body.output) - 1 - n_carried
    if n_carried < 0 or n_scan < 0 or len(body.input) != n_carried + 2:
        raise ctx.fail(Reason.INVALID_MODEL, "the body's inputs/outputs do not match the Loop's")
    carried = [ctx.input(2 + j) for j in range(n_carried)]
    has_m, has_cond = ctx.has_input(0), ctx.has_input(1)
    m_value, cond_value = ctx.const(0), ctx.const(1)
    if not has_m and not has_cond:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "a Loop without trip count and condition never ends")
    captured = _outer(ctx, free_names(body))
    if (not has_m or m_value is not None) and (not has_cond or cond_value is not None):
        trip = int(np.asarray(m_value).reshape(-1)[0]) if has_m else None
        start = bool(np.asarray(cond_value).reshape(-1)[0]) if has_cond else True
        if trip is None or trip <= MAX_LOOP_UNROLL:
            try:
                _unroll_loop(node, ctx, body, carried, captured, trip, start, n_scan)
                return
            except _NotUnrollable:
                pass  # the condition is data-dependent: a WHILE below
    scan_trip = None
    if n_scan:
        # Scan outputs have a static length only for a constant M and a loop that never stops early.
        fixed = m_value is not None and (not has_cond or (cond_value is not None and _truthy(cond_value)))
        if not fixed:
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                           f"the Loop has {n_scan} scan output(s), whose length is only known at run time; they "
                           f"need a constant trip count and a condition known at conversion time")
        scan_trip = int(np.asarray(m_value).reshape(-1)[0])
    _lower_while(node, ctx, body, carried, captured, scan_trip, n_scan)


def _unroll_loop(node: NodeView, ctx: LowerContext, body: onnx.GraphProto, carried: list[Tensor],
                 captured: list[tuple[str, Tensor]], trip: int | None, start: bool, n_scan: int) -> None:
    """Inline the body once per iteration; raise _NotUnrollable when ``cond_out`` is not constant."""
    uses_cond = ctx.has_input(1)
    limit = MAX_LOOP_UNROLL if trip is None else max(trip, 0)
    host = subgraph_host(ctx.graph)
    mark = host.mark()
    pending: list[Operator] = []
    values = list(carried)
    scans: list[list[Tensor]] = [[] for _ in range(n_scan)]
    keep_going, k = start, 0
    try:
        while keep_going and k < limit:
            b = _Body()
            iter_vi, cond_vi = body.input[0], body.input[1]
            b.consts[iter_vi.name] = np.full(_declared_shape(iter_vi), k, np.int64)
            b.consts[cond_vi.name] = np.full(_declared_shape(cond_vi), True, np.bool_)
            for vi, t in zip(body.input[2:], values):
                b.feed(vi.name, t)
            for name, t in captured:
                b.feed(name, t)
            # cond_out is left out of the outputs: the frontend folds it only if it is not one.
            for vi in body.output[1:]:
                b.output(vi.name, vi)
            cond_name = _resolve_identity(body, body.output[0].name)
            sg, seen = lower_body(ctx, b.model(body, host.opsets), f"{node.name}/iter{k}", copy_io_outputs=False,
                                  lookup=(cond_name,) if uses_cond else ())
            if uses_cond and cond_name != cond_vi.name:  # cond_out = cond_in (True) keeps going
                cond_out = seen[cond_name]
                if cond_out is None or not cond_out.is_const or cond_out.size != 1:
                    raise _NotUnrollable()
                keep_going = _truthy(cond_out.data)
            outs = inline_subgraph(ctx, sg, b.runtime, f"{node.name}/iter{k}", pending)
            values = outs[:len(values)]
            for s in range(n_scan):
                scans[s].append(outs[len(values) + s])
            k += 1
        if trip is None and keep_going:
            raise _NotUnrollable()  # still running after MAX_LOOP_UNROLL iterations
    except (LoweringError, _NotUnrollable):
        host.rollback(mark)
        raise
    try:
        _finish_unrolled(node, ctx, pending, values, scans, [0] * n_scan, [0] * n_scan)
    except LoweringError:
        host.rollback(mark)
        raise


def _finish_unrolled(node: NodeView, ctx: LowerContext, pending: list[Operator], states: list[Tensor],
                     scans: list[list[Tensor]], axes: list[int], directions: list[int]) -> None:
    """Commit the inlined ops; bind final states to the first outputs and stacked scans to the rest."""
    commit_ops(ctx, pending)
    fresh = {id(t) for op in pending for t in op.outputs}
    bound: set[int] = set()
    for j, t in enumerate(states):
        _bind_output(ctx, j, t, fresh, bound)
    for s, items in enumerate(scans):
        i = len(states) + s
        if not node.outputs[i]:
            continue
        if not items:
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, f"scan output {s} would be empty (no iteration runs)")
        items = items[::-1] if directions[s] else items
        rank = items[0].rank + 1
        axis = axes[s] + rank if axes[s] < 0 else axes[s]
        if not 0 <= axis < rank:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"scan output {s}: axis {axes[s]} is out of range")
        shape = items[0].shape
        out = ctx.output(i, shape=shape[:axis] + (len(items),) + shape[axis:], dtype=items[0].dtype)
        _stack(ctx, items, axis, out, f"scan output {s}")


def _truthy(value: np.ndarray) -> bool:
    return bool(np.asarray(value).reshape(-1)[0])


def _lower_while(node: NodeView, ctx: LowerContext, body: onnx.GraphProto, carried: list[Tensor],
                 captured: list[tuple[str, Tensor]], scan_trip: int | None = None, n_scan: int = 0) -> None:
    """Loop with a run-time trip count or condition -> WHILE(cond, body).

    With ``scan_trip`` (a constant trip count, no early stop) the ``n_scan`` scan outputs are
    preallocated ``[scan_trip, ...]`` loop variables the body fills with DYNAMIC_UPDATE_SLICE.
    """
    has_m = ctx.has_input(0)
    # With scan outputs the condition is a constant True (checked by the caller): no cond variable.
    has_cond = ctx.has_input(1) and scan_trip is None
    if scan_trip is not None and scan_trip <= 0:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "the scan outputs would be empty (no iteration runs)")
    for j, t in enumerate(carried):
        if t.shape_signature is not None and any(d < 0 for d in t.shape_signature):
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, f"loop-carried value {j} has a data-dependent shape")
    m = _scalar_input(ctx, 0, np.int64, "the trip count M") if has_m else None
    cond0 = _scalar_input(ctx, 1, np.bool_, "the condition") if has_cond else None
    runtime_captured = [(name, t) for name, t in captured if not t.is_const]
    m_runtime = m is not None and not m.is_const

    # Loop variables: iter, cond?, v..., M (run-time only), captured run-time values.
    var_init: list[Tensor] = [ctx.new_const(np.array(0, np.int64), hint="iter0")]
    if cond0 is not None:
        var_init.append(cond0)
    var_init += carried
    if m_runtime:
        var_init.append(m)
    var_init += [t for _, t in runtime_captured]

    host = subgraph_host(ctx.graph)
    mark = host.mark()
    try:
        m_index = next(j for j, t in enumerate(var_init) if t is m) if m_runtime else None
        body_model = _while_body(body, var_init, cond0 is not None, len(carried), m_runtime, captured,
                                 runtime_captured, host.opsets, with_scans=scan_trip is not None)
        cond_name = _resolve_identity(body, body.output[0].name)
        body_sg, seen = lower_body(ctx, body_model, f"{node.name}/body", lookup=(cond_name,))
        if scan_trip is not None and ctx.has_input(1) and cond_name != body.input[1].name:
            # cond_in is the constant True here: the loop runs M times only if cond_out is True too.
            cond_out = seen[cond_name]
            if cond_out is None or not cond_out.is_const or not _truthy(cond_out.data):
                raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                               "the body's condition may stop the Loop early, so the length of its scan outputs "
                               "is only known at run time")
        if scan_trip is not None:
            buffers = _add_scan_buffers(ctx, body_sg, n_scan, scan_trip)
            var_init += buffers
        cond_sg = lower_subgraph(ctx, _while_cond(var_init, cond0 is not None, m, m_index, host.opsets),
                                 f"{node.name}/cond")
        for j, (a, b) in enumerate(zip(var_init, body_sg.outputs)):
            if a.shape != b.shape or a.dtype != b.dtype:
                raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                               f"loop variable {j} enters as {list(a.shape)} {a.dtype} and leaves the body as "
                               f"{list(b.shape)} {b.dtype}; WHILE needs loop variables of fixed shape")
        first = 1 + (cond0 is not None)
        outs = []
        first_scan = len(var_init) - (n_scan if scan_trip is not None else 0)
        for j, t in enumerate(var_init):
            if first <= j < first + len(carried) and node.outputs[j - first]:
                outs.append(ctx.output(j - first, shape=t.shape, dtype=t.dtype))
            elif j >= first_scan and node.outputs[len(carried) + j - first_scan]:
                outs.append(ctx.output(len(carried) + j - first_scan, shape=t.shape, dtype=t.dtype))
            else:
                outs.append(ctx.tmp(t.shape, t.dtype, "loop_var"))
        cond_index = host.add(cond_sg)
        body_index = host.add(body_sg)
        ctx.emit("WHILE", var_init, outs, condSubgraphIndex=cond_index, bodySubgraphIndex=body_index)
    except LoweringError:
        host.rollback(mark)
        raise


def _scalar_input(ctx: LowerContext, i: int, dtype: type, what: str) -> Tensor:
    """Input ``i`` as a rank-0 tensor of ``dtype`` (ONNX allows shape [] or [1])."""
    t = ctx.input(i)
    if t.size != 1 or t.dtype != np.dtype(dtype):
        raise ctx.fail(Reason.INVALID_MODEL, f"{what} must be one {np.dtype(dtype).name} element")
    return t if t.shape == () else ctx.reshape(t, ())


def _while_cond(var_init: list[Tensor], has_cond: bool, m: Tensor | None, m_index: int | None,
                opsets: dict[str, int]) -> onnx.ModelProto:
    """The cond subgraph over all loop variables: ``iter < M and cond`` (either part may be absent).

    ``m_index`` is M's position among the loop variables when M is a run-time value; a constant M
    is an initializer of this subgraph.
    """
    b = _Body()
    names = [f"var{j}" for j in range(len(var_init))]
    for name, t in zip(names, var_init):
        b.placeholder(name, t.shape, t.dtype)
    keep = names[1] if has_cond else None
    if m is not None:
        if m_index is not None:
            m_name = names[m_index]
        else:
            m_name = "M"
            b.consts[m_name] = np.asarray(m.data, np.int64).reshape(())
        b.nodes.append(helper.make_node("Less", [names[0], m_name], ["below_m"]))
        if keep is not None:
            b.nodes.append(helper.make_node("And", ["below_m", keep], ["keep"]))
            keep = "keep"
        else:
            keep = "below_m"
    b.output(keep)
    b.outputs[0].type.tensor_type.elem_type = onnx.TensorProto.BOOL
    return b.model(None, opsets)


def _unique_namer(taken: set[str]) -> Callable[[str], str]:
    """``hint``, or ``hint_1``, ``hint_2``... : the first name not in ``taken`` (which it joins)."""
    def fresh(hint: str) -> str:
        name, n = hint, 0
        while name in taken:
            n += 1
            name = f"{hint}_{n}"
        taken.add(name)
        return name
    return fresh


def _while_body(body: onnx.GraphProto, var_init: list[Tensor], has_cond: bool, n_carried: int, m_runtime: bool,
                captured: list[tuple[str, Tensor]], runtime_captured: list[tuple[str, Tensor]],
                opsets: dict[str, int], with_scans: bool = False) -> onnx.ModelProto:
    """The body subgraph: the ONNX body plus ``iter + 1``, passing M and captured values through.

    ``with_scans`` appends the per-iteration scan output elements to the outputs.
    """
    taken = {n for node in body.node for n in list(node.input) + list(node.output)}
    taken |= {v.name for v in list(body.input) + list(body.output)}

    fresh = _unique_namer(taken)

    b = _Body()
    iter_name, cond_name = body.input[0].name, body.input[1].name
    b.placeholder(iter_name, (), np.int64)
    if has_cond:
        b.placeholder(cond_name, (), np.bool_)
    else:
        b.consts[cond_name] = np.array(True)  # ignored by ONNX when the Loop has no condition input
    for vi, t in zip(body.input[2:], var_init[1 + has_cond:]):
        b.placeholder(vi.name, t.shape, t.dtype)
    m_name = fresh("loop_trip_count")
    if m_runtime:
        b.placeholder(m_name, (), np.int64)
    for name, t in captured:
        if t.is_const:
            b.consts[name] = t.data
    for name, t in runtime_captured:
        b.placeholder(name, t.shape, t.dtype)
    one, iter_next = fresh("loop_one"), fresh("loop_iter_next")
    b.consts[one] = np.array(1, np.int64)
    b.nodes.append(helper.make_node("Add", [iter_name, one], [iter_next]))
    b.output(iter_next)
    b.outputs[-1].type.tensor_type.elem_type = onnx.TensorProto.INT64
    if has_cond:
        # cond_out may be [1]; the loop variable is a scalar.
        empty, cond_next = fresh("loop_scalar_shape"), fresh("loop_cond_next")
        b.consts[empty] = np.zeros((0,), np.int64)
        b.nodes.append(helper.make_node("Reshape", [body.output[0].name, empty], [cond_next]))
        b.output(cond_next)
        b.outputs[-1].type.tensor_type.elem_type = onnx.TensorProto.BOOL
    for vi in body.output[1:1 + n_carried]:
        b.output(vi.name, vi)
    if m_runtime:
        b.output(m_name)
        b.outputs[-1].type.tensor_type.elem_type = onnx.TensorProto.INT64
    for name, t in runtime_captured:
        b.output(name)
        b.outputs[-1].type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(t.dtype)
    if with_scans:
        for vi in body.output[1 + n_carried:]:
            b.output(vi.name, vi)
    return b.model(body, opsets)


def _add_scan_buffers(ctx: LowerContext, sg: Subgraph, n_scan: int, trip: int) -> list[Tensor]:
    """Turn ``sg``'s last ``n_scan`` outputs (scan elements) into ``[trip, ...]`` buffer loop variables.

    Each buffer enters the body as an input and leaves it with row ``iter`` (``sg.inputs[0]``)
    replaced by the element (DYNAMIC_UPDATE_SLICE). Returns the zero-filled initial buffers.
    """
    elements = sg.outputs[len(sg.outputs) - n_scan:]
    del sg.outputs[len(sg.outputs) - n_scan:]
    it = sg.inputs[0]
    name = _unique_namer({t.name for t in sg.tensors()})

    row = Tensor(name("scan_row"), (), np.int32)
    row1 = Tensor(name("scan_row1"), (1,), np.int32)
    sg.operators.append(Operator("CAST", [it], [row], origin=ctx.node.name))
    sg.operators.append(Operator("RESHAPE", [row, Tensor(name("scan_row_shape"), (1,), np.int32,
                                                         data=np.array([1], np.int32))], [row1], origin=ctx.node.name))
    initial = []
    for s, e in enumerate(elements):
        shape = (trip, *e.shape)
        if len(shape) > _MAX_STACK_RANK:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"scan output {s} would have rank {len(shape)}")
        start = Tensor(name(f"scan{s}/start"), (len(shape),), np.int32)
        sg.operators.append(Operator("CONCATENATION", [row1, Tensor(name(f"scan{s}/zeros"), (e.rank,), np.int32,
                                                                    data=np.zeros(e.rank, np.int32))],
                                     [start], {"axis": 0, "fusedActivationFunction": "NONE"}, origin=ctx.node.name))
        update = Tensor(name(f"scan{s}/update"), (1, *e.shape), e.dtype)
        sg.operators.append(Operator("RESHAPE", [e, Tensor(name(f"scan{s}/update_shape"), (len(shape),), np.int32,
                                                           data=np.array((1, *e.shape), np.int32))], [update],
                                     origin=ctx.node.name))
        buf_in = Tensor(name(f"scan{s}/buffer"), shape, e.dtype)
        buf_out = Tensor(name(f"scan{s}/buffer_next"), shape, e.dtype)
        sg.operators.append(Operator("DYNAMIC_UPDATE_SLICE", [buf_in, update, start], [buf_out],
                                     origin=ctx.node.name))
        sg.inputs.append(buf_in)
        sg.outputs.append(buf_out)
        initial.append(ctx.new_const(np.zeros(shape, e.dtype), hint=f"scan{s}_init"))
    return initial


# -- Scan -----------------------------------------------------------------------------------------

def _scan_arity(node: NodeView, ctx: LowerContext, body: onnx.GraphProto, first: int) -> tuple[int, int, int]:
    """(states, scan inputs, scan outputs) counts; node inputs from ``first`` on are states + scan inputs."""
    n_in = int(node.attr("num_scan_inputs", 0))
    n_state = len(node.inputs) - first - n_in
    n_out = len(body.output) - n_state
    if n_in < 1 or n_state < 0 or n_out < 0 or len(body.input) != n_state + n_in:
        raise ctx.fail(Reason.INVALID_MODEL, "the body's inputs/outputs do not match the Scan's")
    return n_state, n_in, n_out


def _sequence_length(ctx: LowerContext, xs: list[Tensor], axes: list[int], n_out: int) -> int:
    """The common length of the scan inputs along their scan axes (normalized in place)."""
    lengths = set()
    for j, x in enumerate(xs):
        axis = axes[j] + x.rank if axes[j] < 0 else axes[j]
        if not 0 <= axis < x.rank:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"scan input axis {axes[j]} is out of range")
        axes[j] = axis
        lengths.add(x.shape[axis])
    if len(lengths) != 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"the scan inputs have different sequence lengths {sorted(lengths)}")
    length = lengths.pop()
    if length > MAX_SCAN_UNROLL:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                       f"the sequence length {length} is above {MAX_SCAN_UNROLL}, the most Scan steps that are "
                       f"unrolled")
    if length == 0 and n_out:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "the scan outputs would be empty (sequence length 0)")
    return length


def _run_scan(ctx: LowerContext, body: onnx.GraphProto, states: list[Tensor], xs: list[Tensor], axes: list[int],
              directions: list[int], length: int, captured: list[tuple[str, Tensor]], pending: list[Operator],
              tag: str) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Unroll the body ``length`` times into ``pending``; return final states and per-step scan outputs."""
    n_state = len(states)
    opsets = subgraph_host(ctx.graph).opsets
    outs_per_step: list[list[Tensor]] = [[] for _ in range(len(body.output) - n_state)]
    for step in range(length):
        b = _Body()
        for vi, t in zip(body.input[:n_state], states):
            b.feed(vi.name, t)
        for j, (vi, x) in enumerate(zip(body.input[n_state:], xs)):
            index = length - 1 - step if directions[j] else step
            b.feed(vi.name, _take(ctx, x, axes[j], index, pending))
        for name, t in captured:
            b.feed(name, t)
        for vi in body.output:
            b.output(vi.name, vi)
        sg = lower_subgraph(ctx, b.model(body, opsets), f"{tag}/step{step}", copy_io_outputs=False)
        outs = inline_subgraph(ctx, sg, b.runtime, f"{tag}/step{step}", pending)
        states = outs[:n_state]
        for s, items in enumerate(outs_per_step):
            items.append(outs[n_state + s])
    return states, outs_per_step


@lowering("Scan", since=9, onnx_dtypes=_LOOP_DTYPES, dtypes=_LOOP_DTYPES, verified=("float32",), dtype_input=None)
def lower_scan(node: NodeView, ctx: LowerContext) -> None:
    """Scan (opset 9+) -> the body unrolled over the static sequence length."""
    body = _graph_attr(node, ctx, "body")
    n_state, n_in, n_out = _scan_arity(node, ctx, body, 0)
    in_axes = list(node.attr("scan_input_axes", [0] * n_in))
    in_dirs = list(node.attr("scan_input_directions", [0] * n_in))
    out_axes = list(node.attr("scan_output_axes", [0] * n_out))
    out_dirs = list(node.attr("scan_output_directions", [0] * n_out))
    states = [ctx.input(j) for j in range(n_state)]
    xs = [ctx.input(n_state + j) for j in range(n_in)]
    length = _sequence_length(ctx, xs, in_axes, n_out)
    captured = _outer(ctx, free_names(body))
    host = subgraph_host(ctx.graph)
    mark = host.mark()
    pending: list[Operator] = []
    try:
        states, outs = _run_scan(ctx, body, states, xs, in_axes, in_dirs, length, captured, pending, node.name)
        _finish_unrolled(node, ctx, pending, states, outs, out_axes, out_dirs)
    except LoweringError:
        host.rollback(mark)
        raise


@lowering("Scan", since=8, until=8, onnx_dtypes=_LOOP_DTYPES, dtypes=_LOOP_DTYPES, verified=("float32",),
          dtype_input=None)
def lower_scan8(node: NodeView, ctx: LowerContext) -> None:
    """Scan-8 (batch axis 0, sequence axis 1, optional sequence_lens) -> unrolled per batch item and step."""
    body = _graph_attr(node, ctx, "body")
    n_state, n_in, n_out = _scan_arity(node, ctx, body, 1)
    in_dirs = list(node.attr("directions", [0] * n_in))
    states = [ctx.input(1 + j) for j in range(n_state)]
    xs = [ctx.input(1 + n_state + j) for j in range(n_in)]
    batches = {t.shape[0] if t.rank else None for t in states + xs}
    if len(batches) != 1 or None in batches or any(x.rank < 2 for x in xs):
        raise ctx.fail(Reason.INVALID_MODEL, "Scan-8 inputs need a common batch axis 0 (and scan inputs axis 1)")
    batch = batches.pop()
    length = _sequence_length(ctx, xs, [1] * n_in, n_out)
    if ctx.has_input(0):
        lens = ctx.require_const(0, "sequence_lens")
        if np.any(np.asarray(lens) != length):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           "sequence_lens shorter than the sequence axis (padded scan outputs) are not supported")
    if batch * length > MAX_SCAN_UNROLL:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                       f"batch {batch} x sequence length {length} is above {MAX_SCAN_UNROLL}, the most Scan steps "
                       f"that are unrolled")
    captured = _outer(ctx, free_names(body))
    host = subgraph_host(ctx.graph)
    mark = host.mark()
    pending: list[Operator] = []
    try:
        final: list[list[Tensor]] = [[] for _ in range(n_state)]
        scanned: list[list[Tensor]] = [[] for _ in range(n_out)]
        for item in range(batch):
            st = [_take(ctx, t, 0, item, pending) for t in states]
            xb = [_take(ctx, x, 0, item, pending) for x in xs]
            st, outs = _run_scan(ctx, body, st, xb, [0] * n_in, in_dirs, length, captured, pending,
                                 f"{node.name}/batch{item}")
            for j, t in enumerate(st):
                final[j].append(t)
            for s, items in enumerate(outs):
                scanned[s].append(items)
        commit_ops(ctx, pending)
        for j, items in enumerate(final):
            if node.outputs[j]:
                _stack(ctx, items, 0, ctx.output(j, shape=(batch, *items[0].shape), dtype=items[0].dtype),
                       f"state {j}")
        for s, per_item in enumerate(scanned):
            if node.outputs[n_state + s]:
                rows = [_stack(ctx, items, 0, None, f"scan output {s}") for items in per_item]
                _stack(ctx, rows, 0, ctx.output(n_state + s, shape=(batch, *rows[0].shape), dtype=rows[0].dtype),
                       f"scan output {s}")
    except LoweringError:
        host.rollback(mark)
        raise


def _take(ctx: LowerContext, x: Tensor, axis: int, index: int, pending: list[Operator]) -> Tensor:
    """``x[..., index, ...]`` along ``axis`` (the axis removed): SLICE then RESHAPE (or numpy)."""
    shape = x.shape[:axis] + x.shape[axis + 1:]
    if x.is_const:
        return ctx.new_const(np.take(x.data, index, axis=axis), hint="scan_in")
    begin = [0] * x.rank
    begin[axis] = index
    size = list(x.shape)
    size[axis] = 1
    part = ctx.tmp(tuple(size), x.dtype, "scan_slice")
    y = ctx.tmp(shape, x.dtype, "scan_in")
    pending.append(Operator("SLICE", [x, ctx.new_const(np.array(begin, np.int32), hint="begin"),
                                      ctx.new_const(np.array(size, np.int32), hint="size")], [part],
                            origin=ctx.node.name))
    pending.append(Operator("RESHAPE", [part, ctx.new_const(np.array(shape, np.int32), hint="shape")], [y],
                            origin=ctx.node.name))
    return y
