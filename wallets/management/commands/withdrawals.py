"""Back-office withdrawals: ``withdrawals list``, ``withdrawals approve ID``, ``withdrawals reject ID --reason …``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from config.errors import DomainError
from config.money import Money
from wallets import selectors
from wallets.withdrawals import withdrawal_approve, withdrawal_reject


class Command(BaseCommand):
    help = "Lists pending withdrawals, or approves (pays) or rejects (releases) one."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="pending withdrawals, oldest first")
        approve = sub.add_parser("approve", help="pay a pending withdrawal out")
        approve.add_argument("withdrawal_id")
        approve.add_argument("--actor", help="email of the staff member deciding (recorded in the audit trail)")
        reject = sub.add_parser("reject", help="release a pending withdrawal back to the wallet")
        reject.add_argument("withdrawal_id")
        reject.add_argument("--reason", required=True)
        reject.add_argument("--actor", help="email of the staff member deciding (recorded in the audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list()
            return
        actor = self._actor(options.get("actor"))
        try:
            if action == "approve":
                withdrawal = withdrawal_approve(withdrawal_id=options["withdrawal_id"], actor=actor)
            else:
                withdrawal = withdrawal_reject(
                    withdrawal_id=options["withdrawal_id"], actor=actor, reason=options["reason"]
                )
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"{withdrawal.pk} {withdrawal.status}"))

    def _actor(self, email: str | None) -> User | None:
        if not email:
            return None
        actor = User.objects.filter(email=email.strip().lower(), is_staff=True).first()
        if actor is None:
            raise CommandError(f"No staff user {email}.")
        return actor

    def _list(self) -> None:
        pending = list(selectors.withdrawals_pending())
        for withdrawal in pending:
            amount = Money(withdrawal.amount, withdrawal.currency)
            self.stdout.write(
                f"{withdrawal.pk}  {withdrawal.created_at:%Y-%m-%d %H:%M}  {withdrawal.user.email}  {amount}"
            )
        self.stdout.write(f"{len(pending)} pending")
