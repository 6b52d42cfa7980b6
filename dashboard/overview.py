"""The dashboard's overview: balances, sales totals for today / 7 / 30 days, the revenue chart, latest sales.

Reads only, through the wallets' and orders' selectors.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors as catalog_selectors
from dashboard.charts import revenue_chart
from dashboard.common import merchant_of, merchant_required
from orders import sales_reports
from orders import selectors as order_selectors
from wallets import selectors as wallet_selectors


def balances_of(wallet: wallet_selectors.WalletSummary) -> dict[str, int]:
    """Available, withdrawable, incoming and held, as the API's ``GET wallet`` gives them."""
    return {
        "available": wallet.balance,
        # Issue 14 adds these two to the wallet read; until then all of the balance can be withdrawn now.
        "withdrawable": getattr(wallet, "withdrawable", wallet.balance),
        "incoming": getattr(wallet, "incoming", 0),
        "held": wallet.pending,
    }


@merchant_required
def home(request: HttpRequest) -> HttpResponse:
    merchant = merchant_of(request)
    currency = settings.PLATFORM_CURRENCY
    wallet = wallet_selectors.wallet_summary(merchant)
    days = sales_reports.revenue_by_day(merchant=merchant)
    context = {
        "wallet": wallet,
        "balances": balances_of(wallet),
        "periods": sales_reports.sales_period_totals(merchant=merchant),
        "days": days,
        "chart": revenue_chart(days, currency),
        "recent": order_selectors.sales_recent_of_merchant(merchant=merchant),
        "products_live": catalog_selectors.products_live_count_of_merchant(merchant),
        "currency": currency,
    }
    return render(request, "dashboard/home.html", context)
