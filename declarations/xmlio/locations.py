"""Anomaly locations in the form the contract shows:
``/DmfA/NaturalPerson[3]/WorkerRecord[1]/Occupation[2]/Service[1]/ServiceNbrDays``.

Local names only, rooted at the declaration element. An element that the
schema allows to repeat always carries its position (``[1]`` included), so a
payroll vendor can point at "the third NaturalPerson" without counting; a
single element carries none.
"""

from __future__ import annotations

import re

from lxml import etree

# Element names that may occur more than once under their parent.
REPEATED = frozenset({
    # DmfA
    "NaturalPerson", "WorkerRecord", "Occupation", "Service", "Remun", "Contribution",
    # Result
    "Anomaly", "DeclarationResult",
    # Directory
    "Employer@Directory", "Sender", "Mandate", "Institution", "Authorization", "Kind",
    "CertificateFingerprint",
    # Batch items
    "Dimona@Batch", "DmfA@Batch", "SocialRisk@Batch",
    # XMLDSig (xsd/xmldsig-core-schema.xsd), scoped to their parents
    "Reference@SignedInfo", "Transform@Transforms", "Object@Signature", "X509Data@KeyInfo",
    "X509Certificate@X509Data",
})


def _is_repeated(name: str, parent_name: str | None) -> bool:
    return name in REPEATED or (parent_name is not None and f"{name}@{parent_name}" in REPEATED)


def location_of(element: etree._Element, *, field: str | None = None) -> str:
    """The location of ``element`` (and optionally of its child ``field``)."""
    steps: list[str] = []
    node = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        parent_name = etree.QName(parent).localname if parent is not None else None
        if parent is not None and _is_repeated(name, parent_name):
            position = 1 + sum(1 for sibling in node.itersiblings(preceding=True) if sibling.tag == node.tag)
            steps.append(f"{name}[{position}]")
        else:
            steps.append(name)
        node = parent
    path = "/" + "/".join(reversed(steps))
    return f"{path}/{field}" if field else path


def join(path: str, *steps: str) -> str:
    return "/".join([path.rstrip("/"), *steps])


_STEP = re.compile(r"^(?:[^:\[\]]+:)?([^\[\]]+)(?:\[(\d+)\])?$")


def from_lxml_path(path: str) -> str:
    """Turn lxml's error path (``/dmfa:DmfA/dmfa:NaturalPerson[3]/...`` or with
    ``{ns}`` names) into the contract's form."""
    if not path:
        return "/"
    path = re.sub(r"\{[^}]*\}", "", path)
    out: list[str] = []
    parent: str | None = None
    for raw in [s for s in path.split("/") if s]:
        match = _STEP.match(raw)
        if not match:
            out.append(raw)
            continue
        name, index = match.group(1), match.group(2)
        if out and _is_repeated(name, parent):
            out.append(f"{name}[{index or 1}]")
        else:
            out.append(name)
        parent = name
    return "/" + "/".join(out)
