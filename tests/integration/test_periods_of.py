"""StoredView.periods_of answers the same on both stores, for the 1,000 workers of a large DmfA (PostgreSQL
sends them as one array parameter, SQLite as IN lists of 500): the employer's non-cancelled periods of those
workers, in the scopes the reader sees, and nothing else."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from declarations.store import tables as t
from declarations.domain.ports import uncovered_by_periods
from declarations.store.views import StoredView

EMPLOYER = "123456749"


def test_periods_of_many_workers_in_their_scopes(app):
    with app.engine.begin() as connection:
        other = connection.execute(select(t.employer.c.noss).where(t.employer.c.noss != EMPLOYER).limit(1)).scalar()
        workers = [f"9{n:010d}" for n in range(1200)]
        connection.execute(insert(t.person), [{"inss": w} for w in workers])
        rows = []
        for n, inss in enumerate(workers):
            for k, (scope, employer, cancelled) in enumerate([
                    ("PROD", EMPLOYER, False), ("TEST:1001", EMPLOYER, n % 3 == 0), ("TEST:2001", EMPLOYER, False),
                    ("PROD", other, False), ("PROD", EMPLOYER, n % 7 == 0)]):
                if (n + k) % 4 == 0:
                    continue  # not every worker has every kind of period
                rows.append({"scope": scope, "employer_noss": employer, "inss": inss, "worker_type": "OTH",
                             "starting_date": dt.date(2025, 1, 1) + dt.timedelta(days=n % 300 + k),
                             "ending_date": None if k % 2 else dt.date(2025, 12, 31), "joint_commission": "302",
                             "planned_hours": None, "cancelled": cancelled, "version": 1})
        connection.execute(insert(t.employment_period), rows)
        stored = connection.execute(select(t.employment_period)).all()
        scope_of = {row.period_id: row.scope for row in stored}
        asked = workers[:1000] + ["90000009999"]  # and one without any period
        for reader in ("PROD", "TEST:1001"):
            seen = ("PROD",) if reader == "PROD" else ("PROD", reader)
            expected = {}
            for row in stored:
                if row.employer_noss == EMPLOYER and row.inss in asked[:1000] and not row.cancelled \
                        and row.scope in seen:
                    expected.setdefault(row.inss, []).append(
                        (row.period_id, row.starting_date, row.ending_date, row.scope))
            found = StoredView(connection, reader).periods_of(EMPLOYER, set(asked))
            got = {inss: sorted((p.period_id, p.starting_date, p.ending_date,
                                 scope_of[p.period_id]) for p in periods)
                   for inss, periods in found.items() if periods}
            assert got == {inss: sorted(v) for inss, v in expected.items()}
            assert len(got) > 600
            sample = next(iter(found.values()))[0]
            assert isinstance(sample.starting_date, dt.date) and sample.employer == EMPLOYER
            assert sample.cancelled is False and sample.version == 1
        connection.rollback()


def test_workers_whose_list_a_comma_would_make_ambiguous(app):
    """PostgreSQL sends the workers as one comma-separated text when that is unambiguous, else as an array:
    an INSS holding a comma, or an empty one, must find exactly its own periods either way."""
    odd = ["1,2", "", "60010100172"]
    with app.engine.begin() as connection:
        connection.execute(insert(t.person), [{"inss": w} for w in odd + ["1", "2"]])
        connection.execute(insert(t.employment_period), [
            {"scope": "PROD", "employer_noss": EMPLOYER, "inss": inss, "worker_type": "OTH",
             "starting_date": dt.date(2025, 1, 1), "ending_date": None, "joint_commission": "302",
             "planned_hours": None, "cancelled": False, "version": 1} for inss in odd + ["1", "2"]])
        view = StoredView(connection, "PROD")
        assert sorted(view.periods_of(EMPLOYER, ["1,2"])) == ["1,2"]  # not "1" and "2"
        assert sorted(view.periods_of(EMPLOYER, ["", "60010100172"])) == ["", "60010100172"]
        assert sorted(view.periods_of(EMPLOYER, ["1", "2"])) == ["1", "2"]
        # M010's question too (StoredView.uncovered: the workers as one text or an array, likewise).
        day, before = dt.date(2025, 3, 1), dt.date(2024, 3, 1)
        for spans in ([("1,2", day, day), ("3", day, day)], [("", day, day), ("1,2", before, before)],
                      [("1", day, day), ("2", before, day), ("60010100172", before, before)]):
            assert view.uncovered(EMPLOYER, spans) == uncovered_by_periods(view, EMPLOYER, spans)
        assert view.uncovered(EMPLOYER, [("1,2", day, day), ("3", day, day)]) == {1}
        connection.rollback()

