"""Errors of the wallets app: the domain errors (contract codes from config.errors) and the ledger's own.

``LedgerError`` is a programming error in how an entry was assembled, never the client's fault.
"""

from __future__ import annotations

from config.errors import InvalidStatus, LimitExceeded


class LedgerError(Exception):
    """A programming error in how an entry was assembled (never the client's fault)."""


class AmountOutsideLimits(LimitExceeded):
    default_message = "The amount is outside the allowed limits."

    @classmethod
    def check(cls, amount: int, minimum: int, maximum: int, what: str) -> None:
        """Raises unless ``minimum <= amount <= maximum`` (``what``: "deposit", "withdrawal")."""
        if amount < minimum or amount > maximum:
            raise cls(f"A {what} must be between {minimum} and {maximum} minor units; got {amount}.", param="amount")


class WithdrawalNotPending(InvalidStatus):
    default_message = "Only a pending withdrawal can be approved or rejected."
