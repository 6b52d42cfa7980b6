from django.urls import path

from catalog import dashboard

app_name = "dashboard"

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("login/", dashboard.LoginView.as_view(), name="login"),
    path("logout/", dashboard.LogoutView.as_view(), name="logout"),
    path("products/", dashboard.products, name="products"),
    path("products/new/", dashboard.product_create, name="product-create"),
    path("products/<str:product_id>/edit/", dashboard.product_edit, name="product-edit"),
    path("products/<str:product_id>/delete/", dashboard.product_delete, name="product-delete"),
    path("sales/", dashboard.sales, name="sales"),
    path("sales/<str:order_id>/", dashboard.sale_detail, name="sale"),
    path("withdrawals/", dashboard.withdrawals, name="withdrawals"),
    path("webhooks/", dashboard.webhooks, name="webhooks"),
    path("webhooks/<str:endpoint_id>/delete/", dashboard.webhook_delete, name="webhook-delete"),
]
