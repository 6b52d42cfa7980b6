"""The auth endpoints of the contract: register, token, refresh with rotation, logout, me, password."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.conftest import assert_error, client_for
from tests.factories import PASSWORD, CustomerFactory

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"
PASSWORD_URL = "/api/v1/me/password"
STRONG = "violet-tangerine-harbor-91"

pytestmark = pytest.mark.django_db


def _register(api, **overrides):
    body = {"email": "ada@example.test", "password": STRONG, "role": "customer"}
    body.update(overrides)
    return api.post(REGISTER, body, format="json")


def _login(api, email, password=PASSWORD):
    return api.post(TOKEN, {"email": email, "password": password}, format="json")


def _bearer(api, access):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return api


# --- register -------------------------------------------------------------------


def test_register_customer_when_valid_then_201_with_user_and_working_tokens(api):
    response = _register(api, email="Ada@Example.TEST", first_name="Ada", last_name="Lovelace")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    user = body["user"]
    assert set(user) == {"id", "email", "role", "first_name", "last_name", "created_at"}
    assert user["id"].startswith("usr_")
    assert user["email"] == "ada@example.test"
    assert user["role"] == "customer"
    assert (user["first_name"], user["last_name"]) == ("Ada", "Lovelace")
    assert "password" not in response.content.decode()
    me = _bearer(api, body["access"]).get(ME)
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


def test_register_merchant_when_valid_then_role_merchant(api):
    response = _register(api, role="merchant")

    assert response.status_code == 201
    assert response.json()["user"]["role"] == "merchant"
    assert User.objects.get(email="ada@example.test").role == "merchant"


def test_register_when_email_taken_in_any_case_then_400_validation_error_on_email(api):
    assert _register(api, email="grace@example.test").status_code == 201

    response = _register(api, email="GRACE@Example.Test")

    assert_error(response, 400, "validation_error", "email")
    assert User.objects.filter(email__iexact="grace@example.test").count() == 1


@pytest.mark.parametrize(
    "password",
    ["short1", "password123", "12345678901234", "ada@example.test"],
    ids=["too-short", "common", "numeric", "same-as-email"],
)
def test_register_when_password_weak_then_400_on_password(api, password):
    response = _register(api, password=password)

    assert_error(response, 400, "validation_error", "password")
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"role": "staff"}, "role"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"password": ""}, "password"),
    ],
    ids=["role-staff", "bad-email", "null-email", "empty-password"],
)
def test_register_when_field_invalid_then_400_names_the_field(api, overrides, param):
    response = _register(api, **overrides)

    assert_error(response, 400, "validation_error", param)
    assert not User.objects.exists()


def test_register_when_body_not_json_then_400_in_envelope(api):
    response = api.post(REGISTER, "{not json", content_type="application/json")

    assert_error(response, 400, "validation_error")


# --- token ------------------------------------------------------------------------


def test_token_when_credentials_right_then_200_pair_whatever_email_case(api, customer):
    response = _login(api, customer.email.upper())

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert _bearer(api, body["access"]).get(ME).json()["email"] == customer.email


def test_token_when_password_wrong_then_401_authentication_failed(api, customer):
    response = _login(api, customer.email, "not-the-password")

    error = assert_error(response, 401, "authentication_failed")
    assert error["type"] == "authentication_error"
    assert "access" not in response.content.decode()


def test_token_when_email_unknown_then_401_authentication_failed(api):
    assert_error(_login(api, "nobody@example.test"), 401, "authentication_failed")


def test_token_when_user_inactive_then_401(api):
    user = CustomerFactory.create(is_active=False)

    assert_error(_login(api, user.email), 401, "authentication_failed")


def test_token_when_fields_missing_then_400_names_the_field(api):
    assert_error(api.post(TOKEN, {"email": "a@example.test"}, format="json"), 400, "validation_error", "password")


# --- refresh and rotation ----------------------------------------------------------


def test_refresh_when_valid_then_new_pair_and_old_refresh_rejected(api, customer):
    first = _login(api, customer.email).json()

    rotated = api.post(REFRESH, {"refresh": first["refresh"]}, format="json")

    assert rotated.status_code == 200, rotated.content
    pair = rotated.json()
    assert set(pair) == {"access", "refresh"}
    assert pair["refresh"] != first["refresh"]
    assert _bearer(api, pair["access"]).get(ME).status_code == 200
    api.credentials()
    reused = api.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert_error(reused, 401, "token_invalid")
    assert api.post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 200


def test_refresh_when_token_garbage_then_401_token_invalid(api):
    assert_error(api.post(REFRESH, {"refresh": "abc.def.ghi"}, format="json"), 401, "token_invalid")


def test_refresh_when_given_an_access_token_then_401(api, customer):
    access = _login(api, customer.email).json()["access"]

    assert_error(api.post(REFRESH, {"refresh": access}, format="json"), 401, "token_invalid")


def test_refresh_when_user_deactivated_then_401(api, customer):
    refresh = _login(api, customer.email).json()["refresh"]
    User.objects.filter(pk=customer.pk).update(is_active=False)

    response = api.post(REFRESH, {"refresh": refresh}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


# --- logout -------------------------------------------------------------------------


def test_logout_then_refresh_with_that_token_is_401(api, customer):
    pair = _login(api, customer.email).json()
    _bearer(api, pair["access"])

    response = api.post(LOGOUT, {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 204
    assert response.content == b""
    api.credentials()
    assert_error(api.post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401, "token_invalid")


def test_logout_when_not_authenticated_then_401(api, customer):
    refresh = _login(api, customer.email).json()["refresh"]

    assert_error(api.post(LOGOUT, {"refresh": refresh}, format="json"), 401, "authentication_failed")
    assert api.post(REFRESH, {"refresh": refresh}, format="json").status_code == 200


def test_logout_when_refresh_token_of_someone_else_then_401_and_token_still_works(api, customer):
    other = CustomerFactory.create()
    others_refresh = _login(api, other.email).json()["refresh"]

    response = client_for(customer).post(LOGOUT, {"refresh": others_refresh}, format="json")

    assert_error(response, 401, "token_invalid", "refresh")
    assert api.post(REFRESH, {"refresh": others_refresh}, format="json").status_code == 200


def test_logout_when_refresh_missing_then_400_on_refresh(customer_api):
    assert_error(customer_api.post(LOGOUT, {}, format="json"), 400, "validation_error", "refresh")


# --- me -------------------------------------------------------------------------------


def test_me_get_when_authenticated_then_own_profile(customer_api, customer):
    response = customer_api.get(ME)

    assert response.status_code == 200
    assert response.json() == {
        "id": customer.pk,
        "email": customer.email,
        "role": "customer",
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "created_at": customer.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_me_when_no_token_then_401_authentication_failed(api):
    response = api.get(ME)

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_me_when_token_garbage_then_401_token_invalid(api):
    assert_error(_bearer(api, "not-a-jwt").get(ME), 401, "token_invalid")


def test_me_patch_when_names_given_then_updated_and_email_role_untouched(customer_api, customer):
    response = customer_api.patch(
        ME, {"first_name": "Grace", "last_name": "Hopper", "email": "x@example.test", "role": "merchant"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["first_name"], body["last_name"]) == ("Grace", "Hopper")
    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name) == ("Grace", "Hopper")
    assert customer.email != "x@example.test"
    assert customer.role == "customer"


def test_me_patch_when_name_too_long_then_400_on_that_field(customer_api):
    assert_error(customer_api.patch(ME, {"last_name": "x" * 151}, format="json"), 400, "validation_error", "last_name")


# --- password -----------------------------------------------------------------------


def test_password_change_when_old_right_then_204_new_works_old_and_sessions_revoked(api, customer):
    pair = _login(api, customer.email).json()
    _bearer(api, pair["access"])

    response = api.post(PASSWORD_URL, {"old_password": PASSWORD, "new_password": STRONG}, format="json")

    assert response.status_code == 204, response.content
    api.credentials()
    assert_error(_login(api, customer.email), 401, "authentication_failed")
    assert _login(api, customer.email, STRONG).status_code == 200
    assert_error(api.post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401, "token_invalid")


def test_password_change_when_old_wrong_then_400_on_old_password(customer_api, customer):
    response = customer_api.post(PASSWORD_URL, {"old_password": "wrong", "new_password": STRONG}, format="json")

    assert_error(response, 400, "validation_error", "old_password")
    customer.refresh_from_db()
    assert customer.check_password(PASSWORD)


def test_password_change_when_new_weak_then_400_on_new_password(customer_api, customer):
    response = customer_api.post(PASSWORD_URL, {"old_password": PASSWORD, "new_password": "1234"}, format="json")

    assert_error(response, 400, "validation_error", "new_password")
    customer.refresh_from_db()
    assert customer.check_password(PASSWORD)


def test_password_change_when_not_authenticated_then_401(api):
    response = api.post(PASSWORD_URL, {"old_password": PASSWORD, "new_password": STRONG}, format="json")

    assert_error(response, 401, "authentication_failed")
