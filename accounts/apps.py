from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _roles_ensure(sender: AppConfig, **kwargs: Any) -> None:
    from accounts.roles import roles_ensure

    roles_ensure()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # After migrate and after a test's flush: the groups Support and Finance hold their permissions.
        post_migrate.connect(_roles_ensure, sender=self)
