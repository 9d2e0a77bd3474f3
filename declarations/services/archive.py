"""Read the archive back: every received message, unchanged, by its DeclarationId."""

from __future__ import annotations

from dataclasses import dataclass

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Engine

from declarations.store import tables as t
from declarations.store.originals import unpack


@dataclass(frozen=True)
class Archived:
    declaration_id: int
    received_at: dt.datetime
    channel: str
    kind: str | None
    sender_id: str | None
    message_id: str | None
    status: str
    original: bytes
    result: bytes


def archived(engine: Engine, declaration_id: int) -> Archived | None:
    d = t.declaration
    with engine.connect() as connection:
        row = connection.execute(select(d).where(d.c.id == declaration_id)).first()
    if row is None:
        return None
    return Archived(row.id, row.received_at, row.channel, row.kind, row.sender_id, row.message_id, row.status,
                    unpack(bytes(row.original), row.original_coding), bytes(row.result))


def received_count(engine: Engine) -> int:
    """How many messages the archive holds."""
    from sqlalchemy import func

    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(t.declaration)).scalar_one()
