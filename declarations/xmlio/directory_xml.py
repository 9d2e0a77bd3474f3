"""The Directory document (urn:declarations:directory:v1) <-> domain values."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from declarations import ns
from declarations.domain import directory as d

N = ns.DIRECTORY


def _t(element: etree._Element, name: str) -> str | None:
    child = element.find(f"{{{N}}}{name}")
    return None if child is None else (child.text or "").strip()


def _all(element: etree._Element, name: str) -> tuple[str, ...]:
    return tuple((c.text or "").strip() for c in element.iterchildren(f"{{{N}}}{name}"))


def decode(root: etree._Element) -> d.Directory:
    def each(name):
        return root.iterchildren(f"{{{N}}}{name}")
    return d.Directory(
        employers=tuple(d.DirectoryEmployer(_t(e, "NOSSRegistrationNbr"), _t(e, "EnterpriseNbr"), _t(e, "Name"))
                        for e in each("Employer")),
        senders=tuple(d.DirectorySender(_t(s, "SenderId"), _t(s, "Name"), _t(s, "NOSSRegistrationNbr"),
                                        _all(s, "CertificateFingerprint")) for s in each("Sender")),
        mandates=tuple(d.DirectoryMandate(_t(m, "SenderId"), _t(m, "NOSSRegistrationNbr"), _all(m, "Kind"),
                                          dt.date.fromisoformat(_t(m, "From")),
                                          dt.date.fromisoformat(_t(m, "To")) if _t(m, "To") else None)
                       for m in each("Mandate")),
        institutions=tuple(d.DirectoryInstitution(_t(i, "InstitutionId"), _t(i, "Name"), _t(i, "Sector"),
                                                  _all(i, "CertificateFingerprint")) for i in each("Institution")),
        authorizations=tuple(d.DirectoryAuthorization(_t(a, "InstitutionId"), _t(a, "Capacity"), _t(a, "DataType"))
                             for a in each("Authorization")),
    )


def encode(directory: d.Directory) -> etree._Element:
    root = etree.Element(f"{{{N}}}Directory", nsmap={None: N})

    def add(parent, name, value):
        if value is not None:
            etree.SubElement(parent, f"{{{N}}}{name}").text = value

    for e in directory.employers:
        el = etree.SubElement(root, f"{{{N}}}Employer")
        add(el, "NOSSRegistrationNbr", e.noss); add(el, "EnterpriseNbr", e.enterprise_nbr); add(el, "Name", e.name)  # noqa: E702
    for s in directory.senders:
        el = etree.SubElement(root, f"{{{N}}}Sender")
        add(el, "SenderId", s.sender_id); add(el, "Name", s.name); add(el, "NOSSRegistrationNbr", s.noss)  # noqa: E702
        for f in s.fingerprints:
            add(el, "CertificateFingerprint", f)
    for m in directory.mandates:
        el = etree.SubElement(root, f"{{{N}}}Mandate")
        add(el, "SenderId", m.sender_id); add(el, "NOSSRegistrationNbr", m.noss)  # noqa: E702
        for k in m.kinds:
            add(el, "Kind", k)
        add(el, "From", m.valid_from.isoformat())
        add(el, "To", m.valid_to.isoformat() if m.valid_to else None)
    for i in directory.institutions:
        el = etree.SubElement(root, f"{{{N}}}Institution")
        add(el, "InstitutionId", i.institution_id); add(el, "Name", i.name); add(el, "Sector", i.sector)  # noqa: E702
        for f in i.fingerprints:
            add(el, "CertificateFingerprint", f)
    for a in directory.authorizations:
        el = etree.SubElement(root, f"{{{N}}}Authorization")
        add(el, "InstitutionId", a.institution_id); add(el, "Capacity", a.capacity); add(el, "DataType", a.data_type)  # noqa: E702
    return root
