"""The import layers of the project, bottom-up: a module imports only from its own layer or the ones below.

Read by ``tests/test_layers.py``, which fails on any upward import or import cycle. Written down once, here.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

# Bottom-up. Patterns are ``fnmatch`` patterns on dotted module names (a package is its ``__init__``).
# A module belongs to the first of these that matches it:
#   1. the surfaces' patterns (a file's role — views, admin, tasks… — puts it on top whatever its app);
#   2. an exact module name in any layer (so ``wallets.ledger`` is the ledger, not a money feature);
#   3. a wildcard pattern in any layer (no two layers' wildcards overlap).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # config.celery stays here: config/__init__ imports it (Celery's pattern for Django, so every process
    # that loads Django has the app shared tasks bind to) and it imports no project module.
    ("config", ("config", "config.*")),
    ("accounts", ("accounts", "accounts.*")),
    ("ledger", ("wallets", "wallets.ledger", "wallets.locks", "wallets.models", "wallets.errors")),
    ("catalog", ("catalog", "catalog.*")),
    ("payments", ("payments", "payments.*")),
    ("money features", ("wallets.*", "orders", "orders.*")),
    # The audit trail tracks models of every app below (django-pghistory's event models).
    ("audit", ("audit", "audit.*")),
    (
        "surfaces",
        (
            "*.views",
            "*.staff_views",
            "*.serializers",
            "*.webhook_views",
            "*.webhook_serializers",
            "*.goods_views",
            "*.goods_serializers",
            "*.urls",
            "*.admin",
            "*.apps",
            "*.tasks",
            "*.management",
            "*.management.*",
            "*.templatetags",
            "*.templatetags.*",
            "catalog.dashboard*",
            "dashboard",
            "dashboard.*",
            "bench",
            "bench.*",
            "manage",
            "config.urls",
            "config.wsgi",
            "config.asgi",
            "config.gunicorn",
            "config.serve",
            # Middleware that authenticates (accounts) and is named only in settings.MIDDLEWARE.
            "config.idempotency",
        ),
    ),
]

LAYER_NAMES = [name for name, _ in LAYERS]


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of a project module; raises LookupError for a module no layer names."""
    surfaces = len(LAYERS) - 1
    if any(fnmatchcase(module, pattern) for pattern in LAYERS[surfaces][1]):
        return surfaces
    for index, (_, patterns) in enumerate(LAYERS):
        if module in patterns:
            return index
    for index, (_, patterns) in enumerate(LAYERS):
        if any("*" in pattern and fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise LookupError(f"no layer in config.layers for module {module}")
