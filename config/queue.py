"""Queueing a Celery task by its registered name, for code below the tasks module that defines it.

An app's ``tasks.py`` is a surface (it imports the app's services); a service queues one of its tasks
through this, never by importing it. Each app's ``ready()`` imports its tasks so the name is registered.
"""

from __future__ import annotations

from typing import Any

from celery import Task, current_app


def task_named(name: str) -> Task[Any, Any]:
    """The registered task called ``name`` (its ``delay``/``apply_async`` honour eager mode and test patches).

    Raises KeyError when no such task is registered in this process.
    """
    return current_app.tasks[name]
