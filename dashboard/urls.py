from django.urls import path

from dashboard import balance_pages, overview, product_pages, sales_pages, views, webhook_pages

app_name = "dashboard"

urlpatterns = [
    path("", overview.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("products/", product_pages.products, name="products"),
    path("products/new/", product_pages.product_create, name="product-create"),
    path("products/<str:product_id>/", product_pages.product_detail, name="product"),
    path("products/<str:product_id>/codes/", product_pages.product_codes_upload, name="product-codes"),
    path("products/<str:product_id>/file/", product_pages.product_file_upload, name="product-file"),
    path("products/<str:product_id>/edit/", views.product_edit, name="product-edit"),
    path("products/<str:product_id>/delete/", views.product_delete, name="product-delete"),
    path("sales/", sales_pages.sales, name="sales"),
    path("sales.csv", sales_pages.sales_csv, name="sales-csv"),
    path("sales/<str:order_id>/", sales_pages.sale_detail, name="sale"),
    path("balance/", balance_pages.balance, name="balance"),
    path("statement.csv", balance_pages.statement_csv, name="statement-csv"),
    path("webhooks/", webhook_pages.webhooks, name="webhooks"),
    path("webhooks/<str:endpoint_id>/", webhook_pages.webhook_detail, name="webhook"),
    path("webhooks/<str:endpoint_id>/rotate/", webhook_pages.webhook_rotate, name="webhook-rotate"),
    path("webhooks/<str:endpoint_id>/test/", webhook_pages.webhook_test, name="webhook-test"),
    path("webhooks/<str:endpoint_id>/toggle/", webhook_pages.webhook_toggle, name="webhook-toggle"),
    path("webhooks/<str:endpoint_id>/delete/", webhook_pages.webhook_delete, name="webhook-delete"),
    path(
        "webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/retry/",
        webhook_pages.webhook_retry,
        name="webhook-retry",
    ),
    # The old address of the balance page.
    path("withdrawals/", balance_pages.balance, name="withdrawals"),
]
