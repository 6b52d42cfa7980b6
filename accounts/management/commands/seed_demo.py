"""Demo data for ``make demo``: a merchant with products, a funded customer, a staff user.

Idempotent: running it again changes nothing but the demo passwords (reset to
the ones printed), so the logins it prints always work.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts.models import Role, User
from catalog.models import Delivery, Product
from catalog.services import product_codes_add, product_create, product_file_put
from wallets.ledger import wallet_adjust, wallet_id_for
from wallets.models import Entry

DEFAULT_PASSWORD = "demo-password-2026"
CUSTOMER_FUNDING = 50_000  # 500.00 in the platform currency
FUNDING_KEY = "seed_demo:customer-funding"

USERS = (
    ("merchant@demo.test", Role.MERCHANT, False, "Mia", "Merchant"),
    ("customer@demo.test", Role.CUSTOMER, False, "Carl", "Customer"),
    ("staff@demo.test", Role.CUSTOMER, True, "Stella", "Staff"),
)

PRODUCTS = (
    # name, price (minor units), delivery, stock (None = unlimited; a code pool counts its codes), description
    ("E-book: Double-Entry Bookkeeping", 1_500, Delivery.FILE, None, "A PDF, delivered as a personal download link."),
    ("Pro licence key (1 year)", 4_900, Delivery.LICENSE_KEY, 25, "A licence key for the desktop app."),
    ("Conference ticket (online)", 12_000, Delivery.CODES, None, "A unique access code; only three left."),
    ("Icon pack", 900, Delivery.TEXT, None, "500 SVG icons: the same download page for every buyer."),
)
# The conference's pool: three codes, unique to the demo database.
TICKET_CODES = ("CONF-7QK2-M9XA", "CONF-H3TB-W8PZ", "CONF-R6VD-J2NC")
EBOOK = (
    b"%PDF-1.4\n% Demo e-book: Double-Entry Bookkeeping\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
)


class Command(BaseCommand):
    help = "Creates the demo users, products and a funded customer wallet (idempotent) and prints the logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEFAULT_PASSWORD, help="password of every demo user")

    def handle(self, *args: Any, password: str, **options: Any) -> None:
        with transaction.atomic():
            users = {
                email: self._user(email, role, staff, first, last, password)
                for email, role, staff, first, last in USERS
            }
            merchant = users["merchant@demo.test"]
            for name, price, delivery, stock, description in PRODUCTS:
                if not Product.objects.filter(merchant=merchant, name=name, deleted_at__isnull=True).exists():
                    product = product_create(
                        merchant=merchant,
                        name=name,
                        price=price,
                        delivery=delivery,
                        stock=stock,
                        description=description,
                        fulfillment="https://example.com/demo-icon-pack" if delivery == Delivery.TEXT else "",
                    )
                    if delivery == Delivery.CODES:
                        product_codes_add(merchant=merchant, product_id=product.pk, codes=list(TICKET_CODES))
                    if delivery == Delivery.FILE:
                        upload = SimpleUploadedFile("double-entry-bookkeeping.pdf", EBOOK, "application/pdf")
                        product_file_put(merchant=merchant, product_id=product.pk, upload=upload)
            customer = users["customer@demo.test"]
            wallet_id = wallet_id_for(user_id=customer.pk, role=customer.role)
            if not Entry.objects.filter(idempotency_key=FUNDING_KEY).exists():
                wallet_adjust(
                    account_id=wallet_id,
                    amount=CUSTOMER_FUNDING,
                    reason="Demo funds",
                    actor=users["staff@demo.test"],
                    idempotency_key=FUNDING_KEY,
                )

        currency = settings.PLATFORM_CURRENCY
        self.stdout.write("Demo logins (POST /api/v1/auth/token with email and password):")
        for email, role, staff, _, _ in USERS:
            what = "staff, /admin/" if staff else role
            self.stdout.write(f"  {email:<22} {password}   ({what})")
        self.stdout.write(
            f"The customer's wallet holds {CUSTOMER_FUNDING} {currency} (minor units); "
            f"the merchant sells {len(PRODUCTS)} products."
        )

    def _user(self, email: str, role: str, staff: bool, first: str, last: str, password: str) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=password, role=role, first_name=first, last_name=last)
        else:
            user.set_password(password)
        user.is_staff = user.is_superuser = staff
        user.is_active = True
        user.save()
        return user
