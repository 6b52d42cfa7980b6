from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        # Models are ready only now; apps.py is wiring (top layer), so these imports point down.
        from orders import hooks, tasks  # noqa: F401 - tasks: registers the task names services queue by

        hooks.register()
