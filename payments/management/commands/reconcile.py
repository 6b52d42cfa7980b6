"""``manage.py reconcile [--since DAY|DATETIME]``: three-way reconciliation with Stripe, with a summary table.

Exit 0 when everything matched or was fixed, 1 while an unexplained mismatch remains (the run is kept either way).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from payments.models import ReconcileOutcome
from payments.services.reconcile_run import reconcile_run


def _since(value: str | None) -> datetime:
    if not value:
        return timezone.now() - timedelta(days=1)
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.min, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError("--since must be YYYY-MM-DD or an ISO 8601 datetime") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Matches payments, refunds, the card-clearing account and the applied events with Stripe; "
        "settles what it can prove."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            help=(
                "First day (UTC) to reconcile, YYYY-MM-DD, or the first moment, an ISO 8601 datetime "
                "(naive: UTC); default: the last 24 h."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        terminal = sys.stderr.isatty()

        def progress(items: Iterable[Any], label: str) -> Iterable[Any]:
            return tqdm(items, desc=label, disable=not terminal, file=sys.stderr)

        run = reconcile_run(since=_since(options["since"]), progress=progress)
        rows = [("matched", run.matched), ("fixed", run.fixed), ("mismatched", run.mismatched)]
        self.stdout.write(f"reconcile run {run.pk} since {run.since:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(f"{'outcome':<12}{'count':>8}")
        for name, count in rows:
            self.stdout.write(f"{name:<12}{count:>8}")
        for item in run.items.filter(outcome__in=[ReconcileOutcome.MISMATCHED, ReconcileOutcome.FIXED]):
            self.stdout.write(
                f"  {item.outcome:<10} {item.object_type:<14} {item.object_id:<32} {item.field}: "
                f"ours={item.ours} stripe={item.stripe} {item.note}"
            )
        if run.mismatched:
            raise CommandError(f"{run.mismatched} unexplained mismatch(es) remain", returncode=1)
