"""The tag-filtered streaming reader of the batch inbox (parsing.stream_reported_children, via
services/batch_scan.stream_children) keeps the contract of
``parsing.stream_children``: the same elements, in the same order, with the same refusals."""

from __future__ import annotations

import io

import pytest

from declarations import ns
from declarations.exceptions import MalformedXml
from declarations.services.batch_scan import stream_children as _stream_children
from declarations.xmlio import parsing

B, D, DI = ns.BATCH, ns.DMFA, ns.DIMONA

CASES = {
    "known, unknown, nested, comments, PIs": (
        f'<Batch xmlns="{B}"><BatchHeader><BatchId>1</BatchId></BatchHeader><DmfA xmlns="{D}"><X/></DmfA>'
        f'<!-- c --><Foo><DmfA xmlns="{D}"/></Foo><Dimona xmlns="{DI}"/><?pi x?><Bar/></Batch>'),
    "another root": f'<Lot xmlns="{B}"><DmfA xmlns="{D}"/></Lot>',
    "another root, nothing known": "<Lot><A/></Lot>",
    "a known name nested in a known one": f'<Batch xmlns="{B}"><DmfA xmlns="{D}"><Dimona xmlns="{DI}"/></DmfA>'
                                          f'text<Zed/>\n</Batch>',
    "unknown elements last": f'<Batch xmlns="{B}"><DmfA xmlns="{D}"/><Zed/><Zed2><DmfA2/></Zed2></Batch>',
    "not well-formed after a declaration": f'<Batch xmlns="{B}"><DmfA xmlns="{D}"/><Broken></Batch>',
    "a DOCTYPE": f'<!DOCTYPE Batch><Batch xmlns="{B}"/>',
    "empty": "",
    "a big one": f'<Batch xmlns="{B}">' + "".join(f'<DmfA xmlns="{D}"><N>{i}</N></DmfA>' for i in range(3000))
                 + "<Late/></Batch>",
}


def read(reader, data: str):
    out = []
    try:
        for element in reader(io.BytesIO(data.encode())):
            out.append((element.tag, [c.tag for c in element], element.findtext(f"{{{D}}}N")))
    except MalformedXml as error:
        out.append(("refused", error.message, error.location))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_as_stream_children(name):
    data = CASES[name]
    assert read(_stream_children, data) == read(parsing.stream_children, data)
