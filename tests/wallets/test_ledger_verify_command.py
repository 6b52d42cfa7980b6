"""``manage.py ledger_verify`` as operators run it: a separate process and its exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.factories import CustomerFactory
from tests.wallets.conftest import fund
from wallets.models import Account

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = quote(settings["HOST"], safe="")  # a unix-socket directory (the embedded server) or a name
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{settings['NAME']}"


def _ledger_verify() -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", "ledger_verify", "--progress", "never"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_ledger_verify_process_when_sound_then_0_and_when_broken_then_1_naming_account():
    customer = CustomerFactory.create()
    fund(customer, 4_200)
    sound = _ledger_verify()
    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "Ledger OK" in sound.stdout

    account = Account.objects.get(owner=customer)
    Account.objects.filter(pk=account.pk).update(balance=4_201)
    broken = _ledger_verify()
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"account {account.pk}: balance 4201, postings sum to 4200" in broken.stdout + broken.stderr
