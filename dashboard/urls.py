from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("products/", views.products, name="products"),
    path("products/new/", views.product_create, name="product-create"),
    path("products/<str:product_id>/edit/", views.product_edit, name="product-edit"),
    path("products/<str:product_id>/delete/", views.product_delete, name="product-delete"),
    path("sales/", views.sales, name="sales"),
    path("sales/<str:order_id>/", views.sale_detail, name="sale"),
    path("withdrawals/", views.withdrawals, name="withdrawals"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<str:endpoint_id>/delete/", views.webhook_delete, name="webhook-delete"),
]
