"""The dashboard's sales: the filtered list, one order's detail, a refund through a confirmation step, the CSV.

Refunds go through ``payments.services.refunds.refund_create``, the API's service; the export is streamed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from config.errors import DomainError
from dashboard.common import form_error, merchant_of, merchant_required, not_found, paginate
from dashboard.forms import RefundForm
from orders import sales_reports
from orders import selectors as order_selectors
from orders.errors import OrderNotFound
from orders.models import OrderStatus
from payments.services.refunds import refund_create


class SalesFilter(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *OrderStatus.choices], required=False)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=64, label="Order id")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data


def _filtered(request: HttpRequest) -> tuple[SalesFilter, Any]:
    form = SalesFilter(request.GET or None)
    values: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    orders = sales_reports.sales_filtered(
        merchant=merchant_of(request),
        status=values.get("status") or None,
        since=values.get("since"),
        until=values.get("until"),
        search=values.get("q") or "",
    )
    return form, orders


@merchant_required
def sales(request: HttpRequest) -> HttpResponse:
    form, orders = _filtered(request)
    page, query = paginate(request, orders)
    filtered = any(request.GET.get(key) for key in ("status", "since", "until", "q"))
    context = {"form": form, "page": page, "query": query, "filtered": filtered}
    return render(request, "dashboard/sales.html", context)


class _Echo:
    """A file-like object whose ``write`` hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@merchant_required
def sales_csv(request: HttpRequest) -> StreamingHttpResponse | HttpResponse:
    form, orders = _filtered(request)
    if request.GET and not form.is_valid():
        return HttpResponse(f"Bad filter: {form.errors.as_text()}", status=400, content_type="text/plain")
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(sales_reports.CSV_HEADER)
        for row in sales_reports.sales_csv_rows(orders):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="sales-{date.today().isoformat()}.csv"'
    return response


def _sale_context(order: Any, form: RefundForm) -> dict[str, Any]:
    return {
        "order": order,
        "form": form,
        "refunds": order_selectors.refunds_of_sale(order=order),
        "goods": order_selectors.goods_of_sale(order=order),
        "events": order_selectors.events_of_sale(order=order),
        "currency": order.currency,
        "refundable": order.payment.amount - order.payment.amount_refunded if order.payment else 0,
    }


@merchant_required
def sale_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    try:
        order = order_selectors.sale_of_merchant_get(merchant=merchant_of(request), order_id=order_id)
    except OrderNotFound:
        return not_found(request)
    form = RefundForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        amount = form.cleaned_data["amount"]
        if request.POST.get("confirm") != "yes":
            # Step 1 of 2: say exactly what will happen, and ask again.
            context = _sale_context(order, form)
            context["confirm_amount"] = amount if amount is not None else context["refundable"]
            return render(request, "dashboard/refund_confirm.html", context)
        try:
            refund = refund_create(
                order_id=order.id, amount=amount, reason=form.cleaned_data["reason"], requested_by=merchant_of(request)
            )
        except DomainError as error:
            form_error(form, error)
        else:
            messages.success(request, f"Refund {refund.id}: {refund.status}.")
            return redirect("dashboard:sale", order_id=order.id)
    return render(request, "dashboard/sale.html", _sale_context(order, form))
