from django.urls import path

from catalog import views

urlpatterns = [
    path("products", views.ProductCollectionView.as_view(), name="products"),
    path("products/<str:product_id>", views.ProductDetailView.as_view(), name="product-detail"),
    path("products/<str:product_id>/codes", views.ProductCodesView.as_view(), name="product-codes"),
    path("products/<str:product_id>/file", views.ProductFileView.as_view(), name="product-file"),
    path("merchant/products", views.MerchantProductListView.as_view(), name="merchant-products"),
    path("merchant/products/<str:product_id>", views.MerchantProductDetailView.as_view(), name="merchant-product"),
]
