"""Back office: ledger rows are read-only; withdrawals are decided through actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.request import signed_in_user
from config.admin import ReadOnlyAdmin, ReadOnlyInline
from config.errors import DomainError
from wallets.models import Account, Deposit, Entry, Posting, Withdrawal, WithdrawalStatus
from wallets.withdrawals import withdrawal_approve, withdrawal_reject


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "owner", "currency", "balance", "held", "updated_at")
    list_filter = ("kind", "currency")
    search_fields = ("id", "owner__email", "owner__id")
    list_select_related = ("owner",)
    ordering = ("id",)


class PostingInline(ReadOnlyInline):
    model = Posting
    fields = ("id", "account", "amount", "balance_after", "created_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "currency", "reference", "created_at")
    list_filter = ("kind", "currency")
    search_fields = ("id", "reference", "idempotency_key")
    inlines = (PostingInline,)
    ordering = ("-id",)


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = ("id", "entry", "account", "amount", "balance_after", "created_at")
    search_fields = ("id", "entry__id", "account__id", "account__owner__email")
    list_select_related = ("entry", "account")
    ordering = ("-id",)


@admin.register(Deposit)
class DepositAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "status", "payment", "created_at", "completed_at")
    list_filter = ("status",)
    search_fields = ("id", "user__email", "payment__id")
    list_select_related = ("user",)
    ordering = ("-id",)


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"size": 60}))


@admin.register(Withdrawal)
class WithdrawalAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "status", "decided_by", "created_at", "decided_at")
    list_filter = ("status",)
    search_fields = ("id", "user__email")
    list_select_related = ("user", "decided_by")
    ordering = ("-id",)
    actions = ("approve_withdrawals", "reject_withdrawals")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Actions need the change permission; the form itself stays read-only (no editable fields).
        return bool(request.user.is_active and request.user.is_staff and obj is None)

    def _decide(self, request: HttpRequest, queryset: QuerySet[Withdrawal], approve: bool, reason: str) -> None:
        done = 0
        for withdrawal_id in queryset.filter(status=WithdrawalStatus.PENDING).values_list("pk", flat=True):
            try:
                if approve:
                    withdrawal_approve(withdrawal_id=withdrawal_id, actor=signed_in_user(request))
                else:
                    withdrawal_reject(
                        withdrawal_id=withdrawal_id,
                        actor=signed_in_user(request),
                        reason=reason,
                    )
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{withdrawal_id}: {exc.message}", messages.ERROR)
        skipped = queryset.count() - done
        verb = "approved" if approve else "rejected"
        self.message_user(request, f"{done} withdrawal(s) {verb}; {skipped} not pending, left as they were.")

    @admin.action(description="Approve (pay out) selected pending withdrawals")
    def approve_withdrawals(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> None:
        self._decide(request, queryset, approve=True, reason="")

    @admin.action(description="Reject (release to the wallet) selected pending withdrawals")
    def reject_withdrawals(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> HttpResponse | None:
        if "apply" in request.POST:
            form = RejectForm(request.POST)
            if form.is_valid():
                self._decide(request, queryset, approve=False, reason=form.cleaned_data["reason"])
                return None
        else:
            form = RejectForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject withdrawals",
            "opts": self.model._meta,
            "withdrawals": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/wallets/withdrawal/reject.html", context)
