"""The store's tables (SQLAlchemy Core). Alembic migrations build them.

Three groups:
- the archive: every received message, unchanged, with its signed result
  (``declaration``), and the ``(SenderId, MessageId)`` keys (``message_key``);
- the directory (``employer`` is shared with the facts: each employer exists
  once, ``in_directory`` says whether the loaded directory names it);
- the shared facts: persons, employment periods (with versions), DmfA and
  its children, social risks.

Facts carry a ``scope``: ``PROD``, or ``TEST:<SenderId>`` for a simulation
by that sender, which only that sender's later TEST declarations read.
DmfA children are keyed by their position in the declaration rather than by
surrogate ids, so a whole DmfA goes in with one bulk write per table. The
repeating groups at the bottom of a DmfA (an occupation's services and
remunerations, a worker record's contributions) are kept in their parent's
row, as parallel arrays in the declaration's order (docs/decisions.md,
"A DmfA's repeating groups").
"""

from __future__ import annotations

from sqlalchemy import (ARRAY, JSON, BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Table, Text, UniqueConstraint)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
Id = BigInteger().with_variant(Integer(), "sqlite")


def values_of(item_type) -> ARRAY:
    """A repeating group's values, in the declaration's order: an array on PostgreSQL, a JSON array (text) on
    SQLite, which has no arrays. Read back as a list on both."""
    return ARRAY(item_type).with_variant(JSON(), "sqlite")

PROD = "PROD"


def scope_of(environment: str, sender_id: str) -> str:
    return PROD if environment == PROD else f"TEST:{sender_id}"


# --- archive ---------------------------------------------------------------

declaration = Table(
    "declaration", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # the DeclarationId, never reused
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(16), nullable=False),           # REALTIME | BATCH | CLI
    Column("kind", String(8)),                               # DIMONA | DMFA | DRS, when readable
    Column("sender_id", String(10)),
    Column("message_id", String(64)),
    Column("environment", String(4)),
    Column("status", String(24), nullable=False),
    Column("content_sha256", String(64)),
    Column("original", LargeBinary, nullable=False),         # the bytes as received, maybe compressed:
    Column("original_coding", String(8)),                    # None (as received) | 'zlib' (store/originals.py)
    Column("result", LargeBinary, nullable=False),           # the signed DeclarationResult
    Column("batch_id", String(64)),
    sqlite_autoincrement=True,
)
Index("ix_declaration_sender_message", declaration.c.sender_id, declaration.c.message_id)

message_key = Table(
    "message_key", metadata,
    Column("sender_id", String(10), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("declaration_id", Id, ForeignKey("declaration.id"), nullable=False),
    Column("content_sha256", String(64), nullable=False),
)

# --- directory -------------------------------------------------------------

employer = Table(
    "employer", metadata,
    Column("noss", String(9), primary_key=True),
    Column("enterprise_nbr", String(10)),
    Column("name", String(200)),
    Column("in_directory", Boolean, nullable=False, default=False),
)

sender = Table(
    "sender", metadata,
    Column("sender_id", String(10), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("noss", String(9)),
    Column("position", Integer, nullable=False),   # document order, for a faithful export
)

sender_certificate = Table(
    "sender_certificate", metadata,
    Column("sender_id", String(10), ForeignKey("sender.sender_id", ondelete="CASCADE"), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)

mandate = Table(
    "mandate", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sender_id", String(10), nullable=False),
    Column("noss", String(9), nullable=False),
    Column("kinds", String(32), nullable=False),     # space-separated: DIMONA DMFA DRS
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("position", Integer, nullable=False),
)
Index("ix_mandate_sender_noss", mandate.c.sender_id, mandate.c.noss)

institution = Table(
    "institution", metadata,
    Column("institution_id", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("sector", String(32), nullable=False),
    Column("position", Integer, nullable=False),
)

institution_certificate = Table(
    "institution_certificate", metadata,
    Column("institution_id", String(16), ForeignKey("institution.institution_id", ondelete="CASCADE"),
           primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)

authorization = Table(
    "authorization", metadata,
    Column("institution_id", String(16), primary_key=True),
    Column("capacity", String(64), primary_key=True),
    Column("data_type", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
)

# --- facts -----------------------------------------------------------------

person = Table("person", metadata, Column("inss", String(11), primary_key=True))

employment_period = Table(
    "employment_period", metadata,
    Column("period_id", Id, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("employer_noss", String(9), ForeignKey("employer.noss"), nullable=False),
    Column("inss", String(11), ForeignKey("person.inss"), nullable=False),
    Column("worker_type", String(3), nullable=False),
    # the current version's values, denormalised for the rules' queries
    Column("starting_date", Date, nullable=False),
    Column("ending_date", Date),
    Column("joint_commission", String(6), nullable=False),
    Column("planned_hours", Integer),
    Column("cancelled", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_period_employer_inss", employment_period.c.employer_noss, employment_period.c.inss)
Index("ix_period_inss_type", employment_period.c.inss, employment_period.c.worker_type)

employment_period_version = Table(
    "employment_period_version", metadata,
    Column("period_id", Id, ForeignKey("employment_period.period_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("declaration_id", Id, ForeignKey("declaration.id"), nullable=False),
    Column("action", String(8), nullable=False),          # IN | OUT | UPDATE | CANCEL
    Column("starting_date", Date, nullable=False),
    Column("ending_date", Date),
    Column("joint_commission", String(6), nullable=False),
    Column("planned_hours", Integer),
    Column("cancelled", Boolean, nullable=False),
)

dmfa = Table(
    "dmfa", metadata,
    Column("declaration_id", Id, ForeignKey("declaration.id"), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("employer_noss", String(9), ForeignKey("employer.noss"), nullable=False),
    Column("quarter", Integer, nullable=False),              # YYYYQ
    Column("declaration_type", String(12), nullable=False),
    Column("replaces_declaration_id", Id),
    Column("replaced_by_declaration_id", Id),
    Column("is_current", Boolean, nullable=False),
    Column("net_owed_amount", BigInteger, nullable=False),
)
Index("ix_dmfa_employer_quarter", dmfa.c.employer_noss, dmfa.c.quarter, dmfa.c.is_current)

# On PostgreSQL migration 0005 replaces dmfa_person's two foreign keys with triggers that check each
# statement's rows as a set (a DmfA's 1,000 rows: ~2.4 ms instead of ~9); SQLite keeps them as declared here.
dmfa_person = Table(
    "dmfa_person", metadata,
    Column("declaration_id", Id, ForeignKey("dmfa.declaration_id"), primary_key=True),
    Column("person_nbr", Integer, primary_key=True),         # NaturalPersonSequenceNbr
    Column("inss", String(11), ForeignKey("person.inss"), nullable=False),
)
Index("ix_dmfa_person_inss", dmfa_person.c.inss)


def _dmfa_key(*names: str) -> list[Column]:
    return [Column("declaration_id", Id, primary_key=True)] + [Column(n, Integer, primary_key=True) for n in names]


# A worker record's contributions: the n-th element of each array (PostgreSQL's [n]) is its n-th Contribution.
dmfa_worker_record = Table(
    "dmfa_worker_record", metadata, *_dmfa_key("person_nbr", "record_nbr"),
    Column("worker_code", String(3), nullable=False),
    Column("contribution_codes", values_of(String(3)), nullable=False),
    Column("contribution_bases", values_of(BigInteger), nullable=False),
    Column("contribution_amounts", values_of(BigInteger), nullable=False),
)

# An occupation's services and remunerations: the n-th element of each array (PostgreSQL's [n]) is its n-th
# Service (Remun); a service without ServiceNbrHours has a NULL (JSON null) there.
dmfa_occupation = Table(
    "dmfa_occupation", metadata, *_dmfa_key("person_nbr", "record_nbr", "occupation_nbr"),
    Column("starting_date", Date, nullable=False),
    Column("ending_date", Date),
    Column("joint_commission", String(6), nullable=False),
    Column("working_days_system", Integer, nullable=False),
    Column("mean_working_hours", Integer, nullable=False),
    Column("ref_mean_working_hours", Integer, nullable=False),
    Column("service_codes", values_of(String(3)), nullable=False),
    Column("service_days", values_of(Integer), nullable=False),
    Column("service_hours", values_of(Integer), nullable=False),
    Column("remuneration_codes", values_of(String(3)), nullable=False),
    Column("remuneration_amounts", values_of(BigInteger), nullable=False),
)

social_risk = Table(
    "social_risk", metadata,
    Column("declaration_id", Id, ForeignKey("declaration.id"), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("employer_noss", String(9), ForeignKey("employer.noss"), nullable=False),
    Column("inss", String(11), ForeignKey("person.inss"), nullable=False),
    Column("scenario", String(16), nullable=False),
    Column("sector", String(16), nullable=False),
    Column("event_date", Date, nullable=False),
    Column("same_event_key", String(10), nullable=False),   # EventDate, or UNEMP-3's Month
    Column("details", Text, nullable=False),                # the scenario's fields, JSON
    Column("ref_quarterly_gross_remun", BigInteger),
    Column("ref_working_time_fraction", Integer),
    Column("ref_joint_commission", String(6)),
    Column("reference_source", String(8), nullable=False),  # DECLARED | DERIVED | NONE
)
Index("ix_social_risk_event", social_risk.c.scenario, social_risk.c.employer_noss, social_risk.c.inss,
      social_risk.c.same_event_key)
Index("ix_social_risk_inss", social_risk.c.inss)

__all__ = [name for name, value in globals().items() if isinstance(value, Table)] + ["metadata", "scope_of", "PROD"]


# --- batch inbox (channels.md "Batch"; docs/batch.md) -------------------------
# One row per batch file, keyed by the SHA-256 of the file as uploaded: the
# row is also the claim (owner + lease, real clock) that lets several
# processes share one inbox, and it keeps the signed BatchAck and BatchResult
# so that a retry (same BatchId, same SHA-256) gets the first answers again.
# ``sender_id`` and ``batch_id`` are set only once the file-level checks
# passed: their uniqueness is B005.

batch = Table(
    "batch", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("file_sha256", String(64), nullable=False, unique=True),
    Column("file_name", String(110), nullable=False),
    Column("status", String(16), nullable=False),            # CLAIMED | RECEIVED | DONE | REFUSED
    Column("owner", String(200)),                            # host:pid:token of the process holding the lease
    Column("lease_until", Float),                            # seconds since the epoch, real clock
    Column("sender_id", String(10)),
    Column("batch_id", String(64)),
    Column("item_count", Integer),
    Column("items_done", Integer, nullable=False, default=0),
    Column("received_at", DateTime(timezone=True)),
    Column("code", String(4)),                               # B001-B007 when REFUSED
    Column("ack", LargeBinary),                              # the signed BatchAck
    Column("result", LargeBinary),                           # the signed BatchResult (DONE)
    UniqueConstraint("sender_id", "batch_id", name="uq_batch_sender_batch_id"),
    sqlite_autoincrement=True,
)
# batches.held_elsewhere: is a file of this name being worked on (every inbox pass, every file).
Index("ix_batch_file_name_status", batch.c.file_name, batch.c.status)

# The declarations of a batch in file order, written in the same transaction
# as the declaration itself: exactly once, whatever the crash.
batch_item = Table(
    "batch_item", metadata,
    Column("batch", Id, ForeignKey("batch.id"), primary_key=True),
    Column("position", Integer, primary_key=True),           # 1-based, file order
    Column("declaration_id", Id, ForeignKey("declaration.id"), nullable=False),
)


# --- institutions (institutions.md; docs/institutions.md) ----------------------
# The integration register: which institution holds which person, in which
# capacity, for which period. The primary key serves Consult (institution,
# person); ix_register_entry_inss serves the notification recipients (person).

register_entry = Table(
    "register_entry", metadata,
    Column("institution_id", String(16), primary_key=True),
    Column("inss", String(11), primary_key=True),
    Column("capacity", String(64), primary_key=True),
    Column("valid_from", Date, primary_key=True),
    Column("valid_to", Date),
)
Index("ix_register_entry_inss", register_entry.c.inss)

subscription = Table(
    "subscription", metadata,
    Column("institution_id", String(16), primary_key=True),
    Column("data_type", String(32), primary_key=True),
)
Index("ix_subscription_data_type", subscription.c.data_type)

# One counter row per institution, incremented in the declaration's own
# transaction: the row lock orders the writers, and a rollback gives the
# numbers back, so Sequences have no gaps and commit in order.
institution_sequence = Table(
    "institution_sequence", metadata,
    Column("institution_id", String(16), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)

notification = Table(
    "notification", metadata,
    Column("institution_id", String(16), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("inss", String(11), nullable=False),
    Column("data_type", String(32), nullable=False),
    Column("declaration_id", Id, nullable=False),
    Column("change", String(10), nullable=False),             # NEW | UPDATED | REPLACED | CANCELLED
    Column("period_start", Date, nullable=False),
    Column("period_end", Date),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("authorization", String(200), nullable=False),     # CAPACITY:DATA_TYPE that made it due
)
Index("ix_notification_inss", notification.c.inss)

# The MessageIds an institution has used (A005): taken in the request's transaction.
institution_message = Table(
    "institution_message", metadata,
    Column("institution_id", String(64), primary_key=True),
    Column("message_id", String(64), primary_key=True),
)

# The access log (domain/access_log.py): append-only, each entry hashing the
# one before. ``access_log_head`` is one row (id 1) holding the last sequence
# and hash: writers lock it (UPDATE) so the chain stays linear.
access_log = Table(
    "access_log", metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),                 # ISO 8601 with zone, as hashed
    Column("institution_id", String(64), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("inss", String(11)),
    Column("data_type", String(32)),
    Column("window", String(40)),
    Column("outcome", String(8), nullable=False),
    Column("authorization", String(200)),
    Column("message_id", String(64)),
    Column("detail", String(200)),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_access_log_inss", access_log.c.inss)

access_log_head = Table(
    "access_log_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sequence", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("previous_hash", String(64), nullable=False),      # the hash before the last append (see append_log)
)
