"""Drive the lowerings over a prepared graph, collecting every blocking node at once."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import Issue, LoweringError, Reason
from ..frontend import PreparedGraph
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
    issues: list[Issue] = []
    try:
        inputs, in_layout = _make_inputs(prepared, builder, options)
    except LoweringError as exc:
        return LoweredGraph(Model([Subgraph([], [])]), NodeRecords([], policy_summary(options, [])),
                            [Issue(exc.reason, exc.message)], {}, policy_summary(options, []))
    records: list[NodeRecord] = []
    for index, node in enumerate(prepared.nodes):
        opset = prepared.opsets.get(node.domain or "", prepared.opset)
        view = NodeView(node, index, opset)
        record = NodeRecord(view.name, node.op_type, node.domain, "builtin")
        records.append(record)
        entry = REGISTRY.find(node.domain, node.op_type, opset)
        error: LoweringError | None = None
        blocked = any(n and n not in builder.values and n not in builder.constants for n in node.input)
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
        if error is not None:
            if record.dispatch != "blocked":
                record.dispatch = "unsupported"
                issues.append(Issue(error.reason, error.message, view.name, node.op_type))
            record.reason_code, record.message = error.reason.value, error.message
            for out in node.output:
                builder.values.pop(out, None)
    custom_nodes = [r.name for r in records if r.dispatch == "custom"]
    policy = policy_summary(options, custom_nodes)
    records = NodeRecords(_records_for_removed(prepared, records), policy)
    outputs = []
    for name in prepared.outputs:
        t = builder.value(name)
        if t is None:
            continue
        if t.is_const or t in inputs:
            copy = Tensor(builder.unique(name), t.shape, t.dtype)
            builder.operators.append(Operator("RESHAPE", [t, Tensor(builder.unique(f"{name}/shape"),
                                              (t.rank,), np.int32, data=np.array(t.shape, np.int32))],
                                              [copy], origin=name))
            t = copy
        outputs.append(t)
    out_layout = {t_name: {"layout": "onnx", "perm_from_onnx": None,
                           "shape": list(prepared.shapes.get(t_name) or [])} for t_name in prepared.outputs}
    model = Model([Subgraph(inputs, outputs, builder.operators)],
                  signature_inputs=list(prepared.inputs), signature_outputs=list(prepared.outputs))
    return LoweredGraph(model, records, issues, {"inputs": in_layout, "outputs": out_layout}, policy)


def _check_dtype(entry, ctx: LowerContext) -> None:
    i = entry.dtype_input
    if i is None or not ctx.has_input(i):
        return
    dtype = ctx.input(i).dtype.name
    if dtype not in entry.dtypes:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                       f"input {i} has dtype {dtype}; this lowering accepts {', '.join(entry.dtypes)}")


def _check_static_inputs(entry, ctx: LowerContext) -> None:
    """Lowerings compute with static shapes; a data-dependent input shape needs an opt-in."""
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
