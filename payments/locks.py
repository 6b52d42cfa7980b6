"""Row locks of the payments app (global lock order: see ``wallets.locks``)."""

from __future__ import annotations

from payments.models import Dispute, Payment, Refund


def lock_payment(payment_id: str) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)


def lock_refund(refund_id: str) -> Refund:
    return Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)


def lock_dispute(dispute_id: str) -> Dispute:
    return Dispute.objects.select_for_update(of=("self",)).get(pk=dispute_id)
