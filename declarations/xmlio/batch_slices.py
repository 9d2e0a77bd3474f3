"""Each declaration of a batch file as the very bytes the sender wrote, cut out while lxml streams the file.

The batch's first pass parses the whole file (it must be well-formed to the end before anything is stored)
and used to serialize each declaration again (``etree.tostring``, ~3 ms for a DmfA of 1,000 workers, in the
one part of a batch that runs alone). ``ChildBytes`` is fed every byte the parser reads and, when lxml reports
a child of the root, cuts that child's bytes out of them instead (~1 ms): the declaration exactly as
received, which is also what the archive should keep.

It only cuts where the cut is certain; everywhere else it says so (``None``) and the caller serializes the
element, as before. Certain means, for the file: UTF-8 (or ASCII), and a root start tag that declares nothing
but the default namespace of a Batch (so that no child can use anything declared outside itself); for a
declaration: an unprefixed root element declaring its own default namespace, and, from its start tag to the
first end tag of the same name, no comment, CDATA section, processing instruction or other start tag of that
name. Then, the file being well-formed (lxml checks it as it goes), every ``<`` in between starts a tag, and
that first end tag is the one that closes the declaration: its bytes are a document of their own that reads
exactly as the element in the file. Each cut is also checked against the element lxml reports (its tag),
so that a cut can never be given for another element than the one reported. Once a cut is not certain, the
rest of the file is serialized (the next one's start would not be known either).
"""

from __future__ import annotations

import re
from typing import Callable

_ROOT_NAMESPACE_ONLY = re.compile(rb"""\s+xmlns\s*=\s*(?:"([^"<&]*)"|'([^'<&]*)')\s*""")
# A start tag: its name, its attributes, and whether it is empty. Attribute values may hold '>' but not '<'.
_START = re.compile(rb"""<([^\s/>!?]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(/?)>""")
_DEFAULT_NAMESPACE = re.compile(rb"""\sxmlns\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_DECLARATION = re.compile(rb"""<\?xml\s[^?]*\?>""")
_ENCODING = re.compile(rb"""\sencoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_BOM = b"\xef\xbb\xbf"
_CLOSE_TAIL = re.compile(rb"\s*>")
_AFTER_NAME = (b" ", b"\t", b"\n", b"\r", b"/", b">")


class ChildBytes:
    """Fed the bytes a streaming parser reads (``feed``), in order; ``take(element)`` at each child of the
    root it reports, in file order: that child's bytes written out, or False (then for every later child too)."""

    def __init__(self, root_namespace: str):
        self._root_namespace = root_namespace.encode()
        self._buffer = bytearray()
        self._cursor: int | None = None  # where the next child may start (None: the root not seen yet)
        self.usable = True

    def feed(self, data: bytes) -> None:
        if self.usable:
            self._buffer += data

    def take(self, tag: str, write: Callable[[memoryview], object]) -> bool:
        """``write`` the bytes of the next child of the root, whose tag (``{namespace}name``, as lxml gives
        it) is ``tag``, as a document of their own (a view on them, valid during the call); False, writing
        nothing, when they cannot be cut out with certainty."""
        return self._cut(tag, write, standalone=True)

    def skip(self, tag: str) -> None:
        """Past the next child of the root (the BatchHeader: read from the tree, in the root's namespace)."""
        self._cut(tag, None, standalone=False)

    def _cut(self, tag: str, write, *, standalone: bool) -> bool:
        if not self.usable:
            return False
        if self._cursor is None and not self._after_root_start():
            return self._give_up()
        buffer = self._buffer
        start = buffer.find(b"<", self._cursor)
        if start < 0 or buffer[start + 1:start + 2] in (b"!", b"?"):
            return self._give_up()  # a comment or instruction between children: not worth the care
        match = _START.match(buffer, start)
        if match is None:
            return self._give_up()
        name, attributes, empty = match.groups()
        declared = _DEFAULT_NAMESPACE.search(attributes)
        if declared is not None:
            namespace = declared.group(1) or declared.group(2) or b""
        elif not standalone:
            namespace = self._root_namespace  # inherited from the root, which declares nothing else
        else:
            return self._give_up()  # a document of its own would lose its namespace
        if b":" in name or tag != "{%s}%s" % (namespace.decode(), name.decode()):
            return self._give_up()
        if empty:
            end = match.end()
        else:
            end = self._end_of(name, match.end())
            if end is None:
                return self._give_up()
        if write is not None:
            with memoryview(buffer) as view, view[start:end] as data:  # no copy; released before the buffer grows
                write(data)
        del buffer[:end]  # (a bytearray drops its head without moving the rest)
        self._cursor = 0
        return True

    def _end_of(self, name: bytes, after: int) -> int | None:
        """Where the element whose start tag ends at ``after`` ends, if certain (bytes.find: memchr-fast)."""
        buffer = self._buffer
        close = buffer.find(b"</" + name, after)
        while close >= 0:
            tail = _CLOSE_TAIL.match(buffer, close + 2 + len(name))
            if tail is not None:
                break
            close = buffer.find(b"</" + name, close + 1)  # a longer name that starts with this one
        else:
            return None
        for mark in (b"!", b"?"):  # a comment, CDATA or instruction starts "<!" or "<?"; these are rare alone
            found = buffer.find(mark, after, close)
            while found >= 0:
                if buffer[found - 1] == 0x3C:  # "<"
                    return None
                found = buffer.find(mark, found + 1, close)
        opened = buffer.find(b"<" + name, after, close)
        while opened >= 0:
            if buffer[opened + 1 + len(name):opened + 2 + len(name)] in _AFTER_NAME:
                return None  # another element of this name inside: the first end tag may be its
            opened = buffer.find(b"<" + name, opened + 1, close)
        return tail.end()

    def _after_root_start(self) -> bool:
        """Check the file's encoding and the root's start tag; set the cursor after it."""
        buffer = self._buffer
        position = len(_BOM) if buffer.startswith(_BOM) else 0
        declaration = _DECLARATION.match(buffer, position)
        if declaration is not None:
            encoding = _ENCODING.search(declaration.group(0))
            if encoding is not None and (encoding.group(1) or encoding.group(2) or b"").lower() \
                    not in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
                return False
            position = declaration.end()
        start = buffer.find(b"<", position)
        if start < 0 or buffer[position:start].strip() or buffer[start + 1:start + 2] in (b"!", b"?"):
            return False
        match = _START.match(buffer, start)
        if match is None or match.group(3):
            return False
        only = _ROOT_NAMESPACE_ONLY.fullmatch(match.group(2))
        if only is None or (only.group(1) or only.group(2)) != self._root_namespace or b":" in match.group(1):
            return False
        del buffer[:match.end()]
        self._cursor = 0
        return True

    def _give_up(self) -> bool:
        self.usable = False
        self._buffer = bytearray()
        return False
