"""The merchant dashboard: server-rendered pages on a session login, merchants only.

Views are thin like the API's: a form validates, one service or selector does
the work, and a ``DomainError`` becomes a form error instead of a page error.
The top surface: it reads through the domain apps' selectors and writes through
their services; no domain app imports it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.request import signed_in_user
from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.errors import ProductNotFound
from config.errors import DomainError
from dashboard.forms import (
    MerchantLoginForm,
    ProductEditForm,
    ProductForm,
    RefundForm,
    WebhookEndpointForm,
    WithdrawalForm,
    stock_shown,
)
from orders import selectors as order_selectors
from orders.errors import OrderNotFound
from orders.models import OrderStatus
from orders.services.webhook_endpoints import webhook_endpoint_create, webhook_endpoint_delete
from payments.services.refunds import refund_create
from wallets import selectors as wallet_selectors
from wallets.withdrawals import withdrawal_request

View = Callable[..., HttpResponseBase]

LOGIN_ATTEMPTS_PER_MINUTE = 20


def merchant_required(view: View) -> View:
    """Anonymous visitors go to the login page; signed-in non-merchants are refused (403)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not getattr(request.user, "is_merchant", False):
            raise PermissionDenied("The dashboard is for merchants.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def _form_error(form: Form, error: DomainError) -> None:
    field = error.param if error.param in form.fields else None
    form.add_error(field, error.message)


def _currency() -> str:
    return settings.PLATFORM_CURRENCY


# --- session -------------------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = MerchantLoginForm
    redirect_authenticated_user = False

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _login_rate_exceeded(request):
            form = self.get_form()
            form.add_error(None, "Too many sign-in attempts; wait a minute and try again.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)


def _login_rate_exceeded(request: HttpRequest) -> bool:
    """Slows password guessing: a fixed number of attempts per client address and minute."""
    scale = settings.THROTTLE_SCALE
    if scale <= 0:
        return False
    key = f"dashboard-login:{request.META.get('REMOTE_ADDR', '')}"
    if cache.add(key, 1, timeout=60):
        return False
    try:
        attempts = cache.incr(key)
    except ValueError:
        return False
    return attempts > max(1, int(LOGIN_ATTEMPTS_PER_MINUTE * scale))


class LogoutView(auth_views.LogoutView):
    next_page = "dashboard:login"


# --- overview ------------------------------------------------------------------------------------


@merchant_required
def home(request: HttpRequest) -> HttpResponse:
    merchant = signed_in_user(request)
    context = {
        "wallet": wallet_selectors.wallet_summary(merchant),
        "totals": order_selectors.sales_totals_of_merchant(merchant=merchant),
        "recent": order_selectors.sales_recent_of_merchant(merchant=merchant),
        "products_live": catalog_selectors.products_live_count_of_merchant(merchant),
        "currency": _currency(),
    }
    return render(request, "dashboard/home.html", context)


# --- products ------------------------------------------------------------------------------------


@merchant_required
def products(request: HttpRequest) -> HttpResponse:
    own = catalog_selectors.products_of_merchant_newest_first(signed_in_user(request))
    page = Paginator(own, 50).get_page(request.GET.get("page"))
    return render(request, "dashboard/products.html", {"page": page, "currency": _currency()})


@merchant_required
def product_create(request: HttpRequest) -> HttpResponse:
    form = ProductForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            product = catalog_services.product_create(merchant=signed_in_user(request), **form.cleaned_data)
        except DomainError as error:
            _form_error(form, error)
        else:
            messages.success(request, f"Created {product.name} ({product.id}).")
            return redirect("dashboard:products")
    return render(request, "dashboard/product_form.html", {"form": form, "product": None})


@merchant_required
def product_edit(request: HttpRequest, product_id: str) -> HttpResponse:
    try:
        product = catalog_selectors.product_of_merchant_get(signed_in_user(request), product_id)
    except ProductNotFound:
        return render(request, "404.html", status=404)
    if product.deleted_at is not None:
        messages.error(request, "A deleted product cannot be edited.")
        return redirect("dashboard:products")
    initial = {field: getattr(product, field) for field in catalog_services.EDITABLE_FIELDS}
    initial["stock_based_on"] = stock_shown(product.stock)
    form = ProductEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes, guard = form.changes()  # only what the merchant changed; stock guarded by what the page showed
        try:
            catalog_services.product_update(merchant=signed_in_user(request), product_id=product.id, **changes, **guard)
        except DomainError as error:
            _form_error(form, error)
        else:
            messages.success(request, f"Saved {product.id}.")
            return redirect("dashboard:products")
    return render(request, "dashboard/product_form.html", {"form": form, "product": product})


@merchant_required
@require_POST
def product_delete(request: HttpRequest, product_id: str) -> HttpResponse:
    try:
        catalog_services.product_delete(merchant=signed_in_user(request), product_id=product_id)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Deleted {product_id}: hidden from the catalog, kept for its orders.")
    return redirect("dashboard:products")


# --- sales and refunds ---------------------------------------------------------------------------


@merchant_required
def sales(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    if status not in OrderStatus.values:
        status = None
    queryset = order_selectors.sales_listed_of_merchant(merchant=signed_in_user(request), status=status)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    context = {"page": page, "status": status or "", "statuses": OrderStatus.choices, "currency": _currency()}
    return render(request, "dashboard/sales.html", context)


@merchant_required
def sale_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    try:
        order = order_selectors.sale_of_merchant_get(merchant=signed_in_user(request), order_id=order_id)
    except OrderNotFound:
        return render(request, "404.html", status=404)
    form = RefundForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            refund = refund_create(
                order_id=order.id,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                requested_by=signed_in_user(request),
            )
        except DomainError as error:
            _form_error(form, error)
        else:
            messages.success(request, f"Refund {refund.id}: {refund.status}.")
            return redirect("dashboard:sale", order_id=order.id)
    refunds = order_selectors.refunds_of_sale(order=order)
    context = {"order": order, "form": form, "refunds": refunds, "currency": order.currency}
    return render(request, "dashboard/sale.html", context)


# --- withdrawals ---------------------------------------------------------------------------------


@merchant_required
def withdrawals(request: HttpRequest) -> HttpResponse:
    form = WithdrawalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            withdrawal = withdrawal_request(user=signed_in_user(request), amount=form.cleaned_data["amount"])
        except DomainError as error:
            _form_error(form, error)
        else:
            messages.success(request, f"Withdrawal {withdrawal.id} requested; the amount is held until staff pay it.")
            return redirect("dashboard:withdrawals")
    context = {
        "form": form,
        "wallet": wallet_selectors.wallet_summary(signed_in_user(request)),
        "withdrawals": wallet_selectors.withdrawals_recent_of(signed_in_user(request)),
        "currency": _currency(),
    }
    return render(request, "dashboard/withdrawals.html", context)


# --- order webhooks ------------------------------------------------------------------------------


@merchant_required
def webhooks(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = webhook_endpoint_create(merchant=signed_in_user(request), url=form.cleaned_data["url"])
        except DomainError as error:
            _form_error(form, error)
        else:
            form = WebhookEndpointForm()
    context = {
        "form": form,
        "created": created,  # its secret is shown this once
        "endpoints": order_selectors.webhook_endpoints_of(merchant=signed_in_user(request)),
        "deliveries": order_selectors.webhook_deliveries_of(merchant=signed_in_user(request)),
    }
    return render(request, "dashboard/webhooks.html", context)


@merchant_required
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    try:
        webhook_endpoint_delete(merchant=signed_in_user(request), endpoint_id=endpoint_id)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Endpoint removed; it receives no more events.")
    return redirect("dashboard:webhooks")
