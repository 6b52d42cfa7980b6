from django.urls import path

from payments import staff_views, views

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
    path(
        "staff/refunds/<str:refund_id>/approve",
        staff_views.StaffRefundDecisionView.as_view(approve=True),
        name="staff-refund-approve",
    ),
    path(
        "staff/refunds/<str:refund_id>/reject",
        staff_views.StaffRefundDecisionView.as_view(approve=False),
        name="staff-refund-reject",
    ),
]
