"""accounts.mail: rendered parts, one send per key, a failed send gives its claim back, batches over one connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from accounts.mail import STALE_CLAIM, Mail, mail_send_many, mail_send_once
from accounts.models import SentEmail, SentEmailStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def probe_template(tmp_path: Path, settings: object) -> str:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "probe_subject.txt").write_text("Hello\n {{ name }}\n")
    (tmp_path / "email" / "probe.txt").write_text("text for {{ name }}")
    (tmp_path / "email" / "probe.html").write_text("<p>html for {{ name }}</p>")
    settings.TEMPLATES = [  # type: ignore[attr-defined]
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}  # type: ignore[attr-defined]
    ]
    return "probe"


def test_mail_send_once_when_sent_twice_then_one_message_with_both_parts(probe_template: str) -> None:
    first = mail_send_once(key="k1", to="a@example.com", template=probe_template, context={"name": "Ann"})
    second = mail_send_once(key="k1", to="a@example.com", template=probe_template, context={"name": "Ann"})

    assert (first, second) == (True, False)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "Hello Ann"
    assert message.to == ["a@example.com"]
    assert message.body == "text for Ann"
    assert isinstance(message, EmailMultiAlternatives)
    assert message.alternatives[0][0] == "<p>html for Ann</p>"
    assert SentEmail.objects.get(key="k1").status == SentEmailStatus.SENT


def test_mail_send_once_when_the_send_fails_then_the_retry_sends(
    probe_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.mail.backends.locmem import EmailBackend

    def broken(self: object, messages: object) -> int:
        raise ConnectionError("smtp down")

    with monkeypatch.context() as patch:
        patch.setattr(EmailBackend, "send_messages", broken)
        with pytest.raises(ConnectionError):
            mail_send_once(key="k2", to="a@example.com", template=probe_template, context={"name": "Bo"})
    assert not SentEmail.objects.filter(key="k2").exists()

    assert mail_send_once(key="k2", to="a@example.com", template=probe_template, context={"name": "Bo"})
    assert len(mail.outbox) == 1


def test_settings_when_email_url_is_a_file_url_then_the_file_backend_writes_under_that_absolute_path(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "EMAIL_URL": f"filemail://{tmp_path}/out", "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = "from django.conf import settings as s; print(s.EMAIL_BACKEND, s.EMAIL_FILE_PATH, s.DEFAULT_FROM_EMAIL)"
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split(" ", 2) == [
        "django.core.mail.backends.filebased.EmailBackend",
        f"{tmp_path}/out",
        "Payments <no-reply@localhost>\n",
    ]


def test_mail_send_many_when_a_batch_repeats_keys_already_sent_then_only_the_new_ones_go_out(
    probe_template: str,
) -> None:
    first = [
        Mail(key=f"b{i}", to=f"b{i}@example.com", template=probe_template, context={"name": f"N{i}"}) for i in (1, 2)
    ]
    assert mail_send_many(first) == ["b1", "b2"]
    again = [*first, Mail(key="b3", to="b3@example.com", template=probe_template, context={"name": "N3"})]

    assert mail_send_many(again) == ["b3"]
    assert [m.to for m in mail.outbox] == [["b1@example.com"], ["b2@example.com"], ["b3@example.com"]]
    assert set(SentEmail.objects.values_list("key", "status")) == {(f"b{i}", SentEmailStatus.SENT) for i in (1, 2, 3)}


def test_mail_send_many_when_the_second_send_fails_then_the_first_stays_sent_and_the_rest_are_given_back(
    probe_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.mail.backends.locmem import EmailBackend

    real = EmailBackend.send_messages
    calls: list[int] = []

    def second_fails(self: EmailBackend, messages: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("smtp down")
        return real(self, messages)

    batch = [
        Mail(key=f"c{i}", to=f"c{i}@example.com", template=probe_template, context={"name": "C"}) for i in (1, 2, 3)
    ]
    with monkeypatch.context() as patch:
        patch.setattr(EmailBackend, "send_messages", second_fails)
        with pytest.raises(ConnectionError):
            mail_send_many(batch)
    assert dict(SentEmail.objects.values_list("key", "status")) == {"c1": SentEmailStatus.SENT}

    assert mail_send_many(batch) == ["c2", "c3"]
    assert len(mail.outbox) == 3


def test_mail_send_many_when_a_claim_is_stale_then_it_is_taken_over_and_sent(probe_template: str) -> None:
    SentEmail.objects.create(
        key="d1", to="d1@example.com", template=probe_template, claimed_at=timezone.now() - STALE_CLAIM * 2
    )
    SentEmail.objects.create(key="d2", to="d2@example.com", template=probe_template)  # a live claim: not ours

    assert mail_send_many(
        [Mail(key=k, to=f"{k}@example.com", template=probe_template, context={"name": "D"}) for k in ("d1", "d2")]
    ) == ["d1"]
