"""Every money action x every role, through the API, the management commands and (where no API exists) the
service the admin calls: no group, Support, Finance, superuser, merchant, customer."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from config.errors import PermissionDeniedError
from orders.models import Order
from payments.models import DisputeStatus, Refund, StripeEvent, StripeEventStatus
from payments.services.disputes import dispute_open, dispute_resolve
from payments.services.replay import stripe_events_replay
from tests.backoffice.conftest import ROLES, user_in_role
from tests.conftest import assert_error, client_for
from tests.factories import ProductFactory
from tests.orders.conftest import buy, fund
from tests.wallets.conftest import verify
from wallets.models import Withdrawal
from wallets.withdrawals import withdrawal_request

ALLOWED: dict[str, set[str]] = {
    "refund_small": {"support", "finance", "superuser", "merchant"},
    "refund_above_support_limit": {"finance", "superuser", "merchant"},
    "staff_withdrawals_list": {"finance", "superuser"},
    "withdrawal_approve_api": {"finance", "superuser"},
    "withdrawal_reject_api": {"finance", "superuser"},
    "withdrawal_approve_command": {"finance", "superuser"},
    "withdrawal_reject_command": {"finance", "superuser"},
    "staff_refund_approve_api": {"finance", "superuser"},
    "staff_refund_reject_api": {"finance", "superuser"},
    "dispute_resolve": {"finance", "superuser"},
    "stripe_event_replay": {"finance", "superuser"},
}


class World:
    """One paid wallet order of ``merchant``'s, a pending withdrawal, a refund pending approval, an open
    dispute and a failed Stripe event: everything a money action can act on."""

    def __init__(self, actor_role: str) -> None:
        self.merchant = user_in_role("merchant")
        self.customer = user_in_role("customer")
        self.actor = self.merchant if actor_role == "merchant" else user_in_role(actor_role)
        product = ProductFactory.create(merchant=self.merchant, price=200_000, stock=None, fulfillment="thanks")
        fund(self.customer, 410_000)
        orders = [buy(client_for(self.customer), product.pk).json()["id"] for _ in range(2)]
        self.order = Order.objects.get(pk=orders[0])
        self.withdrawal = withdrawal_request(user=self.customer, amount=1_000)
        requester = user_in_role("finance")
        self.pending_refund = (
            client_for(requester)
            .post("/api/v1/refunds", {"order": orders[1], "amount": 150_000, "reason": "asked"}, format="json")
            .json()["id"]
        )
        assert Refund.objects.get(pk=self.pending_refund).status == "pending_approval"
        self.dispute = dispute_open(
            payment_id=self.order.payment_id or "", stripe_dispute_id=f"dp_{self.order.pk}", amount=1_000
        )
        self.event = StripeEvent.objects.create(
            id=f"evt_{self.order.pk}", type="unknown.kind", status=StripeEventStatus.FAILED
        )


def _api_outcome(response) -> bool:
    if response.status_code in (200, 201):
        return True
    assert_error(response, response.status_code, response.json()["error"]["code"])
    assert response.status_code in (403, 404), response.content  # refused as a matter of rights, not state
    return False


def _command_outcome(*args: str) -> bool:
    try:
        call_command(*args, stdout=StringIO())
    except CommandError as exc:
        assert "permission_denied" in str(exc) or "No staff user" in str(exc), exc
        return False
    return True


def _service_outcome(call: Callable[[], object]) -> bool:
    try:
        call()
    except PermissionDeniedError:
        return False
    return True


def _act(action: str, world: World) -> bool:
    api = client_for(world.actor)
    order, wid = world.order.pk, world.withdrawal.pk
    if action == "refund_small":
        return _api_outcome(api.post("/api/v1/refunds", {"order": order, "amount": 5_000}, format="json"))
    if action == "refund_above_support_limit":
        return _api_outcome(api.post("/api/v1/refunds", {"order": order, "amount": 50_000}, format="json"))
    if action == "staff_withdrawals_list":
        return _api_outcome(api.get("/api/v1/staff/withdrawals"))
    if action in ("withdrawal_approve_api", "withdrawal_reject_api"):
        verb = action.split("_")[1]
        return _api_outcome(api.post(f"/api/v1/staff/withdrawals/{wid}/{verb}", {"reason": "r"}, format="json"))
    if action in ("withdrawal_approve_command", "withdrawal_reject_command"):
        verb = action.split("_")[1]
        return _command_outcome("withdrawals", verb, wid, "--actor", world.actor.email, "--reason", "r")
    if action in ("staff_refund_approve_api", "staff_refund_reject_api"):
        verb = action.split("_")[2]
        url = f"/api/v1/staff/refunds/{world.pending_refund}/{verb}"
        return _api_outcome(api.post(url, {"reason": "r"}, format="json"))
    if action == "dispute_resolve":
        return _service_outcome(
            lambda: dispute_resolve(dispute_id=world.dispute.pk, outcome=DisputeStatus.WON, actor=world.actor)
        )
    if action == "stripe_event_replay":
        return _service_outcome(lambda: stripe_events_replay(event_ids=[world.event.pk], actor=world.actor))
    raise AssertionError(action)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(ALLOWED))
def test_money_action_when_role_then_allowed_only_as_the_contract_says(db: None, action: str, role: str) -> None:
    world = World(role)
    before = Withdrawal.objects.get(pk=world.withdrawal.pk).status
    allowed = _act(action, world)
    assert allowed == (role in ALLOWED[action]), (action, role)
    if not allowed:  # a refusal changes nothing
        assert Withdrawal.objects.get(pk=world.withdrawal.pk).status == before
        assert Refund.objects.get(pk=world.pending_refund).status == "pending_approval"
    assert verify()[0] == 0


def test_matrix_roles_when_listed_then_cover_the_contract(db: None) -> None:
    users: list[User] = [user_in_role(role) for role in ROLES]
    assert [u.is_staff for u in users] == [True, True, True, True, False, False]
