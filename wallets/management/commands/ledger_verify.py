"""Proves the ledger's invariants; exit 0 when they all hold, 1 (naming the first broken row) when not."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from wallets.verify import CHECKS, Failure, Verification


class Command(BaseCommand):
    help = "Proves that every entry sums to zero and every wallet balance equals the sum of its postings."
    # A read-only proof over the data: the system checks (URL conf, caches, dj-stripe's settings) are the
    # deploy's `manage.py check`, and importing what they inspect costs this command a fifth of a second.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--progress",
            choices=("auto", "always", "never"),
            default="auto",
            help="Progress bar on stderr: auto shows it on a terminal for ledgers of 100,000 postings or more.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        with Verification() as verification:
            size = verification.size()
            self.stdout.write(
                f"Ledger: {size['accounts']:,} accounts, {size['entries']:,} entries, {size['postings']:,} postings"
            )
            progress = options["progress"]
            disable: bool | None
            if progress == "never":
                disable = True
            elif progress == "always":
                disable = False
            else:
                disable = None if size["postings"] >= 100_000 else True  # None: only on a terminal
            failures: list[Failure] = []
            outcomes = verification.outcomes()
            # tqdm writes to the raw streams: Django's OutputWrapper would add a newline to every write.
            raw_stdout, raw_stderr = self.stdout._out, self.stderr._out  # noqa: SLF001
            with tqdm(
                outcomes, total=len(CHECKS), desc="ledger_verify", unit="check", disable=disable, file=raw_stderr
            ) as bar:
                for outcome in bar:
                    check, failure = outcome.check, outcome.failure
                    if failure is None:
                        line = f"  ok    {check.name} ({outcome.seconds:.2f} s)"
                    else:
                        failures.append(failure)
                        line = f"  FAIL  {check.name}: {failure.broken} broken, first: {failure.first}"
                    if bar.disable:
                        self.stdout.write(line)
                    else:  # above the bar, which stays at the bottom of the terminal
                        tqdm.write(line, file=raw_stdout)
        total = time.perf_counter() - started
        if failures:
            first = failures[0]
            raise CommandError(
                f"Ledger broken ({len(failures)} of {len(CHECKS)} checks failed in {total:.2f} s); "
                f"first: {first.first}",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS(f"Ledger OK: {len(CHECKS)} checks passed in {total:.2f} s"))
