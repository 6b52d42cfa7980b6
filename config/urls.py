from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import errors, health, metrics_endpoint
from payments.views import stripe_webhook

# The public catalog comes first: it is the most read, and resolving it early is cheaper.
api_v1 = [
    path("", include("catalog.urls")),
    path("", include("accounts.urls")),
    path("", include("wallets.urls")),
    path("", include("orders.urls")),
    path("", include("payments.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # Any other /api/ path answers the 404 envelope, also with DEBUG on (where
    # Django would render its HTML debug page instead of handler404).
    re_path(r"^api/", errors.handler404),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    # Stripe's deliveries, at dj-stripe's endpoint URL but served by our lean view; the
    # include stays for reverse("djstripe:djstripe_webhook_by_uuid") and dj-stripe's admin.
    path("stripe/webhook/<uuid:uuid>/", stripe_webhook, name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_endpoint.metrics, name="prometheus-django-metrics"),
]

handler400 = "config.errors.handler400"
handler403 = "config.errors.handler403"
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
