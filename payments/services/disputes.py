"""Chargebacks: opening a dispute (the holder's money frozen) and resolving it (won: released; lost: paid).

Locks: the owner (the order, through ``payments.hooks``) → Payment → Dispute → wallet account (``ledger_post``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.roles import Perm, staff_require
from accounts.services import audit_record
from config.db import retry_on_contention
from config.errors import InvalidStatus, NotFound, ValidationFailed
from payments.locks import lock_dispute, lock_payment_with_owner
from payments.models import Dispute, DisputeStatus
from wallets.ledger import Leg, ledger_post, platform_account_id
from wallets.locks import lock_accounts
from wallets.models import AccountKind, EntryKind


@retry_on_contention()
def dispute_open(*, payment_id: str, stripe_dispute_id: str, amount: int, reason: str = "") -> Dispute:
    """Records a chargeback and freezes the holder's money (once per Stripe dispute).

    The owner's hooks name the holder and how much (an order: the merchant's
    net; a deposit: its amount). Ledger ``dispute_hold``: holder wallet -held
    (held +held), platform disputes +held; a holder with less has what there is
    held (``Dispute.held_amount``). Locks: Order → Payment → wallet account.
    """

    with transaction.atomic():
        payment, owner, hooks = lock_payment_with_owner(payment_id)
        existing = Dispute.objects.filter(stripe_dispute_id=stripe_dispute_id).first()
        if existing is not None:
            return existing
        terms = hooks.dispute_terms(payment, owner)
        holder, wanted = terms.holder, terms.wanted
        dispute = Dispute(
            payment=payment,
            stripe_dispute_id=stripe_dispute_id,
            amount=min(amount, payment.amount) if amount > 0 else payment.amount,
            currency=payment.currency,
            reason=reason[:64],
        )
        dispute.save(force_insert=True)
        wallet = lock_accounts([holder])[holder]
        held = max(0, min(wanted, wallet.balance))
        if held:
            ledger_post(
                kind=EntryKind.DISPUTE_HOLD,
                currency=payment.currency,
                reference=dispute.pk,
                idempotency_key=f"dispute-hold:{dispute.pk}",
                memo=f"dispute {stripe_dispute_id} on payment {payment.pk}",
                legs=[
                    Leg(holder, -held, held=held),
                    Leg(platform_account_id(AccountKind.DISPUTES, payment.currency), held),
                ],
            )
            dispute.held_amount = held
            dispute.save(update_fields=["held_amount"])
    return dispute


@retry_on_contention()
def dispute_resolve(*, dispute_id: str, outcome: str, actor: User | None) -> Dispute:
    """Ends an open dispute: ``won``/``warning_closed`` give the held money back; ``lost`` lets the amount go.

    Lost: the amount leaves through card clearing, paid by what was held, the
    platform fee of the order (``DisputeTerms.fee``) and, for any shortfall, the platform's
    adjustments account; the owner's ``dispute_lost`` hook then runs (an order's goods are revoked).
    Audited. Locks: Order → Payment → Dispute → wallet account.
    """

    if actor is not None:  # None: Stripe closed it (its event); a person must be allowed to
        staff_require(actor, Perm.RESOLVE_DISPUTES)
    if outcome not in (DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED):
        raise ValidationFailed("Outcome must be won, lost or warning_closed.", param="outcome")
    payment_id = Dispute.objects.values_list("payment_id", flat=True).filter(pk=dispute_id).first()
    if payment_id is None:
        raise NotFound("No such dispute.")
    with transaction.atomic():
        payment, owner, hooks = lock_payment_with_owner(payment_id)
        dispute = lock_dispute(dispute_id)
        if dispute.status != DisputeStatus.OPEN:
            if dispute.status == outcome:
                return dispute
            raise InvalidStatus(f"Dispute {dispute.pk} is already {dispute.status}.")
        terms = hooks.dispute_terms(payment, owner)
        holder = terms.holder
        held = dispute.held_amount
        currency = dispute.currency
        disputes_account = platform_account_id(AccountKind.DISPUTES, currency)
        if outcome in (DisputeStatus.WON, DisputeStatus.WARNING_CLOSED):
            if held:
                ledger_post(
                    kind=EntryKind.DISPUTE_RELEASED,
                    currency=currency,
                    reference=dispute.pk,
                    idempotency_key=f"dispute-released:{dispute.pk}",
                    memo=f"dispute {dispute.stripe_dispute_id} {outcome}",
                    legs=[Leg(holder, held, held=-held), Leg(disputes_account, -held)],
                )
        else:
            legs = [Leg(platform_account_id(AccountKind.CARD_CLEARING, currency), dispute.amount)]
            if held:
                legs += [Leg(holder, 0, held=-held), Leg(disputes_account, -held)]
            rest = dispute.amount - held
            fee_part = min(rest, terms.fee)
            if fee_part > 0:
                legs.append(Leg(platform_account_id(AccountKind.PLATFORM_FEES, currency), -fee_part))
            if rest - fee_part > 0:
                legs.append(Leg(platform_account_id(AccountKind.ADJUSTMENTS, currency), -(rest - fee_part)))
            ledger_post(
                kind=EntryKind.DISPUTE_LOST,
                currency=currency,
                reference=dispute.pk,
                idempotency_key=f"dispute-lost:{dispute.pk}",
                memo=f"dispute {dispute.stripe_dispute_id} lost",
                legs=legs,
            )
        dispute.status = outcome
        dispute.resolved_by = actor
        dispute.resolved_at = timezone.now()
        dispute.save(update_fields=["status", "resolved_by", "resolved_at"])
        if outcome == DisputeStatus.LOST and hooks.dispute_lost is not None:
            hooks.dispute_lost(payment, owner)  # only an open dispute gets here: once per dispute
        audit_record(
            actor=actor,
            action=f"dispute.{outcome}",
            object_type="dispute",
            object_id=dispute.pk,
            data={"payment": payment.pk, "amount": dispute.amount, "held_amount": held, "currency": currency},
        )
    return dispute
