"""Two independent validators agree on the committed XSDs: for every fixture
case that parses, lxml (the engine's validator) and xmlschema say the same
valid / invalid. xmlschema is 25-60x slower than lxml, so it lives only here."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import pytest
import xmlschema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_fixture_cases import CASES, read_manifest  # noqa: E402

from declarations.exceptions import MalformedXml  # noqa: E402
from declarations.xmlio import parsing, schemas  # noqa: E402

PARSEABLE = [line for line in read_manifest() if "C009" not in line.codes]


@lru_cache(maxsize=None)
def second_validator(tag: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(schemas.XSD_DIR / schemas.SCHEMA_FILES[tag]), allow="local")


@pytest.mark.parametrize("line", PARSEABLE, ids=lambda line: line.file)
def test_lxml_and_xmlschema_agree(line):
    path = CASES / line.file
    try:
        root = parsing.parse(path.read_bytes())
    except MalformedXml:
        pytest.fail(f"{line.file} does not parse")
    if root.tag not in schemas.SCHEMA_FILES:
        pytest.skip("not a document of this contract")
    lxml_valid = schemas.problems(root) == []
    assert second_validator(root.tag).is_valid(str(path)) == lxml_valid
    if "C005" in line.codes:
        assert not lxml_valid
    if line.status != "REFUSED":
        assert lxml_valid
