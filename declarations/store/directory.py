"""The directory tables: replace them all with a Directory, or read it back."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from declarations.domain import directory as d
from declarations.store import tables as t
from declarations.store.database import insert_ignoring_duplicates


def replace_directory(connection: Connection, directory: d.Directory) -> None:
    """Make the stored directory equal to ``directory`` (caller's transaction).

    Employers are shared with the facts, so they are never deleted: those the
    new directory does not list stay, marked as not in the directory.
    """
    for table in (t.sender_certificate, t.mandate, t.institution_certificate, t.authorization, t.sender,
                  t.institution):
        connection.execute(delete(table))
    connection.execute(update(t.employer).values(in_directory=False))
    for e in directory.employers:
        connection.execute(insert_ignoring_duplicates(connection, t.employer).values(noss=e.noss))
        connection.execute(update(t.employer).where(t.employer.c.noss == e.noss).values(
            enterprise_nbr=e.enterprise_nbr, name=e.name, in_directory=True))

    def rows(table, values):
        if values:
            connection.execute(insert(table), values)

    rows(t.sender, [{"sender_id": s.sender_id, "name": s.name, "noss": s.noss, "position": i}
                    for i, s in enumerate(directory.senders)])
    rows(t.sender_certificate, [{"sender_id": s.sender_id, "fingerprint": f, "position": j}
                                for s in directory.senders for j, f in enumerate(dict.fromkeys(s.fingerprints))])
    rows(t.mandate, [{"sender_id": m.sender_id, "noss": m.noss, "kinds": " ".join(m.kinds),
                      "valid_from": m.valid_from, "valid_to": m.valid_to, "position": i}
                     for i, m in enumerate(directory.mandates)])
    rows(t.institution, [{"institution_id": x.institution_id, "name": x.name, "sector": x.sector, "position": i}
                         for i, x in enumerate(directory.institutions)])
    rows(t.institution_certificate, [{"institution_id": x.institution_id, "fingerprint": f, "position": j}
                                     for x in directory.institutions
                                     for j, f in enumerate(dict.fromkeys(x.fingerprints))])
    rows(t.authorization, [{"institution_id": a.institution_id, "capacity": a.capacity, "data_type": a.data_type,
                            "position": i} for i, a in enumerate(dict.fromkeys(directory.authorizations))])


def read_directory(connection: Connection) -> d.Directory:
    def all_rows(table, *where):
        return connection.execute(select(table).where(*where).order_by(*table.primary_key.columns)).all()

    employers = tuple(d.DirectoryEmployer(r.noss, r.enterprise_nbr, r.name)
                      for r in all_rows(t.employer, t.employer.c.in_directory.is_(True)))
    certs: dict[str, list[str]] = {}
    for r in connection.execute(select(t.sender_certificate).order_by(t.sender_certificate.c.position)):
        certs.setdefault(r.sender_id, []).append(r.fingerprint)
    senders = tuple(d.DirectorySender(r.sender_id, r.name, r.noss, tuple(certs.get(r.sender_id, ())))
                    for r in connection.execute(select(t.sender).order_by(t.sender.c.position)))
    mandates = tuple(d.DirectoryMandate(r.sender_id, r.noss, tuple(r.kinds.split()), r.valid_from, r.valid_to)
                     for r in connection.execute(select(t.mandate).order_by(t.mandate.c.position)))
    icerts: dict[str, list[str]] = {}
    for r in connection.execute(select(t.institution_certificate).order_by(t.institution_certificate.c.position)):
        icerts.setdefault(r.institution_id, []).append(r.fingerprint)
    institutions = tuple(d.DirectoryInstitution(r.institution_id, r.name, r.sector,
                                                tuple(icerts.get(r.institution_id, ())))
                         for r in connection.execute(select(t.institution).order_by(t.institution.c.position)))
    authorizations = tuple(d.DirectoryAuthorization(r.institution_id, r.capacity, r.data_type)
                           for r in connection.execute(select(t.authorization).order_by(t.authorization.c.position)))
    return d.Directory(employers, senders, mandates, institutions, authorizations)
