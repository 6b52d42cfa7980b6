from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from djstripe import signals as djstripe_signals

        from payments import gateway, webhooks

        gateway.configure()
        djstripe_signals.webhook_pre_validate.connect(
            webhooks.drop_secret_override, dispatch_uid="payments.drop_secret_override"
        )
