"""The XSDs of the contract and the registry that applies them.

Fixtures are files under ``tests/data/xsd``: every ``valid/*.xml`` must pass
both lxml (through ``schemas.problems``) and xmlschema, an independent
second validator; every line of ``MANIFEST`` names an invalid file, the
Location lxml must report and a fragment of its message, and xmlschema must
refuse that file too. Adding a case is adding a file and a line.

Declarations need a ``ds:Signature`` to be valid; the fixtures carry a
well-formed dummy one (fake base64 values): the XSD checks its shape, not
its cryptography. Real signatures made by signxml and xmlsec1 are checked
against the local XMLDSig schema at the end.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import subprocess
import threading
from functools import lru_cache
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from declarations import ns
from declarations.xmlio import schemas

DATA = Path(__file__).resolve().parents[1] / "data" / "xsd"
VALID = sorted((DATA / "valid").glob("*.xml"))
DS = ns.DS


# --- helpers (kept here: tests/ has no shared helper module of ours) -------

def _parse(path: Path) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.parse(str(path), parser).getroot()


@lru_cache(maxsize=None)
def _second_validator(filename: str) -> xmlschema.XMLSchema:
    # allow="local": local files only, never the network.
    return xmlschema.XMLSchema(str(schemas.XSD_DIR / filename), allow="local")


def _second_opinion(root: etree._Element) -> list[str]:
    schema = _second_validator(schemas.SCHEMA_FILES[root.tag])
    return [str(error.reason) for error in schema.iter_errors(etree.ElementTree(copy.deepcopy(root)))]


def _manifest() -> list[tuple[str, str, str]]:
    cases = []
    for line in (DATA / "MANIFEST").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, location, fragment = (part.strip() for part in line.split(" | ", 2))
        cases.append((name, location, fragment))
    return cases


def _set(root: etree._Element, local_name: str, value: str, nth: int = 0) -> etree._Element:
    element = [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == local_name][nth]
    element.text = value
    return root


# --- the schema files -----------------------------------------------------

XSD_FILES = sorted(schemas.XSD_DIR.glob("*.xsd"))


def test_the_xsd_folder_is_found():
    assert schemas.XSD_DIR.is_dir()
    assert {p.name for p in XSD_FILES} >= {
        "common.xsd", "xmldsig-core-schema.xsd", "dimona.xsd", "dmfa.xsd", "drs.xsd",
        "batch.xsd", "result.xsd", "directory.xsd"}


@pytest.mark.parametrize("path", XSD_FILES, ids=lambda p: p.name)
def test_every_xsd_compiles_with_lxml_and_xmlschema(path: Path):
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    etree.XMLSchema(etree.parse(str(path), parser))
    xmlschema.XMLSchema(str(path), allow="local")


@pytest.mark.parametrize("path", XSD_FILES, ids=lambda p: p.name)
def test_no_xsd_carries_a_dtd(path: Path):
    text = path.read_text(encoding="utf-8")
    assert "<!DOCTYPE" not in text and "<!ENTITY" not in text


def test_every_registered_root_is_a_global_element_of_its_schema():
    for tag, filename in schemas.SCHEMA_FILES.items():
        schema = _second_validator(filename)
        assert tag in schema.maps.elements, tag
    for tag in ns.KIND_BY_ROOT:
        assert tag in schemas.SCHEMA_FILES


def test_schema_for_compiles_once_and_refuses_unknown_tags():
    tag = ns.qn(ns.DMFA, "DmfA")
    assert schemas.schema_for(tag) is schemas.schema_for(tag)
    assert isinstance(schemas.schema_for(tag), etree.XMLSchema)
    with pytest.raises(KeyError):
        schemas.schema_for(ns.qn(ns.DMFA, "Dmfa"))


# --- valid documents ------------------------------------------------------

@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_document_passes_both_validators(path: Path):
    root = _parse(path)
    assert schemas.problems(root) == []
    assert _second_opinion(root) == []


def test_every_root_has_a_valid_sample():
    roots = {_parse(path).tag for path in VALID}
    assert roots == set(schemas.SCHEMA_FILES)


def test_every_scenario_of_the_catalogue_has_a_valid_sample():
    from declarations.domain.scenarios import CATALOGUE
    present = set()
    for path in VALID:
        root = _parse(path)
        if root.tag == ns.qn(ns.DRS, "SocialRisk"):
            present.update(etree.QName(child).localname for child in root)
    assert {scenario.element for scenario in CATALOGUE} <= present


# --- invalid documents ----------------------------------------------------

@pytest.mark.parametrize("name,location,fragment", _manifest(), ids=[c[0] for c in _manifest()])
def test_invalid_document_is_located(name: str, location: str, fragment: str):
    root = _parse(DATA / name)
    found = schemas.problems(root)
    assert found, "lxml accepted it"
    assert any(p.location == location and fragment in p.message for p in found), found
    assert _second_opinion(root), "xmlschema accepted it"


def test_every_invalid_file_is_in_the_manifest():
    listed = {name for name, _, _ in _manifest()}
    on_disk = {f"invalid/{p.name}" for p in (DATA / "invalid").glob("*.xml")}
    assert listed == on_disk


def test_second_natural_person_with_a_bad_working_days_system():
    root = _set(_parse(DATA / "valid" / "dmfa.xml"), "WorkingDaysSystem", "800", nth=1)
    assert schemas.problems(root) == [schemas.SchemaProblem(
        "/DmfA/NaturalPerson[2]/WorkerRecord[1]/Occupation[1]/WorkingDaysSystem",
        "Element 'WorkingDaysSystem': [facet 'maxInclusive'] The value '800' is greater than the maximum "
        "value allowed ('700').")]


def test_a_wrong_check_digit_is_not_an_xsd_matter():
    # identifiers.md: the XSD only counts digits; the check digits are C001-C003.
    root = _parse(DATA / "valid" / "dimona_in.xml")
    _set(root, "INSS", "85073100131")
    _set(root, "NOSSRegistrationNbr", "123456748")
    _set(root, "EnterpriseNbr", "0403179608")
    assert schemas.problems(root) == []


@pytest.mark.parametrize("value", ["8507310013", "850731001300", "8507310013a", "85.07.31-001.30", " 85073100130"])
def test_an_inss_of_the_wrong_form_is_an_xsd_error(value: str):
    root = _set(_parse(DATA / "valid" / "dimona_in.xml"), "INSS", value)
    assert [p.location for p in schemas.problems(root)] == ["/Dimona/DimonaIn/INSS"]


@pytest.mark.parametrize("value,valid", [
    ("2025-07-01", True), ("2024-02-29", True), ("2025-02-29", False), ("2025-07-01Z", False),
    ("2025-07-01+02:00", False), ("2025-07-01T00:00:00", False), ("25-07-01", False)])
def test_dates_have_no_time_zone(value: str, valid: bool):
    root = _set(_parse(DATA / "valid" / "dimona_in.xml"), "StartingDate", value)
    assert (schemas.problems(root) == []) is valid


@pytest.mark.parametrize("value,valid", [
    ("2025-04-10T09:30:00Z", True), ("2025-04-10T09:30:00.123+02:00", True), ("2025-04-10T09:30:00-05:00", True),
    ("2025-04-10T09:30:00", False), ("2025-04-10T24:00:00Z", False), ("2025-04-10", False)])
def test_date_times_have_a_time_zone(value: str, valid: bool):
    root = _set(_parse(DATA / "valid" / "dimona_in.xml"), "CreationDateTime", value)
    assert (schemas.problems(root) == []) is valid


@pytest.mark.parametrize("value,valid", [("0", True), ("9223372036854775807", True), ("-1", False),
                                         ("9223372036854775808", False), ("12.50", False)])
def test_amounts_are_non_negative_cents(value: str, valid: bool):
    root = _set(_parse(DATA / "valid" / "dmfa.xml"), "NetOwedAmount", value)
    assert (schemas.problems(root) == []) is valid


def test_offline_validation_declaration_id_zero_is_valid():
    root = _set(_parse(DATA / "valid" / "declaration_result.xml"), "DeclarationId", "0")
    assert schemas.problems(root) == []


def test_a_result_echoes_a_malformed_header_and_stays_valid():
    # A declaration refused for its MessageId still gets a schema-valid result.
    root = _parse(DATA / "valid" / "declaration_result.xml")
    _set(root, "MessageId", "not a valid MessageId, and longer than sixty-four characters by far")
    _set(root, "SenderId", "abc")
    assert schemas.problems(root) == []


def test_messages_carry_no_namespace_uris():
    root = _parse(DATA / "invalid" / "drs_unknown_scenario.xml")
    (problem,) = schemas.problems(root)
    assert "urn:" not in problem.message and "{" not in problem.message
    assert "EndOfEmployment" in problem.message


def test_several_errors_are_all_reported_in_document_order():
    root = _parse(DATA / "valid" / "dmfa.xml")
    _set(root, "INSS", "1", nth=0)
    _set(root, "RemunCode", "999", nth=1)
    assert [p.location for p in schemas.problems(root)] == [
        "/DmfA/NaturalPerson[1]/INSS",
        "/DmfA/NaturalPerson[2]/WorkerRecord[1]/Occupation[1]/Remun[1]/RemunCode"]


# --- roots and carriers ---------------------------------------------------

def test_unknown_root():
    (problem,) = schemas.problems(etree.fromstring(b"<Declaration xmlns='urn:other'/>"))
    assert problem.location == "/"
    assert "Dimona" in problem.message and "DmfA" in problem.message and "SocialRisk" in problem.message


def test_known_name_in_the_wrong_namespace():
    (problem,) = schemas.problems(etree.fromstring(b"<DmfA xmlns='urn:declarations:dmfa:v2'/>"))
    assert problem.location == "/"
    assert "urn:declarations:dmfa:v1" in problem.message


def test_a_declaration_taken_out_of_a_batch_is_located_from_its_own_root():
    batch = _parse(DATA / "invalid" / "batch_item_bad_working_days_system.xml")
    dmfa = batch.find(ns.qn(ns.DMFA, "DmfA"))
    (problem,) = schemas.problems(dmfa)
    assert problem.location == "/DmfA/NaturalPerson[2]/WorkerRecord[1]/Occupation[1]/WorkingDaysSystem"
    assert dmfa.getparent() is batch  # validated as a copy: the carrier is untouched
    # The other items of the same file are valid on their own.
    for item in batch[1:]:
        if item is not dmfa:
            assert schemas.problems(item) == []


def test_the_batch_header_alone():
    batch = _parse(DATA / "valid" / "batch.xml")
    header = batch.find(ns.qn(ns.BATCH, "BatchHeader"))
    assert schemas.problems(header) == []
    _set(header, "ItemCount", "three")
    assert [p.location for p in schemas.problems(header)] == ["/BatchHeader/ItemCount"]


SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def _in_soap_body(declaration: bytes, *, hoist_prefixes: bool) -> etree._Element:
    """A SOAP request carrying ``declaration``, read as one document.

    With ``hoist_prefixes`` the declaration's prefix declarations are moved
    to the Envelope, as a SOAP stack may write them: the Dimona inherits
    its namespaces from the carrier."""
    declaration = declaration.split(b"?>", 1)[1] if declaration.startswith(b"<?xml") else declaration
    carrier_ns = ""
    if hoist_prefixes:
        for prefix, uri in (("dim", ns.DIMONA), ("ds", DS)):
            declaration = declaration.replace(f' xmlns:{prefix}="{uri}"'.encode(), b"")
            carrier_ns += f" xmlns:{prefix}='{uri}'"
    text = (f"<soap:Envelope xmlns:soap='{SOAP}'{carrier_ns}><soap:Header/><soap:Body>"
            f"<w:SubmitDimona xmlns:w='{ns.DIMONA}'>").encode() + declaration.strip() + \
        b"</w:SubmitDimona></soap:Body></soap:Envelope>"
    return etree.fromstring(text)


@pytest.mark.parametrize("prefixed", [False, True], ids=["default-namespace", "prefixed"])
def test_a_declaration_inside_a_soap_body(prefixed: bool):
    text = (DATA / "invalid" / "dimona_starting_date_with_zone.xml").read_bytes()
    if prefixed:
        # The same document written with a prefix: dim:Dimona, dim:Header, ...
        root = etree.fromstring(text)
        text = etree.tostring(_with_prefix(root, "dim"))
    envelope = _in_soap_body(text, hoist_prefixes=prefixed)
    dimona = next(envelope.iter(ns.qn(ns.DIMONA, "Dimona")))
    assert (dimona.prefix == "dim") is prefixed
    assert [p.location for p in schemas.problems(dimona)] == ["/Dimona/DimonaIn/StartingDate"]


def _with_prefix(root: etree._Element, prefix: str) -> etree._Element:
    namespace = etree.QName(root).namespace
    clone = etree.Element(root.tag, nsmap={prefix: namespace, "ds": DS})

    def copy_into(source, target):
        target.text = source.text
        for key, value in source.attrib.items():
            target.set(key, value)
        for child in source:
            if not isinstance(child.tag, str):
                continue
            copy_into(child, etree.SubElement(target, child.tag))
    copy_into(root, clone)
    return clone


@pytest.mark.parametrize("name", ["dmfa_working_days_system_701.xml", "dmfa_service_code_003.xml",
                                  "dimona_transform_without_algorithm.xml", "directory_mandate_kind_other.xml"])
def test_the_location_does_not_depend_on_namespace_prefixes(name: str):
    # libxml2 names default-namespace elements "*" and prefixed ones "p:Name":
    # both must give the contract's location.
    root = _parse(DATA / "invalid" / name)
    prefixed = etree.fromstring(etree.tostring(_with_prefix(root, "p")))
    assert prefixed.prefix == "p"
    assert schemas.problems(prefixed) == schemas.problems(root) != []


def test_repeated_elements_count_among_their_own_name():
    # Service[2] is the second Service, whatever Remun or other siblings surround it.
    root = _parse(DATA / "invalid" / "dmfa_service_code_003.xml")
    assert [p.location for p in schemas.problems(root)] == [
        "/DmfA/NaturalPerson[1]/WorkerRecord[1]/Occupation[1]/Service[2]/ServiceCode"]


# --- concurrency ----------------------------------------------------------

def test_concurrent_validations_do_not_mix_their_errors():
    cases = [(DATA / name, location) for name, location, _ in _manifest()[:12]]
    cases.append((DATA / "valid" / "dmfa.xml", None))
    documents = [(_parse(path), location) for path, location in cases]
    failures: list[str] = []
    barrier = threading.Barrier(8)

    def work(offset: int):
        barrier.wait()
        for i in range(40):
            root, location = documents[(offset + i) % len(documents)]
            found = [p.location for p in schemas.problems(root)]
            expected_ok = (found == []) if location is None else (location in found)
            if not expected_ok:
                failures.append(f"{location}: {found}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- real signatures against the local XMLDSig schema ---------------------

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _key_and_certificate(kind: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"xsd test {kind}")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def _unsigned(path: Path) -> etree._Element:
    root = _parse(path)
    root.remove(root.find(f"{{{DS}}}Signature"))
    return root


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("with_certificate", [True, False], ids=["X509Data", "KeyValue"])
@pytest.mark.parametrize("sample", ["dimona_in.xml", "dmfa.xml", "drs_work_accident.xml"])
def test_signxml_signatures_are_schema_valid(kind: str, with_certificate: bool, sample: str):
    import signxml

    key_pem, cert_pem = _key_and_certificate(kind)
    signer = signxml.XMLSigner(
        method=signxml.methods.enveloped,
        signature_algorithm="rsa-sha256" if kind == "rsa" else "ecdsa-sha256",
        digest_algorithm="sha256", c14n_algorithm=EXC_C14N)
    signed = signer.sign(_unsigned(DATA / "valid" / sample), key=key_pem, cert=cert_pem if with_certificate else None)
    root = etree.fromstring(etree.tostring(signed))
    assert etree.QName(root[-1]).localname == "Signature"
    assert schemas.problems(root) == []
    assert _second_opinion(root) == []


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed")
def test_xmlsec1_signatures_are_schema_valid(tmp_path: Path):
    key_pem, cert_pem = _key_and_certificate("rsa")
    (tmp_path / "key.pem").write_bytes(key_pem)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    # The fixture's dummy Signature, emptied, is an xmlsec1 template.
    template = _parse(DATA / "valid" / "dmfa.xml")
    for name in ("DigestValue", "SignatureValue", "X509Certificate"):
        template.find(f".//{{{DS}}}{name}").text = None
    (tmp_path / "template.xml").write_bytes(etree.tostring(template, xml_declaration=True, encoding="UTF-8"))
    subprocess.run(["xmlsec1", "--sign", "--privkey-pem", f"{tmp_path / 'key.pem'},{tmp_path / 'cert.pem'}",
                    "--output", str(tmp_path / "signed.xml"), str(tmp_path / "template.xml")],
                   check=True, capture_output=True, timeout=60)
    root = _parse(tmp_path / "signed.xml")
    assert root.find(f".//{{{DS}}}SignatureValue").text.strip()
    assert schemas.problems(root) == []
    assert _second_opinion(root) == []
