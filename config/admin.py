"""The back office's admin site (sign-in with a TOTP code, the work queues on its home page) and the
building blocks every app's admin shares: read-only admins, the reasoned confirmation form, history, links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db.models import Model
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django_otp import match_token

from audit.selectors import object_history
from payments.models import (
    Dispute,
    DisputeStatus,
    Payment,
    PaymentStatus,
    ReconcileItem,
    ReconcileOutcome,
    Refund,
    RefundStatus,
    StripeEvent,
    StripeEventStatus,
)
from wallets.models import WITHDRAWAL_OPEN_STATUSES, Withdrawal


class StaffSignInForm(AdminAuthenticationForm):
    """``username`` (the email), ``password`` and, when ``STAFF_OTP_REQUIRED``, ``otp_token`` (TOTP)."""

    otp_token = forms.CharField(
        required=False,
        max_length=8,
        label="TOTP code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "otp_required": "Enter the current code of your authenticator app (otp_required).",
    }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user = self.get_user()
        if settings.STAFF_OTP_REQUIRED and user is not None:
            device = match_token(user, (cleaned.get("otp_token") or "").strip())
            if device is None:
                # A wrong code counts as a failed sign-in for the throttle, as a wrong password does.
                user_login_failed.send(
                    sender=type(self), credentials={"username": cleaned.get("username")}, request=self.request
                )
                raise forms.ValidationError(self.error_messages["otp_required"], code="otp_required")
            user.otp_device = device  # type: ignore[attr-defined]  # django-otp persists it at login
        return cleaned


def _changelist(model: type[Model], query: str = "") -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{query}" if query else url


class BackOfficeSite(admin.AdminSite):
    """Django's admin with a second factor for staff and the contract's work queues on its home page."""

    site_header = "Payments back office"
    site_title = "Back office"
    index_title = "Work queues"
    login_form = StaffSignInForm
    login_template = "admin/backoffice_login.html"
    index_template = "admin/backoffice_index.html"

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().login(request, {**(extra_context or {}), "otp_required": settings.STAFF_OTP_REQUIRED})

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        return not settings.STAFF_OTP_REQUIRED or bool(request.user.is_verified())  # type: ignore[union-attr]

    def work_queues(self, request: HttpRequest) -> list[dict[str, Any]]:
        """Each queue staff may see: its name, how many items wait, and the list that shows them."""
        stuck_before = timezone.now() - timedelta(seconds=settings.STRIPE_RECONCILE_AFTER_SECONDS)
        statuses = ",".join(WITHDRAWAL_OPEN_STATUSES)
        queues = [
            ("Withdrawals awaiting a decision", Withdrawal,
             Withdrawal.objects.filter(status__in=WITHDRAWAL_OPEN_STATUSES), f"status__in={statuses}"),
            ("Refunds awaiting approval", Refund,
             Refund.objects.filter(status=RefundStatus.PENDING_APPROVAL),
             f"status__exact={RefundStatus.PENDING_APPROVAL}"),
            ("Open disputes", Dispute,
             Dispute.objects.filter(status=DisputeStatus.OPEN), f"status__exact={DisputeStatus.OPEN}"),
            ("Stripe events that failed", StripeEvent,
             StripeEvent.objects.filter(status=StripeEventStatus.FAILED), f"status__exact={StripeEventStatus.FAILED}"),
            ("Payments stuck in processing", Payment,
             Payment.objects.filter(status=PaymentStatus.PROCESSING, updated_at__lt=stuck_before),
             f"status__exact={PaymentStatus.PROCESSING}"),
            ("Reconciliation mismatches", ReconcileItem,
             ReconcileItem.objects.filter(outcome=ReconcileOutcome.MISMATCHED),
             f"outcome__exact={ReconcileOutcome.MISMATCHED}"),
        ]  # fmt: skip
        shown = []
        for title, model, queryset, query in queues:
            model_admin = self._registry.get(model)
            if model_admin is None or not model_admin.has_view_permission(request):
                continue
            shown.append({"title": title, "count": queryset.count(), "url": _changelist(model, query)})
        return shown

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        extra_context = {**(extra_context or {}), "work_queues": self.work_queues(request)}
        return super().index(request, extra_context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: money records and their trail change only through services
    (the ledger is corrected with new entries, never edits); actions call those services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """The related rows of a read-only record, shown and never added or removed."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReasonForm(forms.Form):
    """The confirmation of a money action: a reason is required, always."""

    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"size": 60}))

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A money action needs a reason.")
        return str(reason)


def admin_link(obj: Model | None, text: str | None = None) -> SafeString | str:
    """A link to ``obj``'s admin page (its text when the admin has none)."""
    if obj is None:
        return "-"
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(text or obj)
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def admin_links(objs: Any) -> SafeString | str:
    """Links to each of ``objs``, comma-separated."""
    links = [admin_link(obj) for obj in objs]
    return format_html_join(", ", "{}", ((link,) for link in links)) if links else "-"


class HistoryMixin:
    """An object's audit history (who, when, address, request id, reason, before and after) on its page."""

    @admin.display(description="Audit history")
    def audit_history(self, obj: Model | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return render_to_string("admin/audit_history.html", {"rows": object_history(obj)})

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return (*fields, "audit_history") if "audit_history" not in fields else fields


def confirm_money_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    items: list[Any],
    *,
    action: str,
    title: str,
    question: str,
    headings: tuple[str, ...],
    values: Any,
    total: str = "",
    submit: str = "Confirm",
    run: Any,
) -> TemplateResponse | None:
    """A list action that moves money: first a page with each item's amounts and a required reason,
    then ``run(items, reason)`` once staff confirm it (``apply`` posted with a valid reason)."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        run(items, form.cleaned_data["reason"])
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "opts": model_admin.model._meta,
        "headings": headings,
        "items": [{"pk": item.pk, "link": admin_link(item), "values": values(item)} for item in items],
        "total": total,
        "form": form,
        "action": action,
        "submit": submit,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/confirm_money_action.html", context)
