"""``declarations demo``: the engine at work on the embedded SQLite store.

Builds declarations for today's date (the real clock, or DECLARATIONS_NOW),
signs them with the demo keys of fixtures/demo/keys, submits them through the
real pipeline and prints each receipt: a hire, last quarter's DmfA, a
sickness declaration whose ReferenceData the engine derives from that DmfA,
a refused declaration, and a safe retry. Beforehand the National Employment
Office (ONEM) registers the worker and subscribes; afterwards it collects its
notifications and consults the worker's Dimona (institutions.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TextIO

from declarations import samples
from declarations.bootstrap import App
from declarations.domain.model import Quarter
from declarations.services.archive import received_count
from declarations.services.social_risks import stored_reference
from declarations.settings import brussels_today
from declarations.xmlio.results import to_bytes
from declarations.xmlio.signature import Signer

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
EMPLOYER, ENTERPRISE, SENDER, WORKER = "123456749", "0403179609", "1001", "85073100130"


def run(app: App, *, out: TextIO) -> int:
    from declarations.services import directory

    app.init()
    directory.load(app.engine, (DEMO / "directory.xml").read_bytes())
    print(f"store: {app.settings.database_url}\ndirectory: {DEMO / 'directory.xml'} loaded\n", file=out)
    if received_count(app.engine):
        print(f"note: this store already holds earlier declarations: a demo of another day refuses what would\n"
              f"overlap them (D002, M002). Remove {app.settings.home} for a fresh start.\n", file=out)
    signer = Signer.from_files(DEMO / "keys" / "sender-1001.key.pem", DEMO / "keys" / "sender-1001.cert.pem")
    now = app.settings.now()
    today = brussels_today(now)
    last_quarter = Quarter.of(Quarter.of(today).first_day - dt.timedelta(days=1))
    tag = today.strftime("%Y%m%d")
    head = dict(sender_id=SENDER, noss=EMPLOYER, enterprise_nbr=ENTERPRISE, created=now)
    full_quarter = (last_quarter.last_day - last_quarter.first_day).days + 1
    steps = [
        ("a hire, declared late (a warning, not a refusal)",
         samples.dimona("In", message_id=f"demo-{tag}-in", **head, INSS=WORKER,
                        StartingDate=last_quarter.first_day, JointCommissionNbr="302", WorkerType="OTH")),
        (f"the DmfA of quarter {last_quarter}",
         samples.dmfa(message_id=f"demo-{tag}-dmfa", **head, quarter=str(last_quarter), workers=[
             samples.worker(WORKER, sequence=1, worker_code="495", occupations=[samples.occupation(
                 start=last_quarter.first_day, jc="302", mean=3800, ref=3800,
                 services=[("001", -(-full_quarter * 500 // 7))], remuns=[("001", 950000)])])])),
        ("a sickness declaration without ReferenceData: the engine derives it from the DmfA",
         samples.social_risk("Incapacity", message_id=f"demo-{tag}-sick", **head, inss=WORKER, event_date=today,
                             LastDayWorked=today - dt.timedelta(days=1))),
        ("a hire with a wrong INSS check digit",
         samples.dimona("In", message_id=f"demo-{tag}-bad", **head, INSS="85073100131", StartingDate=today,
                        JointCommissionNbr="302", WorkerType="OTH")),
    ]
    _institution_before(app, last_quarter.first_day, out)
    first = None
    for label, document in steps:
        receipt = app.ingest.submit(samples.to_bytes(signer.sign(document)), channel="CLI")
        first = first or (label, document, receipt)
        _show(label, receipt, out, app.engine)
    label, document, receipt = first
    again = app.ingest.submit(samples.to_bytes(signer.sign(document)), channel="CLI")
    _show("the hire sent again (a safe retry: the first result comes back)", again, out, app.engine)
    _institution_after(app, last_quarter.first_day, today, out)
    print("the last signed receipt, as a sender gets it:\n", file=out)
    print(to_bytes(again.signed_result).decode(), file=out)
    print(f"\nnext: 'declarations --help'; the engine's certificate: 'declarations engine-cert'; who saw the "
          f"worker's data: 'declarations log person {WORKER}'", file=out)
    return 0


def _onem():
    """ONEM's next request header: a MessageId it never reuses, even across demo runs."""
    import uuid

    from declarations.domain.institution_messages import Caller
    return Caller("ONEM", f"demo-{uuid.uuid4().hex[:12]}")


def _institution_before(app: App, start: dt.date, out: TextIO) -> None:
    from declarations.domain import institution_messages as m

    desk = app.institutions
    desk.handle(m.RegisterPerson(_onem(), WORKER, "UNEMPLOYED", start, None))
    desk.handle(m.Subscribe(_onem(), "DIMONA"))
    desk.handle(m.Subscribe(_onem(), "DMFA"))
    print(f"- ONEM registers worker {WORKER} as UNEMPLOYED from {start} and subscribes to DIMONA and DMFA\n",
          file=out)


def _institution_after(app: App, start: dt.date, today: dt.date, out: TextIO) -> None:
    from declarations.domain import institution_messages as m

    desk = app.institutions
    batch = desk.handle(m.GetNotifications(_onem(), 0, 1000))
    print(f"- ONEM collects its notifications (AfterSequence 0): {len(batch.notifications)}, last Sequence "
          f"{batch.last_sequence}", file=out)
    for n in batch.notifications[-3:]:
        print(f"    {n.sequence}: {n.change} {n.data_type} for {n.inss}, declaration {n.declaration_id}, "
              f"{n.start} to {n.end or 'open'}", file=out)
    consulted = desk.handle(m.Consult(_onem(), WORKER, "DIMONA", start, today))
    periods = getattr(consulted, "periods", ())
    print(f"- ONEM consults the worker's Dimona from {start} to {today}: {len(periods)} period(s)"
          + "".join(f"\n    period {p.period_id} at employer {p.employer_noss}, {p.start} to {p.end}"
                    for p in periods) + "\n", file=out)


def _show(label: str, receipt, out: TextIO, engine) -> None:
    o = receipt.outcome
    extra = f", PeriodId {o.period_id}" if o.period_id else ""
    print(f"- {label}\n  {o.kind} {o.status}: DeclarationId {o.declaration_id}{extra}"
          + (" (retry)" if receipt.retry else ""), file=out)
    for a in o.anomalies:
        print(f"    {a.code} {a.severity.value}: {a.message}", file=out)
    if o.kind == "DRS" and o.accepted:
        stored = stored_reference(engine, o.declaration_id)
        if stored and stored[0]:
            ref, source = stored
            print(f"    ReferenceData {source.lower()}: QuarterlyGrossRemun {ref.quarterly_gross_remun / 100:.2f} EUR, "
                  f"WorkingTimeFraction {ref.working_time_fraction / 100:.2f} %, JointCommissionNbr "
                  f"{ref.joint_commission}", file=out)
    print(file=out)
