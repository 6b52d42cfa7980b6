"""Back office for orders and their events. Read-only: status changes only through services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts.request import signed_in_user
from config.admin import HistoryMixin, ReadOnlyAdmin, ReadOnlyInline, admin_link, admin_links
from orders.models import DeliveryAttempt, EventDelivery, Order, OrderEvent, WebhookEndpoint
from orders.services.events import delivery_redeliver
from wallets.models import Entry


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("id", "type", "created_at", "dispatched_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Order)
class OrderAdmin(HistoryMixin, ReadOnlyAdmin):
    list_display = ("id", "status", "buyer", "merchant", "product", "quantity", "amount", "currency",
                    "payment_method", "created_at")  # fmt: skip
    list_filter = ("status", "payment_method", "currency")
    search_fields = ("=id", "buyer__email", "buyer__first_name", "buyer__last_name", "=payment__id",
                     "=product__id", "=payment__stripe_payment_intent_id")  # fmt: skip
    list_select_related = ("buyer", "merchant", "product")
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = (OrderEventInline,)
    exclude = ("fulfillment",)
    readonly_fields = ("neighbours",)
    change_form_template = "admin/orders/order/change_form.html"

    @admin.display(description="Linked")
    def neighbours(self, order: Order) -> str:
        payment = order.payment
        refunds = list(payment.refunds.all()) if payment is not None else []
        entries = Entry.objects.filter(reference__in=[order.pk, *(r.pk for r in refunds)]).order_by("id")
        customer = format_html('<a href="{}">{}</a>', reverse("admin:accounts_user_customer", args=[order.buyer_id]),
                               order.buyer)  # fmt: skip
        return format_html(
            "customer {} · merchant {} · product {} · payment {} · refunds {} · ledger entries {}",
            customer, admin_link(order.merchant), admin_link(order.product), admin_link(payment),
            admin_links(refunds), admin_links(entries),
        )  # fmt: skip


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ("created_at", "status_code", "error", "duration_ms")
    readonly_fields = fields


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "url", "status", "attempts", "last_status_code", "next_attempt_at", "delivered_at")
    list_filter = ("status",)
    search_fields = ("=id", "=event__id", "=event__order__id", "url")
    list_select_related = ("event",)
    inlines = (DeliveryAttemptInline,)
    actions = ("redeliver",)

    @admin.action(description="Redeliver the selected events now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[EventDelivery]) -> None:
        count = 0
        for delivery_id in queryset.values_list("pk", flat=True):
            delivery_redeliver(delivery_id=delivery_id, actor=signed_in_user(request))
            count += 1
        self.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "order", "merchant", "created_at", "dispatched_at")
    list_filter = ("type",)
    search_fields = ("=id", "=order__id")
    list_select_related = ("merchant",)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "merchant", "url", "created_at", "deleted_at")
    search_fields = ("=id", "merchant__email", "url")
    list_select_related = ("merchant",)
    exclude = ("secret",)
