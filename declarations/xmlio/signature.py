"""XML signatures in the one profile of the contract (``channels.md``, "Signature profile").

Profile: an enveloped ``ds:Signature``, the only one in the document and the
last child of the root; one ``Reference`` with ``URI=""`` and exactly the
transforms enveloped-signature then exclusive canonicalization; exclusive
canonicalization for ``SignedInfo``; SHA-256 digest; RSA-SHA256 (RSA of 2048
bits or more) or ECDSA-SHA256 (P-256); the signer's certificate in
``KeyInfo/X509Data/X509Certificate``.

``verify`` answers two questions only: is there a signature (else ``S001``),
and is it in the profile and does it verify with the certificate it carries
(else ``S002``). Whether that certificate is *trusted* (its fingerprint
registered for the sender, ``S003``) and *valid today* (``S004``, against the
engine's clock) is for the caller, from ``VerifiedDocument.fingerprint`` and
``VerifiedDocument.certificate``. So the certificate from ``KeyInfo`` is
pinned as the trust anchor, and signxml's own validity-date check is turned
off (see ``_expect_config``): an expired certificate must reach the caller's
S004, not become an S002 here.

Two layers do the checking:

1. ``_check_profile`` walks the received tree and refuses everything
   off-profile with a sentence a person can act on. It checks what signxml
   does not: the number and place of ``ds:Signature``, the exact transform
   list (signxml silently *skips* transforms it does not know, such as XPath),
   the canonicalization method, ``URI=""``, the ``KeyInfo`` content, the key
   type and size.
2. ``_verify_reference`` then does the cryptography of that one profile
   itself (it is small: one Reference, fixed transforms): on a copy of the
   element as its own document, the exclusive canonical form of SignedInfo
   (taken in place), the Signature removed (the enveloped transform), the
   exclusive canonical form of what is left, its SHA-256 against
   DigestValue, then SignatureValue over SignedInfo's canonical form with
   the certificate's key (``cryptography``). The Signature element is also
   validated against the XML Signature schema (signxml's copy). This
   replaced signxml's ``XMLVerifier``, which serialized and re-parsed the
   whole document four times (a third of a large DmfA's pipeline cost):
   generic where the profile needs nothing generic. signxml stays the
   independent check in the tests (it and ``xmlsec1`` must accept what
   ``Signer`` makes, and the attack fixtures are refused by both layers).

The caller gets only ``VerifiedDocument.signed``: the canonical form of what
the digest covered, parsed afresh, with the Signature removed. The received
tree is never looked at again, which is what defeats signature wrapping.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import threading
from dataclasses import dataclass
from os import PathLike

import cryptography.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from lxml import etree
from signxml.processor import get_schema

from declarations.exceptions import InputRefused, SignatureError
from declarations.ns import DS
from declarations.xmlio.parsing import parse

__all__ = ["VerifiedDocument", "Signer", "verify", "fingerprint"]

# --- the profile, as URIs -------------------------------------------------------------------

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

PROFILE_TRANSFORMS = (ENVELOPED, EXC_C14N)
MIN_RSA_BITS = 2048


# Short names for the messages; an unknown URI is shown as it is.
_KNOWN = {
    ENVELOPED: "enveloped-signature",
    EXC_C14N: "exclusive canonicalization",
    EXC_C14N + "WithComments": "exclusive canonicalization with comments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": "inclusive canonicalization 1.0",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": "inclusive canonicalization 1.0 with comments",
    "http://www.w3.org/2006/12/xml-c14n11": "inclusive canonicalization 1.1",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": "inclusive canonicalization 1.1 with comments",
    "http://www.w3.org/TR/1999/REC-xpath-19991116": "XPath filter",
    "http://www.w3.org/2002/06/xmldsig-filter2": "XPath filter 2.0",
    "http://www.w3.org/TR/1999/REC-xslt-19991116": "XSLT",
    "http://www.w3.org/2000/09/xmldsig#base64": "base64 decoding",
}

_SIG = f"{{{DS}}}Signature"


def _ds(local: str) -> str:
    return f"{{{DS}}}{local}"


def _name(uri: str | None) -> str:
    if uri is None:
        return "(no Algorithm)"
    known = _KNOWN.get(uri)
    return f"{known} ({uri})" if known else uri


def _is_sha1(uri: str) -> bool:
    # rsa-sha1, dsa-sha1, hmac-sha1, ecdsa-sha1, sha1-rsa-MGF1, xmldsig#sha1
    tail = uri.rsplit("#", 1)[-1].lower()
    return tail == "sha1" or tail.startswith("sha1-") or tail.endswith("-sha1")


def _refuse(message: str) -> SignatureError:
    return SignatureError(message, code="S002")


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER: the form the directory registers."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class VerifiedDocument:
    """What a verified signature vouches for.

    ``signed`` is signxml's ``verify(...).signed_xml``: the exclusive
    canonical form of the signed element, Signature removed, parsed into a
    tree of its own (comments are gone: exclusive c14n without comments does
    not sign them). Use it and only it; never the received tree. (When
    ``verify`` was handed a comment-free tree it owns, that tree, Signature
    removed, is ``signed``: it reads exactly as the canonical form parsed
    again would, ``_is_its_own_canonical_reading``.)

    ``content_sha256`` is the hex SHA-256 of that canonical form (the
    Reference's digest, which verify has just checked): exclusive c14n is
    idempotent, so it is also the digest of ``signed`` canonicalized again.
    """

    signed: etree._Element
    certificate: x509.Certificate
    fingerprint: str
    content_sha256: str


# --- verifying -----------------------------------------------------------------------------

def _elements(parent: etree._Element) -> list[etree._Element]:
    """Element children only (comments and processing instructions are not structure)."""
    return [child for child in parent if isinstance(child.tag, str)]


def _describe(element: etree._Element) -> str:
    if not isinstance(element.tag, str):
        return "a comment" if isinstance(element, etree._Comment) else "a processing instruction"
    q = etree.QName(element)
    return f"<ds:{q.localname}>" if q.namespace == DS else f"<{q.localname}>"


def _path(element: etree._Element) -> str:
    steps = []
    while element is not None:
        steps.append(etree.QName(element).localname)
        element = element.getparent()
    return "/" + "/".join(reversed(steps))


def _expect_children(parent: etree._Element, what: str, expected: tuple[str, ...]) -> list[etree._Element]:
    children = _elements(parent)
    if any(c.tag == _ds("Object") for c in children):
        raise _refuse(f"{what} carries a ds:Object, which the profile does not allow: an enveloped signature "
                      "signs the document around it, never content kept inside the signature")
    # Tags compared as strings ("{DS}SignedInfo"): the same test as namespace == DS and localname == name,
    # without an etree.QName per child (the profile check runs on every declaration).
    if [c.tag for c in children] != [_ds(n) for n in expected]:
        found = ", ".join(_describe(c) for c in children) or "nothing"
        want = ", ".join(f"ds:{n}" for n in expected)
        raise _refuse(f"{what} must contain exactly {want}, in that order; it contains {found}")
    return children


# Certificates are parsed once per distinct certificate (senders reuse theirs for years). The caches run
# before the sender's certificate is checked against the directory (S003), so anyone who can post fills
# them: only certificates of a plausible size are kept (a few hundred bytes to a few kB; a larger one is
# parsed every time), and the text is keyed without its white space, which base64 allows anywhere.
_CACHED_CERTIFICATE_BYTES = 8 * 1024


@functools.lru_cache(maxsize=512)
def _cached_certificate(der: bytes) -> tuple[x509.Certificate, str]:
    cert = x509.load_der_x509_certificate(der)
    return cert, fingerprint(cert)


def _certificate(der: bytes) -> tuple[x509.Certificate, str]:
    if len(der) > _CACHED_CERTIFICATE_BYTES:
        cert = x509.load_der_x509_certificate(der)
        return cert, fingerprint(cert)
    return _cached_certificate(der)


@functools.lru_cache(maxsize=512)
def _cached_certificate_text(compact: str) -> tuple[x509.Certificate, str]:
    return _certificate(base64.b64decode(compact, validate=True))


def _certificate_text(text: str) -> tuple[x509.Certificate, str]:
    """``_certificate`` of an X509Certificate element's text (base64, any white space), cached by that text
    without its white space: the same sender sends the same text every time, whose decoding is then
    skipped. A text that is not a certificate raises (binascii.Error, ValueError, ...) every time: nothing
    is cached for it."""
    compact = "".join(text.split())
    if len(compact) > _CACHED_CERTIFICATE_BYTES * 4 // 3 + 4:
        return _certificate(base64.b64decode(compact, validate=True))
    return _cached_certificate_text(compact)


def _check_profile(root: etree._Element) -> tuple[x509.Certificate, str]:
    """Refuse an off-profile signature; return the signer's certificate from KeyInfo and its fingerprint."""
    if root.tag == _SIG:
        raise _refuse("the document is a ds:Signature element itself (an enveloping signature); "
                      "the profile requires an enveloped signature as the last child of the signed element")
    signatures = list(root.iter(_SIG))
    if not signatures:
        raise SignatureError("the document is not signed: it carries no ds:Signature element", code="S001")
    if len(signatures) > 1:
        raise _refuse(f"the document carries {len(signatures)} ds:Signature elements; "
                      "the profile allows exactly one, the last child of the root element")
    signature = signatures[0]
    if signature.getparent() is not root:
        raise _refuse(f"the ds:Signature is at {_path(signature)}; the profile requires it as the last child "
                      f"of the root element, at /{etree.QName(root).localname}/Signature")
    if root[-1] is not signature:
        raise _refuse(f"the ds:Signature is not the last child of {_describe(root)}: "
                      f"{_describe(signature.getnext())} follows it")

    signed_info, _value, key_info = _expect_children(
        signature, "the ds:Signature", ("SignedInfo", "SignatureValue", "KeyInfo"))

    # SignedInfo: CanonicalizationMethod, SignatureMethod, exactly one Reference.
    children = _elements(signed_info)
    references = [c for c in children if c.tag == _ds("Reference")]
    if len(references) != 1:
        raise _refuse(f"the signature has {len(references)} References; the profile allows exactly one, "
                      'over the whole document (URI="")')
    c14n_method, signature_method, reference = _expect_children(
        signed_info, "ds:SignedInfo", ("CanonicalizationMethod", "SignatureMethod", "Reference"))

    c14n = c14n_method.get("Algorithm")
    if c14n != EXC_C14N:
        raise _refuse(f"the SignedInfo canonicalization is {_name(c14n)}; the profile requires "
                      f"exclusive canonicalization without comments ({EXC_C14N})")
    if len(c14n_method):
        raise _refuse("the CanonicalizationMethod carries parameters (such as InclusiveNamespaces); "
                      "the profile allows plain exclusive canonicalization only")

    method = signature_method.get("Algorithm") or ""
    if _is_sha1(method):
        raise _refuse(f"the signature uses SHA-1 ({method}), which the profile does not allow; "
                      "sign with RSA-SHA256 or ECDSA-SHA256")
    if method not in (RSA_SHA256, ECDSA_SHA256):
        raise _refuse(f"the signature method {_name(method or None)} is not allowed; the profile allows "
                      f"RSA-SHA256 ({RSA_SHA256}) and ECDSA-SHA256 ({ECDSA_SHA256})")
    if len(signature_method):
        raise _refuse("the SignatureMethod carries parameters (such as HMACOutputLength); the profile allows none")

    uri = reference.get("URI")
    if uri is None:
        raise _refuse('the Reference has no URI; the profile requires URI="" (the whole document)')
    if uri != "":
        raise _refuse(f'the Reference points at URI="{uri}"; the profile requires URI="", which signs the '
                      "whole document, so that no part of it can be left unsigned or swapped")
    transforms, digest_method, _digest_value = _expect_children(
        reference, "the ds:Reference", ("Transforms", "DigestMethod", "DigestValue"))
    transform_list = _elements(transforms)
    algorithms = tuple(t.get("Algorithm") for t in transform_list)
    if algorithms != PROFILE_TRANSFORMS or any(t.tag != _ds("Transform") for t in transform_list):
        found = "; ".join(_name(a) for a in algorithms) or "none"
        raise _refuse(f"the Reference transforms are: {found}. The profile requires exactly two: "
                      "enveloped-signature, then exclusive canonicalization")
    if any(len(t) for t in transform_list):
        raise _refuse("a Reference transform carries parameters (such as InclusiveNamespaces); "
                      "the profile allows plain enveloped-signature and exclusive canonicalization only")
    digest = digest_method.get("Algorithm") or ""
    if _is_sha1(digest):
        raise _refuse(f"the Reference digest uses SHA-1 ({digest}), which the profile does not allow; use SHA-256")
    if digest != SHA256:
        raise _refuse(f"the Reference digest {_name(digest or None)} is not allowed; "
                      f"the profile requires SHA-256 ({SHA256})")

    # KeyInfo: the signer's certificate, exactly one, and no other statement of the key.
    other_keys = [c for c in _elements(key_info) if etree.QName(c).localname in ("KeyValue", "DEREncodedKeyValue")]
    if other_keys:
        raise _refuse(f"the signature's KeyInfo carries a {etree.QName(other_keys[0]).localname} beside the "
                      "certificate; the profile names the key by its X509Certificate only")
    certificates = key_info.findall(f"{_ds('X509Data')}/{_ds('X509Certificate')}")
    if not certificates:
        raise _refuse("the signature's KeyInfo carries no X509Data/X509Certificate; "
                      "the profile requires the signer's certificate there")
    if len(certificates) > 1:
        raise _refuse(f"the signature's KeyInfo carries {len(certificates)} certificates; "
                      "the profile requires exactly one, the signer's")
    try:
        cert, cert_fingerprint = _certificate_text(certificates[0].text or "")
        public_key = cert.public_key()
    except (binascii.Error, ValueError, TypeError, cryptography.exceptions.UnsupportedAlgorithm) as exc:
        raise _refuse(f"the X509Certificate in KeyInfo cannot be read as a certificate ({exc})") from None

    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise _refuse(f"the signer's RSA key has {public_key.key_size} bits; "
                          f"the profile requires at least {MIN_RSA_BITS}")
        if method != RSA_SHA256:
            raise _refuse(f"the signature method is {_name(method)} but the certificate in KeyInfo holds an RSA key, "
                          "which signs with RSA-SHA256")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise _refuse(f"the signer's EC key is on curve {public_key.curve.name}; "
                          "the profile allows only P-256 (secp256r1)")
        if method != ECDSA_SHA256:
            raise _refuse(f"the signature method is {_name(method)} but the certificate in KeyInfo holds an EC key, "
                          "which signs with ECDSA-SHA256")
    else:
        raise _refuse(f"the signer's certificate holds a {type(public_key).__name__.replace('PublicKey', '')} key; "
                      "the profile allows RSA (2048 bits or more) or EC P-256")
    return cert, cert_fingerprint


_DSIG_SCHEMA_LOCK = threading.Lock()


@functools.cache
def _dsig_schema() -> etree.XMLSchema:
    return get_schema("xmldsig1-schema.xsd")  # the XML Signature schema, as shipped with signxml


def _schema_problem(signature: etree._Element) -> str | None:
    schema = _dsig_schema()
    # An XMLSchema object is not safe to use from two threads at once (its error log).
    with _DSIG_SCHEMA_LOCK:
        if schema.validate(copy.deepcopy(signature)):
            return None
        return str(schema.error_log.last_error)


def _b64(element: etree._Element, what: str) -> bytes:
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(f"the {what} is not base64") from None


def _c14n(element: etree._Element) -> bytes:
    """Exclusive XML canonicalization 1.0, without comments, of ``element`` and its descendants."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _c14n_received(element: etree._Element, what: str) -> bytes:
    """``_c14n`` of received content: what cannot be canonicalized (libxml2 refuses, e.g., a relative
    namespace URI) cannot have been signed in the profile, and is refused as such (S002)."""
    try:
        return _c14n(element)
    except etree.C14NError:
        raise _refuse(f"the {what} cannot be put in exclusive canonical form (a relative namespace URI?), "
                      "so it cannot carry a signature in the profile") from None


def _check_signature_value(public_key, method: str, value: bytes, signed_info_c14n: bytes) -> None:
    """Raises cryptography's InvalidSignature unless ``value`` signs ``signed_info_c14n``."""
    if method == RSA_SHA256:
        public_key.verify(value, signed_info_c14n, padding.PKCS1v15(), hashes.SHA256())
        return
    # XML Signature's ECDSA value is r || s, each as long as the curve's order (RFC 4050, xmldsig11).
    if len(value) != 64:
        raise cryptography.exceptions.InvalidSignature()
    der = encode_dss_signature(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))
    public_key.verify(der, signed_info_c14n, ec.ECDSA(hashes.SHA256()))


def _remove_keeping_tail(element: etree._Element) -> None:
    parent, tail = element.getparent(), element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _is_its_own_canonical_reading(document: etree._Element) -> bool:
    """Whether reading ``parse(c14n(document))`` would find exactly what ``document`` holds.

    Only the signed content may be processed: what the digest covers is the exclusive canonical
    form, so the safe reading is that form parsed again. For a tree parsed by ``parsing.parse`` (no
    DTD, no entity left) whose Signature is removed, the canonical form changes only how things are
    written (attribute order and quoting, empty elements, character references, namespace
    declarations where they are used), which no reader of the tree sees (tags and attributes by
    namespace URI, text, tails, order), and drops the comments. A comment is what a reader would see:
    ``<A>12<!-- -->34</A>`` reads as text "12" in the tree and "1234" in the canonical form. So a tree
    without any comment reads the same either way. (CDATA sections are text to lxml and XSLT alike;
    processing instructions are kept by the canonical form. Nor does the canonical form keep a
    namespace declaration used only inside a value; no reader here resolves prefixes in values: the
    XSDs have no QName content.)
    """
    return next(document.iter(etree.Comment), None) is None


def verify(element: etree._Element, *, owned: bool = False) -> VerifiedDocument:
    """Verify ``element`` as a document of its own against the signature profile.

    ``element`` may sit inside a carrier (SOAP body, batch file): it is
    copied out as a document of its own (the namespaces in scope come along,
    and exclusive canonicalization then ignores those it does not use), so
    nothing outside it counts. Raises ``SignatureError`` with ``S001`` (no
    ds:Signature) or ``S002`` (anything else).

    ``owned``: the caller parsed ``element`` (a document's root) for this check alone and hands it
    over. It is verified in place, without a copy: its Signature is removed. If it holds no comment,
    the tree is also the signed content, and the canonical form is not parsed again (see
    ``_is_its_own_canonical_reading``). Together that saves ~7 ms of a 1,000-worker DmfA's ~40.
    """
    if isinstance(element, etree._ElementTree):
        element = element.getroot()
    if not isinstance(element, etree._Element) or not isinstance(element.tag, str):
        raise TypeError("verify() takes an lxml element")
    if owned and element.getparent() is None:
        document = element
    else:
        # A copy of its own: the received element is never changed, and never looked at again. The
        # profile is checked on the copy, which is what gets verified.
        document = copy.deepcopy(element)
        document.tail = None  # text after the element belongs to its carrier
    cert, cert_fingerprint = _check_profile(document)
    signature = document[-1]
    signed_info, signature_value, _key_info = _elements(signature)
    problem = _schema_problem(signature)
    if problem:
        raise _refuse(f"the ds:Signature element does not follow the XML Signature schema: {problem}")
    _c14n_method, signature_method, reference = _elements(signed_info)
    method = signature_method.get("Algorithm")
    digest_value = _b64(_elements(reference)[2], "DigestValue")
    value = _b64(signature_value, "SignatureValue")
    # SignedInfo in place (exclusive c14n renders only the namespaces it uses, wherever declared).
    signed_info_c14n = _c14n_received(signed_info, "ds:SignedInfo")
    # SignedInfo first (so that DigestValue is known to be the signer's), then the Reference.
    try:
        _check_signature_value(cert.public_key(), method, value, signed_info_c14n)
    except cryptography.exceptions.InvalidSignature:
        raise _refuse("the signature value does not verify with the certificate in KeyInfo: "
                      "the signed information was changed, or another key made the signature") from None
    # The Reference: URI="" is the whole document; enveloped-signature removes the Signature element
    # only, then exclusive c14n. lxml's remove() would drop the text after it (its "tail", e.g. the
    # line break before the root's end tag), which is content of the root: keep it.
    _remove_keeping_tail(signature)
    content = _c14n_received(document, "signed content")
    content_sha256 = hashlib.sha256(content)
    if content_sha256.digest() != digest_value:
        raise _refuse("the signed content does not match the signature's digest: "
                      "the document was changed after it was signed")
    if document is element and _is_its_own_canonical_reading(document):
        signed = document
    else:
        try:
            signed = parse(content)
        except InputRefused as exc:  # cannot happen for a canonical form lxml wrote; kept as a refusal
            raise _refuse(f"the signed content could not be read back as XML: {exc.message}") from None
    return VerifiedDocument(signed=signed, certificate=cert, fingerprint=cert_fingerprint,
                            content_sha256=content_sha256.hexdigest())


# --- signing -------------------------------------------------------------------------------


class Signer:
    """Signs in the profile with one key; the key and certificate are loaded once.

    Thread-safe: ``sign`` shares only the immutable key and certificate objects.
    """

    def __init__(self, key, certificate: x509.Certificate):
        public = key.public_key()
        if public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
                certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo):
            raise ValueError("the private key does not belong to the certificate")
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(f"an RSA key of {key.key_size} bits is below the profile's {MIN_RSA_BITS}")
            self._method = RSA_SHA256
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"an EC key on {key.curve.name} is outside the profile (P-256 only)")
            self._method = ECDSA_SHA256
        else:
            raise ValueError(f"a {type(key).__name__} is outside the profile (RSA 2048+ or EC P-256)")
        self._key = key
        self.certificate = certificate
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.fingerprint = fingerprint(certificate)
        self._certificate_b64 = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> Signer:
        key = serialization.load_pem_private_key(key_pem, password=None)
        return cls(key, x509.load_pem_x509_certificate(cert_pem))

    @classmethod
    def from_files(cls, key_path: str | PathLike[str], cert_path: str | PathLike[str]) -> Signer:
        with open(key_path, "rb") as k, open(cert_path, "rb") as c:
            return cls.from_pem(k.read(), c.read())

    @property
    def signature_method(self) -> str:
        return self._method

    def sign(self, element: etree._Element) -> etree._Element:
        """A new root: a copy of ``element`` with the profile's ds:Signature as its last child.

        ``element`` itself is left untouched and may sit inside a carrier:
        the copy is its own document.
        """
        if isinstance(element, etree._ElementTree):
            element = element.getroot()
        if next(element.iter(_SIG), None) is not None:
            raise ValueError("the element already carries a ds:Signature; the profile allows only one")
        document = copy.deepcopy(element)
        document.tail = None  # text after the element belongs to its carrier
        # Enveloped: the digest is over the document without the Signature, i.e. as it is now.
        document.append(self.signature_element(hashlib.sha256(_c14n(document)).digest()))
        return document

    def signature_element(self, digest: bytes) -> etree._Element:
        """The profile's ds:Signature for a document whose exclusive canonical form (without this
        Signature) has SHA-256 ``digest``: to be appended as the document root's last child.

        Used as is for documents written as a stream (the BatchResult), whose digest is computed
        while writing; ``sign`` uses it for trees.
        """
        signature = etree.Element(_SIG, nsmap={"ds": DS})
        signed_info = etree.SubElement(signature, _ds("SignedInfo"))
        etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
        etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=self._method)
        reference = etree.SubElement(signed_info, _ds("Reference"), URI="")
        transforms = etree.SubElement(reference, _ds("Transforms"))
        for algorithm in PROFILE_TRANSFORMS:
            etree.SubElement(transforms, _ds("Transform"), Algorithm=algorithm)
        etree.SubElement(reference, _ds("DigestMethod"), Algorithm=SHA256)
        etree.SubElement(reference, _ds("DigestValue")).text = base64.b64encode(digest).decode()
        # SignedInfo's exclusive canonical form is the same here as once appended to the document:
        # it renders only the ds namespace it uses, and inherits nothing (exclusive c14n).
        value = self._sign_bytes(_c14n(signed_info))
        etree.SubElement(signature, _ds("SignatureValue")).text = base64.b64encode(value).decode()
        key_info = etree.SubElement(signature, _ds("KeyInfo"))
        x509_data = etree.SubElement(key_info, _ds("X509Data"))
        etree.SubElement(x509_data, _ds("X509Certificate")).text = self._certificate_b64
        return signature

    def _sign_bytes(self, data: bytes) -> bytes:
        if self._method == RSA_SHA256:
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # XML Signature's r || s (P-256)
