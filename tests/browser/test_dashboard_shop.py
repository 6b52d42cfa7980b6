"""The merchant dashboard in a real browser (Debian's Chromium, headless, through Playwright): a merchant signs in,
creates a code pool from a text file, sees an API sale on the overview and its chart, refunds part of it through the
confirmation step, downloads the sales CSV, requests a withdrawal, rotates a webhook secret and sends a test event
that a local receiver verifies; screenshots of every page at desktop and phone width go to var/screenshots/."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from standardwebhooks.webhooks import Webhook

from config.money import Money
from orders.models import Order
from tests.conftest import client_for
from tests.factories import PASSWORD, CustomerFactory, MerchantFactory
from tests.orders.conftest import Receiver
from wallets.ledger import wallet_adjust, wallet_id_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
PAGES = {"overview": "/dashboard/", "products": "/dashboard/products/", "sales": "/dashboard/sales/",
         "balance": "/dashboard/balance/", "webhooks": "/dashboard/webhooks/"}  # fmt: skip
VIEWPORTS: dict[str, ViewportSize] = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def browser() -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls stay synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _fmt(amount: int) -> str:
    return str(Money(amount, settings.PLATFORM_CURRENCY))


def _screenshots(browser: Browser, page: Page, base: str) -> None:
    """Every page at both widths, with the session of ``page``; nothing on a page may be wider than the phone."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(storage_state=page.context.storage_state())
    for width, viewport in VIEWPORTS.items():
        shot = context.new_page()
        shot.set_viewport_size(viewport)
        for name, path in PAGES.items():
            shot.goto(f"{base}{path}")
            shot.screenshot(path=str(SCREENSHOTS / f"dashboard_{name}_{width}.png"), full_page=True)
            scroll_width = shot.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= viewport["width"] + 1, (name, width, scroll_width)
        shot.close()
    context.close()


def test_merchant_when_running_the_shop_then_every_step_works_in_the_browser(
    browser: Browser, live_server: Any, receiver: Receiver, tmp_path: Path
) -> None:
    merchant = MerchantFactory.create()
    base = live_server.url
    page = browser.new_page(viewport=VIEWPORTS["desktop"], accept_downloads=True)

    # Signs in.
    page.goto(f"{base}/dashboard/")
    page.fill("input[name=username]", merchant.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")

    # Creates a code-pool product and uploads its codes from a text file.
    page.click("nav a:text-is('Products')")
    expect(page.locator("#products")).to_contain_text("No products yet")
    page.click("#new-product")
    page.fill("input[name=name]", "Game keys")
    page.fill("input[name=price]", "20.00")
    page.select_option("select[name=delivery]", "codes")
    page.click("#product-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Now upload its codes")
    codes = tmp_path / "codes.txt"
    codes.write_text("KEY-0001\nKEY-0002\nKEY-0003\n")
    page.set_input_files("input[name=codes_file]", str(codes))
    page.click("#codes-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Added 3 codes; 3 available to sell.")
    expect(page.locator("#stock")).to_have_text("3")
    product_id = page.url.rstrip("/").split("/")[-1]

    # A customer buys one through the API.
    buyer = CustomerFactory.create()
    wallet_adjust(account_id=wallet_id_for(user_id=buyer.pk, role=buyer.role), amount=10_000, reason="t", actor=None)
    bought = client_for(buyer).post(
        "/api/v1/orders", {"product": product_id, "payment_method": "wallet"}, format="json"
    )
    assert bought.status_code == 201, bought.content
    order = Order.objects.get(pk=bought.json()["id"])

    # The overview shows it, in the figures and in the chart.
    page.goto(f"{base}/dashboard/")
    expect(page.locator('#periods tr[data-period="0"]')).to_contain_text(_fmt(2000))
    expect(page.locator("#balance")).to_have_text(_fmt(order.merchant_net))
    today_bar = page.locator("#revenue-chart g").last
    expect(today_bar.locator("title")).to_have_text(f"{timezone.localdate().isoformat()}: {_fmt(2000)}, 1 sale")
    assert float(today_bar.locator("rect").get_attribute("height") or 0) > 100
    expect(page.locator("#chart-table")).to_contain_text(_fmt(2000))

    # Refunds part of it through the confirmation step.
    page.click(f"a:has-text('{order.pk}')")
    page.fill("#refund-form input[name=amount]", "5.00")
    page.fill("#refund-form input[name=reason]", "one key did not work")
    page.click("#refund-form button[type=submit]")
    expect(page.locator("#confirm-amount")).to_have_text(_fmt(500))
    order.refresh_from_db()
    assert order.status == "paid"  # nothing happens before the confirmation
    page.click("#confirm button.danger")
    expect(page.locator(".messages")).to_contain_text("Refund ref_")
    expect(page.locator("#order-status")).to_have_text("Partially refunded")
    expect(page.locator("#refunded")).to_contain_text(_fmt(500))

    # Downloads the sales CSV.
    page.goto(f"{base}/dashboard/sales/")
    with page.expect_download() as download_info:
        page.click("#csv")
    rows = list(csv.reader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert ",".join(rows[0]) == "order,created_at,product,quantity,amount,fee,net,currency,status,amount_refunded"
    assert rows[1][0] == order.pk and rows[1][8] == "partially_refunded" and rows[1][9] == "500"

    # Requests a withdrawal.
    page.goto(f"{base}/dashboard/balance/")
    page.fill("#withdraw-form input[name=amount]", "5.00")
    page.click("#withdraw-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("requested")
    expect(page.locator("#withdrawals")).to_contain_text(_fmt(500))
    expect(page.locator("#pending")).to_have_text(_fmt(500))

    # Adds a webhook endpoint, rotates its secret and sends a test event the receiver verifies.
    page.goto(f"{base}/dashboard/webhooks/")
    page.fill("#endpoint-form input[name=url]", receiver.url)
    page.click("#endpoint-form button[type=submit]")
    old_secret = page.locator("#new-secret .secret").inner_text().strip()
    page.click("#endpoints a")
    page.click("#rotate")
    new_secret = page.locator("#new-secret .secret").inner_text().strip()
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    page.click("#send-test")
    expect(page.locator(".messages")).to_contain_text("Ping delivered")
    headers, body = receiver.requests[-1]
    assert Webhook(new_secret).verify(body, headers)["type"] == "ping"
    Webhook(old_secret).verify(body, headers)  # still signed with the old one for 24 h
    expect(page.locator("#deliveries")).to_contain_text(headers["webhook-id"])

    _screenshots(browser, page, base)
