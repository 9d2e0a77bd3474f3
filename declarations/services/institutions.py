"""The institutions' desk (institutions.md): register, Consult, subscriptions,
notifications and the access log, decided on typed requests
(domain/institution_messages.py). The XML side (channels/soap) authenticates
the request, calls ``InstitutionDesk.handle`` and signs what it returns.

One request is one transaction: the MessageId claim (A005), the decision,
the access-log entry and the answer's data commit together, so a logged
access is one that happened and an access that happened is logged.

``notify`` is the other half: it runs inside a declaration's own
transaction (services/ingest.py) and writes the notifications that
declaration yields, numbered from each institution's counter row.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Iterable

from sqlalchemy.engine import Connection, Engine

from declarations.domain import institution_messages as m
from declarations.domain.access import Grant, RegisterEntry, Window, decide_consult, may_register
from declarations.domain.access_log import GENESIS, ChainCheck, LogEntry, check_chain
from declarations.domain.model import Dimona, DimonaIn, DmfA, Quarter, SocialRisk
from declarations.domain.outcome import Outcome
from declarations.domain.ports import StoredData
from declarations.domain.rules.dimona import apply_change
from declarations.settings import Settings
from declarations.store import institutions as store
from declarations.store.tables import PROD

MAX_NOTIFICATIONS = 1000  # per GetNotifications answer, whatever Max asks
SECTOR_OF = {"DRS_UNEMPLOYMENT": "UNEMPLOYMENT", "DRS_HEALTH": "HEALTH", "DRS_OCCUPATIONAL": "OCCUPATIONAL"}
UNKNOWN_INSTITUTION = "?"  # logged for an A004 whose request named no institution
_FIELD = 64                # the log's text columns: what an unauthenticated request claims is cut to this


def operation_of(request: m.InstitutionRequest) -> str:
    """The SOAP operation name (ListAuthorizations, Consult, ...): also what the log records."""
    return type(request).__name__


@dataclass(frozen=True)
class SignedBy:
    """The certificate a request was signed with, as services/institution_requests.py found it: the desk
    checks it is registered for the institution in the request's first statement (A004 otherwise)."""
    fingerprint: str           # SHA-256 of the signing certificate
    unregistered: str          # the A004 message if it is not registered for the institution
    invalid: str | None        # the A004 message if it is registered but not valid now; None: valid


class InstitutionDesk:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings

    # -- the API the XML side calls --------------------------------------------

    def handle(self, request: m.InstitutionRequest, signed_by: SignedBy | None = None) -> m.InstitutionAnswer:
        """A request whose signature verified. ``signed_by``: the signing certificate, still to be checked
        against the directory (A004) with the MessageId claim; None: already authenticated as
        caller.institution_id. One transaction: A004/A005, the decision, the log entry, the answer; on
        PostgreSQL two statements for a Consult of DIMONA or DMFA (store.open_request, the log)."""
        caller = request.caller
        consult = (store.ConsultAsk(request.inss, request.data_type, request.start, request.end)
                   if isinstance(request, m.Consult) else None)
        with self.engine.begin() as connection:
            opened = store.open_request(connection, caller.institution_id, caller.message_id,
                                        fingerprint=signed_by.fingerprint if signed_by else None,
                                        reserve=signed_by is None or signed_by.invalid is None, consult=consult)
            if not opened.trusted:
                return self._refuse_unauthenticated(connection, operation_of(request), caller, signed_by.unregistered)
            if signed_by is not None and signed_by.invalid is not None:
                return self._refuse_unauthenticated(connection, operation_of(request), caller, signed_by.invalid)
            if not opened.claimed:
                refused = m.Refused(caller, "A005", f"MessageId {caller.message_id} was already used by "
                                                    f"{caller.institution_id}")
                self._log(connection, request, refused.code, detail=refused.message[:200])
                return refused
            if consult is not None:
                return self._Consult(connection, request, opened)
            decide = getattr(self, "_" + operation_of(request))
            return decide(connection, request)

    def refuse_unauthenticated(self, operation: str, claimed: m.Caller | None, message: str) -> m.Refused:
        """A004: log the refusal (under the institution as claimed, if any) and return it."""
        with self.engine.begin() as connection:
            return self._refuse_unauthenticated(connection, operation, claimed, message)

    def _refuse_unauthenticated(self, connection: Connection, operation: str, claimed: m.Caller | None,
                                message: str) -> m.Refused:
        store.append_log(connection, LogEntry(
            0, self._now(), (claimed.institution_id[:_FIELD] if claimed else None) or UNKNOWN_INSTITUTION,
            operation[:32], None, None, None, "A004", None,
            claimed.message_id[:_FIELD] if claimed else None, GENESIS, detail=message[:200]))
        return m.Refused(claimed, "A004", message)

    def institution_fingerprints(self, institution_id: str) -> tuple[str, ...]:
        with self.engine.connect() as connection:
            return store.institution_fingerprints(connection, institution_id)

    # -- the operations ---------------------------------------------------------

    def _ListAuthorizations(self, connection: Connection, request: m.ListAuthorizations) -> m.AuthorizationList:
        # The table is public: reading it is not an access to anyone's data, so it is not logged.
        return m.AuthorizationList(request.caller, tuple(store.authorizations(connection)))

    def _RegisterPerson(self, connection: Connection, request: m.RegisterPerson) -> m.InstitutionAnswer:
        caller = request.caller
        window = _window(request.valid_from, request.valid_to)
        if not may_register(caller.institution_id, request.capacity,
                            store.authorizations(connection, caller.institution_id)):
            return self._refuse(connection, request, "A006", f"{caller.institution_id} holds no authorization in "
                                f"capacity {request.capacity}", inss=request.inss, window=window)
        if request.valid_to is not None and request.valid_to < request.valid_from:
            return self._refuse(connection, request, "A003", f"the register period {window} ends before it starts",
                                inss=request.inss, window=window)
        entry = RegisterEntry(caller.institution_id, request.inss, request.capacity, request.valid_from,
                              request.valid_to)
        before = store.put_register_entry(connection, entry)
        detail = ("new entry" if before is None else "unchanged" if before.valid_to == entry.valid_to
                  else f"To was {before.valid_to or 'open'}")
        self._log(connection, request, "GRANTED", inss=request.inss, window=window,
                  authorization=request.capacity, detail=detail)
        return m.RegisterChanged(caller, "REGISTERED", request.inss, request.capacity, request.valid_from,
                                 request.valid_to)

    def _UnregisterPerson(self, connection: Connection, request: m.UnregisterPerson) -> m.InstitutionAnswer:
        caller = request.caller
        removed = store.remove_register_entry(connection, caller.institution_id, request.inss, request.capacity,
                                              request.valid_from)
        if removed is None:
            return self._refuse(connection, request, "A001", f"{caller.institution_id} has no register entry for "
                                f"person {request.inss} in capacity {request.capacity} from {request.valid_from}",
                                inss=request.inss, window=_window(request.valid_from, None))
        window = _window(removed.valid_from, removed.valid_to)
        self._log(connection, request, "GRANTED", inss=request.inss, window=window, authorization=request.capacity,
                  detail="entry removed")
        return m.RegisterChanged(caller, "UNREGISTERED", removed.inss, removed.capacity, removed.valid_from,
                                 removed.valid_to)

    def _Subscribe(self, connection: Connection, request: m.Subscribe) -> m.InstitutionAnswer:
        caller = request.caller
        if not any(a.data_type == request.data_type
                   for a in store.authorizations(connection, caller.institution_id)):
            return self._refuse(connection, request, "A006", f"{caller.institution_id} holds no authorization for "
                                f"{request.data_type}", data_type=request.data_type)
        store.subscribe(connection, caller.institution_id, request.data_type)
        self._log(connection, request, "GRANTED", data_type=request.data_type)
        return m.SubscriptionChanged(caller, "SUBSCRIBED", request.data_type)

    def _Unsubscribe(self, connection: Connection, request: m.Unsubscribe) -> m.InstitutionAnswer:
        store.unsubscribe(connection, request.caller.institution_id, request.data_type)
        self._log(connection, request, "GRANTED", data_type=request.data_type)
        return m.SubscriptionChanged(request.caller, "UNSUBSCRIBED", request.data_type)

    def _Consult(self, connection: Connection, request: m.Consult, opened: store.Opened) -> m.InstitutionAnswer:
        caller = request.caller
        asked = _window(request.start, request.end)
        entries, authorizations = opened.entries, opened.authorizations
        decision = decide_consult(caller.institution_id, request.inss, request.data_type,
                                  Window(request.start, request.end), entries, authorizations)
        if not isinstance(decision, Grant):
            return self._refuse(connection, request, decision.code, decision.message, inss=request.inss,
                                data_type=request.data_type, window=asked)
        answer = consult_data(connection, request, decision, opened)
        used = ",".join(dict.fromkeys(f"{a.capacity}:{a.data_type}" for _, _, a in decision.windows))
        self._log(connection, request, "GRANTED", inss=request.inss, data_type=request.data_type, window=asked,
                  authorization=used, detail="granted " + " ".join(
                      _window(w.start, w.end) for w in merged([w for w, _, _ in decision.windows])))
        return answer

    def _GetNotifications(self, connection: Connection, request: m.GetNotifications) -> m.NotificationBatch:
        caller = request.caller
        after = max(request.after_sequence, 0)
        limit = min(max(request.max, 1), MAX_NOTIFICATIONS)
        rows = store.notifications_after(connection, caller.institution_id, after, limit)
        last = store.last_sequence(connection, caller.institution_id)
        delivered = tuple(m.Notification(r.sequence, r.inss, r.data_type, r.declaration_id, r.change,
                                         r.period_start, r.period_end) for r in rows)
        detail = (f"sequences {delivered[0].sequence}-{delivered[-1].sequence} ({len(delivered)})" if delivered
                  else "none") + f" after {after}"
        self._log(connection, request, "GRANTED", detail=detail)
        return m.NotificationBatch(caller, request.after_sequence, delivered, last)

    # -- the log ------------------------------------------------------------------

    def _refuse(self, connection: Connection, request, code: str, message: str, **fields) -> m.Refused:
        self._log(connection, request, code, detail=message[:200], **fields)
        return m.Refused(request.caller, code, message)

    def _log(self, connection: Connection, request, outcome: str, *, inss: str | None = None,
             data_type: str | None = None, window: str | None = None, authorization: str | None = None,
             detail: str | None = None) -> None:
        caller = request.caller
        if data_type is None:
            data_type = getattr(request, "data_type", None)
        if inss is None:
            inss = getattr(request, "inss", None)
        store.append_log(connection, LogEntry(
            0, self._now(), caller.institution_id, operation_of(request), inss, data_type, window, outcome,
            authorization, caller.message_id, GENESIS, detail=detail))

    def _now(self) -> str:
        return self.settings.now().isoformat()


# --- Consult: the data, cut to the granted days --------------------------------------

def merged(windows: Iterable[Window]) -> list[Window]:
    """The granted days as disjoint windows (two register entries may overlap)."""
    out: list[Window] = []
    for w in sorted(windows, key=lambda w: (w.start, w.end)):
        if out and w.start <= out[-1].end + dt.timedelta(days=1):
            out[-1] = Window(out[-1].start, max(out[-1].end, w.end))
        else:
            out.append(w)
    return out


def consult_data(connection: Connection, request: m.Consult, grant: Grant,
                 opened: store.Opened | None = None) -> m.ConsultResult:
    """The granted data. ``opened``: what the request's first statement read already (PostgreSQL: the periods
    or quarters of the span that may be granted, a superset of the granted days, cut here as a read of
    [lo, hi] would be); the rest is read now."""
    granted = tuple(m.GrantedWindow(w.start, w.end, entry.capacity) for w, entry, _ in grant.windows)
    pieces = merged([w for w, _, _ in grant.windows])
    lo, hi = pieces[0].start, pieces[-1].end
    result = dict(caller=request.caller, inss=request.inss, data_type=request.data_type, start=request.start,
                  end=request.end, granted=granted)
    if request.data_type == "DIMONA":
        periods = []
        rows = (store.current_periods(connection, request.inss, lo, hi) if opened is None or opened.periods is None
                else [p for p in opened.periods if p.starting_date <= hi and (p.ending_date is None
                                                                             or p.ending_date >= lo)])
        for row in rows:
            # A period straddling two granted windows comes back as two pieces, same PeriodId.
            for piece in pieces:
                cut = piece.clip(row.starting_date, row.ending_date)
                if cut is not None:  # an open end is cut too: nothing beyond the granted days leaves
                    periods.append(m.EmploymentPeriodData(
                        row.period_id, row.declaration_id, row.employer_noss, row.worker_type, row.joint_commission,
                        cut.start, cut.end, row.planned_hours))
        return m.ConsultResult(**result, periods=tuple(periods))
    if request.data_type == "DMFA":
        quarters = []
        first, last = Quarter.of(lo).code, Quarter.of(hi).code
        stored = (store.current_quarters(connection, request.inss, first, last)
                  if opened is None or opened.quarters is None
                  else [q for q in opened.quarters if first <= q.quarter <= last])
        for q in stored:
            occupations = []
            quarter = Quarter(q.quarter // 10, q.quarter % 10)
            for o in q.occupations:
                # An occupation declared in a quarter is that quarter's (an open end or a later end date says
                # it goes on, which the next quarter's DmfA will tell): its days are cut to the quarter first.
                days = Window(quarter.first_day, quarter.last_day).clip(o["start"], o["end"])
                cuts = [] if days is None else [c for c in (piece.clip(days.start, days.end) for piece in pieces)
                                                if c is not None]
                if not cuts:
                    continue
                # Services and remunerations are quarter totals: they cannot be cut by day, so an occupation
                # comes back once, its dates cut to the span of its granted days.
                occupations.append(m.OccupationData(
                    cuts[0].start, cuts[-1].end, o["joint_commission"],
                    o["working_days_system"], o["mean_working_hours"], o["ref_mean_working_hours"],
                    tuple(m.ServiceData(s.code, s.days, s.hours) for s in o["services"]),
                    tuple(m.RemunerationData(r.code, r.amount) for r in o["remunerations"])))
            if occupations:
                quarters.append(m.QuarterData(q.declaration_id, q.employer_noss, q.quarter // 10, q.quarter % 10,
                                              q.worker_code, tuple(occupations)))
        return m.ConsultResult(**result, quarters=tuple(quarters))
    sector = SECTOR_OF.get(request.data_type)
    risks = []
    if sector is not None:
        for r in store.social_risks(connection, request.inss, sector, lo, hi):
            if any(piece.start <= r.event_date <= piece.end for piece in pieces):
                risks.append(m.SocialRiskData(
                    r.declaration_id, r.employer_noss, r.scenario, r.event_date,
                    store.details_in_order(r.scenario, r.details), r.ref_quarterly_gross_remun,
                    r.ref_working_time_fraction, r.ref_joint_commission, r.reference_source))
    return m.ConsultResult(**result, social_risks=tuple(risks))


def _window(start: dt.date, end: dt.date | None) -> str:
    return f"{start.isoformat()}/{end.isoformat() if end else ''}"


# --- notifications, in the declaration's transaction -----------------------------------

def data_type_of(declaration) -> str | None:
    """The institutions' data type a declaration's facts belong to."""
    if isinstance(declaration, Dimona):
        return "DIMONA"
    if isinstance(declaration, DmfA):
        return "DMFA"
    if isinstance(declaration, SocialRisk):
        return declaration.scenario.data_type
    return None


def notify(connection: Connection, declaration, outcome: Outcome, now: dt.datetime, *,
           subscribed: bool | None = None, periods: StoredData | None = None) -> None:
    """Write the notifications an accepted declaration yields (``Ingest.submit`` calls this once the
    declaration is decided and its facts stored, in the same transaction). Nothing for TEST.

    ``subscribed``: whether anyone is subscribed to the declaration's data type, when the caller has
    already read it in the same transaction (e.g. folded into a read it makes anyway:
    ``EXISTS (SELECT 1 FROM subscription WHERE data_type = :t)``); None reads it here, one indexed
    query, the only one when nobody is subscribed.

    ``periods``: for a Dimona Out, Update or Cancel, what the rules read (the pipeline's DimonaView): the
    period before the change is taken from it, the period after is the same change applied to it as
    ``store_dimona`` applied; required for those (once the change is stored, the store no longer holds
    the period as it was). So on PostgreSQL, once someone is subscribed,
    the notifications of any declaration cost one statement (store.add_notifications)."""
    data_type = data_type_of(declaration)
    if outcome.environment != PROD or data_type is None:
        return
    if subscribed is None:
        subscribed = store.anyone_subscribed(connection, data_type)
    if not subscribed:
        return
    due: list[store.Due] = []
    replaced = None
    if isinstance(declaration, Dimona):
        action = declaration.action
        if isinstance(action, DimonaIn):
            due.append(store.Due(action.inss, action.starting_date, action.ending_date, action.starting_date,
                                 action.ending_date, "NEW"))
        else:
            if periods is None:
                # After store_dimona the store holds the period as changed: "before" must come from the read
                # the rules made before the change.
                raise ValueError("notify needs the periods the rules read for a Dimona Out, Update or Cancel")
            before = periods.period(action.period_id)
            after = apply_change(before, action)
            change = "CANCELLED" if action.action == "Cancel" else "UPDATED"
            # a change concerns the days before it as well as after
            match_start = min(after.starting_date, before.starting_date)
            match_end = (None if after.ending_date is None or before.ending_date is None
                         else max(after.ending_date, before.ending_date))
            due.append(store.Due(before.inss, after.starting_date, after.ending_date, match_start, match_end,
                                 change))
    elif isinstance(declaration, DmfA):
        q = declaration.quarter
        change = "NEW"
        if declaration.declaration_type == "REPLACEMENT":
            change = "REPLACED"  # also for the persons the replaced DmfA named and this one drops
            replaced = (declaration.replaces, q)
        due.extend(store.Due(inss, q.first_day, q.last_day, q.first_day, q.last_day, change)
                   for inss in dict.fromkeys(p.inss for p in declaration.persons))
    else:
        day = declaration.event_date
        due.append(store.Due(declaration.inss, day, day, day, day, "NEW"))
    store.add_notifications(connection, data_type, outcome.declaration_id, due, now, replaced=replaced)


# --- reading the access log (declarations log verify | person) -------------------------

def verify_log(engine: Engine) -> ChainCheck:
    """Check the whole chain, then that it ends where the head row says (a cut-off tail is caught too)."""
    with engine.connect() as connection:
        check = check_chain(store.log_entries(connection))
        if check.first_broken is not None:
            return check
        head_sequence, head_hash = store.log_head(connection)
    if head_sequence > check.entries:
        return replace(check, first_broken=check.entries + 1,
                       reason=f"entries {check.entries + 1} to {head_sequence} are missing")
    if head_sequence != check.entries or head_hash != check.last_hash:
        return replace(check, first_broken=check.entries,
                       reason="the last entry is not the one the log's head recorded")
    return check


@dataclass(frozen=True)
class PersonAccess:
    """One access to a person's data, as ``declarations log person`` shows it."""
    sequence: int              # the log entry
    at: str
    institution_id: str
    operation: str
    data_type: str | None
    window: str | None
    outcome: str
    authorization: str | None
    message_id: str | None
    detail: str | None


_DELIVERED = re.compile(r"^sequences (\d+)-(\d+) ")


def person_accesses(engine: Engine, inss: str) -> list[PersonAccess]:
    """Every log entry about the person, and every GetNotifications answer that delivered a
    notification about them (with the notification's data type, period and authorization)."""
    with engine.connect() as connection:
        out = [PersonAccess(e.sequence, e.at, e.institution_id, e.operation, e.data_type, e.window, e.outcome,
                            e.authorization, e.message_id, e.detail)
               for e in store.log_entries_about(connection, inss)]
        notifications = store.notifications_about(connection, inss)
        if notifications:
            answers = store.log_entries_of(connection, (n.institution_id for n in notifications), "GetNotifications")
            ranges: dict[str, list[tuple[int, int, LogEntry]]] = {}
            for entry in answers:
                found = _DELIVERED.match(entry.detail or "")
                if found:
                    ranges.setdefault(entry.institution_id, []).append((int(found[1]), int(found[2]), entry))
            for n in notifications:
                for low, high, entry in ranges.get(n.institution_id, ()):
                    if low <= n.sequence <= high:
                        out.append(PersonAccess(
                            entry.sequence, entry.at, entry.institution_id, entry.operation, n.data_type,
                            _window(n.period_start, n.period_end), entry.outcome, n.authorization, entry.message_id,
                            f"notification {n.sequence}: {n.change} by declaration {n.declaration_id}"))
    return sorted(out, key=lambda a: (a.sequence, a.detail or ""))
