"""ChildBytes (xmlio/batch_slices.py) cuts each declaration of a batch file out of the file's bytes,
only where the cut is certain. Oracle: lxml itself. Every cut it gives, parsed on its own, is the element lxml
reports (same canonical form), and is exactly the bytes between its tags in the file; where it is not
certain it gives none, for that declaration and every later one."""

from __future__ import annotations

import gzip
import io

import pytest
from lxml import etree

from declarations import ns
from declarations.services.batch_scan import stream_items
from declarations.xmlio.batch_slices import ChildBytes

HEAD = b'<BatchHeader><BatchId>B1</BatchId><SenderId>2001</SenderId></BatchHeader>'
DMFA = ('<DmfA xmlns="urn:declarations:dmfa:v1"><Quarter>20253</Quarter><Note a="x &gt; y" b=\'1\'>'
        'caf\u00e9 &amp; &#233; <Empty/></Note>{inner}</DmfA>')
DIMONA = '<Dimona xmlns="urn:declarations:dimona:v1" ><Header>{inner}</Header></Dimona >'


def batch(*children: str, root: str = f'<Batch xmlns="{ns.BATCH}">', declaration: str = '<?xml version="1.0"?>\n',
          between: str = "\n  ") -> bytes:
    body = between.join(children)
    return (declaration + root + "\n  ").encode() + HEAD + ("\n  " + body + "\n</Batch>\n").encode()


def _reading(element) -> list:
    """What a reader of the element sees: tags, attributes, text, tails (but the root's, outside it)."""
    return [(e.tag, sorted(e.attrib.items()), e.text, e.tail if e is not element else None) for e in element.iter()]


def cut(data: bytes, tmp_path, gz: bool = False) -> list[bytes | None]:
    """What ChildBytes gives for each declaration, fed the bytes lxml reads as the careful first pass does."""
    path = tmp_path / ("b.xml.gz" if gz else "b.xml")
    path.write_bytes(gzip.compress(data) if gz else data)
    cuts = ChildBytes(ns.BATCH, "Batch")
    found = []
    items = stream_items(path, 1 << 30, tap=cuts.feed)
    for n, element in enumerate(items):
        child = cuts.next()
        if n == 0:
            continue
        taken = child is not None and child.tag == element.tag and child.standalone
        if taken:  # the oracle: the cut reads as the element lxml reported
            assert _reading(etree.fromstring(child.data)) == _reading(element)
            assert child.data in data
        else:
            cuts.give_up()
        found.append(child.data if taken else None)
    return found


def test_declarations_are_cut_out_exactly_as_written(tmp_path):
    first, second = DMFA.format(inner="<Worker>1</Worker>"), DIMONA.format(inner="<MessageId>m</MessageId>")
    data = batch(first, second, first.replace(">1<", ">2<"))
    assert cut(data, tmp_path) == [first.encode(), second.encode(), first.replace(">1<", ">2<").encode()]
    assert cut(data, tmp_path, gz=True) == [first.encode(), second.encode(), first.replace(">1<", ">2<").encode()]


def test_a_tiny_read_size_changes_nothing(tmp_path, monkeypatch):
    import declarations.services.batch_scan as batch_scan
    monkeypatch.setattr(batch_scan, "CHUNK", 7)  # the parser reads the file 7 bytes at a time
    first = DMFA.format(inner="")
    assert cut(batch(first, first), tmp_path) == [first.encode(), first.encode()]


@pytest.mark.parametrize("odd", [
    "<!-- a comment --><Worker/>",        # a comment inside: its text could hold anything
    "<![CDATA[ </DmfA> ]]>",               # an end tag that is not one
    "<?pi </DmfA>?>",                      # the same in an instruction
    '<DmfA xmlns="urn:other"></DmfA>',     # an element of the same name inside
])
def test_what_could_mislead_a_cut_makes_it_give_up_for_the_rest(tmp_path, odd):
    plain, tricky = DMFA.format(inner=""), DMFA.format(inner=odd)
    assert cut(batch(plain, tricky, plain), tmp_path) == [plain.encode(), None, None]


@pytest.mark.parametrize("root, declaration", [
    (f'<Batch xmlns="{ns.BATCH}" xmlns:d="urn:declarations:dmfa:v1">', '<?xml version="1.0"?>'),  # a prefix
    (f'<b:Batch xmlns:b="{ns.BATCH}">', '<?xml version="1.0"?>'),                                    # prefixed
    (f'<Batch xmlns="{ns.BATCH}" xml:lang="fr">', '<?xml version="1.0"?>'),                          # inherited
    (f'<Batch xmlns="{ns.BATCH}">', '<?xml version="1.0" encoding="ISO-8859-1"?>'),                  # encoding
    (f'<Batch xmlns="{ns.BATCH}">', '<?xml version="1.0"?><!-- before the root -->'),
])
def test_a_file_whose_declarations_depend_on_more_than_themselves_is_not_cut(tmp_path, root, declaration):
    data = batch(DMFA.format(inner=""), root=root, declaration=declaration)
    if root.startswith("<b:"):
        data = data.replace(b"<BatchHeader>", b"<b:BatchHeader>").replace(b"</BatchHeader>", b"</b:BatchHeader>")
        data = data.replace(b"<BatchId>", b"<b:BatchId>").replace(b"</BatchId>", b"</b:BatchId>")
        data = data.replace(b"<SenderId>", b"<b:SenderId>").replace(b"</SenderId>", b"</b:SenderId>")
        data = data.replace(b"</Batch>", b"</b:Batch>")
    assert cut(data, tmp_path) == [None]


def test_a_declaration_that_borrows_its_namespace_is_not_cut(tmp_path):
    # Its children in the Batch's namespace: on its own, they would be in none.
    borrowing = '<DmfA xmlns="urn:declarations:dmfa:v1"><x:Inner xmlns:x="urn:x"><Plain/></x:Inner></DmfA>'
    prefixed = '<d:DmfA xmlns:d="urn:declarations:dmfa:v1"><Plain/></d:DmfA>'
    assert cut(batch(borrowing), tmp_path) == [borrowing.encode()]  # its own default: fine
    assert cut(batch(prefixed, borrowing), tmp_path) == [None, None]


def test_a_comment_between_declarations_stops_the_cutting(tmp_path):
    plain = DMFA.format(inner="")
    assert cut(batch(plain, plain, between="\n  <!-- next -->\n  "), tmp_path) == [plain.encode(), None]
