"""Domain errors of the wallets app (contract codes come from config.errors)."""

from __future__ import annotations

from config.errors import InvalidStatus, LimitExceeded


class AmountOutsideLimits(LimitExceeded):
    default_message = "The amount is outside the allowed limits."


class WithdrawalNotPending(InvalidStatus):
    default_message = "Only a pending withdrawal can be approved or rejected."
