"""Test-only urlconf: the production routes plus views that fail on purpose.

Used with ``@pytest.mark.urls("tests.config.urls")``; never part of the platform.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from config import urls as production

# Looks like what an exception message might leak: it reaches the log only, and there with the
# password and the card number redacted (LOGGED_DETAIL).
LEAKY_DETAIL = "could not connect to postgres://payments:hunter2@db.internal:5432/payments for 4242 4242 4242 4242"
LOGGED_DETAIL = "could not connect to postgres://payments:[Filtered]@db.internal:5432/payments for [Filtered]"


class ExplodingApiView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    def get(self, request: Request) -> HttpResponse:
        raise RuntimeError(LEAKY_DETAIL)


def exploding_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(LEAKY_DETAIL)


urlpatterns = [
    path("api/v1/_test/explode", ExplodingApiView.as_view()),
    path("api/v1/_test/explode-plain", exploding_view),
    path("_test/explode-page", exploding_view),
    *production.urlpatterns,
]

handler400 = production.handler400
handler403 = production.handler403
handler404 = production.handler404
handler500 = production.handler500
