"""The back office's admin site replaces Django's default one (``config.admin.BackOfficeSite``).

Named in ``INSTALLED_APPS`` in place of ``django.contrib.admin``; every ``admin.site`` is this site.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class BackOfficeAdminConfig(AdminConfig):
    default_site = "config.admin.BackOfficeSite"
