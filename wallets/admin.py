"""Back office: ledger rows are read-only; withdrawals are decided through confirmation pages with a reason
(the second approval of a large one by a different Finance user, as the service demands)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from accounts.request import signed_in_user
from accounts.roles import Perm, staff_can
from config.admin import HistoryMixin, ReadOnlyAdmin, ReadOnlyInline, admin_link, admin_links, confirm_money_action
from config.audit import audit_reason
from config.errors import DomainError
from wallets.models import WITHDRAWAL_OPEN_STATUSES, Account, Deposit, Entry, Posting, Withdrawal
from wallets.withdrawals import withdrawal_approve, withdrawal_reject


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "owner", "currency", "balance", "held", "updated_at")
    list_filter = ("kind", "currency")
    search_fields = ("=id", "owner__email", "=owner__id")
    list_select_related = ("owner",)
    ordering = ("id",)
    readonly_fields = ("neighbours",)

    @admin.display(description="Linked")
    def neighbours(self, account: Account) -> str:
        entries = Entry.objects.filter(postings__account=account).order_by("-id")[:20]
        return format_html("owner {} · latest ledger entries {}", admin_link(account.owner), admin_links(entries))


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
    search_fields = ("=id", "=reference", "=idempotency_key")
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


@admin.register(Withdrawal)
class WithdrawalAdmin(HistoryMixin, ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "status", "first_approved_by", "decided_by", "created_at",
                    "decided_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("=id", "user__email", "user__first_name", "user__last_name")
    list_select_related = ("user", "first_approved_by", "decided_by")
    ordering = ("-id",)
    actions = ("approve_withdrawals", "reject_withdrawals")

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return staff_can(signed_in_user(request), Perm.DECIDE_WITHDRAWALS)

    def _decide(self, request: HttpRequest, queryset: QuerySet[Withdrawal], approve: bool) -> TemplateResponse | None:
        withdrawals = list(queryset.filter(status__in=WITHDRAWAL_OPEN_STATUSES).order_by("pk"))
        not_open = queryset.count() - len(withdrawals)  # selected, but decided already: told, never decided again
        decide = withdrawal_approve if approve else withdrawal_reject
        verb = "approve" if approve else "reject"

        def run(items: list[Withdrawal], reason: str) -> None:
            outcomes: dict[str, int] = {}
            for withdrawal in items:
                try:
                    with audit_reason(reason):
                        done = decide(withdrawal_id=withdrawal.pk, actor=signed_in_user(request), reason=reason)
                    outcomes[done.status] = outcomes.get(done.status, 0) + 1
                except DomainError as exc:
                    self.message_user(request, f"{withdrawal.pk}: {exc.code}: {exc.message}", messages.ERROR)
            summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items())) or "none decided"
            decided = sum(outcomes.values())
            self.message_user(
                request,
                f"Withdrawals: {summary}. {decided} withdrawal(s) {verb}d; {not_open} not pending.",
                messages.WARNING if not_open else messages.INFO,
            )

        return confirm_money_action(
            self, request, withdrawals, action=f"{verb}_withdrawals", title=f"{verb.capitalize()} withdrawals",
            question=("Pay these withdrawals out (at or above the four-eyes threshold, a first approval only records "
                      "yours; a second Finance user pays)?" if approve else
                      "Reject these withdrawals (the held amount goes back to each wallet)?"),
            headings=("amount", "currency", "status", "first approval by", "wallet"),
            values=lambda w: (w.amount, w.currency, w.status, w.first_approved_by or "-", w.user),
            total=f"{sum(w.amount for w in withdrawals)} (minor units)", submit=verb.capitalize(), run=run,
        )  # fmt: skip

    @admin.action(description="Approve (pay out; confirm, with a reason)…", permissions=["decide"])
    def approve_withdrawals(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> TemplateResponse | None:
        return self._decide(request, queryset, approve=True)

    @admin.action(description="Reject (release to the wallet; confirm, with a reason)…", permissions=["decide"])
    def reject_withdrawals(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> TemplateResponse | None:
        return self._decide(request, queryset, approve=False)
