"""Read side: the domain's ports (domain/ports.py) over one connection."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from functools import lru_cache

from sqlalchemy import (BigInteger, Date, Integer, LargeBinary, String, Text, and_, any_, bindparam, cast, func,
                        literal_column, null, or_, select, text, type_coerce, union_all)
from sqlalchemy.engine import Connection

from declarations.domain.model import Dimona, DimonaIn, Quarter
from declarations.domain.ports import (Mandate, OccupationSnapshot, QuarterSnapshot, StoredPeriod,
                                      uncovered_by_periods)
from declarations.store import tables as t
from declarations.store.database import DriverStatement, comma_joined


def visible_scopes(scope: str) -> tuple[str, ...]:
    """PROD reads PROD; a sender's TEST reads PROD and its own TEST data."""
    return (t.PROD,) if scope == t.PROD else (t.PROD, scope)


def _period(row) -> StoredPeriod:
    return StoredPeriod(row.period_id, row.employer_noss, row.inss, row.starting_date, row.ending_date,
                        row.joint_commission, row.worker_type, row.planned_hours, row.cancelled, row.version)


_PERIODS_OF_SQLITE = (
    "SELECT period_id, employer_noss, inss, starting_date, ending_date, joint_commission, worker_type, "
    "planned_hours, cancelled, version FROM employment_period "
    "WHERE employer_noss = ? AND inss IN (SELECT value FROM json_each(?)) AND cancelled = 0 AND scope IN (?, ?)")


# M010's question (StoredView.uncovered): the positions (json_each's key) of the spans [inss, first day, last
# day] that no period of the employer overlaps, by the index on (employer_noss, inss); the dates are the ISO
# text SQLAlchemy's Date type stores on SQLite, which compares as the days do.
_UNCOVERED_SQLITE = (
    "SELECT s.key FROM json_each(?1) AS s WHERE NOT EXISTS (SELECT 1 FROM employment_period AS p "
    "WHERE p.employer_noss = ?2 AND p.inss = json_extract(s.value, '$[0]') AND p.cancelled = 0 "
    "AND p.scope IN (?3, ?4) AND (p.ending_date IS NULL OR json_extract(s.value, '$[1]') <= p.ending_date) "
    "AND p.starting_date <= json_extract(s.value, '$[2]'))")


class StoredView:
    """StoredData for a reader in ``scope``."""

    def __init__(self, connection: Connection, scope: str):
        self.connection = connection
        self.scopes = visible_scopes(scope)
        # Workers ``uncovered`` found a stored period of (in this transaction): they are in ``person``, since a
        # period refers to its worker there (a foreign key on both stores, whatever the period's scope) and
        # neither row is ever deleted; so the DmfA being decided need not insert them again
        # (facts.store_dmfa's ``in_person``). Should one be missing all the same, dmfa_person's check refuses
        # the whole DmfA (migration 0005).
        self.in_person: set[str] = set()

    def period(self, period_id: int) -> StoredPeriod | None:
        p = t.employment_period
        row = self.connection.execute(
            select(p).where(p.c.period_id == period_id, p.c.scope.in_(self.scopes))).first()
        return _period(row) if row else None

    def periods_of(self, employer: str, inss_list: Iterable[str]) -> dict[str, list[StoredPeriod]]:
        p = t.employment_period
        found: dict[str, list[StoredPeriod]] = defaultdict(list)
        inss_list = list(inss_list)
        if self.connection.dialect.name == "postgresql" and self.connection.in_transaction():
            # One array parameter, whatever the number of workers (a DmfA's 1,000): no IN list of 500 bound
            # parameters that SQLAlchemy renders and psycopg converts at every execution.
            # The workers as one text the server splits where that is unambiguous, else as an array.
            joined = comma_joined(inss_list)
            rows = _periods_of_statement(joined is not None).rows(self.connection, {
                "noss": employer, "inss_list": inss_list if joined is None else joined, "scope_a": self.scopes[0],
                "scope_b": self.scopes[-1]})
            for row in rows:  # the columns in StoredPeriod's order
                period = StoredPeriod(*row)
                found[period.inss].append(period)
            return found
        if self.connection.dialect.name == "sqlite":
            # The same: the workers as one JSON array parameter (json_each), on the driver's cursor; dates
            # come back as the ISO text SQLAlchemy's Date type stores on SQLite.
            rows = self.connection.exec_driver_sql(_PERIODS_OF_SQLITE, (
                employer, json.dumps(inss_list), self.scopes[0], self.scopes[-1]))
            day = dt.date.fromisoformat
            for (period_id, noss, inss, starting, ending, commission, worker_type, hours, cancelled,
                 version) in rows:
                found[inss].append(StoredPeriod(period_id, noss, inss, day(starting), ending and day(ending),
                                                commission, worker_type, hours, bool(cancelled), version))
            return found
        for chunk_start in range(0, len(inss_list), 500):
            chunk = inss_list[chunk_start:chunk_start + 500]
            rows = self.connection.execute(select(p).where(
                p.c.employer_noss == employer, p.c.inss.in_(chunk), p.c.cancelled.is_(False),
                p.c.scope.in_(self.scopes)))
            for row in rows:
                found[row.inss].append(_period(row))
        return found

    def uncovered(self, employer: str, spans: Sequence[tuple[str, dt.date, dt.date]]) -> set[int]:
        """M010's question answered by the store in one statement: the periods are not read back (for a DmfA
        of 1,000 workers, 1,000 StoredPeriods made and compared in Python, in the transaction). The workers of
        the spans covered go to ``in_person`` (see ``__init__``)."""
        found = self._uncovered(employer, spans)
        self.in_person.update(inss for n, (inss, _first, _last) in enumerate(spans) if n not in found)
        return found

    def _uncovered(self, employer: str, spans: Sequence[tuple[str, dt.date, dt.date]]) -> set[int]:
        if not spans:
            return set()
        dialect = self.connection.dialect.name
        if dialect != "sqlite" and not (dialect == "postgresql" and self.connection.in_transaction()):
            return uncovered_by_periods(self, employer, spans)
        # In a DmfA's transaction (a batch's chain): each date written once, most occupations share them.
        inss_list, starts, ends = (list(column) for column in zip(*spans))
        iso = {day: day.isoformat() for day in {*starts, *ends}}.__getitem__
        if dialect == "sqlite":
            spans_json = json.dumps(list(zip(inss_list, map(iso, starts), map(iso, ends))))
            rows = self.connection.exec_driver_sql(_UNCOVERED_SQLITE, (
                spans_json, employer, self.scopes[0], self.scopes[-1]))
            return {n for n, in rows}
        # PostgreSQL: three texts the server splits (the dates never hold a comma; the workers, as periods_of
        # does, when unambiguous, else as an array): psycopg dumps a list of strings element by element.
        joined = comma_joined(inss_list)
        rows = _uncovered_statement(joined is not None).rows(self.connection, {
            "inss": inss_list if joined is None else joined,
            "starts": ",".join(map(iso, starts)), "ends": ",".join(map(iso, ends)),
            "noss": employer, "scope_a": self.scopes[0], "scope_b": self.scopes[-1]})
        return {n for n, in rows}

    def student_hours(self, inss: str, year: int, *, excluding_period: int | None) -> int:
        p = t.employment_period
        query = select(func.coalesce(func.sum(p.c.planned_hours), 0)).where(
            p.c.inss == inss, p.c.worker_type == "STU", p.c.cancelled.is_(False), p.c.scope.in_(self.scopes),
            p.c.starting_date >= dt.date(year, 1, 1), p.c.starting_date <= dt.date(year, 12, 31))
        if excluding_period:
            query = query.where(p.c.period_id != excluding_period)
        return int(self.connection.execute(query).scalar_one())

    def current_dmfa(self, employer: str, quarter: Quarter) -> int | None:
        d = t.dmfa
        # Newest first: a sender's TEST replacement shadows the PROD one it replaced.
        return self.connection.execute(
            select(d.c.declaration_id).where(d.c.employer_noss == employer, d.c.quarter == quarter.code,
                                             d.c.is_current.is_(True), d.c.scope.in_(self.scopes))
            .order_by(d.c.declaration_id.desc()).limit(1)).scalar()

    def social_risk_exists(self, scenario: str, employer: str, inss: str, same_event_key: str) -> bool:
        s = t.social_risk
        return self.connection.execute(select(s.c.declaration_id).where(
            s.c.scenario == scenario, s.c.employer_noss == employer, s.c.inss == inss,
            s.c.same_event_key == same_event_key, s.c.scope.in_(self.scopes)).limit(1)).first() is not None

    def dmfa_history(self, employer: str, inss: str, before: Quarter, limit: int = 4) -> list[QuarterSnapshot]:
        d, p, o = t.dmfa, t.dmfa_person, t.dmfa_occupation
        declarations = self.connection.execute(
            select(d.c.declaration_id, d.c.quarter, p.c.person_nbr)
            .join(p, p.c.declaration_id == d.c.declaration_id)
            .where(d.c.employer_noss == employer, d.c.is_current.is_(True), d.c.quarter < before.code,
                   d.c.scope.in_(self.scopes), p.c.inss == inss)
            .order_by(d.c.quarter.desc(), d.c.declaration_id.desc())).all()
        snapshots: list[QuarterSnapshot] = []
        seen: set[int] = set()
        for row in declarations:
            if row.quarter in seen:
                continue  # a TEST replacement and its PROD original: the newest counts
            seen.add(row.quarter)
            occupations = self.connection.execute(
                select(o.c.starting_date, o.c.occupation_nbr, o.c.mean_working_hours, o.c.ref_mean_working_hours,
                       o.c.joint_commission, o.c.remuneration_codes, o.c.remuneration_amounts)
                .where(o.c.declaration_id == row.declaration_id, o.c.person_nbr == row.person_nbr)
                .order_by(o.c.record_nbr, o.c.occupation_nbr)).all()
            # Ordinary pay and bonuses (RemunCode 001, 002) of all the person's occupations in the DmfA.
            remun = sum(amount for x in occupations
                        for code, amount in zip(x.remuneration_codes, x.remuneration_amounts) if code in ("001", "002"))
            snapshots.append(QuarterSnapshot(
                Quarter(row.quarter // 10, row.quarter % 10), remun,
                tuple(OccupationSnapshot(x.starting_date, x.occupation_nbr, x.mean_working_hours,
                                         x.ref_mean_working_hours, x.joint_commission) for x in occupations)))
            if len(snapshots) == limit:
                break
        return snapshots


class DirectoryReader:
    """DirectoryView over the loaded directory."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def registered_enterprise_nbr(self, noss: str):
        e = t.employer
        row = self.connection.execute(select(e.c.enterprise_nbr, e.c.in_directory).where(e.c.noss == noss)).first()
        if row is None or not row.in_directory:
            return False
        return row.enterprise_nbr

    def sender_fingerprints(self, sender_id: str) -> frozenset[str]:
        c = t.sender_certificate
        return frozenset(self.connection.execute(
            select(c.c.fingerprint).where(c.c.sender_id == sender_id)).scalars())

    def sender_exists(self, sender_id: str) -> bool:
        return self.connection.execute(
            select(t.sender.c.sender_id).where(t.sender.c.sender_id == sender_id)).first() is not None

    def sender_employer(self, sender_id: str) -> str | None:
        return self.connection.execute(
            select(t.sender.c.noss).where(t.sender.c.sender_id == sender_id)).scalar()

    def mandates(self, sender_id: str, noss: str) -> list[Mandate]:
        m = t.mandate
        rows = self.connection.execute(select(m).where(m.c.sender_id == sender_id, m.c.noss == noss))
        return [Mandate(r.sender_id, r.noss, frozenset(r.kinds.split()), r.valid_from, r.valid_to) for r in rows]


# --- what one submission reads before stage 5, in one statement ------------------------------------------------

@dataclass(frozen=True)
class StoredResult:
    """The declaration that holds a (SenderId, MessageId) key, with its signed result."""
    declaration_id: int
    content_sha256: str | None
    status: str
    result: bytes


def _typed(expression, type_):
    """A column of the UNION below: the value, or a NULL of the same type (SQLite needs the type to read dates)."""
    return cast(null(), type_) if expression is None else type_coerce(expression, type_)


def _branch(what: str, table, where, *, text_a=None, text_b=None, day_a=None, day_b=None, number=None, blob=None):
    return select(literal_column(f"'{what}'", String).label("what"), _typed(text_a, String).label("text_a"),
                  _typed(text_b, String).label("text_b"), _typed(day_a, Date).label("day_a"),
                  _typed(day_b, Date).label("day_b"), _typed(number, BigInteger).label("number"),
                  _typed(blob, LargeBinary).label("blob")).select_from(table).where(where)


def _submission_reads():
    sender_id, message_id, noss = bindparam("sender_id", type_=String), bindparam("message_id", type_=String), \
        bindparam("noss", type_=String)
    c, k, d, e, s, m = t.sender_certificate, t.message_key, t.declaration, t.employer, t.sender, t.mandate
    return union_all(
        _branch("fingerprint", c, c.c.sender_id == sender_id, text_a=c.c.fingerprint),
        _branch("key", k.join(d, d.c.id == k.c.declaration_id),
                and_(k.c.sender_id == sender_id, k.c.message_id == message_id),
                number=k.c.declaration_id, text_a=k.c.content_sha256, text_b=d.c.status, blob=d.c.result),
        _branch("employer", e, e.c.noss == noss, text_a=e.c.enterprise_nbr, number=cast(e.c.in_directory, Integer)),
        _branch("sender", s, s.c.sender_id == sender_id, text_a=s.c.noss),
        _branch("mandate", m, and_(m.c.sender_id == sender_id, m.c.noss == noss),
                text_a=m.c.kinds, day_a=m.c.valid_from, day_b=m.c.valid_to))


# Built once: SQLAlchemy caches its compiled form, psycopg prepares it after a few executions.
_SUBMISSION_READS = _submission_reads()


class SenderView(DirectoryReader):
    """What stages 2 to 4 read about one sender, read in one statement (``sender_view``).

    It holds the sender's certificates, the declaration holding the message
    key if any, the employer, the sender's own employer and the sender's
    mandates from that employer. It lives for one transaction; any other
    question goes to the database, as DirectoryReader does.
    """

    def __init__(self, connection: Connection, sender_id: str, message_id: str | None, noss: str | None, rows):
        super().__init__(connection)
        self.sender_id, self.message_id, self.noss = sender_id, message_id, noss
        fingerprints, mandates = set(), []
        self.first: StoredResult | None = None
        self._employer = None
        self._sender_noss = None
        # rows: (what, text_a, text_b, day_a, day_b, number, blob), by position (tuples from the driver on
        # PostgreSQL, SQLAlchemy rows on SQLite).
        for what, text_a, text_b, day_a, day_b, number, blob in rows:
            if what == "fingerprint":
                fingerprints.add(text_a)
            elif what == "key":
                self.first = StoredResult(number, text_a, text_b, bytes(blob))
            elif what == "employer":
                self._employer = (text_a, number)  # enterprise number, in the directory
            elif what == "sender":
                self._sender_noss = text_a
            elif what == "mandate":
                mandates.append(Mandate(sender_id, noss, frozenset(text_a.split()), day_a, day_b))
        self._fingerprints = frozenset(fingerprints)
        self._mandates = mandates

    def registered_enterprise_nbr(self, noss: str):
        if noss != self.noss:
            return super().registered_enterprise_nbr(noss)
        if self._employer is None or not self._employer[1]:
            return False
        return self._employer[0]

    def sender_fingerprints(self, sender_id: str) -> frozenset[str]:
        return self._fingerprints if sender_id == self.sender_id else super().sender_fingerprints(sender_id)

    def sender_employer(self, sender_id: str) -> str | None:
        return self._sender_noss if sender_id == self.sender_id else super().sender_employer(sender_id)

    def mandates(self, sender_id: str, noss: str) -> list[Mandate]:
        if sender_id == self.sender_id and noss == self.noss:
            return list(self._mandates)
        return super().mandates(sender_id, noss)


def sender_view(connection: Connection, sender_id: str, message_id: str | None, noss: str | None) -> SenderView:
    """One statement for the sender's certificates (S003), the (SenderId, MessageId) key when ``message_id``
    is given, and, when ``noss`` is given, the directory's employer, sender and mandates (stage 4)."""
    rows = connection.execute(_SUBMISSION_READS, {"sender_id": sender_id, "message_id": message_id, "noss": noss})
    return SenderView(connection, sender_id, message_id, noss, rows.all())


# --- what the Dimona rules read, in one statement -----------------------------------------------------------

# The PeriodId an accepted DimonaIn will get, drawn before the rules run so that the signed result (which
# carries it) and the facts go to the database together. PostgreSQL: the column's sequence (a refused In
# leaves a gap, as a rolled-back insert does). SQLite: the AUTOINCREMENT counter, safe because the whole
# transaction holds the database's write lock (BEGIN IMMEDIATE).
_NEXT_PERIOD_ID = {
    False: "nextval(pg_get_serial_sequence('employment_period', 'period_id'))",
    True: "(SELECT COALESCE(MAX(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'employment_period')",
}


@lru_cache(maxsize=None)
def _dimona_reads(sqlite: bool, new_period: bool):
    """Every period a Dimona's rules read: the period it names (Out, Update, Cancel), the worker's
    non-cancelled periods with this employer (D002) and the worker's non-cancelled student periods with any
    employer (D008); for an In, with the next PeriodId."""
    p = t.employment_period
    # PROD reads PROD; TEST reads PROD and its own scope: two plain parameters (the same twice for PROD)
    # rather than an expanding IN list, which SQLAlchemy renders again at every execution.
    scopes = [bindparam("scope_a", type_=String), bindparam("scope_b", type_=String)]
    related = and_(p.c.cancelled.is_(False), or_(p.c.employer_noss == bindparam("noss"), p.c.worker_type == "STU"))
    if new_period:
        # A one-row subquery with the volatile nextval(): evaluated once, whatever the number of periods.
        n = select(literal_column(_NEXT_PERIOD_ID[sqlite], BigInteger).label("next_id")).subquery("n")
        return (select(n.c.next_id, *p.c)
                .select_from(n.outerjoin(p, and_(p.c.scope.in_(scopes), p.c.inss == bindparam("inss"), related)))
                .order_by(p.c.period_id))
    named = p.alias("named")
    worker = select(named.c.inss).where(named.c.period_id == bindparam("period_id"),
                                        named.c.scope.in_(scopes)).scalar_subquery()
    return (select(*p.c)
            .where(p.c.scope.in_(scopes), or_(p.c.period_id == bindparam("period_id"),
                                              and_(p.c.inss == worker, related)))
            .order_by(p.c.period_id))


# employment_period's columns that make a StoredPeriod, in its fields' order; where they sit in a row of all
# employment_period's columns (in table order), by position.
_PERIOD_COLUMNS = ("period_id", "employer_noss", "inss", "starting_date", "ending_date", "joint_commission",
                   "worker_type", "planned_hours", "cancelled", "version")
_PERIOD_FIELDS = tuple(t.employment_period.c.keys().index(name) for name in _PERIOD_COLUMNS)


def _period_at(row, offset: int) -> StoredPeriod:
    """_period of a row holding employment_period's columns from position ``offset`` on."""
    return StoredPeriod(*(row[offset + i] for i in _PERIOD_FIELDS))


@lru_cache(maxsize=None)
def _dimona_statement(new_period: bool) -> DriverStatement:
    """PostgreSQL: _dimona_reads on the driver's cursor (database.DriverStatement), rows as tuples."""
    return DriverStatement(_dimona_reads(False, new_period))


@lru_cache(maxsize=None)
def _periods_of_statement(as_text: bool) -> DriverStatement:
    """PostgreSQL: StoredView.periods_of's query with the workers as one array (``inss = ANY(...)``, which
    PostgreSQL plans as it plans an IN list), given as one comma-separated text when ``as_text``, on the
    driver's cursor (database.DriverStatement); StoredPeriod's fields, in its order."""
    p = t.employment_period
    scopes = [bindparam("scope_a", type_=String), bindparam("scope_b", type_=String)]
    workers = (func.string_to_array(cast(bindparam("inss_list"), Text), ",") if as_text
               else bindparam("inss_list"))
    return DriverStatement(select(*(p.c[name] for name in _PERIOD_COLUMNS)).where(
        p.c.employer_noss == bindparam("noss", type_=String), p.c.inss == any_(workers),
        p.c.cancelled.is_(False), p.c.scope.in_(scopes)))


@lru_cache(maxsize=None)
def _uncovered_statement(as_text: bool) -> DriverStatement:
    """PostgreSQL: StoredView.uncovered's statement, the spans as three parallel arrays (the workers given as
    one comma-separated text when ``as_text``, the days always), numbered from 0 as they were given.

    One index lookup per span (LATERAL ... LIMIT 1 keeps the planner from turning it into an anti join):
    ~2 ms for 1,000 workers whatever the table's statistics say. The NOT EXISTS form of session 6 became,
    while employment_period had no statistics yet (a store just loaded, autovacuum not yet by), a nested
    loop over the employer's periods for each span: 500,000 comparisons, 15-50 ms (bench/README.md,
    "Session 7"); with statistics, a hash anti join of ~1 ms."""
    workers = "string_to_array(CAST(:inss AS text), ',')" if as_text else "CAST(:inss AS text[])"
    return DriverStatement(text(
        f"SELECT CAST(s.n - 1 AS integer) FROM unnest({workers}, "
        "CAST(string_to_array(CAST(:starts AS text), ',') AS date[]), "
        "CAST(string_to_array(CAST(:ends AS text), ',') AS date[])) WITH ORDINALITY AS s(inss, first_day, last_day, n) "
        "LEFT JOIN LATERAL (SELECT 1 AS hit FROM employment_period AS p WHERE p.employer_noss = :noss "
        "AND p.inss = s.inss AND p.cancelled IS false AND p.scope IN (:scope_a, :scope_b) "
        "AND (p.ending_date IS NULL OR s.first_day <= p.ending_date) AND p.starting_date <= s.last_day "
        "LIMIT 1) AS covering ON true WHERE covering.hit IS NULL"))


class DimonaView(StoredView):
    """StoredData for the rules of one Dimona, read in one statement (after the employer's lock).

    It answers ``period``, ``periods_of`` and ``student_hours`` for the
    Dimona's period, employer and worker from the rows read; any other
    question goes to the database, as StoredView does. For an In,
    ``next_period_id`` is the PeriodId the period will get if accepted.
    """

    def __init__(self, connection: Connection, scope: str, dimona: Dimona):
        super().__init__(connection, scope)
        action = dimona.action
        self.employer = dimona.employer.noss
        sqlite = connection.dialect.name == "sqlite"
        params = {"scope_a": self.scopes[0], "scope_b": self.scopes[-1], "noss": self.employer}
        new_period = isinstance(action, DimonaIn)
        if new_period:
            params["inss"] = action.inss
        else:
            params["period_id"] = action.period_id
        # Rows by position: an In's start with next_id, then employment_period's columns (NULL when the worker
        # has no period yet); SQLAlchemy rows on SQLite (its Date type reads the ISO text), tuples on PostgreSQL.
        if sqlite:
            rows = connection.execute(_dimona_reads(True, new_period), params).all()
        else:
            rows = _dimona_statement(new_period).rows(connection, params)
        if new_period:
            self.next_period_id: int | None = rows[0][0]
            self.named_id, self.named = None, None
            self.inss: str | None = action.inss
            self.rows = [_period_at(r, 1) for r in rows if r[1] is not None]
        else:
            self.next_period_id = None
            self.rows = [_period_at(r, 0) for r in rows]
            self.named_id = action.period_id
            self.named = next((r for r in self.rows if r.period_id == action.period_id), None)
            self.inss = self.named.inss if self.named else None

    def period(self, period_id: int) -> StoredPeriod | None:
        if self.named_id is not None and period_id == self.named_id:
            return self.named
        return super().period(period_id)

    def periods_of(self, employer: str, inss_list: Iterable[str]) -> dict[str, list[StoredPeriod]]:
        inss_list = list(inss_list)
        if employer != self.employer or self.inss is None or set(inss_list) - {self.inss}:
            return super().periods_of(employer, inss_list)
        found: dict[str, list[StoredPeriod]] = defaultdict(list)
        for row in self.rows:
            if row.employer == employer and row.inss in inss_list and not row.cancelled:
                found[row.inss].append(row)
        return found

    def student_hours(self, inss: str, year: int, *, excluding_period: int | None) -> int:
        if inss != self.inss:
            return super().student_hours(inss, year, excluding_period=excluding_period)
        return sum(row.planned_hours or 0 for row in self.rows
                   if row.inss == inss and row.worker_type == "STU" and not row.cancelled
                   and row.starting_date.year == year and not (excluding_period and row.period_id == excluding_period))
