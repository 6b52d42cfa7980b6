"""ledger_verify outside a transaction on PostgreSQL: the checks run at once, each on a connection of its own."""

from __future__ import annotations

import pytest
from django.db import connection, connections, transaction

from tests.factories import CustomerFactory
from tests.wallets.conftest import fund, verify
from wallets import verify as ledger
from wallets.models import Account, Posting

pytestmark = [pytest.mark.django_db(transaction=True)]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_ledger_verify_when_outside_transaction_then_checks_on_other_connections_closed_after(monkeypatch):
    fund(CustomerFactory.create(), 4_200)
    caller = _backend_pid()
    used: list[tuple[int, str]] = []
    wrappers = []
    run_check = ledger.run_check

    def spying_run_check(check: ledger.Check) -> ledger.Failure | None:
        wrappers.append(connections["default"])  # this thread's own
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), current_setting('work_mem')")
            used.append(cursor.fetchone())
        return run_check(check)

    monkeypatch.setattr(ledger, "run_check", spying_run_check)
    code, out = verify()
    assert code == 0, out
    assert len(used) == len(ledger.CHECKS)
    assert caller not in {pid for pid, _ in used}
    assert {work_mem for _, work_mem in used} == {"128MB"}
    assert connections["default"] not in wrappers
    assert [wrapper.connection for wrapper in wrappers] == [None] * len(wrappers)  # all closed again


def test_ledger_verify_when_inside_transaction_then_checks_see_its_uncommitted_writes():
    customer = CustomerFactory.create()
    fund(customer, 4_200)
    account = Account.objects.get(owner=customer)
    with transaction.atomic():
        Account.objects.filter(pk=account.pk).update(balance=4_201)
        code, out = verify()
        transaction.set_rollback(True)
    assert code == 1
    assert f"first: account {account.pk}: balance 4201, postings sum to 4200" in out
    assert verify()[0] == 0


def test_ledger_verify_when_concurrent_and_several_broken_then_lines_in_order_and_first_named():
    customer, other = CustomerFactory.create(), CustomerFactory.create()
    entry = fund(customer, 5_000)
    fund(other, 3_000)
    posting = Posting.objects.get(entry=entry, account__owner=customer)
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # past the immutability trigger
        cursor.execute(f"UPDATE {Posting._meta.db_table} SET amount = amount + 5 WHERE id = %s", [posting.pk])
        cursor.execute("SET session_replication_role = DEFAULT")
    broken_held = Account.objects.get(owner=other)
    Account.objects.filter(pk=broken_held.pk).update(held=10)
    code, out = verify()
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith(("  ok ", "  FAIL "))]
    assert [line.split()[0] for line in lines] == ["FAIL", "ok", "FAIL", "ok", "ok", "FAIL", "ok", "ok", "ok"]
    assert [check.name in line for check, line in zip(ledger.CHECKS, lines, strict=True)] == [True] * len(ledger.CHECKS)
    assert f"  FAIL  every entry's postings sum to zero: 1 broken, first: entry {entry.pk}: postings sum to 5" in out
    assert f"account {posting.account_id}: balance 5000, postings sum to 5005" in out
    assert f"account {broken_held.pk}: held 10, pending withdrawals 0 + open disputes 0" in out
    assert out.rstrip().endswith(f"first: entry {entry.pk}: postings sum to 5")
