"""Each child of a batch file's root as the very bytes the sender wrote, cut out of the file's bytes.

The batch's first pass reads the whole file (it must be well-formed to the end before anything is stored)
and keeps each declaration's bytes for the second pass. ``ChildBytes`` is fed the file's bytes in order and
cuts each child of the root out of them (bytes.find: memchr-fast, ~1 ms for a DmfA of 1,000 workers against
~3 ms for ``etree.tostring`` of the parsed element): the declaration exactly as received, which is also what
the archive should keep.

It only cuts where the cut is certain, **provided the file is well-formed**, which it does not check itself
(the caller has that checked: ``batch_scan``); everywhere else it gives up (``usable`` turns False) and the
caller reads the file another way. Certain means, for the file: UTF-8 (or ASCII), nothing but white space
and an XML declaration before the root, and a root start tag that declares nothing but the default
namespace of the expected root (so that no child can use anything declared outside itself); for a child: an
unprefixed element, and, from its start tag to the first end tag of its name, no comment, CDATA section,
processing instruction or other start tag of that name. Then, the file being well-formed, every ``<`` in
between starts a tag, and that first end tag is the one that closes the child. A child that declares its own
default namespace is ``standalone``: its bytes are a document of their own that reads exactly as the element
in the file. (One that does not, the BatchHeader, reads as in the file inside a root declaring the Batch
namespace.)

``envelope``, if given, is fed the rest of the file: everything outside the children, with an empty element
``<_/>`` where each child was. The placeholder keeps the bytes on either side of a child apart, as the child
did: without it, ``&am`` before a child and ``p;`` after it would read as ``&amp;``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Callable

_ROOT_NAMESPACE_ONLY = re.compile(rb"""\s+xmlns\s*=\s*(?:"([^"<&]*)"|'([^'<&]*)')\s*""")
# A start tag: its name, its attributes, and whether it is empty. Attribute values may hold '>' but not '<'.
_START = re.compile(rb"""<([^\s/>!?]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(/?)>""")
_DEFAULT_NAMESPACE = re.compile(rb"""\sxmlns\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_DECLARATION = re.compile(rb"""<\?xml\s[^?]*\?>""")
_ENCODING = re.compile(rb"""\sencoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_BOM = b"\xef\xbb\xbf"
_SPACE = re.compile(rb"\s*")
_AFTER_NAME = (b" ", b"\t", b"\n", b"\r", b"/", b">")
PLACEHOLDER = b"<_/>"


@dataclass(frozen=True)
class Child:
    """A child of the root, cut out: its tag as lxml writes it (``{namespace}name``) and its bytes."""
    tag: str
    data: bytes
    standalone: bool  # it declares its own default namespace: its bytes read alone as in the file


class _Uncertain(Exception):
    """What follows cannot be cut with certainty."""


@dataclass
class _Open:
    """A child whose start tag was read, not yet its end tag."""
    name: bytes
    tag: str
    standalone: bool
    scanned: int  # up to here (in the buffer) nothing makes the cut uncertain and no end tag closes it


class ChildBytes:
    """Fed a file's bytes in order (``feed``); ``next()`` gives each child of the root once it is whole."""

    def __init__(self, root_namespace: str, root_name: str, *, envelope: Callable[[bytes], object] | None = None):
        self._root_namespace = root_namespace.encode()
        self._root_name = root_name.encode()
        self._root_end = re.compile(rb"</" + re.escape(self._root_name) + rb"\s*>")
        self._envelope = envelope
        self._buffer = bytearray()  # from the first byte not cut out or given to the envelope yet
        self._root_read = False
        self._open: _Open | None = None
        self._ready: deque[Child] = deque()
        self.usable = True
        self.finished = False  # the root's end tag was read

    def feed(self, data: bytes) -> None:
        if not self.usable:
            return
        if self.finished:  # after the root: only for the envelope (white space, comments, instructions)
            if self._envelope is not None:
                self._envelope(data)
            return
        self._buffer += data
        try:
            self._cut()
        except _Uncertain:  # the children cut before stay good
            self.usable = False
            self._buffer = bytearray()

    def next(self) -> Child | None:
        """The next child cut out, in file order; None when no whole one is waiting (then, if ``usable`` is
        False, none will come)."""
        return self._ready.popleft() if self._ready else None

    def give_up(self) -> None:
        """No more cuts for this file: the caller reads it another way from here."""
        self.usable = False
        self._buffer = bytearray()
        self._ready.clear()

    # -- cutting ---------------------------------------------------------------------------------------

    def _cut(self) -> None:
        if not self._root_read and not self._read_root_start():
            return
        buffer = self._buffer
        while True:
            if self._open is None:
                start = buffer.find(b"<")
                self._pass_on(len(buffer) if start < 0 else start)  # text between children
                if start < 0 or len(buffer) < 2:
                    return
                second = buffer[1:2]
                if second in (b"!", b"?"):
                    raise _Uncertain()  # a comment or instruction between children: not worth the care
                if second == b"/":
                    self._read_root_end()
                    return
                if not self._read_child_start():
                    return  # the start tag goes on in the next bytes
                if self._open is None:  # an empty child: cut already
                    continue
            end = self._end_of_open()
            if end is None:
                return
            self._take(self._open.tag, end, self._open.standalone)
            self._open = None

    def _read_root_start(self) -> bool:
        """The file's encoding and the root's start tag; False while they are not whole yet."""
        buffer = self._buffer
        if len(buffer) < 8 and ((_BOM + b"<?xml").startswith(buffer) or b"<?xml".startswith(buffer)):
            return False  # too few bytes yet to tell
        position = len(_BOM) if buffer.startswith(_BOM) else 0
        if buffer.startswith(b"<?xml", position):
            declaration = _DECLARATION.match(buffer, position)
            if declaration is None:
                return self._more(buffer.find(b"?>", position) < 0)
            encoding = _ENCODING.search(declaration.group(0))
            if encoding is not None and (encoding.group(1) or encoding.group(2) or b"").lower() \
                    not in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
                raise _Uncertain()
            position = declaration.end()
        start = buffer.find(b"<", position)
        if buffer[position:start if start >= 0 else len(buffer)].strip():
            raise _Uncertain()  # not white space before the root
        if start < 0 or len(buffer) < start + 2:
            return False
        if buffer[start + 1:start + 2] in (b"!", b"?"):
            raise _Uncertain()  # a comment, instruction or DOCTYPE before the root
        match = _START.match(buffer, start)
        if match is None:
            return self._more(buffer.find(b">", start) < 0)
        name, attributes, empty = match.groups()
        only = _ROOT_NAMESPACE_ONLY.fullmatch(attributes)
        if empty or name != self._root_name or only is None \
                or (only.group(1) or only.group(2)) != self._root_namespace:
            raise _Uncertain()
        self._pass_on(match.end())
        self._root_read = True
        return True

    def _read_child_start(self) -> bool:
        """The start tag at the head of the buffer: an empty child is cut at once, else it is open. False
        while the start tag is not whole."""
        match = _START.match(self._buffer)
        if match is None:
            return self._more(self._buffer.find(b">") < 0)
        name, attributes, empty = match.groups()
        if b":" in name:
            raise _Uncertain()
        declared = _DEFAULT_NAMESPACE.search(attributes)
        if declared is not None:
            namespace = declared.group(1) or declared.group(2) or b""
        else:
            namespace = self._root_namespace  # inherited from the root, which declares nothing else
        try:
            tag = "{%s}%s" % (namespace.decode(), name.decode())
        except UnicodeDecodeError:
            raise _Uncertain() from None
        if empty:
            self._take(tag, match.end(), declared is not None)
        else:
            self._open = _Open(name, tag, declared is not None, match.end())
        return True

    def _read_root_end(self) -> None:
        match = self._root_end.match(self._buffer)
        if match is None:
            self._more(self._buffer.find(b">") < 0)
            return
        self.finished = True
        self._pass_on(len(self._buffer))  # the root's end tag and whatever follows it

    def _end_of_open(self) -> int | None:
        """Where the open child ends (just after its end tag), or None until its end tag is read. Each byte is
        looked at once however many pieces the child comes in (a file of one huge child stays linear)."""
        buffer, child = self._buffer, self._open
        name = child.name
        close = buffer.find(b"</" + name, child.scanned)
        end = None
        while close >= 0:
            after = _SPACE.match(buffer, close + 2 + len(name)).end()
            if after == len(buffer):  # "</DmfA" and maybe white space: the rest comes with the next bytes
                break
            if buffer[after] == 0x3E:  # ">"
                end = after + 1
                break
            close = buffer.find(b"</" + name, close + 1)  # a longer name that starts with this one
        # Up to here, the bytes are looked at now; a marker cut in two at the end is looked at next time.
        limit = close if close >= 0 else max(child.scanned, len(buffer) - len(name) - 2)
        self._check_inside(name, child.scanned, limit)
        child.scanned = limit
        return end

    def _check_inside(self, name: bytes, low: int, high: int) -> None:
        """No comment, CDATA section or instruction (they start "<!", "<?") and no start tag of ``name``
        between ``low`` and ``high``: else the first end tag of ``name`` might not be this child's."""
        buffer = self._buffer
        for mark in (b"!", b"?"):  # rare alone, so found at memchr speed; "<" is everywhere
            found = buffer.find(mark, low, high)
            while found >= 0:
                if buffer[found - 1] == 0x3C:  # "<"
                    raise _Uncertain()
                found = buffer.find(mark, found + 1, high)
        # A start tag of the name that begins before ``high``, with the byte after the name (it is there: see
        # _end_of_open's limit), however far it reaches past ``high``.
        reach = min(len(buffer), high + len(name) + 1)
        opened = buffer.find(b"<" + name, low, reach)
        while 0 <= opened < high:
            if buffer[opened + 1 + len(name):opened + 2 + len(name)] in _AFTER_NAME:
                raise _Uncertain()  # another element of this name inside: the first end tag may be its
            opened = buffer.find(b"<" + name, opened + 1, reach)

    def _take(self, tag: str, end: int, standalone: bool) -> None:
        """The child at the head of the buffer, ``end`` bytes long, is whole: cut it out."""
        buffer = self._buffer
        self._ready.append(Child(tag, bytes(buffer[:end]), standalone))
        if self._envelope is not None:
            self._envelope(PLACEHOLDER)
        del buffer[:end]  # (a bytearray drops its head without moving the rest)

    def _pass_on(self, length: int) -> None:
        """The head of the buffer is not in a child: to the envelope, and out of the buffer."""
        if length:
            if self._envelope is not None:
                self._envelope(bytes(self._buffer[:length]))
            del self._buffer[:length]

    @staticmethod
    def _more(incomplete: bool) -> bool:
        """What to do with a tag that does not read as expected: wait for the next bytes if it is not whole
        yet, else give up. (A '>' inside a quoted value of a tag cut by the end of the bytes also gives up:
        rare, and giving up is always safe.)"""
        if not incomplete:
            raise _Uncertain()
        return False
