"""ISO weeks, the unit a dispatch covers, in the publication's timezone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Week:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        """Read `2026-W24` (also `2026W24`); raise ValueError naming the text otherwise."""
        match = _WEEK.match(text.strip())
        if not match:
            raise ValueError(f"invalid week {text!r}: expected the form 2026-W24")
        year, number = int(match[1]), int(match[2])
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ValueError(f"invalid week {text!r}: {year} has no week {number}") from None
        return cls(year, number)

    @classmethod
    def containing(cls, moment: datetime, tz: ZoneInfo) -> Week:
        year, number, _ = moment.astimezone(tz).isocalendar()
        return cls(year, number)

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Start (inclusive) and end (exclusive) of the week, in UTC."""
        monday = date.fromisocalendar(self.year, self.number, 1)
        start = datetime.combine(monday, time(0), tzinfo=tz)
        end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"
