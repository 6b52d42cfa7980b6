"""``/metrics``: Prometheus text for Django's counters and the platform's own, behind ``METRICS_TOKEN``.

Under gunicorn (``PROMETHEUS_MULTIPROC_DIR``, set by ``config/gunicorn.py``) it sums every worker's values.
"""

from __future__ import annotations

import hmac

import prometheus_client
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from config.metrics import registry_for_scrape


def _authorized(request: HttpRequest) -> bool:
    """``Authorization: Bearer <METRICS_TOKEN>``; without a token configured, only while DEBUG is on."""
    token = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG:
            return True
        raise Http404("no metrics here")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse("A valid metrics token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = registry_for_scrape() or prometheus_client.REGISTRY
    return HttpResponse(prometheus_client.generate_latest(registry), content_type=prometheus_client.CONTENT_TYPE_LATEST)
