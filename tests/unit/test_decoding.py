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
