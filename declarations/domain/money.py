"""Integer arithmetic in cents, rounding half up (declarations.md)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Below this, base * rate has at most 27 digits: the Decimal computation (28 digits of precision) is exact,
# and so is the integer one that replaces it.
_EXACT = 10 ** 27


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def times_rate(base: int, per_ten_thousand: int) -> int:
    """``base * rate`` to the cent, e.g. rate 13.07 % = 1307."""
    product = base * per_ten_thousand
    if -_EXACT < product < _EXACT and type(product) is int:
        # In integers (the DmfA rules call this twice per worker): half away from zero, as ROUND_HALF_UP.
        whole, rest = divmod(abs(product), 10000)
        if rest >= 5000:
            whole += 1
        return whole if product >= 0 else -whole
    return round_half_up(Decimal(base) * per_ten_thousand / 10000)


def divide(total: int, count: int) -> int:
    return round_half_up(Decimal(total) / count)
