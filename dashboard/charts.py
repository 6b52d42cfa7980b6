"""The overview's 30-day revenue chart as inline SVG, drawn here on the server (no JavaScript, nothing fetched).

Pure geometry: the template draws the bars this module measures, and a table beside it reads the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.money import Money
from orders.sales_reports import DayRevenue

WIDTH = 600
HEIGHT = 180
AXIS = 20  # room under the bars for the date labels
TOP = 14  # room above the tallest bar for its value


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # "2026-11-23: $10.50, 1 sale"
    day: str  # "23"
    show_day: bool


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    baseline: int
    bars: list[Bar]
    peak: str  # the tallest day's amount, written above the axis
    total: str
    summary: str  # what a screen reader announces for the picture


def revenue_chart(days: list[DayRevenue], currency: str) -> Chart:
    """Bars of gross revenue per day, scaled to the best day; every 5th day and the last are labelled."""
    baseline = HEIGHT - AXIS
    peak = max((d.gross for d in days), default=0)
    slot = WIDTH / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        height = 0.0 if peak == 0 else (baseline - TOP) * day.gross / peak
        if day.gross and height < 1:
            height = 1.0  # a small day stays visible
        amount = Money(day.gross, currency)
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.15, 2),
                y=round(baseline - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                label=f"{day.day.isoformat()}: {amount}, {day.sales} sale{'s' if day.sales != 1 else ''}",
                day=str(day.day.day),
                show_day=index % 5 == 0 or index == len(days) - 1,
            )
        )
    total = Money(sum(d.gross for d in days), currency)
    first, last = (days[0].day.isoformat(), days[-1].day.isoformat()) if days else ("", "")
    summary = f"Revenue per day from {first} to {last}: {total} in total, best day {Money(peak, currency)}."
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        baseline=baseline,
        bars=bars,
        peak=str(Money(peak, currency)),
        total=str(total),
        summary=summary,
    )
