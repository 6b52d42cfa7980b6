"""The dashboard's app config: it registers the start-up check that static files were collected."""

from django.apps import AppConfig
from django.core import checks

from config.health import STATIC_COLLECTED_TAG, check_static_files


class DashboardConfig(AppConfig):
    """The merchant dashboard: server-rendered pages above every domain app (as django-oscar's dashboard)."""

    name = "dashboard"
    verbose_name = "Merchant dashboard"

    def ready(self) -> None:
        checks.register(check_static_files, STATIC_COLLECTED_TAG)
