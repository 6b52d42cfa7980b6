"""Back office for payments: read-only records; refunds, dispute resolution and event replay only through
confirmation pages with a reason; the dj-stripe mirrors staff use, read-only, and none of the others."""

from __future__ import annotations

from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from djstripe import models as djstripe_models

from accounts.request import signed_in_user
from accounts.roles import Perm, staff_can
from config.admin import (
    HistoryMixin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ReasonForm,
    admin_link,
    admin_links,
    confirm_money_action,
)
from config.audit import audit_reason
from config.errors import DomainError
from payments.models import (
    Dispute,
    DisputeStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    ReconcileItem,
    Refund,
    RefundStatus,
    SavedCard,
    StripeCustomer,
    StripeEvent,
    StripeEventStatus,
)
from payments.services.disputes import dispute_resolve
from payments.services.refund_approvals import refund_approve, refund_reject
from payments.services.refunds import refund_create
from payments.services.replay import stripe_events_replay
from wallets.models import Entry


class RefundForm(ReasonForm):
    amount = forms.IntegerField(
        required=False, min_value=1, help_text="Minor units; leave empty to refund everything that is left."
    )
    field_order = ("amount", "reason")


def _order_id(payment: Payment) -> str | None:
    order = getattr(payment, "order", None) if payment.kind == PaymentKind.ORDER else None
    return order.pk if order is not None else None


def _left(payment: Payment) -> int:
    return payment.amount - payment.amount_refunded


def _stripe_links(*ids: str | None) -> str:
    """Links to the dj-stripe mirrors of Stripe ids (pi_, ch_, re_, dp_, evt_, cus_)."""
    by_prefix = {"pi_": "paymentintent", "ch_": "charge", "re_": "refund", "dp_": "dispute", "evt_": "event",
                 "cus_": "customer"}  # fmt: skip
    links = []
    for stripe_id in ids:
        model = next((name for prefix, name in by_prefix.items() if stripe_id and stripe_id.startswith(prefix)), None)
        if model is None:
            continue
        url = reverse(f"admin:djstripe_{model}_changelist") + f"?q={stripe_id}"
        links.append(format_html('<a href="{}">{}</a>', url, stripe_id))
    return format_html(", ".join(["{}"] * len(links)), *links) if links else "-"


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("id", "amount", "currency", "status", "reason", "requested_by", "stripe_refund_id", "created_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Payment)
class PaymentAdmin(HistoryMixin, ReadOnlyAdmin):
    list_display = ("id", "user", "kind", "method", "amount", "currency", "status", "amount_refunded",
                    "stripe_payment_intent_id", "created_at")  # fmt: skip
    list_filter = ("status", "kind", "method", "currency")
    search_fields = ("=id", "user__email", "user__first_name", "user__last_name", "=order__id",
                     "=stripe_payment_intent_id", "=stripe_charge_id")  # fmt: skip
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    inlines = (RefundInline,)
    actions = ("refund_in_full",)
    readonly_fields = ("neighbours",)
    exclude = ("client_secret",)
    change_form_template = "admin/payments/payment/change_form.html"

    def get_urls(self) -> list[Any]:
        refund = path("<str:payment_id>/refund/", self.admin_site.admin_view(self.refund_view),
                      name="payments_payment_refund")  # fmt: skip
        return [refund, *super().get_urls()]

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return staff_can(signed_in_user(request), Perm.REFUND)

    @admin.display(description="Linked")
    def neighbours(self, payment: Payment) -> str:
        order = getattr(payment, "order", None)
        deposit = getattr(payment, "deposit", None)
        refs = [payment.pk, *(r.pk for r in payment.refunds.all())]
        if order is not None:
            refs.append(order.pk)
        entries = Entry.objects.filter(reference__in=refs).order_by("id")
        return format_html(
            "user {} · order {} · deposit {} · refunds {} · ledger entries {} · Stripe {}",
            admin_link(payment.user), admin_link(order), admin_link(deposit), admin_links(payment.refunds.all()),
            admin_links(entries), _stripe_links(payment.stripe_payment_intent_id, payment.stripe_charge_id),
        )  # fmt: skip

    @admin.action(description="Refund in full (confirm, with a reason)…", permissions=["refund"])
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[Payment]) -> TemplateResponse | None:
        payments = [p for p in queryset.order_by("pk") if _order_id(p) and p.status == PaymentStatus.SUCCEEDED]

        def run(items: list[Payment], reason: str) -> None:
            done = 0
            for payment in items:
                try:
                    with audit_reason(reason):
                        refund_create(order_id=str(_order_id(payment)), amount=None, reason=reason,
                                      requested_by=signed_in_user(request))  # fmt: skip
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{payment.pk}: {exc.code}: {exc.message}", messages.ERROR)
            self.message_user(request, f"Refunded {done} of {len(items)} payment(s).", messages.INFO)

        return confirm_money_action(
            self, request, payments, action="refund_in_full", title="Refund in full",
            question="Refund everything that is left of each of these order payments?",
            headings=("paid", "refunded", "left", "currency"),
            values=lambda p: (p.amount, p.amount_refunded, _left(p), p.currency),
            total=f"{sum(_left(p) for p in payments)} (minor units)", submit="Refund", run=run,
        )  # fmt: skip

    def refund_view(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        """The confirmation page of a full or partial staff refund of one order payment."""
        if not self.has_refund_permission(request):
            return HttpResponse("You may not refund.", status=403)
        payment = get_object_or_404(Payment, pk=payment_id)
        order_id = _order_id(payment)
        form = RefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid() and order_id is not None:
            reason = form.cleaned_data["reason"]
            try:
                with audit_reason(reason):
                    refund = refund_create(order_id=order_id, amount=form.cleaned_data["amount"], reason=reason,
                                           requested_by=signed_in_user(request))  # fmt: skip
            except DomainError as exc:
                form.add_error(None, f"{exc.code}: {exc.message}")
            else:
                self.message_user(request, f"Refund {refund.pk} of {refund.amount} {refund.currency}: {refund.status}.")
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund {payment.pk}",
            "payment": payment,
            "left": _left(payment),
            "order_id": order_id,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payments/payment/refund.html", context)


@admin.register(Refund)
class RefundAdmin(HistoryMixin, ReadOnlyAdmin):
    list_display = ("id", "payment", "amount", "currency", "status", "requested_by", "stripe_refund_id", "created_at")
    list_filter = ("status", "currency")
    search_fields = ("=id", "=payment__id", "=payment__order__id", "=stripe_refund_id", "payment__user__email")
    list_select_related = ("payment", "requested_by")
    readonly_fields = ("neighbours",)
    actions = ("approve_refunds", "reject_refunds")

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return staff_can(signed_in_user(request), Perm.DECIDE_STAFF_REFUNDS)

    def _decide(self, request: HttpRequest, queryset: QuerySet[Refund], approve: bool) -> TemplateResponse | None:
        refunds = list(queryset.filter(status=RefundStatus.PENDING_APPROVAL).select_related("payment").order_by("pk"))
        decide = refund_approve if approve else refund_reject
        verb = "approve" if approve else "reject"

        def run(items: list[Refund], reason: str) -> None:
            done = 0
            for refund in items:
                try:
                    with audit_reason(reason):
                        decide(refund_id=refund.pk, actor=signed_in_user(request), reason=reason)
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{refund.pk}: {exc.code}: {exc.message}", messages.ERROR)
            self.message_user(request, f"{done} of {len(items)} refund(s) {verb}d.", messages.INFO)

        return confirm_money_action(
            self, request, refunds, action=f"{verb}_refunds", title=f"{verb.capitalize()} staff refunds",
            question=("Let these refunds run (you must not be the staff user who asked for them)?" if approve
                      else "Turn these refunds down (nothing has moved; they end canceled)?"),
            headings=("amount", "currency", "left on the payment", "asked by", "their reason"),
            values=lambda r: (r.amount, r.currency, _left(r.payment), r.requested_by or "-", r.reason),
            total=f"{sum(r.amount for r in refunds)} (minor units)", submit=verb.capitalize(), run=run,
        )  # fmt: skip

    @admin.action(description="Approve (run the refund; confirm, with a reason)…", permissions=["decide"])
    def approve_refunds(self, request: HttpRequest, queryset: QuerySet[Refund]) -> TemplateResponse | None:
        return self._decide(request, queryset, approve=True)

    @admin.action(description="Reject (cancel it; confirm, with a reason)…", permissions=["decide"])
    def reject_refunds(self, request: HttpRequest, queryset: QuerySet[Refund]) -> TemplateResponse | None:
        return self._decide(request, queryset, approve=False)

    @admin.display(description="Linked")
    def neighbours(self, refund: Refund) -> str:
        entries = Entry.objects.filter(reference=refund.pk).order_by("id")
        return format_html("payment {} · order {} · ledger entries {} · Stripe {}",
                           admin_link(refund.payment), admin_link(getattr(refund.payment, "order", None)),
                           admin_links(entries), _stripe_links(refund.stripe_refund_id))  # fmt: skip


@admin.register(Dispute)
class DisputeAdmin(HistoryMixin, ReadOnlyAdmin):
    list_display = ("id", "payment", "amount", "held_amount", "currency", "status", "reason", "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "=stripe_dispute_id", "=payment__id", "payment__user__email")
    actions = ("resolve_won", "resolve_lost")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return staff_can(signed_in_user(request), Perm.RESOLVE_DISPUTES)

    def _resolve(self, request: HttpRequest, queryset: QuerySet[Dispute], outcome: str) -> TemplateResponse | None:
        disputes = list(queryset.filter(status=DisputeStatus.OPEN).order_by("pk"))

        def run(items: list[Dispute], reason: str) -> None:
            done = 0
            for dispute in items:
                try:
                    with audit_reason(reason):
                        dispute_resolve(dispute_id=dispute.pk, outcome=outcome, actor=signed_in_user(request))
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{dispute.pk}: {exc.code}: {exc.message}", messages.ERROR)
            self.message_user(request, f"{done} dispute(s) resolved as {outcome}.", messages.SUCCESS)

        effect = "the held money goes back to the merchant" if outcome == DisputeStatus.WON else "the money leaves"
        return confirm_money_action(
            self, request, disputes, action=f"resolve_{outcome}", title=f"Resolve disputes as {outcome}",
            question=f"Resolve these open disputes as {outcome}: {effect}.",
            headings=("disputed", "held", "currency", "payment"),
            values=lambda d: (d.amount, d.held_amount, d.currency, d.payment_id),
            total=f"{sum(d.amount for d in disputes)} (minor units)", submit=f"Resolve as {outcome}", run=run,
        )  # fmt: skip

    @admin.action(description="Resolve as won (confirm, with a reason)…", permissions=["resolve"])
    def resolve_won(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> TemplateResponse | None:
        return self._resolve(request, queryset, DisputeStatus.WON)

    @admin.action(description="Resolve as lost (confirm, with a reason)…", permissions=["resolve"])
    def resolve_lost(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> TemplateResponse | None:
        return self._resolve(request, queryset, DisputeStatus.LOST)


@admin.register(StripeEvent)
class StripeEventAdmin(HistoryMixin, ReadOnlyAdmin):
    list_display = ("id", "type", "object_id", "status", "attempts", "received_at", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("=id", "=object_id")
    readonly_fields = ("last_error",)
    actions = ("replay",)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return staff_can(signed_in_user(request), Perm.REPLAY_EVENTS)

    @admin.action(description="Replay (confirm, with a reason)…", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> TemplateResponse | None:
        events = list(queryset.exclude(status=StripeEventStatus.PROCESSED).order_by("received_at"))

        def run(items: list[StripeEvent], reason: str) -> None:
            try:
                with audit_reason(reason):
                    outcomes = stripe_events_replay(event_ids=[e.pk for e in items], actor=signed_in_user(request),
                                                    reason=reason)  # fmt: skip
            except DomainError as exc:
                self.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
                return
            for outcome in outcomes:
                if outcome.outcome == "busy":  # left alone: replaying it now could apply it twice
                    text = f"{outcome.event_id}: not replayed, a worker is applying it right now"
                    self.message_user(request, text, messages.WARNING)
                    continue
                level = messages.ERROR if outcome.outcome == "failed" else messages.INFO
                self.message_user(request, f"{outcome.event_id}: {outcome.outcome} {outcome.error}".strip(), level)

        return confirm_money_action(
            self, request, events, action="replay", title="Replay Stripe events",
            question="Apply these events again (a processed event is never applied twice)?",
            headings=("type", "object", "status", "attempts"),
            values=lambda e: (e.type, e.object_id, e.status, e.attempts), submit="Replay", run=run,
        )  # fmt: skip


@admin.register(ReconcileItem)
class ReconcileItemAdmin(ReadOnlyAdmin):
    """Each compared item of a run: the home page's "reconciliation mismatches" queue lists these."""

    list_display = ("run", "object_type", "object_id", "outcome", "field", "ours", "stripe", "note")
    list_filter = ("outcome", "object_type")
    search_fields = ("=object_id", "=run__id")


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("user", "stripe_customer_id", "created_at")
    search_fields = ("user__email", "=stripe_customer_id")
    list_select_related = ("user",)


@admin.register(SavedCard)
class SavedCardAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "brand", "last4", "exp_month", "exp_year", "is_default", "created_at")
    search_fields = ("=id", "user__email")
    list_select_related = ("user",)


# --- dj-stripe's mirrors: only those staff use, read-only; every other dj-stripe model is hidden -----------


class StripeMirrorAdmin(ReadOnlyAdmin):
    """A mirrored Stripe object: looked at, never edited here (Stripe is the source)."""

    search_fields = ("=id",)
    list_display = ("id", "livemode", "created")
    ordering = ("-created",)


_MIRRORS: dict[type[Any], dict[str, Any]] = {
    djstripe_models.Event: {"list_display": ("id", "type", "livemode", "created")},
    # dj-stripe's own Customer admin search crashes: this one searches the customer's and the user's email.
    djstripe_models.Customer: {
        "list_display": ("id", "email", "subscriber", "created"),
        "search_fields": ("=id", "email", "subscriber__email"),
    },
    djstripe_models.PaymentIntent: {"list_display": ("id", "customer", "payment_method", "created")},
    djstripe_models.Charge: {"list_display": ("id", "amount", "currency", "status", "payment_intent", "created")},
    djstripe_models.Refund: {"list_display": ("id", "amount", "currency", "charge", "created")},
    djstripe_models.Dispute: {"list_display": ("id", "charge", "payment_intent", "created")},
}
for _model in [m for m in apps.get_app_config("djstripe").get_models() if admin.site.is_registered(m)]:
    admin.site.unregister(_model)
for _model, _options in _MIRRORS.items():
    admin.site.register(
        _model, type(f"{_model.__name__}MirrorAdmin", (StripeMirrorAdmin,), {"__module__": __name__, **_options})
    )


# Reconciliation runs (``manage.py reconcile`` and its daily task): read-only for staff.
from payments.models import ReconcileItem, ReconcileRun  # noqa: E402  (kept beside its registration)


class ReconcileItemInline(ReadOnlyInline):
    model = ReconcileItem
    fields = ("object_type", "object_id", "outcome", "field", "ours", "stripe", "note")


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "since", "started_at", "finished_at", "matched", "fixed", "mismatched")
    list_filter = ("mismatched",)
    inlines = [ReconcileItemInline]
