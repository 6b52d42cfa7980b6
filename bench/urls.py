"""config.urls plus the bench-only ping (never served by production)."""

from django.urls import path

from bench.views import ping
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as platform_urlpatterns

urlpatterns = [path("bench/ping", ping, name="bench-ping"), *platform_urlpatterns]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
