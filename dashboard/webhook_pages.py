"""The dashboard's webhook portal: endpoints with event filters, the delivery log, secret rotation, ping, retry.

Writes go through ``orders.services.webhook_endpoints`` (the API's services); a new secret is shown once, in the answer.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.errors import DomainError
from dashboard.common import form_error, merchant_of, merchant_required, not_found, paginate
from orders import webhook_selectors
from orders.errors import WebhookEndpointNotFound
from orders.models import WebhookEndpoint
from orders.services import webhook_endpoints as services
from orders.webhook_serializers import attempt_status


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https", label="URL")
    events = forms.MultipleChoiceField(
        choices=[(t, t) for t in services.SUBSCRIBABLE_EVENTS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="none ticked: every event",
    )


def _render_endpoint(request: HttpRequest, endpoint: WebhookEndpoint, secret: str = "") -> HttpResponse:
    page, query = paginate(request, webhook_selectors.webhook_attempts_of(endpoint=endpoint))
    rows = [(attempt, attempt_status(attempt)) for attempt in page.object_list]
    context: dict[str, Any] = {"endpoint": endpoint, "page": page, "rows": rows, "query": query, "secret": secret}
    return render(request, "dashboard/webhook.html", context)


@merchant_required
def webhooks(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.webhook_endpoint_create(
                merchant=merchant_of(request), url=form.cleaned_data["url"], events=form.cleaned_data["events"]
            )
        except DomainError as error:
            form_error(form, error)
        else:
            messages.success(request, f"Endpoint {created.id} added. Copy its signing secret now.")
            form = WebhookEndpointForm()
    context = {
        "form": form,
        "created": created,  # its secret is shown this once
        "endpoints": webhook_selectors.webhook_endpoints_of(merchant=merchant_of(request)),
    }
    return render(request, "dashboard/webhooks.html", context)


@merchant_required
def webhook_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    try:
        endpoint = webhook_selectors.webhook_endpoint_of(merchant=merchant_of(request), endpoint_id=endpoint_id)
    except WebhookEndpointNotFound:
        return not_found(request)
    return _render_endpoint(request, endpoint)


@merchant_required
@require_POST
def webhook_rotate(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    try:
        endpoint = services.webhook_endpoint_rotate_secret(merchant=merchant_of(request), endpoint_id=endpoint_id)
    except WebhookEndpointNotFound:
        return not_found(request)
    messages.success(request, "New secret made. The old one keeps signing beside it for 24 hours.")
    return _render_endpoint(request, endpoint, secret=endpoint.secret)


@merchant_required
@require_POST
def webhook_test(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    try:
        delivery = services.webhook_endpoint_test(merchant=merchant_of(request), endpoint_id=endpoint_id)
    except WebhookEndpointNotFound:
        return not_found(request)
    answer = delivery.last_status_code or delivery.last_error or "no answer"
    if delivery.last_status_code and 200 <= delivery.last_status_code < 300:
        messages.success(request, f"Ping delivered: the endpoint answered {answer}.")
    else:
        messages.error(request, f"Ping not accepted: {answer}.")
    return redirect("dashboard:webhook", endpoint_id=endpoint_id)


@merchant_required
@require_POST
def webhook_retry(request: HttpRequest, endpoint_id: str, delivery_id: str) -> HttpResponse:
    try:
        delivery = services.webhook_delivery_retry(
            merchant=merchant_of(request), endpoint_id=endpoint_id, delivery_id=delivery_id
        )
    except WebhookEndpointNotFound:
        return not_found(request)
    messages.info(request, f"Sent {delivery.event_id} again: {delivery.get_status_display().lower()}.")
    return redirect("dashboard:webhook", endpoint_id=endpoint_id)


@merchant_required
@require_POST
def webhook_toggle(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    enable = request.POST.get("enabled") == "1"
    try:
        services.webhook_endpoint_update(merchant=merchant_of(request), endpoint_id=endpoint_id, enabled=enable)
    except WebhookEndpointNotFound:
        return not_found(request)
    messages.success(request, "Endpoint enabled." if enable else "Endpoint disabled; events are not sent to it.")
    return redirect("dashboard:webhook", endpoint_id=endpoint_id)


@merchant_required
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    try:
        services.webhook_endpoint_delete(merchant=merchant_of(request), endpoint_id=endpoint_id)
    except WebhookEndpointNotFound:
        return not_found(request)
    messages.success(request, "Endpoint removed; it receives no more events.")
    return redirect("dashboard:webhooks")
