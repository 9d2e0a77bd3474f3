"""Authorization decisions and the access-log chain (institutions.md), pure domain."""

import datetime as dt
from dataclasses import replace

from declarations.domain.access import Authorization, RegisterEntry, Window, decide_consult, may_register
from declarations.domain.access_log import GENESIS, LogEntry, first_broken, sealed

D = dt.date
AUTH = [Authorization("ONEM", "UNEMPLOYED", "DIMONA"), Authorization("INAMI", "INSURED", "DRS_HEALTH")]
REGISTER = [RegisterEntry("ONEM", "85073100130", "UNEMPLOYED", D(2025, 3, 1), D(2025, 6, 30)),
            RegisterEntry("ONEM", "85073100130", "UNEMPLOYED", D(2025, 9, 1), None),
            RegisterEntry("INAMI", "85073100130", "PENSIONER", D(2020, 1, 1), None)]


def test_granted_window_is_cut_to_the_register_periods():
    grant = decide_consult("ONEM", "85073100130", "DIMONA", Window(D(2025, 1, 1), D(2025, 12, 31)), REGISTER, AUTH)
    assert [(w.start, w.end) for w, _, _ in grant.windows] == [(D(2025, 3, 1), D(2025, 6, 30)),
                                                               (D(2025, 9, 1), D(2025, 12, 31))]


def test_refusals_in_order():
    window = Window(D(2025, 1, 1), D(2025, 1, 31))
    assert decide_consult("FEDRIS", "85073100130", "DIMONA", window, REGISTER, AUTH).code == "A001"
    assert decide_consult("INAMI", "85073100130", "DRS_HEALTH", window, REGISTER, AUTH).code == "A002"
    assert decide_consult("ONEM", "85073100130", "DIMONA", window, REGISTER, AUTH).code == "A003"
    # a window touching the first day of a period is granted that day (bounds are inclusive)
    edge = decide_consult("ONEM", "85073100130", "DIMONA", Window(D(2025, 2, 1), D(2025, 3, 1)), REGISTER, AUTH)
    assert [(w.start, w.end) for w, _, _ in edge.windows] == [(D(2025, 3, 1), D(2025, 3, 1))]


def test_may_register_only_in_an_authorized_capacity():
    assert may_register("ONEM", "UNEMPLOYED", AUTH)
    assert not may_register("ONEM", "INSURED", AUTH)


def _chain(count):
    entries, previous = [], GENESIS
    for n in range(1, count + 1):
        entry = sealed(LogEntry(n, f"2025-11-15T10:00:0{n}+01:00", "ONEM", "CONSULT", "85073100130", "DIMONA",
                                "2025-01-01/2025-12-31", "GRANTED", "UNEMPLOYED:DIMONA", f"m{n}", previous))
        entries.append(entry)
        previous = entry.hash
    return entries


def test_intact_chain_and_the_first_broken_entry_is_named():
    entries = _chain(5)
    assert first_broken(entries) is None
    tampered = entries[:2] + [replace(entries[2], outcome="A002")] + entries[3:]
    assert first_broken(tampered) == 3
    assert first_broken(entries[:3] + entries[4:]) == 4   # a removed entry
    resealed = entries[:2] + [sealed(replace(entries[2], outcome="A002"))] + entries[3:]
    assert first_broken(resealed) == 4                     # re-hashing one entry breaks the next


def test_content_around_chain_puts_the_hash_and_sequence_where_the_content_has_them():
    from declarations.domain.access_log import content_around_chain

    entry = LogEntry(0, "2025-11-15T10:00:00+01:00", "ONEM", "Consult", "85073100130", "DIMONA",
                     "2025-01-01/2025-12-31", "GRANTED", "UNEMPLOYED:DIMONA", 'm "previous_hash":"x" é', GENESIS,
                     detail='"sequence":0,"window":')
    a, b, c = content_around_chain(entry)
    previous = "ab" * 32
    assert (a + previous + b + "17" + c).encode() == replace(entry, previous_hash=previous, sequence=17).content()
