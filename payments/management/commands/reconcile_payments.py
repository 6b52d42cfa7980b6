"""``manage.py reconcile_payments``: settle card payments and refunds left in flight, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.services.reconcile import payments_reconcile


class Command(BaseCommand):
    help = (
        "Asks Stripe for the truth about card payments and refunds still in flight (what the beat task "
        "payments.tasks.reconcile_payments does every 5 minutes) and applies it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-age",
            type=int,
            default=None,
            help="Only what has been in flight at least this many seconds (default STRIPE_RECONCILE_AFTER_SECONDS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        counts = payments_reconcile(min_age_seconds=options["min_age"])
        self.stdout.write(
            f"payments settled: {counts['payments']}, refunds settled: {counts['refunds']}, errors: {counts['errors']}"
        )
