"""The audit trail's app: its event tables (one per tracked model) and their triggers.

The triggers are installed after every migrate (``PGTRIGGER_INSTALL_ON_MIGRATE``).
"""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"
