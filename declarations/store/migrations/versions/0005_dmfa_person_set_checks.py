"""dmfa_person's references checked per statement on PostgreSQL, not per row (a no-op on SQLite)

dmfa_person had two foreign keys, to dmfa (its DmfA) and to person (its worker). A DmfA of 1,000 workers
writes 1,000 dmfa_person rows with one COPY, and each row's two checks (a lookup and a FOR KEY SHARE lock
on the row it references: 1,000 person rows locked and dirtied) cost ~9 ms of the server's ~25 for all of
a DmfA's rows (bench/README.md, session 5). A batch's transactions run one after the other, so these 9 ms
are paid in a chain.

The same guard, per statement: a trigger after an INSERT or UPDATE on dmfa_person looks at all the new rows
at once (a transition table) and raises foreign_key_violation (SQLSTATE 23503, as the foreign key did) if a
worker is not in person or a DmfA not in dmfa: ~2.4 ms for 1,000 rows. A trigger after a DELETE on person
or dmfa refuses to remove a row dmfa_person still refers to. What the foreign keys did and these triggers
do not: lock the referenced rows, and guard an UPDATE of person.inss or dmfa.declaration_id; the engine never
deletes or re-keys either (they are facts kept for ever), so no concurrent change can slip in between.

SQLite keeps the foreign keys (enforced per row, PRAGMA foreign_keys=ON; cheap there).

Revision ID: 0005
Revises: 0004
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_UPGRADE = [
    """
CREATE FUNCTION dmfa_person_references_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT n.inss INTO missing FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.inss = n.inss) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING MESSAGE = format(
            'dmfa_person refers to INSS %s, which is not in person', missing);
    END IF;
    SELECT n.declaration_id INTO missing FROM (SELECT DISTINCT declaration_id FROM new_rows) n
    WHERE NOT EXISTS (SELECT 1 FROM dmfa d WHERE d.declaration_id = n.declaration_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING MESSAGE = format(
            'dmfa_person refers to DmfA %s, which is not in dmfa', missing);
    END IF;
    RETURN NULL;
END $$""",
    """
CREATE FUNCTION dmfa_person_referenced_rows_stay() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kept text;
BEGIN
    IF TG_TABLE_NAME = 'person' THEN
        SELECT o.inss INTO kept FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM dmfa_person r WHERE r.inss = o.inss) LIMIT 1;
    ELSE
        SELECT o.declaration_id INTO kept FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM dmfa_person r WHERE r.declaration_id = o.declaration_id) LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE foreign_key_violation USING MESSAGE = format(
            '%s %s is still referred to from dmfa_person', TG_TABLE_NAME, kept);
    END IF;
    RETURN NULL;
END $$""",
    # (A trigger with a transition table takes one event: INSERT and UPDATE are two triggers.)
    """CREATE TRIGGER dmfa_person_inserted_references AFTER INSERT ON dmfa_person
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dmfa_person_references_exist()""",
    """CREATE TRIGGER dmfa_person_updated_references AFTER UPDATE ON dmfa_person
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dmfa_person_references_exist()""",
    """CREATE TRIGGER person_referenced_by_dmfa_person AFTER DELETE ON person
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dmfa_person_referenced_rows_stay()""",
    """CREATE TRIGGER dmfa_referenced_by_dmfa_person AFTER DELETE ON dmfa
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dmfa_person_referenced_rows_stay()""",
    "ALTER TABLE dmfa_person DROP CONSTRAINT fk_dmfa_person_declaration_id_dmfa",
    "ALTER TABLE dmfa_person DROP CONSTRAINT fk_dmfa_person_inss_person",
]

_DOWNGRADE = [
    "ALTER TABLE dmfa_person ADD CONSTRAINT fk_dmfa_person_declaration_id_dmfa "
    "FOREIGN KEY (declaration_id) REFERENCES dmfa (declaration_id)",
    "ALTER TABLE dmfa_person ADD CONSTRAINT fk_dmfa_person_inss_person FOREIGN KEY (inss) REFERENCES person (inss)",
    "DROP TRIGGER dmfa_referenced_by_dmfa_person ON dmfa",
    "DROP TRIGGER person_referenced_by_dmfa_person ON person",
    "DROP TRIGGER dmfa_person_updated_references ON dmfa_person",
    "DROP TRIGGER dmfa_person_inserted_references ON dmfa_person",
    "DROP FUNCTION dmfa_person_referenced_rows_stay()",
    "DROP FUNCTION dmfa_person_references_exist()",
]


def _run(statements: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _run(_UPGRADE)


def downgrade() -> None:
    _run(_DOWNGRADE)
