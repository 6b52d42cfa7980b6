"""factory-boy factories shared by every app's tests."""

from __future__ import annotations

from typing import Any

import factory
from django.conf import settings

from accounts.models import Role, User
from catalog.models import Product

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    role = Role.CUSTOMER
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance: User, create: bool, results: dict[str, Any] | None = None) -> None:
        """Saves once more after ``set_password`` (``skip_postgeneration_save`` stops factory-boy doing it)."""
        if create:
            instance.save()


class CustomerFactory(UserFactory):
    role = Role.CUSTOMER


class MerchantFactory(UserFactory):
    role = Role.MERCHANT


class StaffFactory(UserFactory):
    role = Role.CUSTOMER
    is_staff = True
    is_superuser = True


class ProductFactory(factory.django.DjangoModelFactory[Product]):
    class Meta:
        model = Product

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"Product {n}")
    description = "A digital product."
    price = 1000
    currency = factory.LazyFunction(lambda: settings.PLATFORM_CURRENCY)
    stock = 10
    is_active = True
    fulfillment = factory.Sequence(lambda n: f"LICENSE-KEY-{n:06d}")
