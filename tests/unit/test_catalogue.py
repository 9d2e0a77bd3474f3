"""The anomaly catalogue is the contract's: same codes, same severities."""

import re
from pathlib import Path

import pytest

from declarations.domain.anomalies import CATALOGUE, Severity
from declarations.domain.scenarios import CATALOGUE as SCENARIOS

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "declarations.md"


@pytest.mark.skipif(not SPEC.exists(), reason="the published contract (../shared/spec) is not beside the checkout")
def test_catalogue_matches_the_spec_tables():
    rows = re.findall(r"^\| ([CDMRS]\d{3}) \| ([BW]) \|", SPEC.read_text(), flags=re.M)
    spec = {code: Severity.BLOCKING if sev == "B" else Severity.WARNING for code, sev in rows}
    assert {code: sev for code, (sev, _) in CATALOGUE.items()} == spec


def test_scenario_codes_and_elements_are_unique():
    assert len({s.code for s in SCENARIOS}) == len({s.element for s in SCENARIOS}) == len(SCENARIOS)
