"""Read a stored social risk's ReferenceData and where it came from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from declarations.domain.model import ReferenceData
from declarations.store import tables as t


def stored_reference(engine: Engine, declaration_id: int) -> tuple[ReferenceData | None, str] | None:
    """(ReferenceData or None, DECLARED | DERIVED | NONE), or None if no such accepted social risk."""
    s = t.social_risk
    with engine.connect() as connection:
        row = connection.execute(select(s).where(s.c.declaration_id == declaration_id)).first()
    if row is None:
        return None
    if row.ref_quarterly_gross_remun is None:
        return None, row.reference_source
    return ReferenceData(row.ref_quarterly_gross_remun, row.ref_working_time_fraction,
                         row.ref_joint_commission), row.reference_source
