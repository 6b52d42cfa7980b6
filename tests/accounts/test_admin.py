"""Users created or edited in the admin follow the API's rule: one account per email, whatever its case."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/accounts/user/add/"
STRONG = "violet-tangerine-harbor-91"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _add(admin_client, email):
    return admin_client.post(ADD, {"email": email, "role": "merchant", "password1": STRONG, "password2": STRONG})


def test_admin_add_user_when_email_mixed_case_then_stored_lowercase_and_can_log_in(admin_client, api):
    response = _add(admin_client, "New.Merchant@Example.TEST")

    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(email="new.merchant@example.test")
    assert user.role == "merchant"
    login = api.post("/api/v1/auth/token", {"email": "New.Merchant@example.test", "password": STRONG}, format="json")
    assert login.status_code == 200


def test_admin_add_user_when_email_taken_in_other_case_then_form_error_and_no_user(admin_client):
    existing = CustomerFactory.create()

    response = _add(admin_client, existing.email.upper())

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact=existing.email).count() == 1


def test_admin_edit_user_when_email_changed_to_other_users_in_other_case_then_refused(admin_client):
    first, second = CustomerFactory.create(), CustomerFactory.create()
    page = admin_client.get(f"/admin/accounts/user/{second.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update({"email": first.email.upper(), "groups": [], "user_permissions": []})

    response = admin_client.post(f"/admin/accounts/user/{second.pk}/change/", data)

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    second.refresh_from_db()
    assert second.email != first.email
