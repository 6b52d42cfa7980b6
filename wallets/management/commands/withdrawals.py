"""Back-office withdrawals: ``withdrawals list``, ``withdrawals approve|reject ID --actor EMAIL --reason …``.

The decisions go through the same services as the admin and the staff API: Finance only, four eyes at the threshold.
"""

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
        sub.add_parser("list", help="withdrawals awaiting a decision, oldest first")
        for name, text in (("approve", "approve (pay out, or give the first of two approvals)"),
                           ("reject", "release an undecided withdrawal back to the wallet")):  # fmt: skip
            decide = sub.add_parser(name, help=text)
            decide.add_argument("withdrawal_id")
            decide.add_argument("--reason", required=True)
            decide.add_argument("--actor", required=True, help="email of the Finance staff user deciding")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list()
            return
        actor = self._actor(options["actor"])
        try:
            if action == "approve":
                withdrawal = withdrawal_approve(
                    withdrawal_id=options["withdrawal_id"], actor=actor, reason=options["reason"]
                )
            else:
                withdrawal = withdrawal_reject(
                    withdrawal_id=options["withdrawal_id"], actor=actor, reason=options["reason"]
                )
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"{withdrawal.pk} {withdrawal.status}"))

    def _actor(self, email: str) -> User:
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
                f"  {withdrawal.status}"
            )
        self.stdout.write(f"{len(pending)} awaiting a decision")
