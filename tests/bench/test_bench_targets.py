"""Issue 18's targets as the bench applies them to a run's figures, and the table that shows them."""

from __future__ import annotations

from typing import Any

from bench.report import apply_targets, table
from bench.scenarios import TARGETS


def _load(ok_per_s: float, p99: float = 50.0) -> dict[str, Any]:
    return {
        "status": "ok",
        "requests_per_s": ok_per_s,
        "ok_per_s": ok_per_s,
        "latency_ms": {"p50": 10.0, "p95": 20.0, "p99": p99},
        "errors_by_status": {},
    }


def _run(**scenarios: dict[str, Any]) -> dict[str, Any]:
    results = {"scenarios": scenarios}
    apply_targets(results, TARGETS)
    return results


def test_targets_when_spread_is_fast_enough_against_ping_then_met():
    results = _run(baseline_django_ping=_load(1000), purchase_spread=_load(420, p99=120))
    spread = results["scenarios"]["purchase_spread"]
    assert spread["baseline"] == "baseline_django_ping"
    assert spread["ratio_to_baseline"] == 0.42
    assert spread["target"]["met"] is True


def test_targets_when_spread_misses_one_bound_then_not_met():
    slow_tail = _run(baseline_django_ping=_load(1000), purchase_spread=_load(420, p99=150))
    assert slow_tail["scenarios"]["purchase_spread"]["target"]["met"] is False
    below_ratio = _run(baseline_django_ping=_load(1300), purchase_spread=_load(420, p99=100))
    assert below_ratio["scenarios"]["purchase_spread"]["ratio_to_baseline"] == 0.32
    assert below_ratio["scenarios"]["purchase_spread"]["target"]["met"] is False
    too_few = _run(baseline_django_ping=_load(1000), purchase_spread=_load(390, p99=100))
    assert too_few["scenarios"]["purchase_spread"]["target"]["met"] is False


def test_targets_when_the_baseline_did_not_run_then_met_is_unknown():
    results = _run(purchase_spread=_load(420, p99=100))
    assert results["scenarios"]["purchase_spread"]["ratio_to_baseline"] is None
    assert results["scenarios"]["purchase_spread"]["target"]["met"] is None


def test_targets_when_hot_and_catalog_are_compared_then_against_spread_and_ping():
    results = _run(
        baseline_django_ping=_load(1000),
        catalog_read=_load(990),
        purchase_spread=_load(400),
        purchase_hot=_load(370),
    )
    scenarios = results["scenarios"]
    assert scenarios["catalog_read"]["ratio_to_baseline"] == 0.99
    assert scenarios["catalog_read"]["target"]["met"] is False
    assert scenarios["purchase_hot"]["baseline"] == "purchase_spread"
    assert scenarios["purchase_hot"]["ratio_to_baseline"] == 0.93
    assert scenarios["purchase_hot"]["target"]["met"] is True


def test_targets_when_webhooks_are_fast_but_not_applied_once_then_not_met():
    webhook = {**_load(350), "accepted_per_s": 350, "target": {"met": False}}
    results = _run(webhook_ingest=webhook)
    assert results["scenarios"]["webhook_ingest"]["target"]["met"] is False
    webhook = {**_load(350), "accepted_per_s": 350, "target": {"met": True}}
    assert _run(webhook_ingest=webhook)["scenarios"]["webhook_ingest"]["target"]["met"] is True


def test_targets_when_growth_figures_are_in_then_judged_on_their_bounds():
    results = _run(
        ledger_verify_10m={"status": "ok", "exit": 0, "seconds": 31.0, "seconds_at_full_size": 31.0},
        cursor_pages={"status": "ok", "worst_deep_to_first_p50": 1.4, "met": True},
        memory_growth={"status": "ok", "worst_growth_pct": 12.5, "met": False},
        purchase_concurrency={**_load(300), "rows": {"1 clients": _load(50), "128 clients": _load(280)}},
    )
    scenarios = results["scenarios"]
    assert scenarios["ledger_verify_10m"]["target"]["met"] is False
    assert scenarios["cursor_pages"]["target"]["met"] is True
    assert scenarios["memory_growth"]["target"]["met"] is False
    assert scenarios["purchase_concurrency"]["target"] == {"text": "none set", "met": None}


def test_targets_when_memory_was_not_measured_to_the_count_then_met_is_unknown():
    short = {"status": "ok", "worst_growth_pct": 1.5, "met": None, "stopped_short": True}
    assert _run(memory_growth=short)["scenarios"]["memory_growth"]["target"]["met"] is None


def test_table_when_scenarios_have_rows_then_each_row_and_verdict_is_printed():
    results = _run(
        baseline_django_ping=_load(1000),
        purchase_spread=_load(420, p99=120),
        purchase_concurrency={**_load(300), "rows": {"1 clients": _load(50), "128 clients": _load(280)}},
        missing_one={"status": "missing", "reason": "not routed yet"},
    )
    printed = table(results)
    lines = printed.splitlines()
    assert lines[0].split()[:2] == ["scenario", "status"]
    spread = next(line for line in lines if line.startswith("purchase_spread"))
    assert "0.42 ping" in spread and " yes" in spread
    assert any(line.strip().startswith(". 128 clients") for line in lines)
    assert any("not routed yet" in line for line in lines)
