"""money.times_rate in integers (since dmfa-cpu) gives what the Decimal computation gave, halves away from zero,
and falls back to Decimal where that was not exact (and raises where it raised)."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pytest

from declarations.domain.money import times_rate


def decimal_times_rate(base: int, per_ten_thousand: int) -> int:
    return int((Decimal(base) * per_ten_thousand / 10000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


RATES = (1307, 2500, 813, 2800, 10800, 5000, 1, 10000)


def test_small_values_every_remainder():
    for base in range(-20000, 20001):
        for rate in RATES:
            assert times_rate(base, rate) == decimal_times_rate(base, rate), (base, rate)


def test_large_values_and_the_edge_of_exactness():
    rng = random.Random(7)
    cases = [(rng.randint(-10 ** 22, 10 ** 22), rng.choice(RATES)) for _ in range(50000)]
    cases += [(9_223_372_036_854_775_807, 10800), (10 ** 27 // 2500 + 1, 2500), (10 ** 27 // 2500 - 1, 2500),
              (-(10 ** 27 // 2500) - 1, 2500), (10 ** 23 + 5, 10800), (10 ** 23 * 4, 2500)]
    for base, rate in cases:
        assert times_rate(base, rate) == decimal_times_rate(base, rate), (base, rate)


def test_beyond_decimal_precision_raises_as_before():
    with pytest.raises(InvalidOperation):
        decimal_times_rate(10 ** 30 + 5, 1307)
    with pytest.raises(InvalidOperation):
        times_rate(10 ** 30 + 5, 1307)
