"""The op-coverage report: every ONNX node, how it was dispatched, and why not if not."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from ..errors import Issue
from ..lower.driver import NodeRecord
from ..lower.registry import Registry


def op_coverage_report(model_name: str, opset: int | None, records: list[NodeRecord],
                       issues: list[Issue], registry: Registry, options_summary: dict) -> dict:
    """Build the report dict (written as ``<stem>_op_coverage_report.json``)."""
    nodes = [asdict(r) for r in records]
    dispatch = Counter(r.dispatch for r in records)
    reasons = Counter(r.reason_code for r in records if r.reason_code)
    for issue in issues:  # model-level problems (no node)
        if issue.node_name is None:
            reasons[issue.reason.value] += 1
    considered = [r for r in records if r.dispatch not in ("constant_folded", "removed")]
    converted = [r for r in considered if r.dispatch in ("builtin", "custom")]
    by_op: dict[str, dict] = {}
    for r in records:
        row = by_op.setdefault(r.op_type, {"count": 0, "dispatch": Counter()})
        row["count"] += 1
        row["dispatch"][r.dispatch] += 1
    return {
        "schema": "onnx2litert.op_coverage/1",
        "model": model_name,
        "opset": opset,
        "options": options_summary,
        "summary": {
            "total_nodes": len(records),
            "lowered_nodes": len(considered),
            "converted_nodes": len(converted),
            "coverage_ratio": (len(converted) / len(considered)) if considered else 1.0,
            "dispatch_counts": dict(sorted(dispatch.items())),
            "conversion_ok": not issues,
        },
        "reason_counts": dict(sorted(reasons.items())),
        "issues": [{"reason_code": i.reason.value, "node": i.node_name, "op_type": i.op_type,
                    "message": i.message} for i in issues],
        "ops": {k: {"count": v["count"], "dispatch": dict(sorted(v["dispatch"].items()))}
                for k, v in sorted(by_op.items())},
        "nodes": nodes,
        "registry_dtype_claims": registry.claims(),
    }
