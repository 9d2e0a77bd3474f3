"""Notification Sequences under concurrent writers: several processes store declarations for
subscribed, registered persons at once; each institution's Sequences come out 1..N, no gap, no
duplicate (the counter row is bumped in each declaration's own transaction)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

from sqlalchemy import select

from declarations import samples
from declarations.domain import institution_messages as m
from declarations.store import tables as t

KEYS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "demo", "keys")
PER_PROCESS = 12
# (sender key, SenderId, employer): three employers, so the writers are not serialised by the employer lock.
WRITERS = [("sender-1001", "1001", "123456749"), ("sender-2001", "2001", "555123433"),
           ("sender-2001", "2001", "009988768")]

_WRITER = r"""
import datetime as dt, sys, time
from declarations import samples
from declarations.bootstrap import build
from declarations.xmlio.signature import Signer
keys, key, sender, noss, birth, count, start = sys.argv[1:8]
signer = Signer.from_files(f"{keys}/{key}.key.pem", f"{keys}/{key}.cert.pem")
documents = [samples.to_bytes(signer.sign(samples.dimona(
    "In", message_id=f"race-{noss}-{n}", sender_id=sender, noss=noss, INSS=samples.valid_inss(n, birth=birth),
    StartingDate=dt.date(2025, 11, 20), JointCommissionNbr="200", WorkerType="OTH"))) for n in range(int(count))]
app = build()
while time.time() < float(start):
    time.sleep(0.001)
accepted = sum(app.ingest.submit(d, channel="CLI").outcome.accepted for d in documents)
print(accepted)
"""


def test_sequences_have_no_gap_and_no_duplicate_with_concurrent_writers(app):
    births = ["700101", "700102", "700103"]
    desk = app.institutions
    desk.handle(m.Subscribe(m.Caller("ONEM", "s1"), "DIMONA"))
    n = 0
    for birth in births:
        for k in range(PER_PROCESS):
            n += 1
            desk.handle(m.RegisterPerson(m.Caller("ONEM", f"r{n}"), samples.valid_inss(k, birth=birth), "UNEMPLOYED",
                                         dt.date(2025, 1, 1), None))
    env = {**os.environ, "DECLARATIONS_HOME": str(app.settings.home),
           "DECLARATIONS_DATABASE_URL": app.settings.database_url,
           "DECLARATIONS_NOW": app.settings.fixed_now.isoformat()}
    start = time.time() + 3.0
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, KEYS, key, sender, noss, birth, str(PER_PROCESS),
                                 repr(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
               for (key, sender, noss), birth in zip(WRITERS, births)]
    results = [w.communicate(timeout=300) for w in writers]
    assert all(w.returncode == 0 for w in writers), [r[1][-2000:] for r in results]
    accepted = sum(int(out) for out, _ in results)
    assert accepted == len(WRITERS) * PER_PROCESS
    with app.engine.connect() as c:
        rows = c.execute(select(t.notification.c.sequence, t.notification.c.inss)
                         .where(t.notification.c.institution_id == "ONEM")).all()
    assert sorted(r.sequence for r in rows) == list(range(1, accepted + 1))
    assert len({r.inss for r in rows}) == accepted
    got = desk.handle(m.GetNotifications(m.Caller("ONEM", "g1"), 0, 1000))
    assert [x.sequence for x in got.notifications] == list(range(1, accepted + 1)) == \
        list(range(1, got.last_sequence + 1))


_CONSULTER = r"""
import datetime as dt, sys, time
from declarations.bootstrap import build
from declarations.domain import institution_messages as m
name, inss, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
desk = build().institutions
while time.time() < start:
    time.sleep(0.001)
for n in range(count):
    desk.handle(m.Consult(m.Caller("ONEM", f"{name}-{n}"), inss, "DIMONA", dt.date(2025, 1, 1), dt.date(2025, 12, 31)))
"""


def test_the_access_log_stays_one_chain_with_concurrent_writers(app):
    from declarations.services.institutions import verify_log

    inss = samples.valid_inss(1)
    app.institutions.handle(m.RegisterPerson(m.Caller("ONEM", "r"), inss, "UNEMPLOYED", dt.date(2025, 1, 1), None))
    env = {**os.environ, "DECLARATIONS_HOME": str(app.settings.home),
           "DECLARATIONS_DATABASE_URL": app.settings.database_url,
           "DECLARATIONS_NOW": app.settings.fixed_now.isoformat()}
    start = time.time() + 3.0
    consulters = [subprocess.Popen([sys.executable, "-c", _CONSULTER, f"p{k}", inss, "20", repr(start)],
                                   stderr=subprocess.PIPE, env=env) for k in range(3)]
    errors = [c.communicate(timeout=300)[1] for c in consulters]
    assert all(c.returncode == 0 for c in consulters), [e[-2000:] for e in errors]
    check = verify_log(app.engine)
    assert (check.first_broken, check.entries) == (None, 61)
