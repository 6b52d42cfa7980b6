"""The back office in a real browser (Debian's Chromium, headless, through Playwright): a Support user finds a
customer, refunds part of a paid order through the confirmation page and sees it in the history; a refund above
the Support limit is refused; two Finance users pay out a large withdrawal; no TOTP code, no sign-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

from accounts.models import User
from accounts.services import staff_totp_device
from payments.models import Refund, RefundStatus
from tests.admin.conftest import paid_wallet_order, payment_of, pending_withdrawal, totp_now
from tests.backoffice.conftest import user_in_role
from tests.factories import PASSWORD
from wallets.models import Withdrawal, WithdrawalStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls stay synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(autouse=True)
def _otp_on(settings: Any) -> None:
    settings.STAFF_OTP_REQUIRED = True  # as with DEBUG off


def _sign_in(browser: Browser, base: str, user: User, otp: str | None = None) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=otp_token]", otp if otp is not None else totp_now(staff_totp_device(user=user)))
    page.click("input[type=submit]")
    return page


def test_support_when_refunding_part_of_an_order_then_done_and_in_the_history(
    browser: Browser, live_server: Any
) -> None:
    order = paid_wallet_order(price=6000)
    customer = order.buyer
    support = user_in_role("support")
    page = _sign_in(browser, live_server.url, support)
    expect(page.locator("#work-queues")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin_home.png"), full_page=True)

    page.fill("#customer-search", customer.email)
    page.click("#customer-search + input[type=submit]")
    page.click(f"#result_list a:text-is('{customer.email}')")
    page.click("text=everything about")
    expect(page.locator("#customer-page")).to_contain_text(order.pk)
    page.screenshot(path=str(SCREENSHOTS / "admin_customer.png"), full_page=True)

    page.click(f"a.order-link:text-is('{order.pk}')")
    page.click("a.refund-link")
    expect(page.locator("#refund-left")).to_contain_text("6000")
    page.fill("input[name=amount]", "2500")
    page.fill("input[name=reason]", "one licence was never delivered")
    page.click("#refund-form input[type=submit]")
    expect(page.locator("ul.messagelist")).to_contain_text("of 2500")
    history = page.locator("table.audit-history")
    expect(history).to_contain_text("one licence was never delivered")
    expect(history).to_contain_text(support.email)
    refund = Refund.objects.get(payment=payment_of(order))
    assert refund.amount == 2500 and refund.requested_by == support

    # The same Support user, above SUPPORT_REFUND_LIMIT: refused with the reason shown, nothing created.
    big = paid_wallet_order(price=settings.SUPPORT_REFUND_LIMIT + 5000)
    page.goto(f"{live_server.url}/admin/payments/payment/{payment_of(big).pk}/refund/")
    page.fill("input[name=amount]", str(settings.SUPPORT_REFUND_LIMIT + 1))
    page.fill("input[name=reason]", "customer insists")
    page.click("#refund-form input[type=submit]")
    expect(page.locator("#refund-form ul.errorlist").first).to_contain_text("above the Support limit")
    assert not Refund.objects.filter(payment=payment_of(big)).exists()
    assert not Refund.objects.filter(status=RefundStatus.PENDING_APPROVAL).exists()


def test_two_finance_users_when_large_withdrawal_then_paid_out(browser: Browser, live_server: Any) -> None:
    withdrawal = pending_withdrawal(settings.FOUR_EYES_THRESHOLD + 1000)
    for number, status in ((1, WithdrawalStatus.AWAITING_SECOND_APPROVAL), (2, WithdrawalStatus.PAID)):
        finance = user_in_role("finance")
        page = _sign_in(browser, live_server.url, finance)
        page.goto(f"{live_server.url}/admin/wallets/withdrawal/")
        page.check(f"input[name=_selected_action][value='{withdrawal.pk}']")
        page.select_option("select[name=action]", "approve_withdrawals")
        page.click("button[name=index]")
        expect(page.locator("#confirm-money-action")).to_contain_text(str(withdrawal.amount))
        page.fill("input[name=reason]", f"payout checked by approver {number}")
        page.click("#confirm-money-action input[type=submit]")
        expect(page.locator("ul.messagelist")).to_contain_text(f"1 {status}")
        withdrawal.refresh_from_db()
        assert withdrawal.status == status
        page.close()
    assert Withdrawal.objects.get(pk=withdrawal.pk).decided_by is not None


def test_staff_without_totp_code_when_signing_in_then_refused(browser: Browser, live_server: Any) -> None:
    finance = user_in_role("finance")
    staff_totp_device(user=finance)
    page = _sign_in(browser, live_server.url, finance, otp="")
    expect(page.locator(".errornote")).to_contain_text("otp_required")
    page.goto(f"{live_server.url}/admin/")
    assert "/admin/login/" in page.url
