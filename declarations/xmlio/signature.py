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
2. signxml then verifies the digest and the signature value, with an
   ``expect_config`` that restates the profile (one reference, signature
   child of the root, SHA-256 algorithms only), so that the cryptography is
   never done under a looser rule even if layer 1 had a gap.

The caller gets only ``VerifyResult.signed_xml``: the canonical form of what
the digest covered, parsed afresh, with the Signature removed. The received
tree is never looked at again, which is what defeats signature wrapping.
"""

from __future__ import annotations

import base64
import binascii
import functools
import threading
from dataclasses import dataclass
from os import PathLike

import cryptography.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.algorithms import SignatureConstructionMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature, SignXMLException

from declarations.exceptions import SignatureError
from declarations.ns import DS
from declarations.xmlio.parsing import PARSER_OPTIONS

__all__ = ["VerifiedDocument", "Signer", "verify", "fingerprint"]

# --- the profile, as URIs -------------------------------------------------------------------

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

PROFILE_TRANSFORMS = (ENVELOPED, EXC_C14N)
MIN_RSA_BITS = 2048

_SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256})
_DIGEST_ALGORITHMS = frozenset({DigestAlgorithm.SHA256})

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
    not sign them). Use it and only it; never the received tree.
    """

    signed: etree._Element
    certificate: x509.Certificate
    fingerprint: str


# --- verifying -----------------------------------------------------------------------------

_local = threading.local()


def _parser() -> etree.XMLParser:
    """A hardened parser for signxml's internal re-parses; lxml parsers are per thread."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(**PARSER_OPTIONS)
    return parser


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
    names = [etree.QName(c).localname if etree.QName(c).namespace == DS else None for c in children]
    if names != list(expected):
        found = ", ".join(_describe(c) for c in children) or "nothing"
        want = ", ".join(f"ds:{n}" for n in expected)
        raise _refuse(f"{what} must contain exactly {want}, in that order; it contains {found}")
    return children


@functools.lru_cache(maxsize=512)
def _certificate(der: bytes) -> tuple[x509.Certificate, str]:
    """Parse a DER certificate once per distinct certificate (senders reuse theirs for years)."""
    cert = x509.load_der_x509_certificate(der)
    return cert, fingerprint(cert)


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

    # KeyInfo: the signer's certificate, exactly one.
    certificates = key_info.findall(f"{_ds('X509Data')}/{_ds('X509Certificate')}")
    if not certificates:
        raise _refuse("the signature's KeyInfo carries no X509Data/X509Certificate; "
                      "the profile requires the signer's certificate there")
    if len(certificates) > 1:
        raise _refuse(f"the signature's KeyInfo carries {len(certificates)} certificates; "
                      "the profile requires exactly one, the signer's")
    try:
        der = base64.b64decode("".join((certificates[0].text or "").split()), validate=True)
        cert, cert_fingerprint = _certificate(der)
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


def _expect_config(cert: x509.Certificate) -> SignatureConfiguration:
    # signxml checks the validity dates even of a pinned x509_cert (XMLVerifier._check_cert_validity),
    # against verification_time or now. Dates are the caller's S004, against the engine's clock, so
    # "verify" at an instant inside the certificate's own validity: the date check can never fire here.
    return SignatureConfiguration(
        require_x509=True,
        location="./",  # the Signature is a child of the root (signxml appends "ds:Signature")
        expect_references=1,
        signature_methods=_SIGNATURE_METHODS,
        digest_algorithms=_DIGEST_ALGORITHMS,
        ignore_ambiguous_key_info=False,  # a KeyValue beside the certificate must be the same key
        verification_time=cert.not_valid_before_utc,
        default_reference_c14n_method=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )


def verify(element: etree._Element) -> VerifiedDocument:
    """Verify ``element`` as a document of its own against the signature profile.

    ``element`` may sit inside a carrier (SOAP body, batch file): it is
    serialized on its own (with the namespaces in scope, which exclusive
    canonicalization then ignores unless used) and re-parsed into a fresh
    tree, so nothing outside it counts. Raises ``SignatureError`` with
    ``S001`` (no ds:Signature) or ``S002`` (anything else).
    """
    if isinstance(element, etree._ElementTree):
        element = element.getroot()
    if not isinstance(element, etree._Element) or not isinstance(element.tag, str):
        raise TypeError("verify() takes an lxml element")
    # Profile checks on the received element: structure only, the same as its serialization's.
    cert, cert_fingerprint = _check_profile(element)
    data = etree.tostring(element, with_tail=False)  # the element alone: its own document
    try:
        result = XMLVerifier().verify(
            data,
            x509_cert=cert,  # pinned: trust is the caller's fingerprint check (S003)
            expect_config=_expect_config(cert),
            parser=_parser(),
            validate_schema=True,
        )
    except InvalidDigest:
        raise _refuse("the signed content does not match the signature's digest: "
                      "the document was changed after it was signed") from None
    except InvalidCertificate as exc:  # not expected with a pinned certificate and the time set above
        raise _refuse(f"the signer's certificate was refused: {exc}") from None
    except InvalidSignature:
        raise _refuse("the signature value does not verify with the certificate in KeyInfo: "
                      "the signed information was changed, or another key made the signature") from None
    except etree.DocumentInvalid as exc:
        raise _refuse(f"the ds:Signature element does not follow the XML Signature schema: {exc}") from None
    except (InvalidInput, SignXMLException, cryptography.exceptions.InvalidSignature,
            etree.XMLSyntaxError, ValueError, TypeError) as exc:
        raise _refuse(f"the signature cannot be verified: {exc}") from None
    signed = result.signed_xml  # expect_references=1: a single VerifyResult
    if signed is None:
        raise _refuse("the signed content could not be read back as XML")
    return VerifiedDocument(signed=signed, certificate=cert, fingerprint=cert_fingerprint)


# --- signing -------------------------------------------------------------------------------


def _reference_whole_document(sig_root: etree._Element, signing_settings) -> None:
    """signxml annotator: force ``URI=""``.

    signxml's enveloped signer writes ``URI="#<value>"`` when the root
    carries an ``Id`` or ``ID`` attribute. The digest it computed is over the
    whole root either way, so setting ``URI=""`` here (annotators run before
    SignedInfo is canonicalized and signed) keeps the signature correct and
    in the profile.
    """
    for reference in sig_root.iterfind(f"{_ds('SignedInfo')}/{_ds('Reference')}"):
        reference.set("URI", "")


class Signer:
    """Signs in the profile with one key; the key and certificate are loaded once.

    Thread-safe: ``sign`` builds a fresh ``XMLSigner`` per call (cheap) and
    shares only the immutable key and certificate objects.
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
            self._method = SignatureMethod.RSA_SHA256
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"an EC key on {key.curve.name} is outside the profile (P-256 only)")
            self._method = SignatureMethod.ECDSA_SHA256
        else:
            raise ValueError(f"a {type(key).__name__} is outside the profile (RSA 2048+ or EC P-256)")
        self._key = key
        self.certificate = certificate
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.fingerprint = fingerprint(certificate)

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
        return self._method.value

    def sign(self, element: etree._Element) -> etree._Element:
        """A new root: a copy of ``element`` with the profile's ds:Signature as its last child.

        ``element`` itself is left untouched (signxml works on a serialized
        copy), and may sit inside a carrier: the copy is its own document.
        """
        if isinstance(element, etree._ElementTree):
            element = element.getroot()
        if next(element.iter(_SIG), None) is not None:
            raise ValueError("the element already carries a ds:Signature; the profile allows only one")
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=self._method,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        signer.signature_annotators.append(_reference_whole_document)
        return signer.sign(element, key=self._key, cert=[self.certificate])
