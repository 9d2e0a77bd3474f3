"""The decoder reads what the XSD accepts: XSD 1.0 collapses whitespace around
dates, date-times and integers, so the decoder must too."""

import datetime as dt

from declarations import samples
from declarations.xmlio import schemas
from declarations.xmlio.decoding import decode

D = "{urn:declarations:dimona:v1}"


def test_whitespace_around_typed_values_is_accepted_by_both():
    element = samples.dimona("In", message_id="m", sender_id="1001", noss="123456749", INSS="85073100130",
                             StartingDate=dt.date(2025, 7, 1), JointCommissionNbr="200", WorkerType="STU",
                             EndingDate=dt.date(2025, 7, 2), PlannedHoursNbr=10)
    element.find(f".//{D}StartingDate").text = " 2025-07-01\n"
    element.find(f".//{D}CreationDateTime").text = " 2025-01-01T09:00:00Z "
    element.find(f".//{D}PlannedHoursNbr").text = " 10 "
    decoded = decode(element)
    assert decoded.action.starting_date == dt.date(2025, 7, 1)
    assert decoded.action.planned_hours == 10
    assert decoded.header.creation == dt.datetime(2025, 1, 1, 9, tzinfo=dt.timezone.utc)
    # and the XSD agrees these are valid lexical forms (the missing Signature is the only problem)
    assert [p.message for p in schemas.problems(element) if "Signature" not in p.message] == []


def test_a_persons_text_the_xsd_would_not_let_through_is_an_error_not_a_short_list():
    """decoding._persons reads the stylesheet's tokens (P, W, O, S, R, C and the leaves); after the XSD they
    always come whole. Text that stops inside an element, or goes on with something else, raises rather
    than giving the persons read so far: a text cut inside a contribution, or inside an occupation's leaves,
    or going on with something that is not a letter."""
    import pytest

    from declarations.xmlio.decoding import _persons

    whole = " P 1 60010100172 W 495 O 1 2025-07-01 302 500 3800 3800 S 001 6000 R 001 300000 C 001 300000 39210"
    assert len(_persons(whole)) == 1
    for broken in (whole[:-6], whole[:whole.index(" 500")], whole + " X 1"):
        with pytest.raises(ValueError):
            _persons(broken)
