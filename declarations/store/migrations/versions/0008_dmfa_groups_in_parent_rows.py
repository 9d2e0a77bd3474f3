"""A DmfA's repeating groups in their parent's row: services and remunerations in dmfa_occupation, contributions
in dmfa_worker_record, as parallel arrays in the declaration's order (arrays on PostgreSQL, JSON arrays on
SQLite); tables dmfa_service, dmfa_remuneration and dmfa_contribution go.

Why (docs/decisions.md, "A DmfA's repeating groups"): a DmfA of 1,000 workers was ~7,000 child rows in six
tables, each row with its own primary-key entry; writing them was most of the database's work for a DmfA
(~17.5 of ~23 ms of PostgreSQL's CPU), inside the transactions a batch runs one after the other. Kept with
their parent, the same values are 3,000 rows (~10.7 ms). Every reader took them by their parent's key anyway.

The values move as they are, both ways (downgrade puts each element back as its own row, position = its
place in the array).

Revision ID: 0008
Revises: 0007
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# (child table, parent table, parent key, (child column, parent column, item type) in order)
_GROUPS = (
    ("dmfa_contribution", "dmfa_worker_record", ("declaration_id", "person_nbr", "record_nbr"),
     (("code", "contribution_codes", sa.String(3)), ("base", "contribution_bases", sa.BigInteger()),
      ("amount", "contribution_amounts", sa.BigInteger()))),
    ("dmfa_service", "dmfa_occupation", ("declaration_id", "person_nbr", "record_nbr", "occupation_nbr"),
     (("code", "service_codes", sa.String(3)), ("days", "service_days", sa.Integer()),
      ("hours", "service_hours", sa.Integer()))),
    ("dmfa_remuneration", "dmfa_occupation", ("declaration_id", "person_nbr", "record_nbr", "occupation_nbr"),
     (("code", "remuneration_codes", sa.String(3)), ("amount", "remuneration_amounts", sa.BigInteger()))),
)


def _array(item_type):
    return sa.ARRAY(item_type).with_variant(sa.JSON(), 'sqlite')


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _parents() -> dict[str, list]:
    """Each parent table with its groups (an occupation has two), in _GROUPS order."""
    parents: dict[str, list] = {}
    for group in _GROUPS:
        parents.setdefault(group[1], []).append(group)
    return parents


def upgrade() -> None:
    sqlite = _is_sqlite()
    for parent, groups in _parents().items():
        # Every existing parent row gets empty arrays first (a parent without children keeps them), then its
        # children's values; the default is dropped again: the engine always writes the arrays.
        for _, _, _, columns in groups:
            for _, column, item_type in columns:
                op.add_column(parent, sa.Column(column, _array(item_type), nullable=False,
                                                server_default=sa.text("'[]'" if sqlite else "'{}'")))
        if sqlite:
            for child, _, key, columns in groups:
                _fill_parents_sqlite(child, parent, key, columns)
        else:
            _fill_parents_postgresql(parent, groups)
        with op.batch_alter_table(parent) as batch:
            for _, _, _, columns in groups:
                for _, column, _ in columns:
                    batch.alter_column(column, server_default=None)
        for child, _, _, _ in groups:
            op.drop_table(child)


def _fill_parents_postgresql(parent: str, groups: list) -> None:
    """One UPDATE per parent table (each of its rows rewritten once, however many groups it takes): each
    group's arrays aggregated in position order, joined to the parent rows by their key."""
    key = groups[0][2]
    assignments, joins, found = [], [], []
    for n, (child, _, _, columns) in enumerate(groups):
        aggregates = ", ".join(f"array_agg({c} ORDER BY position) AS {p}" for c, p, _ in columns)
        joins.append(f"LEFT JOIN (SELECT {', '.join(key)}, {aggregates} FROM {child} GROUP BY {', '.join(key)}) g{n} "
                     f"ON {' AND '.join(f'g{n}.{k} = k.{k}' for k in key)}")
        assignments += [f"{p} = COALESCE(g{n}.{p}, '{{}}')" for _, p, _ in columns]
        found.append(f"g{n}.{key[0]} IS NOT NULL")
    op.execute(f"UPDATE {parent} p SET {', '.join(assignments)} FROM {parent} k {' '.join(joins)} "
               f"WHERE {' AND '.join(f'p.{k} = k.{k}' for k in key)} AND ({' OR '.join(found)})")


def _fill_parents_sqlite(child: str, parent: str, key: tuple, columns: tuple) -> None:
    bind = op.get_bind()
    names = [c for c, _, _ in columns]
    rows = bind.execute(sa.text(f"SELECT {', '.join(key)}, {', '.join(names)} FROM {child} "
                                f"ORDER BY {', '.join(key)}, position")).all()
    groups: dict[tuple, list[list]] = {}
    for row in rows:
        values = groups.setdefault(tuple(row[:len(key)]), [[] for _ in names])
        for i, value in enumerate(row[len(key):]):
            values[i].append(value)
    if not groups:
        return
    assignments = ", ".join(f"{p} = :{p}" for _, p, _ in columns)
    where = " AND ".join(f"{k} = :{k}" for k in key)
    bind.execute(sa.text(f"UPDATE {parent} SET {assignments} WHERE {where}"), [
        {**dict(zip(key, group_key)), **{p: json.dumps(v) for (_, p, _), v in zip(columns, values)}}
        for group_key, values in groups.items()])


def downgrade() -> None:
    sqlite = _is_sqlite()
    for child, parent, key, columns in _GROUPS:
        op.create_table(
            child,
            sa.Column('declaration_id', Id, nullable=False),
            *[sa.Column(k, sa.Integer(), nullable=False) for k in key[1:]],
            sa.Column('position', sa.Integer(), nullable=False),
            *[sa.Column(c, item_type, nullable=(c == "hours")) for c, _, item_type in columns],
            sa.PrimaryKeyConstraint(*key, 'position', name=op.f(f'pk_{child}')))
        if sqlite:
            _fill_children_sqlite(child, parent, key, columns)
        else:
            names = ", ".join(c for c, _, _ in columns)
            arrays = ", ".join(f"p.{p}" for _, p, _ in columns)
            values = ", ".join(f"u.{c}" for c, _, _ in columns)
            op.execute(f"INSERT INTO {child} ({', '.join(key)}, position, {names}) "
                       f"SELECT {', '.join(f'p.{k}' for k in key)}, u.position, {values} "
                       f"FROM {parent} p CROSS JOIN LATERAL unnest({arrays}) WITH ORDINALITY AS u({names}, position)")
    for parent, groups in _parents().items():
        with op.batch_alter_table(parent) as batch:
            for _, _, _, columns in groups:
                for _, column, _ in columns:
                    batch.drop_column(column)


def _fill_children_sqlite(child: str, parent: str, key: tuple, columns: tuple) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT {', '.join(key)}, {', '.join(p for _, p, _ in columns)} "
                                f"FROM {parent}")).all()
    names = [c for c, _, _ in columns]
    statement = sa.text(f"INSERT INTO {child} ({', '.join(key)}, position, {', '.join(names)}) VALUES "
                        f"({', '.join(f':{k}' for k in (*key, 'position', *names))})")
    values = []
    for row in rows:
        arrays = [json.loads(text) for text in row[len(key):]]
        for position, items in enumerate(zip(*arrays), 1):
            values.append({**dict(zip(key, row[:len(key)])), "position": position, **dict(zip(names, items))})
    if values:
        bind.execute(statement, values)
