from django.urls import path

from orders import views

urlpatterns = [
    path("orders", views.OrderListCreateView.as_view(), name="orders"),
    path("orders/<str:order_id>", views.OrderDetailView.as_view(), name="order"),
    path("orders/<str:order_id>/cancel", views.OrderCancelView.as_view(), name="order-cancel"),
    path("merchant/sales", views.MerchantSalesView.as_view(), name="merchant-sales"),
    path("merchant/webhooks", views.WebhookEndpointListCreateView.as_view(), name="merchant-webhooks"),
    path("merchant/webhooks/<str:endpoint_id>", views.WebhookEndpointDetailView.as_view(), name="merchant-webhook"),
]
