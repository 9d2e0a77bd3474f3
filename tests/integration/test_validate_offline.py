"""The offline pre-submission check (``declarations validate``) on the fixture corpus.

operations.md: ``validate`` runs every check that needs neither the store nor
the directory. So on every case of fixtures/cases/manifest.txt it must give
the manifest's codes minus the ones that read stored data or the directory,
and nothing else; it stores nothing and answers DeclarationId 0.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from declarations.services.validate import validate

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "fixtures" / "cases"
FIXTURE_NOW = dt.datetime.fromisoformat("2025-11-15T10:00:00+01:00")   # as tests/conftest.py
MAX_BYTES = 5 * 1024 * 1024

# Codes that need the store or the directory: offline, they are never found.
NEEDS_STORE_OR_DIRECTORY = {
    "D002", "D003", "D004", "D008",                  # other periods, the period acted on, the quota
    "M002", "M010",                                  # the current DmfA, the Dimona periods
    "R002", "R005", "R006", "R007",                  # Dimona periods, derived ReferenceData, earlier risks
    "C004", "C006", "C007", "C008", "S003", "S005",  # directory, message keys, batch
}
# Where offline differs otherwise. Some codes are document-local in one form and not
# in another: an Update's D001 and an Out's D011 compare with the stored period's
# dates; M003 is in the document for "REPLACEMENT without ReplacesDeclarationId /
# ORIGINAL with one", but "naming one that is not the current DmfA" needs the store.
# And a stored-data code that stops a stage online lets the later stages run offline.
OFFLINE_OVERRIDES = {
    "dimona/d001-update.xml": [],
    "dimona/d011-out-before-start.xml": [],
    "common/c006-before-c005.xml": ["C005"],   # C006 stops at stage 2 online; offline the XSD runs
    "dmfa/m003-replaces-not-a-dmfa.xml": [],
    "dmfa/m003-replaces-replaced.xml": [],
    "dmfa/m003-replaces-refused.xml": [],
}


def read_manifest() -> list[tuple[str, list[str]]]:
    rows = []
    for text in (CASES / "manifest.txt").read_text(encoding="utf-8").splitlines():
        text = text.split("#", 1)[0].strip()
        if text:
            file, _status, codes, _after = text.split()
            rows.append((file, [] if codes == "-" else codes.split(",")))
    return rows


def offline(file: str, **kwargs):
    kwargs.setdefault("max_bytes", MAX_BYTES)
    return validate((CASES / file).read_bytes(), now=FIXTURE_NOW, **kwargs)


def codes(outcome) -> list[str]:
    return sorted(a.code for a in outcome.anomalies)


@pytest.mark.parametrize(("file", "expected"), [
    ("dimona/d001-in.xml", ["D001"]),
    ("dimona/in-since-april.xml", ["D005"]),
    ("dimona/d010-ext-3-days.xml", ["D010"]),
    ("dmfa/m008-net-owed.xml", ["M008"]),
    ("dmfa/m012-manual-base-not-108.xml", ["M012", "M012"]),
    ("dmfa/m003-original-with-id.xml", ["M003"]),
    ("drs/r004-event-too-far.xml", ["R004"]),
    ("common/c001-inss-check-digits.xml", ["C001"]),
    ("common/c005-inss-10-digits.xml", ["C005"]),
    ("common/c009-doctype-entity.xml", ["C009"]),
    ("common/s002-tampered.xml", ["S002"]),
    ("common/s004-expired-certificate.xml", ["S004"]),   # the certificate in the document, and its dates
])
def test_document_local_rules_give_the_same_codes(file, expected):
    outcome = offline(file)
    assert codes(outcome) == expected
    assert outcome.declaration_id == 0


@pytest.mark.parametrize("file", [
    "dimona/d002-in.xml",                    # overlap with a stored period
    "dimona/d003-unknown-period.xml",        # the period is not known offline
    "dmfa/m010-no-dimona.xml",
    "drs/r002-no-dimona.xml",
    "drs/r007-no-dmfa.xml",
    "common/c004-unknown-employer.xml",      # the directory
    "common/s003-stranger.xml",              # who registered which certificate
    "common/s005-no-mandate.xml",
])
def test_stored_data_and_directory_rules_give_nothing(file):
    outcome = offline(file)
    assert (outcome.status, codes(outcome)) == ("ACCEPTED", [])


def test_c010_with_the_configured_limit():
    data = (CASES / "dimona" / "in-ok.xml").read_bytes()
    assert codes(validate(data, now=FIXTURE_NOW, max_bytes=len(data) - 1)) == ["C010"]
    assert codes(validate(data, now=FIXTURE_NOW, max_bytes=len(data))) == []


def test_every_case_offline_gives_the_manifest_codes_that_need_no_store():
    wrong = []
    for file, manifest_codes in read_manifest():
        expected = OFFLINE_OVERRIDES.get(file, [c for c in manifest_codes if c not in NEEDS_STORE_OR_DIRECTORY])
        found = codes(offline(file))
        if found != expected:
            wrong.append(f"{file}: offline {found}, expected {expected}")
    assert not wrong, "\n".join(wrong)
