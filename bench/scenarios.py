"""The scenarios, by name, for ``bench.cli``. Each returns its figures, or raises Missing when its endpoint has
not landed. They live in ``bench.purchases`` and ``bench.stripe_scenarios``; the shared pieces in ``bench.core``.
"""

from __future__ import annotations

from bench.core import Bench, Missing
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

__all__ = [
    "Bench",
    "Missing",
    "baseline_django_ping",
    "baseline_sql_hot_row",
    "card_purchase",
    "catalog_read",
    "check_purchases",
    "ledger_verify_1m",
    "purchase_codes",
    "purchase_hot",
    "purchase_spread",
    "seed_catalog",
    "webhook_ingest",
]
