"""Cron expressions as Windmill and Kubernetes write them, evaluated in an IANA timezone.

Accepted forms: five fields (minute hour day month weekday, as CronJob),
Windmill's six fields with seconds first, and the shorthands `@yearly`,
`@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
Evaluation is croniter's on timezone-aware datetimes: a time that a DST
change skips fires at the first instant after the gap; in the hour that a
change repeats, a schedule with fixed hours fires once (the first time),
one whose hour field is `*` goes on firing, as classic cron does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A cron expression or timezone that cannot be used; the message says which field and why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: `expression` normalised to croniter's form."""

    expression: str
    with_seconds: bool
    zone: ZoneInfo

    def next_after(self, epoch: float) -> float:
        """The first fire time strictly after `epoch`."""
        it = self._iter(epoch)
        while True:
            fire = it.get_next(float)
            if not self._repeated(fire):
                return fire

    @property
    def _fixed_hours(self) -> bool:
        return self.expression.split(" ")[2 if self.with_seconds else 1] != "*"

    def latest_at_or_before(self, epoch: float) -> float:
        """The most recent fire time at or before `epoch`."""
        # get_prev is strict; a fire time exactly at `epoch` counts as due.
        it = self._iter(epoch + (0.001 if self.with_seconds else 0.5))
        while True:
            fire = it.get_prev(float)
            if not self._repeated(fire):
                return fire

    def _repeated(self, fire: float) -> bool:
        """A second occurrence of a wall-clock time, in the hour a DST change repeats."""
        return self._fixed_hours and bool(dt.datetime.fromtimestamp(fire, tz=self.zone).fold)

    def _iter(self, epoch: float) -> croniter:
        start = dt.datetime.fromtimestamp(epoch, tz=self.zone)
        from croniter import croniter  # imported with the first schedule: most commands read none

        return croniter(self.expression, start, second_at_beginning=self.with_seconds)


def parse_cron(expression: str, timezone: str = "UTC") -> Cron:
    zone = parse_timezone(timezone)
    text = " ".join(expression.split())
    text = SHORTHANDS.get(text.lower(), text)
    if text.startswith("@"):
        raise CronError("cron", f"unknown shorthand '{expression}' (known: {', '.join(SHORTHANDS)})")
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise CronError("cron", f"'{expression}' has {len(fields)} fields: use 5 (minute hour day month weekday) "
                                "or 6 with seconds first, as Windmill writes them")
    with_seconds = len(fields) == 6
    from croniter import CroniterError, croniter

    try:
        valid = croniter.is_valid(text, second_at_beginning=with_seconds)
    except CroniterError:
        valid = False
    if not valid:
        raise CronError("cron", f"'{expression}' is not a valid cron expression")
    return Cron(text, with_seconds, zone)


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError("timezone", f"'{name}' is not an IANA timezone name (for example UTC or Europe/Paris)") from None
