"""Injectable time, so the lifecycle (SLAs, pool cascade, webhook backoff) can be driven in tests.

Every timestamp is timezone-aware UTC: comparing a naive time with an aware one
is an error in Python, and a naive time in an SLA rule is a bug waiting for the
next daylight-saving change.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning an aware UTC datetime."""

    def now(self) -> datetime: ...


def require_aware(name: str, when: datetime) -> datetime:
    """Return ``when`` in UTC, or raise if it has no timezone.

    Raises
    ------
    ValueError
        Naming the timestamp, e.g. "The 'offered_at' timestamp must be timezone-aware ...".
    """
    if not isinstance(when, datetime):
        raise TypeError(f"The '{name}' timestamp must be a datetime. Got {when!r} instead.")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"The '{name}' timestamp must be timezone-aware (UTC). "
                         f"Got naive {when.isoformat()} instead.")
    return when.astimezone(UTC)


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to: ``advance(hours=...)`` or ``sleep(seconds)``.

    ``sleep`` makes it a drop-in for ``time.sleep`` in code that waits (webhook
    backoff), so a test can drive a whole day in microseconds and still see the
    waits it asked for in :attr:`sleeps`.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (require_aware("start", start) if start is not None
                     else datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, *, hours: float = 0.0, minutes: float = 0.0,
                seconds: float = 0.0) -> datetime:
        """Move forward; returns the new time.  Time never runs backwards."""
        step = timedelta(hours=hours, minutes=minutes, seconds=seconds)
        if step < timedelta(0):
            raise ValueError(f"A FrozenClock only moves forward. Got a step of {step} instead.")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (not before the current time)."""
        when = require_aware("when", when)
        with self._lock:
            if when < self._now:
                raise ValueError(f"A FrozenClock only moves forward: {when.isoformat()} is "
                                 f"before {self._now.isoformat()}.")
            self._now = when

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance by it."""
        self.sleeps.append(float(seconds))
        self.advance(seconds=seconds)
