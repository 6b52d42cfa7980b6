"""The dashboard's products: the list with stock and sold counts, creation with a delivery kind, one product's page
with its code pool (uploaded from a text file, one code a line) or its file; editing lives in ``dashboard.views``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.errors import ProductNotFound
from catalog.models import Delivery
from config.errors import DomainError
from dashboard.common import form_error, merchant_of, merchant_required, not_found, paginate
from dashboard.forms import MoneyField
from orders.sales_reports import units_sold_by_product

MAX_CODES_FILE_BYTES = 1024 * 1024


class ProductCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    price = MoneyField()
    delivery = forms.ChoiceField(
        choices=Delivery.choices,
        initial=Delivery.TEXT,
        required=False,
        help_text="text: the same content for every buyer; codes: one code from your pool per unit; "
        "licence key: a fresh key per unit; file: a download link",
    )
    stock = forms.IntegerField(min_value=0, required=False, help_text="empty: unlimited (codes: the pool's size)")
    fulfillment = forms.CharField(
        max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}), strip=False,
        help_text="text products: what every buyer receives once paid",
    )  # fmt: skip
    download_limit = forms.IntegerField(min_value=1, max_value=1000, initial=5, required=False)
    download_ttl_hours = forms.IntegerField(min_value=1, max_value=8760, initial=72, required=False)
    is_active = forms.BooleanField(required=False, initial=True, label="Active (listed in the catalog)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        delivery = data["delivery"] = data.get("delivery") or Delivery.TEXT
        if delivery == Delivery.TEXT and not (data.get("fulfillment") or "").strip():
            self.add_error("fulfillment", "A text product needs the content its buyers receive.")
        if delivery == Delivery.CODES and data.get("stock") is not None:
            self.add_error("stock", "A code pool's stock is its number of unsold codes: leave it empty.")
        data["download_limit"] = data.get("download_limit") or 5
        data["download_ttl_hours"] = data.get("download_ttl_hours") or 72
        return data


class CodesUploadForm(forms.Form):
    codes_file = forms.FileField(label="Codes file", help_text="a text file, one code a line (up to 1000)")

    def clean_codes_file(self) -> list[str]:
        upload = self.cleaned_data["codes_file"]
        if upload.size > MAX_CODES_FILE_BYTES:
            raise ValidationError("The file is larger than 1 MB.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError("The file is not UTF-8 text.") from exc
        codes = [line.strip() for line in text.splitlines() if line.strip()]
        if not codes:
            raise ValidationError("The file has no codes in it.")
        return codes


class ProductFileForm(forms.Form):
    file = forms.FileField(help_text=f"at most {settings.MAX_UPLOAD_BYTES // (1024 * 1024)} MB")


@merchant_required
def products(request: HttpRequest) -> HttpResponse:
    merchant = merchant_of(request)
    page, query = paginate(request, catalog_selectors.products_of_merchant_newest_first(merchant))
    sold = units_sold_by_product(merchant=merchant, product_ids=[p.pk for p in page.object_list])
    rows = [(product, sold.get(product.pk, 0)) for product in page.object_list]
    return render(request, "dashboard/products.html", {"page": page, "rows": rows, "query": query})


@merchant_required
def product_create(request: HttpRequest) -> HttpResponse:
    form = ProductCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            product = catalog_services.product_create(merchant=merchant_of(request), **form.cleaned_data)
        except DomainError as error:
            form_error(form, error)
        else:
            follow: dict[str, str] = {Delivery.CODES: " Now upload its codes.", Delivery.FILE: " Now upload its file."}
            messages.success(request, f"Created {product.name} ({product.id}).{follow.get(product.delivery, '')}")
            return redirect("dashboard:product", product_id=product.id)
    return render(request, "dashboard/product_form.html", {"form": form, "product": None})


def _product_page(request: HttpRequest, product: Any, **forms_: Any) -> HttpResponse:
    context: dict[str, Any] = {
        "product": product,
        "codes_form": forms_.get("codes_form") or CodesUploadForm(),
        "file_form": forms_.get("file_form") or ProductFileForm(),
        "product_file": catalog_selectors.product_file_of(product.pk),
        "sold": units_sold_by_product(merchant=product.merchant, product_ids=[product.pk]).get(product.pk, 0),
        "page": None,
        "query": "",
    }
    if product.delivery == Delivery.CODES:
        codes = catalog_selectors.codes_of_product(merchant=product.merchant, product_id=product.pk)
        context["page"], context["query"] = paginate(request, codes, size=50)
    return render(request, "dashboard/product.html", context)


@merchant_required
def product_detail(request: HttpRequest, product_id: str) -> HttpResponse:
    try:
        product = catalog_selectors.product_of_merchant_get(merchant_of(request), product_id)
    except ProductNotFound:
        return not_found(request)
    return _product_page(request, product)


@merchant_required
@require_POST
def product_codes_upload(request: HttpRequest, product_id: str) -> HttpResponse:
    try:
        product = catalog_selectors.product_of_merchant_get(merchant_of(request), product_id)
    except ProductNotFound:
        return not_found(request)
    form = CodesUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            stock = catalog_services.product_codes_add(
                merchant=merchant_of(request), product_id=product.pk, codes=form.cleaned_data["codes_file"]
            )
        except DomainError as error:
            form.add_error("codes_file", error.message)
        else:
            added = len(form.cleaned_data["codes_file"])
            messages.success(request, f"Added {added} code{'s' if added != 1 else ''}; {stock} available to sell.")
            return redirect("dashboard:product", product_id=product.pk)
    return _product_page(request, product, codes_form=form)


@merchant_required
@require_POST
def product_file_upload(request: HttpRequest, product_id: str) -> HttpResponse:
    try:
        product = catalog_selectors.product_of_merchant_get(merchant_of(request), product_id)
    except ProductNotFound:
        return not_found(request)
    form = ProductFileForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            stored = catalog_services.product_file_put(
                merchant=merchant_of(request), product_id=product.pk, upload=form.cleaned_data["file"]
            )
        except DomainError as error:
            form_error(form, error)
        else:
            messages.success(request, f"Stored {stored.name} ({stored.size} bytes, sha256 {stored.sha256[:12]}…).")
            return redirect("dashboard:product", product_id=product.pk)
    return _product_page(request, product, file_form=form)
