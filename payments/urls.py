from django.urls import path

from payments import views

urlpatterns = [
    path("payments", views.PaymentListView.as_view(), name="payments"),
    path("payments/<str:payment_id>", views.PaymentDetailView.as_view(), name="payment"),
    path("payment-methods", views.PaymentMethodListCreateView.as_view(), name="payment-methods"),
    path("payment-methods/setup-intent", views.SetupIntentView.as_view(), name="payment-methods-setup-intent"),
    path("payment-methods/<str:payment_method_id>", views.PaymentMethodDetailView.as_view(), name="payment-method"),
    path(
        "payment-methods/<str:payment_method_id>/default",
        views.PaymentMethodDefaultView.as_view(),
        name="payment-method-default",
    ),
    path("refunds", views.RefundCreateView.as_view(), name="refunds"),
    path("refunds/<str:refund_id>", views.RefundDetailView.as_view(), name="refund"),
]
