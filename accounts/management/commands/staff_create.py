"""``staff_create --email E --group Support|Finance [--password P]``: a staff user in one back-office role.

Prints the user's TOTP provisioning URI (``otpauth://totp/…?secret=…``) as its last line.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.roles import StaffGroup
from accounts.services import staff_totp_device, staff_upsert
from config.errors import DomainError


class Command(BaseCommand):
    help = "Creates or updates a staff user in the group Support or Finance and prints its TOTP provisioning URI."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--group", required=True, choices=[group.value for group in StaffGroup])
        parser.add_argument("--password", help="sets the password (a new user without one gets an unusable one)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = staff_upsert(email=options["email"], group=options["group"], password=options.get("password"))
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        device = staff_totp_device(user=user)
        self.stdout.write(f"{user.email} is staff in {options['group']}")
        self.stdout.write(device.config_url)
