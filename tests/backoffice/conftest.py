"""Users per back-office role, for the permission matrix (API, commands, and the admin's column)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group

from accounts.models import Role, User
from accounts.roles import StaffGroup
from tests.factories import CustomerFactory, MerchantFactory, UserFactory

# Every role of the matrix: a staff user in no group, Support, Finance, a superuser, a merchant, a customer.
ROLES = ("no_group", "support", "finance", "superuser", "merchant", "customer")


def user_in_role(role: str, **fields: object) -> User:
    """A fresh user of ``role`` (one of ``ROLES``)."""
    if role == "merchant":
        return MerchantFactory.create(**fields)
    if role == "customer":
        return CustomerFactory.create(**fields)
    if role == "superuser":
        return UserFactory.create(role=Role.CUSTOMER, is_staff=True, is_superuser=True, **fields)
    user: User = UserFactory.create(role=Role.CUSTOMER, is_staff=True, is_superuser=False, **fields)
    group = {"support": StaffGroup.SUPPORT, "finance": StaffGroup.FINANCE}.get(role)
    if group is not None:
        user.groups.add(Group.objects.get(name=group.value))
    elif role != "no_group":
        raise ValueError(f"unknown role {role}")
    return user


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """``make_user("finance")``: a new user in that role."""
    return user_in_role


@pytest.fixture
def support(db: None) -> User:
    return user_in_role("support")


@pytest.fixture
def finance(db: None) -> User:
    return user_in_role("finance")


@pytest.fixture
def finance2(db: None) -> User:
    return user_in_role("finance")


@pytest.fixture
def no_group(db: None) -> User:
    return user_in_role("no_group")
