"""Reporting periods: calendar months (UTC) and arbitrary ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel


class Period(BaseModel):
    """A half-open time range ``[start, end)``; ``label`` names it (``2026-11``)."""

    start: datetime
    """First instant in the period."""
    end: datetime
    """First instant after it."""
    label: str
    """``2026-11`` for a month, else ``start..end``."""

    @classmethod
    def month(cls, text: str) -> Period:
        """The UTC calendar month ``YYYY-MM``.

        Raises:
            ValueError: for anything else.
        """
        try:
            start = datetime.strptime(text.strip(), "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"invalid month {text!r}: use YYYY-MM, e.g. 2026-11") from None
        return cls(start=start, end=_next_month(start), label=f"{start:%Y-%m}")

    @classmethod
    def between(cls, start: datetime, end: datetime) -> Period:
        """Any range (a whole calendar month gets its month label)."""
        if end <= start:
            raise ValueError("the period must end after it starts")
        if start == _month_start(start) and end == _next_month(start):
            return cls(start=start, end=end, label=f"{start:%Y-%m}")
        return cls(start=start, end=end, label=f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}")

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` falls in ``[start, end)``."""
        return self.start <= moment < self.end

    def previous(self) -> Period:
        """The calendar month before a month; otherwise the range of equal length before."""
        if self.start == _month_start(self.start) and self.end == _next_month(self.start):
            start = _month_start(self.start - timedelta(days=1))
            return Period.between(start, self.start)
        return Period.between(self.start - (self.end - self.start), self.start)

    def months(self) -> list[str]:
        """Labels of the calendar months the period touches."""
        labels, cursor = [], _month_start(self.start)
        while cursor < self.end:
            labels.append(f"{cursor:%Y-%m}")
            cursor = _next_month(cursor)
        return labels


def _month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (_month_start(start) + timedelta(days=32)).replace(day=1)
