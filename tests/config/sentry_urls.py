"""Test-only urlconf: API views that fail in the middle of a card payment.

Used with ``@pytest.mark.urls("tests.config.sentry_urls")``; never part of the platform.
Each view holds the request's card data and secrets in local variables and puts
some of them into its exception message and a log line, as careless code might.
"""

from __future__ import annotations

import logging

from django.http import HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.views import APIView

logger = logging.getLogger("tests.card_payment")


class CardProcessorError(RuntimeError):
    pass


class ExplodingCardPaymentView(APIView):
    def post(self, request: Request) -> HttpResponse:
        data = request.data
        assert isinstance(data, dict)
        card = data.get("card", {})
        card_number = card.get("number", "")
        client_secret = data.get("client_secret", "")
        authorization = request.headers.get("Authorization", "")
        logger.warning("charging card %s with %s", card_number, client_secret)
        raise CardProcessorError(f"processor rejected card {card_number} ({client_secret}) for {authorization}")


urlpatterns = [
    path("api/v1/_test/card-payment", ExplodingCardPaymentView.as_view()),
    path("api/v1/payment-methods/_test-explode", ExplodingCardPaymentView.as_view()),
    path("api/v1/auth/_test-explode", ExplodingCardPaymentView.as_view()),
]
