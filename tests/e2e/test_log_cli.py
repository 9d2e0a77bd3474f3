"""``declarations log verify`` and ``declarations log person`` as an operator runs them, on a store
the desk has written (SQLite and PostgreSQL through the ``app`` fixture)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from sqlalchemy import text

from declarations.domain import institution_messages as m

WORKER = "85073100130"
D = dt.date


def run(app, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DECLARATIONS_HOME": str(app.settings.home),
           "DECLARATIONS_DATABASE_URL": app.settings.database_url,
           "DECLARATIONS_NOW": app.settings.fixed_now.isoformat()}
    return subprocess.run([sys.executable, "-m", "declarations.channels.cli", *args], capture_output=True, env=env,
                          timeout=120, text=True)


def some_accesses(app) -> None:
    desk = app.institutions
    desk.handle(m.RegisterPerson(m.Caller("ONEM", "m1"), WORKER, "UNEMPLOYED", D(2025, 1, 1), None))
    desk.handle(m.Consult(m.Caller("ONEM", "m2"), WORKER, "DIMONA", D(2025, 1, 1), D(2025, 12, 31)))
    desk.handle(m.Consult(m.Caller("FEDRIS", "m3"), WORKER, "DMFA", D(2025, 1, 1), D(2025, 12, 31)))
    desk.handle(m.Consult(m.Caller("ONEM", "m2"), WORKER, "DIMONA", D(2025, 1, 1), D(2025, 12, 31)))
    desk.handle(m.Consult(m.Caller("ONEM", "m4"), WORKER, "DMFA", D(2025, 1, 1), D(2025, 12, 31)))


def test_verify_an_intact_log_then_a_tampered_row_is_named(app):
    some_accesses(app)
    intact = run(app, "log", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "intact: 5 entries" in intact.stderr
    with app.engine.begin() as c:   # someone edits row 3 in the database: FEDRIS's refusal becomes a grant
        c.execute(text("UPDATE access_log SET outcome = 'GRANTED' WHERE sequence = 3"))
    broken = run(app, "log", "verify")
    assert broken.returncode == 1
    assert "BROKEN at entry 3" in broken.stderr


def test_verify_names_a_removed_row_and_a_cut_tail(app):
    some_accesses(app)
    with app.engine.begin() as c:
        c.execute(text("DELETE FROM access_log WHERE sequence = 5"))
    cut = run(app, "log", "verify")
    assert cut.returncode == 1 and "BROKEN at entry 5" in cut.stderr
    with app.engine.begin() as c:
        c.execute(text("DELETE FROM access_log WHERE sequence = 2"))
    hole = run(app, "log", "verify")
    assert hole.returncode == 1 and "BROKEN at entry 2" in hole.stderr


def test_log_person_prints_who_saw_what_when_under_which_authorization(app):
    some_accesses(app)
    shown = run(app, "log", "person", WORKER)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:4] == ["entry", "when", "institution", "operation"]
    body = [line.split() for line in lines[2:]]
    assert [(r[2], r[3], r[4], r[6], r[7]) for r in body] == [
        ("ONEM", "RegisterPerson", "-", "GRANTED", "UNEMPLOYED"),
        ("ONEM", "Consult", "DIMONA", "GRANTED", "UNEMPLOYED:DIMONA"),
        ("FEDRIS", "Consult", "DMFA", "A001", "-"),
        ("ONEM", "Consult", "DIMONA", "A005", "-"),
        ("ONEM", "Consult", "DMFA", "GRANTED", "UNEMPLOYED:DMFA")]
    assert all(r[1].startswith("2025-11-15T10:00:00") for r in body)
    assert "5 accesses to the data of person 85073100130" in shown.stderr
    nobody = run(app, "log", "person", "85073100231")
    assert nobody.returncode == 0 and len(nobody.stdout.splitlines()) == 2
