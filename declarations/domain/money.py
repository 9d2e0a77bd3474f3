"""Integer arithmetic in cents, rounding half up (declarations.md)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def times_rate(base: int, per_ten_thousand: int) -> int:
    """``base * rate`` to the cent, e.g. rate 13.07 % = 1307."""
    return round_half_up(Decimal(base) * per_ten_thousand / 10000)


def divide(total: int, count: int) -> int:
    return round_half_up(Decimal(total) / count)
