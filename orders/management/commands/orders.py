"""Operator tasks of the orders app.

``orders expire``            cancel pending orders whose reservation ran out (stock back)
``orders deliveries``        send every due order-event delivery (retries, lost fan-outs)
``orders redeliver DLV_ID``  send one delivery again now
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders import tasks
from orders.models import EventDelivery
from orders.services.cancel import orders_expire
from orders.services.events import delivery_attempt, delivery_redeliver


class Command(BaseCommand):
    help = "Expires card reservations, sends due order-event deliveries, or redelivers one."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("expire", help="cancel pending orders whose reservation ran out")
        sub.add_parser("deliveries", help="send the order-event deliveries that are due")
        redeliver = sub.add_parser("redeliver", help="send one delivery again now")
        redeliver.add_argument("delivery_id")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "expire":
            canceled = orders_expire()
            self.stdout.write(f"{canceled} expired orders canceled")
        elif action == "deliveries":
            due = tasks.deliveries_retry_due()
            self.stdout.write(f"{due} due deliveries sent")
        else:
            delivery_id = options["delivery_id"]
            if not EventDelivery.objects.filter(pk=delivery_id).exists():
                raise CommandError(f"No delivery {delivery_id}.")
            delivery_redeliver(delivery_id=delivery_id, actor=None, enqueue=False)
            delivery_attempt(delivery_id=delivery_id)
            delivery = EventDelivery.objects.get(pk=delivery_id)
            self.stdout.write(f"{delivery.pk}: {delivery.status} after {delivery.attempts} attempts")
