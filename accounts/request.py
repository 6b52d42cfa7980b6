"""The signed-in user of a request, typed: one helper for the API views, the dashboard and the admin.

A view behind an authenticating permission gets a ``User``, never ``AnonymousUser``; anything else is refused (401).
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from accounts.models import User


def signed_in_user(request: Request | HttpRequest) -> User:
    """The request's authenticated ``User``; raises ``NotAuthenticated`` for an anonymous request."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user
