"""The groups Support and Finance and ``manage.py staff_create``."""

from __future__ import annotations

from io import StringIO
from urllib.parse import parse_qs, urlparse

from django.contrib.auth.models import Group
from django.core.management import call_command
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.roles import Perm, staff_can


def test_groups_when_migrated_then_support_refunds_and_finance_does_everything(db, support, finance, no_group):
    assert set(Group.objects.values_list("name", flat=True)) >= {"Support", "Finance"}
    assert [perm for perm in Perm if staff_can(support, perm)] == [Perm.REFUND]
    assert all(staff_can(finance, perm) for perm in Perm)
    assert not any(staff_can(no_group, perm) for perm in Perm)
    assert support.has_perm("payments.view_refund") and finance.has_perm("wallets.view_withdrawal")
    assert not no_group.has_perm("payments.view_refund")


def test_staff_create_when_new_then_staff_in_group_and_last_line_is_totp_uri(db):
    out = StringIO()
    call_command("staff_create", "--email", "Fin@Example.test", "--group", "Finance",
                 "--password", "a-long-passphrase-2026", stdout=out)  # fmt: skip
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("otpauth://totp/")
    secret = parse_qs(urlparse(last).query)["secret"][0]
    user = User.objects.get(email="fin@example.test")
    assert user.is_staff and not user.is_superuser and user.check_password("a-long-passphrase-2026")
    assert list(user.groups.values_list("name", flat=True)) == ["Finance"]
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed and device.verify_token(totp(device.bin_key))
    import base64

    assert base64.b32decode(secret + "=" * (-len(secret) % 8)) == device.bin_key
    assert AuditEvent.objects.filter(object_id=user.pk, action="staff.create").exists()


def test_staff_create_when_run_again_with_other_group_then_moved_and_same_device(db):
    call_command("staff_create", "--email", "s@example.test", "--group", "Support", stdout=StringIO())
    first = TOTPDevice.objects.get(user__email="s@example.test").key
    out = StringIO()
    call_command("staff_create", "--email", "s@example.test", "--group", "Finance", stdout=out)
    user = User.objects.get(email="s@example.test")
    assert list(user.groups.values_list("name", flat=True)) == ["Finance"]
    assert not user.has_usable_password()
    assert TOTPDevice.objects.get(user=user).key == first
    assert out.getvalue().strip().splitlines()[-1].startswith("otpauth://totp/")
