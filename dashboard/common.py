"""What every dashboard page shares: the merchants-only guard, the signed-in merchant, form errors, paging.

Pages read through the domain apps' selectors and write through their services; a DomainError becomes a message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import render

from accounts.models import User
from accounts.request import signed_in_user
from config.errors import DomainError

View = Callable[..., HttpResponseBase]
PAGE_SIZE = 25


def merchant_required(view: View) -> View:
    """Anonymous visitors go to the login page; signed-in non-merchants are refused (403)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not getattr(request.user, "is_merchant", False):
            raise PermissionDenied("The dashboard is for merchants.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def merchant_of(request: HttpRequest) -> User:
    """The signed-in merchant (pages run behind ``merchant_required``)."""
    return signed_in_user(request)


def form_error(form: Form, error: DomainError) -> None:
    """A service's refusal shown beside the field it names (or above the form)."""
    field = error.param if error.param in form.fields else None
    form.add_error(field, error.message)


def not_found(request: HttpRequest) -> HttpResponse:
    """Another merchant's object looks exactly like one that does not exist."""
    return render(request, "404.html", status=404)


def paginate(request: HttpRequest, items: Any, size: int = PAGE_SIZE) -> tuple[Page, str]:
    """The requested page and the query string of the current filters (without ``page``) for the pager links."""
    page = Paginator(items, size).get_page(request.GET.get("page"))
    query: QueryDict = request.GET.copy()
    query.pop("page", None)
    return page, query.urlencode()
