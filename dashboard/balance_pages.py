"""The dashboard's balance: the wallet's ledger lines with running balances, withdrawals, the monthly statement.

Withdrawals go through ``wallets.withdrawals.withdrawal_request``; the statement agrees with the ledger's sums.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from config.errors import DomainError
from dashboard.common import form_error, merchant_of, merchant_required, paginate
from dashboard.forms import WithdrawalForm
from dashboard.overview import balances_of
from wallets import selectors as wallet_selectors
from wallets import statements
from wallets.withdrawals import withdrawal_request

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@merchant_required
def balance(request: HttpRequest) -> HttpResponse:
    merchant = merchant_of(request)
    form = WithdrawalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            withdrawal = withdrawal_request(user=merchant, amount=form.cleaned_data["amount"])
        except DomainError as error:
            form_error(form, error)
        else:
            messages.success(request, f"Withdrawal {withdrawal.id} requested; the amount is held until staff pay it.")
            return redirect("dashboard:balance")
    wallet = wallet_selectors.wallet_summary(merchant)
    page, query = paginate(request, statements.wallet_history(merchant))
    context = {
        "form": form,
        "wallet": wallet,
        "balances": balances_of(wallet),
        "page": page,
        "query": query,
        "withdrawals": wallet_selectors.withdrawals_recent_of(merchant, limit=20),
        "this_month": timezone.localdate().strftime("%Y-%m"),
    }
    return render(request, "dashboard/balance.html", context)


@merchant_required
def statement_csv(request: HttpRequest) -> HttpResponse:
    """``?month=YYYY-MM``: the opening balance, every ledger line of the month, the closing balance."""
    raw = request.GET.get("month") or timezone.localdate().strftime("%Y-%m")
    match = MONTH.match(raw)
    if match is None:
        return HttpResponse("month must look like 2026-11.", status=400, content_type="text/plain")
    month = date(int(match[1]), int(match[2]), 1)
    statement = statements.wallet_statement(merchant_of(request), month)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(statements.STATEMENT_HEADER)
    writer.writerows(statement.rows())
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="statement-{raw}.csv"'
    return response
