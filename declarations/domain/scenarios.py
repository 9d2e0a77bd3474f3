"""The social-risk scenario catalogue: data, not code.

Adding a scenario is adding an entry here and its element in xsd/drs.xsd;
decoding, storage (fields kept as a JSON object), the duplicate check (R006),
the coherence checks (R003) and ReferenceData handling all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    type: str              # date | datetime | int | bool | text | month
    optional: bool = False


@dataclass(frozen=True)
class Coherence:
    """One R003 check. kind:
    - ``not_after_event``: field (a date) must not be after EventDate;
    - ``month_not_after_today``: field (a month) must not be after today's month;
    - ``not_all_zero``: the fields must not all be 0."""
    kind: str
    fields: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class Scenario:
    code: str
    element: str
    sector: str            # UNEMPLOYMENT | HEALTH | OCCUPATIONAL
    fields: tuple[Field, ...]
    reference_data: bool = False      # the element may carry ReferenceData
    same_event_field: str | None = None  # R006 compares this field instead of EventDate
    coherence: tuple[Coherence, ...] = ()

    @property
    def data_type(self) -> str:
        """The institutions' data type (institutions.md) this scenario belongs to."""
        return f"DRS_{self.sector}"


CATALOGUE: tuple[Scenario, ...] = (
    Scenario("UNEMP-1", "EndOfEmployment", "UNEMPLOYMENT",
             (Field("Reason", "text"), Field("NoticeStartDate", "date", optional=True)),
             reference_data=True,
             coherence=(Coherence("not_after_event", ("NoticeStartDate",), "NoticeStartDate is after EventDate"),)),
    Scenario("UNEMP-2", "TemporaryUnemploymentStart", "UNEMPLOYMENT",
             (Field("Reason", "text"), Field("ExpectedEndDate", "date", optional=True))),
    Scenario("UNEMP-3", "TemporaryUnemploymentHours", "UNEMPLOYMENT",
             (Field("Month", "month"), Field("HoursUnemployed", "int"), Field("HoursWorked", "int")),
             same_event_field="Month",
             coherence=(
                 Coherence("month_not_after_today", ("Month",), "Month is after the current month"),
                 Coherence("not_all_zero", ("HoursUnemployed", "HoursWorked"), "HoursUnemployed and HoursWorked are both 0"),
             )),
    Scenario("HEALTH-1", "Incapacity", "HEALTH", (Field("LastDayWorked", "date"),),
             reference_data=True,
             coherence=(Coherence("not_after_event", ("LastDayWorked",), "LastDayWorked is after EventDate"),)),
    Scenario("HEALTH-2", "Resumption", "HEALTH", (Field("PartTime", "bool"),)),
    Scenario("HEALTH-3", "MaternityLeave", "HEALTH", (Field("ExpectedBirthDate", "date"),), reference_data=True),
    Scenario("HEALTH-4", "BirthLeave", "HEALTH", (Field("BirthDate", "date"), Field("DaysTaken", "int"))),
    Scenario("OCC-1", "WorkAccident", "OCCUPATIONAL",
             (Field("AccidentDateTime", "datetime"), Field("Description", "text")),
             reference_data=True),
)

BY_ELEMENT = {scenario.element: scenario for scenario in CATALOGUE}
BY_CODE = {scenario.code: scenario for scenario in CATALOGUE}
