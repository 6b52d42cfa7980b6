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


def _dig(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


_SHORT = {"baseline_django_ping": "ping", "baseline_sql_hot_row": "sql", "purchase_spread": "spread"}


def apply_targets(results: dict[str, Any], targets: dict[str, dict[str, Any]]) -> None:
    """Sets each scenario's ``ratio_to_baseline``, ``baseline`` and ``target`` ({text, met, ...}) from
    ``targets`` (``bench.scenarios.TARGETS``); ``met`` is None when a figure it needs is missing (its
    baseline did not run). Scenarios with no target get ``{"text": "none set", "met": None}``."""
    scenarios = results["scenarios"]
    for name, fig in scenarios.items():
        if fig.get("status") in ("missing", "not run", "error"):
            continue
        spec = targets.get(name)
        own = fig.get("target") if isinstance(fig.get("target"), dict) else {}
        if spec is None:
            fig["target"] = {"text": "none set", "met": None}
            continue
        texts: list[str] = []
        verdicts: list[bool | None] = []
        if "ratio" in spec:
            field, base_name, base_field, least = spec["ratio"]
            value, base = _dig(fig, field), _dig(scenarios.get(base_name, {}), base_field)
            ratio = round(value / base, 2) if value and base else None
            fig["ratio_to_baseline"] = ratio
            fig["baseline"] = base_name
            texts.append(f">={least}x{_SHORT.get(base_name, base_name)}")
            verdicts.append(None if ratio is None else ratio >= least)
        for kind, sign in (("min", ">="), ("max", "<="), ("max_exclusive", "<")):
            for field, bound in spec.get(kind, {}).items():
                value = _dig(fig, field)
                texts.append(f"{field.split('.')[-1]}{sign}{bound}")
                if value is None:
                    verdicts.append(None)
                elif kind == "min":
                    verdicts.append(value >= bound)
                elif kind == "max":
                    verdicts.append(value <= bound)
                else:
                    verdicts.append(value < bound)
        check = spec.get("own")
        if check == "exit_zero":
            verdicts.append(fig.get("exit") == 0)
        elif check == "target.met":
            verdicts.append(bool(own.get("met")))
            texts.append("each applied once")
        elif check:
            verdicts.append(None if fig.get(check) is None else bool(fig[check]))
        met = False if False in verdicts else (None if None in verdicts else True)
        fig["target"] = {"text": " ".join(texts), "met": met, **spec, "scenario_own": own or None}


def _headline(name: str, fig: dict[str, Any]) -> str:
    """The figure that says most about a scenario with no request rate of its own."""
    if "postings_per_s" in fig or name.startswith("ledger_verify"):
        rate = fig.get("postings_per_s") or (
            round(fig["ledger_postings"] / fig["checks_seconds"]) if fig.get("checks_seconds") else None
        )
        text = f"{_fmt(fig.get('seconds'))} s, {fig.get('ledger_postings', 0):,} postings"
        if rate:
            text += f", {rate:,}/s"
        if fig.get("growth_exponent") is not None:
            text += f", time ~ n^{fig['growth_exponent']}"
        return text
    if "levels" in fig and "best_clients" in fig:
        most = max(fig["levels"], key=int)
        return (
            f"best at {fig['best_clients']} clients; {most} clients: {_fmt(fig['rate_at_most_clients_to_best'])}x best"
        )
    if "worst_deep_to_first_p50" in fig:
        return f"deep/first p50 worst {_fmt(fig['worst_deep_to_first_p50'])}x"
    if "deep_to_first_p50" in fig:
        return f"deep/first p50 {_fmt(fig['deep_to_first_p50'])}x"
    if "worst_growth_pct" in fig:
        note = ", recycling off" if fig.get("recycling_off_for_the_measurement") else ""
        if fig.get("stopped_short"):
            note += (
                f", stopped short: {fig['requests_after_second_half']:,} of {2 * fig['requests_per_half']:,} requests"
            )
        return f"RSS growth worst {_fmt(fig['worst_growth_pct'])} %{note}"
    if "growth_pct" in fig:
        steps = (fig.get(k) for k in ("rss_mib_after_warmup", "rss_mib_after_first_half", "rss_mib_after_second_half"))
        return f"RSS {' > '.join(_fmt(v) for v in steps)} MiB, {fig['growth_pct']:+.2f} %"
    return ""


def _met(target: dict[str, Any]) -> str:
    if not target:
        return ""
    if target.get("met") is None:
        return "-" if target.get("text") == "none set" else "n/a"
    return "yes" if target["met"] else "NO"


def table(results: dict[str, Any]) -> str:
    """One line per scenario, the figures that matter side by side; a scenario's ``rows`` (levels, pages,
    processes) get a line each under it."""
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
        "met",
        "cpu ms/req",
        "cpu-bound/s",
        "figure",
    )
    rows: list[tuple[str, ...]] = [header]

    def line(label: str, fig: dict[str, Any], name: str) -> tuple[str, ...]:
        lat = fig.get("latency_ms", {})
        errors = ",".join(f"{k}x{v}" for k, v in fig.get("errors_by_status", {}).items()) or "0"
        ratio = fig.get("ratio_to_baseline")
        baseline = _SHORT.get(fig.get("baseline", ""), fig.get("baseline", ""))
        target = fig.get("target") or {}
        cpu = fig.get("cpu", {})
        return (
            label,
            fig.get("status", ""),
            _fmt(fig.get("requests_per_s")),
            _fmt(fig.get("ok_per_s")),
            _fmt(lat.get("p50")),
            _fmt(lat.get("p95")),
            _fmt(lat.get("p99")),
            errors if "errors_by_status" in fig else "",
            _fmt(fig.get("sql_queries_per_request")),
            f"{_fmt(ratio)} {baseline}".strip() if ratio is not None else "-",
            str(target.get("text", "")),
            _met(target),
            _fmt(cpu.get("total_cpu_ms_per_request")),
            _fmt(cpu.get("cpu_bound_ceiling_per_s")),
            _headline(name, fig),
        )

    for name, fig in results["scenarios"].items():
        if fig.get("status") in ("missing", "not run", "error"):
            reason = fig.get("reason") or fig.get("error") or ""
            rows.append((name, fig["status"], *([""] * 8), str(reason)[:60], "", "", "", ""))
            continue
        rows.append(line(name, fig, name))
        sub = fig.get("rows") or {}
        for label, sub_fig in sub.items():
            rows.append(line(f"  . {label}", sub_fig, name))
        if name == "memory_growth":
            for proc in fig.get("processes", []):
                rows.append(line(f"  . {proc['group']} {proc['pid']}", proc, name))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
