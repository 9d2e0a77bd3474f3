"""Dependencies point inward: channels -> services -> domain.

``domain`` imports no infrastructure (no SQLAlchemy, lxml, signxml, and none
of store/xmlio/services/channels); ``store`` and ``xmlio`` never import
services or channels; services never import channels.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "declarations"

FORBIDDEN = {
    "domain": ("sqlalchemy", "lxml", "signxml", "alembic", "declarations.store", "declarations.xmlio",
               "declarations.services", "declarations.channels", "declarations.bootstrap"),
    "store": ("declarations.services", "declarations.channels", "declarations.xmlio", "lxml"),
    "xmlio": ("declarations.services", "declarations.channels", "declarations.store", "sqlalchemy"),
    "services": ("declarations.channels",),
}


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_inward(layer):
    offences = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                offences.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offences == []


def test_nothing_else_parses_outside_input():
    """The one hardened parser: no module but xmlio/parsing.py calls etree.fromstring / etree.parse.

    xmlio/schemas.py is the one other reader: it loads the project's own XSD
    files from xsd/, never anything received."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() in ("xmlio/parsing.py", "xmlio/schemas.py"):
            continue
        text = path.read_text()
        for call in ("etree.fromstring(", "etree.parse(", "etree.XML(", "etree.iterparse("):
            if call in text:
                offences.append(f"{path.relative_to(PACKAGE.parent)}: {call}")
    assert offences == []
