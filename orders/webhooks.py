"""Signed order events over HTTP: the signature scheme, the URL guard and one POST.

Signature (see docs/webhooks.md): header ``Platform-Signature: t=<unix>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 with the endpoint's secret over ``"<t>." + body``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from orders.errors import WebhookUrlRefused

SIGNATURE_HEADER = "Platform-Signature"
EVENT_ID_HEADER = "Platform-Event-Id"
DELIVERY_ID_HEADER = "Platform-Delivery-Id"
DEFAULT_TOLERANCE_SECONDS = 300
# Short timeouts: a slow receiver must not tie up a worker (connect, read).
TIMEOUT = (3.05, 5.0)
USER_AGENT = "payments-platform-webhooks/1"


def sign(*, secret: str, body: bytes, timestamp: int) -> str:
    """The ``Platform-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    *, secret: str, body: bytes, header: str, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """What a receiver does: a v1 signature matches and the timestamp is recent."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret=secret, body=body, timestamp=timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


def private_targets_allowed() -> bool:
    """Merchant URLs may point at loopback/private hosts only in development and tests."""
    return bool(getattr(settings, "ORDER_WEBHOOKS_ALLOW_PRIVATE", settings.DEBUG or settings.TESTING))


def _is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> str:
    """Accepts an http(s) URL with a host and no credentials; outside development
    every address the host resolves to must be public. Raises WebhookUrlRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused("The URL is malformed.", param="url") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlRefused("Only http and https URLs can receive events.", param="url")
    if not parts.hostname:
        raise WebhookUrlRefused("The URL needs a host.", param="url")
    if parts.username or parts.password:
        raise WebhookUrlRefused("The URL must not carry credentials.", param="url")
    if not allow_private:
        try:
            infos = socket.getaddrinfo(parts.hostname, port or (443 if parts.scheme == "https" else 80))
        except (OSError, UnicodeError) as exc:
            raise WebhookUrlRefused("The URL's host does not resolve.", param="url") from exc
        if not infos or not all(_is_public_address(str(info[4][0])) for info in infos):
            raise WebhookUrlRefused("The URL must point at a public address.", param="url")
    return url


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send(*, url: str, body: bytes, secret: str, event_id: str, delivery_id: str, allow_private: bool) -> SendResult:
    """POSTs one signed event; never raises. Redirects are not followed (they could lead inside)."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # Checked again at send time: the host may resolve elsewhere than at registration.
        check_url(url, allow_private=allow_private)
    except WebhookUrlRefused as exc:
        return SendResult(None, exc.message, elapsed())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret=secret, body=body, timestamp=int(time.time())),
        EVENT_ID_HEADER: event_id,
        DELIVERY_ID_HEADER: delivery_id,
    }
    try:
        # stream=True: the answer's body is never read, so a huge one costs nothing.
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True)
    except requests.RequestException as exc:
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed())
    response.close()
    error = "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return SendResult(response.status_code, error, elapsed())
