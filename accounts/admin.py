"""Back office for users: search by email, name, order, payment or Stripe id; the customer page (everything
about one person in one place); changes of staff rights need a reason and land in the audit trail."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import AuditEvent, User
from audit.selectors import object_history
from config.admin import HistoryMixin, ReadOnlyAdmin
from config.audit import audit_reason
from orders.models import Order
from payments.models import Dispute, Payment, Refund, SavedCard, StripeCustomer
from wallets.models import Account, Deposit, Posting, Withdrawal

RIGHTS = ("is_staff", "is_superuser", "is_active", "groups", "user_permissions")


class _EmailCleaning:
    """Emails are stored lowercased and unique whatever their case, as the API does."""

    instance: User
    cleaned_data: dict

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A user with this email already exists.")
        return email


class UserAddForm(_EmailCleaning, UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("email", "role")


class UserEditForm(_EmailCleaning, UserChangeForm):
    change_reason = forms.CharField(
        required=False, max_length=255, help_text="Required when staff rights, groups or permissions change."
    )

    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        if any(name in self.changed_data for name in RIGHTS) and not (cleaned.get("change_reason") or "").strip():
            self.add_error("change_reason", "A change of rights needs a reason.")
        return cleaned


def customer_overview(user: User) -> dict[str, Any]:
    """Everything the back office knows about one person, newest first, each list bounded."""
    payments = Payment.objects.filter(user=user).order_by("-created_at")
    return {
        "wallets": Account.objects.filter(owner=user).order_by("id"),
        "orders": Order.objects.filter(buyer=user).select_related("product", "payment").order_by("-created_at")[:50],
        "sales": Order.objects.filter(merchant=user).select_related("product").order_by("-created_at")[:20],
        "payments": payments[:50],
        "refunds": Refund.objects.filter(payment__user=user).select_related("payment").order_by("-created_at")[:50],
        "disputes": Dispute.objects.filter(payment__user=user).order_by("-created_at")[:20],
        "deposits": Deposit.objects.filter(user=user).order_by("-created_at")[:20],
        "withdrawals": Withdrawal.objects.filter(user=user).order_by("-created_at")[:20],
        "postings": Posting.objects.filter(account__owner=user).select_related("entry").order_by("-id")[:50],
        "cards": SavedCard.objects.filter(user=user).order_by("-created_at"),
        "stripe_customer": StripeCustomer.objects.filter(user=user).first(),
        "history": object_history(user),
    }


@admin.register(User)
class UserAdmin(HistoryMixin, BaseUserAdmin):
    form = UserEditForm
    add_form = UserAddForm
    ordering = ("-created_at",)
    list_display = ("email", "id", "role", "first_name", "last_name", "is_staff", "is_active", "created_at",
                    "customer_page")  # fmt: skip
    list_filter = ("role", "is_staff", "is_active", "groups")
    search_fields = ("email", "first_name", "last_name", "=id", "=orders__id", "=payments__id",
                     "=payments__stripe_payment_intent_id", "=payments__stripe_charge_id",
                     "=stripe_customer__stripe_customer_id")  # fmt: skip
    readonly_fields = ("id", "created_at", "last_login", "customer_page")
    fieldsets = (
        (None, {"fields": ("id", "email", "password", "role", "customer_page")}),
        ("Profile", {"fields": ("first_name", "last_name")}),
        (
            "Access",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions", "change_reason")},
        ),
        ("Dates", {"fields": ("created_at", "last_login")}),
        ("History", {"fields": ("audit_history",)}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),)

    def get_urls(self) -> list[Any]:
        customer = path("<str:user_id>/customer/", self.admin_site.admin_view(self.customer_view),
                        name="accounts_user_customer")  # fmt: skip
        return [customer, *super().get_urls()]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Looking only (Support, Finance): the form's extra field is not shown.
            return [(name, {**opts, "fields": [f for f in opts["fields"] if f != "change_reason"]})
                    for name, opts in fieldsets]  # fmt: skip
        return fieldsets

    @admin.display(description="Customer page")
    def customer_page(self, user: User) -> str:
        if not user.pk:
            return "-"
        return format_html('<a href="{}">everything about {}</a>',
                           reverse("admin:accounts_user_customer", args=[user.pk]), user.email)  # fmt: skip

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        with audit_reason(form.cleaned_data.get("change_reason") or ""):
            super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        with audit_reason(form.cleaned_data.get("change_reason") or ""):
            super().save_related(request, form, formsets, change)

    def customer_view(self, request: HttpRequest, user_id: str) -> HttpResponse:
        """One person's wallet, orders, payments, refunds, disputes, deposits, withdrawals, ledger, cards,
        Stripe customer and history on one page (read-only; staff who may look at users)."""
        if not self.has_view_permission(request):
            return HttpResponse("You may not look up customers.", status=403)
        user = get_object_or_404(User, Q(pk=user_id))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Customer {user.email}",
            "customer": user,
            "opts": self.model._meta,
            **customer_overview(user),
        }
        return TemplateResponse(request, "admin/accounts/user/customer.html", context)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "object_type", "object_id", "actor", "request_id")
    list_filter = ("action", "object_type")
    search_fields = ("object_id", "actor__email", "request_id")
    date_hierarchy = "created_at"
