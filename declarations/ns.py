"""XML namespaces of the published contract (spec/README.md)."""

DIMONA = "urn:declarations:dimona:v1"
DMFA = "urn:declarations:dmfa:v1"
DRS = "urn:declarations:drs:v1"
BATCH = "urn:declarations:batch:v1"
RESULT = "urn:declarations:result:v1"
INSTITUTION = "urn:declarations:institution:v1"
DIRECTORY = "urn:declarations:directory:v1"
DS = "http://www.w3.org/2000/09/xmldsig#"
# The real-time service's own (docs/soap.md): the SOAP Body wrappers, and the signed lookup requests.
SERVICE = "urn:declarations:service:v1"
LOOKUP = "urn:declarations:lookup:v1"
# The InstitutionService's Body wrappers (docs/institutions.md); its signed documents are INSTITUTION's.
INSTITUTION_SERVICE = "urn:declarations:institution-service:v1"

# Root element (Clark notation) -> declaration kind as written in results.
KIND_BY_ROOT = {
    f"{{{DIMONA}}}Dimona": "DIMONA",
    f"{{{DMFA}}}DmfA": "DMFA",
    f"{{{DRS}}}SocialRisk": "DRS",
}


def qn(namespace: str, local: str) -> str:
    """Clark notation: ``{namespace}local``."""
    return f"{{{namespace}}}{local}"
