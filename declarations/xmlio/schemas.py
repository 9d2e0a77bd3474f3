"""The XSD registry: which schema validates which root, and what it found.

Every schema lives in the repository's ``xsd/`` folder and is compiled once,
lazily, from local files only (no DTD, no network). ``problems(element)``
validates a root element (a declaration, a batch or its header, a result,
the directory) against the schema of its tag and returns each error with its
Location in the contract's form (``/DmfA/NaturalPerson[2]/...``) and a
message a person can read.

An element taken out of its carrier (a declaration inside a batch or a SOAP
body) is validated as its own document, so locations start at the
declaration's root, never at the carrier.

Concurrency: lxml keeps the error log of a validation on the ``XMLSchema``
object itself, so one compiled schema must not validate two documents at
the same time. ``problems`` therefore borrows a schema from a small pool
(one per root tag, more only when threads validate at the same moment);
a single-threaded process compiles each schema exactly once.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from declarations import ns
from declarations.xmlio import locations

XSD_DIR: Path = Path(__file__).resolve().parents[2] / "xsd"

# Root element (Clark notation) -> schema file in XSD_DIR.
SCHEMA_FILES: dict[str, str] = {
    ns.qn(ns.DIMONA, "Dimona"): "dimona.xsd",
    ns.qn(ns.DMFA, "DmfA"): "dmfa.xsd",
    ns.qn(ns.DRS, "SocialRisk"): "drs.xsd",
    ns.qn(ns.BATCH, "Batch"): "batch.xsd",
    ns.qn(ns.BATCH, "BatchHeader"): "batch.xsd",
    ns.qn(ns.RESULT, "DeclarationResult"): "result.xsd",
    ns.qn(ns.RESULT, "DeclarationResults"): "result.xsd",
    ns.qn(ns.RESULT, "BatchAck"): "result.xsd",
    ns.qn(ns.RESULT, "BatchResult"): "result.xsd",
    ns.qn(ns.RESULT, "ReferenceData"): "result.xsd",
    ns.qn(ns.DIRECTORY, "Directory"): "directory.xsd",
    **{ns.qn(ns.SERVICE, wrapper): "declaration-service.xsd"
       for wrapper in ("SubmitDimona", "SubmitDmfA", "SubmitSocialRisk", "GetDeclarationResult", "Prefill")},
    **{ns.qn(ns.LOOKUP, root): "lookup.xsd"
       for root in ("DeclarationResultRequest", "PrefillRequest", "PrefillResult", "Refusal")},
    **{ns.qn(ns.INSTITUTION, root): "institution.xsd"
       for root in ("ListAuthorizationsRequest", "RegisterPersonRequest", "UnregisterPersonRequest", "ConsultRequest",
                    "SubscribeRequest", "UnsubscribeRequest", "GetNotificationsRequest", "AuthorizationList",
                    "RegisterResult", "SubscriptionResult", "ConsultResult", "Notifications", "Refusal")},
    **{ns.qn(ns.INSTITUTION_SERVICE, wrapper): "institution-service.xsd"
       for wrapper in ("ListAuthorizations", "RegisterPerson", "UnregisterPerson", "Consult", "Subscribe",
                       "Unsubscribe", "GetNotifications")},
}

# The schema documents are local files of our own; still, nothing is
# fetched and no DTD or entity is honoured while reading them.
_SCHEMA_PARSER_OPTIONS = dict(no_network=True, resolve_entities=False, load_dtd=False, dtd_validation=False)


@dataclass(frozen=True)
class SchemaProblem:
    location: str   # the contract's form: /DmfA/NaturalPerson[2]/WorkerRecord[1]/...
    message: str    # the validator's message, without namespace noise


class _Pool:
    """Compiled schemas of one file: reused, never shared by two validations at once."""

    def __init__(self, filename: str):
        self.filename = filename
        self._idle: list[etree.XMLSchema] = []
        self._first: etree.XMLSchema | None = None
        self._lock = threading.Lock()

    def _compile(self) -> etree.XMLSchema:
        parser = etree.XMLParser(**_SCHEMA_PARSER_OPTIONS)
        document = etree.parse(str(XSD_DIR / self.filename), parser)
        return etree.XMLSchema(document)

    def first(self) -> etree.XMLSchema:
        with self._lock:
            if self._first is None:
                self._first = self._compile()
                self._idle.append(self._first)
            return self._first

    def acquire(self) -> etree.XMLSchema:
        with self._lock:
            if self._first is None:
                self._first = self._compile()
                return self._first
            if self._idle:
                return self._idle.pop()
        return self._compile()  # another thread is validating: compile outside the lock

    def release(self, schema: etree.XMLSchema) -> None:
        with self._lock:
            self._idle.append(schema)


_POOLS: dict[str, _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(filename: str) -> _Pool:
    with _POOLS_LOCK:
        pool = _POOLS.get(filename)
        if pool is None:
            pool = _POOLS[filename] = _Pool(filename)
        return pool


def schema_for(tag: str) -> etree.XMLSchema:
    """The compiled schema for a root tag in Clark notation (KeyError if none).

    The returned object is shared: do not validate with it from several
    threads at once (use ``problems``, which does not have that limit).
    """
    return _pool(SCHEMA_FILES[tag]).first()


def problems(element: etree._Element) -> list[SchemaProblem]:
    """Validate ``element`` as its own document against the schema of its root tag."""
    tag = element.tag
    if not isinstance(tag, str) or tag not in SCHEMA_FILES:
        return [SchemaProblem("/", _unknown_root(tag))]
    pool = _pool(SCHEMA_FILES[tag])
    schema = pool.acquire()
    try:
        # In place first: lxml validates an element as its own root without copying it,
        # which is all a valid declaration (the usual case) costs. Only a failure pays
        # for a standalone copy, whose error paths give locations from its own root.
        if schema.validate(element):
            return []
        document = _standalone(element)
        schema.validate(document)
        entries = list(schema.error_log)
    finally:
        pool.release(schema)
    return _report(document, entries)


def _unknown_root(tag: object) -> str:
    if not isinstance(tag, str):
        return "the document has no root element to validate"
    name = etree.QName(tag)
    where = f"in namespace {name.namespace}" if name.namespace else "in no namespace"
    same_name = [etree.QName(t).namespace for t in SCHEMA_FILES if etree.QName(t).localname == name.localname]
    if same_name:
        return f"the root element {name.localname} is {where}; expected namespace {same_name[0]}"
    roots = ", ".join(dict.fromkeys(f"{etree.QName(t).localname} ({etree.QName(t).namespace})" for t in SCHEMA_FILES))
    return f"the root element {name.localname} {where} is not one of this contract; expected one of: {roots}"


def _standalone(element: etree._Element) -> etree._ElementTree:
    """The element as the root of its own document (a copy when it is not one already)."""
    tree = element.getroottree()
    if tree.getroot() is element:
        return tree
    return etree.ElementTree(copy.deepcopy(element))


def _report(document: etree._ElementTree, entries: list) -> list[SchemaProblem]:
    found: list[SchemaProblem] = []
    seen: set[SchemaProblem] = set()
    resolver = _Resolver(document.getroot())
    for entry in entries:
        location = resolver.location(entry.path)
        message = clean_message(entry.message)
        # libxml2 may follow a facet error ("[facet 'pattern'] The value ... is
        # not accepted by the pattern ...") with a vaguer one for the same value
        # ("... is not a valid value of the atomic type ..."): keep the first.
        # An identity constraint (xs:unique) that meets an invalid value adds
        # "No precomputed value available": noise after the real error.
        if found and found[-1].location == location and (
                (_ATOMIC_FOLLOW_UP.search(message) and "[facet" in found[-1].message)
                or "No precomputed value available" in message):
            continue
        problem = SchemaProblem(location, message)
        if problem not in seen:
            seen.add(problem)
            found.append(problem)
    return found


_ATOMIC_FOLLOW_UP = re.compile(r"is not a valid value of the (?:atomic|list|union) type")
# A namespace URI in Clark notation, not a regex quantifier ({11}) nor an
# enumeration set ({'015', '495'}): it starts with a letter (urn:, http:).
_CLARK = re.compile(r"\{[A-Za-z][^{}\s']*\}")


def clean_message(message: str) -> str:
    """Drop namespace URIs from a validator message: ``'{urn:...}Quarter'`` -> ``'Quarter'``."""
    return _CLARK.sub("", message or "").strip()


_PATH_STEP = re.compile(r"^(?:(?P<prefix>[^:\[\]]+):)?(?P<name>[^:\[\]]+)(?:\[(?P<index>\d+)\])?$")


class _Resolver:
    """Turns libxml2's error paths into the contract's locations.

    libxml2 writes an element of a default namespace as ``*``, counting all
    element siblings (``/*/*[5]/*[2]``), and a prefixed one as ``p:Name[2]``,
    counting same-name siblings; neither says the local name in the first
    case. So the path is resolved against the validated document, and the
    location is rebuilt from the elements found (each one's position among
    siblings of its own tag) and handed to ``locations.from_lxml_path``, which
    keeps the position only on elements that may repeat.

    Children lists and positions are computed once per parent, so a DmfA of
    thousands of NaturalPersons with an error in each stays linear here.
    """

    def __init__(self, root: etree._Element):
        self.root = root
        self._children: dict[etree._Element, list[etree._Element]] = {}
        self._positions: dict[etree._Element, int] = {}
        self._named: dict[tuple[etree._Element, str, str | None], list[etree._Element]] = {}

    def children(self, parent: etree._Element) -> list[etree._Element]:
        children = self._children.get(parent)
        if children is None:
            children = self._children[parent] = list(parent.iterchildren(tag=etree.Element))
            counts: dict[str, int] = {}
            for child in children:
                counts[child.tag] = counts.get(child.tag, 0) + 1
                self._positions[child] = counts[child.tag]
        return children

    def named(self, parent: etree._Element, name: str, prefix: str | None) -> list[etree._Element]:
        key = (parent, name, prefix)
        named = self._named.get(key)
        if named is None:
            named = self._named[key] = [c for c in self.children(parent)
                                        if etree.QName(c).localname == name and (c.prefix or None) == prefix]
        return named

    def location(self, path: str | None) -> str:
        if not path:
            return locations.location_of(self.root)
        steps = [s for s in path.split("/") if s]
        attribute = None
        if steps and steps[-1].startswith("@"):
            attribute = steps.pop()[1:].split(":")[-1]
        trail = self._resolve(steps)
        if trail is None:
            location = locations.from_lxml_path(path if attribute is None else path.rsplit("/", 1)[0])
        else:
            explicit = [etree.QName(trail[0]).localname] + [
                f"{etree.QName(node).localname}[{self._positions[node]}]" for node in trail[1:]]
            location = locations.from_lxml_path("/" + "/".join(explicit))
        return f"{location}/@{attribute}" if attribute else location

    def _resolve(self, steps: list[str]) -> list[etree._Element] | None:
        trail: list[etree._Element] = []
        for step in steps:
            match = _PATH_STEP.match(step)
            if match is None:
                return None
            prefix, name, index = match.group("prefix"), match.group("name"), int(match.group("index") or 1)
            if not trail:
                candidates = [self.root]
            elif name == "*":
                candidates = self.children(trail[-1])
            else:
                candidates = self.named(trail[-1], name, prefix)
            if index > len(candidates):
                return None
            trail.append(candidates[index - 1])
        return trail
