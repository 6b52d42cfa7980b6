from __future__ import annotations

from django import forms
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from catalog.models import Product


class IntegerFilter(filters.NumberFilter):
    field_class = forms.IntegerField


class PublicProductFilter(filters.FilterSet):
    merchant = filters.CharFilter(field_name="merchant_id", max_length=64, help_text="a merchant's usr_ id")
    search = filters.CharFilter(method="filter_search", max_length=200, help_text="in name and description")
    min_price = IntegerFilter(field_name="price", lookup_expr="gte", min_value=0)
    max_price = IntegerFilter(field_name="price", lookup_expr="lte", min_value=0)
    in_stock = filters.BooleanFilter(method="filter_in_stock", help_text="true: unlimited or at least one left")

    class Meta:
        model = Product
        fields = ("merchant", "search", "min_price", "max_price", "in_stock")

    def filter_search(self, queryset: QuerySet[Product], name: str, value: str) -> QuerySet[Product]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    def filter_in_stock(self, queryset: QuerySet[Product], name: str, value: bool | None) -> QuerySet[Product]:
        if value is None:
            return queryset
        in_stock = Q(stock__isnull=True) | Q(stock__gt=0)
        return queryset.filter(in_stock) if value else queryset.exclude(in_stock)
