"""``manage.py setup_stripe``: dj-stripe's rows and the webhook endpoint, idempotently."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments import gateway
from payments.services.setup import stripe_setup


class Command(BaseCommand):
    help = (
        "Prepares dj-stripe (API key row, owner account against the local fake, webhook endpoint with "
        "STRIPE_WEBHOOK_SECRET), registers the endpoint with the local fake, prints the webhook URL path last."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the fake Stripe server reaches this platform (default http://127.0.0.1:8000).",
        )
        parser.add_argument(
            "--no-register", action="store_true", help="Do not register the endpoint with the local fake."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            endpoint, path = stripe_setup(base_url=options["base_url"], register=not options["no_register"])
        except Exception as exc:  # a fake server that is not running, a database that is not migrated
            raise CommandError(f"setup_stripe failed: {exc}") from exc
        if gateway.using_local_fake() and not options["no_register"]:
            self.stderr.write(f"registered webhook {endpoint.id} with the fake Stripe server at {endpoint.url}")
        self.stdout.write(path)
