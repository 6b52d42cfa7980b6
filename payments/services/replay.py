"""Staff replaying Stripe events that failed: Finance only (``replay_events``), each event under its apply lock.

A processed event is never applied twice (``stripe_event_process``); every replay is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accounts.models import User
from accounts.roles import Perm, staff_require
from accounts.services import audit_record
from payments.models import StripeEvent, StripeEventStatus
from payments.services.events import stripe_event_process
from payments.webhooks import event_apply_lock


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    event_id: str
    outcome: str  # "applied", "busy" (a worker is applying it), "failed", "skipped" (processed already)
    error: str = ""


def stripe_events_replay(*, event_ids: Sequence[str], actor: User | None, reason: str = "") -> list[ReplayOutcome]:
    """Applies each of these events again, oldest first; call outside a transaction.

    Raises PermissionDeniedError unless ``actor`` may replay events. One event's failure is recorded on the
    event (``failed``, ``last_error``) and in its outcome; the others still run.
    """
    actor = staff_require(actor, Perm.REPLAY_EVENTS)
    outcomes: list[ReplayOutcome] = []
    events = StripeEvent.objects.filter(pk__in=list(event_ids)).order_by("received_at")
    for event_id, status in events.values_list("pk", "status"):
        if status == StripeEventStatus.PROCESSED:
            outcomes.append(ReplayOutcome(event_id, "skipped"))
            continue
        with event_apply_lock(event_id) as mine:
            if not mine:
                outcomes.append(ReplayOutcome(event_id, "busy"))
                continue
            try:
                stripe_event_process(event_id=event_id)
                outcome = ReplayOutcome(event_id, "applied")
            # Any handler error: stripe_event_process recorded it on the event; the next event still runs.
            except Exception as exc:  # noqa: BLE001
                outcome = ReplayOutcome(event_id, "failed", f"{type(exc).__name__}: {exc}")
        audit_record(
            actor=actor,
            action="stripe_event.replay",
            object_type="stripe_event",
            object_id=event_id,
            data={"outcome": outcome.outcome, "error": outcome.error[:500], "reason": reason[:255]},
        )
        outcomes.append(outcome)
    return outcomes
