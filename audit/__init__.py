"""The audit trail: a history row for every change to users, products, orders, payments, refunds,
withdrawals and disputes, written by database triggers (django-pghistory) with who, where and why."""
