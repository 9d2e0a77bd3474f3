"""The one hardened parser for every piece of outside input.

Nothing else in the engine calls ``etree.fromstring`` on bytes it received.
No DTD is loaded, no entity is expanded, nothing is fetched from the network,
and a document that carries a DOCTYPE at all is refused (C009): a declaration
has no use for one, and refusing it outright closes the entity-expansion and
external-reference attacks in one place. The size limit (C010) is checked
before a single byte is parsed.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from lxml import etree

from declarations.exceptions import MalformedXml, TooLarge

# Shared with the streaming batch reader (iterparse takes the same options).
PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=False,  # the signed content must stay byte-for-byte meaningful
    remove_pis=False,
    strip_cdata=False,
)

_PARSER = etree.XMLParser(**PARSER_OPTIONS)


def check_size(data: bytes, max_bytes: int) -> None:
    if max_bytes and len(data) > max_bytes:
        raise TooLarge(f"the message is {len(data)} bytes, more than the limit of {max_bytes} bytes")


def parse(data: bytes, *, max_bytes: int = 0) -> etree._Element:
    """Parse outside bytes into an element, or raise MalformedXml / TooLarge."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("parse() takes the received bytes, not text")
    check_size(data, max_bytes)
    if not data.strip():
        raise MalformedXml("the message is empty")
    try:
        root = etree.fromstring(bytes(data), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc.msg}", location=f"line {exc.lineno}") from None
    refuse_dtd(root)
    return root


def well_formed_inside(data: bytes) -> bool:
    """Whether ``data``, an element cut out of a document (a declaration of a batch file), parses as it does
    there: the same parser, one level down as under the document's root (the depth limit counts it), and
    nothing declared outside the element (the caller made sure it uses nothing: batch_slices)."""
    parser = etree.XMLParser(**PARSER_OPTIONS)
    try:
        parser.feed(b"<_>")
        parser.feed(data)
        parser.feed(b"</_>")
        parser.close()
    except etree.XMLSyntaxError:
        return False
    return True


def refuse_dtd(root: etree._Element) -> None:
    """Refuse a document that declares a DOCTYPE (internal or external subset)."""
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise MalformedXml("a DOCTYPE, DTD or entity declaration is not allowed")
    # With resolve_entities=False a reference to an entity stays as a node;
    # without a DTD none can be declared, but keep the guard explicit.
    for _ in root.iter(etree.Entity):
        raise MalformedXml("an entity reference is not allowed")


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def stream_children(stream) -> Iterator[etree._Element]:
    """Stream a document (the batch inbox): one element in memory at a time.

    Yields the root element first, at its start tag (no child read yet),
    then each child element of the root, complete, at its end tag. A
    yielded child is cleared and dropped as soon as the next one is read, so
    memory holds one child at a time whatever the file's size. The same
    options as ``parse``: no DTD, no entity, no network, huge_tree off; a
    DOCTYPE anywhere, or anything not well-formed, raises MalformedXml.
    ``stream`` is a binary file object; what its ``read`` raises (a size
    limit, a broken gzip) goes through unchanged.
    """
    context = etree.iterparse(stream, events=("start", "end"), **PARSER_OPTIONS)
    depth = 0
    root = None
    try:
        for event, element in context:
            if event == "start":
                depth += 1
                if depth == 1:
                    root = element
                    refuse_dtd(root)
                    yield root
                continue
            depth -= 1
            if depth == 1:
                yield element
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del root[0]
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc.msg}", location=f"line {exc.lineno}") from None
    if root is None:
        raise MalformedXml("the document is empty")


def stream_reported_children(stream, root_tag: str, child_tags: Iterable[str]) -> Iterator[etree._Element]:
    """``stream_children``, with lxml told which tags to report (the batch inbox).

    The same contract (the root first, then each child element of the root, complete, in file
    order, one in memory at a time; same parser options; DOCTYPE and not-well-formed raise
    MalformedXml), but lxml reports only the start of ``root_tag`` and the end of ``child_tags``
    (for a Batch: BatchHeader, Dimona, DmfA, SocialRisk), not one Python event per element of
    every declaration (a DmfA of 1,000 workers has ~25,000). That halves the cost of each pass
    over a batch file. A child of the root with another name is still yielded, in its place: it
    is found as an earlier sibling of the next reported child, or left over at the end. An element
    with a reported name deeper in the tree is not a child of the root and is skipped.
    """
    context = etree.iterparse(stream, events=("start", "end"), tag=(root_tag, *child_tags),
                              **PARSER_OPTIONS)
    root = None
    try:
        for event, element in context:
            if root is None:
                root = element if event == "start" and element.getparent() is None \
                    else element.getroottree().getroot()
                refuse_dtd(root)
                yield root
            if event == "start" or element.getparent() is not root:
                continue
            while (earlier := element.getprevious()) is not None:
                if isinstance(earlier.tag, str):  # not a comment or processing instruction
                    yield earlier  # a child of the root lxml did not report (not a known name)
                root.remove(earlier)
            yield element
            element.clear(keep_tail=False)
            root.remove(element)
        if root is None:
            root = context.root
            refuse_dtd(root)
            yield root
        for leftover in list(root):
            if isinstance(leftover.tag, str):
                yield leftover
            root.remove(leftover)
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc.msg}", location=f"line {exc.lineno}") from None
    if root is None:
        raise MalformedXml("the document is empty")
