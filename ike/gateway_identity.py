"""The gateway must be the one the user dialled (issue 13 §1).

With no remote identity configured, a certificate that merely chains to a trusted CA proves
nothing about *which* host we reached: any holder of a certificate from that CA could stand in.
Like charon-nm (nm_service.c: no remote-identity -> the address as identity, "loose") and the
strongSwan Android app, the gateway must then prove the name or address the user dialled:
as a subjectAltName (DNS name or IP address) of its certificate, or, with a PSK, as its IDr.
`remote_id = "%any"` accepts any identity, explicitly.
"""

from __future__ import annotations

import ipaddress

ANY = "%any"


def accepts_any(remote_id) -> bool:
    return (remote_id or "").strip().lower() == ANY


def _dialled(name: str):
    """The dialled name as (kind, value): an IP address or a lower-case DNS name."""
    try:
        return "ip", ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return "dns", name.strip().rstrip(".").casefold()


def certificate_names(cert) -> tuple[str, list[str]]:
    """(subject DN as text, ["DNS:…", "IP:…", …]) for messages and checks."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    names = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
    names += [f"IP:{a}" for a in san.get_values_for_type(x509.IPAddress)]
    names += [f"email:{e}" for e in san.get_values_for_type(x509.RFC822Name)]
    return cert.subject.rfc4514_string(), names


def certificate_proves(cert, dialled: str) -> bool:
    """Whether the certificate names `dialled` as a subjectAltName (DNS name or IP address)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    kind, value = _dialled(dialled)
    if kind == "ip":
        return value in san.get_values_for_type(x509.IPAddress)
    return value in (n.rstrip(".").casefold() for n in san.get_values_for_type(x509.DNSName))


def certificate_mismatch(cert, dialled: str) -> str:
    """"" if `cert` proves `dialled`, else the one-line failure naming both sides."""
    if certificate_proves(cert, dialled):
        return ""
    subject, names = certificate_names(cert)
    presented = subject or "an empty subject"
    presented += f", SAN {', '.join(names)}" if names else ", no subjectAltName"
    return (f"gateway identity mismatch: expected a certificate for {dialled}, "
            f"the gateway presented {presented}")


def idr_mismatch(idr_text: str, idr_matches: bool, dialled: str) -> str:
    """PSK: the gateway's IDr must be the dialled name or address."""
    if idr_matches:
        return ""
    return (f"gateway identity mismatch: expected the gateway to identify itself as {dialled}, "
            f"it said {idr_text or 'nothing'} (set remote_id to the gateway's identity)")
