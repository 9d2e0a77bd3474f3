"""result_element writes its DeclarationResult as text and parses it (since dmfa-cpu): the tree serializes to
exactly the bytes, and the canonical form, of the tree built element by element as before (the oracle below),
whatever the values carry (markup characters, carriage returns, empty values, other scripts), and a value XML
cannot carry fails as it failed."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from lxml import etree

from declarations.domain.anomalies import CATALOGUE, Anomaly, Severity, anomaly
from declarations.domain.outcome import Outcome
from declarations.xmlio import results
from declarations.xmlio.results import R, read_result, result_element, to_bytes, xml_datetime


def oracle_result_element(outcome: Outcome) -> etree._Element:
    """result_element before dmfa-cpu, verbatim."""
    def add_text(parent, name, value):
        if value is None:
            return None
        child = etree.SubElement(parent, f"{{{R}}}{name}")
        child.text = str(value)
        return child

    root = etree.Element(f"{{{R}}}DeclarationResult", nsmap={None: R})
    add_text(root, "DeclarationId", outcome.declaration_id)
    add_text(root, "MessageId", outcome.message_id)
    add_text(root, "SenderId", outcome.sender_id)
    add_text(root, "Kind", outcome.kind)
    add_text(root, "Environment", outcome.environment)
    add_text(root, "Status", outcome.status)
    add_text(root, "ReceivedAt", xml_datetime(outcome.received_at))
    add_text(root, "PeriodId", outcome.period_id)
    for a in outcome.anomalies:
        el = etree.SubElement(root, f"{{{R}}}Anomaly")
        add_text(el, "Code", a.code)
        add_text(el, "Severity", a.severity.value)
        add_text(el, "Location", a.location)
        add_text(el, "Message", a.message)
    return root


PIECES = ["plain", " ", "", "&", "&amp;", "<", ">", "]]>", '"', "'", "\r", "\r\n", "\n", "\t", "é", "ß", "€",
          "\U0001f600", "日本", "&#13;", "<Anomaly>", "\u00a0", "\x7f", "\x85", "/DmfA/NaturalPerson[3]"]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6)))


def _outcome(rng: random.Random, anomalies) -> Outcome:
    return Outcome(
        declaration_id=rng.choice([1, 42, 10 ** 12]),
        received_at=rng.choice([dt.datetime(2025, 11, 15, 10, 0, tzinfo=dt.timezone.utc),
                                dt.datetime(2025, 11, 15, 10, 0, 0, 123456,
                                            tzinfo=dt.timezone(dt.timedelta(hours=1)))]),
        anomalies=tuple(anomalies), message_id=rng.choice([None, "m-1", _text(rng)]),
        sender_id=rng.choice([None, "2001"]), kind=rng.choice([None, "DMFA", "DIMONA"]),
        environment=rng.choice([None, "PROD", "TEST"]), period_id=rng.choice([None, 0, 7]),
        status=rng.choice(["", "ACCEPTED", "REFUSED"]))


def _same(outcome: Outcome) -> None:
    new, old = result_element(outcome), oracle_result_element(outcome)
    assert to_bytes(new) == to_bytes(old)
    assert etree.tostring(new, method="c14n", exclusive=True) == etree.tostring(old, method="c14n", exclusive=True)
    assert read_result(new) == read_result(old)


def test_same_bytes_as_element_by_element():
    rng = random.Random(11)
    codes = sorted(CATALOGUE)
    as_text = 0
    for _ in range(600):
        anomalies = []
        for _ in range(rng.randint(0, 8)):
            if rng.random() < 0.7:
                anomalies.append(anomaly(rng.choice(codes), _text(rng), rng.choice([None, _text(rng)])))
            else:  # any code, as a caller could build one
                anomalies.append(Anomaly(_text(rng) or "X1", rng.choice(list(Severity)), _text(rng),
                                         rng.choice([None, "", _text(rng)])))
        outcome = _outcome(rng, anomalies)
        _same(outcome)
        as_text += results._result_text(outcome) is not None
    assert as_text > 200  # most went the text way (the others have an empty value)


def test_a_large_dmfa_result():
    rng = random.Random(3)
    anomalies = [anomaly("M010", f"no Dimona period of this employer for worker {n:011d} covers the occupation's "
                         "days from 2025-07-01 to 2025-09-30", f"/DmfA/NaturalPerson[{n}]/WorkerRecord[1]/"
                         "Occupation[1]") for n in range(1, 1001)]
    _same(_outcome(rng, anomalies))


@pytest.mark.parametrize("bad", ["\x00", "\x01", "a\x1fb", "\ufffe", "\ud800"])
def test_a_value_xml_cannot_carry_fails_as_before(bad):
    outcome = Outcome(declaration_id=1, received_at=dt.datetime(2025, 11, 15, tzinfo=dt.timezone.utc),
                      anomalies=(anomaly("C001", f"INSS {bad} invalid", "/Dimona/INSS"),))
    try:
        expected = to_bytes(oracle_result_element(outcome))
    except Exception as exc:  # noqa: BLE001 - the oracle's own error is the expectation
        with pytest.raises(type(exc)):
            result_element(outcome)
    else:
        assert to_bytes(result_element(outcome)) == expected
