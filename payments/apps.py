from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        # Models are ready only now; apps.py is wiring (top layer), so these imports point down.
        from payments import gateway, tasks  # noqa: F401 - tasks: registers the task names webhooks queue by

        gateway.configure()
