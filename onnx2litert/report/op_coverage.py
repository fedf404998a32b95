"""The op-coverage report: every ONNX node, how it was dispatched, and why not if not."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from ..errors import Issue
from ..lower.driver import NodeRecord
from ..lower.registry import Registry


def op_coverage_report(model_name: str, opset: int | None, records: list[NodeRecord],
                       issues: list[Issue], registry: Registry, options_summary: dict,
                       custom_op_policy: dict | None = None) -> dict:
    """Build the report dict (written as ``<stem>_op_coverage_report.json``).

    ``custom_op_policy`` is ``LoweredGraph.custom_op_policy``; when omitted it is taken from the
    records (``NodeRecords.custom_op_policy``) or, failing that, from ``options_summary``.
    """
    nodes = [asdict(r) for r in records]
    dispatch = Counter(r.dispatch for r in records)
    reasons = Counter(r.reason_code for r in records if r.reason_code)
    for issue in issues:  # model-level problems (no node)
        if issue.node_name is None:
            reasons[issue.reason.value] += 1
    # Blocked nodes (behind an unsupported one) are not judged: they count neither way.
    considered = [r for r in records if r.dispatch not in ("constant_folded", "removed", "blocked")]
    converted = [r for r in considered if r.dispatch in ("builtin", "custom")]
    custom = [r.name for r in records if r.dispatch == "custom"]
    policy = _policy_block(custom_op_policy, records, options_summary, custom)
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
            "custom_nodes": len(custom),
            "coverage_ratio": (len(converted) / len(considered)) if considered else 1.0,
            "dispatch_counts": dict(sorted(dispatch.items())),
            "conversion_ok": not issues,
        },
        "custom_op_policy": policy,
        "reason_counts": dict(sorted(reasons.items())),
        "issues": [{"reason_code": i.reason.value, "node": i.node_name, "op_type": i.op_type,
                    "message": i.message} for i in issues],
        "ops": {k: {"count": v["count"], "dispatch": dict(sorted(v["dispatch"].items()))}
                for k, v in sorted(by_op.items())},
        "nodes": nodes,
        "registry_dtype_claims": registry.claims(),
    }


def _policy_block(explicit: dict | None, records: list[NodeRecord], options_summary: dict,
                  custom: list[str]) -> dict:
    """``{"allow_custom_ops", "allowlist", "custom_nodes"}``: the custom-op policy in force."""
    policy = explicit if explicit is not None else getattr(records, "custom_op_policy", None)
    if policy is None:
        policy = {"allow_custom_ops": bool(options_summary.get("flatbuffer_direct_allow_custom_ops", False)),
                  "allowlist": list(options_summary.get("flatbuffer_direct_custom_op_allowlist", ()))}
    return {"allow_custom_ops": bool(policy.get("allow_custom_ops", False)),
            "allowlist": list(policy.get("allowlist", ())),
            "custom_nodes": list(custom)}
