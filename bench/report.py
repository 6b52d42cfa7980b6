"""Figures from load records, the printed table and the JSON file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import LoadResult, Record


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summarize(records: list[Record], wall: float, *, ok_statuses: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
    """requests/s, latency percentiles (ms), errors by status and SQL queries per request."""
    latencies = sorted(r.latency for r in records)
    ok = [r for r in records if r.status in ok_statuses]
    errors = Counter(str(r.status) for r in records if r.status not in ok_statuses)
    error_codes = Counter(f"{r.status}:{r.code}" for r in records if r.status not in ok_statuses)
    with_queries = [r.queries for r in records if r.queries >= 0]
    ok_queries = [r.queries for r in ok if r.queries >= 0]
    wall = wall or 1e-9
    return {
        "requests": len(records),
        "ok": len(ok),
        "seconds": round(wall, 3),
        "requests_per_s": round(len(records) / wall, 1),
        "ok_per_s": round(len(ok) / wall, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 2),
            "p95": round(percentile(latencies, 95) * 1000, 2),
            "p99": round(percentile(latencies, 99) * 1000, 2),
            "max": round((latencies[-1] if latencies else 0) * 1000, 2),
        },
        "errors_by_status": dict(sorted(errors.items())),
        "errors_by_code": dict(sorted(error_codes.items())),
        "sql_queries_per_request": round(sum(with_queries) / len(with_queries), 2) if with_queries else None,
        "sql_queries_per_ok_request": round(sum(ok_queries) / len(ok_queries), 2) if ok_queries else None,
        "server_5xx": sum(1 for r in records if r.status >= 500),
        "no_response": sum(1 for r in records if r.status == 0),
    }


def summarize_load(result: LoadResult, **kwargs: Any) -> dict[str, Any]:
    figures = summarize(result.records, result.wall, **kwargs)
    figures["generator"] = {
        "name": result.generator,
        "processes": result.workers,
        "connections": result.concurrency,
        "cpu_seconds": round(result.worker_cpu, 2),
        # Share of one core the generator used on average: near 1.0 per process means it was the bottleneck.
        "cores_used": round(result.worker_cpu / (result.wall or 1e-9), 2),
        **result.details,
    }
    return figures


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    """One line per scenario, the figures that matter side by side."""
    header = (
        "scenario",
        "status",
        "req/s",
        "ok/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "sql/req",
        "ratio",
        "target",
        "cpu ms/req",
        "cpu-bound/s",
    )
    rows = [header]
    for name, fig in results["scenarios"].items():
        if fig.get("status") == "missing":
            rows.append((name, "missing", "", "", "", "", "", "", "", "", fig.get("reason", "")[:60], "", ""))
            continue
        lat = fig.get("latency_ms", {})
        errors = ",".join(f"{k}x{v}" for k, v in fig.get("errors_by_status", {}).items()) or "0"
        ratio = fig.get("ratio_to_baseline")
        target = fig.get("target", {})
        cpu = fig.get("cpu", {})
        rows.append(
            (
                name,
                fig.get("status", ""),
                _fmt(fig.get("requests_per_s")),
                _fmt(fig.get("ok_per_s")),
                _fmt(lat.get("p50")),
                _fmt(lat.get("p95")),
                _fmt(lat.get("p99")),
                errors,
                _fmt(fig.get("sql_queries_per_request")),
                _fmt(ratio),
                ("met" if target.get("met") else "NOT met") if target else "",
                _fmt(cpu.get("total_cpu_ms_per_request")),
                _fmt(cpu.get("cpu_bound_ceiling_per_s")),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
