"""The scenarios, by name, for ``bench.cli``. Each returns its figures, or raises Missing when its endpoint has
not landed. They live in ``bench.purchases``, ``bench.stripe_scenarios``, ``bench.growth`` and ``bench.memory``;
the shared pieces in ``bench.core``. ``TARGETS`` are issue 18's targets, applied to the figures by
``bench.report.apply_targets`` once the run is over, so every ratio is taken against the same run's baseline.
"""

from __future__ import annotations

from typing import Any

from bench.core import Bench, Missing
from bench.growth import cursor_pages, ledger_verify_10m, purchase_concurrency
from bench.memory import memory_growth
from bench.purchases import (
    baseline_django_ping,
    baseline_sql_hot_row,
    catalog_read,
    check_purchases,
    purchase_codes,
    purchase_hot,
    purchase_spread,
    seed_catalog,
)
from bench.stripe_scenarios import card_purchase, ledger_verify_1m, webhook_ingest

# Per scenario: "ratio": (its figure, the scenario it is compared with, that one's figure, the least ratio);
# "min" / "max": {figure: bound} ("latency_ms.p99" reaches into a dict); "own": the scenario's own verdict
# (``target.met`` or ``met`` in its figures) must hold too, e.g. every webhook event applied once.
TARGETS: dict[str, dict[str, Any]] = {
    "catalog_read": {"ratio": ("ok_per_s", "baseline_django_ping", "requests_per_s", 1.0)},
    "purchase_spread": {
        "ratio": ("ok_per_s", "baseline_django_ping", "requests_per_s", 0.35),
        "min": {"ok_per_s": 400},
        "max_exclusive": {"latency_ms.p99": 150},
    },
    "purchase_codes": {"ratio": ("ok_per_s", "purchase_spread", "ok_per_s", 0.8)},
    "purchase_hot": {"ratio": ("ok_per_s", "purchase_spread", "ok_per_s", 0.9)},
    "webhook_ingest": {"min": {"accepted_per_s": 300}, "own": "target.met"},
    "ledger_verify_1m": {"max": {"seconds": 5}, "own": "exit_zero"},
    "ledger_verify_10m": {"max": {"seconds_at_full_size": 30}, "own": "exit_zero"},
    "cursor_pages": {"max": {"worst_deep_to_first_p50": 2.0}, "own": "met"},
    "memory_growth": {"max": {"worst_growth_pct": 10.0}, "own": "met"},
}

__all__ = [
    "TARGETS",
    "Bench",
    "Missing",
    "baseline_django_ping",
    "baseline_sql_hot_row",
    "card_purchase",
    "catalog_read",
    "check_purchases",
    "cursor_pages",
    "ledger_verify_1m",
    "ledger_verify_10m",
    "memory_growth",
    "purchase_codes",
    "purchase_concurrency",
    "purchase_hot",
    "purchase_spread",
    "seed_catalog",
    "webhook_ingest",
]
