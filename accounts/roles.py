"""The back office's roles: the groups Support and Finance, their permissions, and the one check services use.

Every money action of staff goes through ``staff_require``, so the admin, the API and the commands obey one rule.
"""

from __future__ import annotations

from enum import StrEnum

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from accounts.models import User
from config.errors import PermissionDeniedError


class Perm(StrEnum):
    """The custom permissions (``accounts.BackOffice``), as ``user.has_perm`` names them."""

    REFUND = "accounts.refund"
    REFUND_ANY_AMOUNT = "accounts.refund_any_amount"
    DECIDE_WITHDRAWALS = "accounts.decide_withdrawals"
    DECIDE_STAFF_REFUNDS = "accounts.decide_staff_refunds"
    RESOLVE_DISPUTES = "accounts.resolve_disputes"
    REPLAY_EVENTS = "accounts.replay_events"


class StaffGroup(StrEnum):
    SUPPORT = "Support"
    FINANCE = "Finance"


# What each group may do about money (the migration creates them with these and the view permissions).
GROUP_PERMS: dict[StaffGroup, tuple[Perm, ...]] = {
    StaffGroup.SUPPORT: (Perm.REFUND,),
    StaffGroup.FINANCE: tuple(Perm),
}
# Both groups may look everything up: the view permission of every model of these apps.
VIEW_APPS = ("accounts", "wallets", "catalog", "orders", "payments")

_WHAT = {
    Perm.REFUND: "refund orders",
    Perm.REFUND_ANY_AMOUNT: "refund this amount",
    Perm.DECIDE_WITHDRAWALS: "decide withdrawals",
    Perm.DECIDE_STAFF_REFUNDS: "decide staff refunds",
    Perm.RESOLVE_DISPUTES: "resolve disputes",
    Perm.REPLAY_EVENTS: "replay Stripe events",
}


def staff_can(user: User | None, perm: Perm) -> bool:
    """An active staff user holding ``perm`` (through Support or Finance; a superuser holds every one)."""
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm(perm.value))


def staff_require(user: User | None, perm: Perm) -> User:
    """Returns ``user`` if ``staff_can``; raises ``PermissionDeniedError`` naming what was refused."""
    if user is None or not staff_can(user, perm):
        raise PermissionDeniedError(f"Only Finance or Support staff allowed to {_WHAT[perm]} can do this.")
    return user


def staff_refund_check(user: User, amount: int) -> None:
    """A staff refund of ``amount``: Support up to ``SUPPORT_REFUND_LIMIT``, Finance any amount."""
    staff_require(user, Perm.REFUND)
    limit = settings.SUPPORT_REFUND_LIMIT
    if amount > limit and not staff_can(user, Perm.REFUND_ANY_AMOUNT):
        raise PermissionDeniedError(
            f"A refund of {amount} is above the Support limit of {limit}; ask Finance staff to make it.",
            param="amount",
        )


def four_eyes_needed(amount: int) -> bool:
    """A withdrawal or staff refund of at least ``FOUR_EYES_THRESHOLD`` needs two different approvers."""
    return amount >= settings.FOUR_EYES_THRESHOLD


def roles_ensure() -> None:
    """Makes the groups Support and Finance hold their permissions (idempotent).

    The migration ``accounts.0004_backoffice_roles`` made them; this runs after every migrate and flush
    (``post_migrate``), so a flushed test database and models added later get them too.
    """
    views: list[Permission] = []
    for label in VIEW_APPS:
        for model in apps.get_app_config(label).get_models():
            if "view" not in model._meta.default_permissions:
                continue
            content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type,
                codename=f"view_{model._meta.model_name}",
                defaults={"name": f"Can view {model._meta.verbose_name_raw}"},
            )
            views.append(permission)
    backoffice = ContentType.objects.get_by_natural_key("accounts", "backoffice")
    custom: dict[Perm, Permission] = {}
    for perm in Perm:
        codename = perm.value.split(".", 1)[1]
        custom[perm], _ = Permission.objects.get_or_create(
            content_type=backoffice, codename=codename, defaults={"name": codename.replace("_", " ")}
        )
    for name, perms in GROUP_PERMS.items():
        group, _ = Group.objects.get_or_create(name=name.value)
        group.permissions.add(*views, *(custom[perm] for perm in perms))
