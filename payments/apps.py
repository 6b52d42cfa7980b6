from django.apps import AppConfig
from django.core import checks


def _drop_callback_deprecation_check() -> None:
    """Unregisters dj-stripe's warning that ``DJSTRIPE_WEBHOOK_EVENT_CALLBACK`` is deprecated.

    We keep the callback on purpose: it is dj-stripe 2.11's only hook that
    *replaces* its in-request processing (which syncs objects from Stripe
    synchronously) with ours (claim the event id, apply it after commit in a
    Celery task). The warning has no id, so SILENCED_SYSTEM_CHECKS cannot name
    it, and it would fail ``check --deploy --fail-level WARNING``.
    """
    from djstripe.checks import check_webhook_event_callback_accepts_api_key

    checks.registry.registry.registered_checks.discard(check_webhook_event_callback_accepts_api_key)


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from djstripe import signals as djstripe_signals

        from payments import gateway, webhooks

        gateway.configure()
        _drop_callback_deprecation_check()
        djstripe_signals.webhook_pre_validate.connect(
            webhooks.drop_secret_override, dispatch_uid="payments.drop_secret_override"
        )
