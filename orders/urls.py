from django.urls import path

from orders import goods_views, views, webhook_views

urlpatterns = [
    path("orders", views.OrderListCreateView.as_view(), name="orders"),
    path("orders/<str:order_id>", views.OrderDetailView.as_view(), name="order"),
    path("orders/<str:order_id>/cancel", views.OrderCancelView.as_view(), name="order-cancel"),
    path("merchant/sales", views.MerchantSalesView.as_view(), name="merchant-sales"),
    path("library", goods_views.LibraryView.as_view(), name="library"),
    path("library/<str:goods_id>/link", goods_views.LibraryLinkView.as_view(), name="library-link"),
    path("downloads/<str:token>", goods_views.DownloadView.as_view(), name="download"),
    path("licenses/<str:key>", goods_views.LicenseCheckView.as_view(), name="license-check"),
    path("merchant/webhooks", webhook_views.WebhookEndpointListCreateView.as_view(), name="merchant-webhooks"),
    path(
        "merchant/webhooks/<str:endpoint_id>",
        webhook_views.WebhookEndpointDetailView.as_view(),
        name="merchant-webhook",
    ),
    path("merchant/webhooks/<str:endpoint_id>/rotate-secret", webhook_views.WebhookEndpointRotateView.as_view()),
    path("merchant/webhooks/<str:endpoint_id>/test", webhook_views.WebhookEndpointTestView.as_view()),
    path("merchant/webhooks/<str:endpoint_id>/deliveries", webhook_views.WebhookDeliveryListView.as_view()),
    path(
        "merchant/webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/retry",
        webhook_views.WebhookDeliveryRetryView.as_view(),
    ),
]
