"""WSGI entry point (gunicorn): the application, and the start-up warnings gunicorn's lack of system checks skips.

Static files not collected are logged here at start (config.E010's message); pages still render without them.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from config.health import static_files_log_at_start  # noqa: E402  # needs the apps loaded above

static_files_log_at_start()
