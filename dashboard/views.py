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
    stock_shown,
)

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


# --- product edit and delete (the list, creation and codes/file: dashboard.product_pages) -----------


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
