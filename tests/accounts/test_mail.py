"""accounts.mail.mail_send_once: rendered parts, one send per key, a failed send gives its claim back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from accounts.mail import mail_send_once
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
    from django.core.mail import EmailMultiAlternatives

    def broken(self: object, fail_silently: bool = False) -> int:
        raise ConnectionError("smtp down")

    with monkeypatch.context() as patch:
        patch.setattr(EmailMultiAlternatives, "send", broken)
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
