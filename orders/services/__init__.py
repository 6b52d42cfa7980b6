"""Every write to orders, one module per subject: purchase, cancel, outcomes, events, webhook endpoints.

Import from the submodule (``from orders.services.purchase import order_place``); nothing is re-exported here.
"""
