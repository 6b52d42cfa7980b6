"""Cursor pagination as the contract gives it: ``?limit=`` (≤ 100) and ``?cursor=``."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination as _CursorPagination


class CursorPagination(_CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    # Ids are time-sortable, so "-id" is newest first and unique: a stable cursor.
    ordering = "-id"
