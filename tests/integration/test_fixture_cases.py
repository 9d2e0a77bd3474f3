"""The fixture corpus (fixtures/cases/manifest.txt), case by case, on SQLite and PostgreSQL.

Each manifest line: submit its AFTER files in a fresh store, then the case;
the status and the exact multiset of anomaly codes must be the manifest's.
The corpus must cover every code of the anomaly catalogue (except the ones
listed in NOT_IN_MANIFEST, tested below), and every file under
fixtures/cases/ must be in the manifest.

The files are made by ``python fixtures/make_cases.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from declarations.domain.anomalies import CATALOGUE
from declarations.store import tables as t

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "fixtures" / "cases"
MANIFEST = CASES / "manifest.txt"
STATUSES = {"ACCEPTED", "ACCEPTED_WITH_WARNINGS", "REFUSED"}
ROOTS = {"DIMONA": "/Dimona", "DMFA": "/DmfA", "DRS": "/SocialRisk"}
MAX_BYTES = 5 * 1024 * 1024   # operations.md: DECLARATIONS_MAX_MESSAGE_BYTES default

# Codes a manifest line cannot show, each with the test below that covers it.
NOT_IN_MANIFEST = {
    "C008": "test_c008_declaration_of_another_sender_in_a_batch",
    "C010": "test_c010_larger_than_the_limit",
}


@dataclass(frozen=True)
class Line:
    file: str
    status: str
    codes: tuple[str, ...]
    after: tuple[str, ...]
    number: int


def read_manifest() -> list[Line]:
    lines = []
    for number, text in enumerate(MANIFEST.read_text(encoding="utf-8").splitlines(), 1):
        text = text.split("#", 1)[0].strip()
        if not text:
            continue
        columns = text.split()
        assert len(columns) == 4, f"manifest line {number}: FILE STATUS CODES AFTER, got {columns}"
        file, status, codes, after = columns
        assert status in STATUSES, f"manifest line {number}: unknown status {status}"
        code_list = () if codes == "-" else tuple(codes.split(","))
        assert list(code_list) == sorted(code_list), f"manifest line {number}: CODES not sorted"
        lines.append(Line(file, status, code_list, () if after == "-" else tuple(after.split(",")), number))
    return lines


LINES = read_manifest()
BY_FILE = {line.file: line for line in LINES}


def submit(app, file: str):
    return app.ingest.submit((CASES / file).read_bytes(), channel="CLI")


def codes_of(outcome) -> list[str]:
    return sorted(a.code for a in outcome.anomalies)


def check_locations(outcome, file: str) -> None:
    for a in outcome.anomalies:
        if a.code == "C005":  # declarations.md: "Location (always given)"
            assert a.location, f"{file}: C005 without a Location"
        if a.code == "R005":  # "its Location naming the field"
            assert a.location and a.location.rsplit("/", 1)[-1] in (
                "QuarterlyGrossRemun", "WorkingTimeFraction", "JointCommissionNbr"), (file, a.location)
        if a.code[0] in "DMR" or a.code in ("C001", "C002", "C003", "C004", "C006", "C007", "S005"):
            # From stage 3 on, every anomaly points into the declaration.
            root = ROOTS[outcome.kind]
            assert a.location and (a.location == root or a.location.startswith(root + "/")), \
                f"{file}: {a.code} at {a.location!r}"
    r005 = [a.location for a in outcome.anomalies if a.code == "R005"]
    assert len(r005) == len(set(r005)), f"{file}: two R005 for one field"


# --- the manifest -------------------------------------------------------------------------------

@pytest.mark.parametrize("line", LINES, ids=[line.file for line in LINES])
def test_case(app, line: Line):
    for before in line.after:
        assert before in BY_FILE, f"{line.file}: AFTER file {before} is not in the manifest"
        outcome = submit(app, before).outcome
        expect_refused = BY_FILE[before].status == "REFUSED"
        assert (outcome.status == "REFUSED") == expect_refused, (
            f"{line.file}: AFTER file {before} gave {outcome.status} {codes_of(outcome)}")
    receipt = submit(app, line.file)
    outcome = receipt.outcome
    assert (outcome.status, codes_of(outcome)) == (line.status, list(line.codes)), \
        "\n".join(f"{a.code} {a.location}: {a.message}" for a in outcome.anomalies)
    assert not receipt.retry
    assert outcome.declaration_id == len(line.after) + 1  # every received message is numbered
    check_locations(outcome, line.file)
    # declarations.md, Result: "PeriodId? (accepted DimonaIn)"
    dimona_in = outcome.kind == "DIMONA" and b"<DimonaIn>" in (CASES / line.file).read_bytes()
    assert (outcome.period_id is not None) == (dimona_in and outcome.status != "REFUSED"), outcome.period_id


# --- the manifest against the catalogue and the folder -------------------------------------------

def test_every_catalogue_code_has_an_invalid_case():
    covered = {code for line in LINES for code in line.codes}
    assert set(NOT_IN_MANIFEST) <= set(CATALOGUE)
    missing = set(CATALOGUE) - covered - set(NOT_IN_MANIFEST)
    assert not missing, f"codes with no case in the manifest: {sorted(missing)}"
    assert not covered - set(CATALOGUE), f"unknown codes in the manifest: {sorted(covered - set(CATALOGUE))}"
    for code, test_name in NOT_IN_MANIFEST.items():
        assert test_name in globals(), f"{code}: {test_name} does not exist"


def test_every_kind_has_valid_cases():
    for folder in ("dimona", "dmfa", "drs", "common"):
        assert any(line.file.startswith(folder + "/") and line.status == "ACCEPTED" for line in LINES), folder


def test_every_file_is_in_the_manifest_and_every_line_has_its_file():
    on_disk = {str(p.relative_to(CASES)) for p in CASES.rglob("*") if p.is_file() and p.name != "manifest.txt"}
    listed = [line.file for line in LINES]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert not on_disk - set(listed), f"not in the manifest: {sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"in the manifest, no such file: {sorted(set(listed) - on_disk)}"


# --- what a file cannot carry ---------------------------------------------------------------------

def _padded(size: int) -> bytes:
    data = (CASES / "dimona" / "in-ok.xml").read_bytes()
    return data + b" " * (size - len(data))   # whitespace after the root element: still well-formed


def test_c010_larger_than_the_limit(app):
    assert app.settings.max_message_bytes == MAX_BYTES
    outcome = app.ingest.submit(_padded(MAX_BYTES + 1), channel="CLI").outcome
    assert (outcome.status, codes_of(outcome)) == ("REFUSED", ["C010"])
    outcome = app.ingest.submit(_padded(MAX_BYTES), channel="CLI").outcome  # "more than": the limit is allowed
    assert (outcome.status, codes_of(outcome)) == ("ACCEPTED", [])


def test_c008_declaration_of_another_sender_in_a_batch(app):
    data = (CASES / "dimona" / "in-ok.xml").read_bytes()   # Header SenderId 1001
    outcome = app.ingest.submit(data, channel="BATCH", batch_sender_id="2001").outcome
    assert (outcome.status, codes_of(outcome)) == ("REFUSED", ["C008"])
    assert outcome.anomalies[0].location == "/Dimona/Header/SenderId"
    other = (CASES / "common" / "mandate-dimona-ok.xml").read_bytes()   # SenderId 2001, as the batch
    outcome = app.ingest.submit(other, channel="BATCH", batch_sender_id="2001").outcome
    assert (outcome.status, codes_of(outcome)) == ("ACCEPTED", [])


@pytest.mark.parametrize("file", ["dimona/in-ok.xml", "dimona/d001-in.xml"])
def test_retry_returns_the_first_result_and_stores_nothing(app, file):
    first = submit(app, file)
    with app.engine.connect() as c:
        rows = c.execute(select(func.count()).select_from(t.declaration)).scalar_one()
    again = submit(app, file)
    assert again.retry and not first.retry
    assert (again.outcome.declaration_id, again.outcome.status, again.outcome.received_at) == \
        (first.outcome.declaration_id, first.outcome.status, first.outcome.received_at)
    assert again.result_bytes == first.result_bytes
    with app.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.declaration)).scalar_one() == rows == 1


def test_a_message_refused_before_its_signature_check_is_no_retry(app):
    first = submit(app, "common/s003-stranger.xml")
    again = submit(app, "common/s003-stranger.xml")
    assert not again.retry
    assert again.outcome.declaration_id == first.outcome.declaration_id + 1   # each received message is kept
    assert codes_of(again.outcome) == ["S003"]
