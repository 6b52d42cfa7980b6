from __future__ import annotations

import pytest
from django.conf import settings

from orders.services.purchase import _card_reserve
from orders.services.terms import terms_for, terms_forget
from tests.factories import ProductFactory
from wallets.ledger import wallet_adjust, wallet_id_for


@pytest.fixture(autouse=True)
def _forget_product_terms():
    terms_forget()
    yield
    terms_forget()


def fund(user, amount: int, currency: str | None = None) -> str:
    """Credits ``user``'s wallet with a ledger entry; returns the wallet id."""
    account_id = wallet_id_for(user_id=user.pk, role=user.role, currency=currency or settings.PLATFORM_CURRENCY)
    wallet_adjust(account_id=account_id, amount=amount, reason="test funding", actor=None)
    return account_id


def buy(client, product_id: str, **body):
    body.setdefault("payment_method", "wallet")
    return client.post("/api/v1/orders", {"product": product_id, **body}, format="json")


@pytest.fixture
def product(merchant):
    return ProductFactory.create(merchant=merchant, price=1000, stock=5, fulfillment="KEY-AAAA-BBBB")


def reserve(buyer, product, quantity: int = 1):
    """A pending card order holding its stock, as the card path leaves it before the card is charged.

    (Reaching this state through the API needs a Stripe that does not answer; the
    card tests do that. Read-side tests only need the row.)
    """
    terms = terms_for(product.pk)
    return _card_reserve(buyer=buyer, product_id=product.pk, quantity=quantity, terms=terms)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it receives and answers planned statuses."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orders"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()
