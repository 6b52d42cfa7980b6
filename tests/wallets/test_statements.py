"""The wallet statement reads the merchant's wallet, never the incoming account beside it."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.factories import MerchantFactory
from wallets.ledger import incoming_id_for, wallet_adjust, wallet_id_for
from wallets.models import AccountKind
from wallets.statements import wallet_account

pytestmark = pytest.mark.django_db


def test_wallet_account_when_merchant_also_has_an_incoming_account_then_the_wallet() -> None:
    merchant = MerchantFactory.create()
    # The incoming account is opened first (a card sale while income waits), the wallet afterwards.
    incoming = incoming_id_for(merchant_id=merchant.pk, currency=settings.PLATFORM_CURRENCY)
    wallet = wallet_id_for(user_id=merchant.pk, role=merchant.role)
    wallet_adjust(account_id=wallet, amount=1_000, reason="t", actor=None)

    account = wallet_account(merchant)

    assert account is not None and account.pk == wallet != incoming
    assert account.kind == AccountKind.MERCHANT and account.balance == 1_000
