"""Drive the lowerings over a prepared graph, collecting every blocking node at once."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..errors import ConversionError, Issue, LoweringError, Reason
from ..frontend import PreparedGraph, prepare
from ..ir import Model, Operator, Subgraph, Tensor
from ..options import ConversionOptions
from .context import GraphBuilder, LowerContext, NodeView, channels_last_perm, inverse_perm
from .custom import check_candidate, lower_custom, policy_summary
from .registry import REGISTRY, VERIFIED_OPSET

# ONNX ops whose data input LiteRT computes channels-last; an input feeding them is exposed NHWC.
SPATIAL_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
               "LpPool", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "LRN",
               "InstanceNormalization", "BatchNormalization", "QLinearConv", "ConvInteger"}
# Ops that pass layout through unchanged, so an input reaching a spatial op via them still counts.
_LAYOUT_TRANSPARENT = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Cast", "Sigmoid", "Tanh", "LeakyRelu",
                       "Abs", "Neg", "Identity", "QuantizeLinear", "DequantizeLinear", "Pad", "Elu",
                       "HardSigmoid", "HardSwish", "PRelu", "Selu", "Sqrt", "Exp", "Pow", "Min", "Max", "Sum",
                       "Mean"}


@dataclass
class NodeRecord:
    """What happened to one ONNX node, for the op-coverage report."""

    name: str
    op_type: str
    domain: str
    dispatch: str  # builtin | custom | unsupported | constant_folded | removed
    reason_code: str | None = None
    message: str | None = None
    litert_ops: list[str] = field(default_factory=list)


class NodeRecords(list):
    """The per-node records, carrying the custom-op policy in force for the report.

    ``op_coverage_report`` reads ``custom_op_policy`` from here when its caller does not pass
    it explicitly, so the report shows the policy whichever way it is built.
    """

    def __init__(self, records: list[NodeRecord], custom_op_policy: dict | None = None):
        super().__init__(records)
        self.custom_op_policy = custom_op_policy


@dataclass
class LoweredGraph:
    model: Model
    records: list[NodeRecord]
    issues: list[Issue]
    io_layout: dict
    # {"allow_custom_ops", "allowlist", "custom_nodes"}: the op-coverage report's policy block.
    custom_op_policy: dict = field(default_factory=dict)


@dataclass
class SubgraphHost:
    """Model-level state shared by the main graph and every control-flow subgraph.

    A control-flow lowering (If, Loop, Scan) lowers its bodies with :func:`lower_subgraph` and
    appends them with :meth:`add`; model subgraph ``i + 1`` is ``subgraphs[i]`` (0 is main).
    """

    opsets: dict[str, int]
    subgraphs: list[Subgraph] = field(default_factory=list)

    def add(self, sg: Subgraph) -> int:
        """Append ``sg``; return its model subgraph index."""
        self.subgraphs.append(sg)
        return len(self.subgraphs)

    def mark(self) -> int:
        """A position to :meth:`rollback` to."""
        return len(self.subgraphs)

    def rollback(self, mark: int) -> None:
        """Forget subgraphs added after ``mark`` (their lowering failed)."""
        del self.subgraphs[mark:]


def subgraph_host(builder: GraphBuilder) -> SubgraphHost:
    """The :class:`SubgraphHost` of the model ``builder`` belongs to."""
    host = builder.subgraph_host
    if host is None:
        raise LoweringError(Reason.INTERNAL_ERROR, "this graph builder has no subgraph host")
    return host


def _spatial_inputs(prepared: PreparedGraph) -> set[str]:
    consumers: dict[str, list] = {}
    for node in prepared.nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = set()
    for name in prepared.inputs:
        frontier, seen = [name], {name}
        while frontier:
            value = frontier.pop()
            for node in consumers.get(value, []):
                if node.op_type in SPATIAL_OPS and node.input[0] == value:
                    found.add(name)
                elif node.op_type in _LAYOUT_TRANSPARENT:
                    for out in node.output:
                        if out not in seen:
                            seen.add(out)
                            frontier.append(out)
    return found


def _make_inputs(prepared: PreparedGraph, builder: GraphBuilder, options: ConversionOptions
                 ) -> tuple[list[Tensor], dict]:
    keep = set(options.keep_ncw_or_nchw_or_ncdhw_input_names)
    unknown = sorted(keep - set(prepared.inputs))
    if unknown:
        raise LoweringError(Reason.INVALID_OPTION, f"-kat names unknown input(s): {', '.join(unknown)}")
    spatial = set() if options.keep_all_inputs_layout else _spatial_inputs(prepared) - keep
    inputs, layout = [], {}
    for name in prepared.inputs:
        shape = prepared.shapes.get(name)
        dtype = prepared.dtypes.get(name, np.dtype(np.float32))
        if shape is None:
            raise LoweringError(Reason.DYNAMIC_SHAPE_UNSUPPORTED, f"input '{name}' has no static shape")
        if name in spatial and 3 <= len(shape) <= 5:
            perm = channels_last_perm(len(shape))
            t = Tensor(name, tuple(shape[p] for p in perm), dtype)
            builder.unique(name)
            onnx_view = Tensor(builder.unique(f"{name}/onnx_layout"), shape, dtype)
            builder.operators.append(Operator(
                "TRANSPOSE", [t, Tensor(builder.unique(f"{name}/perm"), (len(perm),), np.int32,
                                        data=np.array(inverse_perm(perm), np.int32))],
                [onnx_view], origin=f"input:{name}"))
            builder.values[name] = onnx_view
            layout[name] = {"layout": "channels_last", "perm_from_onnx": list(perm),
                            "onnx_shape": list(shape), "shape": list(t.shape)}
        else:
            t = Tensor(builder.unique(name), shape, dtype)
            builder.values[name] = t
            layout[name] = {"layout": "onnx", "perm_from_onnx": None, "onnx_shape": list(shape),
                            "shape": list(shape)}
        inputs.append(t)
    return inputs, layout


def lower_graph(prepared: PreparedGraph, options: ConversionOptions) -> LoweredGraph:
    """Lower every node; return the IR model, per-node records and all blocking issues."""
    builder = GraphBuilder(prepared.constants, prepared.shapes, prepared.dtypes, options)
    host = SubgraphHost(dict(prepared.opsets))
    builder.subgraph_host = host
    try:
        inputs, in_layout = _make_inputs(prepared, builder, options)
    except LoweringError as exc:
        return LoweredGraph(Model([Subgraph([], [])]), NodeRecords([], policy_summary(options, [])),
                            [Issue(exc.reason, exc.message)], {}, policy_summary(options, []))
    records, issues = _lower_nodes(prepared, builder)
    custom_nodes = [r.name for r in records if r.dispatch == "custom"]
    policy = policy_summary(options, custom_nodes)
    records = NodeRecords(_records_for_removed(prepared, records), policy)
    outputs = []
    for name in prepared.outputs:
        t = builder.value(name)
        if t is None:
            continue
        if t.is_const or t in inputs:
            t = _copy_output(builder, name, t)
        outputs.append(t)
    out_layout = {t_name: {"layout": "onnx", "perm_from_onnx": None,
                           "shape": list(prepared.shapes.get(t_name) or [])} for t_name in prepared.outputs}
    model = Model([Subgraph(inputs, outputs, builder.operators), *host.subgraphs],
                  signature_inputs=list(prepared.inputs), signature_outputs=list(prepared.outputs))
    return LoweredGraph(model, records, issues, {"inputs": in_layout, "outputs": out_layout}, policy)


def _copy_output(builder: GraphBuilder, name: str, t: Tensor) -> Tensor:
    """A fresh tensor equal to ``t`` (an identity RESHAPE), for a graph output that must be op-produced."""
    copy = Tensor(builder.unique(name), t.shape, t.dtype)
    builder.operators.append(Operator("RESHAPE", [t, Tensor(builder.unique(f"{name}/shape"), (t.rank,), np.int32,
                                                            data=np.array(t.shape, np.int32))],
                                      [copy], origin=name))
    return copy


def _lower_nodes(prepared: PreparedGraph, builder: GraphBuilder) -> tuple[list[NodeRecord], list[Issue]]:
    """Lower ``prepared.nodes`` into ``builder`` in order; return per-node records and blocking issues."""
    issues: list[Issue] = []
    records: list[NodeRecord] = []
    for index, node in enumerate(prepared.nodes):
        opset = prepared.opsets.get(node.domain or "", prepared.opset)
        view = NodeView(node, index, opset)
        record = NodeRecord(view.name, node.op_type, node.domain, "builtin")
        records.append(record)
        entry = REGISTRY.find(node.domain, node.op_type, opset)
        error: LoweringError | None = None
        blocked = any(n and n not in builder.values and n not in builder.constants for n in node.input)
        # A lowering that handles zero-sized tensors itself also validates the node (e.g. Reshape sizes).
        if not blocked and not (entry is not None and entry.zero_size_inputs) \
                and _has_zero_sized_input(node, builder) and _empty_outputs_as_constants(node, builder):
            record.message = "every output is zero-sized: written as empty constants"
            continue
        if entry is None and REGISTRY.knows(node.domain, node.op_type):
            # A lowering exists for other opsets: its semantics may differ here, so no custom op.
            error = LoweringError(Reason.UNSUPPORTED_OPSET, f"no lowering for {node.op_type} at opset {opset}" + (
                f": its definition changed after opset {VERIFIED_OPSET}, the newest the lowerings are verified "
                f"against" if opset > VERIFIED_OPSET else ""))
        elif entry is None:
            # No lowering at all: the custom-op policy decides (see lower/custom.py).
            try:
                check_candidate(view, builder)
                if blocked:
                    error = LoweringError(Reason.UNSUPPORTED_ONNX_OP,
                                          "an input comes from a node that could not be lowered")
                    record.dispatch = "blocked"
                else:
                    op = lower_custom(view, builder)
                    record.dispatch, record.litert_ops = "custom", [op.opcode]
                    record.message = f"written as CUSTOM op '{op.custom_code}'"
            except LoweringError as exc:
                error = exc
        elif blocked:
            error = LoweringError(Reason.UNSUPPORTED_ONNX_OP, "an input comes from a node that could not be lowered")
            record.dispatch = "blocked"
        else:
            ctx = LowerContext(view, builder)
            try:
                _check_dtype(entry, ctx)
                _check_static_inputs(entry, ctx)
                entry.fn(view, ctx)
                record.litert_ops = [op.opcode for op in ctx.emitted]
            except LoweringError as exc:
                error = exc
                del builder.operators[len(builder.operators) - len(ctx.emitted):]
            except Exception as exc:  # a bug in a lowering: report it on its node, never as a raw traceback
                error = LoweringError(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
                del builder.operators[len(builder.operators) - len(ctx.emitted):]
        if error is not None:
            if record.dispatch == "blocked":  # not this node's fault: no reason code of its own
                record.message = error.message
            else:
                record.dispatch = "unsupported"
                issues.append(Issue(error.reason, error.message, view.name, node.op_type))
                record.reason_code, record.message = error.reason.value, error.message
            for out in node.output:
                builder.values.pop(out, None)
    return records, issues


def lower_subgraph(ctx: LowerContext, model: onnx.ModelProto, name: str,
                   copy_io_outputs: bool = True) -> Subgraph:
    """Like :func:`lower_body`, returning only the subgraph."""
    return lower_body(ctx, model, name, copy_io_outputs)[0]


def lower_body(ctx: LowerContext, model: onnx.ModelProto, name: str, copy_io_outputs: bool = True,
               lookup: tuple[str, ...] = ()) -> tuple[Subgraph, dict[str, Tensor | None]]:
    """Prepare and lower a self-contained ONNX model (a control-flow body) into an IR subgraph.

    ``model`` declares every value the body reads from outside as a graph input (static shape)
    or an initializer; the frontend runs on it as on a top-level model (shape inference,
    constant folding, constant-If inlining), and the same per-node loop lowers it. Inputs keep
    the ONNX layout and order (``model.graph.input`` minus initializers). With
    ``copy_io_outputs`` every output is a distinct op-produced tensor (what IF/WHILE bodies
    need); without, an output may be a constant, an input or repeated (for inlining).

    ``lookup`` names body values (not outputs) whose IR tensors are returned too, e.g. to see
    whether a value folded to a constant (the frontend never folds a graph output's producer).
    The subgraph is *not* added to the model: call ``subgraph_host(ctx.graph).add``. Raises
    :class:`LoweringError` with the first blocking issue inside the body.
    """
    host = subgraph_host(ctx.graph)
    options = dataclasses.replace(ctx.options, overwrite_input_shape=(), batch_size=None,
                                  keep_ncw_or_nchw_or_ncdhw_input_names=(), keep_all_inputs_layout=True)
    try:
        prepared = prepare(model, options)
    except ConversionError as exc:
        issue = exc.issues[0]
        raise LoweringError(issue.reason, f"{name}: {issue.line()}") from exc
    builder = GraphBuilder(prepared.constants, prepared.shapes, prepared.dtypes, options)
    builder.subgraph_host = host
    inputs = []
    for in_name in prepared.inputs:
        shape = prepared.shapes.get(in_name)
        if shape is None:
            raise LoweringError(Reason.DYNAMIC_SHAPE_UNSUPPORTED, f"{name}: input '{in_name}' has no static shape")
        t = Tensor(builder.unique(in_name), shape, prepared.dtypes.get(in_name, np.dtype(np.float32)))
        builder.values[in_name] = t
        inputs.append(t)
    _, issues = _lower_nodes(prepared, builder)
    if issues:
        raise LoweringError(issues[0].reason, f"{name}: {issues[0].line()}")
    outputs: list[Tensor] = []
    for out_name in prepared.outputs:
        t = builder.value(out_name)
        if t is None:
            raise LoweringError(Reason.INTERNAL_ERROR, f"{name}: output '{out_name}' was not produced")
        if copy_io_outputs and (t.is_const or any(t is x for x in inputs) or any(t is x for x in outputs)):
            t = _copy_output(builder, out_name, t)
        outputs.append(t)
    return Subgraph(inputs, outputs, builder.operators, name=name), {n: builder.value(n) for n in lookup}


def _check_dtype(entry, ctx: LowerContext) -> None:
    i = entry.dtype_input
    if i is None or not ctx.has_input(i):
        return
    dtype = ctx.input(i).dtype.name
    if dtype not in entry.dtypes:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                       f"input {i} has dtype {dtype}; this lowering accepts {', '.join(entry.dtypes)}")


def _has_zero_sized_input(node: onnx.NodeProto, builder: GraphBuilder) -> bool:
    """Only a node that already reads a zero-sized tensor may skip its lowering: an empty output
    computed from non-empty inputs usually means an invalid node the lowering must reject."""
    return any(n and (t := builder.value(n)) is not None and 0 in t.shape for n in node.input)


def _empty_outputs_as_constants(node: onnx.NodeProto, builder: GraphBuilder) -> bool:
    """A node whose every output has a static zero-sized shape computes no values: its outputs are
    exactly empty constants, whatever the op (so no lowering needs to handle that case)."""
    outs = [o for o in node.output if o]
    shapes = [builder.shapes.get(o) for o in outs]
    if not outs or any(sh is None or 0 not in sh for sh in shapes) or any(o not in builder.dtypes for o in outs):
        return False
    for name, shape in zip(outs, shapes):
        dtype = builder.dtypes[name]
        builder.values[name] = Tensor(builder.unique(name), tuple(shape), dtype, data=np.zeros(shape, dtype))
    return True


def _check_static_inputs(entry, ctx: LowerContext) -> None:
    """Lowerings compute with static shapes; a data-dependent input shape needs an opt-in, and so
    does a zero-sized input (not every LiteRT kernel is safe on one)."""
    if not entry.zero_size_inputs:
        for i in range(len(ctx.node.inputs)):
            if ctx.has_input(i) and 0 in ctx.input(i).shape:
                raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                               f"input {i} is zero-sized; the {ctx.node.op_type} lowering does not accept "
                               f"zero-sized tensors")
    if entry.dynamic_inputs:
        return
    for i in range(len(ctx.node.inputs)):
        if not ctx.has_input(i):
            continue
        sig = ctx.input(i).shape_signature
        if sig is not None and any(d < 0 for d in sig):
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                           f"input {i} has a data-dependent shape (e.g. from NonZero); "
                           f"{ctx.node.op_type} needs a static one")


def _records_for_removed(prepared: PreparedGraph, records: list[NodeRecord]) -> list[NodeRecord]:
    """Add records for original nodes the frontend folded or removed, in original order."""
    by_output = {}
    for node, rec in zip(prepared.nodes, records):
        by_output[tuple(node.output)] = rec
    out = []
    for index, node in enumerate(prepared.original_nodes):
        rec = by_output.get(tuple(node.output))
        if rec is not None:
            out.append(rec)
            continue
        name = node.name or f"{node.op_type}_{index}"
        folded = any(o in prepared.constants for o in node.output if o)
        out.append(NodeRecord(name, node.op_type, node.domain, "constant_folded" if folded else "removed"))
    return out
