"""The declaration pipeline: received bytes -> checked -> stored once -> signed receipt.

Every channel (command line, SOAP, batch inbox) calls ``Ingest.submit``;
nothing else runs a check. One database transaction holds the archive row,
the ``(SenderId, MessageId)`` key, the facts and the signed result, so a
crash leaves all of them or none, and a retry finds the first result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Callable, ContextManager

from lxml import etree
from sqlalchemy.engine import Connection, Engine

from declarations.domain.anomalies import Anomaly, any_blocking, anomaly
from declarations.domain.model import Dimona, DimonaIn, DmfA, SocialRisk
from declarations.domain.outcome import Outcome
from declarations.domain.rules import RuleContext, kind_rules, prepare_rules
from declarations.domain.rules.common import directory_anomalies
from declarations.domain.rules.dmfa import PreparedDmfA
from declarations.domain.rules.social_risk import derived_reference
from declarations.services.examine import (Examined, certificate_validity, examine, signature_location,
                                           signer_anomalies)
from declarations.settings import Settings, brussels_today
from declarations.store import facts, originals
from declarations.store.database import lock_employer
from declarations.store.tables import PROD, scope_of
from declarations.store.views import DimonaView, DirectoryReader, StoredResult, StoredView, sender_view
from declarations.xmlio.parsing import parse
from declarations.xmlio.results import read_result, result_element, to_bytes
from declarations.xmlio.signature import Signer
from declarations.services.institutions import data_type_of, notify as notify_institutions


@dataclass(frozen=True)
class Receipt:
    """A decided declaration: its outcome and the signed DeclarationResult."""
    outcome: Outcome
    signed_result: etree._Element
    result_bytes: bytes            # exactly as stored (and as a retry returns it)
    retry: bool = False


class Ingest:
    def __init__(self, engine: Engine, signer: Signer, settings: Settings):
        self.engine = engine
        self.signer = signer
        self.settings = settings

    def submit(self, data: bytes, *, channel: str, element: etree._Element | None = None,
               max_bytes: int | None = None, batch_sender_id: str | None = None,
               batch_id: str | None = None,
               on_decided: Callable[[Connection, Receipt], None] | None = None,
               turn: ContextManager | None = None) -> Receipt:
        """Process one declaration as received (``data``: its own document's bytes).

        ``on_decided`` (the batch inbox) runs inside the declaration's own
        transaction, after the decision: what it writes commits with the
        declaration or not at all. ``turn`` (the batch inbox's worker
        processes) is entered once the pure stages are done and left once the
        transaction is over: the batch's declarations are examined side by side
        but decided one after the other, in file order. With a ``turn``, the
        declaration is received (its ReceivedAt, the day of its rules) when the
        turn comes. Without them nothing changes.
        """
        now = self.settings.now()
        limit = self.settings.max_message_bytes if max_bytes is None else max_bytes
        examined = examine(data, max_bytes=limit, element=element)
        today = brussels_today(now)  # the day _decide's rules take
        ahead = _Ahead(self._dmfa_rows(examined), self._prepared_rules(examined, today),
                       originals.pack(examined.received))
        with turn if turn is not None else contextlib.nullcontext():
            if turn is not None:
                # A batch's declaration is received when its turn comes: in file order, and after the file's
                # ack (channels.md: the ack comes before any declaration is processed), which a head start's
                # first items, examined while the first pass ends, would otherwise precede.
                now = self.settings.now()
                if brussels_today(now) != today:  # midnight passed meanwhile: the new day's rules
                    ahead = dataclasses.replace(ahead, rules=self._prepared_rules(examined, brussels_today(now)))
            return self._decide_once(examined, now, channel, batch_sender_id, batch_id, on_decided, ahead)

    def _dmfa_rows(self, examined: Examined) -> facts.DmfaRows | facts.DmfaValues | None:
        """A DmfA's child rows as the store will take them, built before the transaction (facts.rows_for): in a
        batch, whose transactions run one after the other, ~3-5 ms of Python per 1,000 workers out of the
        chain. Wasted only for a DmfA refused in its transaction (stage 4 or 5)."""
        if isinstance(examined.declaration, DmfA) and not examined.xsd:
            return facts.rows_for(self.engine, examined.declaration)
        return None

    @staticmethod
    def _prepared_rules(examined: Examined, today: dt.date) -> PreparedDmfA | None:
        """A DmfA's rules that need nothing stored (``prepare_rules``: all but M002, M003's current DmfA and
        M010), run before the transaction, where a batch's declarations wait for each other: ~1.5 ms of CPU
        less in the transaction of a DmfA of 1,000 workers (bench/dmfa_stages.py). Wasted only for a DmfA
        refused in its transaction before stage 5."""
        if not isinstance(examined.declaration, DmfA) or examined.xsd or any_blocking(examined.identifiers):
            return None
        try:
            return prepare_rules(examined.declaration, today)
        except Exception:  # noqa: BLE001 -- e.g. a pay beyond money.times_rate's precision
            # Left to the rules in the transaction, which raise it there as before (and only if the
            # declaration gets that far): before the turn, it would break a batch's chain (batch_items.Turns)
            # for a declaration that stage 2 or 4 may refuse.
            return None

    def _decide_once(self, examined: Examined, now: dt.datetime, channel: str, batch_sender_id: str | None,
                     batch_id: str | None, on_decided, ahead: "_Ahead") -> Receipt:
        for _attempt in range(5):
            try:
                with self.engine.begin() as connection:
                    reads = _Reads()
                    receipt = self._decide(connection, examined, now, channel, batch_sender_id, batch_id, reads,
                                           ahead)
                    if receipt.outcome.accepted and not receipt.retry:
                        # institutions.md: the notifications it yields commit with it (PROD only).
                        notify_institutions(connection, examined.declaration, receipt.outcome, now,
                                            subscribed=reads.subscribed, periods=reads.periods)
                    if on_decided is not None:
                        on_decided(connection, receipt)
                    return receipt
            except _KeyTaken:
                # Another transaction took the same (SenderId, MessageId) meanwhile: ours was rolled
                # back; the next pass finds the key and answers as a retry (or C006).
                continue
        raise RuntimeError("the message key stayed contended after 5 attempts")

    # -- one transaction ------------------------------------------------------

    def _decide(self, connection: Connection, ex: Examined, now: dt.datetime, channel: str,
                batch_sender_id: str | None, batch_id: str | None, reads: "_Reads",
                ahead: "_Ahead") -> Receipt:
        # Statements on an accepted Dimona, PostgreSQL: (1) the directory, the message key, the archive row
        # and the employer's lock (facts.receive); (2) the periods the rules read (DimonaView); (3) the facts
        # and the signed result (facts.store_dimona). BEGIN and COMMIT besides.
        def refuse(anomalies: list[Anomaly], *, declaration_id: int | None = None) -> Receipt:
            return self._finish(connection, ex, ahead.original, now, channel, batch_id, anomalies,
                                declaration_id=declaration_id)

        if ex.refusal:  # stage 1, or stage 2's profile
            return refuse(ex.refusal)
        header = ex.header
        declaration = ex.declaration  # decoded when the XSD passed
        noss = declaration.employer.noss if declaration is not None else None
        today = brussels_today(now)
        location = signature_location(ex.kind)
        directory, received, declaration_id, locked = None, None, None, False
        if ex.keyed:
            # (1) One statement: what stages 2 to 4 read; the archive row and the key if the key is free.
            received = facts.receive(
                connection, received_at=now, channel=channel, original=ahead.original.data,
                original_coding=ahead.original.coding, kind=ex.kind,
                sender_id=header.sender_id, message_id=header.message_id, environment=header.environment,
                content_sha256=ex.content_sha256, fingerprint=ex.verified.fingerprint, batch_id=batch_id,
                reserve=not certificate_validity(ex.verified.certificate, now, location), noss=noss,
                data_type=data_type_of(declaration) if declaration is not None and header.environment == PROD
                else None)
            directory, declaration_id, locked = received.directory, received.declaration_id, received.locked
            reads.subscribed = received.subscribed
        elif header is not None and header.sender_id:
            directory = sender_view(connection, header.sender_id, None, noss)
        if directory is not None:
            # Stage 2, continued: who signed (S003), and when (S004).
            untrusted = signer_anomalies(directory.sender_fingerprints(header.sender_id), ex.verified,
                                         header.sender_id, now, location)
            if untrusted:
                return refuse(untrusted, declaration_id=declaration_id)  # archived without its key
        if received is not None:
            first = directory.first
            if first is not None:
                if first.content_sha256 == ex.content_sha256:
                    return self._retry(first)
                return refuse([anomaly("C006", f"MessageId {header.message_id} was already used by sender "
                                       f"{header.sender_id} for another declaration ({first.declaration_id})",
                                       "/" + _root_name(ex) + "/Header/MessageId")])
            if not received.reserved:
                raise _KeyTaken()
        if ex.xsd:  # stage 3
            return refuse(ex.xsd, declaration_id=declaration_id)
        # Stage 4: identifiers, then the directory (answered from what (1) read).
        stage4 = ex.identifiers + list(directory_anomalies(
            declaration, directory or DirectoryReader(connection), today, batch_sender_id=batch_sender_id))
        if any_blocking(stage4):
            return refuse(stage4, declaration_id=declaration_id)
        # Stage 5: the kind's rules, against stored data, serialised per employer.
        if not locked:
            lock_employer(connection, noss)
        scope = scope_of(header.environment, header.sender_id)
        if isinstance(declaration, Dimona):
            stored = reads.periods = DimonaView(connection, scope, declaration)  # (2)
        else:
            stored = StoredView(connection, scope)
        context = RuleContext(today=today, stored=stored)
        # A DmfA's rules that need nothing stored ran before the transaction (``ahead``, from submit).
        anomalies = stage4 + list(kind_rules(declaration, context, ahead.rules))
        if any_blocking(anomalies):
            return refuse(anomalies, declaration_id=declaration_id)
        if isinstance(declaration, Dimona):
            return self._store_dimona(connection, ex, now, declaration, declaration_id, scope, stored, anomalies)
        self._store_facts(connection, declaration, declaration_id, scope, context, ahead.rows, stored.in_person)
        return self._finish(connection, ex, ahead.original, now, channel, batch_id, anomalies,
                            declaration_id=declaration_id)

    def _store_dimona(self, connection, ex: Examined, now, dimona: Dimona, declaration_id: int, scope: str,
                      stored: DimonaView, anomalies) -> Receipt:
        """(3) Sign first, then write the facts and the result together: an In's PeriodId was drawn in (2)."""
        action = dimona.action
        is_in = isinstance(action, DimonaIn)
        period_id = stored.next_period_id if is_in else None
        receipt = self._sign(ex, now, anomalies, declaration_id, period_id)
        facts.store_dimona(connection, dimona, declaration_id, scope,
                           current=None if is_in else stored.period(action.period_id), period_id=period_id,
                           status=receipt.outcome.status, result=receipt.result_bytes)
        return receipt

    def _archive(self, connection, ex: Examined, original: originals.Packed, now, channel, batch_id) -> int:
        """The archive row of a message that holds no key (refused before its key could be read)."""
        header = ex.header
        return facts.new_declaration(
            connection, received_at=now, channel=channel, original=original.data, original_coding=original.coding,
            kind=ex.kind,
            sender_id=header.sender_id if header else None, message_id=header.message_id if header else None,
            environment=header.environment if header else None, content_sha256=ex.content_sha256,
            batch_id=batch_id)

    def _store_facts(self, connection, declaration, declaration_id, scope, context, rows, in_person) -> None:
        """A DmfA's or a social risk's facts (a Dimona's go with its result: _store_dimona). ``in_person``: the
        workers the rules found in stored periods (StoredView.in_person)."""
        if isinstance(declaration, DmfA):
            facts.store_dmfa(connection, declaration, declaration_id, scope, rows=rows, in_person=in_person)
        elif isinstance(declaration, SocialRisk):
            reference, source = declaration.reference_data, "DECLARED"
            if reference is None and declaration.scenario.reference_data:
                reference = derived_reference(declaration, context)
                source = "DERIVED" if reference is not None else "NONE"
            elif reference is None:
                source = "NONE"
            facts.store_social_risk(connection, declaration, declaration_id, scope, reference, source)

    def _finish(self, connection, ex: Examined, original: originals.Packed, now, channel, batch_id, anomalies, *,
                declaration_id: int | None) -> Receipt:
        if declaration_id is None:
            declaration_id = self._archive(connection, ex, original, now, channel, batch_id)
        receipt = self._sign(ex, now, anomalies, declaration_id, None)
        facts.finish_declaration(connection, declaration_id, status=receipt.outcome.status,
                                 result=receipt.result_bytes)
        return receipt

    def _sign(self, ex: Examined, now, anomalies, declaration_id: int, period_id: int | None) -> Receipt:
        """The outcome and the signed DeclarationResult (not stored yet)."""
        header = ex.header
        outcome = Outcome(
            declaration_id=declaration_id, received_at=now, anomalies=tuple(anomalies),
            message_id=header.message_id if header else None, sender_id=header.sender_id if header else None,
            kind=ex.kind, environment=header.environment if header else None, period_id=period_id)
        signed = self.signer.sign(result_element(outcome))
        return Receipt(outcome, signed, to_bytes(signed))

    def _retry(self, first: StoredResult) -> Receipt:
        """The first result again, byte for byte (a safe retry stores nothing)."""
        signed = parse(first.result)
        return Receipt(read_result(signed), signed, bytes(first.result), retry=True)


@dataclass(frozen=True)
class _Ahead:
    """What ``submit`` did before the transaction (and a batch's turn): for a DmfA, its child rows as the store
    takes them and its rules that need nothing stored (None where not done: another kind; an XSD or
    identifier problem); for every message, its bytes as the archive keeps them (store/originals.py)."""
    rows: facts.DmfaRows | facts.DmfaValues | None
    rules: PreparedDmfA | None
    original: originals.Packed


@dataclass
class _Reads:
    """What ``_decide``'s first statement read for the notification hook in ``submit``: whether anyone is
    subscribed to the declaration's data type (None: not read, ``notify`` reads it); a Dimona's periods as
    the rules read them (``notify`` takes the period before the change from there)."""
    subscribed: bool | None = None
    periods: DimonaView | None = None


class _KeyTaken(Exception):
    """A concurrent transaction reserved the same (SenderId, MessageId) first."""


def _root_name(ex: Examined) -> str:
    return {"DIMONA": "Dimona", "DMFA": "DmfA", "DRS": "SocialRisk"}.get(ex.kind or "", "")
