from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from wallets.ledger import wallet_adjust, wallet_id_for


def fund(user, amount: int):
    """Credits a user's wallet through the staff adjustment service (test setup only)."""
    account_id = wallet_id_for(user_id=user.pk, role=user.role)
    return wallet_adjust(account_id=account_id, amount=amount, reason="test funding", actor=None)


def verify() -> tuple[int, str]:
    """Runs ``manage.py ledger_verify``; returns (exit code, output)."""
    from io import StringIO

    out = StringIO()
    try:
        call_command("ledger_verify", "--progress", "never", stdout=out, stderr=StringIO())
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


@pytest.fixture
def funded_customer(customer):
    fund(customer, 10_000)
    return customer
