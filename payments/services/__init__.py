"""Every write to payments, refunds, disputes, saved cards and Stripe events, one module per subject.

Import from the submodule (``from payments.services.refunds import refund_create``); nothing is re-exported here.
Stripe is never called inside a transaction or while a row lock is held: lock, mark pending, commit; call
Stripe with an idempotency key; lock again, re-read, finish (``payments.gateway`` refuses calls inside one).
"""
