from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_platform_accounts(sender: AppConfig, **kwargs: Any) -> None:
    from django.conf import settings

    from wallets.services import platform_accounts_ensure, platform_accounts_forget

    platform_accounts_forget()
    platform_accounts_ensure(settings.PLATFORM_CURRENCY)


class WalletsConfig(AppConfig):
    name = "wallets"
    verbose_name = "Wallets and ledger"

    def ready(self) -> None:
        post_migrate.connect(_create_platform_accounts, sender=self)
