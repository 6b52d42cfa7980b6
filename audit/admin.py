"""The audit trail in the back office: every tracked change, read-only, searchable by object id, actor,
address, request id and reason (each object's own page shows its history too)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import UserGroupEvent, UserPermissionEvent
from audit.selectors import EVENT_MODELS
from config.admin import ReadOnlyAdmin


class EventAdmin(ReadOnlyAdmin):
    list_display = ("pgh_created_at", "pgh_label", "object_id", "actor", "address", "request_id", "reason")
    list_filter = ("pgh_label",)
    list_select_related = ("pgh_context",)
    search_fields = ("pgh_obj_id__exact", "=pgh_context__metadata__user", "=pgh_context__metadata__address",
                     "=pgh_context__metadata__request_id", "pgh_context__metadata__reason")  # fmt: skip
    ordering = ("-pgh_id",)
    show_full_result_count = False

    def _meta(self, event: Any) -> dict[str, Any]:
        return (event.pgh_context.metadata if event.pgh_context_id else None) or {}

    @admin.display(description="object")
    def object_id(self, event: Any) -> str:
        return str(getattr(event, "pgh_obj_id", None) or getattr(event, "user_id", ""))

    @admin.display(description="actor")
    def actor(self, event: Any) -> str:
        return str(self._meta(event).get("user") or "system")

    @admin.display(description="address")
    def address(self, event: Any) -> str:
        return str(self._meta(event).get("address") or "")

    @admin.display(description="request id")
    def request_id(self, event: Any) -> str:
        return str(self._meta(event).get("request_id") or "")

    @admin.display(description="reason")
    def reason(self, event: Any) -> str:
        return str(self._meta(event).get("reason") or "")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may look at the tracked model may read its trail.
        tracked = self.model.pgh_tracked_model
        return bool(request.user.has_perm(f"{tracked._meta.app_label}.view_{tracked._meta.model_name}"))


class LinkEventAdmin(EventAdmin):
    search_fields = ("user_id__exact", "=pgh_context__metadata__user", "=pgh_context__metadata__address",
                     "=pgh_context__metadata__request_id", "pgh_context__metadata__reason")  # fmt: skip

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("accounts.view_user"))


for _event_model in EVENT_MODELS.values():
    admin.site.register(_event_model, EventAdmin)
admin.site.register(UserGroupEvent, LinkEventAdmin)
admin.site.register(UserPermissionEvent, LinkEventAdmin)
