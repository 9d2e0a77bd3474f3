"""The DmfA decoder (libxslt writes the NaturalPersons out as text, Python cuts it) returns what the
element-by-element decoder it replaced returned: that decoder is kept below as the reference, and
both read the same signed, XSD-valid DmfAs: every DmfA fixture case, then generated ones of several
shapes (several persons, records, occupations, services, remuns, contributions; optional elements
present and absent; white space around dates and integers, indentation, processing instructions)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import sys
import threading
from pathlib import Path

import pytest
from lxml import etree

from declarations import ns, samples
from declarations.domain import model as m
from declarations.exceptions import SignatureError
from declarations.xmlio import schemas
from declarations.xmlio.decoding import _d, _i, _Reader, decode
from declarations.xmlio.signature import Signer, verify

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "fixtures" / "demo" / "keys"
D = f"{{{ns.DMFA}}}"
sys.path.insert(0, str(ROOT / "bench"))
from batch import SECRETARIAT, dmfa_items  # noqa: E402


# --- the reference: the decoder before the XSLT one (session 3), unchanged ---------------------------

def _split(element):
    leaves, groups = {}, {}
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions
        name = tag.rpartition("}")[2]
        if len(child):
            groups.setdefault(name, []).append(child)
        else:
            leaves[name] = child.text or ""
    return leaves, groups


def reference_dmfa(root: etree._Element) -> m.DmfA:
    r = _Reader(ns.DMFA)
    head, body = _split(root)
    persons = []
    for p_index, person in enumerate(body.get("NaturalPerson", ()), 1):
        p_loc = f"/DmfA/NaturalPerson[{p_index}]"
        p_leaves, p_groups = _split(person)
        records = []
        for w_index, record in enumerate(p_groups.get("WorkerRecord", ()), 1):
            w_loc = f"{p_loc}/WorkerRecord[{w_index}]"
            w_leaves, w_groups = _split(record)
            occupations = []
            for o_index, occ in enumerate(w_groups.get("Occupation", ()), 1):
                o_loc = f"{w_loc}/Occupation[{o_index}]"
                o, o_groups = _split(occ)
                services = []
                for i, service in enumerate(o_groups.get("Service", ()), 1):
                    f, _ = _split(service)
                    services.append(m.Service(f["ServiceCode"], int(f["ServiceNbrDays"]),
                                              _i(f.get("ServiceNbrHours")), f"{o_loc}/Service[{i}]"))
                remuns = []
                for i, remun in enumerate(o_groups.get("Remun", ()), 1):
                    f, _ = _split(remun)
                    remuns.append(m.Remun(f["RemunCode"], int(f["RemunAmount"]), f"{o_loc}/Remun[{i}]"))
                occupations.append(m.Occupation(
                    sequence=int(o["OccupationSequenceNbr"]),
                    starting_date=_d(o["OccupationStartingDate"]),
                    ending_date=_d(o.get("OccupationEndingDate")),
                    joint_commission=o["JointCommissionNbr"],
                    working_days_system=int(o["WorkingDaysSystem"]),
                    mean_working_hours=int(o["MeanWorkingHours"]),
                    ref_mean_working_hours=int(o["RefMeanWorkingHours"]),
                    services=tuple(services), remuns=tuple(remuns), location=o_loc))
            contributions = []
            for i, contribution in enumerate(w_groups.get("Contribution", ()), 1):
                f, _ = _split(contribution)
                contributions.append(m.Contribution(f["ContributionCode"], int(f["Base"]), int(f["Amount"]),
                                                    f"{w_loc}/Contribution[{i}]"))
            records.append(m.WorkerRecord(w_leaves["WorkerCode"], tuple(occupations), tuple(contributions), w_loc))
        persons.append(m.NaturalPerson(int(p_leaves["NaturalPersonSequenceNbr"]), p_leaves["INSS"],
                                       tuple(records), p_loc))
    return m.DmfA(
        header=r.header(root), employer=r.employer(root), quarter=m.Quarter.parse(head["Quarter"].strip()),
        declaration_type=head["DeclarationType"], replaces=_i(head.get("ReplacesDeclarationId")),
        net_owed_amount=int(head["NetOwedAmount"]), persons=tuple(persons))


# --- helpers -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signer():
    return Signer.from_files(KEYS / "sender-2001.key.pem", KEYS / "sender-2001.cert.pem")


def signed_and_valid(element: etree._Element) -> etree._Element:
    """What decode is given in the pipeline: verify's signed tree, after the XSD passed."""
    assert schemas.problems(element) == [], "the test document must be XSD-valid"
    return verify(element).signed


def assert_same(signed: etree._Element, reference_input: etree._Element | None = None) -> m.DmfA:
    decoded = decode(signed)
    expected = reference_dmfa(signed if reference_input is None else reference_input)
    assert decoded == expected
    # equal field by field, and the same types (an int is not a str that compares equal nowhere)
    assert repr(decoded) == repr(expected)
    assert hash(decoded.persons) == hash(expected.persons)
    return decoded


def build(workers, **kwargs) -> etree._Element:
    """An unsigned DmfA of ``workers`` (samples.worker dicts), quarter 2025 Q3."""
    return samples.dmfa(**{"message_id": "eq-1", **SECRETARIAT, "quarter": "20253", "workers": workers, **kwargs})


START = dt.date(2025, 7, 1)


def rich_workers() -> list[dict]:
    return [
        samples.worker("85073100130", sequence=1, worker_code="015", occupations=[
            samples.occupation(1, start=START, end=dt.date(2025, 8, 15), jc="140.03", wds=420, mean=1900, ref=3800,
                               services=[("001", 2500), ("002", 300), ("005", 100)],
                               remuns=[("001", 450000), ("002", 20000), ("007", 1)]),
            samples.occupation(2, start=dt.date(2025, 8, 16), jc="200", services=[], remuns=[])]),
        samples.worker("60010100172", sequence=2, worker_code="840", occupations=[
            samples.occupation(start=START, services=[("001", 0)], remuns=[("001", 0)])]),
        samples.worker("60010100271", sequence=3, worker_code="050", contributions=[], occupations=[
            samples.occupation(start=START, end=dt.date(2025, 9, 30), remuns=[])]),
    ]


# --- the fixture cases ---------------------------------------------------------------------------------

def test_every_dmfa_fixture_case_decodes_as_before():
    checked = 0
    for path in sorted((ROOT / "fixtures").rglob("*.xml")):
        try:
            element = etree.parse(str(path)).getroot()
        except etree.XMLSyntaxError:
            continue
        if element.tag != f"{D}DmfA" or schemas.problems(element):
            continue
        try:
            signed = verify(element).signed
        except SignatureError:
            continue
        assert_same(signed)
        checked += 1
    assert checked >= 39


# --- generated shapes ----------------------------------------------------------------------------------

def test_the_bench_shape(signer):
    for element in dmfa_items(signer, 60, 30):
        decoded = assert_same(signed_and_valid(element))
        assert len(decoded.persons) == 30


def test_several_of_everything_and_optional_elements_absent_or_present(signer):
    element = build(rich_workers(), enterprise_nbr=None)
    decoded = assert_same(signed_and_valid(signer.sign(element)))
    first = decoded.persons[0].worker_records[0]
    assert [len(o.services) for o in first.occupations] == [3, 0]
    assert first.occupations[0].ending_date == dt.date(2025, 8, 15) and first.occupations[1].ending_date is None
    assert first.occupations[0].joint_commission == "140.03"
    assert decoded.persons[2].worker_records[0].contributions == ()
    assert decoded.persons[2].worker_records[0].occupations[0].remuns == ()
    assert decoded.employer.enterprise_nbr is None


def test_the_text_ending_right_after_an_optional_leaf_left_out(signer):
    """The persons' text may end where an optional leaf would come: after the six leaves of a last occupation
    without its ending date (no Service, Remun or Contribution after it), or after the two of a last Service
    without its hours (no Remun or Contribution after it). The token after them is then the end, not a
    letter."""
    def last_occupation(element):
        return assert_same(signed_and_valid(signer.sign(element))).persons[-1].worker_records[-1].occupations[-1]

    occupation = last_occupation(build([samples.worker("60010100271", sequence=1, contributions=[], occupations=[
        samples.occupation(start=START, services=[], remuns=[])])]))
    assert (occupation.ending_date, occupation.ref_mean_working_hours, occupation.services) == (None, 3800, ())
    occupation = last_occupation(build([samples.worker("60010100271", sequence=1, contributions=[], occupations=[
        samples.occupation(start=START, services=[("001", 10)], remuns=[])])]))
    assert [(s.code, s.days, s.hours) for s in occupation.services] == [("001", 10, None)]


def test_a_replacement(signer):
    element = build(rich_workers(), declaration_type="REPLACEMENT", replaces=123456789012)
    decoded = assert_same(signed_and_valid(signer.sign(element)))
    assert decoded.replaces == 123456789012


def test_several_worker_records_and_service_hours(signer):
    element = build(rich_workers())
    person = element.find(f"{D}NaturalPerson")
    record = person.find(f"{D}WorkerRecord")
    second = copy.deepcopy(record)
    second.find(f"{D}WorkerCode").text = "015"
    person.append(second)
    third = copy.deepcopy(record)
    person.append(third)
    for i, days in enumerate(element.iter(f"{D}ServiceNbrDays")):
        if i % 2 == 0:
            hours = etree.Element(f"{D}ServiceNbrHours")
            hours.text = str(1000 + i)
            days.addnext(hours)
    decoded = assert_same(signed_and_valid(signer.sign(element)))
    records = decoded.persons[0].worker_records
    assert [r.location for r in records] == [f"/DmfA/NaturalPerson[1]/WorkerRecord[{i}]" for i in (1, 2, 3)]
    assert records[1].worker_code == "015"
    assert records[2].occupations[0].services[0].hours == 1000 + 6
    assert records[0].occupations[0].services[1].hours is None


def test_white_space_around_dates_and_integers_and_indentation(signer):
    element = build(rich_workers(), replaces=7, declaration_type="REPLACEMENT")
    integers = ("NaturalPersonSequenceNbr", "OccupationSequenceNbr", "WorkingDaysSystem", "MeanWorkingHours",
                "RefMeanWorkingHours", "ServiceNbrDays", "RemunAmount", "Base", "Amount", "NetOwedAmount",
                "ReplacesDeclarationId")
    spaces = [" ", "\n", "\t", "\r\n  ", " \t\n "]
    for i, name in enumerate(integers + ("OccupationStartingDate", "OccupationEndingDate")):
        for j, leaf in enumerate(element.iter(f"{D}{name}")):
            leaf.text = f"{spaces[(i + j) % 5]}{leaf.text}{spaces[(i + 2 * j) % 5]}"
    for leaf in element.iter(f"{D}Amount"):
        leaf.text = f" +0{leaf.text.strip()} "  # a sign and a leading zero, as xs:long allows
    etree.indent(element, space="\t")
    signed = signed_and_valid(signer.sign(element))
    assert "\t" in signed.find(f"{D}NaturalPerson").text  # the indentation is content, kept
    decoded = assert_same(signed)
    assert decoded.persons[0].worker_records[0].occupations[0].starting_date == START
    assert decoded.replaces == 7


def test_processing_instructions_between_and_inside_elements(signer):
    """Exclusive c14n keeps processing instructions. Between elements the reference skipped them;
    inside a leaf (the XSD reads the text around one as the value) it did not read such a value at
    all, so there the expected model is the reference's on the same document without them."""
    element = build(rich_workers())
    occupation = element.find(f"{D}NaturalPerson/{D}WorkerRecord/{D}Occupation")
    occupation.insert(2, etree.ProcessingInstruction("between", "P W O S R C"))
    days = occupation.find(f"{D}Service/{D}ServiceNbrDays")
    days.text = days.text[:2]
    days.append(etree.ProcessingInstruction("inside", "x"))
    days[0].tail = "00"
    code = element.find(f"{D}NaturalPerson/{D}INSS")
    code.text = code.text[:5]
    code.append(etree.ProcessingInstruction("inside"))
    code[0].tail = "100130"
    signed = signed_and_valid(signer.sign(element))
    without = copy.deepcopy(signed)
    etree.strip_tags(without, etree.ProcessingInstruction)
    decoded = assert_same(signed, reference_input=without)
    assert decoded.persons[0].inss == "85073100130"
    assert decoded.persons[0].worker_records[0].occupations[0].services[0].days == 2500


def test_each_thread_decodes_with_its_own_stylesheet(signer):
    signed_bytes = etree.tostring(signed_and_valid(signer.sign(build(rich_workers()))))
    expected = reference_dmfa(etree.fromstring(signed_bytes))
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(decode(etree.fromstring(signed_bytes)) == expected)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [True] * 80


# --- the model's faster construction ----------------------------------------------------------------

@pytest.mark.parametrize("cls, values", [
    (m.Service, ("001", 6000, None, "/a")),
    (m.Remun, ("001", 1, "/b")),
    (m.Occupation, (1, START, None, "200", 500, 3800, 3800, (), (), "/c")),
    (m.Contribution, ("002", 10, 2, "/d")),
    (m.WorkerRecord, ("495", (), (), "/e")),
    (m.NaturalPerson, (1, "85073100130", (), "/f")),
])
def test_positional_builder_makes_what_the_constructor_makes(cls, values):
    built, constructed = m.positional_builder(cls)(*values), cls(*values)
    assert type(built) is cls
    assert built == constructed and hash(built) == hash(constructed) and repr(built) == repr(constructed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.location = "/elsewhere"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.location
    # Python 3.11's frozen, slotted dataclasses refuse a new attribute with a TypeError (their
    # __setattr__ names the class before slots=True re-created it), not FrozenInstanceError:
    # refused all the same, and nothing sets one.
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):
        built.other = 1
    assert copy.copy(built) == built and copy.deepcopy(built) == built
    with pytest.raises(TypeError):
        m.positional_builder(cls)(*values[:-1])


def test_positional_builder_refuses_what_it_cannot_build():
    with pytest.raises(TypeError):
        m.positional_builder(m.DmfA)  # not slotted
    with pytest.raises(TypeError):
        m.positional_builder(m.SocialRisk)
