"""Back office for payments: read-only records, staff refunds, dispute resolution, event replay."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from djstripe.admin.admin import CustomerAdmin as DjstripeCustomerAdmin
from djstripe.models import Customer as DjstripeCustomer

from accounts.request import signed_in_user
from config.admin import ReadOnlyAdmin, ReadOnlyInline
from config.errors import DomainError
from payments.models import (
    Dispute,
    DisputeStatus,
    Payment,
    Refund,
    SavedCard,
    StripeCustomer,
    StripeEvent,
    StripeEventStatus,
)
from payments.services.disputes import dispute_resolve
from payments.services.events import stripe_event_process
from payments.services.refunds import refund_create
from payments.webhooks import event_apply_lock


class RefundForm(forms.Form):
    amount = forms.IntegerField(
        required=False, min_value=1, help_text="Minor units; leave empty to refund everything that is left."
    )
    reason = forms.CharField(required=False, max_length=255)


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("id", "amount", "currency", "status", "reason", "requested_by", "stripe_refund_id", "created_at")
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "kind",
        "method",
        "amount",
        "currency",
        "status",
        "amount_refunded",
        "stripe_payment_intent_id",
        "created_at",
    )
    list_filter = ("status", "kind", "method", "currency")
    search_fields = ("id", "user__email", "stripe_payment_intent_id", "stripe_charge_id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    inlines = (RefundInline,)
    actions = ("refund_in_full",)
    change_form_template = "admin/payments/payment/change_form.html"

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<str:payment_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="payments_payment_refund",
            )
        ]
        return custom + super().get_urls()

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def _order_id(self, payment: Payment) -> str | None:
        order = getattr(payment, "order", None) if payment.kind == "order" else None
        return order.pk if order is not None else None

    @admin.action(description="Refund in full (what is left of each order payment)", permissions=["refund"])
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        done = 0
        for payment in queryset.order_by("pk"):
            order_id = self._order_id(payment)
            if order_id is None:
                self.message_user(request, f"{payment.pk}: not an order payment.", messages.WARNING)
                continue
            try:
                refund_create(
                    order_id=order_id, amount=None, reason="staff refund", requested_by=signed_in_user(request)
                )
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{payment.pk}: {exc.code}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Refunded {done} payment(s).", messages.SUCCESS)

    def refund_view(self, request: HttpRequest, payment_id: str) -> HttpResponse:
        """A full or partial staff refund of one order payment."""
        if not self.has_refund_permission(request):
            return HttpResponse(status=403)
        payment = get_object_or_404(Payment, pk=payment_id)
        order_id = self._order_id(payment)
        form = RefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid() and order_id is not None:
            try:
                refund = refund_create(
                    order_id=order_id,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"] or "staff refund",
                    requested_by=signed_in_user(request),
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.code}: {exc.message}")
            else:
                self.message_user(request, f"Refund {refund.pk} of {refund.amount} {refund.currency}: {refund.status}.")
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund {payment.pk}",
            "payment": payment,
            "order_id": order_id,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payments/payment/refund.html", context)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("id", "payment", "amount", "currency", "status", "requested_by", "stripe_refund_id", "created_at")
    list_filter = ("status", "currency")
    search_fields = ("id", "payment__id", "stripe_refund_id", "payment__user__email")
    list_select_related = ("payment", "requested_by")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ("id", "payment", "amount", "held_amount", "currency", "status", "reason", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "stripe_dispute_id", "payment__id", "payment__user__email")
    actions = ("resolve_won", "resolve_lost")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def _resolve(self, request: HttpRequest, queryset: QuerySet[Dispute], outcome: str) -> None:
        done = 0
        for dispute in queryset.filter(status=DisputeStatus.OPEN).order_by("pk"):
            try:
                dispute_resolve(dispute_id=dispute.pk, outcome=outcome, actor=signed_in_user(request))
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{dispute.pk}: {exc.code}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} dispute(s) resolved as {outcome}.", messages.SUCCESS)

    @admin.action(description="Resolve as won (release the held money)", permissions=["resolve"])
    def resolve_won(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> None:
        self._resolve(request, queryset, DisputeStatus.WON)

    @admin.action(description="Resolve as lost (the disputed amount leaves)", permissions=["resolve"])
    def resolve_lost(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> None:
        self._resolve(request, queryset, DisputeStatus.LOST)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "object_id", "status", "attempts", "received_at", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("id", "object_id")
    readonly_fields = ("last_error",)
    actions = ("replay",)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    @admin.action(description="Replay (apply again; a processed event is never applied twice)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        ok = failed = 0
        for event in queryset.exclude(status=StripeEventStatus.PROCESSED).order_by("received_at"):
            with event_apply_lock(event.pk) as mine:
                if not mine:
                    self.message_user(request, f"{event.pk}: a worker is applying it right now.", messages.WARNING)
                    continue
                try:
                    stripe_event_process(event_id=event.pk)
                    ok += 1
                except Exception as exc:
                    failed += 1
                    self.message_user(request, f"{event.pk}: {type(exc).__name__}: {exc}", messages.ERROR)
        self.message_user(request, f"Replayed {ok} event(s); {failed} failed again.", messages.INFO)


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("user", "stripe_customer_id", "created_at")
    search_fields = ("user__email", "stripe_customer_id")
    list_select_related = ("user",)


class StripeCustomerMirrorAdmin(DjstripeCustomerAdmin):
    """dj-stripe's Customer admin, searchable by the customer's or the user's email (its own search is broken)."""

    search_fields = ("id", "email", "subscriber__email")


if admin.site.is_registered(DjstripeCustomer):
    admin.site.unregister(DjstripeCustomer)
admin.site.register(DjstripeCustomer, StripeCustomerMirrorAdmin)


@admin.register(SavedCard)
class SavedCardAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "brand", "last4", "exp_month", "exp_year", "is_default", "created_at")
    search_fields = ("id", "user__email", "last4")
    list_select_related = ("user",)


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
