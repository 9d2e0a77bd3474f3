"""Load and export the reference directory (operations.md: directory load|export)."""

from __future__ import annotations

from lxml import etree
from sqlalchemy.engine import Engine

from declarations.domain.directory import Directory
from declarations.exceptions import DirectoryRefused, InputRefused
from declarations.store.directory import read_directory, replace_directory
from declarations.xmlio import directory_xml, parsing, schemas


def parse_directory(data: bytes) -> Directory:
    """Bytes -> Directory, or DirectoryRefused saying everything that is wrong."""
    try:
        root = parsing.parse(data)
    except InputRefused as error:
        raise DirectoryRefused(str(error)) from None
    problems = [f"{p.location}: {p.message}" for p in schemas.problems(root)]
    if problems:
        raise DirectoryRefused("the directory is not valid:\n  " + "\n  ".join(problems))
    directory = directory_xml.decode(root)
    incoherent = directory.problems()
    if incoherent:
        raise DirectoryRefused("the directory is not coherent:\n  " + "\n  ".join(incoherent))
    return directory


def load(engine: Engine, data: bytes) -> Directory:
    """Make the stored directory equal to the document, in one transaction."""
    directory = parse_directory(data)
    with engine.begin() as connection:
        replace_directory(connection, directory)
    return directory


def export(engine: Engine) -> bytes:
    with engine.connect() as connection:
        directory = read_directory(connection)
    return etree.tostring(directory_xml.encode(directory), xml_declaration=True, encoding="UTF-8",
                          pretty_print=True)
