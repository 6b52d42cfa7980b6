"""Signed order events over HTTP, the Standard Webhooks way: secrets, signatures, the target guard and one POST.

The target is resolved once and the POST connects to that checked address (Host header and TLS SNI of the name).
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from orders.errors import WebhookUrlRefused

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
# A 2xx within 10 s is success (contract section 5): connect, read.
TIMEOUT = urllib3.Timeout(connect=3.05, read=10.0)
USER_AGENT = "payments-platform-webhooks/2"
PUBLIC_PORTS = frozenset({80, 443})
RESPONSE_EXCERPT_BYTES = 500
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def secret_new() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(*, secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated (rotation)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return " ".join(Webhook(secret).sign(msg_id, moment, body.decode()) for secret in secrets_)


def headers_for(*, secrets_: list[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt of one event."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secrets_=secrets_, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def private_targets_allowed() -> bool:
    """Merchant URLs may point at private hosts and other ports only when ``WEBHOOK_ALLOW_PRIVATE_TARGETS``."""
    return bool(settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)


def is_public_address(address: str) -> bool:
    """Global unicast only; IPv4 embedded in IPv6 (mapped, 6to4) is judged as IPv4, NAT64 is refused."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64 or ip in NAT64_LOCAL:
            return False  # a NAT64 gateway would translate it to any IPv4 address, private ones included
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            if not is_public_address(str(ip.sixtofour)):
                return False
        elif ip.teredo is not None:
            return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``address``) and what to call it (``host`` for Host and SNI)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _parse(url: str) -> tuple[str, str, int, str]:
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
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def target_resolve(url: str, *, allow_private: bool) -> Target:
    """Resolves the URL's host once and checks the port and every address; raises WebhookUrlRefused."""
    scheme, host, port, path = _parse(url)
    if not allow_private and port not in PUBLIC_PORTS:
        raise WebhookUrlRefused("The URL must use port 80 or 443.", param="url")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookUrlRefused("The URL's host does not resolve.", param="url") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise WebhookUrlRefused("The URL's host does not resolve.", param="url")
    if not allow_private and not all(is_public_address(address) for address in addresses):
        raise WebhookUrlRefused("The URL must point at a public address.", param="url")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)


def check_url(url: str, *, allow_private: bool) -> str:
    """Registration-time check of a merchant URL (resolved only when private targets are refused); returns it."""
    if allow_private:
        _parse(url)
    else:
        target_resolve(url, allow_private=False)
    return url


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    error: str
    duration_ms: int
    response_excerpt: str = ""
    address: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _pool(target: Target) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        # Connect to the checked address; certificate and SNI are those of the name.
        return urllib3.HTTPSConnectionPool(
            target.address,
            port=target.port,
            timeout=TIMEOUT,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(target.address, port=target.port, timeout=TIMEOUT, retries=False, maxsize=1)


def send(*, url: str, body: bytes, headers: dict[str, str], allow_private: bool) -> SendResult:
    """POSTs one signed event to the address checked just before; never raises; redirects are not followed."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = target_resolve(url, allow_private=allow_private)
    except WebhookUrlRefused as exc:
        return SendResult(None, exc.message, elapsed())
    request_headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    pool = _pool(target)
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers=request_headers, redirect=False, preload_content=False
        )
        try:
            excerpt = response.read(RESPONSE_EXCERPT_BYTES, decode_content=False)
        finally:
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed(), address=target.address)
    finally:
        pool.close()
    status = response.status
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    text = excerpt.decode("utf-8", "replace")[:RESPONSE_EXCERPT_BYTES]
    return SendResult(status, error, elapsed(), response_excerpt=text, address=target.address)
