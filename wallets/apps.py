from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


def _create_platform_accounts(sender: AppConfig, **kwargs: Any) -> None:
    from wallets.ledger import platform_accounts_ensure, platform_accounts_forget

    platform_accounts_forget()
    platform_accounts_ensure(settings.PLATFORM_CURRENCY)


class WalletsConfig(AppConfig):
    name = "wallets"
    verbose_name = "Wallets and ledger"

    def ready(self) -> None:
        # Models are ready only now; apps.py is wiring (top layer), so these imports point down.
        from wallets import hooks, tasks  # noqa: F401 - tasks: registers the task names services queue by

        hooks.register()
        post_migrate.connect(_create_platform_accounts, sender=self)
