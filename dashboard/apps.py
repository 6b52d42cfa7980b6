from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The merchant dashboard: server-rendered pages above every domain app (as django-oscar's dashboard)."""

    name = "dashboard"
    verbose_name = "Merchant dashboard"
