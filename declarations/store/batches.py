"""The batch repository: one row per batch file (claim, lease, answers) and its items.

Claiming a file is a database operation, never a lock file, so several
processes (``batch run``, ``serve``) on several machines can share one inbox
folder and one PostgreSQL database. The row of a file is keyed by the
SHA-256 of the file as uploaded; whoever inserts it, or takes it over once
the lease of its owner ran out (or its owner process died on this host),
owns it. Every write of the owner checks that it still owns the row
(``owner = :me``), so a process that lost its lease cannot write any more.

On PostgreSQL the row is read ``FOR UPDATE`` in the claim transaction; on
SQLite ``BEGIN IMMEDIATE`` (database.py) serialises the claim transactions.
Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Iterator

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Connection, Engine

from declarations.store import tables as t
from declarations.store.database import DriverStatement, insert_ignoring_duplicates, is_sqlite

CLAIMED, RECEIVED, DONE, REFUSED = "CLAIMED", "RECEIVED", "DONE", "REFUSED"


@dataclass(frozen=True)
class BatchRow:
    id: int
    file_sha256: str
    file_name: str
    status: str
    owner: str | None
    lease_until: float | None
    sender_id: str | None
    batch_id: str | None
    item_count: int | None
    items_done: int
    received_at: dt.datetime | None
    code: str | None
    ack: bytes | None
    result: bytes | None


@dataclass(frozen=True)
class Claim:
    """What the claim found. ``decision``: NEW, RESUME (an unfinished batch whose owner is gone),
    AGAIN (a refused file uploaded again: checked afresh), RETRY (done: re-issue its answers),
    BUSY (another live process holds it)."""
    decision: str
    row: BatchRow | None


def _row(result) -> BatchRow | None:
    return None if result is None else BatchRow(**{k: result._mapping[k] for k in BatchRow.__dataclass_fields__})


def find(connection: Connection, file_sha256: str) -> BatchRow | None:
    return _row(connection.execute(select(*t.batch.c).where(t.batch.c.file_sha256 == file_sha256)).first())


def get(connection: Connection, batch_pk: int) -> BatchRow | None:
    return _row(connection.execute(select(*t.batch.c).where(t.batch.c.id == batch_pk)).first())


def find_by_batch_id(connection: Connection, sender_id: str, batch_id: str) -> BatchRow | None:
    return _row(connection.execute(select(*t.batch.c).where(
        t.batch.c.sender_id == sender_id, t.batch.c.batch_id == batch_id)).first())


def held_elsewhere(engine: Engine, *, file_name: str, owner: str, now: float,
                   owner_is_gone: Callable[[str], bool]) -> bool:
    """Whether another live process holds an unfinished batch of a file with this name: that process is
    working on the file in the inbox now (it is removed once the batch is done), so there is no need to copy
    and hash it again just to find its claim taken. Read without a lock: a claim that ends meanwhile is seen
    at the next pass."""
    b = t.batch
    with engine.connect() as connection:
        holders = connection.execute(select(b.c.owner, b.c.lease_until).where(
            b.c.file_name == file_name, b.c.status.in_((CLAIMED, RECEIVED)))).all()
    return any(holder is not None and holder != owner and (until or 0) >= now and not owner_is_gone(holder)
               for holder, until in holders)


def claim(engine: Engine, *, file_sha256: str, file_name: str, owner: str, now: float, lease_seconds: float,
          owner_is_gone: Callable[[str], bool]) -> Claim:
    """Claim the file with this SHA-256 for ``owner``, in one transaction."""
    b = t.batch
    until = now + lease_seconds
    with engine.begin() as connection:
        row = _row(connection.execute(select(*b.c).where(b.c.file_sha256 == file_sha256).with_for_update()).first())
        if row is None:
            inserted = connection.execute(insert_ignoring_duplicates(connection, b).values(
                file_sha256=file_sha256, file_name=file_name, status=CLAIMED, owner=owner, lease_until=until,
                items_done=0).returning(b.c.id)).first()
            if inserted is None:
                return Claim("BUSY", None)  # another process inserted it meanwhile (PostgreSQL)
            return Claim("NEW", find(connection, file_sha256))
        if row.status == DONE:
            return Claim("RETRY", row)
        if row.status == REFUSED:
            decision, values = "AGAIN", dict(status=CLAIMED, file_name=file_name, code=None, ack=None, result=None,
                                            received_at=None, items_done=0)
        elif row.owner is None or (row.lease_until or 0) < now or owner_is_gone(row.owner):
            decision, values = "RESUME", {}
        else:
            return Claim("BUSY", row)
        taken = connection.execute(update(b).where(b.c.id == row.id, _same_owner(row.owner))
                                   .values(owner=owner, lease_until=until, **values)).rowcount
        if taken != 1:
            return Claim("BUSY", row)
        return Claim(decision, get(connection, row.id))


def _same_owner(owner: str | None):
    return t.batch.c.owner.is_(None) if owner is None else t.batch.c.owner == owner


def _owned(batch_pk: int, owner: str):
    return update(t.batch).where(t.batch.c.id == batch_pk, t.batch.c.owner == owner)


def heartbeat(connection: Connection, batch_pk: int, owner: str, lease_until: float,
              count_item: bool = False) -> bool:
    """Extend the lease (``count_item``: and count one more item stored, in the item's transaction);
    False when this owner lost the row."""
    values = dict(lease_until=lease_until)
    if count_item:
        values["items_done"] = t.batch.c.items_done + 1
    return connection.execute(_owned(batch_pk, owner).values(**values)).rowcount == 1


def mark_received(connection: Connection, batch_pk: int, owner: str, *, sender_id: str, batch_id: str,
                  item_count: int, received_at: dt.datetime, ack: bytes) -> bool:
    """The file-level checks passed and the ack is signed. A duplicate (sender_id, batch_id) raises
    IntegrityError (B005)."""
    return connection.execute(_owned(batch_pk, owner).values(
        status=RECEIVED, sender_id=sender_id, batch_id=batch_id, item_count=item_count, received_at=received_at,
        ack=ack)).rowcount == 1


def mark_refused(connection: Connection, batch_pk: int, owner: str, *, code: str, received_at: dt.datetime,
                 ack: bytes) -> bool:
    """A file-level refusal: nothing of the file is stored; the row only keeps the signed ack."""
    return connection.execute(_owned(batch_pk, owner).values(
        status=REFUSED, code=code, received_at=received_at, ack=ack, sender_id=None, batch_id=None,
        item_count=None, owner=None, lease_until=None)).rowcount == 1


def mark_done(connection: Connection, batch_pk: int, owner: str, *, result: bytes | None = None) -> bool:
    """Done. ``result``: the signed BatchResult, or None when it is kept as a file (the batch service
    keeps it in the archive, ``<sha256>.result.xml``: it can be tens of megabytes)."""
    return connection.execute(_owned(batch_pk, owner).values(
        status=DONE, result=result, owner=None, lease_until=None)).rowcount == 1


# PostgreSQL: record_item in one round trip (the insert runs even when the update finds the row another
# owner's: the caller then rolls the whole item back).
_RECORD_ITEM_PG = DriverStatement(text("""
WITH item AS (INSERT INTO batch_item (batch, position, declaration_id) VALUES (:batch, :position, :declaration_id))
UPDATE batch SET lease_until = :lease_until, items_done = items_done + 1 WHERE id = :batch AND owner = :owner
RETURNING id"""))


def record_item(connection: Connection, batch_pk: int, position: int, declaration_id: int, *, owner: str,
                lease_until: float) -> bool:
    """A decided item, in its declaration's transaction: its position, one more item counted, the lease
    extended. False when this owner lost the batch (the caller rolls the item back)."""
    if is_sqlite(connection):
        add_item(connection, batch_pk, position, declaration_id)
        return heartbeat(connection, batch_pk, owner, lease_until, count_item=True)
    return bool(_RECORD_ITEM_PG.rows(connection, dict(batch=batch_pk, position=position,
                                                       declaration_id=declaration_id, owner=owner,
                                                       lease_until=lease_until)))


def add_item(connection: Connection, batch_pk: int, position: int, declaration_id: int) -> None:
    connection.execute(t.batch_item.insert().values(batch=batch_pk, position=position,
                                                    declaration_id=declaration_id))


def positions_stored(connection: Connection, batch_pk: int) -> tuple[int, frozenset[int]]:
    """The committed positions of a batch, as (n, others): positions 1..n all committed, and the
    committed ones after n. Items decided on several processes commit out of file order, but only
    within the few in flight at once: ``others`` stays small, however long the batch."""
    prefix, others = 0, set()
    rows = connection.execute(select(t.batch_item.c.position).where(t.batch_item.c.batch == batch_pk)
                              .order_by(t.batch_item.c.position))
    for (position,) in rows:
        if position == prefix + 1 and not others:
            prefix = position
        else:
            others.add(position)
    return prefix, frozenset(others)


def status_counts(engine: Engine, batch_pk: int) -> dict[str, int]:
    """The number of the batch's declarations per status (ACCEPTED, ...), counted by the database."""
    i, d = t.batch_item, t.declaration
    with engine.connect() as connection:
        rows = connection.execute(select(d.c.status, func.count()).join(i, d.c.id == i.c.declaration_id)
                                  .where(i.c.batch == batch_pk).group_by(d.c.status)).all()
    return {status: count for status, count in rows}


def signed_results(engine: Engine, batch_pk: int, chunk: int = 16) -> Iterator[bytes]:
    """The stored signed DeclarationResult of each item, in file order, read a chunk at a time
    (a short read per chunk, no transaction held open across the whole answer; a chunk is small,
    as one DmfA's result can carry thousands of anomalies)."""
    i, d = t.batch_item, t.declaration
    last = 0
    while True:
        with engine.connect() as connection:
            rows = connection.execute(select(i.c.position, d.c.result).join(d, d.c.id == i.c.declaration_id)
                                      .where(i.c.batch == batch_pk, i.c.position > last)
                                      .order_by(i.c.position).limit(chunk)).all()
        if not rows:
            return
        for position, result in rows:
            yield bytes(result)
        last = rows[-1].position
