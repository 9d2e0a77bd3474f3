"""Settings from the environment (operations.md), read once into a frozen value.

Every setting has a documented default; an unusable value raises
SettingsError, which the command line turns into exit code 2.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from zoneinfo import ZoneInfo

from declarations.exceptions import SettingsError

MiB = 1024 * 1024
GiB = 1024 * MiB
BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    inbox: Path
    outbox: Path
    archive: Path
    max_message_bytes: int = 5 * MiB
    max_item_bytes: int = 256 * MiB
    max_batch_bytes: int = 4 * GiB
    fixed_now: dt.datetime | None = None
    batch_workers: int = 1
    batch_parallel_min_bytes: int = 4 * MiB
    batch_lease_seconds: float = 60.0    # a claimed batch file's lease, extended as it goes (docs/batch.md)
    inbox_poll_seconds: float = 2.0      # serve's inbox pass
    _clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc), repr=False, compare=False)

    @property
    def engine_key(self) -> Path:
        return self.home / "engine-key.pem"

    @property
    def engine_cert(self) -> Path:
        return self.home / "engine-cert.pem"

    def now(self) -> dt.datetime:
        """The engine's clock: DECLARATIONS_NOW when set, else the real one (aware)."""
        return self.fixed_now if self.fixed_now is not None else self._clock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("DECLARATIONS_HOME") or "./var").resolve()
        database_url = env.get("DECLARATIONS_DATABASE_URL") or f"sqlite:///{home / 'declarations.sqlite'}"
        return cls(
            home=home,
            database_url=database_url,
            inbox=_path(env, "DECLARATIONS_INBOX", home / "inbox"),
            outbox=_path(env, "DECLARATIONS_OUTBOX", home / "outbox"),
            archive=_path(env, "DECLARATIONS_ARCHIVE", home / "archive"),
            max_message_bytes=_size(env, "DECLARATIONS_MAX_MESSAGE_BYTES", 5 * MiB),
            max_item_bytes=_size(env, "DECLARATIONS_MAX_ITEM_BYTES", 256 * MiB),
            max_batch_bytes=_size(env, "DECLARATIONS_MAX_BATCH_BYTES", 4 * GiB),
            fixed_now=_now(env.get("DECLARATIONS_NOW")),
            batch_workers=_count(env, "DECLARATIONS_BATCH_WORKERS", os.cpu_count() or 1),
            batch_parallel_min_bytes=_size(env, "DECLARATIONS_BATCH_PARALLEL_MIN_BYTES", 4 * MiB, zero=True),
            # A lease is extended every quarter of it, and at least every second while the archived copy is
            # made durable: shorter than 4 s, it could run out under its owner's feet.
            batch_lease_seconds=_seconds(env, "DECLARATIONS_BATCH_LEASE_SECONDS", 60.0, low=4.0),
            inbox_poll_seconds=_seconds(env, "DECLARATIONS_INBOX_POLL_SECONDS", 2.0, low=0.01),
        )


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value).resolve() if value else default


def _size(env: Mapping[str, str], name: str, default: int, *, zero: bool = False) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        size = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of bytes, not {value!r}") from None
    if size < 0 or (size == 0 and not zero):
        raise SettingsError(f"{name} must be {'zero or ' if zero else ''}positive, not {value!r}")
    return size


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(f"{name} must be a whole number, 1 or more, not {value!r}")
    return int(value)


_DAY = 86_400.0


def _seconds(env: Mapping[str, str], name: str, default: float, *, low: float) -> float:
    """A duration in seconds, from ``low`` to a day (a longer wait is a mistake, and beyond ~292 years
    threading refuses it)."""
    value = env.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not low <= seconds <= _DAY:  # also refuses nan
        raise SettingsError(f"{name} must be a number of seconds from {low:g} to {_DAY:g}, not {value!r}")
    return seconds


def _now(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"DECLARATIONS_NOW must be an ISO 8601 date-time with a zone, not {value!r}") from None
    if moment.tzinfo is None:
        raise SettingsError(f"DECLARATIONS_NOW needs a time zone (e.g. {value}+01:00)")
    return moment


def brussels_today(moment: dt.datetime) -> dt.date:
    """'Today' in a rule is the reception time in Europe/Brussels (declarations.md)."""
    return moment.astimezone(BRUSSELS).date()
